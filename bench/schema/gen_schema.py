#!/usr/bin/env python3
"""Writes the two schemas `bench/schema.sh` compares: `a.sql`, a SaaS application's schema
of about 2,200 objects (as tend's `Model::object_count` counts them), and `changes.sql`, the
about 35 changes that turn it into schema B. Deterministic: a fixed seed, so every run and
every machine gets the same SQL.

    python3 bench/schema/gen_schema.py --out DIR [--seed N] [--modules N]

Schema A: three schemas (public, billing, audit), six enums, two stand-alone sequences,
plpgsql and SQL functions, about 120 tables in twelve modules (organizations, users and
memberships at the core), each with 8 to 12 columns: identity, bigserial or uuid keys,
foreign keys to the organization, to users and to a parent table in the same module, unique
and check constraints, indexes on the foreign keys, partial, expression and GIN indexes,
`updated_at` and audit triggers, row level security policies, comments, views over the
tables and two materialized views with an index each.

The changes are the kind a release brings: columns added (nullable and NOT NULL with a
default), dropped and retyped, defaults and NOT NULL changed, indexes created and dropped,
a new table with its keys and index, a dropped table, a new check constraint, two views
redefined, an enum value added, a function changed, a new trigger, policy and comment.
Columns that are dropped or retyped are used by no view, index or constraint, so every
change is a plain ALTER.

Prints one line of statistics on stdout.
"""

import argparse
import os
import random

MODULES = [
    ("crm", "public", ["accounts", "contacts", "leads", "opportunities", "activities",
                       "notes", "pipelines", "stages", "campaigns", "segments"]),
    ("billing", "billing", ["customers", "products", "prices", "subscriptions", "invoices",
                            "invoice_lines", "payments", "refunds", "coupons", "tax_rates"]),
    ("support", "public", ["queues", "tickets", "ticket_comments", "ticket_tags", "macros",
                           "sla_policies", "satisfaction_surveys", "escalations", "canned_replies",
                           "views_saved"]),
    ("inventory", "public", ["warehouses", "items", "stock_levels", "stock_movements",
                             "suppliers", "purchase_orders", "purchase_order_lines", "shipments",
                             "shipment_items", "returns"]),
    ("projects", "public", ["projects", "milestones", "tasks", "task_comments", "time_entries",
                            "labels", "task_labels", "sprints", "boards", "attachments"]),
    ("hr", "public", ["departments", "employees", "positions", "leave_requests", "reviews",
                      "goals", "trainings", "enrollments", "payslips", "benefits"]),
    ("content", "public", ["categories", "articles", "article_versions", "media_assets",
                           "comments", "reactions", "collections", "collection_items",
                           "redirects", "menus"]),
    ("analytics", "public", ["sessions", "events", "page_views", "funnels", "funnel_steps",
                             "cohorts", "dashboards", "widgets", "reports", "exports"]),
    ("platform", "public", ["api_keys", "webhooks", "webhook_deliveries", "integrations",
                            "feature_flags", "flag_rules", "notifications",
                            "notification_prefs", "invitations", "sso_connections"]),
    ("marketing", "public", ["email_templates", "email_sends", "landing_pages", "forms",
                             "form_submissions", "ab_tests", "variants", "utm_links",
                             "newsletters", "subscribers"]),
    ("commerce", "public", ["carts", "cart_items", "orders", "order_items", "discounts",
                            "gift_cards", "product_reviews", "wishlists", "shipping_zones",
                            "shipping_rates"]),
    ("scheduling", "public", ["calendars", "appointments", "availability_slots", "resources",
                              "bookings", "reminders", "holidays", "locations", "rooms",
                              "waitlist_entries"]),
]

ENUMS = {
    "record_status": ["draft", "active", "paused", "archived"],
    "priority_level": ["low", "normal", "high", "urgent"],
    "plan_tier": ["free", "starter", "pro", "enterprise"],
    "member_role": ["owner", "admin", "member", "viewer"],
    "billing.invoice_state": ["draft", "open", "paid", "void", "uncollectible"],
    "channel_kind": ["email", "sms", "push", "webhook"],
}

