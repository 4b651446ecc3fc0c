ALTER TABLE ev ADD COLUMN payload jsonb;
