#!/usr/bin/env bash
# Benchmark: `tend schema diff` between two live databases against migra (from PyPI) on the
# same pair, in one run, on a throwaway PostgreSQL 15 cluster. Database A holds a generated
# SaaS schema of about 2,200 objects, B the same schema after about 35 changes
# (bench/schema/gen_schema.py). Times A->B and A->A (nothing to do) for both tools, with
# peak memory, and checks that each tool's A->B output, applied to a copy of A, gives B.
# Splits tend's time into introspection and diff with crates/tend-schema/examples/diff_timing.rs.
#
#   bench/schema.sh [--runs N] [--warmup N] [--modules N] [--no-build]
#
# Prints a Markdown report and writes it to bench/.work/schema/results.md. Timing is never
# asserted: the script fails only when a tool fails or exits with an unexpected status.
set -euo pipefail

RUNS=5        # timed rounds, median reported
WARMUP=1      # untimed rounds first (page cache, Python's bytecode cache)
MODULES=12    # modules of 10 tables in schema A (12: about 2,200 objects)
BUILD=1

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --modules) MODULES=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "schema.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$RUNS" "$MODULES"; do
    case "$n" in ''|*[!0-9]*|0) echo "schema.sh: counts must be positive integers" >&2; exit 2 ;; esac
done
case "$WARMUP" in ''|*[!0-9]*) echo "schema.sh: --warmup takes a number" >&2; exit 2 ;; esac

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work/schema
TOOLS=$BENCH/.tools
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=$PGBIN/psql
# Settings from the caller's environment must not steer any tool elsewhere.
unset DATABASE_URL DIRECT_URL SHADOW_DATABASE_URL TEND_MIGRATE_FORMAT TEND_MIGRATIONS_DIR \
      PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC
export NO_COLOR=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

mkdir -p "$WORK" "$TOOLS"
LOGS=$WORK/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"

# --- tools ---------------------------------------------------------------------------------
[ -x "$PSQL" ] && [ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 binaries not found in $PGBIN (apt-get install postgresql-15, or set PGBIN)"
command -v python3 >/dev/null || die "python3 is needed to generate the schemas and run migra"

if [ "$BUILD" = 1 ]; then
    say "building tend (release)"
    (cd "$ROOT" && cargo build --release -p tend && \
        cargo build --release -p tend-schema --example diff_timing) >&2
fi
TEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/tend
DIFF_TIMING=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/diff_timing
[ -x "$TEND" ] && [ -x "$DIFF_TIMING" ] || die "$TEND or $DIFF_TIMING not found; run without --no-build"

# migra in a virtual environment of its own. migra's last release (2022) works with
# SQLAlchemy 1.4 only: 2.x makes `postgresql://` mean psycopg 3 and drops the API sqlbag
# uses, so SQLAlchemy is pinned below 2, and the rest to the versions measured.
MIGRA_PINS=(migra==3.0.1663481299 schemainspect==3.1.1663587362 sqlbag==0.1.1617247075
            'sqlalchemy>=1.4,<2' psycopg2-binary)
VENV=$TOOLS/migra-venv
MIGRA=$VENV/bin/migra
if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "${MIGRA_PINS[*]}" ] || ! "$MIGRA" --help >/dev/null 2>&1; then
    say "installing migra from PyPI into bench/.tools/migra-venv"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${MIGRA_PINS[@]}" >&2
    "$MIGRA" --help >/dev/null || die "migra does not run: $MIGRA"
    echo "${MIGRA_PINS[*]}" >"$VENV/.pins"
fi
pyver() { "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
MIGRA_VERSIONS="migra $(pyver migra) (schemainspect $(pyver schemainspect), sqlbag $(pyver sqlbag), SQLAlchemy $(pyver sqlalchemy), psycopg2 $(pyver psycopg2-binary), Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"

# Peak memory: GNU time when there is one, else a Python wrapper reading the child's rusage.
if /usr/bin/time -f '%M' true >/dev/null 2>&1; then HAVE_GNU_TIME=1; else HAVE_GNU_TIME=0; fi

# --- the schemas ----------------------------------------------------------------------------
say "generating schema A ($MODULES modules) and the changes to B"
GEN_STATS=$(python3 "$BENCH/schema/gen_schema.py" --out "$WORK" --modules "$MODULES")
echo "  $GEN_STATS" >&2

# --- the cluster ----------------------------------------------------------------------------
# A throwaway PostgreSQL 15 cluster with the default settings. initdb and postgres refuse
# root: as root they run as the postgres user.
PGTMP=$(mktemp -d /tmp/tend-bench-schema.XXXXXX)
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
    [ "$rc" = 0 ] || echo "schema.sh: failed (exit $rc); logs in $LOGS" >&2
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
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGTMP/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$PGTMP" \
    start >/dev/null || { cat "$PGTMP/postgres.log" >&2; die "the server did not start"; }

BASE=postgresql://postgres@127.0.0.1:$PORT
URL_A=$BASE/schema_a
URL_B=$BASE/schema_b
admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -At -d "$BASE/postgres" "$@"; }
run_sql() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$@"; }
SERVER_VERSION=$(admin -c 'SHOW server_version')
# tend runs in an empty directory outside any project, so no tend.toml or .env is read.
mkdir "$PGTMP/project"
cd "$PGTMP/project"
echo "  PostgreSQL $SERVER_VERSION on port $PORT" >&2

