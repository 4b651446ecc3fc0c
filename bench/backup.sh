#!/usr/bin/env bash
# Benchmark: `tend backup run` and `tend restore` against pg_dump | gzip, pg_dump -Fc and the
# uncompressed pg_dump -Fc -Z0 / pg_restore -j2 floor, in one run, on a throwaway PostgreSQL
# 15 cluster with the durability defaults (fsync on), on a generated database of mixed data
# (pgbench's logged tables plus a table of text, jsonb, bytea, timestamps and arrays).
# Reports medians, output sizes, peak memory, the issue's goals as ratios, and checks that the
# restored database holds the source's rows.
#
#   bench/backup.sh [--runs N] [--size-gb X] [--no-build] [--no-extras] [--restores-only]
#
# --runs N      timed rounds (default 3); each round runs every method once, in turn
# --size-gb X   the database to generate, at least X GiB (default 1.5)
# --no-extras   leave out the extra rows (tend backup and restore with an age key instead of
#               the passphrase, pg_dump -Z0 | zstd, pg_restore --single-transaction,
#               tend restore --single-transaction)
# --restores-only  take the backups once (in run 1, timed but one sample each), then time
#               only the restores in every run
#
# Prints a Markdown report and writes it to bench/.work/backup/results.md; the output of every
# command goes to bench/.work/backup/logs/. Timing is never asserted: the script fails only
# when a command fails or the restored rows differ.
set -euo pipefail

RUNS=3
SIZE_GB=1.5
BUILD=1
EXTRAS=1
RESTORES_ONLY=0
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --size-gb) SIZE_GB=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-extras) EXTRAS=0; shift ;;
        --restores-only) RESTORES_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "backup.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*|0) echo "backup.sh: --runs takes a positive integer" >&2; exit 2 ;; esac
python3 -c "import sys; assert float(sys.argv[1]) > 0" "$SIZE_GB" 2>/dev/null \
    || { echo "backup.sh: --size-gb takes a positive number" >&2; exit 2; }

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUTDIR=$BENCH/.work/backup
LOGS=$OUTDIR/logs
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=$PGBIN/psql
PG_DUMP=$PGBIN/pg_dump
PG_RESTORE=$PGBIN/pg_restore
PGBENCH=$PGBIN/pgbench
# Settings from the caller's environment must not steer any tool elsewhere.
unset PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC \
      DATABASE_URL BACKUP_DIR BACKUP_ENCRYPTION_KEY BACKUP_AGE_RECIPIENTS \
      BACKUP_AGE_IDENTITY_FILE BACKUP_COMPRESSION_LEVEL BACKUP_S3_BUCKET BACKUP_S3_PREFIX
export NO_COLOR=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

for tool in "$PSQL" "$PG_DUMP" "$PG_RESTORE" "$PGBENCH"; do
    [ -x "$tool" ] || die "$tool not found (apt-get install postgresql-15, or set PGBIN)"
done
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
command -v python3 >/dev/null || die "python3 is needed for the report"
if [ "$EXTRAS" = 1 ]; then
    command -v zstd >/dev/null || die "zstd is needed for the reference rows (or --no-extras)"
    command -v age-keygen >/dev/null || die "age-keygen is needed for the reference rows (or --no-extras)"
fi

if [ "$BUILD" = 1 ]; then
    say "building tend (release)"
    (cd "$ROOT" && cargo build --release -q -p tend) >&2
fi
TEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/tend
[ -x "$TEND" ] || die "$TEND not found; run without --no-build"

mkdir -p "$OUTDIR"
rm -rf "$LOGS"
mkdir -p "$LOGS"
TIMES=$OUTDIR/times.tsv
: > "$TIMES"

