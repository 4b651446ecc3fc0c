ALTER TABLE "Token" RENAME TO "ApiToken"; ALTER TABLE "ApiToken" RENAME CONSTRAINT "Token_pkey" TO "ApiToken_pkey";
