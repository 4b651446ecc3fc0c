-- The desired schema of the example: what `tend migrate dev` writes the next migration
-- towards. It is the schema of the six migrations (as `tend schema dump` prints it) plus the
-- next feature, not migrated yet: invoices per agency and a locale per user.
--   tend migrate dev --name invoices     writes and applies the migration
--   tend schema diff --from migrations --to schema     shows it without writing

CREATE TYPE public.agency_plan AS ENUM ('free', 'starter', 'pro', 'enterprise');

CREATE TYPE public.analytics_provider AS ENUM ('google_analytics', 'google_search_console', 'google_ads', 'meta_ads', 'linkedin_ads', 'hubspot', 'tiktok_ads');

CREATE TYPE public.job_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'dead');

CREATE TYPE public.membership_role AS ENUM ('owner', 'admin', 'member', 'viewer');

CREATE TYPE public.request_priority AS ENUM ('low', 'normal', 'high', 'urgent');

CREATE TYPE public.request_status AS ENUM ('new', 'triaged', 'in_progress', 'waiting_on_client', 'completed', 'cancelled');

CREATE TYPE public.task_status AS ENUM ('todo', 'in_progress', 'blocked', 'in_review', 'done', 'cancelled');

CREATE SEQUENCE public.audit_log_id_seq AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE;

CREATE SEQUENCE public.background_jobs_id_seq AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE;

CREATE TABLE public.accounts (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    type text NOT NULL,
    provider text NOT NULL,
    provider_account_id text NOT NULL,
    access_token text,
    refresh_token text,
    expires_at timestamp(3) with time zone,
    token_type text,
    scope text,
    id_token text,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL
);

CREATE TABLE public.agencies (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    slug text NOT NULL,
    plan public.agency_plan DEFAULT 'free'::public.agency_plan NOT NULL,
    billing_email text,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    deleted_at timestamp(3) with time zone,
    deleted_by uuid
);

CREATE TABLE public.agency_memberships (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    agency_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role public.membership_role DEFAULT 'member'::public.membership_role NOT NULL,
    invited_by uuid,
    joined_at timestamp(3) with time zone,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL
);

CREATE TABLE public.analytics_connections (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    agency_id uuid NOT NULL,
    provider public.analytics_provider NOT NULL,
    external_account_id text NOT NULL,
    display_name text,
    encrypted_credentials bytea NOT NULL,
    credentials_key_id text DEFAULT 'k1'::text NOT NULL,
    last_synced_at timestamp(3) with time zone,
    created_by uuid,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL,
    last_sync_error text,
    deleted_at timestamp(3) with time zone,
    deleted_by uuid
);

CREATE TABLE public.audit_log (
    id bigint DEFAULT nextval('public.audit_log_id_seq'::regclass) NOT NULL,
    actor_id uuid,
    agency_id uuid,
    action text NOT NULL,
    entity_type text NOT NULL,
    entity_id text,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    ip_address inet,
    user_agent text,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL
);

CREATE TABLE public.background_jobs (
    id bigint DEFAULT nextval('public.background_jobs_id_seq'::regclass) NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    job_type text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    status public.job_status DEFAULT 'queued'::public.job_status NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 5 NOT NULL,
    run_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    locked_at timestamp(3) with time zone,
    locked_by text,
    last_error text,
    finished_at timestamp(3) with time zone,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL
);

CREATE TABLE public.monthly_usage (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    agency_id uuid NOT NULL,
    month date NOT NULL,
    requests_created integer DEFAULT 0 NOT NULL,
    tasks_created integer DEFAULT 0 NOT NULL,
    tasks_completed integer DEFAULT 0 NOT NULL,
    active_users integer DEFAULT 0 NOT NULL,
    api_calls bigint DEFAULT 0 NOT NULL,
    analytics_syncs integer DEFAULT 0 NOT NULL,
    storage_bytes bigint DEFAULT 0 NOT NULL,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL
);

CREATE TABLE public.requests (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    agency_id uuid NOT NULL,
    number integer NOT NULL,
    created_by uuid,
    title text NOT NULL,
    description text,
    client_name text,
    client_email text,
    status public.request_status DEFAULT 'new'::public.request_status NOT NULL,
    priority public.request_priority DEFAULT 'normal'::public.request_priority NOT NULL,
    due_at timestamp(3) with time zone,
    closed_at timestamp(3) with time zone,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL,
    deleted_at timestamp(3) with time zone,
    deleted_by uuid
);

CREATE TABLE public.sessions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    session_token text NOT NULL,
    user_id uuid NOT NULL,
    expires_at timestamp(3) with time zone NOT NULL,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    ip_address inet,
    last_seen_at timestamp(3) with time zone,
    user_agent text
);

CREATE TABLE public.system_settings (
    key text NOT NULL,
    value jsonb NOT NULL,
    description text,
    updated_by uuid,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL
);

