CREATE INDEX "A_kind_x" ON "A"(id) WHERE kind = 'x'; ALTER TYPE "Kind" RENAME TO "AKind";
