CREATE TABLE "Team" (id SERIAL PRIMARY KEY, slug TEXT); CREATE UNIQUE INDEX "Team_slug_key" ON "Team"(slug); ALTER TABLE "Post" ADD COLUMN "teamSlug" TEXT REFERENCES "Team"(slug);