CREATE TABLE public.tasks (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_id uuid NOT NULL,
    agency_id uuid NOT NULL,
    assignee_id uuid,
    created_by uuid,
    title text NOT NULL,
    description text,
    status public.task_status DEFAULT 'todo'::public.task_status NOT NULL,
    "position" integer DEFAULT 0 NOT NULL,
    estimate_minutes integer,
    due_date date,
    completed_at timestamp(3) with time zone,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL,
    deleted_at timestamp(3) with time zone,
    deleted_by uuid
);

CREATE TABLE public.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    email_verified_at timestamp(3) with time zone,
    name text,
    avatar_url text,
    password_hash text,
    is_staff boolean DEFAULT false NOT NULL,
    last_login_at timestamp(3) with time zone,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp(3) with time zone NOT NULL,
    deleted_at timestamp(3) with time zone,
    deleted_by uuid,
    locale text DEFAULT 'en'::text NOT NULL
);

ALTER TABLE public.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);

ALTER TABLE public.agencies ADD CONSTRAINT agencies_pkey PRIMARY KEY (id);

ALTER TABLE public.agency_memberships ADD CONSTRAINT agency_memberships_pkey PRIMARY KEY (id);

ALTER TABLE public.analytics_connections ADD CONSTRAINT analytics_connections_pkey PRIMARY KEY (id);

ALTER TABLE public.audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

ALTER TABLE public.background_jobs ADD CONSTRAINT background_jobs_pkey PRIMARY KEY (id);

ALTER TABLE public.monthly_usage ADD CONSTRAINT monthly_usage_pkey PRIMARY KEY (id);

ALTER TABLE public.requests ADD CONSTRAINT requests_pkey PRIMARY KEY (id);

ALTER TABLE public.sessions ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);

ALTER TABLE public.system_settings ADD CONSTRAINT system_settings_pkey PRIMARY KEY (key);

ALTER TABLE public.tasks ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);

