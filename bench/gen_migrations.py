#!/usr/bin/env python3
"""Generates a deterministic, Prisma-style migration history for bench/migrate.sh.

The history is synthetic but modelled on the migration folders of real SaaS apps built with
Prisma: a large init migration, then a long tail of small changes (new columns, indexes,
foreign keys, enum values), with occasional hand-written SQL (plpgsql trigger functions,
data fixes) and single-statement `CREATE INDEX CONCURRENTLY` files. Every file holds 1-20
statements, written the way `prisma migrate dev` writes them (`-- CreateTable`,
`ALTER TABLE "X" ADD COLUMN     "y" ...`, and so on).

The same SQL is written in four layouts:

  OUT/prisma/prisma/migrations/<ts>_<name>/migration.sql   tend (and Prisma) layout
  OUT/dbmate/db/migrations/<ts>_<name>.sql                 dbmate (`-- migrate:up`)
  OUT/sqlx/<ts>_<name>.sql                                 sqlx (`-- no-transaction`)
  OUT/segments.sql                                         every statement, one psql session

segments.sql is the baseline for tend's per-migration overhead: the files concatenated in
order inside as few transactions as PostgreSQL allows. A transaction is closed before each
CREATE INDEX CONCURRENTLY file (which cannot run in a transaction block and so runs on its
own) and after each file that adds an enum value (a later file may use the new value, which
PostgreSQL refuses within the transaction that added it).

Usage: gen_migrations.py --count N --out DIR [--seed S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys

NOUNS = [
    "User", "Account", "Session", "VerificationToken", "Organization", "Membership",
    "Invitation", "Team", "Project", "Task", "Comment", "Attachment", "Subscription", "Plan",
    "Invoice", "Payment", "ApiKey", "Webhook", "WebhookDelivery", "AuditLog", "Notification",
    "Tag", "Label", "FeatureFlag", "Integration", "Document", "Folder", "Report", "Dashboard",
    "Widget", "Customer", "Contact", "Deal", "Pipeline", "Stage", "Activity", "Note",
    "Product", "Price", "Coupon", "Discount", "UsageRecord", "Event", "Job", "Domain",
    "EmailTemplate", "Workspace", "Channel", "Message", "Thread", "Reaction", "File",
    "Export", "Import", "Role", "Permission", "Policy", "Region", "Address", "Currency",
]
PREFIXES = ["Billing", "Team", "Project", "User", "Org", "Email", "Sso", "Usage", "Audit",
            "Slack", "Stripe", "Github", "Calendar", "Form", "Survey", "Workflow"]

# (column name, Prisma's SQL type, nullable default, default clause or None)
COLUMNS = [
    ("title", "TEXT", False, None),
    ("description", "TEXT", True, None),
    ("slug", "TEXT", False, None),
    ("externalId", "TEXT", True, None),
    ("metadata", "JSONB", True, None),
    ("amount", "INTEGER", False, "0"),
    ("currency", "TEXT", False, "'usd'"),
    ("archivedAt", "TIMESTAMP(3)", True, None),
    ("deletedAt", "TIMESTAMP(3)", True, None),
    ("isActive", "BOOLEAN", False, "true"),
    ("isPublic", "BOOLEAN", False, "false"),
    ("position", "INTEGER", False, "0"),
    ("priority", "INTEGER", False, "0"),
    ("url", "TEXT", True, None),
    ("color", "VARCHAR(7)", True, None),
    ("settings", "JSONB", False, "'{}'"),
    ("score", "DOUBLE PRECISION", True, None),
    ("price", "DECIMAL(65,30)", True, None),
    ("quantity", "INTEGER", False, "1"),
    ("expiresAt", "TIMESTAMP(3)", True, None),
    ("lastSeenAt", "TIMESTAMP(3)", True, None),
    ("timezone", "TEXT", False, "'UTC'"),
    ("locale", "TEXT", True, None),
    ("email", "TEXT", True, None),
    ("phone", "TEXT", True, None),
    ("avatarUrl", "TEXT", True, None),
    ("bytes", "BIGINT", True, None),
    ("tags", "TEXT[]", True, None),
    ("stripeCustomerId", "TEXT", True, None),
    ("version", "INTEGER", False, "1"),
    ("notes", "TEXT", True, None),
    ("sortOrder", "INTEGER", True, None),
    ("code", "VARCHAR(32)", True, None),
    ("hash", "TEXT", True, None),
    ("ipAddress", "TEXT", True, None),
    ("userAgent", "TEXT", True, None),
    ("startsAt", "TIMESTAMP(3)", True, None),
    ("endsAt", "TIMESTAMP(3)", True, None),
    ("retries", "INTEGER", False, "0"),
    ("payload", "JSONB", True, None),
]

ENUM_NAMES = ["Status", "Visibility", "Kind", "Tier", "Frequency", "Channel", "Level",
              "Source", "Outcome", "Mode"]
ENUM_VALUES = ["ACTIVE", "INACTIVE", "PENDING", "ARCHIVED", "DRAFT", "PUBLISHED", "FAILED",
               "SUCCEEDED", "CANCELED", "TRIALING", "PAST_DUE", "PAUSED", "DAILY", "WEEKLY",
               "MONTHLY", "LOW", "MEDIUM", "HIGH", "URGENT", "EMAIL", "SMS", "PUSH", "WEB",
               "API", "MANUAL", "IMPORTED", "PRIVATE", "PUBLIC", "INTERNAL", "EXTERNAL"]


def q(name: str) -> str:
    return f'"{name}"'


def snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Table:
    def __init__(self, name: str):
        self.name = name
        self.columns: dict[str, str] = {}  # name -> type
        self.indexes: dict[str, list[str]] = {}  # name -> columns
        self.fks: dict[str, str] = {}  # constraint name -> column
        self.triggers = 0


class Schema:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.tables: dict[str, Table] = {}
        self.enums: dict[str, list[str]] = {}
        self.functions = 0
        self.used_names: set[str] = set()
        self.index_names: set[str] = set()  # every index name ever used, never reused

    def new_table_name(self) -> str:
        for noun in NOUNS:
            if noun not in self.used_names and noun not in self.enums:
                self.used_names.add(noun)
                return noun
        while True:
            name = self.rng.choice(PREFIXES) + self.rng.choice(NOUNS)
            if name not in self.used_names and name not in self.enums:
                self.used_names.add(name)
                return name

    def pick_table(self) -> Table:
        # Recent tables change more often, as in real histories.
        names = list(self.tables)
        weights = [1 + i for i in range(len(names))]
        return self.tables[self.rng.choices(names, weights)[0]]

    def new_column(self, table: Table) -> tuple[str, str, bool, str | None]:
        candidates = [c for c in COLUMNS if c[0] not in table.columns]
        if candidates:
            return self.rng.choice(candidates)
        n = len(table.columns)
        while f"field{n}" in table.columns:
            n += 1
        return (f"field{n}", "TEXT", True, None)


def column_sql(name: str, typ: str, nullable: bool, default: str | None) -> str:
    s = f"{q(name)} {typ}"
    if not nullable:
        s += " NOT NULL"
    if default is not None:
        s += f" DEFAULT {default}"
    return s


class Gen:
    """Each method returns a list of statements (each a string ending with ';', its Prisma
    comment included) and a short migration name."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.s = Schema(rng)

    # --- building blocks -------------------------------------------------------------
    def create_table(self, extra_cols: int | None = None) -> list[str]:
        rng, s = self.rng, self.s
        t = Table(s.new_table_name())
        stmts = []
        cols = [('"id" TEXT NOT NULL', "id", "TEXT")]
        n = extra_cols if extra_cols is not None else rng.randint(2, 9)
        for _ in range(n):
            name, typ, nullable, default = s.new_column(t)
            t.columns[name] = typ
            cols.append((column_sql(name, typ, nullable, default), name, typ))
        # A parent to belong to.
        parent = None
        if s.tables and rng.random() < 0.75:
            parent = s.pick_table()
            fk_col = parent.name[0].lower() + parent.name[1:] + "Id"
            t.columns[fk_col] = "TEXT"
            cols.append((f'{q(fk_col)} TEXT{"" if rng.random() < 0.3 else " NOT NULL"}',
                         fk_col, "TEXT"))
        # An enum column, sometimes with a new enum.
        if rng.random() < 0.3:
            enum = self.maybe_new_enum(stmts)
            col = enum[0].lower() + enum[1:]
            if col not in t.columns:
                t.columns[col] = enum
                first = s.enums[enum][0]
                cols.append((f"{q(col)} {q(enum)} NOT NULL DEFAULT '{first}'", col, enum))
        t.columns["id"] = "TEXT"
        t.columns["createdAt"] = "TIMESTAMP(3)"
        t.columns["updatedAt"] = "TIMESTAMP(3)"
        body = ",\n".join(f"    {c[0]}" for c in cols)
        body += ',\n    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP'
        body += ',\n    "updatedAt" TIMESTAMP(3) NOT NULL'
        body += f',\n\n    CONSTRAINT {q(t.name + "_pkey")} PRIMARY KEY ("id")'
        stmts.append(f"-- CreateTable\nCREATE TABLE {q(t.name)} (\n{body}\n);")
        s.tables[t.name] = t
        if "slug" in t.columns:
            stmts.append(self.index_sql(t, ["slug"], unique=True))
        if parent is not None:
            stmts.append(self.index_sql(t, [fk_col]))
            stmts.append(self.fk_sql(t, fk_col, parent))
        return stmts

    def maybe_new_enum(self, stmts: list[str]) -> str:
        rng, s = self.rng, self.s
        if s.enums and rng.random() < 0.4:
            return rng.choice(list(s.enums))
        base = rng.choice(ENUM_NAMES)
        prefix = rng.choice(list(s.tables) or NOUNS)
        name = prefix + base
        while name in s.enums or name in s.used_names:
            name = rng.choice(PREFIXES) + name
        values = rng.sample(ENUM_VALUES, rng.randint(2, 5))
        s.enums[name] = values
        vals = ", ".join(f"'{v}'" for v in values)
        stmts.append(f"-- CreateEnum\nCREATE TYPE {q(name)} AS ENUM ({vals});")
        return name

    def index_sql(self, t: Table, cols: list[str], unique: bool = False,
                  concurrently: bool = False) -> str:
        suffix = "key" if unique else "idx"
        name = f"{t.name}_{'_'.join(cols)}_{suffix}"
        if len(name) > 63:  # PostgreSQL's limit; Prisma truncates too.
            name = name[:55] + f"_{len(t.indexes)}_{suffix}"
        n = 0
        while name in self.s.index_names:
            n += 1
            name = name[:58] + f"_{n}"
        self.s.index_names.add(name)
        t.indexes[name] = cols
        kind = "UNIQUE INDEX" if unique else "INDEX"
        conc = " CONCURRENTLY" if concurrently else ""
        collist = ", ".join(q(c) for c in cols)
        return f"-- CreateIndex\nCREATE {kind}{conc} {q(name)} ON {q(t.name)}({collist});"

    def fk_sql(self, t: Table, col: str, parent: Table, on_delete: str | None = None) -> str:
        name = f"{t.name}_{col}_fkey"
        if name in t.fks:
            name = f"{t.name}_{col}_{len(t.fks)}_fkey"
        t.fks[name] = col
        on_delete = on_delete or self.rng.choice(["RESTRICT", "CASCADE", "CASCADE", "SET NULL"])
        return (f"-- AddForeignKey\nALTER TABLE {q(t.name)} ADD CONSTRAINT {q(name)} "
                f"FOREIGN KEY ({q(col)}) REFERENCES {q(parent.name)}(\"id\") "
                f"ON DELETE {on_delete} ON UPDATE CASCADE;")

    # --- migration kinds ---------------------------------------------------------------
    def init(self) -> tuple[str, list[str]]:
        stmts: list[str] = []
        # Prisma puts enums first, then tables, then indexes, then foreign keys.
        # Each table brings at most 5 statements: stop below 16 so the file stays <= 20.
        while len(stmts) < 13:
            stmts += self.create_table(self.rng.randint(3, 8))
        enums = [x for x in stmts if x.startswith("-- CreateEnum")]
        tables = [x for x in stmts if x.startswith("-- CreateTable")]
        idx = [x for x in stmts if x.startswith("-- CreateIndex")]
        fks = [x for x in stmts if x.startswith("-- AddForeignKey")]
        return "init", enums + tables + idx + fks

    def add_model(self) -> tuple[str, list[str]]:
        stmts = self.create_table()
        name = snake(list(self.s.tables)[-1])
        return f"add_{name}", stmts

    def add_columns(self) -> tuple[str, list[str]]:
        rng, s = self.rng, self.s
        t = s.pick_table()
        cols = []
        for _ in range(rng.choices([1, 2, 3, 4], [5, 3, 2, 1])[0]):
            name, typ, nullable, default = s.new_column(t)
            if name in t.columns:
                continue
            t.columns[name] = typ
            cols.append((name, column_sql(name, typ, nullable, default)))
        stmts = ["-- AlterTable\nALTER TABLE " + q(t.name) + " " +
                 ",\n".join(f"ADD COLUMN     {c[1]}" for c in cols) + ";"]
        if cols and rng.random() < 0.35:
            stmts.append(self.index_sql(t, [cols[0][0]], unique=cols[0][0] in ("slug", "code")))
        return f"add_{snake(cols[0][0]) if cols else 'field'}_to_{snake(t.name)}", stmts

    def add_relation(self) -> tuple[str, list[str]]:
        s = self.s
        t = s.pick_table()
        parent = s.pick_table()
        col = parent.name[0].lower() + parent.name[1:] + "Id"
        if col in t.columns:
            col = col[:-2] + "Ref" + str(len(t.columns)) + "Id"
        t.columns[col] = "TEXT"
        stmts = [f"-- AlterTable\nALTER TABLE {q(t.name)} ADD COLUMN     {q(col)} TEXT;",
                 self.index_sql(t, [col]),
                 self.fk_sql(t, col, parent, "SET NULL")]
        return f"{snake(t.name)}_belongs_to_{snake(parent.name)}", stmts

    def add_index(self) -> tuple[str, list[str]]:
        rng, s = self.rng, self.s
        stmts = []
        t = s.pick_table()
        for _ in range(rng.randint(1, 3)):
            cols = rng.sample(sorted(t.columns), min(len(t.columns), rng.choice([1, 1, 2])))
            stmts.append(self.index_sql(t, cols))
        return f"add_indexes_{snake(t.name)}", stmts

    def concurrent_index(self) -> tuple[str, list[str]]:
        # Hand-edited by the developer so the index builds without locking writes; Prisma
        # cannot run it in a transaction, so it is alone in its file.
        t = self.s.pick_table()
        col = self.rng.choice(sorted(t.columns))
        return (f"concurrent_index_{snake(t.name)}_{snake(col)}",
                [self.index_sql(t, [col], concurrently=True)])

    def enum_value(self) -> tuple[str, list[str]]:
        rng, s = self.rng, self.s
        if not s.enums:
            return self.add_columns()
        enum = rng.choice(list(s.enums))
        free = [v for v in ENUM_VALUES if v not in s.enums[enum]]
        if not free:
            return self.add_columns()
        new = rng.sample(free, min(len(free), rng.choice([1, 1, 1, 2, 3])))
        stmts = []
        header = ""
        if len(new) > 1:
            header = ("-- AlterEnum\n-- This migration adds more than one value to an enum.\n"
                      "-- With PostgreSQL versions 11 and earlier, this is not possible\n"
                      "-- in a single migration. This can be worked around by creating\n"
                      "-- multiple migrations, each migration adding only one value to\n"
                      "-- the enum.\n\n\n")
        for i, v in enumerate(new):
            s.enums[enum].append(v)
            lead = header if i == 0 and header else ("" if header else "-- AlterEnum\n")
            stmts.append(f"{lead}ALTER TYPE {q(enum)} ADD VALUE '{v}';")
        return f"add_{v.lower()}_to_{snake(enum)}", stmts

    def enum_column(self) -> tuple[str, list[str]]:
        stmts: list[str] = []
        enum = self.maybe_new_enum(stmts)
        t = self.s.pick_table()
        col = enum[0].lower() + enum[1:]
        if col in t.columns:
            col += str(len(t.columns))
        t.columns[col] = enum
        # An enum value may have been added by an earlier migration: use the newest as the
        # default, as a developer adding a state would.
        default = self.s.enums[enum][-1]
        stmts.append(f"-- AlterTable\nALTER TABLE {q(t.name)} ADD COLUMN     {q(col)} "
                     f"{q(enum)} NOT NULL DEFAULT '{default}';")
        return f"add_{snake(col)}_to_{snake(t.name)}", stmts

    def alter_columns(self) -> tuple[str, list[str]]:
        rng, s = self.rng, self.s
        t = s.pick_table()
        cands = [c for c, typ in t.columns.items()
                 if c not in ("id", "createdAt", "updatedAt") and not c.endswith("Id")]
        if not cands:
            return self.add_columns()
        parts = []
        for c in rng.sample(cands, min(len(cands), rng.randint(1, 3))):
            typ = t.columns[c]
            choice = rng.random()
            if typ == "TEXT" and choice < 0.3:
                parts.append(f"ALTER COLUMN {q(c)} SET DATA TYPE VARCHAR(255)")
                t.columns[c] = "VARCHAR(255)"
            elif choice < 0.6:
                parts.append(f"ALTER COLUMN {q(c)} DROP NOT NULL")
            elif typ in ("INTEGER", "BIGINT"):
                parts.append(f"ALTER COLUMN {q(c)} SET DEFAULT {rng.randint(0, 10)}")
            elif typ == "BOOLEAN":
                parts.append(f"ALTER COLUMN {q(c)} SET DEFAULT {rng.choice(['true', 'false'])}")
            else:
                parts.append(f"ALTER COLUMN {q(c)} DROP DEFAULT")
        stmts = ["-- AlterTable\nALTER TABLE " + q(t.name) + " " + ",\n".join(parts) + ";"]
        return f"alter_{snake(t.name)}", stmts

    def drop_column(self) -> tuple[str, list[str]]:
        rng, s = self.rng, self.s
        t = s.pick_table()
        cands = [c for c in t.columns
                 if c not in ("id", "createdAt", "updatedAt", "slug") and not c.endswith("Id")]
        if not cands:
            return self.add_columns()
        c = rng.choice(cands)
        del t.columns[c]
        # Indexes on the column go with it.
        t.indexes = {i: cols for i, cols in t.indexes.items() if c not in cols}
        warning = ("/*\n  Warnings:\n\n  - You are about to drop the column `" + c +
                   "` on the `" + t.name + "` table. All the data in the column will be lost.\n\n*/\n")
        stmts = [f"{warning}-- AlterTable\nALTER TABLE {q(t.name)} DROP COLUMN {q(c)};"]
        return f"remove_{snake(c)}_from_{snake(t.name)}", stmts

    def change_fk(self) -> tuple[str, list[str]]:
        s = self.s
        tables = [t for t in s.tables.values() if t.fks]
        if not tables:
            return self.add_relation()
        t = self.rng.choice(tables)
        name = self.rng.choice(sorted(t.fks))
        col = t.fks.pop(name)
        parent_name = None
        for p in s.tables:
            if col.lower().startswith(p.lower()) and len(p) > len(parent_name or ""):
                parent_name = p
        parent = s.tables.get(parent_name or "", None) or s.pick_table()
        stmts = [f"-- DropForeignKey\nALTER TABLE {q(t.name)} DROP CONSTRAINT {q(name)};",
                 self.fk_sql(t, col, parent, "CASCADE")]
        return f"cascade_{snake(t.name)}_{snake(col)}", stmts

    def drop_index(self) -> tuple[str, list[str]]:
        s = self.s
        tables = [t for t in s.tables.values() if any(i.endswith("_idx") for i in t.indexes)]
        if not tables:
            return self.add_index()
        t = self.rng.choice(tables)
        idx = self.rng.choice(sorted(i for i in t.indexes if i.endswith("_idx")))
        del t.indexes[idx]
        return f"drop_{snake(t.name)}_index", [f"-- DropIndex\nDROP INDEX {q(idx)};"]

    def trigger_function(self) -> tuple[str, list[str]]:
        # Hand-written SQL appended to a Prisma migration: a plpgsql function and triggers.
        s = self.s
        s.functions += 1
        fn = f"set_updated_at_{s.functions}"
        stmts = [(f"-- Custom SQL: keep \"updatedAt\" current\n"
                  f"CREATE OR REPLACE FUNCTION {fn}() RETURNS TRIGGER AS $$\n"
                  "BEGIN\n"
                  "  -- Only touch rows that really changed.\n"
                  "  IF ROW(NEW.*) IS DISTINCT FROM ROW(OLD.*) THEN\n"
                  "    NEW.\"updatedAt\" = now();\n"
                  "  END IF;\n"
                  "  RETURN NEW;\n"
                  "END;\n"
                  "$$ LANGUAGE plpgsql;")]
        for t in self.rng.sample(list(s.tables.values()), min(len(s.tables), self.rng.randint(1, 4))):
            t.triggers += 1
            trg = f"{t.name}_updated_at_{t.triggers}"
            stmts.append(f"CREATE TRIGGER {q(trg)} BEFORE UPDATE ON {q(t.name)} "
                         f"FOR EACH ROW EXECUTE FUNCTION {fn}();")
        return f"updated_at_triggers_{s.functions}", stmts

    def audit_function(self) -> tuple[str, list[str]]:
        s = self.s
        s.functions += 1
        fn = f"audit_row_{s.functions}"
        stmts = [(f"-- Custom SQL: a search helper\n"
                  f"CREATE OR REPLACE FUNCTION {fn}(input TEXT) RETURNS TEXT\n"
                  "LANGUAGE plpgsql IMMUTABLE AS $body$\n"
                  "DECLARE\n"
                  "  result TEXT := lower(trim(input));\n"
                  "BEGIN\n"
                  "  -- Semicolons inside the body; must not split here.\n"
                  "  result := regexp_replace(result, '[^a-z0-9]+', '-', 'g');\n"
                  "  RETURN result;\n"
                  "END;\n"
                  "$body$;")]
        return f"search_helper_{s.functions}", stmts

    def data_fix(self) -> tuple[str, list[str]]:
        rng, s = self.rng, self.s
        t = s.pick_table()
        stmts = []
        cands = [c for c, typ in t.columns.items() if typ == "TEXT" and c != "id"]
        col, typ, nullable, default = s.new_column(t)
        if col not in t.columns:
            t.columns[col] = typ
            stmts.append(f"-- AlterTable\nALTER TABLE {q(t.name)} ADD COLUMN     "
                         f"{column_sql(col, typ, True, None)};")
        if cands:
            src = rng.choice(cands)
            stmts.append(f"-- Backfill\nUPDATE {q(t.name)} SET {q(src)} = trim({q(src)}) "
                         f"WHERE {q(src)} <> trim({q(src)});")
        stmts.append(f"DELETE FROM {q(t.name)} WHERE \"createdAt\" < '2000-01-01';")
        return f"backfill_{snake(t.name)}", stmts

    def feature(self) -> tuple[str, list[str]]:
        # A feature branch merged at once: a new model and changes to older ones.
        stmts = self.create_table()
        name = snake(list(self.s.tables)[-1])
        # Each addition brings at most 3 statements: the file stays <= 20.
        while len(stmts) <= 17 and self.rng.random() < 0.7:
            _, more = self.rng.choice([self.add_columns, self.add_index, self.add_relation])()
            stmts += more
        return f"{name}_feature", stmts

    def next(self) -> tuple[str, list[str]]:
        kinds = [
            (self.add_columns, 24), (self.add_model, 12), (self.add_relation, 8),
            (self.add_index, 9), (self.alter_columns, 8), (self.enum_value, 6),
            (self.enum_column, 4), (self.drop_column, 5), (self.change_fk, 4),
            (self.drop_index, 3), (self.trigger_function, 3), (self.audit_function, 1),
            (self.data_fix, 4), (self.feature, 6), (self.concurrent_index, 3),
        ]
        fn = self.rng.choices([k[0] for k in kinds], [k[1] for k in kinds])[0]
        return fn()


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20240101)
    args = ap.parse_args()
    if args.count < 1:
        print("--count must be at least 1", file=sys.stderr)
        return 2

    rng = random.Random(args.seed)
    gen = Gen(rng)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    prisma_dir = os.path.join(args.out, "prisma", "prisma", "migrations")
    dbmate_dir = os.path.join(args.out, "dbmate", "db", "migrations")
    sqlx_dir = os.path.join(args.out, "sqlx")
    os.makedirs(prisma_dir)
    os.makedirs(dbmate_dir)
    os.makedirs(sqlx_dir)
    write(os.path.join(prisma_dir, "migration_lock.toml"),
          "# Please do not edit this file manually\n"
          "# It should be added in your version-control system (e.g., Git)\n"
          'provider = "postgresql"\n')

    when = dt.datetime(2021, 3, 1, 9, 0, 0)
    segments = ["-- Every migration of the history, in order, in one psql session.\n"]
    in_tx = False
    stats = {"files": 0, "statements": 0, "concurrent": 0, "plpgsql": 0, "enum_adds": 0}
    for i in range(args.count):
        name, stmts = gen.init() if i == 0 else gen.next()
        assert 1 <= len(stmts) <= 20, (name, len(stmts))
        when += dt.timedelta(minutes=rng.randint(20, 60 * 24 * 4))
        version = when.strftime("%Y%m%d%H%M%S")
        folder = f"{version}_{name}"
        sql = "\n\n".join(stmts) + "\n"
        concurrent = any(" CONCURRENTLY " in s for s in stmts)
        adds_enum = any("ADD VALUE" in s for s in stmts)
        stats["files"] += 1
        stats["statements"] += len(stmts)
        stats["concurrent"] += concurrent
        stats["plpgsql"] += any("plpgsql" in s for s in stmts)
        stats["enum_adds"] += adds_enum

        write(os.path.join(prisma_dir, folder, "migration.sql"), sql)
        up = "-- migrate:up transaction:false\n" if concurrent else "-- migrate:up\n"
        write(os.path.join(dbmate_dir, f"{folder}.sql"), up + sql + "\n-- migrate:down\n")
        write(os.path.join(sqlx_dir, f"{folder}.sql"),
              ("-- no-transaction\n" if concurrent else "") + sql)

        if concurrent:
            if in_tx:
                segments.append("COMMIT;\n")
                in_tx = False
            segments.append(f"-- {folder} (outside a transaction)\n{sql}")
            continue
        if not in_tx:
            segments.append("BEGIN;\n")
            in_tx = True
        segments.append(f"-- {folder}\n{sql}")
        if adds_enum:
            segments.append("COMMIT;\n")
            in_tx = False
    if in_tx:
        segments.append("COMMIT;\n")
    write(os.path.join(args.out, "segments.sql"), "\n".join(segments))
    stats["transactions"] = sum(1 for s in segments if s == "COMMIT;\n")
    print(" ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
