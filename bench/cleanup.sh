#!/usr/bin/env bash
# Benchmark: `tend cleanup` (issue 15) against the usual hand-written purge, a loop of
# `DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE <old> LIMIT n)`, each batch
# its own transaction, while pgbench (TPC-B, -c 4 -j 2) runs on the same database. Each method
# gets a fresh copy of the same data (pgbench's tables plus `events`, half of it older than 30
# days): purge rows/s, the longest batch, pgbench's throughput and latency while the purge runs
# against a run with no purge, and whether exactly the old rows went.
#
#   bench/cleanup.sh [--runs N] [--quick] [--events N] [--scale S] [--pgbench-seconds S]
#                    [--delay S] [--peer-batches "5000 1000 10000"] [--paced-peer B:MS]
#                    [--no-build] [--tend BIN]
#
# --runs N             rounds (default 3, 1 with --quick); each runs every phase once, in turn
# --quick              a functional check: 200,000 events, scale 5, 15 s of pgbench
# --events N           rows in `events` (default 2,000,000), half of them to purge
# --scale S            pgbench -i scale (default 20)
# --pgbench-seconds S  pgbench -T of every phase (default 90); it must outlast the purges
# --delay S            seconds into pgbench when the purge starts (default 5)
# --peer-batches LIST  the hand-written loop's batch sizes (default "5000 1000 10000"); the
#                      first is the peer the ratios are against
# --paced-peer B:MS    a reference row: the same loop in batches of B with pg_sleep(MS ms) after
#                      each COMMIT (default 5000:200, about 22,000 rows/s here); none: leave it out
# --no-build           do not build tend (target/release/tend must exist)
# --tend BIN           use this tend binary (no build)
#
# Throwaway PostgreSQL 15 cluster (fsync on, shared_buffers=512MB, max_wal_size=2GB,
# autovacuum on, pg_stat_statements with track=all). TEND_CLEANUP_BATCH_BUDGET and
# TEND_CLEANUP_MAX_BATCH pass through to tend (and show in the report); other TEND_* and PG*
# variables are unset. Prints a Markdown report and writes it to bench/.work/cleanup/results.md,
# one line per phase to bench/.work/cleanup/phases.tsv, every command's output to
# bench/.work/cleanup/logs/. Timing is never asserted: the script fails when a command fails
# or a purge leaves old rows or takes recent ones (a failed tend phase is reported, the
# peer's phases still run, and the exit status is 1).
set -euo pipefail

RUNS=""
QUICK=0
EVENTS=""
SCALE=""
PGBENCH_SECONDS=""
DELAY=5
PEER_BATCHES="5000 1000 10000"
PACED="5000:200"
BUILD=1
TEND_BIN=""
usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --events) EVENTS=$2; shift 2 ;;
        --scale) SCALE=$2; shift 2 ;;
        --pgbench-seconds) PGBENCH_SECONDS=$2; shift 2 ;;
        --delay) DELAY=$2; shift 2 ;;
        --peer-batches) PEER_BATCHES=$2; shift 2 ;;
        --paced-peer) PACED=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --tend) TEND_BIN=$2; BUILD=0; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cleanup.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    RUNS=${RUNS:-1}; EVENTS=${EVENTS:-200000}; SCALE=${SCALE:-5}; PGBENCH_SECONDS=${PGBENCH_SECONDS:-15}
else
    RUNS=${RUNS:-3}; EVENTS=${EVENTS:-2000000}; SCALE=${SCALE:-20}; PGBENCH_SECONDS=${PGBENCH_SECONDS:-90}
fi
positive() { case "$2" in ''|*[!0-9]*|0) echo "cleanup.sh: $1 takes a positive integer" >&2; exit 2 ;; esac; }
positive --runs "$RUNS"; positive --events "$EVENTS"; positive --scale "$SCALE"
positive --pgbench-seconds "$PGBENCH_SECONDS"; positive --delay "$DELAY"
[ "$EVENTS" -ge 1000 ] || { echo "cleanup.sh: --events takes at least 1000" >&2; exit 2; }
[ "$DELAY" -lt "$PGBENCH_SECONDS" ] || { echo "cleanup.sh: --delay must be shorter than --pgbench-seconds" >&2; exit 2; }
read -r -a PEERS <<<"$PEER_BATCHES"
[ "${#PEERS[@]}" -ge 1 ] || { echo "cleanup.sh: --peer-batches takes at least one size" >&2; exit 2; }
for n in "${PEERS[@]}"; do positive --peer-batches "$n"; done
PACED_LABEL=""
if [ "$PACED" != none ]; then
    positive --paced-peer "${PACED%%:*}"; positive --paced-peer "${PACED#*:}"
    PACED_LABEL="paced-${PACED%%:*}-${PACED#*:}"
fi

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUTDIR=$BENCH/.work/cleanup
LOGS=$OUTDIR/logs
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
# Settings from the caller's environment must not steer any tool elsewhere; tend's two purge
# settings may (they are for trying budgets), and the report names them.
unset PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC DATABASE_URL
while read -r v; do
    case "$v" in TEND_CLEANUP_BATCH_BUDGET|TEND_CLEANUP_MAX_BATCH) ;; *) unset "$v" ;; esac