ALTER TABLE public.users ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE public.accounts ADD CONSTRAINT accounts_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.agencies ADD CONSTRAINT agencies_deleted_by_fkey FOREIGN KEY (deleted_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.agency_memberships ADD CONSTRAINT agency_memberships_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES public.agencies(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.agency_memberships ADD CONSTRAINT agency_memberships_invited_by_fkey FOREIGN KEY (invited_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.agency_memberships ADD CONSTRAINT agency_memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.analytics_connections ADD CONSTRAINT analytics_connections_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES public.agencies(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.analytics_connections ADD CONSTRAINT analytics_connections_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.analytics_connections ADD CONSTRAINT analytics_connections_deleted_by_fkey FOREIGN KEY (deleted_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.audit_log ADD CONSTRAINT audit_log_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.audit_log ADD CONSTRAINT audit_log_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES public.agencies(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.monthly_usage ADD CONSTRAINT monthly_usage_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES public.agencies(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.requests ADD CONSTRAINT requests_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES public.agencies(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.requests ADD CONSTRAINT requests_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.requests ADD CONSTRAINT requests_deleted_by_fkey FOREIGN KEY (deleted_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.sessions ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.system_settings ADD CONSTRAINT system_settings_updated_by_fkey FOREIGN KEY (updated_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.tasks ADD CONSTRAINT tasks_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES public.agencies(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.tasks ADD CONSTRAINT tasks_assignee_id_fkey FOREIGN KEY (assignee_id) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.tasks ADD CONSTRAINT tasks_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.tasks ADD CONSTRAINT tasks_deleted_by_fkey FOREIGN KEY (deleted_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

ALTER TABLE public.tasks ADD CONSTRAINT tasks_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.requests(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE public.users ADD CONSTRAINT users_deleted_by_fkey FOREIGN KEY (deleted_by) REFERENCES public.users(id) ON UPDATE CASCADE ON DELETE SET NULL;

CREATE UNIQUE INDEX accounts_provider_provider_account_id_key ON public.accounts USING btree (provider, provider_account_id);

CREATE INDEX accounts_user_id_idx ON public.accounts USING btree (user_id);

CREATE INDEX agencies_deleted_by_idx ON public.agencies USING btree (deleted_by);

CREATE UNIQUE INDEX agencies_slug_active_key ON public.agencies USING btree (slug) WHERE (deleted_at IS NULL);

CREATE UNIQUE INDEX agency_memberships_agency_id_user_id_key ON public.agency_memberships USING btree (agency_id, user_id);

CREATE INDEX agency_memberships_invited_by_idx ON public.agency_memberships USING btree (invited_by);

CREATE INDEX agency_memberships_user_id_idx ON public.agency_memberships USING btree (user_id);

CREATE UNIQUE INDEX analytics_connections_account_active_key ON public.analytics_connections USING btree (agency_id, provider, external_account_id) WHERE (deleted_at IS NULL);

CREATE INDEX analytics_connections_agency_id_idx ON public.analytics_connections USING btree (agency_id);

CREATE INDEX analytics_connections_created_by_idx ON public.analytics_connections USING btree (created_by);

CREATE INDEX analytics_connections_deleted_by_idx ON public.analytics_connections USING btree (deleted_by);

CREATE INDEX analytics_connections_provider_last_synced_at_idx ON public.analytics_connections USING btree (provider, last_synced_at);

CREATE INDEX audit_log_actor_id_created_at_idx ON public.audit_log USING btree (actor_id, created_at DESC);

CREATE INDEX audit_log_agency_id_created_at_idx ON public.audit_log USING btree (agency_id, created_at DESC);

CREATE INDEX audit_log_created_at_idx ON public.audit_log USING brin (created_at);

CREATE INDEX audit_log_entity_type_entity_id_idx ON public.audit_log USING btree (entity_type, entity_id);

CREATE INDEX audit_log_metadata_idx ON public.audit_log USING gin (metadata jsonb_path_ops);

CREATE INDEX background_jobs_claim_idx ON public.background_jobs USING btree (queue, run_at) WHERE (status = 'queued'::public.job_status);

CREATE INDEX background_jobs_job_type_created_at_idx ON public.background_jobs USING btree (job_type, created_at);

CREATE INDEX background_jobs_stale_lock_idx ON public.background_jobs USING btree (locked_at) WHERE (status = 'running'::public.job_status);

CREATE INDEX background_jobs_status_finished_at_idx ON public.background_jobs USING btree (status, finished_at);

CREATE UNIQUE INDEX monthly_usage_agency_id_month_key ON public.monthly_usage USING btree (agency_id, month);

CREATE INDEX requests_agency_id_created_at_active_idx ON public.requests USING btree (agency_id, created_at DESC) WHERE (deleted_at IS NULL);

CREATE UNIQUE INDEX requests_agency_id_number_key ON public.requests USING btree (agency_id, number);

CREATE INDEX requests_agency_id_priority_idx ON public.requests USING btree (agency_id, priority);

CREATE INDEX requests_agency_id_status_created_at_idx ON public.requests USING btree (agency_id, status, created_at);

CREATE INDEX requests_created_by_idx ON public.requests USING btree (created_by);

CREATE INDEX requests_deleted_by_idx ON public.requests USING btree (deleted_by);

CREATE INDEX sessions_expires_at_idx ON public.sessions USING btree (expires_at);

CREATE UNIQUE INDEX sessions_session_token_key ON public.sessions USING btree (session_token);

CREATE INDEX sessions_user_id_idx ON public.sessions USING btree (user_id);

CREATE INDEX system_settings_updated_by_idx ON public.system_settings USING btree (updated_by);

CREATE INDEX tasks_agency_id_status_created_at_idx ON public.tasks USING btree (agency_id, status, created_at);

CREATE INDEX tasks_assignee_id_due_date_open_idx ON public.tasks USING btree (assignee_id, due_date) WHERE ((deleted_at IS NULL) AND (status <> ALL (ARRAY['done'::public.task_status, 'cancelled'::public.task_status])));

CREATE INDEX tasks_assignee_id_status_due_date_idx ON public.tasks USING btree (assignee_id, status, due_date);

CREATE INDEX tasks_created_by_idx ON public.tasks USING btree (created_by);

CREATE INDEX tasks_deleted_by_idx ON public.tasks USING btree (deleted_by);

CREATE INDEX tasks_request_id_idx ON public.tasks USING btree (request_id);

CREATE INDEX users_deleted_by_idx ON public.users USING btree (deleted_by);

CREATE UNIQUE INDEX users_email_active_key ON public.users USING btree (lower(email)) WHERE (deleted_at IS NULL);

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;

ALTER SEQUENCE public.background_jobs_id_seq OWNED BY public.background_jobs.id;

-- The next feature.
CREATE TYPE public.invoice_status AS ENUM ('draft', 'open', 'paid', 'void');

CREATE TABLE public.invoices (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    agency_id uuid NOT NULL,
    number integer NOT NULL,
    status public.invoice_status DEFAULT 'draft'::public.invoice_status NOT NULL,
    total_cents bigint DEFAULT 0 NOT NULL,
    issued_at timestamp(3) with time zone,
    created_at timestamp(3) with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    CONSTRAINT invoices_pkey PRIMARY KEY (id),
    CONSTRAINT invoices_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES public.agencies(id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT invoices_total_cents_check CHECK (total_cents >= 0)
);

CREATE UNIQUE INDEX invoices_agency_id_number_key ON public.invoices USING btree (agency_id, number);
CREATE INDEX invoices_open_idx ON public.invoices USING btree (agency_id, issued_at) WHERE status = 'open';
