CREATE INDEX "User_admin_idx" ON "User"(id) WHERE status = 'A';
