ALTER INDEX "users.email_unique" RENAME TO "users_email_key";
