#!/usr/bin/env bash
# Prisma <-> tend interop check: `prisma migrate` and `tend migrate` take turns on one
# database, and each must accept what the other wrote in _prisma_migrations.
#
# Usage: bench/prisma-interop/run.sh
#
# Needs: cargo, node (>= 18.18) with npm, psql and pg_dump, PostgreSQL server binaries
# (tend dev start finds them). Uses the npm registry once, for `npm ci`.
# Everything it makes lives in bench/prisma-interop/work/ (kept after the run for
# inspection: logs/, history/ with _prisma_migrations after each step, dumps/).
# Exit status: 0 when every scenario passes, 1 otherwise, 2 when setup fails.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TEND="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tend"
SRC_MIGRATIONS="$ROOT/examples/saas/prisma/migrations"
WORK="$HERE/work"
PRISMA_JS="$HERE/node_modules/prisma/build/index.js"

# Nothing from the caller's environment may pick the database or the layout.
unset DATABASE_URL DIRECT_URL SHADOW_DATABASE_URL PRISMA_SCHEMA_ENGINE_BINARY
for v in $(env | sed -n 's/^\(TEND_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export NO_COLOR=1 PRISMA_HIDE_UPDATE_MESSAGE=1 CHECKPOINT_DISABLE=1 PRISMA_DISABLE_WARNINGS=1

say() { printf '%s\n' "$*"; }
die() { say "setup failed: $*" >&2; exit 2; }

# --------------------------------------------------------------------------- setup

say "== building tend"
(cd "$ROOT" && cargo build -q -p tend) || die "cargo build -p tend"
[ -x "$TEND" ] || die "no tend binary at $TEND"
"$TEND" --version

say "== installing Prisma (npm ci without install scripts, which would try to download native engines)"
if [ ! -f "$PRISMA_JS" ] || ! cmp -s "$HERE/package-lock.json" "$HERE/node_modules/.interop-lock.json"; then
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci"
  cp "$HERE/package-lock.json" "$HERE/node_modules/.interop-lock.json"
fi
node "$HERE/patch-prisma.cjs" || die "patching prisma (see patch-prisma.cjs)"
PRISMA_VERSION=$(node -p "require('$HERE/node_modules/prisma/package.json').version")
ADAPTER_VERSION=$(node -p "require('$HERE/node_modules/@prisma/adapter-pg/package.json').version")
PG_VERSION=$(node -p "require('$HERE/node_modules/pg/package.json').version")
say "prisma $PRISMA_VERSION, @prisma/adapter-pg $ADAPTER_VERSION, pg $PG_VERSION, node $(node --version)"

# A previous run may have left its cluster running: destroy it before wiping the folder.
if [ -d "$WORK/cluster/.tend" ]; then (cd "$WORK/cluster" && "$TEND" -q dev destroy --yes) >/dev/null 2>&1; fi
rm -rf "$WORK"
mkdir -p "$WORK/cluster" "$WORK/logs" "$WORK/history" "$WORK/dumps"
: >"$WORK/cluster/tend.toml" # so that tend finds no other tend.toml above

cleanup() {
  (cd "$WORK/cluster" && "$TEND" -q dev destroy --yes) >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "== starting a throwaway cluster"
APP_URL=$(cd "$WORK/cluster" && "$TEND" dev start 2>"$WORK/logs/dev-start.err" | grep -o 'postgresql://[^ ]*' | tail -n1)
[ -n "$APP_URL" ] || { cat "$WORK/logs/dev-start.err" >&2; die "tend dev start printed no URL"; }
BASE_URL=${APP_URL%/*}
ADMIN_URL=$BASE_URL/postgres
SERVER_VERSION=$(psql "$ADMIN_URL" -XAtc 'show server_version') || die "cannot reach $ADMIN_URL"
say "cluster at $BASE_URL (PostgreSQL $SERVER_VERSION)"

mapfile -t ALL < <(cd "$SRC_MIGRATIONS" && ls -d */ | tr -d / | sort)
[ "${#ALL[@]}" -eq 6 ] || die "expected 6 migrations in $SRC_MIGRATIONS, found ${#ALL[@]}"
FIRST=("${ALL[@]:0:3}")
REST=("${ALL[@]:3}")
M7=20240815100000_task_labels

# The 7th migration: first a broken version (creates the index before the column it
# indexes, so it fails on its first statement and leaves nothing behind with either
# tool), then the fixed one.
write_m7() { # DIR broken|fixed
  local d="$1/prisma/migrations/$M7"
  mkdir -p "$d"
  if [ "$2" = broken ]; then
    cat >"$d/migration.sql" <<'SQL'
-- CreateIndex
CREATE INDEX "tasks_labels_idx" ON "tasks" USING GIN ("labels");

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "labels" TEXT[] DEFAULT ARRAY[]::TEXT[];
SQL
  else
    cat >"$d/migration.sql" <<'SQL'
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "labels" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- CreateIndex
CREATE INDEX "tasks_labels_idx" ON "tasks" USING GIN ("labels");
SQL
  fi
}

# --------------------------------------------------------------------------- helpers

SCENARIO=""
SCEN_FAILS=0
STEP=0
SUMMARY=()
TOTAL_FAILS=0

begin() { # ID "description"
  SCENARIO=$1; SCEN_FAILS=0; STEP=0
  mkdir -p "$WORK/logs/$SCENARIO"
  say ""
  say "== scenario $1: $2"
}
end() {
  if [ "$SCEN_FAILS" -eq 0 ]; then
    SUMMARY+=("PASS  $SCENARIO")
  else
    SUMMARY+=("FAIL  $SCENARIO ($SCEN_FAILS failed checks)")
    TOTAL_FAILS=$((TOTAL_FAILS + 1))
  fi
  say "${SUMMARY[-1]}"
}
ok() { say "  ok    $*"; }
bad() { say "  FAIL  $*"; SCEN_FAILS=$((SCEN_FAILS + 1)); }

newdb() { # NAME -> prints URL
  PGOPTIONS="-c client_min_messages=warning" psql "$ADMIN_URL" -XqAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$1\"" -c "CREATE DATABASE \"$1\"" >/dev/null || die "create database $1"
  printf '%s/%s' "$BASE_URL" "$1"
}

# A project dir holding the first N migrations, set up for both tools.
project() { # DIR N
  local dir=$1 n=$2 i
  mkdir -p "$dir/prisma/migrations"
  cp "$HERE/prisma.config.ts" "$dir/prisma.config.ts"
  cp "$HERE/schema.prisma" "$dir/prisma/schema.prisma"
  cp "$SRC_MIGRATIONS/migration_lock.toml" "$dir/prisma/migrations/"
  printf '[migrate]\nformat = "prisma"\ndir = "prisma/migrations"\n' >"$dir/tend.toml"
  for ((i = 0; i < n; i++)); do cp -r "$SRC_MIGRATIONS/${ALL[$i]}" "$dir/prisma/migrations/"; done
}
add_rest() { # DIR
  local m
  for m in "${REST[@]}"; do cp -r "$SRC_MIGRATIONS/$m" "$1/prisma/migrations/"; done
}

# run TOOL DIR URL ARGS... : runs the tool in DIR against URL; output in a log file.
# Sets OUT (the log's path) and RC.
run() {
  local tool=$1 dir=$2 url=$3; shift 3
  STEP=$((STEP + 1))
  OUT=$(printf '%s/logs/%s/%02d-%s-%s.log' "$WORK" "$SCENARIO" "$STEP" "$tool" "$(echo "$*" | tr -c 'a-zA-Z0-9_\n-' '_' | cut -c1-60)")
  {
    echo "\$ cd $dir && DATABASE_URL=$url $tool $*"
    case $tool in
      prisma) (cd "$dir" && DATABASE_URL=$url node "$PRISMA_JS" "$@") 2>&1 ;;
      tend) (cd "$dir" && DATABASE_URL=$url "$TEND" --no-color "$@") 2>&1 ;;
    esac
    echo "[exit $?]"
  } >"$OUT"
  RC=$(sed -n 's/^\[exit \([0-9]*\)\]$/\1/p' "$OUT" | tail -n1)
}
show_out() { sed 's/^/        | /' "$OUT" | tail -n 25; }

