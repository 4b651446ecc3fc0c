#!/usr/bin/env bash
# Benchmark: a retention rule with `action = "archive-to-store"` (issue 15: archive to the
# backup store as compressed, encrypted JSON lines with a manifest) against the script it
# replaces: export the old rows as JSON lines (psql | zstd | age), then delete them in a
# loop of `DELETE ... WHERE ctid IN (SELECT ctid ... LIMIT 5000)`, each batch its own
# transaction. Both keep the same rows the same way (row_to_json, zstd level 3, age to one
# X25519 recipient); the script loses rows written or changed between its export and its
# delete, tend does not (rows move to staging in the statement that deletes them).
#
#   bench/archive.sh [--runs N] [--rows N] [--duty-cycle P] [--no-build] [--tend BIN]
#
# --runs N    archives of each kind, each on a fresh copy of the database (default 3)
# --rows N    rows in `events` (default 1,000,000), half of them older than the rule's 30 days
# --duty-cycle P  tend's cleanup.duty_cycle (default 100%: the script does not rest either;
#             tend's own default is 6%)
# --no-build  do not build tend (target/release/tend must exist)
# --tend BIN  use this tend binary
#
# `events` has a bigint key, a timestamp, a kind and a jsonb payload of about 250 bytes. A
# third row, tend with `action = "delete"`, shows what the archive adds to a plain purge.
# tend runs with its default 200 ms batch budget, into a directory store. Throwaway PostgreSQL 15 cluster,
# fsync on. Times are wall clock of the whole command. Each tend run is read back: with
# `tend cleanup archived --out` (every row, compared with the rows deleted) and one object
# with the stock `age` and `zstd` CLIs. Prints a Markdown report and writes it to
# bench/.work/archive/results.md. Timing is never asserted: the script fails when a command
# fails or an archive is not exactly the rows deleted.
set -euo pipefail

RUNS=3
ROWS=1000000
DUTY=100%
BUILD=1
TEND_BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --rows) ROWS=$2; shift 2 ;;
        --duty-cycle) DUTY=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --tend) TEND_BIN=$2; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "archive.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for v in "$RUNS" "$ROWS"; do
    case "$v" in ''|*[!0-9]*|0) echo "archive.sh: --runs and --rows take positive integers" >&2; exit 2 ;; esac
done

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUTDIR=$BENCH/.work/archive
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
unset PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC DATABASE_URL
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(\(TEND\|BACKUP\)_[A-Z0-9_]*\)=.*/\1/p')
export NO_COLOR=1

die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
for tool in age age-keygen zstd python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh --for-tests installs it)"
done

find_tend "$ROOT" "$BUILD" "$TEND_BIN"
start_cluster "$OUTDIR" -c shared_buffers=256MB -c max_wal_size=2GB -c log_min_duration_statement=150 -c log_checkpoints=on

# --- the template database ---------------------------------------------------------------------
q "$URL" -c "CREATE DATABASE archive_template"
TEMPLATE=$(url_of archive_template)
q "$TEMPLATE" >"$OUTDIR/schema.log" 2>&1 <<SQL || die "loading the data failed: see $OUTDIR/schema.log"
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL
);
INSERT INTO events (at, kind, payload)
SELECT now() - ((g % 2) * 31 + g % 29) * interval '1 day' - (g % 3600) * interval '1 second',
       (ARRAY['page.viewed', 'order.placed', 'user.login', 'email.sent'])[1 + g % 4],
       jsonb_build_object('user_id', g % 50000, 'session', md5(g::text), 'path', '/app/items/' || g,
                          'agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
                          'ip', '10.' || (g % 250) || '.' || (g % 199) || '.' || (g % 97))
  FROM generate_series(1, $ROWS) g;
CREATE INDEX ON events (at);
VACUUM ANALYZE events;
SQL
OLD="at < now() - interval '30 days'"
# Half the rows are 0 to 29 days old, half 31 to 60: none crosses the rule's edge while the
# runs go.
OLD_ROWS=$(q "$TEMPLATE" -c "SELECT count(*) FROM events WHERE $OLD")
TABLE_MB=$(q "$TEMPLATE" -c "SELECT pg_total_relation_size('events') / 1000000")