done < <(env | sed -n 's/^\(TEND_[A-Z0-9_]*\)=.*/\1/p')
TEND_OVERRIDES=$(env | grep -E '^TEND_CLEANUP_(BATCH_BUDGET|MAX_BATCH)=' | sort | tr '\n' ' ' || true)
export NO_COLOR=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

for tool in initdb pg_ctl psql pgbench; do
    [ -x "$PGBIN/$tool" ] || die "$PGBIN/$tool not found (apt-get install postgresql-15, or set PGBIN)"
done
command -v python3 >/dev/null || die "python3 is needed"
[ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1 || die "running as root needs a postgres OS user for the server"

# --- tend -------------------------------------------------------------------------------------
if [ -n "$TEND_BIN" ]; then
    TEND=$(cd "$(dirname "$TEND_BIN")" && pwd)/$(basename "$TEND_BIN")
else
    if [ "$BUILD" = 1 ]; then
        say "building tend (release)"
        (cd "$ROOT" && cargo build --release -q -p tend) >&2 || die "cargo build failed"
    fi
    TEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/tend
fi
[ -x "$TEND" ] || die "$TEND not found; run without --no-build, or name a binary with --tend"
"$TEND" cleanup --help >/dev/null 2>&1 || die "$TEND has no cleanup command (an older build?)"
TEND_VERSION=$("$TEND" --version 2>/dev/null | head -1 || echo "?")
if [ -n "$TEND_BIN" ]; then
    TEND_FROM="the binary $TEND (--tend)"
else
    TEND_FROM="commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo "?")"
    dirty=$(cd "$ROOT" && git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)
    [ "$dirty" = 0 ] || TEND_FROM="$TEND_FROM with $dirty changed or new files under crates/ or Cargo.*"
fi

mkdir -p "$OUTDIR"
rm -rf "$LOGS" "$OUTDIR"/tmp.* "$OUTDIR/pgbench"
mkdir -p "$LOGS" "$OUTDIR/pgbench"
PHASES=$OUTDIR/phases.tsv   # run label key=value...
: >"$PHASES"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)