# expect RC-WANT TOOL DIR URL ARGS... ; RC-WANT is 0 or "nonzero"
expect() {
  local want=$1; shift
  local what="$1 $(echo "${@:4}")"
  run "$@"
  if { [ "$want" = 0 ] && [ "$RC" = 0 ]; } || { [ "$want" = nonzero ] && [ "$RC" != 0 ]; }; then
    ok "$what  (exit $RC)"
    return 0
  fi
  bad "$what  (exit $RC, wanted $want)"
  show_out
  return 1
}
# output_has "PATTERN" "description": the last command's output matches PATTERN (grep -E)
output_has() {
  if grep -Eq -- "$1" "$OUT"; then ok "  output: $2"; else bad "  output lacks: $2  (/$1/)"; show_out; fi
}

snap() { # URL LABEL : save _prisma_migrations
  local f="$WORK/history/$SCENARIO.txt"
  {
    echo "---- $SCENARIO: after $2"
    psql "$1" -XqP pager=off -c "SELECT migration_name, id, checksum, started_at, finished_at, rolled_back_at,
             applied_steps_count, CASE WHEN logs IS NULL THEN '(null)' ELSE replace(logs, E'\n', '\\n') END AS logs
        FROM _prisma_migrations ORDER BY started_at, migration_name"
  } >>"$f" 2>&1
}

