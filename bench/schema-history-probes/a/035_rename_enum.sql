ALTER TYPE "Status" RENAME TO "UserStatus";
