-- DropIndex
DROP INDEX "agencies_slug_key";

-- DropIndex
DROP INDEX "users_email_key";

-- AlterTable
ALTER TABLE "agencies" ADD COLUMN     "deleted_at" TIMESTAMPTZ(3),
ADD COLUMN     "deleted_by" UUID;

-- AlterTable
ALTER TABLE "analytics_connections" ADD COLUMN     "deleted_at" TIMESTAMPTZ(3),
ADD COLUMN     "deleted_by" UUID;

-- AlterTable
ALTER TABLE "requests" ADD COLUMN     "deleted_at" TIMESTAMPTZ(3),
ADD COLUMN     "deleted_by" UUID;

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "deleted_at" TIMESTAMPTZ(3),
ADD COLUMN     "deleted_by" UUID;

-- AlterTable
ALTER TABLE "users" ADD COLUMN     "deleted_at" TIMESTAMPTZ(3),
ADD COLUMN     "deleted_by" UUID;

-- CreateIndex
CREATE INDEX "agencies_deleted_by_idx" ON "agencies"("deleted_by");

-- CreateIndex
CREATE INDEX "analytics_connections_deleted_by_idx" ON "analytics_connections"("deleted_by");

-- CreateIndex
CREATE INDEX "requests_deleted_by_idx" ON "requests"("deleted_by");

-- CreateIndex
CREATE INDEX "tasks_deleted_by_idx" ON "tasks"("deleted_by");

-- CreateIndex
CREATE INDEX "users_deleted_by_idx" ON "users"("deleted_by");

-- AddForeignKey
ALTER TABLE "users" ADD CONSTRAINT "users_deleted_by_fkey" FOREIGN KEY ("deleted_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "agencies" ADD CONSTRAINT "agencies_deleted_by_fkey" FOREIGN KEY ("deleted_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "requests" ADD CONSTRAINT "requests_deleted_by_fkey" FOREIGN KEY ("deleted_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_deleted_by_fkey" FOREIGN KEY ("deleted_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "analytics_connections" ADD CONSTRAINT "analytics_connections_deleted_by_fkey" FOREIGN KEY ("deleted_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- ---------------------------------------------------------------------------
-- Hand-written below this line. schema.prisma cannot express partial or
-- expression indexes, so they exist only here: keep them when regenerating.
-- ---------------------------------------------------------------------------

-- Uniqueness only among rows that are not soft-deleted, so a deleted user's
-- email address (or a deleted agency's slug) can be registered again.
CREATE UNIQUE INDEX "users_email_active_key" ON "users"(lower("email")) WHERE "deleted_at" IS NULL;

CREATE UNIQUE INDEX "agencies_slug_active_key" ON "agencies"("slug") WHERE "deleted_at" IS NULL;

CREATE UNIQUE INDEX "analytics_connections_account_active_key" ON "analytics_connections"("agency_id", "provider", "external_account_id") WHERE "deleted_at" IS NULL;

-- Tenant-scoped listings of live rows (the common case in the app).
CREATE INDEX "requests_agency_id_created_at_active_idx" ON "requests"("agency_id", "created_at" DESC) WHERE "deleted_at" IS NULL;

CREATE INDEX "tasks_assignee_id_due_date_open_idx" ON "tasks"("assignee_id", "due_date") WHERE "deleted_at" IS NULL AND "status" NOT IN ('done', 'cancelled');

-- Job claim: SELECT ... WHERE status = 'queued' AND queue = $1 AND run_at <= now()
-- ORDER BY run_at FOR UPDATE SKIP LOCKED LIMIT n
CREATE INDEX "background_jobs_claim_idx" ON "background_jobs"("queue", "run_at") WHERE "status" = 'queued';

-- Reaper for jobs whose worker died while holding the lock.
CREATE INDEX "background_jobs_stale_lock_idx" ON "background_jobs"("locked_at") WHERE "status" = 'running';
