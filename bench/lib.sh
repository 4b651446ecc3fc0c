# Helpers shared by the benchmark scripts that source this file. Not a script
# of its own: `source "$BENCH/lib.sh"` after setting PGBIN.
#
#   as_pg CMD...              run CMD as the postgres OS user when we are root (initdb, postgres,
#                             pgBackRest refuse root or must own the files), as ourselves else
#   free_port                 a free TCP port on 127.0.0.1
#   q ARGS...                 psql -XqAt with ON_ERROR_STOP and no notices
#   row_counts URL            exact row counts of every user table, "schema.table count" a line
#   gen_mixed_db URL BYTES LOG  the database of backup.sh: pgbench's logged tables (about half)
#                             plus `events` (text, jsonb, bytea, timestamps, arrays) until the
#                             database holds at least BYTES; sets SCALE
#   run_tree_rss OUT WRAPPER CMD...  runs WRAPPER CMD... (WRAPPER: GNU time); every 50 ms sums
#                             the resident memory of the process tree under WRAPPER; writes
#                             "peak_total_kb sum_of_peaks_kb processes names" to OUT (names:
#                             NAME:COUNT,...) and exits with the WRAPPER's status

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

q() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -XqAt -v ON_ERROR_STOP=1 "$@"; }

row_counts() {
    q "$1" -c "SELECT format('SELECT %L, count(*) FROM %I.%I;', n.nspname || '.' || c.relname, n.nspname, c.relname)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND n.nspname NOT LIKE 'pg\\_%'" | q -F ' ' "$1" | LC_ALL=C sort
}

# The generator of backup.sh, unchanged: half pgbench (scale 1 is about 15.6 MB with its keys),
# half the mixed table, in batches of 200,000 rows until pg_database_size reaches BYTES; then
# VACUUM (FREEZE, ANALYZE) and a CHECKPOINT.
gen_mixed_db() {
    local url=$1 target=$2 log=$3 lo=1 hi size
    local batch=200000
    SCALE=$(python3 -c "print(max(1, round($target / 2 / 15.6e6)))")
    "$PGBIN/pgbench" -i -q -s "$SCALE" "$url" >"$log" 2>&1 || { echo "pgbench -i failed: see $log" >&2; return 1; }
    q "$url" <<'SQL' || return 1
CREATE TABLE events (
    id           bigint PRIMARY KEY,
    account_id   integer NOT NULL,
    created_at   timestamptz NOT NULL,
    processed_at timestamp,
    kind         text NOT NULL,
    title        text NOT NULL,
    body         text,
    payload      jsonb NOT NULL,
    tags         text[] NOT NULL,
    scores       integer[] NOT NULL,
    digest       bytea NOT NULL,
    attachment   bytea
);
CREATE INDEX events_account_created ON events (account_id, created_at);
SQL
    while :; do
        hi=$((lo + batch - 1))
        gen_events_rows "$url" "$lo" "$hi" || return 1
        lo=$((hi + 1))
        size=$(q "$url" -c "SELECT pg_database_size(current_database())") || return 1
        [ "$size" -ge "$target" ] && break
    done
    q "$url" -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT"
}

# gen_events_rows URL LO HI [TABLE]: rows LO..HI of the mixed table, into TABLE (default events).
gen_events_rows() {
    q -v lo="$2" -v hi="$3" -v tbl="${4:-events}" "$1" <<'SQL'
INSERT INTO :"tbl"
SELECT g,
       (g * 7919) % 100000 + 1,
       timestamptz '2024-01-01 00:00+00' + g * interval '17 seconds' + random() * interval '10 seconds',
       CASE WHEN g % 5 <> 0 THEN timestamp '2024-01-01' + g * interval '17 seconds' + (g % 600) * interval '1 second' END,
       (ARRAY['signup', 'login', 'view', 'click', 'purchase', 'refund', 'share', 'logout'])[1 + (g % 8)::int],
       'Order ' || upper(substr(md5(g::text), 1, 12)) || ' for account ' || ((g * 7919) % 100000 + 1),
       CASE WHEN g % 3 <> 0 THEN
           substr('Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor '
               || 'incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud '
               || 'exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure '
               || 'dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. ',
               (1 + (g * 13) % 150)::int, (40 + g % 180)::int)
           || ' ref ' || md5(random()::text) END,
       jsonb_build_object(
           'user_id', (g * 31) % 50000,
           'ip', format('10.%s.%s.%s', g % 256, (g / 256) % 256, (g * 7) % 256),
           'amount', round((random() * 500)::numeric, 2),
           'currency', (ARRAY['EUR', 'USD', 'GBP'])[1 + (g % 3)::int],
           'session', md5((g / 10)::text),
           'items', jsonb_build_array(g % 97, g % 89, g % 83),
           'ok', g % 11 <> 0,
           'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)',
                           'curl/8.4.0', 'okhttp/4.12.0'])[1 + (g % 4)::int]),
       ARRAY['tag' || g % 50, 'region-' || g % 7, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END],
       ARRAY[g % 100, (g * 3) % 1000, (random() * 10000)::int]::int[],
       decode(md5(g::text || 'digest'), 'hex'),
       CASE WHEN g % 4 = 0 THEN
           decode(md5(random()::text) || md5(random()::text) || repeat('00', 32), 'hex') END
  FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
}