WORK=$(mktemp -d "$OUTDIR/tmp.XXXXXX")
chmod 755 "$WORK"
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
PGDATA=$WORK/data
SOCK=$WORK/sock
PGBENCH_PID=""
cleanup() {
    local rc=$?
    [ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null || true
    if [ -f "$PGDATA/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    cp "$WORK/postgres.log" "$LOGS/" 2>/dev/null || true
    rm -rf "$WORK"
    [ "$rc" = 0 ] || echo "cleanup.sh: failed (exit $rc); logs in $LOGS" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$SOCK"
[ "$(id -u)" = 0 ] && chown postgres "$SOCK"

# --- the cluster ------------------------------------------------------------------------------
say "starting a throwaway PostgreSQL cluster in $WORK"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
    >"$LOGS/initdb.log" 2>&1 || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
cat >>"$PGDATA/postgresql.conf" <<'EOF'

# bench/cleanup.sh: the same for every phase
shared_buffers = 512MB
max_wal_size = 2GB
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
# counted per phase from the log: statements over the 200 ms budget (top-level only, so tend's
# batches but not the statements inside the peer's DO block, which times its own), checkpoints,
# autovacuums
log_min_duration_statement = 200
log_checkpoints = on
log_autovacuum_min_duration = 0
EOF
PORT=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/postgres.log" -w -t 60 \
    -o "-c port=$PORT -c listen_addresses='' -c unix_socket_directories=$SOCK" \
    start >/dev/null || { cat "$WORK/postgres.log" >&2; die "the server did not start"; }
url_of() { echo "postgresql://postgres@/$1?host=$SOCK&port=$PORT"; }
ADMIN=$(url_of postgres)
TEMPLATE=$(url_of bench_template)
RUN_DB=bench_run
URL=$(url_of "$RUN_DB")
PGVERSION=$(q "$ADMIN" -c "SHOW server_version")
SETTINGS=$(q "$ADMIN" -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
                           WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers',
                                          'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'wal_compression',
                                          'effective_io_concurrency', 'work_mem')")
echo "  PostgreSQL $PGVERSION on port $PORT; $SETTINGS" >&2

# --- the data ---------------------------------------------------------------------------------
# events: appended in time order (so the heap is in time order too, as an app's log table is):
# rows 1..OLD spread over 90 to 31 days ago, the rest over the last 29 days. The day between
# keeps the counts stable however long the benchmark runs.
OLD_ROWS=$((EVENTS / 2))
RECENT_ROWS=$((EVENTS - OLD_ROWS))
say "generating the template database: pgbench -i -s $SCALE, then $EVENTS events ($OLD_ROWS older than 30 days)"
q "$ADMIN" -c "CREATE DATABASE bench_template"
"$PGBIN/pgbench" -i -q -s "$SCALE" "$TEMPLATE" >"$LOGS/pgbench-init.log" 2>&1 || die "pgbench -i failed: see $LOGS/pgbench-init.log"
q "$TEMPLATE" <<'SQL' || die "creating events failed"
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION pg_prewarm;
CREATE TABLE events (
    id         bigint PRIMARY KEY,
    account_id integer NOT NULL,
    created_at timestamptz NOT NULL,
    payload    jsonb NOT NULL
);
SQL
T0=$(date +%s)
CHUNK=500000
for ((lo = 1; lo <= EVENTS; lo += CHUNK)); do
    hi=$((lo + CHUNK - 1)); [ "$hi" -le "$EVENTS" ] || hi=$EVENTS
    q -v lo="$lo" -v hi="$hi" -v old="$OLD_ROWS" -v total="$EVENTS" "$TEMPLATE" <<'SQL' || die "generating events failed"
INSERT INTO events
SELECT g,
       (g * 7919) % 50000 + 1,
       CASE WHEN g <= :old
            THEN now() - interval '90 days' + ((g - 1)::float8 / :old) * interval '59 days'
            ELSE now() - interval '29 days' + ((g - :old - 1)::float8 / (:total - :old)) * interval '29 days' END,
       jsonb_build_object(
           'user_id', (g * 31) % 50000,
           'kind', (ARRAY['signup', 'login', 'view', 'click', 'purchase', 'logout'])[1 + (g % 6)::int],
           'ip', format('10.%s.%s.%s', g % 256, (g / 256) % 256, (g * 7) % 256),
           'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)',
                           'curl/8.4.0', 'okhttp/4.12.0'])[1 + (g % 4)::int],
           'path', '/api/v1/accounts/' || (g * 7919) % 50000 + 1 || '/items/' || g % 1000,
           'note', repeat(md5(g::text), 4))
  FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
done
q "$TEMPLATE" -c "CREATE INDEX events_created_at_idx ON events (created_at)" \
    -c "CREATE INDEX events_account_id_idx ON events (account_id)" \
    -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT" || die "indexing events failed"
GEN_SECONDS=$(($(date +%s) - T0))
read -r OLD_COUNT RECENT_COUNT < <(q -F ' ' "$TEMPLATE" -c "SELECT count(*) FILTER (WHERE created_at < now() - interval '30 days'),
                                                                  count(*) FILTER (WHERE created_at >= now() - interval '30 days') FROM events")
[ "$OLD_COUNT" = "$OLD_ROWS" ] && [ "$RECENT_COUNT" = "$RECENT_ROWS" ] \
    || die "the template holds $OLD_COUNT old and $RECENT_COUNT recent events, not $OLD_ROWS and $RECENT_ROWS"
q -F ' ' "$TEMPLATE" -c "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid)
                           FROM pg_class c WHERE c.relname IN ('events', 'pgbench_accounts', 'pgbench_history',
                                'pgbench_branches', 'pgbench_tellers', 'events_created_at_idx',
                                'events_account_id_idx', 'events_pkey') ORDER BY 1" >"$OUTDIR/relations.txt"
DB_SIZE=$(q "$TEMPLATE" -c "SELECT pg_database_size(current_database())")
AVG_ROW=$(q "$TEMPLATE" -c "SELECT round(avg(pg_column_size(e.*))) FROM (SELECT * FROM events LIMIT 10000) e")
say "template: $(numfmt --to=iec "$DB_SIZE"), events rows about $AVG_ROW bytes, generated in ${GEN_SECONDS}s"

# The plans of the two purges' statements, as the server first plans them (the peer's as
# PL/pgSQL runs it; tend's prepared with the batch size as $1: a custom plan, then the generic
# one a prepared statement may switch to after 5 runs).
PEER_SQL_TEMPLATE="DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE created_at < now() - interval '30 days' LIMIT %s)"
# tend leaves the address cursor (\$2) out when an index finds the rule's rows, as here.
TEND_SQL="WITH gone AS (DELETE FROM public.events tend_t WHERE tend_t.ctid = ANY (ARRAY (SELECT ctid FROM public.events WHERE \$2::text IS NOT NULL AND (created_at < now() - make_interval(secs => 2592000)) LIMIT \$1)) RETURNING tend_t.ctid AS tend_ctid) SELECT count(*), max(tend_ctid)::text FROM gone"
{
    echo "-- peer, batch ${PEERS[0]}"
    # shellcheck disable=SC2059
    q "$TEMPLATE" -c "BEGIN" -c "EXPLAIN $(printf "$PEER_SQL_TEMPLATE" "${PEERS[0]}")" -c "ROLLBACK"
    echo "-- tend's batch statement (as crates/tend-lifecycle/src/purge.rs builds it), custom plan for \$1 = 5000"
    q "$TEMPLATE" -c "PREPARE p(bigint, text) AS $TEND_SQL" -c "BEGIN" -c "EXPLAIN EXECUTE p(5000, '(0,0)')" -c "ROLLBACK"
    echo "-- the same, custom plan for \$1 = 50000 (cleanup.max_batch)"
    q "$TEMPLATE" -c "PREPARE p(bigint, text) AS $TEND_SQL" -c "BEGIN" -c "EXPLAIN EXECUTE p(50000, '(0,0)')" -c "ROLLBACK"
    echo "-- the same, generic plan"
    q "$TEMPLATE" -c "SET plan_cache_mode = force_generic_plan" -c "PREPARE p(bigint, text) AS $TEND_SQL" \
        -c "BEGIN" -c "EXPLAIN EXECUTE p(5000, '(0,0)')" -c "ROLLBACK"
} >"$LOGS/plans.txt" 2>&1 || echo "cleanup.sh: could not explain the statements (see $LOGS/plans.txt)" >&2

# --- tend's project ---------------------------------------------------------------------------
PROJECT=$WORK/project
mkdir -p "$PROJECT"
cat >"$PROJECT/tend.toml" <<'EOF'
# bench/cleanup.sh; DATABASE_URL is in the environment
[cleanup]
soft_delete = "off"

[[retention]]
name = "old-events"
table = "events"
column = "created_at"
older_than = "30d"
EOF

TEND_FAILED=""
tend_fail() {
    [ -n "$TEND_FAILED" ] || TEND_FAILED="$1"
    echo "cleanup.sh: tend failed: $1" >&2
}
# tend's plan, once, on the template (every phase copies it): it must count exactly the old rows.
say "tend cleanup --dry-run --json on the template"
if (cd "$PROJECT" && env DATABASE_URL="$TEMPLATE" "$TEND" cleanup --dry-run --json) \
        >"$LOGS/tend-dry-run.json" 2>"$LOGS/tend-dry-run.err"; then
    matching=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["rules"]; print(r[0]["matching"] - r[0]["held"] if len(r) == 1 else r)' \
        "$LOGS/tend-dry-run.json" 2>/dev/null || echo "unreadable output")
    [ "$matching" = "$OLD_ROWS" ] || tend_fail "tend cleanup --dry-run plans to delete $matching rows, not $OLD_ROWS"
else
    tend_fail "tend cleanup --dry-run: $(tail -3 "$LOGS/tend-dry-run.err")"
fi

# --- the phases -------------------------------------------------------------------------------
now() { local t=$EPOCHREALTIME; echo "${t/,/.}"; }
# fresh_db: bench_run, a file copy of the template, pgbench's tables in shared_buffers (events is
# larger than shared_buffers and stays in the OS cache only, as after the copy), a CHECKPOINT.
fresh_db() {
    q "$ADMIN" -c "DROP DATABASE IF EXISTS $RUN_DB" \
        -c "CREATE DATABASE $RUN_DB TEMPLATE bench_template STRATEGY FILE_COPY" || return 1
    q "$URL" -c "SELECT pg_prewarm(r) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
                  'pgbench_branches', 'pgbench_tellers', 'pgbench_branches_pkey', 'pgbench_tellers_pkey']) r" >/dev/null || return 1
    sync
    q "$URL" -c "CHECKPOINT" -c "SELECT pg_stat_statements_reset()" >/dev/null
}
old_recent() {
    q -F ' ' "$URL" -c "SELECT count(*) FILTER (WHERE created_at < now() - interval '30 days'),
                               count(*) FILTER (WHERE created_at >= now() - interval '30 days') FROM events"
}
# statement_stats PATTERN: the purge statement as pg_stat_statements saw it in bench_run:
# calls, longest and mean execution in ms (the statement alone, without its COMMIT).
statement_stats() {
    q -F ' ' -v pat="$1" "$URL" <<'SQL'
SELECT coalesce(sum(calls), 0), coalesce(round(max(max_exec_time)::numeric, 1), 0),
       coalesce(round((sum(total_exec_time) / nullif(sum(calls), 0))::numeric, 2), 0)
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query ~* :'pat'
SQL
}