say "creating A and B"
admin -c "CREATE DATABASE schema_a" -c "CREATE DATABASE schema_b"
run_sql "$URL_A" -f "$WORK/a.sql" >"$LOGS/a.log" 2>&1 || { tail -n 20 "$LOGS/a.log" >&2; die "schema A did not build"; }
run_sql "$URL_B" -f "$WORK/a.sql" -f "$WORK/changes.sql" >"$LOGS/b.log" 2>&1 \
    || { tail -n 20 "$LOGS/b.log" >&2; die "schema B did not build"; }
admin -c CHECKPOINT

# The object count as tend sees it (Model::object_count, printed by `tend schema dump`).
objects_of() {
    "$TEND" schema dump --from "$1" >"$LOGS/dump-$2.sql" 2>"$LOGS/dump-$2.err" \
        || { cat "$LOGS/dump-$2.err" >&2; die "tend schema dump failed on $2"; }
    sed -n 's/^-- \([0-9]*\) objects\{0,1\}, by tend.*/\1/p' "$LOGS/dump-$2.sql" | head -n 1
}
OBJECTS_A=$(objects_of "$URL_A" a)
OBJECTS_B=$(objects_of "$URL_B" b)
[ -n "$OBJECTS_A" ] || die "no object count in tend schema dump's header ($LOGS/dump-a.sql)"
RELATIONS_A=$(admin -d "$URL_A" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'")
echo "  tend counts $OBJECTS_A objects in A and $OBJECTS_B in B; A has $RELATIONS_A relations" >&2

# --- the runs -------------------------------------------------------------------------------
TIMES=$WORK/times.tsv
: >"$TIMES"

# measure NAME RUN EXPECTED_STATUS COMMAND...: runs COMMAND with its output in the logs,
# records wall time (ms) and peak RSS (KB) unless RUN starts with w (a warm-up).
measure() {
    local name=$1 run=$2 expect=$3 out="$LOGS/$1-$2.out" err="$LOGS/$1-$2.err" t0 t1 rc=0 ms rss
    shift 3
    if [ "$HAVE_GNU_TIME" = 1 ]; then
        t0=$EPOCHREALTIME
        /usr/bin/time -o "$LOGS/rss" -f '%M' "$@" >"$out" 2>"$err" || rc=$?
        t1=$EPOCHREALTIME
        ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) * 1000}')
        rss=$(tail -n 1 "$LOGS/rss")
    else
        local res
        res=$(python3 - "$out" "$err" "$@" <<'PY'
import resource, subprocess, sys, time
out, err, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(out, "wb") as o, open(err, "wb") as e:
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, stdout=o, stderr=e)
    t1 = time.perf_counter()
print(f"{rc} {(t1 - t0) * 1000:.1f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
        )
        read -r rc ms rss <<<"$res"
    fi
    if [ "$rc" != "$expect" ]; then
        tail -n 30 "$err" >&2
        die "$name (run $run) exited $rc, expected $expect: $*"
    fi
    case "$run" in
        w*) printf '  %-12s warm-up %s: %8.1f ms (not counted)\n' "$name" "${run#w}" "$ms" >&2 ;;
        *) printf '%s\t%s\t%s\t%s\n' "$name" "$run" "$ms" "$rss" >>"$TIMES"
           printf '  %-12s run %s: %8.1f ms, %6.1f MB\n' "$name" "$run" "$ms" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" >&2 ;;
    esac
}