# Optional columns: (name, type, default or None, not null, check or None). A table takes a
# random subset so its column count lands between 8 and 12.
POOL = [
    ("title", "varchar(200)", None, False, None),
    ("description", "text", None, False, None),
    ("status", "public.record_status", "'active'", True, None),
    ("priority", "public.priority_level", "'normal'", True, None),
    ("amount_cents", "bigint", "0", True, "{col} >= 0"),
    ("price", "numeric(12,2)", None, False, "{col} >= 0"),
    ("quantity", "integer", "1", True, "{col} >= 0"),
    ("is_active", "boolean", "true", True, None),
    ("metadata", "jsonb", "'{{}}'::jsonb", True, None),
    ("tags", "text[]", "'{{}}'::text[]", True, None),
    ("email", "text", None, False, "position('@' in {col}) > 1"),
    ("external_ref", "varchar(64)", None, False, None),
    ("due_on", "date", None, False, None),
    ("starts_at", "timestamptz", None, False, None),
    ("sort_order", "integer", "0", True, None),
    ("score", "double precision", None, False, None),
    ("ip_address", "inet", None, False, None),
    ("deleted_at", "timestamptz", None, False, None),
    ("notes", "text", None, False, None),
    ("currency", "char(3)", "'USD'", True, None),
]


class Table:
    def __init__(self, schema, name, module):
        self.schema = schema
        self.name = name
        self.module = module
        self.pk_type = "bigint"
        self.columns = []      # [name, type, default, not null]
        self.used = set()      # columns a view, index or constraint uses
        self.referenced = False
        self.in_view = False
        self.indexes = []      # index names
        self.has_updated_at_trigger = False

    @property
    def q(self):
        return f"{self.schema}.{self.name}"

    def col(self, name):
        return next((c for c in self.columns if c[0] == name), None)


