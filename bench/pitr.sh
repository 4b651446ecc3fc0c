#!/usr/bin/env bash
# Benchmark: point-in-time recovery, tend against its anchor peer, Debian's pgBackRest 2.45, on one
# throwaway PostgreSQL 15 cluster (fsync on, wal_level=replica, archive_mode=on) holding generated
# data (pgbench's logged tables plus a table of text, jsonb, bytea, timestamps and arrays). Times a
# full physical backup, its restore into an empty directory (the restored cluster must start, end
# recovery and hold the source's row counts), peak memory and stored size, then WAL archiving
# under pgbench: segments archived per second, archive lag, the .ready backlog and its drain.
#
#   bench/pitr.sh [--size-gb X] [--runs N] [--pgbench-seconds S] [--no-build] [--no-tend]
#
# --size-gb X          the database to generate, at least X GiB (default 1.5)
# --runs N             timed rounds (default 3); each round runs every method once, in turn
# --pgbench-seconds S  length of each archiving measurement (pgbench -c 4 -j 2 -T S; default 60)
# --no-build           do not build tend (target/release/tend must exist)
# --no-tend            the peer only: pgBackRest, plus the pg_basebackup reference row
#
# Installs pgBackRest with apt-get when missing (as root). pgBackRest runs with compress-type=zst
# at its default level for zst (3), process-max = nproc, start-fast=y. Prints a Markdown report
# and writes it to bench/.work/pitr/results.md; the output of every command goes to
# bench/.work/pitr/logs/. Timing is never asserted: the script fails when a command fails or a
# restored cluster's rows differ (a failed tend step is reported, and the exit status is 1).
set -euo pipefail

SIZE_GB=1.5
RUNS=3
BUILD=1
TEND_ON=1
PGBENCH_SECONDS=60
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --size-gb) SIZE_GB=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --pgbench-seconds) PGBENCH_SECONDS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-tend) TEND_ON=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "pitr.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*|0) echo "pitr.sh: --runs takes a positive integer" >&2; exit 2 ;; esac
case "$PGBENCH_SECONDS" in ''|*[!0-9]*|0) echo "pitr.sh: --pgbench-seconds takes a positive integer" >&2; exit 2 ;; esac
python3 -c "import sys; assert float(sys.argv[1]) > 0" "$SIZE_GB" 2>/dev/null \
    || { echo "pitr.sh: --size-gb takes a positive number" >&2; exit 2; }

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUTDIR=$BENCH/.work/pitr
LOGS=$OUTDIR/logs
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
# Settings from the caller's environment must not steer any tool elsewhere.
unset PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC \
      DATABASE_URL BACKUP_DIR BACKUP_ENCRYPTION_KEY BACKUP_AGE_RECIPIENTS \
      BACKUP_AGE_IDENTITY_FILE BACKUP_COMPRESSION_LEVEL BACKUP_S3_BUCKET BACKUP_S3_PREFIX
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(PGBACKREST_[A-Z0-9_]*\)=.*/\1/p')
export NO_COLOR=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

for tool in initdb pg_ctl psql pgbench pg_basebackup; do
    [ -x "$PGBIN/$tool" ] || die "$PGBIN/$tool not found (apt-get install postgresql-15, or set PGBIN)"
done
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
command -v python3 >/dev/null || die "python3 is needed"
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a postgres OS user for the server and pgBackRest"
    AS_PG=(runuser -u postgres --)
else
    AS_PG=()
fi

# --- pgBackRest -------------------------------------------------------------------------------
if ! command -v pgbackrest >/dev/null; then
    [ "$(id -u)" = 0 ] || die "pgbackrest is not installed; as root this script installs it (apt-get install pgbackrest)"
    say "installing pgBackRest (apt-get install pgbackrest)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbackrest >&2 \
        || die "apt-get install pgbackrest failed"
fi
PGBR_VERSION=$(pgbackrest version | sed -n 's/^pgBackRest //p')
[ "$PGBR_VERSION" = 2.45 ] || echo "pitr.sh: WARNING: pgBackRest $PGBR_VERSION, not the anchor's 2.45 (Debian 12's)" >&2

mkdir -p "$OUTDIR"
rm -rf "$LOGS" "$OUTDIR"/tmp.* "$OUTDIR"/samples-*.tsv "$OUTDIR"/rows-*.txt
mkdir -p "$LOGS"
TIMES=$OUTDIR/times.tsv       # run label wall maxrss_kb user sys total_kb sum_peaks_kb procs names load
SIZES=$OUTDIR/sizes.tsv       # run label bytes
RESTORED=$OUTDIR/restored.tsv # run label seconds_until_promoted
ARCH=$OUTDIR/archive.tsv      # run label key=value...
: >"$TIMES"; : >"$SIZES"; : >"$RESTORED"; : >"$ARCH"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

