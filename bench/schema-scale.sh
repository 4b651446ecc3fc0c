#!/usr/bin/env bash
# Benchmark: how `tend schema diff` and `tend schema dump` grow with the schema. For each size
# (1,000, 5,000, 10,000 and 20,000 tables by default, `--sizes`), database A gets a generated
# schema (bench/schema/gen_scale.py: 6 columns, a primary key and an index per table, a
# foreign key on every third table, an enum per 100 tables, a view per 10) and database B a
# copy of A with one column added. Times `schema diff --from A --to B` (one change),
# `--from A --to A` (nothing to change) and `schema dump --from A`, with peak memory, on a
# throwaway PostgreSQL 15 cluster.
#
#   bench/schema-scale.sh [--sizes "1000 5000 ..."] [--runs N] [--no-build] [--compare TEND]
#
# --compare TEND times a second tend binary (an older build, say) on the same databases in
# the same run, the two taking turns. Prints a Markdown table and writes it to
# bench/.work/schema-scale/results.md. Timing is never asserted: the script fails only when
# a command fails or exits with an unexpected status, or when the two binaries' outputs differ.
set -euo pipefail

SIZES="1000 5000 10000 20000"
RUNS=3
BUILD=1
COMPARE=

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --compare) COMPARE=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "schema-scale.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
for n in $SIZES "$RUNS"; do
    case "$n" in ''|*[!0-9]*|0) echo "schema-scale.sh: sizes and runs must be positive integers" >&2; exit 2 ;; esac
done

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work/schema-scale
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=$PGBIN/psql
unset DATABASE_URL DIRECT_URL SHADOW_DATABASE_URL TEND_MIGRATE_FORMAT TEND_MIGRATIONS_DIR \
      PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC
export NO_COLOR=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

LOGS=$WORK/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"