def generate(seed, module_count):
    rnd = random.Random(seed)
    out = []
    stats = {"tables": 0, "columns": 0, "constraints": 0, "indexes": 0, "triggers": 0,
             "policies": 0, "views": 0, "functions": 0, "types": 0, "sequences": 0}
    emit = out.append

    emit("-- Schema A for bench/schema.sh, generated by bench/schema/gen_schema.py.")
    emit("CREATE SCHEMA billing;")
    emit("CREATE SCHEMA audit;")
    emit("COMMENT ON SCHEMA billing IS 'Plans, subscriptions and invoices';")
    for name, values in ENUMS.items():
        q = name if "." in name else f"public.{name}"
        emit(f"CREATE TYPE {q} AS ENUM ({', '.join(repr(v) for v in values)});")
        stats["types"] += 1
    emit("CREATE SEQUENCE billing.invoice_number_seq START 1000;")
    emit("CREATE SEQUENCE public.ticket_number_seq START 1 INCREMENT 1 CACHE 10;")
    stats["sequences"] += 2

    # Functions the triggers and views use.
    emit("""CREATE FUNCTION public.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;""")
    emit("""CREATE TABLE audit.change_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name text NOT NULL,
  operation text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
  row_data jsonb,
  changed_by text NOT NULL DEFAULT current_user,
  changed_at timestamptz NOT NULL DEFAULT now()
);""")
    emit("CREATE INDEX change_log_table_name_changed_at_idx ON audit.change_log (table_name, changed_at DESC);")
    stats["tables"] += 1
    stats["columns"] += 6
    stats["constraints"] += 2
    stats["indexes"] += 1
    emit("""CREATE FUNCTION audit.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit.change_log (table_name, operation, row_data)
  VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP,
          CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END);
  RETURN NULL;
END
$$;""")
    emit("""CREATE FUNCTION public.current_org_id() RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('app.org_id', true), '')::bigint
$$;""")
    emit("""CREATE FUNCTION public.slugify(value text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT trim(BOTH '-' FROM regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g'))
$$;""")
    emit("""CREATE FUNCTION billing.format_money(cents bigint, currency text DEFAULT 'USD') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT currency || ' ' || to_char(cents / 100.0, 'FM999999990.00')
$$;""")
    emit("""CREATE FUNCTION billing.next_invoice_number() RETURNS text LANGUAGE sql AS $$
  SELECT 'INV-' || lpad(nextval('billing.invoice_number_seq')::text, 8, '0')
$$;""")
    stats["functions"] += 6

    # The core: organizations, users, memberships.
    tables = []
    org = Table("public", "organizations", "core")
    org.columns = [["id", "bigint", None, True], ["name", "text", None, True],
                   ["slug", "text", None, True], ["plan", "public.plan_tier", "'free'", True],
                   ["settings", "jsonb", "'{}'::jsonb", True],
                   ["billing_email", "text", None, False],
                   ["created_at", "timestamptz", "now()", True],
                   ["updated_at", "timestamptz", "now()", True]]
    emit("""CREATE TABLE public.organizations (
  id bigint GENERATED BY DEFAULT AS IDENTITY,
  name text NOT NULL,
  slug text NOT NULL,
  plan public.plan_tier NOT NULL DEFAULT 'free',
  settings jsonb NOT NULL DEFAULT '{}'::jsonb,
  billing_email text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT organizations_pkey PRIMARY KEY (id),
  CONSTRAINT organizations_slug_key UNIQUE (slug),
  CONSTRAINT organizations_slug_check CHECK (slug = public.slugify(slug))
);""")
    org.used |= {"id", "name", "slug", "plan", "created_at", "updated_at"}
    users = Table("public", "users", "core")
    users.columns = [["id", "bigint", None, True], ["email", "text", None, True],
                     ["display_name", "text", None, False],
                     ["password_hash", "text", None, False],
                     ["locale", "varchar(16)", "'en'", True],
                     ["last_login_at", "timestamptz", None, False],
                     ["is_staff", "boolean", "false", True],
                     ["created_at", "timestamptz", "now()", True],
                     ["updated_at", "timestamptz", "now()", True]]
    emit("""CREATE TABLE public.users (
  id bigint GENERATED BY DEFAULT AS IDENTITY,
  email text NOT NULL,
  display_name text,
  password_hash text,
  locale varchar(16) NOT NULL DEFAULT 'en',
  last_login_at timestamptz,
  is_staff boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_pkey PRIMARY KEY (id),
  CONSTRAINT users_email_check CHECK (position('@' IN email) > 1)
);""")
    emit("CREATE UNIQUE INDEX users_email_lower_key ON public.users (lower(email));")
    users.used |= {"id", "email", "display_name", "created_at", "updated_at", "last_login_at"}
    mem = Table("public", "memberships", "core")
    mem.columns = [["organization_id", "bigint", None, True], ["user_id", "bigint", None, True],
                   ["role", "public.member_role", "'member'", True],
                   ["invited_by", "bigint", None, False],
                   ["created_at", "timestamptz", "now()", True],
                   ["updated_at", "timestamptz", "now()", True]]
    emit("""CREATE TABLE public.memberships (
  organization_id bigint NOT NULL,
  user_id bigint NOT NULL,
  role public.member_role NOT NULL DEFAULT 'member',
  invited_by bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT memberships_pkey PRIMARY KEY (organization_id, user_id),
  CONSTRAINT memberships_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations (id) ON DELETE CASCADE,
  CONSTRAINT memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT memberships_invited_by_fkey FOREIGN KEY (invited_by) REFERENCES public.users (id) ON DELETE SET NULL
);""")
    emit("CREATE INDEX memberships_user_id_idx ON public.memberships (user_id);")
    mem.used |= {"organization_id", "user_id", "role", "invited_by"}
    org.referenced = users.referenced = True
    for t in (org, users, mem):
        emit(f"CREATE TRIGGER {t.name}_set_updated_at BEFORE UPDATE ON {t.q} "
             "FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();")
        t.has_updated_at_trigger = True
    tables += [org, users, mem]
    stats["tables"] += 3
    stats["columns"] += 8 + 9 + 6
    stats["constraints"] += 3 + 2 + 4
    stats["indexes"] += 2
    stats["triggers"] += 3

    # The modules.
    for module, schema, entities in MODULES[:module_count]:
        module_tables = []
        for entity in entities:
            name = entity if schema != "public" else f"{module}_{entity}"
            t = Table(schema, name, module)
            lines = []
            constraints = []
            roll = rnd.random()
            if roll < 0.6:
                t.pk_type = "bigint"
                lines.append("id bigint GENERATED BY DEFAULT AS IDENTITY")
            elif roll < 0.8:
                t.pk_type = "bigint"
                lines.append("id bigserial")
                stats["sequences"] += 1
            else:
                t.pk_type = "uuid"
                lines.append("id uuid NOT NULL DEFAULT gen_random_uuid()")
            t.columns.append(["id", t.pk_type, None, True])
            t.used.add("id")
            constraints.append(f"CONSTRAINT {name}_pkey PRIMARY KEY (id)")
            fks = []  # (column, target table, on delete)
            if rnd.random() < 0.9:
                fks.append(("organization_id", org, "CASCADE", True))
            if module_tables and rnd.random() < 0.6:
                parent = rnd.choice(module_tables[-4:])
                col = parent.name.split("_", 1)[-1] if schema == "public" else parent.name
                col = col.rstrip("s") + "_id"
                fks.append((col, parent, "CASCADE", rnd.random() < 0.7))
            if rnd.random() < 0.35:
                fks.append((rnd.choice(["created_by", "assigned_to", "owner_id"]), users,
                            "SET NULL", False))
            for col, target, on_delete, not_null in fks:
                lines.append(f"{col} {target.pk_type}{' NOT NULL' if not_null else ''}")
                t.columns.append([col, target.pk_type, None, not_null])
                t.used.add(col)
                target.referenced = True
                constraints.append(f"CONSTRAINT {name}_{col}_fkey FOREIGN KEY ({col}) "
                                   f"REFERENCES {target.q} (id) ON DELETE {on_delete}")
            lines.append("name text NOT NULL")
            t.columns.append(["name", "text", None, True])
            want = rnd.randint(8, 12) - len(t.columns) - 2  # created_at, updated_at
            for cname, ctype, default, not_null, check in rnd.sample(POOL, max(want, 1)):
                line = f"{cname} {ctype}"
                if default is not None:
                    line += f" DEFAULT {default.format()}"
                if not_null:
                    line += " NOT NULL"
                lines.append(line)
                t.columns.append([cname, ctype, default and default.format(), not_null])
                if check and rnd.random() < 0.6:
                    constraints.append(f"CONSTRAINT {name}_{cname}_check CHECK ({check.format(col=cname)})")
                    t.used.add(cname)
            lines.append("created_at timestamptz NOT NULL DEFAULT now()")
            lines.append("updated_at timestamptz NOT NULL DEFAULT now()")
            t.columns += [["created_at", "timestamptz", "now()", True],
                          ["updated_at", "timestamptz", "now()", True]]
            names = [c[0] for c in t.columns]
            if "external_ref" in names and "organization_id" in names and rnd.random() < 0.7:
                constraints.append(f"CONSTRAINT {name}_org_external_ref_key UNIQUE (organization_id, external_ref)")
                t.used |= {"organization_id", "external_ref"}
            elif "organization_id" in names and rnd.random() < 0.4:
                constraints.append(f"CONSTRAINT {name}_org_name_key UNIQUE (organization_id, name)")
                t.used.add("name")
            emit(f"CREATE TABLE {t.q} (\n  " + ",\n  ".join(lines + constraints) + "\n);")
            stats["tables"] += 1
            stats["columns"] += len(t.columns)
            stats["constraints"] += len(constraints)
            # Indexes: every foreign key (but the organization's when a unique key leads with it),
            # then some of the usual others.
            for col, _, _, _ in fks:
                idx = f"{name}_{col}_idx"
                emit(f"CREATE INDEX {idx} ON {t.q} ({col});")
                t.indexes.append(idx)
            if rnd.random() < 0.4:
                idx = f"{name}_created_at_idx"
                emit(f"CREATE INDEX {idx} ON {t.q} (created_at DESC);")
                t.indexes.append(idx)
                t.used.add("created_at")
            if "deleted_at" in names and rnd.random() < 0.7:
                idx = f"{name}_live_idx"
                keys = "organization_id, name" if "organization_id" in names else "name"
                emit(f"CREATE INDEX {idx} ON {t.q} ({keys}) WHERE deleted_at IS NULL;")
                t.indexes.append(idx)
                t.used |= {"deleted_at", "name"}
            if "metadata" in names and rnd.random() < 0.3:
                idx = f"{name}_metadata_idx"
                emit(f"CREATE INDEX {idx} ON {t.q} USING gin (metadata jsonb_path_ops);")
                t.indexes.append(idx)
                t.used.add("metadata")
            if "email" in names and rnd.random() < 0.5:
                idx = f"{name}_email_lower_idx"
                emit(f"CREATE INDEX {idx} ON {t.q} (lower(email));")
                t.indexes.append(idx)
                t.used.add("email")
            if "status" in names and rnd.random() < 0.4:
                idx = f"{name}_status_idx"
                emit(f"CREATE INDEX {idx} ON {t.q} (status) WHERE status <> 'archived';")
                t.indexes.append(idx)
                t.used.add("status")
            stats["indexes"] += len(t.indexes)
            if rnd.random() < 0.5:
                emit(f"CREATE TRIGGER {name}_set_updated_at BEFORE UPDATE ON {t.q} "
                     "FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();")
                t.has_updated_at_trigger = True
                stats["triggers"] += 1
            if rnd.random() < 0.12:
                emit(f"CREATE TRIGGER {name}_audit AFTER INSERT OR UPDATE OR DELETE ON {t.q} "
                     "FOR EACH ROW EXECUTE FUNCTION audit.log_change();")
                stats["triggers"] += 1
            if "organization_id" in names and rnd.random() < 0.18:
                emit(f"ALTER TABLE {t.q} ENABLE ROW LEVEL SECURITY;")
                emit(f"CREATE POLICY {name}_tenant ON {t.q} USING (organization_id = public.current_org_id());")
                stats["policies"] += 1
            if rnd.random() < 0.25:
                emit(f"COMMENT ON TABLE {t.q} IS '{entity.replace('_', ' ').capitalize()} of the {module} module';")
            module_tables.append(t)
            tables.append(t)
        # One view per module over its first table with the organization's name, and one more
        # over a table with a status or soft delete.
        first = module_tables[0]
        fcols = [c[0] for c in first.columns]
        if "organization_id" in fcols:
            emit(f"""CREATE VIEW public.{module}_{first.name.split('_', 1)[-1]}_overview AS
  SELECT x.id, x.name, o.name AS organization_name, x.created_at
  FROM {first.q} x JOIN public.organizations o ON o.id = x.organization_id;""")
            first.used |= {"id", "name", "organization_id", "created_at"}
        else:
            emit(f"""CREATE VIEW public.{module}_{first.name.split('_', 1)[-1]}_overview AS
  SELECT x.id, x.name, x.created_at FROM {first.q} x;""")
            first.used |= {"id", "name", "created_at"}
        first.in_view = True
        stats["views"] += 1
        for t in module_tables[1:]:
            tcols = [c[0] for c in t.columns]
            if "deleted_at" in tcols or "status" in tcols:
                where = "x.deleted_at IS NULL" if "deleted_at" in tcols else "x.status <> 'archived'"
                emit(f"""CREATE VIEW public.{t.name if t.schema == 'public' else module + '_' + t.name}_live AS
  SELECT x.id, x.name, x.updated_at FROM {t.q} x WHERE {where};""")
                t.used |= {"id", "name", "updated_at", "deleted_at" if "deleted_at" in tcols else "status"}
                t.in_view = True
                stats["views"] += 1
                break
        # A per-module SQL function counting the first table's rows of an organization.
        if "organization_id" in fcols:
            emit(f"""CREATE FUNCTION public.{module}_count(org bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT count(*) FROM {first.q} WHERE organization_id = org
$$;""")
            stats["functions"] += 1

    # Reporting: two materialized views with an index each, and a cross-module view.
    emit("""CREATE MATERIALIZED VIEW public.organization_member_counts AS
  SELECT o.id AS organization_id, o.name, count(m.user_id) AS members
  FROM public.organizations o LEFT JOIN public.memberships m ON m.organization_id = o.id
  GROUP BY o.id, o.name;""")
    emit("CREATE UNIQUE INDEX organization_member_counts_key ON public.organization_member_counts (organization_id);")
    emit("""CREATE MATERIALIZED VIEW public.user_last_seen AS
  SELECT u.id AS user_id, u.email, u.last_login_at FROM public.users u WHERE u.last_login_at IS NOT NULL;""")
    emit("CREATE INDEX user_last_seen_last_login_at_idx ON public.user_last_seen (last_login_at DESC);")
    emit("""CREATE VIEW public.organization_summary AS
  SELECT o.id, o.name, o.plan, o.created_at, (SELECT count(*) FROM public.memberships m WHERE m.organization_id = o.id) AS members
  FROM public.organizations o;""")
    emit("""CREATE VIEW public.active_users AS
  SELECT u.id, u.email, u.display_name FROM public.users u
  WHERE u.last_login_at > now() - interval '30 days';""")
    stats["views"] += 4
    stats["indexes"] += 2
    return out, tables, stats, rnd


