#!/usr/bin/env bash
# Measures `tend check` on a database with 10,000 relations and `tend health` on a local
# server, against check_postgres (Debian's check-postgres) running its comparable actions on
# the same database in the same run. Prints a Markdown table for docs/benchmarks.md.
#
#   bench/checks.sh [--tables N] [--runs R] [--no-build]
#
# --no-build uses the release binary already in ${CARGO_TARGET_DIR:-target}.
#
# Needs: PostgreSQL 15 server programs, GNU time (/usr/bin/time), and check-postgres
# (installed with apt-get when missing and run as root). Uses a throwaway cluster of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
TABLES=2000
RUNS=5
BUILD=1
while (($#)); do
    case "$1" in
        --tables) TABLES=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: bench/checks.sh [--tables N] [--runs R] [--no-build]" >&2; exit 2 ;;
    esac
done

if ((BUILD)); then cargo build --release -q -p tend; fi
TEND=${CARGO_TARGET_DIR:-$PWD/target}/release/tend
[[ -x $TEND ]] || { echo "bench: $TEND not found; run without --no-build" >&2; exit 1; }
if ! command -v check_postgres >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq check-postgres >/dev/null
    else
        echo "bench: install check-postgres (apt-get install check-postgres) to compare" >&2
    fi
fi

WORK=$(mktemp -d /tmp/tend-bench-checks.XXXXXX)
chmod 755 "$WORK"
cleanup() { (cd "$WORK" && "$TEND" dev destroy --yes >/dev/null 2>&1) || true; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
URL=$("$TEND" dev url -q 2>/dev/null)
PORT=$(echo "$URL" | sed -E 's|.*:([0-9]+)/.*|\1|')

# Each table brings 5 relations: the table, its sequence, its primary key index, its TOAST
# table and the TOAST table's index.
psql -Xq "$URL" -c "DO \$\$ BEGIN FOR i IN 1..$TABLES LOOP
    EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, name text, created_at timestamptz DEFAULT now())', i);
  END LOOP; END \$\$;" >/dev/null
psql -Xq "$URL" -c "ANALYZE" >/dev/null
RELATIONS=$(psql -XAtc "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')" "$URL")

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

# tend check: wall time and peak memory.
CHECK_TIMES=(); CHECK_RSS=()
for _ in $(seq "$RUNS"); do
    CHECK_TIMES+=("$(seconds env DATABASE_URL="$URL" TEND_CHECK_HISTORY=off "$TEND" check -q)")
    # tend check exits 1 or 2 when it finds something: that is its answer, not a failure.
    /usr/bin/time -o "$WORK/rss" -f '%M' env DATABASE_URL="$URL" TEND_CHECK_HISTORY=off "$TEND" check -q >/dev/null 2>&1 || true
    CHECK_RSS+=("$(tail -1 "$WORK/rss")")
done
# Server CPU of one tend check (its backend's user+system time, which the postmaster adds
# to its children's times when it reaps the backend): wall time on a busy machine says
# little, this does not depend on what else runs.
DATADIR=$(psql -XAtc "SELECT current_setting('data_directory')" "$URL")
POSTMASTER=$(head -1 "$DATADIR/postmaster.pid")
reaped() { awk '{print $16 + $17}' "/proc/$POSTMASTER/stat"; }
CHECK_CPU=()
for _ in $(seq "$RUNS"); do
    before=$(reaped)
    env DATABASE_URL="$URL" TEND_CHECK_HISTORY=off "$TEND" check -q >/dev/null 2>&1 || true
    sleep 0.3
    CHECK_CPU+=("$(( ($(reaped) - before) * 1000 / $(getconf CLK_TCK) ))")
done
CHECK_COUNT=$(DATABASE_URL="$URL" "$TEND" check --list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')

# tend health: many runs, median.
HEALTH_TIMES=()
for _ in $(seq 20); do
    HEALTH_TIMES+=("$(seconds env DATABASE_URL="$URL" "$TEND" health -q)")
done

# check_postgres: the actions that overlap tend's catalog, each a separate run as its users
# schedule them.
CP_ACTIONS=(backends bloat database_size dbstats hitratio last_analyze last_autoanalyze
    last_autovacuum last_vacuum locks query_time sequence txn_idle txn_time txn_wraparound
    autovac_freeze replicate_row prepared_txns wal_files settings_checksum)
CP_TIMES=()
if command -v check_postgres >/dev/null; then
    for _ in $(seq "$RUNS"); do
        s=$(date +%s.%N)
        for action in "${CP_ACTIONS[@]}"; do
            check_postgres --host=127.0.0.1 --port="$PORT" --dbuser=postgres --dbname=app \
                --action="$action" >/dev/null 2>&1 || true
        done
        e=$(date +%s.%N)
        CP_TIMES+=("$(echo "$e - $s" | bc -l)")
    done
fi

CHECK_MED=$(printf '%s\n' "${CHECK_TIMES[@]}" | median)
RSS_MAX=$(printf '%s\n' "${CHECK_RSS[@]}" | sort -n | tail -1)
HEALTH_MED=$(printf '%s\n' "${HEALTH_TIMES[@]}" | median)
echo
echo "| measure | result |"
echo "|---|---|"
printf '| relations in the database | %s |\n' "$RELATIONS"
printf '| `tend check` (%s checks), median of %s | %.0f ms |\n' "$CHECK_COUNT" "$RUNS" "$(echo "$CHECK_MED * 1000" | bc -l)"
printf '| `tend check` server CPU (its backend), median of %s | %s ms |\n' "$RUNS" "$(printf '%s\n' "${CHECK_CPU[@]}" | median)"
printf '| `tend check` peak memory (max RSS) | %.1f MB |\n' "$(echo "$RSS_MAX / 1024" | bc -l)"
printf '| `tend health`, median of 20 | %.1f ms |\n' "$(echo "$HEALTH_MED * 1000" | bc -l)"
if ((${#CP_TIMES[@]})); then
    CP_MED=$(printf '%s\n' "${CP_TIMES[@]}" | median)
    printf '| check_postgres, %s actions, median of %s | %.0f ms |\n' "${#CP_ACTIONS[@]}" "$RUNS" "$(echo "$CP_MED * 1000" | bc -l)"
    printf '| ratio tend / check_postgres | %.2fx |\n' "$(echo "$CHECK_MED / $CP_MED" | bc -l)"
fi