WORK=$(mktemp -d /tmp/tend-bench-backup.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    (cd "$WORK" && "$TEND" dev destroy --yes >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
mkdir -p out store store-key

say "starting a throwaway PostgreSQL cluster"
URL=$("$TEND" dev url -q 2>"$LOGS/dev-start.err") || die "tend dev url failed: $(cat "$LOGS/dev-start.err")"
case "$URL" in postgresql://*/app) ;; *) die "unexpected URL from tend dev url: $URL" ;; esac
BASE=${URL%/app}
PASSPHRASE="bench-$(date +%s)-passphrase"
if [ "$EXTRAS" = 1 ]; then
    age-keygen -o "$WORK/key.txt" 2>/dev/null
    RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$WORK/key.txt" | head -1)
fi
q() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -XqAt -v ON_ERROR_STOP=1 "$@"; }

# --- the database -----------------------------------------------------------------------------
TARGET_BYTES=$(python3 -c "print(int(float('$SIZE_GB') * 1024**3))")
# Half pgbench (scale 1 is about 15.6 MB with its keys), half the mixed table.
SCALE=$(python3 -c "print(max(1, round($TARGET_BYTES / 2 / 15.6e6)))")
say "generating the database: pgbench -i -s $SCALE (logged tables), then the mixed table up to $SIZE_GB GiB"
"$PGBENCH" -i -q -s "$SCALE" "$URL" >"$LOGS/pgbench-init.log" 2>&1 || die "pgbench -i failed: see $LOGS/pgbench-init.log"

q "$URL" <<'SQL'
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
BATCH=200000
LO=1
while :; do
    HI=$((LO + BATCH - 1))
    q -v lo="$LO" -v hi="$HI" "$URL" <<'SQL'
INSERT INTO events
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
    LO=$((HI + 1))
    SIZE=$(q "$URL" -c "SELECT pg_database_size(current_database())")
    [ "$SIZE" -ge "$TARGET_BYTES" ] && break
done
q "$URL" -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT"
DB_SIZE=$(q "$URL" -c "SELECT pg_database_size(current_database())")
q -F ' ' "$URL" -c "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN ('pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history', 'events') ORDER BY 1" >"$OUTDIR/relations.txt"

# Exact row counts of every user table, one "schema.table count" line each.
counts() {
    q "$1" -c "SELECT format('SELECT %L, count(*) FROM %I.%I;', n.nspname || '.' || c.relname, n.nspname, c.relname)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND n.nspname NOT LIKE 'pg\\_%'" | q -F ' ' "$1" | LC_ALL=C sort
}
counts "$URL" >"$OUTDIR/rows-source.txt"
say "database: $(numfmt --to=iec "$DB_SIZE") ($DB_SIZE bytes); rows: $(tr '\n' ' ' <"$OUTDIR/rows-source.txt")"

# --- timing -----------------------------------------------------------------------------------
# timed RUN LABEL CMD...: runs CMD under GNU time after a sync and a checkpoint, so no method
# pays for the previous one's writes; appends "run label seconds maxrss_kb user sys" to TIMES.
timed() {
    local run=$1 label=$2
    shift 2
    sync
    q "$URL" -c CHECKPOINT
    if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.out" "$@" \
            >"$LOGS/$label.$run.out" 2>"$LOGS/$label.$run.err"; then
        die "$label failed in run $run: $(tail -5 "$LOGS/$label.$run.err")"
    fi
    printf '%s\t%s\t%s\t%s\n' "$run" "$label" "$(tail -1 "$WORK/time.out" | tr ' ' '\t')" \
        "$(cut -d' ' -f1 /proc/loadavg)" >>"$TIMES"
}
size_of() { stat -c %s "$1"; }
record_size() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$OUTDIR/sizes.tsv"; }
: > "$OUTDIR/sizes.tsv"
: > "$OUTDIR/scrypt.tsv"

backup_tend() {
    rm -rf "$WORK/store/"*
    timed "$1" tend_backup env DATABASE_URL="$URL" BACKUP_DIR="$WORK/store" \
        BACKUP_ENCRYPTION_KEY="$PASSPHRASE" "$TEND" backup run --json
    TEND_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$LOGS/tend_backup.$1.out")
    record_size "$1" tend_backup "$(size_of "$WORK/store/$TEND_ID/data.dump.zst.age")"
    # age picks the scrypt work factor by timing this machine; its header line is
    # "-> scrypt SALT LOG2N".
    printf '%s\t%s\n' "$1" "$(head -c 1024 "$WORK/store/$TEND_ID/data.dump.zst.age" \
        | tr -c '[:print:]\n' '?' | sed -n 's/^-> scrypt [^ ]* \([0-9]*\)$/\1/p' | head -1)" >>"$OUTDIR/scrypt.tsv"
    RAW_BYTES=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["raw_bytes"])' "$LOGS/tend_backup.$1.out")
}
backup_tend_key() {
    rm -rf "$WORK/store-key/"*
    timed "$1" tend_backup_key env DATABASE_URL="$URL" BACKUP_DIR="$WORK/store-key" \
        BACKUP_AGE_RECIPIENTS="$RECIPIENT" "$TEND" backup run --json
    KEY_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$LOGS/tend_backup_key.$1.out")
    record_size "$1" tend_backup_key "$(size_of "$WORK/store-key/$KEY_ID/data.dump.zst.age")"
}
backup_gzip() {
    rm -f "$WORK/out/db.sql.gz"
    timed "$1" gzip_backup bash -c 'set -o pipefail; "$1" "$2" | gzip -6 > "$3"' _ \
        "$PG_DUMP" "$URL" "$WORK/out/db.sql.gz"
    record_size "$1" gzip_backup "$(size_of "$WORK/out/db.sql.gz")"
}
backup_fc() {
    rm -f "$WORK/out/db.dump"
    timed "$1" fc_backup bash -c '"$1" -Fc "$2" > "$3"' _ "$PG_DUMP" "$URL" "$WORK/out/db.dump"
    record_size "$1" fc_backup "$(size_of "$WORK/out/db.dump")"
}
backup_z0() {
    rm -f "$WORK/out/db-z0.dump"
    timed "$1" z0_backup bash -c '"$1" -Fc -Z0 "$2" > "$3"' _ "$PG_DUMP" "$URL" "$WORK/out/db-z0.dump"
    record_size "$1" z0_backup "$(size_of "$WORK/out/db-z0.dump")"
}
backup_zstd() {
    rm -f "$WORK/out/db.dump.zst"
    timed "$1" zstd_backup bash -c 'set -o pipefail; "$1" -Fc -Z0 "$2" | zstd -q -3 -T2 > "$3"' _ \
        "$PG_DUMP" "$URL" "$WORK/out/db.dump.zst"
    record_size "$1" zstd_backup "$(size_of "$WORK/out/db.dump.zst")"
}