age-keygen -o "$OUTDIR/identity.txt" 2>/dev/null
RECIPIENT=$(age-keygen -y "$OUTDIR/identity.txt")
PROJECT=$OUTDIR/project
mkdir -p "$PROJECT"
for action in archive-to-store delete; do
    mkdir -p "$PROJECT/$action"
    cat >"$PROJECT/$action/tend.toml" <<TOML
[cleanup]
soft_delete = "off"
duty_cycle = "$DUTY"

[[retention]]
name = "old-events"
table = "events"
column = "at"
older_than = "30d"
action = "$action"
TOML
done

now() { date +%s.%N; }
TEND_TIMES=()
DELETE_TIMES=()
DELETE_LONGEST=()
PEER_TIMES=()
LONGEST=()
TEND_MB=()
PEER_MB=()
OBJECTS=()
for run in $(seq 1 "$RUNS"); do
    for kind in tend delete peer; do
        db="archive_${kind}_$run"
        q "$URL" -c "CREATE DATABASE $db TEMPLATE archive_template"
        target=$(url_of "$db")
        q "$target" -c "SELECT row_to_json(e)::text FROM events e WHERE $OLD" | LC_ALL=C sort >"$OUTDIR/expected.jsonl"
        store=$OUTDIR/store-$kind-$run
        mkdir -p "$store"
        start=$(now)
        if [ "$kind" = tend ]; then
            (cd "$PROJECT/archive-to-store" && DATABASE_URL=$target BACKUP_DIR=$store BACKUP_AGE_RECIPIENTS=$RECIPIENT \
                "$TEND" cleanup --yes --json >"$OUTDIR/tend-$run.json" 2>"$OUTDIR/tend-$run.log") \
                || die "tend cleanup failed: see $OUTDIR/tend-$run.log"
        elif [ "$kind" = delete ]; then
            (cd "$PROJECT/delete" && DATABASE_URL=$target \
                "$TEND" cleanup --yes --json >"$OUTDIR/delete-$run.json" 2>"$OUTDIR/delete-$run.log") \
                || die "tend cleanup (delete) failed: see $OUTDIR/delete-$run.log"
        else
            PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -XqAt -v ON_ERROR_STOP=1 -v FETCH_COUNT=10000 \
                "$target" -c "SELECT row_to_json(e)::text FROM events e WHERE $OLD" \
                | zstd -3 -q | age -r "$RECIPIENT" >"$store/events.jsonl.zst.age" \
                || die "the hand-written export failed"
            q "$target" -c "DO \$\$ DECLARE n bigint; BEGIN LOOP
                    DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE $OLD LIMIT 5000);
                    GET DIAGNOSTICS n = ROW_COUNT; COMMIT; EXIT WHEN n = 0; END LOOP; END \$\$" \
                || die "the hand-written delete failed"
        fi
        end=$(now)
        took=$(python3 -c "print(f'{$end - $start:.2f}')")
        [ "$(q "$target" -c "SELECT count(*) FROM events WHERE $OLD")" = 0 ] || die "$kind left old rows in $db"
        [ "$(q "$target" -c "SELECT count(*) FROM events")" = $((ROWS - OLD_ROWS)) ] || die "$kind took recent rows in $db"
        mb=$(du -sm "$store" | cut -f1)
        if [ "$kind" = tend ]; then
            TEND_TIMES+=("$took")
            TEND_MB+=("$mb")
            LONGEST+=("$(python3 -c "import json; print(json.load(open('$OUTDIR/tend-$run.json'))['rules'][0]['longest_batch_ms'])")")
            # Read back with tend: exactly the rows deleted.
            rm -rf "$OUTDIR/read-$run"
            (cd "$PROJECT/archive-to-store" && BACKUP_DIR=$store BACKUP_AGE_IDENTITY_FILE=$OUTDIR/identity.txt \
                "$TEND" cleanup archived --out "$OUTDIR/read-$run" >"$OUTDIR/read-$run.log" 2>&1) \
                || die "tend cleanup archived failed: see $OUTDIR/read-$run.log"
            LC_ALL=C sort "$OUTDIR"/read-"$run"/*.jsonl | cmp -s - "$OUTDIR/expected.jsonl" \
                || die "run $run: the archived rows are not the rows deleted"
            # And one object with the stock CLIs: its run key, then the rows.
            object=$(find "$store/retention" -name '*.jsonl.zst.age' | sort | head -1)
            key=$(find "$store/retention" -path '*/keys/*.age' | sort | head -1)
            age -d -i "$OUTDIR/identity.txt" "$key" >"$OUTDIR/run.key"
            lines=$(age -d -i "$OUTDIR/run.key" "$object" | zstd -d -q | wc -l)
            manifest_rows=$(python3 -c "
import json, glob, os
rows = {b['object']: b['rows'] for m in glob.glob('$store/retention/**/manifest-*.json', recursive=True)
        for b in json.load(open(m))['batches']}