WORK=$(mktemp -d "$OUTDIR/tmp.XXXXXX")
chmod 755 "$WORK"
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
PGDATA=$WORK/data
SOCK=$WORK/sock
REPO=$WORK/repo
PGBR_CONF=$WORK/pgbackrest.conf
RDIR=""            # the restored cluster being checked, if any
SAMPLER_STOP=""    # the archive sampler's stop file, if one runs
SAMPLER_PID=""     # and its process
cleanup() {
    local rc=$? pid
    [ -n "$SAMPLER_STOP" ] && touch "$SAMPLER_STOP" 2>/dev/null || true
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    if [ -n "$RDIR" ] && [ -f "$RDIR/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$RDIR" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$PGDATA/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    # What the server started and left behind (pgBackRest's async archiver, an archive-get):
    # the processes whose command line names this run's directory, by id.
    for pid in $(grep -lsF "$WORK/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
        [ "$pid" != $$ ] && kill "$pid" 2>/dev/null || true
    done
    mkdir -p "$LOGS/pgbackrest" "$LOGS/postgres"
    cp -r "$WORK/pgbr-log/." "$LOGS/pgbackrest/" 2>/dev/null || true
    cp "$WORK"/*.postgres.log "$LOGS/postgres/" 2>/dev/null || true
    rm -rf "$WORK"
    [ "$rc" = 0 ] || echo "pitr.sh: failed (exit $rc); logs in $LOGS" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$SOCK" "$REPO" "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool"
[ "$(id -u)" = 0 ] && chown postgres "$SOCK" "$REPO" "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool"
chmod 750 "$REPO"

# --- the cluster ------------------------------------------------------------------------------
say "starting a throwaway PostgreSQL cluster in $WORK"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
    >"$LOGS/initdb.log" 2>&1 || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
# archive_command starts as /bin/true (the generated data needs no archive: every backup comes
# after it); each phase sets its tool's command with ALTER SYSTEM and pg_reload_conf().
cat >>"$PGDATA/postgresql.conf" <<'EOF'

# bench/pitr.sh
wal_level = replica
archive_mode = on
archive_command = '/bin/true'
max_wal_senders = 4
EOF
PORT=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/source.postgres.log" -w -t 60 \
    -o "-c port=$PORT -c listen_addresses='' -c unix_socket_directories=$SOCK" \
    start >/dev/null || { cat "$WORK/source.postgres.log" >&2; die "the server did not start"; }
URL="postgresql://postgres@/postgres?host=$SOCK&port=$PORT"
PGVERSION=$(q "$URL" -c "SHOW server_version")
SETTINGS=$(q "$URL" -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
                         WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_level',
                                        'archive_mode', 'max_wal_size', 'shared_buffers', 'wal_compression',
                                        'data_checksums', 'checkpoint_timeout')")
SEG=$(q "$URL" -c "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")
echo "  PostgreSQL $PGVERSION on port $PORT (socket in $SOCK); $SETTINGS" >&2

# --- the data ---------------------------------------------------------------------------------
TARGET_BYTES=$(python3 -c "print(int(float('$SIZE_GB') * 1024**3))")
say "generating the database: pgbench -i (logged tables), then the mixed table up to $SIZE_GB GiB"
gen_mixed_db "$URL" "$TARGET_BYTES" "$LOGS/pgbench-init.log" || die "generating the data failed"
DB_SIZE=$(q "$URL" -c "SELECT pg_database_size(current_database())")
q -F ' ' "$URL" -c "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN ('pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history', 'events') ORDER BY 1" >"$OUTDIR/relations.txt"
CLUSTER_SIZE=$(du -sb --exclude=pg_wal "$PGDATA" | cut -f1)
say "database: $(numfmt --to=iec "$DB_SIZE"), cluster without pg_wal: $(numfmt --to=iec "$CLUSTER_SIZE"), pgbench scale $SCALE"

# --- archive_command switching ----------------------------------------------------------------
ready_count() { find "$PGDATA/pg_wal/archive_status" -name '*.ready' 2>/dev/null | wc -l; }
# set_archive CMD: ALTER SYSTEM, reload, and wait until a new session sees it.
set_archive() {
    printf "ALTER SYSTEM SET archive_command = :'cmd';\nSELECT pg_reload_conf();\n" \
        | q -v cmd="$1" "$URL" >/dev/null || return 1
    local i
    for i in $(seq 100); do
        [ "$(q "$URL" -c "SHOW archive_command")" = "$1" ] && return 0
        sleep 0.1
    done
    echo "archive_command did not change to $1" >&2
    return 1
}
# usec: microseconds since the epoch; secs_since T0: seconds since T0 (microseconds), 2 decimals.
usec() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }
secs_since() { local d=$(($(usec) - $1)); printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000)); }
# drain [TIMEOUT]: seconds until no .ready file is left; fails after TIMEOUT (default 900) s.
drain() {
    local t0 limit=${1:-900}
    t0=$(usec)
    while [ "$(ready_count)" -gt 0 ]; do
        if [ $(($(usec) - t0)) -gt $((limit * 1000000)) ]; then
            echo "the archive did not drain in $limit s ($(ready_count) .ready files left)" >&2
            return 1
        fi
        sleep 0.1
    done
    secs_since "$t0"
}
# switch_wal_and_drain: the current segment goes to the archive too, so each tool starts clean.
switch_wal_and_drain() {
    q "$URL" -c "SELECT pg_switch_wal()" >/dev/null || return 1
    drain >/dev/null
}

PGBR=(pgbackrest --config="$PGBR_CONF" --stanza=bench)
PGBR_PUSH="pgbackrest --config=$PGBR_CONF --stanza=bench archive-push %p"
PGBR_PUSH_ASYNC="pgbackrest --config=$PGBR_CONF --stanza=bench --archive-async archive-push %p"
archive_pgbr() { set_archive "$PGBR_PUSH" && switch_wal_and_drain; }
archive_pgbr_async() { set_archive "$PGBR_PUSH_ASYNC" && switch_wal_and_drain; }

# --- pgBackRest set-up ------------------------------------------------------------------------
NPROC=$(nproc)
cat >"$PGBR_CONF" <<EOF
[global]
repo1-path=$REPO
# Keep every full backup of the run: the automatic expire after each backup then has nothing to do.
repo1-retention-full=9999
log-path=$WORK/pgbr-log
lock-path=$WORK/pgbr-lock
spool-path=$WORK/pgbr-spool
compress-type=zst
# pgBackRest's default level for zst, written out
compress-level=3
process-max=$NPROC
start-fast=y
archive-check=y

[bench]
pg1-path=$PGDATA
pg1-socket-path=$SOCK
pg1-port=$PORT
EOF
chmod 644 "$PGBR_CONF"
say "pgBackRest $PGBR_VERSION: stanza-create, check"
set_archive "$PGBR_PUSH" || die "setting archive_command failed"
as_pg "${PGBR[@]}" stanza-create >"$LOGS/pgbr-stanza-create.log" 2>&1 \
    || die "pgbackrest stanza-create failed: $(tail -5 "$LOGS/pgbr-stanza-create.log")"
as_pg "${PGBR[@]}" check >"$LOGS/pgbr-check.log" 2>&1 \
    || die "pgbackrest check failed: $(tail -5 "$LOGS/pgbr-check.log")"
switch_wal_and_drain || die "the archive does not drain with pgBackRest's archive-push"

# --- measuring --------------------------------------------------------------------------------
# measure RUN LABEL CMD...: CMD under GNU time (-v) after a sync and a CHECKPOINT, its process tree
# sampled every 50 ms (lib.sh's run_tree_rss); appends a line to TIMES. Returns 1 when CMD fails.
measure() {
    local run=$1 label=$2
    shift 2
    sync
    q "$URL" -c CHECKPOINT || return 1
    if ! run_tree_rss "$WORK/rss.out" /usr/bin/time -v -o "$WORK/time.out" "$@" \
            >"$LOGS/$label.$run.out" 2>"$LOGS/$label.$run.err"; then
        echo "$label failed in run $run: $(tail -5 "$LOGS/$label.$run.err")" >&2
        return 1
    fi
    cp "$WORK/time.out" "$LOGS/$label.$run.time"
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$label" "$(python3 - "$WORK/time.out" <<'PY'
import sys
v = {}
for line in open(sys.argv[1]):
    k, _, val = line.strip().rpartition(": ")
    v[k] = val
wall = 0.0
for part in v["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"):
    wall = wall * 60 + float(part)
print(f'{wall:.2f}\t{v["Maximum resident set size (kbytes)"]}\t{v["User time (seconds)"]}\t{v["System time (seconds)"]}')
PY
)" "$(tr ' ' '\t' <"$WORK/rss.out")" "$(cut -d' ' -f1 /proc/loadavg)" >>"$TIMES"
}
record_size() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$SIZES"; }

# check_restored RUN LABEL DIR: start the restored cluster on another port (archive_mode=off, so
# it never archives into a repository), wait for the end of recovery, compare the row counts of
# every table with the source's, stop it and remove it.
check_restored() {
    local run=$1 label=$2 dir=$3 rport rurl t0 state i
    RDIR=$dir
    rport=$(free_port)
    rurl="postgresql://postgres@/postgres?host=$SOCK&port=$rport"
    t0=$(usec)
    if ! as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$WORK/$label.$run.postgres.log" -w -t 3600 \
            -o "-c port=$rport -c listen_addresses='' -c unix_socket_directories=$SOCK -c archive_mode=off" \
            start >/dev/null; then
        echo "$label: the restored cluster did not start: $(tail -5 "$WORK/$label.$run.postgres.log")" >&2
        return 1
    fi
    for i in $(seq 36000); do
        state=$(q "$rurl" -c "SELECT pg_is_in_recovery()" 2>/dev/null) || state=error
        [ "$state" = f ] && break
        sleep 0.1
    done
    [ "$state" = f ] || { echo "$label: the restored cluster is still in recovery after an hour" >&2; return 1; }
    printf '%s\t%s\t%s\n' "$run" "$label" "$(secs_since "$t0")" >>"$RESTORED"
    row_counts "$rurl" >"$OUTDIR/rows-$label.$run.txt" || return 1
    as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || return 1
    cp "$WORK/$label.$run.postgres.log" "$LOGS/" 2>/dev/null || true
    rm -rf "$dir"
    RDIR=""
    if ! diff -u "$OUTDIR/rows-source.$run.txt" "$OUTDIR/rows-$label.$run.txt" >"$LOGS/rows-$label.$run.diff"; then
        echo "$label: the restored rows differ from the source's: $(cat "$LOGS/rows-$label.$run.diff")" >&2
        return 1
    fi
}
# stop_restored: after a failed check, the restored cluster goes (if it runs) and its directory.
stop_restored() {
    if [ -n "$RDIR" ]; then
        [ -f "$RDIR/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$RDIR" -m immediate -w stop >/dev/null 2>&1
        rm -rf "$RDIR"
        RDIR=""
    fi
    return 0
}
new_restore_dir() {
    rm -rf "$1"
    mkdir -m 700 "$1"
    [ "$(id -u)" = 0 ] && chown postgres "$1"
    return 0
}

declare -A PGBR_SET
backup_pgbr() {
    archive_pgbr || die "setting pgBackRest's archive_command failed"
    measure "$1" pgbr_backup "${AS_PG[@]}" "${PGBR[@]}" backup --type=full || die "pgbackrest backup failed"
    as_pg "${PGBR[@]}" info --output=json >"$LOGS/pgbr-info.$1.json" || die "pgbackrest info failed"
    PGBR_SET[$1]=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["backup"][-1]["label"])' \
        "$LOGS/pgbr-info.$1.json")
    record_size "$1" pgbr_backup "$(du -sb "$REPO/backup/bench/${PGBR_SET[$1]}" | cut -f1)"
    # The WAL this backup needs to be consistent (archive start to stop), as stored in the repo.
    record_size "$1" pgbr_backup_wal "$(python3 - "$LOGS/pgbr-info.$1.json" "$REPO/archive/bench" <<'PY'
import glob, json, os, sys
b = json.load(open(sys.argv[1]))[0]["backup"][-1]
start, stop = b["archive"]["start"], b["archive"]["stop"]
total = 0
for f in glob.glob(os.path.join(sys.argv[2], "*", "*", "*")):
    name = os.path.basename(f)[:24]
    if len(name) == 24 and start <= name <= stop:
        total += os.path.getsize(f)
print(total)
PY
)"
}
restore_pgbr() {
    local dir=$WORK/restore-pgbr
    new_restore_dir "$dir"
    measure "$1" pgbr_restore "${AS_PG[@]}" "${PGBR[@]}" --pg1-path="$dir" --set="${PGBR_SET[$1]}" restore \
        || die "pgbackrest restore failed"
    grep -h "restore_command" "$dir/postgresql.auto.conf" >"$LOGS/pgbr_restore.$1.restore_command" 2>/dev/null || true
    check_restored "$1" pgbr_restore "$dir" || die "the cluster restored by pgBackRest failed its check"
}
basebackup_ref() {
    local dir=$WORK/basebackup
    archive_pgbr || die "setting pgBackRest's archive_command failed"
    rm -rf "$dir"
    measure "$1" pg_basebackup "${AS_PG[@]}" "$PGBIN/pg_basebackup" -h "$SOCK" -p "$PORT" -U postgres \
        -D "$dir" -Ft -X none --checkpoint=fast --compress=server-zstd:level=1 || die "pg_basebackup failed"
    record_size "$1" pg_basebackup "$(du -sb "$dir" | cut -f1)"
    rm -rf "$dir"
}

# The archive sampler: one psql session fed the same query every second until STOP exists.
# Lag in segments is the segment number of pg_current_wal_lsn() minus last_archived_wal's (so 1
# (or 0 at a segment boundary) means caught up: the current segment cannot be archived before it is full); in bytes, from the
# end of the last archived segment to pg_current_wal_lsn().
SAMPLE_SQL="WITH s AS (SELECT setting::bigint AS seg FROM pg_settings WHERE name = 'wal_segment_size'),
     a AS (SELECT *, pg_current_wal_lsn() AS cur, pg_walfile_name(pg_current_wal_lsn()) AS curfile FROM pg_stat_archiver),
     n AS (SELECT a.*, s.seg,
                  ('x' || substr(curfile, 9, 8))::bit(32)::bigint * (4294967296 / s.seg)
                      + ('x' || substr(curfile, 17, 8))::bit(32)::bigint AS cur_segno,
                  CASE WHEN last_archived_wal ~ '^[0-9A-F]{24}\$' THEN
                      ('x' || substr(last_archived_wal, 9, 8))::bit(32)::bigint * (4294967296 / s.seg)
                      + ('x' || substr(last_archived_wal, 17, 8))::bit(32)::bigint END AS arch_segno
             FROM a, s)
SELECT extract(epoch FROM clock_timestamp())::numeric(16, 3), archived_count, failed_count,
       coalesce(last_archived_wal, '-'), pg_wal_lsn_diff(cur, '0/0')::bigint,
       coalesce((cur_segno - arch_segno)::text, '-'),
       coalesce((pg_wal_lsn_diff(cur, '0/0')::bigint - (arch_segno + 1) * seg)::text, '-'),
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')
  FROM n;"
sample_once() { q -F $'\t' "$URL" -c "$SAMPLE_SQL"; }
now() { local t=$EPOCHREALTIME; echo "${t/,/.}"; }

# archive_run RUN LABEL SETTER: SETTER sets the tool's archive_command (and drains); then
# pgbench -c 4 -j 2 -T S with the sampler running, the .ready count when pgbench ends and the
# time until it is 0. Then a backlog: archive_command = '' while about 64 segments of WAL are
# written, then the same archive_command again (ALTER SYSTEM, as SETTER left it) and the time
# until the backlog is archived. Returns 1 on failure.
BACKLOG_SEGMENTS=64
archive_run() {
    local run=$1 label=$2 setter=$3 samples=$OUTDIR/samples-$2.$1.tsv
    local before after t_start t_end ready_end drain_s tps
    "$setter" || return 1
    SAMPLER_STOP=$WORK/sampler.stop
    rm -f "$SAMPLER_STOP"
    (while [ ! -e "$SAMPLER_STOP" ]; do printf '%s\n' "$SAMPLE_SQL"; sleep 1; done \
        | q -F $'\t' "$URL" >"$samples") &
    local sampler=$!
    SAMPLER_PID=$sampler
    sleep 1.5
    before=$(sample_once) || return 1
    t_start=$(now)
    "$PGBIN/pgbench" -c 4 -j 2 -T "$PGBENCH_SECONDS" "$URL" >"$LOGS/pgbench-$label.$run.log" 2>&1 \
        || { echo "pgbench failed: $(tail -5 "$LOGS/pgbench-$label.$run.log")" >&2; touch "$SAMPLER_STOP"; wait "$sampler"; return 1; }
    t_end=$(now)
    after=$(sample_once) || return 1
    ready_end=$(ready_count)
    drain_s=$(drain) || { touch "$SAMPLER_STOP"; wait "$sampler"; return 1; }
    local drained
    drained=$(sample_once) || return 1
    sleep 1.5
    touch "$SAMPLER_STOP"
    wait "$sampler" || true
    SAMPLER_STOP=""
    SAMPLER_PID=""
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$LOGS/pgbench-$label.$run.log" | head -1)

    # The backlog.
    set_archive "" || return 1
    q "$URL" -c "DROP TABLE IF EXISTS wal_scratch" -c "CREATE TABLE wal_scratch (LIKE events)" || return 1
    local lsn0 k=0
    lsn0=$(q "$URL" -c "SELECT pg_current_wal_lsn()")
    while [ "$(q "$URL" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') >= $BACKLOG_SEGMENTS * $SEG")" = f ]; do
        q "$URL" -c "INSERT INTO wal_scratch SELECT * FROM events WHERE id % 8 = $((k % 8))" || return 1
        k=$((k + 1))
    done
    q "$URL" -c "SELECT pg_switch_wal()" >/dev/null || return 1
    sync
    local backlog backlog_s backlog_before backlog_after
    backlog=$(ready_count)
    backlog_before=$(q "$URL" -c "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver")
    local t0
    t0=$(usec)
    set_archive "$(setter_command "$setter")" || return 1
    drain >/dev/null || return 1
    backlog_s=$(secs_since "$t0")
    backlog_after=$(q "$URL" -c "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver")
    q "$URL" -c "DROP TABLE wal_scratch" -c "CHECKPOINT" || return 1

    python3 - "$run" "$label" "$samples" "$before" "$after" "$drained" "$t_start" "$t_end" \
        "$ready_end" "$drain_s" "${tps:-0}" "$backlog" "$backlog_s" "$backlog_before" "$backlog_after" \
        "$SEG" >>"$ARCH" <<'PY'
import statistics, sys
(run, label, samples_f, before, after, drained, t_start, t_end, ready_end, drain_s, tps,
 backlog, backlog_s, backlog_before, backlog_after, seg) = sys.argv[1:]
seg = int(seg)
def row(line):
    f = line.rstrip("\n").split("\t")
    return {"t": float(f[0]), "archived": int(f[1]), "failed": int(f[2]), "last": f[3],
            "lsn": int(f[4]), "lag_seg": None if f[5] == "-" else int(f[5]),
            "lag_bytes": None if f[6] == "-" else int(f[6]), "ready": int(f[7])}
b, a, d = row(before), row(after), row(drained)
t0, t1 = float(t_start), float(t_end)
samples = [row(l) for l in open(samples_f) if l.strip()]
during = [s for s in samples if t0 <= s["t"] <= t1]
lags = [s["lag_seg"] for s in during if s["lag_seg"] is not None]
lagb = [s["lag_bytes"] for s in during if s["lag_bytes"] is not None]
secs = t1 - t0
bb, ba = backlog_before.split(), backlog_after.split()
out = {
    "seconds": f"{secs:.2f}", "tps": tps,
    "gen_seg_s": f"{(a['lsn'] - b['lsn']) / seg / secs:.3f}",
    "arch_seg_s": f"{(a['archived'] - b['archived']) / secs:.3f}",
    "archived": a["archived"] - b["archived"],
    "archived_with_drain": d["archived"] - b["archived"],
    "arch_seg_s_with_drain": f"{(d['archived'] - b['archived']) / (secs + float(drain_s)):.3f}",
    "failed": d["failed"] - b["failed"],
    "lag_max": max(lags) if lags else "-", "lag_mean": f"{statistics.mean(lags):.2f}" if lags else "-",
    "lag_max_mb": f"{max(lagb) / 1e6:.1f}" if lagb else "-",
    "lag_mean_mb": f"{statistics.mean(lagb) / 1e6:.1f}" if lagb else "-",
    "samples": len(during), "ready_end": ready_end, "drain_s": drain_s,
    "backlog": backlog, "backlog_s": backlog_s,
    "backlog_seg_s": f"{int(backlog) / float(backlog_s):.2f}" if float(backlog_s) > 0 else "-",
    "backlog_failed": int(ba[1]) - int(bb[1]),
}
print(run + "\t" + label + "\t" + " ".join(f"{k}={v}" for k, v in out.items()))
PY
}
setter_command() {
    case "$1" in
        archive_pgbr) printf '%s' "$PGBR_PUSH" ;;
        archive_pgbr_async) printf '%s' "$PGBR_PUSH_ASYNC" ;;
        archive_tend) printf '%s' "$TEND_ARCHIVE_COMMAND" ;;
    esac
}
archive_pgbr_step() { archive_run "$1" pgbr_archive archive_pgbr || die "the archiving measurement with pgBackRest failed"; }
archive_pgbr_async_step() { archive_run "$1" pgbr_archive_async archive_pgbr_async || die "the archiving measurement with pgBackRest (async) failed"; }

BACKUPS=(backup_pgbr)
RESTORES=(restore_pgbr)
ARCHIVES=(archive_pgbr_step archive_pgbr_async_step)

# --- tend -------------------------------------------------------------------------------------
# tend's rows: the same steps with `tend pitr enable --yes` (archive_command = tend wal-push),
# `tend backup run --physical` and `tend restore --physical --to-dir DIR --latest`, run as the
# postgres OS user (it owns the data directory and runs archive_command) with the configuration
# in the environment (BACKUP_DIR, BACKUP_ENCRYPTION_KEY, DATABASE_URL). The server does not get
# that environment, and `tend pitr enable` wants a tend.toml for the server's archive_command
# (`tend --config FILE wal-push`, docs/cli.md): an empty one in its own directory, passed with
# --config, with the store's settings in the .env beside it (readable by postgres only). A
# failed tend step is recorded, the later tend steps are skipped, the peer's rows still get
# measured and the script exits 1 at the end.
TEND_FAILED=""
tend_fail() { TEND_FAILED="$1"; echo "pitr.sh: tend failed: $1 (the later tend steps are skipped)" >&2; }
tend_rows() {
    if [ "$BUILD" = 1 ]; then
        say "building tend (release)"
        (cd "$ROOT" && cargo build --release -q -p tend) >&2 || die "cargo build failed"
    fi
    TEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/tend
    [ -x "$TEND" ] || die "$TEND not found; run without --no-build"
    TEND_STORE=$WORK/tend-store
    mkdir -p "$TEND_STORE"
    [ "$(id -u)" = 0 ] && chown postgres "$TEND_STORE"
    TEND_KEY="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    TEND_DIR=$WORK/tend
    mkdir -p "$TEND_DIR"
    printf '# bench/pitr.sh: the settings are in .env beside this file and in the environment\n' \
        >"$TEND_DIR/tend.toml"
    printf 'BACKUP_DIR=%s\nBACKUP_ENCRYPTION_KEY=%s\n' "$TEND_STORE" "$TEND_KEY" >"$TEND_DIR/.env"
    chmod 600 "$TEND_DIR/.env"
    [ "$(id -u)" = 0 ] && chown -R postgres "$TEND_DIR"
    TEND_CMD=("${AS_PG[@]}" env BACKUP_DIR="$TEND_STORE" BACKUP_ENCRYPTION_KEY="$TEND_KEY"
              DATABASE_URL="postgres://postgres@/postgres?host=$SOCK&port=$PORT" NO_COLOR=1
              "$TEND" --config "$TEND_DIR/tend.toml")
    BACKUPS+=(backup_tend)
    RESTORES+=(restore_tend)
    ARCHIVES+=(archive_tend_step)
}
# set_archive_tend_only: `tend pitr enable --yes`, then a reload, and its archive_command in force.
set_archive_tend_only() {
    "${TEND_CMD[@]}" pitr enable --yes >>"$LOGS/tend-pitr-enable.log" 2>&1 \
        || { echo "tend pitr enable failed: $(tail -5 "$LOGS/tend-pitr-enable.log")" >&2; return 1; }
    q "$URL" -c "SELECT pg_reload_conf()" >/dev/null || return 1
    local i cmd
    for i in $(seq 100); do
        cmd=$(q "$URL" -c "SHOW archive_command")
        case "$cmd" in *wal-push*) TEND_ARCHIVE_COMMAND=$cmd; return 0 ;; esac
        sleep 0.1
    done
    echo "after tend pitr enable, archive_command is '$cmd' (no wal-push)" >&2
    return 1
}
archive_tend() { set_archive_tend_only && switch_wal_and_drain; }
backup_tend() {
    [ -z "$TEND_FAILED" ] || return 0
    archive_tend || { tend_fail "pitr enable (run $1)"; return 0; }
    measure "$1" tend_backup "${TEND_CMD[@]}" backup run --physical --json || { tend_fail "backup run --physical (run $1)"; return 0; }
    local id
    id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$LOGS/tend_backup.$1.out" 2>/dev/null) \
        || id=$(cd "$TEND_STORE" && ls -td -- */ 2>/dev/null | grep -v '^wal' | head -1 | tr -d /)
    [ -n "$id" ] && [ -d "$TEND_STORE/$id" ] || { tend_fail "cannot find the backup's folder in $TEND_STORE (run $1)"; return 0; }
    record_size "$1" tend_backup "$(du -sb "$TEND_STORE/$id" | cut -f1)"
}
restore_tend() {
    [ -z "$TEND_FAILED" ] || return 0
    local dir=$WORK/restore-tend
    new_restore_dir "$dir"
    measure "$1" tend_restore "${TEND_CMD[@]}" restore --physical --to-dir "$dir" --latest \
        || { tend_fail "restore --physical (run $1)"; return 0; }
    check_restored "$1" tend_restore "$dir" || { stop_restored; tend_fail "the cluster restored by tend (run $1)"; return 0; }
}
archive_tend_step() {
    [ -z "$TEND_FAILED" ] || return 0
    archive_run "$1" tend_archive archive_tend || tend_fail "archiving with tend wal-push (run $1)"
    return 0
}
[ "$TEND_ON" = 1 ] && tend_rows

# --- the runs ---------------------------------------------------------------------------------
for run in $(seq "$RUNS"); do
    # The source's rows as of this run's backups (the archiving steps of the previous run changed
    # them); the restores recover to the end of the archive, which ends after those backups.
    row_counts "$URL" >"$OUTDIR/rows-source.$run.txt"
    for list in BACKUPS RESTORES; do
        eval "steps=(\"\${$list[@]}\")"
        n=${#steps[@]}
        for i in $(seq 0 $((n - 1))); do
            step=${steps[$(((i + run - 1) % n))]}
            say "run $run/$RUNS: $step"
            "$step" "$run"
        done
        if [ "$list" = BACKUPS ]; then
            say "run $run/$RUNS: pg_basebackup (reference)"
            basebackup_ref "$run"
        fi
    done
    n=${#ARCHIVES[@]}
    for i in $(seq 0 $((n - 1))); do
        step=${ARCHIVES[$(((i + run - 1) % n))]}
        say "run $run/$RUNS: $step (pgbench -T $PGBENCH_SECONDS, then a backlog of $BACKLOG_SEGMENTS segments)"
        "$step" "$run"
    done
    # Every backup of the next run starts from pgBackRest's archive_command.
    archive_pgbr || die "setting pgBackRest's archive_command failed"
done

# --- report -----------------------------------------------------------------------------------
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MEM=$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
RESTORE_COMMAND=$(head -1 "$LOGS/pgbr_restore.1.restore_command" 2>/dev/null || true)
export R_RUNS=$RUNS R_CORES=$NPROC R_MEM=$MEM R_CPU=$CPU R_PGVERSION=$PGVERSION R_PGBR_VERSION=$PGBR_VERSION \
    R_SETTINGS=$SETTINGS R_DB_SIZE=$DB_SIZE R_CLUSTER_SIZE=$CLUSTER_SIZE R_SCALE=$SCALE R_SIZE_GB=$SIZE_GB \
    R_PGBENCH_SECONDS=$PGBENCH_SECONDS R_BACKLOG_SEGMENTS=$BACKLOG_SEGMENTS R_LOAD_START=$LOAD_START \
    R_LOAD_END=$LOAD_END R_TEND_ON=$TEND_ON R_TEND_FAILED=$TEND_FAILED R_RESTORE_COMMAND=$RESTORE_COMMAND \
    R_PGBR_PUSH=$PGBR_PUSH R_PGBR_PUSH_ASYNC=$PGBR_PUSH_ASYNC R_TEND_ARCHIVE_COMMAND=${TEND_ARCHIVE_COMMAND:-}
python3 - "$TIMES" "$SIZES" "$RESTORED" "$ARCH" "$OUTDIR/relations.txt" "$OUTDIR/rows-source.1.txt" \
    "$PGBR_CONF" <<'PY' >"$OUTDIR/results.md"
import os, statistics, sys
times_f, sizes_f, restored_f, arch_f, rel_f, rows_f, conf_f = sys.argv[1:]
E = os.environ
runs, cores, mem, cpu = int(E["R_RUNS"]), int(E["R_CORES"]), E["R_MEM"], E["R_CPU"]
pgversion, pgbr_version, settings = E["R_PGVERSION"], E["R_PGBR_VERSION"], E["R_SETTINGS"]
db_size, cluster_size, scale, size_gb = int(E["R_DB_SIZE"]), int(E["R_CLUSTER_SIZE"]), E["R_SCALE"], E["R_SIZE_GB"]
pgbench_s, backlog_segments = E["R_PGBENCH_SECONDS"], E["R_BACKLOG_SEGMENTS"]
load_start, load_end = E["R_LOAD_START"], E["R_LOAD_END"]
tend_on, tend_failed = E["R_TEND_ON"] == "1", E["R_TEND_FAILED"]
restore_command = E["R_RESTORE_COMMAND"]
pgbr_push, pgbr_push_async = E["R_PGBR_PUSH"], E["R_PGBR_PUSH_ASYNC"]
tend_archive_command = E["R_TEND_ARCHIVE_COMMAND"]

T = {}
loads = []
for line in open(times_f):
    run, label, wall, maxrss, user, system, total, sumpeaks, procs, names, load = line.split("\t")
    loads.append(float(load))
    T.setdefault(label, []).append(dict(wall=float(wall), maxrss=int(maxrss), cpu=float(user) + float(system),
                                        total=int(total), sumpeaks=int(sumpeaks), procs=int(procs),
                                        names=names.replace(":", " ×").replace(",", ", ")))
S = {}
for line in open(sizes_f):
    run, label, size = line.split()
    S.setdefault(label, []).append(int(size))
R = {}
for line in open(restored_f):
    run, label, secs = line.split()
    R.setdefault(label, []).append(float(secs))
A = {}
for line in open(arch_f):
    run, label, rest = line.rstrip("\n").split("\t")
    A.setdefault(label, []).append(dict(kv.split("=", 1) for kv in rest.split()))

med = lambda xs: statistics.median(xs)
mb = lambda b: b / 1e6
def m(label, key):
    return med([r[key] for r in T[label]])
def am(label, key):
    vals = [float(r[key]) for r in A[label] if r[key] != "-"]
    return med(vals) if vals else float("nan")

out = []
p = out.append
p(f"Machine: {cores} cores ({cpu}), {mem} GiB RAM. PostgreSQL {pgversion} in a throwaway cluster "
  f"({settings}; wal_segment_size 16 MB). pgBackRest {pgbr_version} (Debian). Medians of {runs} "
  f"run{'s' if runs != 1 else ''}; within each run the methods take turns, each timed command after a "
  "sync and a CHECKPOINT. Times are wall-clock (GNU time). CPU is user+system of the command and "
  "its children (not the server's). \"Largest process\" is GNU time's maximum resident set size: "
  "the largest single process of the tree (pgBackRest forks process-max worker processes, "
  "pg_basebackup none). \"Total\" is the peak of the summed resident memory of the whole process "
  "tree (the command and every worker or child), sampled every 50 ms from /proc: the honest "
  "comparison. Both are the highest of the runs.")
p("")
p(f"Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end}; the 1-minute "
  f"load read at the end of each timed command (it includes this benchmark's own work): median "
  f"{med(loads):.2f}, highest {max(loads):.2f}." if loads else "")
p("")
p("| data | |")
p("|---|---|")
p(f"| generated | `--size-gb {size_gb}`: pgbench `-i -s {scale}` (logged tables) + `events` (text, jsonb, bytea, timestamps, arrays) |")
p(f"| pg_database_size | {mb(db_size):,.0f} MB ({db_size / 1024**3:.2f} GiB) |")
p(f"| the cluster's files without pg_wal (what a physical backup copies) | {mb(cluster_size):,.0f} MB |")
for line in open(rel_f):
    name, size = line.split()
    p(f"| {name} (with indexes, TOAST) | {mb(int(size)):,.0f} MB |")
for line in open(rows_f):
    name, n = line.split()
    p(f"| rows in {name} (run 1) | {int(n):,} |")
p("")
p("pgBackRest's configuration (`--config`, everything else at its defaults; run as the postgres OS user):")
p("")
p("```ini")
for line in open(conf_f):
    if not line.startswith("#"):
        p(line.rstrip("\n"))
p("```")
p("")

brows = [
    ("pgbr_backup", "`pgbackrest backup --type=full` (zst level 3, process-max " + str(cores) + ", start-fast, archive-check: waits for the backup's WAL to be archived)"),
    ("tend_backup", "`tend backup run --physical`"),
    ("pg_basebackup", "reference: `pg_basebackup -Ft -X none --checkpoint=fast --compress=server-zstd:level=1`"),
]
p("| full physical backup | median | MB/s of cluster | CPU (median) | peak RSS, largest process | peak RSS, total (processes seen) | stored | stored / cluster | time / pgBackRest's |")
p("|---|---|---|---|---|---|---|---|---|")
for label, text in brows:
    if label not in T:
        continue
    w = m(label, "wall")
    size = med(S[label]) if label in S else None
    p(f"| {text} | {w:.1f} s | {mb(cluster_size) / w:.0f} | {m(label, 'cpu'):.1f} s | "
      f"{max(r['maxrss'] for r in T[label]) / 1024:.0f} MB | "
      f"{max(r['total'] for r in T[label]) / 1024:.0f} MB ({T[label][-1]['names']}) | "
      + (f"{mb(size):,.1f} MB | {size / cluster_size:.3f} | " if size else "- | - | ")
      + f"{w / m('pgbr_backup', 'wall'):.2f}x |")
p("")
if "pgbr_backup" in S:
    p(f"Stored is `du -sb` of the backup set's directory in the repository (without the archive). "
      f"The WAL that pgBackRest's backup needs to be consistent (its archive start to stop segments, "
      f"compressed in the archive) adds {med(S['pgbr_backup_wal']) / 1e3:,.0f} kB. "
      "pg_basebackup's is its output directory (base.tar.zst and backup_manifest, no WAL).")
    p("")

rrows = [
    ("pgbr_restore", "`pgbackrest restore --pg1-path=EMPTY --set=LABEL` (process-max " + str(cores) + ")"),
    ("tend_restore", "`tend restore --physical --to-dir EMPTY --latest`"),
]
p("| restore into an empty directory | median (until the command exits) | CPU (median) | peak RSS, largest process | peak RSS, total | then: start, recover to the end of the archive, promote (median, not in the restore time) | rows |")
p("|---|---|---|---|---|---|---|")
for label, text in rrows:
    if label not in T:
        continue
    rec = f"{med(R[label]):.1f} s" if label in R else "-"
    ok = f"equal to the source's in {len(R.get(label, []))} of {len(T[label])} runs"
    p(f"| {text} | {m(label, 'wall'):.1f} s | {m(label, 'cpu'):.1f} s | "
      f"{max(r['maxrss'] for r in T[label]) / 1024:.0f} MB | {max(r['total'] for r in T[label]) / 1024:.0f} MB | {rec} | {ok} |")
p("")
if restore_command:
    p(f"pgBackRest's restore writes `{restore_command.strip()}` to postgresql.auto.conf; the restored "
      "cluster is started with `archive_mode=off` so that it never archives into the repository.")
    p("")

arows = [
    ("pgbr_archive", f"`{pgbr_push}`"),
    ("pgbr_archive_async", f"reference: `{pgbr_push_async}` (archive-async=y, spool-path, process-max {cores})"),
    ("tend_archive", f"`{tend_archive_command or 'tend wal-push (set by tend pitr enable --yes)'}`"),
]
p(f"WAL archiving under `pgbench -c 4 -j 2 -T {pgbench_s}` (TPC-B-like, scale {scale}), pg_stat_archiver "
  "and pg_current_wal_lsn() sampled every second. Lag in segments is the segment number of "
  "pg_current_wal_lsn() minus last_archived_wal's (0 or 1 = caught up: the segment being written cannot be "
  "archived yet); in MB, from the end of the last archived segment to pg_current_wal_lsn(). "
  f"Backlog: archive_command = '' while {backlog_segments} segments are written, then the tool's "
  "command and the time until the last .ready file is gone: the archiver's throughput when it never waits for WAL.")
p("")
p("| archive_command | pgbench tps | WAL written, seg/s | archived during pgbench, seg/s | lag max / mean, segments | lag max / mean, MB | .ready when pgbench ends | drain to 0 | failed | backlog: segments, seconds, seg/s |")
p("|---|---|---|---|---|---|---|---|---|---|")
for label, text in arows:
    if label not in A:
        continue
    rs = A[label]
    p(f"| {text} | {am(label, 'tps'):.0f} | {am(label, 'gen_seg_s'):.2f} | {am(label, 'arch_seg_s'):.2f} | "
      f"{max(int(r['lag_max']) for r in rs if r['lag_max'] != '-')} / {am(label, 'lag_mean'):.2f} | "
      f"{max(float(r['lag_max_mb']) for r in rs if r['lag_max_mb'] != '-'):.1f} / {am(label, 'lag_mean_mb'):.1f} | "
      f"{am(label, 'ready_end'):.0f} | {am(label, 'drain_s'):.2f} s | "
      f"{sum(int(r['failed']) + int(r['backlog_failed']) for r in rs)} | "
      f"{am(label, 'backlog'):.0f}, {am(label, 'backlog_s'):.1f} s, {am(label, 'backlog_seg_s'):.1f} |")
p("")

if tend_on:
    p("| goal: tend against pgBackRest | target | measured | met |")
    p("|---|---|---|---|")
    def goal(name, target, value_fn, ok_fn, fmt="{:.2f}x"):
        try:
            v = value_fn()
            met = "-" if target == "-" else ("yes" if ok_fn(v) else "**no**")
            p(f"| {name} | {target} | {fmt.format(v)} | {met} |")
        except (KeyError, ValueError, ZeroDivisionError, StopIteration):
            p(f"| {name} | {target} | not measured | {'-' if target == '-' else '**no**'} |")
    goal("backup time / pgBackRest's", "<= 0.5x", lambda: m("tend_backup", "wall") / m("pgbr_backup", "wall"), lambda v: v <= 0.5)
    goal("restore time / pgBackRest's", "<= 0.8x", lambda: m("tend_restore", "wall") / m("pgbr_restore", "wall"), lambda v: v <= 0.8)
    goal("stored size / pgBackRest's", "<= 1.05x", lambda: med(S["tend_backup"]) / med(S["pgbr_backup"]), lambda v: v <= 1.05)
    goal("backup peak RSS, total / pgBackRest's total", "<= 1.0x",
         lambda: max(r["total"] for r in T["tend_backup"]) / max(r["total"] for r in T["pgbr_backup"]), lambda v: v <= 1.0)
    goal("archived seg/s during pgbench / pgBackRest's", ">= 1.0x",
         lambda: am("tend_archive", "arch_seg_s") / am("pgbr_archive", "arch_seg_s"), lambda v: v >= 1.0)
    goal("max archive lag (segments) / pgBackRest's", "<= 1.0x",
         lambda: max(int(r["lag_max"]) for r in A["tend_archive"]) / max(int(r["lag_max"]) for r in A["pgbr_archive"]), lambda v: v <= 1.0)
    goal("reference: backlog seg/s / pgBackRest's", "-",
         lambda: am("tend_archive", "backlog_seg_s") / am("pgbr_archive", "backlog_seg_s"), lambda v: True)
    p("")
    if tend_failed:
        p(f"**tend failed**: {tend_failed}; its later steps were skipped (logs in bench/.work/pitr/logs/).")
        p("")

p("All runs (wall seconds; total peak RSS in MB):")
p("")
for label, rs in T.items():
    p(f"- {label}: {', '.join('%.1f' % r['wall'] for r in rs)} s; {', '.join('%.0f' % (r['total'] / 1024) for r in rs)} MB")
for label, xs in R.items():
    p(f"- {label}, start to promoted: {', '.join(f'{x:.1f}' for x in xs)} s")
for label, xs in S.items():
    p(f"- {label} stored: {', '.join(f'{mb(x):.1f}' for x in xs)} MB")
for label, rs in A.items():
    for i, r in enumerate(rs, 1):
        p(f"- {label} run {i}: " + ", ".join(f"{k} {v}" for k, v in r.items()))
print("\n".join(out))
PY
echo
cat "$OUTDIR/results.md"
[ -z "$TEND_FAILED" ] || exit 1