# --exit-code makes tend exit 1 when the schemas differ and 0 when they are equal; migra
# exits 2 and 0 without being asked.
tend_ab() { measure tend_ab "$1" 1 "$TEND" schema diff --exit-code --from "$URL_A" --to "$URL_B"; }
tend_aa() { measure tend_aa "$1" 0 "$TEND" schema diff --exit-code --from "$URL_A" --to "$URL_A"; }
migra_ab() { measure migra_ab "$1" 2 "$MIGRA" --unsafe "$URL_A" "$URL_B"; }
migra_aa() { measure migra_aa "$1" 0 "$MIGRA" --unsafe "$URL_A" "$URL_A"; }
tend_start() { measure tend_start "$1" 0 "$TEND" --version; }
migra_start() { measure migra_start "$1" 0 "$MIGRA" --help; }

say "$WARMUP warm-up and $RUNS timed rounds; in each: tend A->B, migra A->B, tend A->A, migra A->A"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROUNDS=()
for w in $(seq 1 "$WARMUP"); do ROUNDS+=("w$w"); done
ROUNDS+=($(seq 1 "$RUNS"))
for run in "${ROUNDS[@]}"; do
    tend_ab "$run"; migra_ab "$run"; tend_aa "$run"; migra_aa "$run"; tend_start "$run"; migra_start "$run"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# Where tend's time goes, inside one process (crates/tend-schema/examples/diff_timing.rs):
# each side's connection and introspection, the diff, and both sides introspected at once.
say "where the time goes: the library in one process, $RUNS rounds"
"$DIFF_TIMING" "$URL_A" "$URL_B" "$RUNS" >"$LOGS/breakdown.tsv" 2>&1 \
    || { cat "$LOGS/breakdown.tsv" >&2; die "diff_timing failed"; }
sed 's/^/  /' "$LOGS/breakdown.tsv" >&2
BREAKDOWN=$(awk -F'\t' '$1 == "median"' "$LOGS/breakdown.tsv")

# --- does each tool's A->B script turn A into B? ------------------------------------------
# Applied with psql to a copy of A (statement by statement, as the CONCURRENTLY steps need),
# then the copy is compared with B by tend and by migra. Reported, not fatal: it says how far
# each tool's output can be trusted, not how fast it is.
converges() {
    local tool=$1 script=$2 db="converge_$1" applied verdict_tend verdict_migra
    admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" \
        -c "CREATE DATABASE $db TEMPLATE schema_a"
    if run_sql "$BASE/$db" -f "$script" >"$LOGS/apply-$tool.log" 2>&1; then
        applied=yes
    else
        applied="no: $(grep -m 1 'ERROR' "$LOGS/apply-$tool.log" | sed 's/^.*ERROR: *//' | cut -c1-100)"
    fi
    if "$TEND" schema diff --exit-code --from "$BASE/$db" --to "$URL_B" >"$LOGS/check-$tool-tend.sql" 2>&1; then
        verdict_tend=equal
    else
        verdict_tend="$(grep -c ';$' "$LOGS/check-$tool-tend.sql" || true) statements left"
    fi
    if "$MIGRA" --unsafe "$BASE/$db" "$URL_B" >"$LOGS/check-$tool-migra.sql" 2>&1; then
        verdict_migra=equal
    else
        verdict_migra="$(grep -c ';$' "$LOGS/check-$tool-migra.sql" || true) statements left"
    fi
    admin -c "DROP DATABASE $db"
    printf '%s\t%s\t%s\t%s\n' "$tool" "$applied" "$verdict_tend" "$verdict_migra"
}
say "applying each tool's A->B output to a copy of A and comparing it with B"
CONVERGE=$(converges tend "$LOGS/tend_ab-1.out"; converges migra "$LOGS/migra_ab-1.out")
echo "$CONVERGE" | sed 's/^/  /' >&2
TEND_STEPS=$(grep -c ';$' "$LOGS/tend_ab-1.out" || true)
MIGRA_STEPS=$(grep -c ';$' "$LOGS/migra_ab-1.out" || true)
CHANGES=$(echo "$GEN_STATS" | sed -n 's/.*B: \([0-9]*\) changes.*/\1/p')

# --- report ---------------------------------------------------------------------------------
export RUNS WARMUP GEN_STATS OBJECTS_A OBJECTS_B RELATIONS_A SERVER_VERSION MIGRA_VERSIONS
export LOAD_BEFORE LOAD_AFTER BREAKDOWN CONVERGE TEND_STEPS MIGRA_STEPS CHANGES HAVE_GNU_TIME
export TEND_VERSION="tend $("$TEND" --version | awk '{print $NF}') (release build)"
export CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
export NPROC=$(nproc)
python3 "$BENCH/schema/report.py" "$TIMES" >"$WORK/results.md"
cat "$WORK/results.md"
echo >&2
echo "results: $WORK/results.md; outputs and logs: $LOGS" >&2
