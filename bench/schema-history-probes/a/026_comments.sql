COMMENT ON TABLE "Team" IS 'teams'; COMMENT ON COLUMN "Team".slug IS 'url';