def free_columns(t):
    """Columns nothing else depends on: safe to drop or retype with a plain ALTER."""
    skip = {"id", "name", "created_at", "updated_at"}
    return [c for c in t.columns if c[0] not in t.used and c[0] not in skip]


def changes(tables, rnd):
    """About 35 changes from schema A to B, one statement (or a few) each."""
    out = ["-- From schema A to B, for bench/schema.sh, generated by bench/schema/gen_schema.py."]
    n = 0
    modules = [t for t in tables if t.module != "core"]
    pick = rnd.sample(modules, len(modules))  # a shuffled copy; each change takes its own table

    def take(pred):
        for i, t in enumerate(pick):
            if pred(t):
                return pick.pop(i)
        raise SystemExit("gen_schema.py: no table fits a change; use more modules")

    # Added columns: nullable, NOT NULL with a default, an enum, a foreign key.
    for col in ["archived_at timestamptz",
                "revision integer DEFAULT 1 NOT NULL",
                "source_system text",
                "review_priority public.priority_level DEFAULT 'normal' NOT NULL",
                "external_url text",
                "approved_by bigint REFERENCES public.users (id) ON DELETE SET NULL"]:
        t = take(lambda t: True)
        out.append(f"ALTER TABLE {t.q} ADD COLUMN {col};")
        n += 1
    # Dropped columns.
    for _ in range(4):
        t = take(lambda t: free_columns(t))
        c = rnd.choice(free_columns(t))
        out.append(f"ALTER TABLE {t.q} DROP COLUMN {c[0]};")
        t.columns.remove(c)
        n += 1
    # Retyped columns.
    retypes = {"integer": "bigint", "varchar(64)": "varchar(128)", "numeric(12,2)": "numeric(14,2)",
               "varchar(200)": "text", "double precision": "numeric(10,4)"}
    done = 0
    for t in list(pick):
        if done == 4:
            break
        cands = [c for c in free_columns(t) if c[1] in retypes]
        if cands:
            c = cands[0]
            using = f" USING {c[0]}::{retypes[c[1]]}" if c[1] == "double precision" else ""
            out.append(f"ALTER TABLE {t.q} ALTER COLUMN {c[0]} TYPE {retypes[c[1]]}{using};")
            pick.remove(t)
            done += 1
            n += 1
    # Defaults: changed, added, dropped.
    t = take(lambda t: t.col("currency"))
    out.append(f"ALTER TABLE {t.q} ALTER COLUMN currency SET DEFAULT 'EUR';")
    t = take(lambda t: t.col("sort_order"))
    out.append(f"ALTER TABLE {t.q} ALTER COLUMN sort_order SET DEFAULT 100;")
    t = take(lambda t: t.col("is_active"))
    out.append(f"ALTER TABLE {t.q} ALTER COLUMN is_active SET DEFAULT false;")
    t = take(lambda t: t.col("due_on"))
    out.append(f"ALTER TABLE {t.q} ALTER COLUMN due_on SET DEFAULT CURRENT_DATE + 30;")
    n += 4
    # NOT NULL set and dropped.
    t = take(lambda t: any(c[0] == "description" for c in t.columns))
    out.append(f"ALTER TABLE {t.q} ALTER COLUMN description SET DEFAULT '', ALTER COLUMN description SET NOT NULL;")
    t = take(lambda t: any(c[0] == "quantity" and c[0] not in t.used for c in t.columns))
    out.append(f"ALTER TABLE {t.q} ALTER COLUMN quantity DROP NOT NULL;")
    n += 2
    # Indexes created (a plain one, a multi-column one, a partial one, a unique one) and one dropped.
    t = take(lambda t: t.col("due_on"))
    out.append(f"CREATE INDEX {t.name}_due_on_idx ON {t.q} (due_on);")
    t = take(lambda t: t.col("organization_id") and t.col("status"))
    out.append(f"CREATE INDEX {t.name}_org_status_idx ON {t.q} (organization_id, status, created_at DESC);")
    t = take(lambda t: t.col("starts_at"))
    out.append(f"CREATE INDEX {t.name}_upcoming_idx ON {t.q} (starts_at) WHERE starts_at IS NOT NULL;")
    t = take(lambda t: t.col("external_ref") and "external_ref" not in t.used)
    out.append(f"CREATE UNIQUE INDEX {t.name}_external_ref_key ON {t.q} (external_ref);")
    t = take(lambda t: any(i.endswith("_created_at_idx") for i in t.indexes))
    out.append(f"DROP INDEX {t.schema}.{t.name}_created_at_idx;")
    n += 5
    # A new check constraint.
    t = take(lambda t: t.col("score"))
    out.append(f"ALTER TABLE {t.q} ADD CONSTRAINT {t.name}_score_range CHECK (score BETWEEN 0 AND 100);")
    n += 1
    # A new table, with a new enum, its keys and an index.
    out.append("CREATE TYPE public.export_format AS ENUM ('csv', 'json', 'parquet');")
    out.append("""CREATE TABLE public.data_exports (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  organization_id bigint NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
  requested_by bigint REFERENCES public.users (id) ON DELETE SET NULL,
  format public.export_format NOT NULL DEFAULT 'csv',
  row_count bigint,
  finished_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);""")
    out.append("CREATE INDEX data_exports_organization_id_idx ON public.data_exports (organization_id, created_at DESC);")
    n += 2
    # A dropped table: one nothing references and no view reads.
    t = take(lambda t: not t.referenced and not t.in_view)
    out.append(f"DROP TABLE {t.q};")
    n += 1
    # Views redefined: one gains a column, one filters differently.
    out.append("""CREATE OR REPLACE VIEW public.organization_summary AS
  SELECT o.id, o.name, o.plan, o.created_at, (SELECT count(*) FROM public.memberships m WHERE m.organization_id = o.id) AS members,
    o.updated_at
  FROM public.organizations o;""")
    out.append("""CREATE OR REPLACE VIEW public.active_users AS
  SELECT u.id, u.email, u.display_name FROM public.users u
  WHERE u.last_login_at > now() - interval '14 days' AND NOT u.is_staff;""")
    n += 2
    # An enum value.
    out.append("ALTER TYPE public.record_status ADD VALUE 'deleted' AFTER 'archived';")
    n += 1
    # A function changed and a trigger, a policy and a comment added.
    out.append("""CREATE OR REPLACE FUNCTION public.slugify(value text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT left(trim(BOTH '-' FROM regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g')), 80)
$$;""")
    t = take(lambda t: not t.has_updated_at_trigger)
    out.append(f"CREATE TRIGGER {t.name}_set_updated_at BEFORE UPDATE ON {t.q} "
               "FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();")
    out.append("ALTER TABLE public.memberships ENABLE ROW LEVEL SECURITY;")
    out.append("CREATE POLICY memberships_tenant ON public.memberships USING (organization_id = public.current_org_id());")
    out.append("COMMENT ON TABLE public.users IS 'People who sign in; one row per email address';")
    n += 4
    return out, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--modules", type=int, default=len(MODULES),
                    help=f"modules of 10 tables each (at most {len(MODULES)})")
    args = ap.parse_args()
    module_count = max(2, min(args.modules, len(MODULES)))
    a, tables, stats, rnd = generate(args.seed, module_count)
    b, n = changes(tables, rnd)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "a.sql"), "w") as f:
        f.write("\n".join(a) + "\n")
    with open(os.path.join(args.out, "changes.sql"), "w") as f:
        f.write("\n".join(b) + "\n")
    total = sum(stats.values()) + 3  # and the schemas public, billing, audit
    print(f"schema A: {stats['tables']} tables, {stats['columns']} columns, "
          f"{stats['constraints']} constraints, {stats['indexes']} indexes, "
          f"{stats['triggers']} triggers, {stats['policies']} policies, {stats['views']} views, "
          f"{stats['functions']} functions, {stats['types']} enums, "
          f"{stats['sequences']} sequences (about {total} objects); B: {n} changes")


if __name__ == "__main__":
    main()