[ -x "$PSQL" ] && [ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 binaries not found in $PGBIN (apt-get install postgresql-15, or set PGBIN)"
command -v python3 >/dev/null || die "python3 is needed to generate the schemas"
[ -x /usr/bin/time ] && /usr/bin/time -f '%M' true >/dev/null 2>&1 || die "GNU time (/usr/bin/time) is needed for peak memory (apt-get install time)"

if [ "$BUILD" = 1 ]; then
    say "building tend (release)"
    (cd "$ROOT" && cargo build --release -p tend) >&2
fi
TEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/tend
[ -x "$TEND" ] || die "$TEND not found; run without --no-build"
if [ -n "$COMPARE" ]; then
    [ -x "$COMPARE" ] || die "--compare: $COMPARE is not an executable"
    COMPARE=$(cd "$(dirname "$COMPARE")" && pwd)/$(basename "$COMPARE")
fi

# --- the cluster ----------------------------------------------------------------------------
# Throwaway, fsync off: it only speeds up building the schemas; the commands timed only read.
PGTMP=$(mktemp -d /tmp/tend-bench-scale.XXXXXX)
PGDATA=$PGTMP/data
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    local rc=$?
    if [ -f "$PGDATA/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PGTMP"
    [ "$rc" = 0 ] || echo "schema-scale.sh: failed (exit $rc); logs in $LOGS" >&2
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
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$PGTMP -c fsync=off" \
    start >/dev/null || { cat "$PGTMP/postgres.log" >&2; die "the server did not start"; }
BASE=postgresql://postgres@127.0.0.1:$PORT
admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -At -d "$BASE/postgres" "$@"; }
SERVER_VERSION=$(admin -c 'SHOW server_version')
mkdir "$PGTMP/project"
cd "$PGTMP/project"

# measure TOOL SIZE NAME RUN EXPECTED_STATUS COMMAND...: wall time (s), peak RSS (MB) and
# tend's own CPU time (user + system, s: the wall time less the waits on the server) into
# times.tsv; the output into the logs.
TIMES=$WORK/times.tsv
: >"$TIMES"
measure() {
    local tool=$1 size=$2 name=$3 run=$4 expect=$5 out t0 t1 rc=0 s mb cpu
    shift 5
    out="$LOGS/$tool-$size-$name-$run"
    t0=$EPOCHREALTIME
    /usr/bin/time -o "$out.rss" -f '%M %U %S' "$@" >"$out.out" 2>"$out.err" || rc=$?
    t1=$EPOCHREALTIME
    [ "$rc" = "$expect" ] || { tail -n 20 "$out.err" >&2; die "$tool $name at $size tables (run $run) exited $rc, expected $expect"; }
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    mb=$(tail -n 1 "$out.rss" | awk '{printf "%.0f", $1 / 1024}')
    cpu=$(tail -n 1 "$out.rss" | awk '{printf "%.2f", $2 + $3}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$size" "$name" "$run" "$s" "$mb" "$cpu" >>"$TIMES"
    printf '  %-7s %6s tables %-5s run %s: %6.2f s, %5s MB, %5s s CPU\n' "$tool" "$size" "$name" "$run" "$s" "$mb" "$cpu" >&2
}

TOOLS=("tend:$TEND")
[ -n "$COMPARE" ] && TOOLS+=("compare:$COMPARE")
for size in $SIZES; do
    say "$size tables: generating and building A, then B (A and one added column)"
    python3 "$BENCH/schema/gen_scale.py" --tables "$size" --out "$WORK/scale-$size.sql" >&2
    admin -c "CREATE DATABASE a_$size"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BASE/a_$size" -f "$WORK/scale-$size.sql" >"$LOGS/build-$size.log" 2>&1 \
        || { tail -n 20 "$LOGS/build-$size.log" >&2; die "schema A of $size tables did not build"; }
    admin -c "CREATE DATABASE b_$size TEMPLATE a_$size"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BASE/b_$size" -f "$WORK/change.sql" >/dev/null
    admin -d "$BASE/a_$size" -c "VACUUM ANALYZE" -c CHECKPOINT
    A=$BASE/a_$size
    B=$BASE/b_$size
    for run in w $(seq 1 "$RUNS"); do
        for entry in "${TOOLS[@]}"; do
            tool=${entry%%:*}
            bin=${entry#*:}
            measure "$tool" "$size" ab "$run" 1 "$bin" schema diff --exit-code --from "$A" --to "$B"
            measure "$tool" "$size" aa "$run" 0 "$bin" schema diff --exit-code --from "$A" --to "$A"
            measure "$tool" "$size" dump "$run" 0 "$bin" schema dump --from "$A"
        done
    done
    if [ -n "$COMPARE" ]; then
        for name in ab aa dump; do
            cmp -s "$LOGS/tend-$size-$name-1.out" "$LOGS/compare-$size-$name-1.out" \
                || die "the two binaries' outputs differ: $size tables, $name (see $LOGS)"
        done
        echo "  outputs of both binaries are byte-identical" >&2
    fi
    admin -c "DROP DATABASE a_$size" -c "DROP DATABASE b_$size"
done

# --- report: medians of the timed runs (the warm-up run w is left out) ----------------------
export SERVER_VERSION RUNS
export HEADER="tend $("$TEND" --version | awk '{print $NF}') (release build)"
python3 - "$TIMES" >"$WORK/results.md" <<'PY'
import os, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
cells = {}
for tool, size, name, run, s, mb, cpu in rows:
    if run != "w":
        cells.setdefault((tool, int(size), name), []).append((float(s), int(mb), float(cpu)))
load = open("/proc/loadavg").read().split()[:3]
print(f"PostgreSQL {os.environ['SERVER_VERSION']}, {os.cpu_count()} cores, {os.environ['HEADER']}; "
      f"median of {os.environ['RUNS']} runs after one warm-up; load average after: {' '.join(load)}")
print()
print("| binary | tables | diff A->B (s) | CPU (s) | MB | diff A->A (s) | CPU (s) | MB | dump A (s) | CPU (s) | MB |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for tool, size in sorted({(t, n) for t, n, _ in cells}, key=lambda k: (k[0] != "tend", k[1])):
    out = []
    for name in ("ab", "aa", "dump"):
        v = cells.get((tool, size, name), [])
        if not v:
            out += ["", "", ""]
            continue
        out += [f"{statistics.median(x[0] for x in v):.2f}", f"{statistics.median(x[2] for x in v):.2f}",
                str(max(x[1] for x in v))]
    print(f"| {tool} | {size:,} | " + " | ".join(out) + " |")
PY
cat "$WORK/results.md"
echo "results: $WORK/results.md; outputs and logs: $LOGS" >&2