# restore_into RUN LABEL CMD...: a fresh empty database, the timed restore, the row check in
# the first round, and the database dropped again. The command's last argument may be
# @DB@, replaced by the new database's URL.
CHECKED=()
restore_into() {
    local run=$1 label=$2 db="r_$2"
    shift 2
    q "$URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    local args=()
    for a in "$@"; do args+=("${a//@DB@/$BASE/$db}"); done
    timed "$run" "$label" "${args[@]}"
    if [ "$run" = 1 ]; then
        counts "$BASE/$db" >"$OUTDIR/rows-$label.txt"
        if diff -u "$OUTDIR/rows-source.txt" "$OUTDIR/rows-$label.txt" >"$LOGS/rows-$label.diff"; then
            CHECKED+=("$label")
        else
            die "$label: the restored rows differ from the source's: $(cat "$LOGS/rows-$label.diff")"
        fi
    fi
    q "$URL" -c "DROP DATABASE $db"
}
restore_tend() {
    restore_into "$1" tend_restore env BACKUP_DIR="$WORK/store" BACKUP_ENCRYPTION_KEY="$PASSPHRASE" \
        "$TEND" restore "$TEND_ID" --to @DB@
}
restore_tend_st() {
    restore_into "$1" tend_restore_st env BACKUP_DIR="$WORK/store" BACKUP_ENCRYPTION_KEY="$PASSPHRASE" \
        "$TEND" restore "$TEND_ID" --single-transaction --to @DB@
}
restore_tend_key() {
    restore_into "$1" tend_restore_key env BACKUP_DIR="$WORK/store-key" \
        BACKUP_AGE_IDENTITY_FILE="$WORK/key.txt" "$TEND" restore "$KEY_ID" --to @DB@
}
restore_pgr_1() {
    restore_into "$1" pgrestore1_restore "$PG_RESTORE" --single-transaction -d @DB@ "$WORK/out/db-z0.dump"
}
restore_psql() {
    restore_into "$1" psql_restore bash -c \
        'set -o pipefail; gunzip -c "$1" | "$2" -X -q -v ON_ERROR_STOP=1 -d "$3" > /dev/null' _ \
        "$WORK/out/db.sql.gz" "$PSQL" @DB@
}
restore_pgr() {
    restore_into "$1" pgrestore_restore "$PG_RESTORE" -j2 -d @DB@ "$WORK/out/db-z0.dump"
}