prisma_up_to_date() { # DIR URL
  expect 0 prisma "$1" "$2" migrate status && output_has "Database schema is up to date" "Prisma: database schema is up to date"
}
# After `resolve --rolled-back`, Prisma must no longer see a failed migration. (Its status
# then says "up to date" although the migration is not applied: Prisma's
# diagnoseMigrationHistory counts any row with the name, rolled back or not, as present.
# That is Prisma's own behaviour, the same whichever tool wrote the row.)
prisma_after_rollback() { # DIR URL
  run prisma "$1" "$2" migrate status
  if grep -q "have failed" "$OUT" || ! grep -q "migrations found" "$OUT"; then
    bad "prisma migrate status after the rollback (exit $RC) still reports a failed migration or did not run"; show_out
  else
    ok "prisma migrate status  (exit $RC): no failed migration; says: $(grep -E 'up to date|not yet been applied' "$OUT" | head -n1)"
  fi
}
tend_up_to_date() { # DIR URL
  expect 0 tend "$1" "$2" migrate status && output_has " 0 pending, 0 failed, 0 modified" "tend: nothing pending, failed or modified"
}

# Every row that counts as applied must carry the SHA-256 of its file, as Prisma computes it;
# and exactly one applied row per migration on disk.
check_history() { # DIR URL
  local dir=$1 url=$2 m sum rows bad_rows=0
  for m in $(cd "$dir/prisma/migrations" && ls -d */ | tr -d /); do
    sum=$(sha256sum "$dir/prisma/migrations/$m/migration.sql" | cut -d' ' -f1)
    rows=$(psql "$url" -XAt -c "SELECT checksum FROM _prisma_migrations WHERE migration_name = '$m'
             AND finished_at IS NOT NULL AND rolled_back_at IS NULL")
    if [ "$rows" != "$sum" ]; then bad "  history: $m has applied rows [$rows], want one with checksum $sum"; bad_rows=1; fi
  done
  [ "$bad_rows" -eq 0 ] && ok "  history: one applied row per migration, checksum = sha256 of the file"
}

dump() { # URL NAME
  pg_dump -s -d "$1" | grep -Ev '^\\(restrict|unrestrict) ' >"$WORK/dumps/$2.sql"
}
same_schema() { # NAME REFNAME
  dump "$3" "$1"
  if diff -u "$WORK/dumps/$2.sql" "$WORK/dumps/$1.sql" >"$WORK/dumps/$1.diff"; then
    ok "pg_dump -s of $1 equals $2"
    rm -f "$WORK/dumps/$1.diff"
  else
    bad "pg_dump -s of $1 differs from $2 (see work/dumps/$1.diff)"
    head -n 40 "$WORK/dumps/$1.diff" | sed 's/^/        | /'
  fi
}

# --------------------------------------------------------------------------- references

begin ref6 "tend alone applies the 6 migrations (reference schema); Prisma checks"
D=$WORK/ref6; project "$D" 6; U=$(newdb ref6)
expect 0 tend "$D" "$U" migrate deploy; snap "$U" "tend deploy (6)"
tend_up_to_date "$D" "$U"
prisma_up_to_date "$D" "$U"
check_history "$D" "$U"
dump "$U" ref6
end

begin ref7 "tend alone applies the 6 + the fixed 7th (reference for scenario C)"
D=$WORK/ref7; project "$D" 6; write_m7 "$D" fixed; U=$(newdb ref7)
expect 0 tend "$D" "$U" migrate deploy; snap "$U" "tend deploy (7)"
tend_up_to_date "$D" "$U"
check_history "$D" "$U"
dump "$U" ref7
end

begin prisma-alone "Prisma alone applies the 6; tend checks"
D=$WORK/prisma-alone; project "$D" 6; U=$(newdb prisma_alone)
expect 0 prisma "$D" "$U" migrate deploy; snap "$U" "prisma deploy (6)"
prisma_up_to_date "$D" "$U"
tend_up_to_date "$D" "$U"
expect 0 tend "$D" "$U" migrate deploy && output_has "0 migrations applied, 6 already applied" "tend: nothing to apply"
check_history "$D" "$U"
same_schema prisma-alone ref6 "$U"
end

# --------------------------------------------------------------------------- A and B

begin A "Prisma deploys the first 3, tend deploys the other 3"
D=$WORK/A; project "$D" 3; U=$(newdb scenario_a)
expect 0 prisma "$D" "$U" migrate deploy; snap "$U" "prisma deploy (first 3)"
add_rest "$D"
expect nonzero tend "$D" "$U" migrate status && output_has "3 applied, 3 pending" "tend sees Prisma's 3 as applied, 3 pending"
expect 0 tend "$D" "$U" migrate deploy && output_has "3 migrations? applied, 3 already applied" "tend applied 3, 3 already applied"
snap "$U" "tend deploy (last 3)"
prisma_up_to_date "$D" "$U"
tend_up_to_date "$D" "$U"
expect 0 prisma "$D" "$U" migrate deploy && output_has "No pending migrations to apply" "Prisma: no pending migrations"
check_history "$D" "$U"
same_schema A ref6 "$U"
end

begin B "tend deploys the first 3, Prisma deploys the other 3"
D=$WORK/B; project "$D" 3; U=$(newdb scenario_b)
expect 0 tend "$D" "$U" migrate deploy; snap "$U" "tend deploy (first 3)"
add_rest "$D"
expect nonzero prisma "$D" "$U" migrate status && output_has "not yet been applied" "Prisma sees tend's 3 as applied, the others not yet"
expect 0 prisma "$D" "$U" migrate deploy && output_has "${REST[2]}" "Prisma applied the last 3"
if grep -q "${FIRST[0]}" "$OUT"; then bad "  Prisma re-applied ${FIRST[0]}"; fi
snap "$U" "prisma deploy (last 3)"
prisma_up_to_date "$D" "$U"
tend_up_to_date "$D" "$U"
expect 0 tend "$D" "$U" migrate deploy && output_has "0 migrations applied, 6 already applied" "tend: nothing to apply"
check_history "$D" "$U"
same_schema B ref6 "$U"
end

# --------------------------------------------------------------------------- C

begin C1 "failure recorded by tend, seen and resolved by Prisma, fixed and deployed by tend"
D=$WORK/C1; project "$D" 6; U=$(newdb scenario_c1)
expect 0 prisma "$D" "$U" migrate deploy; snap "$U" "prisma deploy (6)"
write_m7 "$D" broken
expect nonzero tend "$D" "$U" migrate deploy && output_has "$M7" "tend names the failed migration"
snap "$U" "tend deploy (broken 7th) failed"
expect nonzero prisma "$D" "$U" migrate status && output_has "failed" "Prisma status reports a failed migration" && output_has "$M7" "Prisma status names $M7"
expect nonzero prisma "$D" "$U" migrate deploy && output_has "P3009" "Prisma deploy refuses with P3009" && output_has "$M7" "P3009 names $M7"
expect nonzero tend "$D" "$U" migrate status && output_has "failed" "tend status reports it failed"
expect 0 prisma "$D" "$U" migrate resolve --rolled-back "$M7" && output_has "marked as rolled back" "Prisma marked it rolled back"
snap "$U" "prisma resolve --rolled-back"
expect nonzero tend "$D" "$U" migrate status && output_has "0 failed, 0 modified, 1 rolled back" "tend shows it rolled back, none failed"
prisma_after_rollback "$D" "$U"
write_m7 "$D" fixed
expect 0 tend "$D" "$U" migrate deploy && output_has "1 migration applied" "tend applied the fixed 7th"
snap "$U" "tend deploy (fixed 7th)"
prisma_up_to_date "$D" "$U"
tend_up_to_date "$D" "$U"
expect 0 prisma "$D" "$U" migrate deploy && output_has "No pending migrations to apply" "Prisma: no pending migrations"
check_history "$D" "$U"
same_schema C1 ref7 "$U"
end

begin C2 "failure recorded by Prisma, seen and resolved by tend, fixed and deployed by tend"
D=$WORK/C2; project "$D" 6; U=$(newdb scenario_c2)
expect 0 tend "$D" "$U" migrate deploy; snap "$U" "tend deploy (6)"
write_m7 "$D" broken
expect nonzero prisma "$D" "$U" migrate deploy && output_has "$M7" "Prisma names the failed migration"
snap "$U" "prisma deploy (broken 7th) failed"
expect nonzero tend "$D" "$U" migrate status && output_has "$M7 +failed" "tend status shows $M7 failed"
expect nonzero tend "$D" "$U" migrate deploy && output_has "resolve" "tend deploy refuses and names tend migrate resolve"
expect 0 tend "$D" "$U" migrate resolve --rolled-back "$M7"; snap "$U" "tend resolve --rolled-back"
expect nonzero tend "$D" "$U" migrate status && output_has "0 failed, 0 modified, 1 rolled back" "tend shows it rolled back, none failed"
prisma_after_rollback "$D" "$U"
write_m7 "$D" fixed
expect 0 tend "$D" "$U" migrate deploy && output_has "1 migration applied" "tend applied the fixed 7th"
snap "$U" "tend deploy (fixed 7th)"
prisma_up_to_date "$D" "$U"
tend_up_to_date "$D" "$U"
expect 0 prisma "$D" "$U" migrate deploy && output_has "No pending migrations to apply" "Prisma: no pending migrations"
check_history "$D" "$U"
same_schema C2 ref7 "$U"
end

# --------------------------------------------------------------------------- L

# Both tools serialize deploys with PostgreSQL's advisory lock 72707369 (Prisma's key).
# One tool runs a slow migration (pg_sleep) while the other deploys the same folder at the
# same time: the second must wait for the lock, then find the migration applied.
slow_project() { # DIR
  mkdir -p "$1/prisma/migrations/20240101000000_slow"
  cp "$HERE/prisma.config.ts" "$1/prisma.config.ts"
  cp "$HERE/schema.prisma" "$1/prisma/schema.prisma"
  cp "$SRC_MIGRATIONS/migration_lock.toml" "$1/prisma/migrations/"
  printf '[migrate]\nformat = "prisma"\ndir = "prisma/migrations"\n' >"$1/tend.toml"
  printf -- '-- Takes a few seconds, holding the deploy lock.\nSELECT pg_sleep(6);\nCREATE TABLE "slow_marker" ("id" INTEGER NOT NULL PRIMARY KEY);\n' \
    >"$1/prisma/migrations/20240101000000_slow/migration.sql"
}
wait_for_sleep() { # DBNAME: until a pg_sleep runs in it (at most 30 s)
  local i
  for ((i = 0; i < 300; i++)); do
    [ "$(psql "$ADMIN_URL" -XAtc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$1' AND query LIKE '%pg_sleep(6)%' AND pid <> pg_backend_pid()")" != 0 ] && return 0
    sleep 0.1
  done
  return 1
}
bg_deploy() { # TOOL DIR URL LOG : deploy in the background; sets BG_PID
  case $1 in
    prisma) (cd "$2" && DATABASE_URL=$3 node "$PRISMA_JS" migrate deploy; echo "[exit $?]") >"$4" 2>&1 & ;;
    tend) (cd "$2" && DATABASE_URL=$3 "$TEND" --no-color migrate deploy; echo "[exit $?]") >"$4" 2>&1 & ;;
  esac
  BG_PID=$!
}
concurrent() { # FIRST SECOND DBNAME
  local first=$1 second=$2 db=$3 dir="$WORK/L-$1-first" url log1 log2 pid1 pid2 waited=0 i rows
  slow_project "$dir"; url=$(newdb "$db")
  log1=$WORK/logs/$SCENARIO/$db-1-$first-deploy.log
  log2=$WORK/logs/$SCENARIO/$db-2-$second-deploy.log
  bg_deploy "$first" "$dir" "$url" "$log1"; pid1=$BG_PID
  if ! wait_for_sleep "$db"; then bad "$first never started the slow migration"; wait "$pid1"; return; fi
  bg_deploy "$second" "$dir" "$url" "$log2"; pid2=$BG_PID
  # While the first one's migration runs, is a session blocked on the advisory lock?
  for ((i = 0; i < 60; i++)); do
    if [ "$(psql "$ADMIN_URL" -XAtc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'
          AND wait_event_type = 'Lock' AND wait_event = 'advisory'")" != 0 ]; then waited=1; break; fi
    sleep 0.1
  done
  wait "$pid1"; wait "$pid2"
  OUT=$log1
  if grep -qx '\[exit 0\]' "$log1"; then ok "$first migrate deploy (slow migration)  (exit 0)"; else bad "$first migrate deploy (slow migration) failed"; show_out; fi
  OUT=$log2
  if grep -qx '\[exit 0\]' "$log2"; then ok "$second migrate deploy (started during it)  (exit 0)"; else bad "$second migrate deploy (started during it) failed"; show_out; fi
  case $second in
    prisma) # Prisma blocks in pg_advisory_lock(72707369)
      [ "$waited" = 1 ] && ok "  Prisma's deploy was seen blocked on the advisory lock while tend's migration ran" \
        || bad "  Prisma's deploy was never seen blocked on the advisory lock"
      output_has "No pending migrations to apply" "Prisma then found it applied" ;;
    tend) # tend polls pg_try_advisory_lock(72707369) and says how long it waited
      output_has "Took the migration lock after waiting" "tend waited for Prisma's lock"
      output_has "0 migrations applied, 1 already applied" "tend then found it applied" ;;
  esac
  rows=$(psql "$url" -XAtc "SELECT count(*) FROM _prisma_migrations")
  [ "$rows" = 1 ] && ok "  one row in _prisma_migrations: applied once" || bad "  $rows rows in _prisma_migrations, want 1"
  snap "$url" "$first deploy (slow) + concurrent $second deploy"
}

begin L "concurrent deploys: each tool waits for the other's advisory lock"
concurrent tend prisma lock_tend_first
concurrent prisma tend lock_prisma_first
end

# --------------------------------------------------------------------------- summary

say ""
say "== summary (prisma $PRISMA_VERSION via WebAssembly schema engine + @prisma/adapter-pg $ADAPTER_VERSION; tend $("$TEND" --version | awk '{print $2}'); PostgreSQL $SERVER_VERSION)"
printf '%s\n' "${SUMMARY[@]}"
say "logs: $WORK/logs, _prisma_migrations after each step: $WORK/history"
say "$((${#SUMMARY[@]} - TOTAL_FAILS)) passed, $TOTAL_FAILS failed"
[ "$TOTAL_FAILS" -eq 0 ]
