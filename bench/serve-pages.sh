#!/usr/bin/env bash
# Measures the server time of `tend serve`'s pages on a store of 1,000 backups and a check
# history of 100,000 recorded findings: each page fetched many times with curl, median of
# time_total. Prints a Markdown table for docs/benchmarks.md.
#
#   bench/serve-pages.sh [--backups N] [--findings F] [--fetches R] [--no-build]
#
# The backups are real: `tend backup run` N times on a small database (a few minutes). The
# findings are rows of tend's own check history (runs of 100 findings each), written with
# SQL as `tend check` writes them, since running the checks 1,000 times adds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKUPS=1000
FINDINGS=100000
FETCHES=20
BUILD=1
while (($#)); do
    case "$1" in
        --backups) BACKUPS=$2; shift 2 ;;
        --findings) FINDINGS=$2; shift 2 ;;
        --fetches) FETCHES=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: bench/serve-pages.sh [--backups N] [--findings F] [--fetches R] [--no-build]" >&2; exit 2 ;;
    esac
done

if ((BUILD)); then cargo build --release -q -p tend; fi
TEND=${CARGO_TARGET_DIR:-$PWD/target}/release/tend
[[ -x $TEND ]] || { echo "bench: $TEND not found; run without --no-build" >&2; exit 1; }

WORK=$(mktemp -d /tmp/tend-bench-pages.XXXXXX)
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
export BACKUP_ENCRYPTION_KEY=bench-pages-passphrase
URL=$("$TEND" dev url -q 2>/dev/null)
export DATABASE_URL=$URL
psql -Xq "$URL" -c "CREATE TABLE accounts (id serial PRIMARY KEY, name text);
    INSERT INTO accounts (name) SELECT md5(g::text) FROM generate_series(1, 1000) g;" >/dev/null

# The check history: one real run creates the schema, then runs of 100 findings each.
"$TEND" check -q >/dev/null 2>&1 || true
RUNS=$((FINDINGS / 100))
psql -Xq "$URL" -c "
  WITH runs AS (
    INSERT INTO tend.check_runs (started_at, millis, worst, checks, findings, tend_version)
    SELECT now() - make_interval(mins => 5 * g), 120, 'warning', 77, 100, 'bench'
      FROM generate_series(1, $RUNS) g RETURNING id)
  INSERT INTO tend.check_findings (run_id, check_id, severity, subject, value, message)
  SELECT r.id, 'tables.no_primary_key', CASE WHEN f % 10 = 0 THEN 'critical' ELSE 'warning' END,
         'public.t' || f, f, 'table public.t' || f || ' has no primary key'
    FROM runs r, generate_series(1, 100) f;" >/dev/null
"$TEND" check -q >/dev/null 2>&1 || true
RECORDED=$(psql -XAtc "SELECT count(*) FROM tend.check_findings" "$URL")

# The backups.
START=$(date +%s)
for _ in $(seq "$BACKUPS"); do
    "$TEND" backup run -q >/dev/null
done
BACKUP_SECONDS=$(($(date +%s) - START))
STORED=$("$TEND" backup list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["backups"]))')

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >tend.toml <<'EOF'
[[schedule]]
task = "check"
cron = "0 * * * *"
EOF
TEND_SERVE_LISTEN="127.0.0.1:$PORT" "$TEND" serve -q 2>"$WORK/serve.log" &
PIDS+=("$!")
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
    sleep 0.2
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "Store: $STORED backups (made in ${BACKUP_SECONDS}s); check history: $RECORDED findings."
echo
echo "| page | status | bytes | first fetch | median of $FETCHES |"
echo "|---|---|---|---|---|"
for page in / /backups /checks /growth /schedules /activity; do
    first=$(curl -s -o "$WORK/page.html" -w '%{http_code} %{time_total}' "http://127.0.0.1:$PORT$page")
    bytes=$(wc -c <"$WORK/page.html")
    times=()
    for _ in $(seq "$FETCHES"); do
        times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT$page")")
    done
    med=$(printf '%s\n' "${times[@]}" | median)
    printf '| `%s` | %s | %s | %.1f ms | %.1f ms |\n' "$page" "${first% *}" "$bytes" \
        "$(echo "${first#* } * 1000" | bc -l)" "$(echo "$med * 1000" | bc -l)"
done