tend_purge() {
    local run=$1
    (cd "$PROJECT" && env DATABASE_URL="$URL" "$TEND" cleanup --yes --json) \
        >"$LOGS/tend.$run.json" 2>"$LOGS/tend.$run.err"
}
# peer_purge RUN LABEL BATCH [SLEEP_MS]: the hand-written loop in one DO block, COMMIT after each
# batch (so each batch is its own transaction), timing each batch (DELETE and COMMIT) itself;
# with SLEEP_MS, pg_sleep after each COMMIT, outside the batch's time.
peer_purge() {
    local run=$1 label=$2 batch=$3 sleep_ms=${4:-0}
    # shellcheck disable=SC2059
    local stmt pause=""
    stmt=$(printf "$PEER_SQL_TEMPLATE" "$batch")
    [ "$sleep_ms" = 0 ] || pause="IF n > 0 THEN PERFORM pg_sleep($sleep_ms / 1000.0); END IF;"
    PGOPTIONS="-c client_min_messages=notice" "$PGBIN/psql" -XqAt -v ON_ERROR_STOP=1 "$URL" \
        >"$LOGS/$label.$run.out" 2>"$LOGS/$label.$run.err" <<SQL
DO \$\$
DECLARE
    n        bigint;
    total    bigint := 0;
    batches  integer := 0;
    over     integer := 0;
    t0       timestamptz;
    took     float8;
    longest  float8 := 0;
    started  timestamptz := clock_timestamp();
BEGIN
    LOOP
        t0 := clock_timestamp();
        $stmt;
        GET DIAGNOSTICS n = ROW_COUNT;
        COMMIT;
        took := extract(epoch FROM clock_timestamp() - t0) * 1000;
        longest := greatest(longest, took);
        IF took > 200 THEN over := over + 1; END IF;
        batches := batches + 1;
        total := total + n;
        EXIT WHEN n = 0;
        $pause
    END LOOP;
    RAISE NOTICE 'peer deleted=% batches=% longest_ms=% over_200ms=% millis=%', total, batches,
        round(longest::numeric, 1), over, round((extract(epoch FROM clock_timestamp() - started) * 1000)::numeric);
END
\$\$;
SQL
}