print(rows[os.path.basename('$object')])")
            [ "$lines" = "$manifest_rows" ] || die "run $run: age and zstd read $lines rows of an object its manifest says has $manifest_rows"
            OBJECTS+=("$(find "$store/retention" -name '*.jsonl.zst.age' | wc -l)")
        elif [ "$kind" = delete ]; then
            DELETE_TIMES+=("$took")
            DELETE_LONGEST+=("$(python3 -c "import json; print(json.load(open('$OUTDIR/delete-$run.json'))['rules'][0]['longest_batch_ms'])")")
        else
            PEER_TIMES+=("$took")
            PEER_MB+=("$mb")
        fi
        q "$URL" -c "DROP DATABASE $db"
    done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
T=$(median "${TEND_TIMES[@]}")
P=$(median "${PEER_TIMES[@]}")
D=$(median "${DELETE_TIMES[@]}")
DELETE_RATE=$(python3 -c "print(f'{$OLD_ROWS / $D:,.0f}')")
RATIO=$(python3 -c "print(f'{$T / $P:.2f}')")
TEND_RATE=$(python3 -c "print(f'{$OLD_ROWS / $T:,.0f}')")
PEER_RATE=$(python3 -c "print(f'{$OLD_ROWS / $P:,.0f}')")
{
    echo "## Archive to the backup store: $OLD_ROWS rows of $ROWS ($TABLE_MB MB table with indexes)"
    echo
    echo "$("$TEND" --version | head -1), PostgreSQL $(q "$URL" -c 'SHOW server_version'), $(nproc) cores;" \
         "$RUNS runs of each, each on a fresh copy; both write row_to_json lines, zstd -3, age to one recipient."
    echo
    echo "| | median | rows/s | runs (s) | stored (MB) |"
    echo "|---|---|---|---|---|"
    echo "| tend cleanup (archive-to-store, duty cycle $DUTY) | ${T} s | $TEND_RATE | ${TEND_TIMES[*]} | ${TEND_MB[*]} |"
    echo "| psql \| zstd \| age, then DELETE ... LIMIT 5000 loop | ${P} s | $PEER_RATE | ${PEER_TIMES[*]} | ${PEER_MB[*]} |"
    echo "| ratio tend / script | ${RATIO}x | | | |"
    echo "| tend cleanup (action = delete, for scale: no archive) | ${D} s | $DELETE_RATE | ${DELETE_TIMES[*]} | |"
    echo
    echo "tend's longest batch that deleted rows (ms): archive ${LONGEST[*]}, delete ${DELETE_LONGEST[*]};" \
         "objects stored per archive run: ${OBJECTS[*]}. Statements over 150 ms are in the server log" \
         "(bench/.work/archive/server.log): the empty last pass from the table's start, which deletes nothing, is one."
    echo "Every tend run read back whole by \`tend cleanup archived --out\` (equal to the rows deleted) and one object by \`age -d | zstd -d\`."
    echo
    echo "Command: bench/archive.sh --runs $RUNS --rows $ROWS --duty-cycle $DUTY"
} | tee "$OUTDIR/results.md"
