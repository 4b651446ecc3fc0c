ALTER TABLE "users" RENAME TO "User";