# phase RUN LABEL: a fresh copy; pgbench -c 4 -j 2 -T S with a log of every transaction; after
# --delay seconds the label's purge (none for baseline), timed from its start to its exit; then
# the checks and one line in PHASES. pgbench's transactions go to pgbench/LABEL.RUN.tsv as
# "ms since pgbench started, latency in µs".
phase() {
    local run=$1 label=$2 t_pg t0 t1 t_end rc=0 kv old recent load busy log_at slow ckpt avac
    fresh_db || die "copying the template failed"
    load=$(cut -d' ' -f1 /proc/loadavg)
    busy=$(pgrep -c -x rustc 2>/dev/null || true)
    rm -f "$WORK"/pgb.*
    log_at=$(stat -c %s "$WORK/postgres.log")
    t_pg=$(now)
    "$PGBIN/pgbench" -n -c 4 -j 2 -T "$PGBENCH_SECONDS" -P 1 --progress-timestamp -l --log-prefix="$WORK/pgb" "$URL" \
        >"$LOGS/pgbench-$label.$run.log" 2>&1 &
    PGBENCH_PID=$!
    sleep "$DELAY"
    t0=$(now)
    case "$label" in
        baseline) : ;;
        tend) if [ -z "$TEND_FAILED" ]; then tend_purge "$run" || rc=$?; else rc=99; fi ;;
        peer-*) peer_purge "$run" "$label" "${label#peer-}" || rc=$? ;;
        paced-*) peer_purge "$run" "$label" "${PACED%%:*}" "${PACED#*:}" || rc=$? ;;
    esac
    t1=$(now)
    wait "$PGBENCH_PID" || die "pgbench failed in $label (run $run): $(tail -5 "$LOGS/pgbench-$label.$run.log")"
    PGBENCH_PID=""
    t_end=$(now)
    cat "$WORK"/pgb.* | python3 -c '
import sys
t0 = float(sys.argv[1])
rows = []
for line in sys.stdin:
    f = line.split()
    rows.append((int(f[4]) * 1000 + int(f[5]) // 1000 - round(t0 * 1000), int(f[2])))
rows.sort()
sys.stdout.write("".join(f"{t}\t{lat}\n" for t, lat in rows))
' "$t_pg" >"$OUTDIR/pgbench/$label.$run.tsv"
    rm -f "$WORK"/pgb.*
    read -r old recent < <(old_recent)
    # What the server logged during the phase (pgbench and the purge): tend's batch statements
    # over 200 ms, checkpoints, autovacuums of events.
    tail -c +"$((log_at + 1))" "$WORK/postgres.log" >"$LOGS/postgres-$label.$run.log"
    slow=$(grep -c 'duration: .*DELETE FROM public.events tend_t' "$LOGS/postgres-$label.$run.log" || true)
    ckpt=$(grep -c 'checkpoint complete' "$LOGS/postgres-$label.$run.log" || true)
    avac=$(grep -c 'automatic vacuum of table "bench_run.public.events"' "$LOGS/postgres-$label.$run.log" || true)
    kv="t0=$(python3 -c "print(f'{$t0 - $t_pg:.3f}')") t1=$(python3 -c "print(f'{$t1 - $t_pg:.3f}')")"
    kv="$kv pg_end=$(python3 -c "print(f'{$t_end - $t_pg:.3f}')") rc=$rc old_after=$old recent_after=$recent load=$load rustc=${busy:-0}"
    kv="$kv checkpoints=${ckpt:-0} autovacuums=${avac:-0}"
    case "$label" in
        baseline)
            [ "$old" = "$OLD_ROWS" ] && [ "$recent" = "$RECENT_ROWS" ] || die "baseline (run $run): $old old and $recent recent events"
            ;;
        tend)
            if [ "$rc" != 0 ]; then
                [ "$rc" = 99 ] || tend_fail "tend cleanup --yes --json exited $rc (run $run): $(tail -3 "$LOGS/tend.$run.err")"
            else
                kv="$kv $(python3 - "$LOGS/tend.$run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rule = r["rules"][0] if r["rules"] else {}
print(f'deleted={r["deleted"]} millis={r["millis"]} batches={rule.get("batches", 0)} '
      f'longest_ms={rule.get("longest_batch_ms", 0)} conflicts={rule.get("conflicts", 0)} '
      f'paused_ms={rule.get("paused_ms", 0)} interrupted={str(r["interrupted"]).lower()}')
