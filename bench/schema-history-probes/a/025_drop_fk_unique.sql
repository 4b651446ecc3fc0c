ALTER TABLE "Post" DROP CONSTRAINT "Post_teamSlug_fkey"; DROP INDEX "Team_slug_key"; CREATE UNIQUE INDEX "Team_slug_key" ON "Team"(slug, id);