BACKUPS=(backup_tend backup_gzip backup_fc backup_z0)
RESTORES=(restore_tend restore_psql restore_pgr)
if [ "$EXTRAS" = 1 ]; then
    BACKUPS+=(backup_tend_key backup_zstd)
    RESTORES+=(restore_tend_key restore_pgr_1)
    if "$TEND" restore --help 2>/dev/null | grep -q -- '--single-transaction'; then
        RESTORES+=(restore_tend_st)
    fi
fi

for run in $(seq "$RUNS"); do
    # The methods take turns: each round starts one further along the list.
    n=${#BACKUPS[@]}
    [ "$RESTORES_ONLY" = 1 ] && [ "$run" -gt 1 ] && n=0
    for i in $(seq 0 $((n - 1))); do
        step=${BACKUPS[$(((i + run - 1) % n))]}
        say "run $run/$RUNS: $step"
        "$step" "$run"
    done
    n=${#RESTORES[@]}
    for i in $(seq 0 $((n - 1))); do
        step=${RESTORES[$(((i + run - 1) % n))]}
        say "run $run/$RUNS: $step"
        "$step" "$run"
    done
done

# The manifest's own row counts, for the report.
env BACKUP_DIR="$WORK/store" "$TEND" backup show "$TEND_ID" --json \
    | python3 -c 'import json, sys
for t in json.load(sys.stdin)["tables"]:
    print("%s.%s %s" % (t["schema"], t["table"], t["rows"]))' \
    | LC_ALL=C sort >"$OUTDIR/rows-manifest.txt"
MANIFEST_ROWS=same
diff -q "$OUTDIR/rows-source.txt" "$OUTDIR/rows-manifest.txt" >/dev/null || MANIFEST_ROWS=different

# --- report -----------------------------------------------------------------------------------
PGVERSION=$(q "$URL" -c "SHOW server_version")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MEM=$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
python3 - "$TIMES" "$OUTDIR/sizes.tsv" "$OUTDIR/relations.txt" "$OUTDIR/rows-source.txt" \
    "$OUTDIR/scrypt.tsv" "$DB_SIZE" "$RAW_BYTES" "$RUNS" "$(nproc)" "$MEM" "$CPU" "$PGVERSION" \
    "$MANIFEST_ROWS" "${CHECKED[*]}" "$SIZE_GB" "$SCALE" "$RESTORES_ONLY" >"$OUTDIR/results.md" <<'PY'
import statistics, sys
(times_f, sizes_f, rel_f, rows_f, scrypt_f, db_size, raw_bytes, runs, cores, mem, cpu, pgversion,
 manifest_rows, checked, size_gb, scale, restores_only) = sys.argv[1:]
db_size, raw_bytes, runs = int(db_size), int(raw_bytes), int(runs)
times, rss, cpu_s, sizes = {}, {}, {}, {}
loads = []
for line in open(times_f):
    run, label, sec, kb, user, system, load = line.split()
    loads.append(float(load))
    times.setdefault(label, []).append(float(sec))
    rss.setdefault(label, []).append(int(kb))
    cpu_s.setdefault(label, []).append(float(user) + float(system))
for line in open(sizes_f):
    run, label, size = line.split()
    sizes[label] = int(size)
log_n = [l.split()[1] if len(l.split()) > 1 else "?" for l in open(scrypt_f)]
med = {k: statistics.median(v) for k, v in times.items()}
mb = lambda b: b / 1e6
peak = lambda label: max(rss[label]) / 1024
print(f"Machine: {cores} cores ({cpu}), {mem} GiB, PostgreSQL {pgversion} in a throwaway cluster "
      f"(fsync on, default settings). Medians of {runs} run{'s' if runs != 1 else ''}; the methods "
      "take turns within each run, each after a sync and a CHECKPOINT. Times are wall-clock "
      "(GNU time); CPU is user+system of the command and its children (pg_dump, gzip, zstd, "
      "pg_restore, psql), not the server's; peak RSS is GNU time's maximum resident set size "
      "of the command or its largest child, the highest of the runs.")
print()
print("| database | |")
print("|---|---|")
print(f"| generated | `--size-gb {size_gb}`: pgbench `-i -s {scale}` (logged tables) + `events` (text, jsonb, bytea, timestamps, arrays) |")
print(f"| pg_database_size | {mb(db_size):,.0f} MB ({db_size / 1024**3:.2f} GiB) |")
for line in open(rel_f):
    name, size = line.split()
    print(f"| {name} (with indexes, TOAST) | {mb(int(size)):,.0f} MB |")
for line in open(rows_f):
    name, n = line.split()
    print(f"| rows in {name} | {int(n):,} |")
print(f"| pg_dump custom archive, uncompressed (tend's raw stream) | {mb(raw_bytes):,.0f} MB |")
print()
rows = [
    ("tend_backup", "`tend backup run` (zstd -3 multithreaded, age with a passphrase (scrypt), SHA-256, into BACKUP_DIR)"),
    ("tend_backup_key", "`tend backup run` with an age X25519 key (BACKUP_AGE_RECIPIENTS) instead of the passphrase"),
    ("gzip_backup", "`pg_dump URL \\| gzip -6 > db.sql.gz` (plain SQL, `set -o pipefail`)"),
    ("fc_backup", "`pg_dump -Fc URL > db.dump` (default compression, zlib 6)"),
    ("z0_backup", "`pg_dump -Fc -Z0 URL > db-z0.dump` (uncompressed: the floor)"),
    ("zstd_backup", "reference: `pg_dump -Fc -Z0 URL \\| zstd -3 -T2 > db.dump.zst`"),
]
t = med["tend_backup"]
print("| backup | median | MB/s of database | CPU (median) | peak RSS | output | output / gzip's | time / tend's |")
print("|---|---|---|---|---|---|---|---|")
for label, cmd in rows:
    if label not in med:
        continue
    s = med[label]
    print(f"| {cmd} | {s:.1f} s | {mb(db_size) / s:.0f} | {statistics.median(cpu_s[label]):.1f} s | "
          f"{peak(label):.0f} MB | {mb(sizes[label]):,.1f} MB | "
          f"{sizes[label] / sizes['gzip_backup']:.2f}x | {s / t:.2f}x |")
print()
if restores_only == "1":
    print("(`--restores-only`: each backup ran once, in run 1; the backup rows and goals are one "
          "sample each.)")
    print()
rrows = [
    ("tend_restore", "`tend restore ID --to URL` (passphrase; rows on one COPY connection per CPU, here 2; post-data by `pg_restore -j2`)"),
    ("tend_restore_key", "`tend restore ID --to URL` of the backup with an age key (BACKUP_AGE_IDENTITY_FILE)"),
    ("psql_restore", "`gunzip -c db.sql.gz \\| psql -X -q -v ON_ERROR_STOP=1 URL`"),
    ("pgrestore_restore", "`pg_restore -j2 -d URL db-z0.dump` (uncompressed, 2 jobs: the limit)"),
    ("pgrestore1_restore", "reference: `pg_restore --single-transaction -d URL db-z0.dump` (uncompressed, what tend's stream feeds)"),
    ("tend_restore_st", "reference: `tend restore ID --single-transaction --to URL` (passphrase; streamed into `pg_restore --single-transaction`)"),
]
t = med["tend_restore"]
print("| restore into a fresh empty database | median | CPU (median) | peak RSS | time / tend's |")
print("|---|---|---|---|---|")
for label, cmd in rrows:
    if label not in med:
        continue
    s = med[label]
    print(f"| {cmd} | {s:.1f} s | {statistics.median(cpu_s[label]):.1f} s | {peak(label):.0f} MB | {s / t:.2f}x |")
print()
key = "tend_backup_key" in med and "tend_restore_key" in med
def goal(name, target, f, ok):
    cells = [name, target]
    for b, r in (("tend_backup", "tend_restore"), ("tend_backup_key", "tend_restore_key")):
        if b not in med or r not in med:
            continue
        v, text = f(b, r)
        cells += [text, "yes" if ok(v) else "**no**"]
    print("| " + " | ".join(cells) + " |")
print("| goal | target | passphrase | met | " + ("age key | met |" if key else ""))
print("|---|---|---|---|" + ("---|---|" if key else ""))
def ratio(v):
    return v, f"{v:.2f}x"
goal("backup: faster than `pg_dump \\| gzip -6`", ">= 2.5x", lambda b, r: ratio(med["gzip_backup"] / med[b]), lambda v: v >= 2.5)
goal("backup: faster than `pg_dump -Fc`", ">= 2x", lambda b, r: ratio(med["fc_backup"] / med[b]), lambda v: v >= 2)
goal("backup: output size / gzip's", "<= 0.95x", lambda b, r: ratio(sizes[b] / sizes["gzip_backup"]), lambda v: v <= 0.95)
goal("backup: wall time / `pg_dump -Fc -Z0`", "<= 1.15x", lambda b, r: ratio(med[b] / med["z0_backup"]), lambda v: v <= 1.15)
goal("restore: faster than `gunzip \\| psql`", ">= 1.6x", lambda b, r: ratio(med["psql_restore"] / med[r]), lambda v: v >= 1.6)
goal("restore: time / `pg_restore -j2` of the uncompressed dump", "<= 1.1x", lambda b, r: ratio(med[r] / med["pgrestore_restore"]), lambda v: v <= 1.1)
goal("peak memory of `tend backup run` (or pg_dump, its child)", "< 150 MB", lambda b, r: (peak(b), f"{peak(b):.0f} MB"), lambda v: v < 150)
goal("peak memory of `tend restore` (or pg_restore, its child)", "< 150 MB", lambda b, r: (peak(r), f"{peak(r):.0f} MB"), lambda v: v < 150)
print()
print(f"The scrypt work factor age chose for the passphrase backups (it times the machine each "
      f"time), log2 N by run: {', '.join(log_n)} (scrypt then needs 2^(log2 N + 10) bytes of "
      f"memory, to encrypt and again to decrypt).")
print()
print(f"Correctness: the per-table row counts of the databases restored in run 1 by "
      f"{', '.join(checked.split())} equal the source's; the manifest's row counts are the "
      f"{manifest_rows} as the source's.")
print()
print(f"Machine load (1-minute load average, which includes this benchmark's own work, "
      f"read at the end of each timed command): median {statistics.median(loads):.2f}, "
      f"highest {max(loads):.2f}.")
print()
print("All runs (seconds; peak RSS in MB):")
print()
for label in med:
    print(f"- {label}: {', '.join(f'{x:.1f}' for x in times[label])}; "
          f"{', '.join(f'{x / 1024:.0f}' for x in rss[label])} MB")
PY
echo
cat "$OUTDIR/results.md"
