#!/usr/bin/env bash
# Measures `tend serve`: a scrape of its /metrics against Debian's prometheus-postgres-exporter
# scraping the same database of about 10,000 relations in the same run (interleaved), and
# the daemon's resident memory when idle. Prints a Markdown table for docs/benchmarks.md.
#
#   bench/serve.sh [--tables N] [--scrapes S] [--no-build]
#
# --tables: tables to create, 5 relations each (default 2000: about 10,000 relations).
# --no-build uses the release binary already in ${CARGO_TARGET_DIR:-target}.
#
# Needs: PostgreSQL server programs, curl, and prometheus-postgres-exporter (installed with
# apt-get when missing and run as root, without starting its service). Uses a throwaway
# cluster of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
TABLES=2000
SCRAPES=20
BUILD=1
while (($#)); do
    case "$1" in
        --tables) TABLES=$2; shift 2 ;;
        --scrapes) SCRAPES=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: bench/serve.sh [--tables N] [--scrapes S] [--no-build]" >&2; exit 2 ;;
    esac
done

if ((BUILD)); then cargo build --release -q -p tend; fi
TEND=${CARGO_TARGET_DIR:-$PWD/target}/release/tend
[[ -x $TEND ]] || { echo "bench: $TEND not found; run without --no-build" >&2; exit 1; }
EXPORTER=$(command -v prometheus-postgres-exporter || true)
if [[ -z $EXPORTER && $(id -u) -eq 0 ]]; then
    made_policy=false
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        made_policy=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-postgres-exporter >/dev/null
    if $made_policy; then rm -f /usr/sbin/policy-rc.d; fi
    EXPORTER=$(command -v prometheus-postgres-exporter)
fi
[[ -n $EXPORTER ]] || { echo "bench: install prometheus-postgres-exporter to compare" >&2; exit 1; }

WORK=$(mktemp -d /tmp/tend-bench-serve.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    (cd "$WORK" && "$TEND" dev destroy --yes >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
URL=$("$TEND" dev url -q 2>/dev/null)
PORT=$(echo "$URL" | sed -E 's|.*:([0-9]+)/.*|\1|')

psql -Xq "$URL" -c "DO \$\$ BEGIN FOR i IN 1..$TABLES LOOP
    EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, name text, created_at timestamptz DEFAULT now())', i);
    EXECUTE format('INSERT INTO t%s (name) SELECT md5(g::text) FROM generate_series(1, 20) g', i);
  END LOOP; END \$\$;" >/dev/null
psql -Xq "$URL" -c "ANALYZE" >/dev/null
RELATIONS=$(psql -XAtc "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')" "$URL")
# A check run and its history, so tend's check metrics have something to read.
DATABASE_URL="$URL" "$TEND" check -q >/dev/null 2>&1 || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TEND_PORT=$(free_port)
EXPORTER_PORT=$(free_port)
# A schedule that stays idle during the measurement (checks hourly).
cat >tend.toml <<'EOF'
[[schedule]]
task = "check"
cron = "0 * * * *"
EOF
DATABASE_URL="$URL" TEND_SERVE_LISTEN="127.0.0.1:$TEND_PORT" "$TEND" serve -q 2>"$WORK/serve.log" &
TEND_PID=$!
PIDS+=("$TEND_PID")
DATA_SOURCE_NAME="postgresql://postgres@127.0.0.1:$PORT/app?sslmode=disable" \
    "$EXPORTER" --web.listen-address="127.0.0.1:$EXPORTER_PORT" --log.level=error >"$WORK/exporter.log" 2>&1 &
EXPORTER_PID=$!
PIDS+=("$EXPORTER_PID")
for port in "$TEND_PORT" "$EXPORTER_PORT"; do
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/metrics" && break
        sleep 0.2
    done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
scrape() { curl -s -o "$WORK/$2.txt" -w '%{time_total}' "http://127.0.0.1:$1/metrics"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Idle: after start-up and one warm scrape each, then 10 s of nothing.
# The first scrape of each reads everything (tend also reads the sizes it then keeps for a
# minute).
TEND_FIRST=$(scrape "$TEND_PORT" tend)
EXPORTER_FIRST=$(scrape "$EXPORTER_PORT" exporter)
sleep 10
TEND_IDLE_RSS=$(rss_kb "$TEND_PID")
EXPORTER_IDLE_RSS=$(rss_kb "$EXPORTER_PID")

TEND_TIMES=(); EXPORTER_TIMES=()
for _ in $(seq "$SCRAPES"); do
    TEND_TIMES+=("$(scrape "$TEND_PORT" tend)")
    EXPORTER_TIMES+=("$(scrape "$EXPORTER_PORT" exporter)")
done
TEND_RSS=$(rss_kb "$TEND_PID")
EXPORTER_RSS=$(rss_kb "$EXPORTER_PID")
series() { grep -cv '^#' "$WORK/$1.txt"; }

TEND_MED=$(printf '%s\n' "${TEND_TIMES[@]}" | median)
EXPORTER_MED=$(printf '%s\n' "${EXPORTER_TIMES[@]}" | median)
echo
echo "| measure | tend serve | postgres_exporter $("$EXPORTER" --version 2>&1 | awk 'NR==1 {print $3}') |"
echo "|---|---|---|"
printf '| relations in the database | %s | %s |\n' "$RELATIONS" "$RELATIONS"
printf '| /metrics scrape, median of %s (curl time_total) | %.1f ms | %.1f ms |\n' "$SCRAPES" \
    "$(echo "$TEND_MED * 1000" | bc -l)" "$(echo "$EXPORTER_MED * 1000" | bc -l)"
printf '| ratio tend / exporter | %.2fx | |\n' "$(echo "$TEND_MED / $EXPORTER_MED" | bc -l)"
printf '| first scrape (tend reads the database and table sizes, kept for 60 s) | %.1f ms | %.1f ms |\n' \
    "$(echo "$TEND_FIRST * 1000" | bc -l)" "$(echo "$EXPORTER_FIRST * 1000" | bc -l)"
printf '| series in one scrape | %s | %s |\n' "$(series tend)" "$(series exporter)"
printf '| resident memory, idle (10 s after start and one scrape) | %.1f MB | %.1f MB |\n' \
    "$(echo "$TEND_IDLE_RSS / 1024" | bc -l)" "$(echo "$EXPORTER_IDLE_RSS / 1024" | bc -l)"
printf '| resident memory after %s scrapes | %.1f MB | %.1f MB |\n' "$SCRAPES" \
    "$(echo "$TEND_RSS / 1024" | bc -l)" "$(echo "$EXPORTER_RSS / 1024" | bc -l)"
