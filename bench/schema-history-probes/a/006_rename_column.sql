ALTER TABLE "Post" RENAME COLUMN title TO "name";
