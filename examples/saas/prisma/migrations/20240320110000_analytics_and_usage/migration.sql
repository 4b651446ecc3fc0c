-- CreateEnum
CREATE TYPE "analytics_provider" AS ENUM ('google_analytics', 'google_search_console', 'google_ads', 'meta_ads', 'linkedin_ads', 'hubspot');

-- CreateTable
CREATE TABLE "analytics_connections" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "agency_id" UUID NOT NULL,
    "provider" "analytics_provider" NOT NULL,
    "external_account_id" TEXT NOT NULL,
    "display_name" TEXT,
    "encrypted_credentials" BYTEA NOT NULL,
    "credentials_key_id" TEXT NOT NULL DEFAULT 'k1',
    "last_synced_at" TIMESTAMPTZ(3),
    "created_by" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "analytics_connections_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "monthly_usage" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "agency_id" UUID NOT NULL,
    "month" DATE NOT NULL,
    "requests_created" INTEGER NOT NULL DEFAULT 0,
    "tasks_created" INTEGER NOT NULL DEFAULT 0,
    "tasks_completed" INTEGER NOT NULL DEFAULT 0,
    "active_users" INTEGER NOT NULL DEFAULT 0,
    "api_calls" BIGINT NOT NULL DEFAULT 0,
    "analytics_syncs" INTEGER NOT NULL DEFAULT 0,
    "storage_bytes" BIGINT NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "monthly_usage_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "analytics_connections_agency_id_idx" ON "analytics_connections"("agency_id");

-- CreateIndex
CREATE INDEX "analytics_connections_provider_last_synced_at_idx" ON "analytics_connections"("provider", "last_synced_at");

-- CreateIndex
CREATE INDEX "analytics_connections_created_by_idx" ON "analytics_connections"("created_by");

-- CreateIndex
CREATE UNIQUE INDEX "monthly_usage_agency_id_month_key" ON "monthly_usage"("agency_id", "month");

-- AddForeignKey
ALTER TABLE "analytics_connections" ADD CONSTRAINT "analytics_connections_agency_id_fkey" FOREIGN KEY ("agency_id") REFERENCES "agencies"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "analytics_connections" ADD CONSTRAINT "analytics_connections_created_by_fkey" FOREIGN KEY ("created_by") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "monthly_usage" ADD CONSTRAINT "monthly_usage_agency_id_fkey" FOREIGN KEY ("agency_id") REFERENCES "agencies"("id") ON DELETE CASCADE ON UPDATE CASCADE;
