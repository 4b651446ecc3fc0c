ALTER TABLE "User" RENAME CONSTRAINT "users_pkey" TO "User_pkey";
