#!/usr/bin/env bash
# Benchmark: `tend migrate deploy` against its peers (a psql loop, dbmate, sqlx) on the same
# generated Prisma-style history, in one run, on a throwaway PostgreSQL 15 cluster with the
# durability defaults (fsync on). Also times `tend migrate status` on a larger applied history
# and estimates tend's per-migration overhead. Checks that every tool builds the same schema.
#
#   bench/migrate.sh [--count N] [--runs N] [--warmup N] [--status-count N]
#                    [--status-runs N] [--no-build] [--no-sqlx] [--no-fsync]
#
# --no-fsync runs the cluster with fsync, synchronous_commit and full_page_writes off: the
# disk's flush times (which drift by 2x between runs on some machines) are then out of the
# figures, which is what comparing two builds of tend needs; the default measures what users
# meet.
#
# Prints a results table and writes it to bench/.work/results.md. Timing is never asserted:
# the script fails only when a tool fails or a schema differs.
set -euo pipefail

COUNT=400          # migrations in the deploy history
RUNS=3             # timed runs per tool (fresh database each), median reported
WARMUP=1           # untimed rounds first (caches, first-connection costs), schema still checked
STATUS_COUNT=800   # migrations in the history `tend migrate status` reads
STATUS_RUNS=7      # timed `tend migrate status` runs, median reported
BUILD=1
SQLX=1
FSYNC=1

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --count) COUNT=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --status-count) STATUS_COUNT=$2; shift 2 ;;
        --status-runs) STATUS_RUNS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-sqlx) SQLX=0; shift ;;
        --no-fsync) FSYNC=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "migrate.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$COUNT" "$RUNS" "$STATUS_COUNT" "$STATUS_RUNS"; do
    case "$n" in ''|*[!0-9]*|0) echo "migrate.sh: counts must be positive integers" >&2; exit 2 ;; esac
done
case "$WARMUP" in ''|*[!0-9]*) echo "migrate.sh: --warmup takes a number" >&2; exit 2 ;; esac

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work
TOOLS=$BENCH/.tools
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=$PGBIN/psql
PG_DUMP=$PGBIN/pg_dump
# Settings from the caller's environment must not steer any tool elsewhere.
unset DIRECT_URL SHADOW_DATABASE_URL TEND_MIGRATE_FORMAT TEND_MIGRATIONS_DIR \
      TEND_MIGRATE_LOCK_TIMEOUT TEND_MIGRATE_STATEMENT_TIMEOUT TEND_MIGRATE_LOCK_WAIT \
      PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE \
      DATABASE_URL PSQLRC
export NO_COLOR=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

mkdir -p "$WORK" "$TOOLS"
LOGS=$WORK/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"