PY
)" || tend_fail "tend's --json output does not parse (run $run): $(head -c 300 "$LOGS/tend.$run.json")"
                kv="$kv stmt=$(statement_stats '^\s*WITH gone AS \(DELETE FROM public\.events tend_t' | tr ' ' ,) over_200ms_stmt=${slow:-0}"
                [ "$old" = 0 ] || tend_fail "after tend cleanup (run $run), $old events older than 30 days are left"
                [ "$recent" = "$RECENT_ROWS" ] || tend_fail "after tend cleanup (run $run), $recent recent events, not $RECENT_ROWS"
            fi
            ;;
        peer-*|paced-*)
            [ "$rc" = 0 ] || die "the hand-written purge failed (run $run): $(tail -3 "$LOGS/$label.$run.err")"
            local notice
            notice=$(sed -n 's/.*NOTICE:  peer \(.*\)$/\1/p' "$LOGS/$label.$run.err")
            [ -n "$notice" ] || die "the hand-written purge printed no result (run $run): $(tail -3 "$LOGS/$label.$run.err")"
            kv="$kv $notice stmt=$(statement_stats '^\s*DELETE FROM events WHERE ctid IN' | tr ' ' ,)"
            [ "$old" = 0 ] || die "after the hand-written purge ($label, run $run), $old old events are left"
            [ "$recent" = "$RECENT_ROWS" ] || die "after the hand-written purge ($label, run $run), $recent recent events, not $RECENT_ROWS"
            ;;
    esac
    printf '%s\t%s\t%s\n' "$run" "$label" "$kv" >>"$PHASES"
    echo "  $label: $kv" >&2
}
LABELS=(baseline tend)
for n in "${PEERS[@]}"; do LABELS+=("peer-$n"); done
[ -z "$PACED_LABEL" ] || LABELS+=("$PACED_LABEL")
for run in $(seq "$RUNS"); do
    n=${#LABELS[@]}
    for i in $(seq 0 $((n - 1))); do
        label=${LABELS[$(((i + run - 1) % n))]}
        say "run $run/$RUNS: $label (pgbench -T $PGBENCH_SECONDS, the purge from second $DELAY)"
        phase "$run" "$label"
    done
done
q "$ADMIN" -c "DROP DATABASE IF EXISTS $RUN_DB" || true
ELAPSED=$(($(date +%s) - T_START))

# --- report -----------------------------------------------------------------------------------
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MEM=$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
export R_RUNS=$RUNS R_CORES=$(nproc) R_MEM=$MEM R_CPU=$CPU R_PGVERSION=$PGVERSION R_SETTINGS=$SETTINGS \
    R_EVENTS=$EVENTS R_OLD=$OLD_ROWS R_SCALE=$SCALE R_DB_SIZE=$DB_SIZE R_AVG_ROW=$AVG_ROW \
    R_PGBENCH_SECONDS=$PGBENCH_SECONDS R_DELAY=$DELAY R_PEERS="${PEERS[*]}" R_PACED=$PACED R_LOAD_START=$LOAD_START \
    R_LOAD_END=$LOAD_END R_TEND_FAILED=$TEND_FAILED R_TEND_VERSION=$TEND_VERSION R_TEND_FROM=$TEND_FROM \
    R_OVERRIDES=$TEND_OVERRIDES R_ELAPSED=$ELAPSED R_QUICK=$QUICK
python3 - "$PHASES" "$OUTDIR/pgbench" "$OUTDIR/relations.txt" <<'PY' >"$OUTDIR/results.md"
import os, statistics, sys
phases_f, pgdir, rel_f = sys.argv[1:]
E = os.environ
runs, delay, secs = int(E["R_RUNS"]), float(E["R_DELAY"]), int(E["R_PGBENCH_SECONDS"])
peers = E["R_PEERS"].split()
paced = None if E["R_PACED"] == "none" else E["R_PACED"].split(":")
labels = ["tend"] + [f"peer-{n}" for n in peers] + ([f"paced-{paced[0]}-{paced[1]}"] if paced else [])
P = {}
for line in open(phases_f):
    run, label, rest = line.rstrip("\n").split("\t")
    d = dict(kv.split("=", 1) for kv in rest.split())
    d["run"] = int(run)
    P.setdefault(label, []).append(d)

cache = {}
def txns(label, run):
    key = (label, run)
    if key not in cache:
        rows = []
        with open(os.path.join(pgdir, f"{label}.{run}.tsv")) as f:
            for line in f:
                t, lat = line.split()
                rows.append((int(t) / 1000, int(lat) / 1000))
        cache[key] = rows
    return cache[key]
def window_stats(label, run, a, b):
    """tps, mean and p99 latency (ms), worst 1-second tps of transactions ending in [a, b]."""
    rows = [(t, lat) for t, lat in txns(label, run) if a <= t <= b]
    if b <= a or not rows:
        return None
    lats = sorted(lat for _, lat in rows)
    per_s = {}
    for t, _ in rows:
        per_s[int(t)] = per_s.get(int(t), 0) + 1
    whole = [per_s.get(s, 0) for s in range(int(a) + 1, int(b))]  # whole seconds inside the window
    return dict(tps=len(rows) / (b - a), lat=statistics.mean(lats),
                p99=lats[min(len(lats) - 1, int(len(lats) * 0.99))],
                worst=min(whole) if whole else None)

med = statistics.median
def pct(x):
    return f"{x * 100:.1f} %"

# Per purge phase: its window (the purge command's start to its exit, cut at pgbench's end),
# pgbench in it, and the same seconds of the same run's baseline.
rows = {}
for label, ps in P.items():
    if label == "baseline":
        continue
    for p in ps:
        if p.get("rc") != "0" or "deleted" not in p:
            continue
        run = p["run"]
        a, b, end = float(p["t0"]), float(p["t1"]), float(p["pg_end"])
        last = txns(label, run)[-1][0] if txns(label, run) else end
        cut = b > last
        b2 = min(b, last)
        during = window_stats(label, run, a, b2)
        base = window_stats("baseline", run, a, b2) if any(q["run"] == run for q in P.get("baseline", [])) else None
        deleted, millis = int(p["deleted"]), int(p["millis"])
        stmt = p.get("stmt", "0,0,0").split(",")
        rows.setdefault(label, []).append(dict(
            run=run, deleted=deleted, millis=millis, rate=deleted / (millis / 1000) if millis else 0.0,
            wall=b - a, wall_rate=deleted / (b - a), batches=int(p["batches"]),
            longest=float(p["longest_ms"]), over=p.get("over_200ms"), conflicts=p.get("conflicts"),
            over_stmt=p.get("over_200ms_stmt"), checkpoints=int(p["checkpoints"]), autovacuums=int(p["autovacuums"]),
            stmt_calls=int(stmt[0]), stmt_max=float(stmt[1]), stmt_mean=float(stmt[2]),
            during=during, base=base, cut=cut, load=float(p["load"]), rustc=int(p["rustc"]),
            loss=(1 - during["tps"] / base["tps"]) if during and base else None,
            lost=(base["tps"] - during["tps"]) * (b2 - a) if during and base else None))
base_whole = []
for p in P.get("baseline", []):
    s = window_stats("baseline", p["run"], delay, float(p["pg_end"]))
    if s:
        base_whole.append(s)

out = []
o = out.append
quick = E["R_QUICK"] == "1"
o(f"Machine: {E['R_CORES']} cores ({E['R_CPU']}), {E['R_MEM']} GiB RAM. PostgreSQL {E['R_PGVERSION']} "
  f"in a throwaway cluster ({E['R_SETTINGS']}; pg_stat_statements, track=all). {E['R_TEND_VERSION']} "
  f"({E['R_TEND_FROM']})"
  + (f"; environment: {E['R_OVERRIDES'].strip()}" if E["R_OVERRIDES"].strip() else "") + ". "
  + f"{runs} run{'s' if runs != 1 else ''}" + (" (--quick)" if quick else "") + f", {E['R_ELAPSED']} s in all.")
o("")
loads = [float(p["load"]) for ps in P.values() for p in ps]
busy = sum(1 for ps in P.values() for p in ps if int(p["rustc"]) > 0)
o(f"Load average (1, 5, 15 min) at the start: {E['R_LOAD_START']}; at the end: {E['R_LOAD_END']}; "
  f"1-minute load before each phase: median {med(loads):.2f}, highest {max(loads):.2f}. "
  f"Phases that started with a rustc running: {busy} of {sum(len(ps) for ps in P.values())}.")
o("")
o(f"Data: pgbench `-i -s {E['R_SCALE']}` and `events` ({int(E['R_EVENTS']):,} rows of about {E['R_AVG_ROW']} "
  f"bytes: id bigint primary key, account_id, created_at, a jsonb payload; indexes on created_at and "
  f"account_id), {int(E['R_OLD']):,} of them older than 30 days, in time order on disk; database "
  f"{int(E['R_DB_SIZE']) / 1e6:,.0f} MB.")
for line in open(rel_f):
    name, total, main = line.split()
    o(f"- {name}: {int(total) / 1e6:,.0f} MB" + (f" ({int(main) / 1e6:,.0f} MB without indexes and TOAST)" if total != main else ""))
o("")
o(f"Each phase: a fresh `CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY` copy, pgbench's tables "
  f"prewarmed, a CHECKPOINT; `pgbench -n -c 4 -j 2 -T {secs}` (TPC-B); at second {delay:g} the purge "
  f"starts. pgbench during a purge is counted over the purge command's run (start to exit), from "
  f"pgbench's log of every transaction; the baseline is the same seconds of the same run's "
  f"pgbench without a purge. Loss = 1 - tps during / baseline tps (median of the per-run losses); "
  f"transactions lost = (baseline tps - tps during) x the purge's seconds, the whole cost of a purge "
  f"to pgbench, which a shorter, harder purge and a longer, gentler one can be compared on. "
  f"Rows/s is deleted rows over the purge loop's own time (tend's `millis`; the DO block's time); "
  f"the whole command's time is in the runs below.")
o("")
if base_whole:
    each = ", ".join(f"{s['tps']:,.0f}" for s in base_whole)
    o(f"pgbench without a purge, seconds {delay:g} to the end: {med([s['tps'] for s in base_whole]):,.0f} tps "
      f"(runs: {each}), mean latency "
      f"{med([s['lat'] for s in base_whole]):.1f} ms, p99 {med([s['p99'] for s in base_whole]):.1f} ms.")
    o("")

names = {"tend": "`tend cleanup --yes --json`"}
for n in peers:
    names[f"peer-{n}"] = f"DELETE ... ctid IN (SELECT ... LIMIT {n}), COMMIT per batch"
if paced:
    names[f"paced-{paced[0]}-{paced[1]}"] = (f"reference: the same, LIMIT {paced[0]}, with pg_sleep({int(paced[1]) / 1000:g}) "
                                           "after each COMMIT")
ref = f"peer-{peers[0]}"
def m(label, key):
    vals = [r[key] for r in rows.get(label, []) if r[key] is not None]
    return med(vals) if vals else None
o(f"| purge | rows/s | / peer {peers[0]} | batches | longest batch (highest of runs) | statement max / mean (pg_stat_statements) | pgbench tps during | baseline tps, same seconds | throughput loss | transactions lost | p99 latency during / baseline |")
o("|---|---|---|---|---|---|---|---|---|---|---|")
for label in labels:
    rs = rows.get(label)
    if not rs:
        o(f"| {names[label]} | not measured | | | | | | | | | |")
        continue
    ratio = f"{m(label, 'rate') / m(ref, 'rate'):.2f}x" if rows.get(ref) else "-"
    dur = [r["during"] for r in rs if r["during"]]
    bas = [r["base"] for r in rs if r["base"]]
    o(f"| {names[label]} | {m(label, 'rate'):,.0f} | {ratio} | {m(label, 'batches'):,.0f} | "
      f"{max(r['longest'] for r in rs):,.0f} ms | {max(r['stmt_max'] for r in rs):,.0f} / {m(label, 'stmt_mean'):,.1f} ms | "
      f"{med([d['tps'] for d in dur]):,.0f} | {med([b['tps'] for b in bas]):,.0f} | "
      f"{pct(m(label, 'loss'))} | {m(label, 'lost'):,.0f} | {med([d['p99'] for d in dur]):.1f} / {med([b['p99'] for b in bas]):.1f} ms |"
      if dur and bas else
      f"| {names[label]} | {m(label, 'rate'):,.0f} | {ratio} | - | - | - | - | - | - | - | - |")
o("")
if rows.get("tend"):
    t = rows["tend"]
    o("| goal (issue 15) | target | measured | met |")
    o("|---|---|---|---|")
    rate = m("tend", "rate")
    each = ", ".join(f"{r['rate']:,.0f}" for r in t)
    o(f"| purge rate on {E['R_CORES']} cores, under pgbench | >= 20,000 rows/s | {rate:,.0f} rows/s (median; runs {each}) | {'yes' if rate >= 20000 else '**no**'} |")
    longest = max(r["longest"] for r in t)
    each = ", ".join(f"{r['longest']:,.0f}" for r in t)
    o(f"| longest batch | <= 200 ms | {longest:,.0f} ms (highest of runs; runs {each}) | {'yes' if longest <= 200 else '**no**'} |")
    loss = m("tend", "loss")
    if loss is not None:
        each = ", ".join(pct(r["loss"]) for r in t if r["loss"] is not None)
        o(f"| pgbench throughput loss during the purge | <= 10 % | {pct(loss)} (median; runs {each}) | {'yes' if loss <= 0.10 else '**no**'} |")
    if rows.get(ref):
        o(f"| reference: rows/s / peer {peers[0]}'s | - | {rate / m(ref, 'rate'):.2f}x | - |")
        pl = m(ref, "loss")
        if pl is not None and loss is not None:
            o(f"| reference: throughput loss, peer {peers[0]} | - | {pct(pl)} | - |")
    o("")
if E["R_TEND_FAILED"]:
    o(f"**tend failed**: {E['R_TEND_FAILED']} (logs in bench/.work/cleanup/logs/).")
    o("")
o("All runs:")
o("")
for label in labels:
    for r in rows.get(label, []):
        d, b = r["during"], r["base"]
        o(f"- {label} run {r['run']}: {r['deleted']:,} rows in {r['millis'] / 1000:.1f} s ({r['rate']:,.0f} rows/s; "
          f"the whole command {r['wall']:.1f} s, {r['wall_rate']:,.0f} rows/s), {r['batches']} batches, longest "
          f"{r['longest']:.0f} ms" + (f", {r['over']} over 200 ms" if r["over"] is not None else "")
          + (f", {r['over_stmt']} statements over 200 ms in the server log" if r["over_stmt"] is not None else "")
          + (f", {r['conflicts']} conflicts" if r["conflicts"] not in (None, "0") else "")
          + f"; statement max {r['stmt_max']:.0f} ms, mean {r['stmt_mean']:.1f} ms over {r['stmt_calls']} calls; "
          + (f"pgbench {d['tps']:,.0f} tps (baseline {b['tps']:,.0f}), loss {pct(r['loss'])} ({r['lost']:,.0f} transactions), mean latency "
             f"{d['lat']:.1f} ms (baseline {b['lat']:.1f}), p99 {d['p99']:.1f} ms ({b['p99']:.1f}), worst second "
             f"{d['worst'] if d['worst'] is not None else '-'} tps ({b['worst'] if b['worst'] is not None else '-'})"
             if d and b else "pgbench not measured")
          + ("; **the purge outlasted pgbench**, counted until pgbench's end" if r["cut"] else "")
          + f"; {r['checkpoints']} checkpoints and {r['autovacuums']} autovacuums of events during pgbench"
          + f"; load {r['load']:.2f}" + (", a rustc was running" if r["rustc"] else ""))
print("\n".join(out))
PY
echo
cat "$OUTDIR/results.md"
[ -z "$TEND_FAILED" ] || exit 1
