-- CreateEnum
CREATE TYPE "request_status" AS ENUM ('new', 'triaged', 'in_progress', 'waiting_on_client', 'completed', 'cancelled');

-- CreateEnum
CREATE TYPE "request_priority" AS ENUM ('low', 'normal', 'high', 'urgent');

-- CreateEnum
CREATE TYPE "task_status" AS ENUM ('todo', 'in_progress', 'blocked', 'in_review', 'done', 'cancelled');

-- AlterTable
ALTER TABLE "agencies" ADD COLUMN     "timezone" TEXT NOT NULL DEFAULT 'UTC';

-- CreateTable
CREATE TABLE "requests" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "agency_id" UUID NOT NULL,
    "number" INTEGER NOT NULL,
    "created_by" UUID,
    "title" TEXT NOT NULL,
    "description" TEXT,
    "client_name" TEXT,
    "client_email" TEXT,
    "status" "request_status" NOT NULL DEFAULT 'new',
    "priority" "request_priority" NOT NULL DEFAULT 'normal',
    "due_at" TIMESTAMPTZ(3),
    "closed_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "requests_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tasks" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "request_id" UUID NOT NULL,
    "agency_id" UUID NOT NULL,
    "assignee_id" UUID,
    "created_by" UUID,
    "title" TEXT NOT NULL,
    "description" TEXT,
    "status" "task_status" NOT NULL DEFAULT 'todo',
    "position" INTEGER NOT NULL DEFAULT 0,
    "estimate_minutes" INTEGER,
    "due_date" DATE,
    "completed_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "tasks_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "requests_agency_id_status_created_at_idx" ON "requests"("agency_id", "status", "created_at");

-- CreateIndex
CREATE INDEX "requests_agency_id_priority_idx" ON "requests"("agency_id", "priority");

-- CreateIndex
CREATE INDEX "requests_created_by_idx" ON "requests"("created_by");

-- CreateIndex
CREATE UNIQUE INDEX "requests_agency_id_number_key" ON "requests"("agency_id", "number");

-- CreateIndex
CREATE INDEX "tasks_request_id_idx" ON "tasks"("request_id");

-- CreateIndex
CREATE INDEX "tasks_agency_id_status_created_at_idx" ON "tasks"("agency_id", "status", "created_at");

-- CreateIndex
CREATE INDEX "tasks_assignee_id_status_due_date_idx" ON "tasks"("assignee_id", "status", "due_date");

-- CreateIndex
CREATE INDEX "tasks_created_by_idx" ON "tasks"("created_by");

-- AddForeignKey
ALTER TABLE "requests" ADD CONSTRAINT "requests_agency_id_fkey" FOREIGN KEY ("agency_id") REFERENCES "agencies"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "requests" ADD CONSTRAINT "requests_created_by_fkey" FOREIGN KEY ("created_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_request_id_fkey" FOREIGN KEY ("request_id") REFERENCES "requests"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_agency_id_fkey" FOREIGN KEY ("agency_id") REFERENCES "agencies"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_assignee_id_fkey" FOREIGN KEY ("assignee_id") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_created_by_fkey" FOREIGN KEY ("created_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;
