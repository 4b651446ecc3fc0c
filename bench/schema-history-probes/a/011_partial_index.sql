CREATE INDEX "Post_name_idx" ON "Post"(lower("name")) WHERE "name" IS NOT NULL;