# --- tools ---------------------------------------------------------------------------------
[ -x "$PSQL" ] && [ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 binaries not found in $PGBIN (apt-get install postgresql-15, or set PGBIN)"
command -v python3 >/dev/null || die "python3 is needed to generate the history"

if [ "$BUILD" = 1 ]; then
    say "building tend (release)"
    (cd "$ROOT" && cargo build --release -p tend) >&2
fi
TEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/tend
[ -x "$TEND" ] || die "$TEND not found; run without --no-build"

DBMATE=$TOOLS/node_modules/.bin/dbmate
if ! "$DBMATE" --version >/dev/null 2>&1; then
    say "installing dbmate from npm into bench/.tools"
    command -v npm >/dev/null || die "npm is needed to install dbmate"
    npm install --prefix "$TOOLS" --no-audit --no-fund dbmate >&2
    "$DBMATE" --version >/dev/null || die "dbmate does not run: $DBMATE"
fi

SQLX_BIN=$TOOLS/bin/sqlx
if [ "$SQLX" = 1 ] && ! "$SQLX_BIN" --version >/dev/null 2>&1; then
    say "installing sqlx-cli with cargo into bench/.tools (a few minutes; --no-sqlx skips it)"
    if ! cargo install sqlx-cli --no-default-features --features postgres --locked \
            --root "$TOOLS" >&2; then
        echo "sqlx-cli did not install; sqlx is left out of this run" >&2
        SQLX=0
    fi
fi

# --- the histories --------------------------------------------------------------------------
say "generating $COUNT and $STATUS_COUNT migrations"
rm -rf "$WORK"/history-*
HIST=$WORK/history-$COUNT
SHIST=$WORK/history-$STATUS_COUNT
GEN_STATS=$(python3 "$BENCH/gen_migrations.py" --count "$COUNT" --out "$HIST")
echo "  $COUNT: $GEN_STATS" >&2
if [ "$SHIST" != "$HIST" ]; then
    python3 "$BENCH/gen_migrations.py" --count "$STATUS_COUNT" --out "$SHIST" >/dev/null
fi

# --- the cluster ----------------------------------------------------------------------------
# A throwaway PostgreSQL 15 cluster with the default durability settings (fsync on,
# synchronous_commit on, full_page_writes on). initdb and postgres refuse root: as root they
# run as the postgres user.
PGTMP=$(mktemp -d /tmp/tend-bench.XXXXXX)
PGDATA=$PGTMP/data
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
    local rc=$?
    if [ -f "$PGDATA/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PGTMP"
    [ "$rc" = 0 ] || echo "migrate.sh: failed (exit $rc); logs in $LOGS" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a postgres OS user for the server"
    chown postgres "$PGTMP"
fi
say "starting a PostgreSQL cluster in $PGTMP"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
    >"$LOGS/initdb.log" 2>&1 || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DURABLE=""
((FSYNC)) || DURABLE="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGTMP/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$PGTMP $DURABLE" \
    start >/dev/null || { cat "$PGTMP/postgres.log" >&2; die "the server did not start"; }

BASE=postgresql://postgres@127.0.0.1:$PORT
admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -At -d "$BASE/postgres" "$@"; }
SERVER_VERSION=$(admin -c 'SHOW server_version')
DURABILITY=$(admin -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
                         WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method')")
echo "  PostgreSQL $SERVER_VERSION on port $PORT; $DURABILITY" >&2

fresh_db() {
    admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$1\"" \
        -c "CREATE DATABASE \"$1\""
    # Start every timed run from a clean checkpoint, so no run pays for an earlier one's WAL.
    admin -c CHECKPOINT
}
drop_db() { admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$1\""; }

# --- the runners: each applies the history in $1 to the database URL $2 -----------------------
run_psql_loop() {
    local f
    for f in "$1"/prisma/prisma/migrations/*/migration.sql; do
        "$PSQL" -X -q -v ON_ERROR_STOP=1 -f "$f" "$2" || return 1
    done
}
run_psql_session() {
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -f "$1/segments.sql" "$2"
}
run_tend() {
    (cd "$1/prisma" && DATABASE_URL=$2 "$TEND" migrate deploy -q)
}
run_dbmate() {
    (cd "$1/dbmate" && "$DBMATE" --url "$2?sslmode=disable" --no-dump-schema up)
}
run_sqlx() {
    "$SQLX_BIN" migrate run --source "$1/sqlx" --database-url "$2"
}

# The schema a tool built, without the tools' own history tables and without pg_dump's
# per-run \restrict keys.
schema_of() {
    "$PG_DUMP" -s -d "$BASE/$1" --exclude-table=_prisma_migrations \
        --exclude-table=schema_migrations --exclude-table=_sqlx_migrations \
        | grep -v -e '^\\restrict ' -e '^\\unrestrict '
}

TIMES=$WORK/times.tsv
: >"$TIMES"
now() { echo "$EPOCHREALTIME"; }

# timed TOOL RUN HISTORY: fresh database, timed apply, schema check against the reference.
# A RUN starting with w is a warm-up: checked like the others, its time not kept.
timed() {
    local tool=$1 run=$2 hist=$3 db="bench_${1}_$2" log="$LOGS/$1-$2.log" t0 t1
    fresh_db "$db"
    t0=$(now)
    if ! "run_$tool" "$hist" "$BASE/$db" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "$tool failed on run $run (log: $log)"
    fi
    t1=$(now)
    local secs
    secs=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
    case "$run" in
        w*) printf '  %-13s warm-up %s: %8.3f s (not counted)\n' "$tool" "${run#w}" "$secs" >&2 ;;
        *) printf '%s\t%s\t%s\n' "$tool" "$run" "$secs" >>"$TIMES"
           printf '  %-13s run %s: %8.3f s\n' "$tool" "$run" "$secs" >&2 ;;
    esac
    schema_of "$db" >"$WORK/schema-$tool-$run.sql"
    if [ -s "$WORK/schema-reference.sql" ]; then
        if ! diff -u "$WORK/schema-reference.sql" "$WORK/schema-$tool-$run.sql" >"$WORK/schema-$tool-$run.diff"; then
            head -n 40 "$WORK/schema-$tool-$run.diff" >&2
            die "the schema $tool built (run $run) differs from the psql loop's; full diff in $WORK/schema-$tool-$run.diff"
        fi
    else
        cp "$WORK/schema-$tool-$run.sql" "$WORK/schema-reference.sql"
    fi
    drop_db "$db"
}

PEERS=(psql_loop tend dbmate)
[ "$SQLX" = 1 ] && PEERS+=(sqlx)
PEERS+=(psql_session)

say "deploying $COUNT migrations: ${PEERS[*]}; $WARMUP warm-up and $RUNS timed rounds, interleaved"
rm -f "$WORK"/schema-*.sql "$WORK"/schema-*.diff
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROUNDS=()
for w in $(seq 1 "$WARMUP"); do ROUNDS+=("w$w"); done
ROUNDS+=($(seq 1 "$RUNS"))
for run in "${ROUNDS[@]}"; do
    for tool in "${PEERS[@]}"; do
        timed "$tool" "$run" "$HIST"
    done
done
TABLES=$(grep -c '^CREATE TABLE' "$WORK/schema-reference.sql" || true)
INDEXES=$(grep -c '^CREATE .*INDEX' "$WORK/schema-reference.sql" || true)
echo "  every tool built the same schema ($TABLES tables, $INDEXES indexes)" >&2

# What the psql loop pays before any migration runs: a psql process and a connection per file.
say "starting psql $COUNT times with -c 'SELECT 1', for scale"
t0=$(now)
for _ in $(seq 1 "$COUNT"); do "$PSQL" -X -q -c 'SELECT 1' "$BASE/postgres" >/dev/null; done
t1=$(now)
printf 'psql_startup\t1\t%s\n' "$(python3 -c "print(f'{$t1 - $t0:.3f}')")" >>"$TIMES"

# `tend migrate status` on a larger history, fully applied by tend.
say "tend migrate status on $STATUS_COUNT applied migrations, $STATUS_RUNS runs"
SDB=bench_status
fresh_db "$SDB"
t0=$(now)
(cd "$SHIST/prisma" && DATABASE_URL=$BASE/$SDB "$TEND" migrate deploy -q) >"$LOGS/status-deploy.log" 2>&1 \
    || { tail -n 30 "$LOGS/status-deploy.log" >&2; die "tend could not deploy the $STATUS_COUNT-migration history"; }
t1=$(now)
printf 'status_deploy\t1\t%s\n' "$(python3 -c "print(f'{$t1 - $t0:.3f}')")" >>"$TIMES"
for run in $(seq 1 "$STATUS_RUNS"); do
    t0=$(now)
    if ! (cd "$SHIST/prisma" && DATABASE_URL=$BASE/$SDB "$TEND" migrate status) >"$LOGS/status-$run.log" 2>&1; then
        tail -n 30 "$LOGS/status-$run.log" >&2
        die "tend migrate status did not exit 0 on a fully applied history"
    fi
    t1=$(now)
    printf 'status\t%s\t%s\n' "$run" "$(python3 -c "print(f'{$t1 - $t0:.4f}')")" >>"$TIMES"
done
grep -q "^$STATUS_COUNT applied, 0 pending" "$LOGS/status-1.log" \
    || die "tend migrate status does not report $STATUS_COUNT applied (see $LOGS/status-1.log)"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ---------------------------------------------------------------------------------
VERSIONS="tend $("$TEND" --version | awk '{print $NF}'), psql $("$PSQL" --version | awk '{print $3}'), dbmate $("$DBMATE" --version | awk '{print $NF}')"
[ "$SQLX" = 1 ] && VERSIONS+=", sqlx-cli $("$SQLX_BIN" --version | awk '{print $NF}')"
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
export COUNT RUNS STATUS_COUNT STATUS_RUNS SERVER_VERSION DURABILITY VERSIONS GEN_STATS CPU
export TABLES INDEXES SQLX WARMUP LOAD_BEFORE LOAD_AFTER
python3 "$BENCH/report.py" "$TIMES" "$(nproc)" >"$WORK/results.md"
cat "$WORK/results.md"
echo >&2
echo "results: $WORK/results.md; per-run logs: $LOGS" >&2