# The tree is walked through /proc/PID/task/*/children; the wrappers of the measurement itself
# (the first argument, GNU time, and runuser, also a child of theirs caught between fork and
# exec, which still bears their name) are left out of the sums. A process that lives less than 50 ms can be
# missed, and the sum is of samples, so a peak between two samples is missed too.
run_tree_rss() {
    python3 -c '
import os, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
SKIP = {"time", "runuser"}
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
def kids(pid):
    found = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    found += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return found
def status(pid):
    name, kb = "", None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Name:"):
                    name = line.split()[1]
                elif line.startswith("VmRSS:"):
                    kb = int(line.split()[1])
    except OSError:
        pass
    return name, kb
peak_total, peaks, names = 0, {}, {}
while True:
    done = p.poll() is not None
    total, todo = 0, [p.pid]
    while todo:
        pid = todo.pop()
        todo += kids(pid)
        name, kb = status(pid)
        if kb is None or name in SKIP or pid == p.pid:
            continue
        total += kb
        peaks[pid] = max(peaks.get(pid, 0), kb)
        names[pid] = name
    peak_total = max(peak_total, total)
    if done:
        break
    time.sleep(0.05)
with open(out, "w") as f:
    count = {}
    for n in names.values():
        count[n] = count.get(n, 0) + 1
    f.write(f"{peak_total} {sum(peaks.values())} {len(peaks)} "
            + (",".join(f"{n}:{c}" for n, c in sorted(count.items())) or "-") + "\n")
sys.exit(p.returncode)
' "$@"
}

# find_tend ROOT BUILD TEND_BIN: sets TEND to the tend binary: TEND_BIN when given, else the
# release build under ROOT (built first when BUILD is 1). Calls the script's `die`.
find_tend() {
    local root=$1 build=$2 bin=$3
    if [ -n "$bin" ]; then
        TEND=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
    else
        if [ "$build" = 1 ]; then
            (cd "$root" && cargo build --release -q -p tend) >&2 || die "cargo build failed"
        fi
        TEND=${CARGO_TARGET_DIR:-$root/target}/release/tend
    fi
    [ -x "$TEND" ] || die "$TEND not found; run without --no-build"
}

# start_cluster OUTDIR [SERVER OPTIONS...]: a fresh throwaway cluster in OUTDIR/data (OUTDIR
# is emptied first), listening on a socket in OUTDIR/sock only, stopped when the script exits.
# Sets URL (the postgres database) and defines url_of NAME. Calls the script's `die`.
start_cluster() {
    local outdir=$1
    shift
    rm -rf "$outdir"
    mkdir -p "$outdir"
    chmod 755 "$outdir"
    CLUSTER_DATA=$outdir/data
    CLUSTER_PORT=$(free_port)
    CLUSTER_SOCK=$outdir/sock
    mkdir -p "$CLUSTER_SOCK"
    if [ "$(id -u)" = 0 ]; then chown postgres "$outdir" "$CLUSTER_SOCK"; fi
    as_pg "$PGBIN/initdb" -D "$CLUSTER_DATA" -U postgres -A trust >"$outdir/initdb.log" 2>&1 || die "initdb failed"
    as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -l "$outdir/server.log" -w \
        -o "-p $CLUSTER_PORT -k $CLUSTER_SOCK -c listen_addresses='' $*" start >/dev/null \
        || die "the server did not start: see $outdir/server.log"
    trap 'as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -m immediate stop >/dev/null 2>&1 || true' EXIT
    URL="postgresql://postgres@/postgres?host=$CLUSTER_SOCK&port=$CLUSTER_PORT"
}
url_of() { echo "postgresql://postgres@/$1?host=$CLUSTER_SOCK&port=$CLUSTER_PORT"; }
