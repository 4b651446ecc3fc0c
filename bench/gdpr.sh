#!/usr/bin/env bash
# Benchmark: `tend gdpr erase` (issue 15: one subject with 10,000 rows across 20 tables in
# under 5 s) against the hand-written erasure it replaces: `DELETE FROM users WHERE id = $1`
# in one transaction, leaving the cascades and SET NULLs to the database (which is all an
# erasure is on this schema, so both do the same work). Also `tend gdpr export` of the same
# subject.
#
#   bench/gdpr.sh [--runs N] [--users N] [--per-table N] [--no-build] [--tend BIN]
#
# --runs N       erasures of each kind, each on a fresh copy of the database (default 5)
# --users N      other users, each with --per-table/20 rows in each table (default 2000)
# --per-table N  the subject's rows in each of the 19 tables under users (default 527: 10,014 in all)
# --no-build     do not build tend (target/release/tend must exist)
# --tend BIN     use this tend binary
#
# The schema: users; ten tables owned by users (ON DELETE CASCADE), five owned by those
# (a second level), four that mention users (ON DELETE SET NULL); every foreign key
# indexed. Throwaway PostgreSQL 15 cluster, fsync on. Times are wall clock of the whole
# command (process start, schema read, counting, the transaction). Prints a Markdown report
# and writes it to bench/.work/gdpr/results.md. Timing is never asserted: the script fails
# when a command fails or an erasure leaves a row of the subject.
set -euo pipefail

RUNS=5
USERS=2000
PER_TABLE=527
BUILD=1
TEND_BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --users) USERS=$2; shift 2 ;;
        --per-table) PER_TABLE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --tend) TEND_BIN=$2; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gdpr.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for v in "$RUNS" "$USERS" "$PER_TABLE"; do
    case "$v" in ''|*[!0-9]*|0) echo "gdpr.sh: --runs, --users and --per-table take positive integers" >&2; exit 2 ;; esac
done

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUTDIR=$BENCH/.work/gdpr
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
unset PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC DATABASE_URL
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(TEND_[A-Z0-9_]*\)=.*/\1/p')
export NO_COLOR=1

die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

find_tend "$ROOT" "$BUILD" "$TEND_BIN"
start_cluster "$OUTDIR" -c shared_buffers=256MB

# --- the template database ---------------------------------------------------------------------
q "$URL" -c "CREATE DATABASE gdpr_template"
TEMPLATE=$(url_of gdpr_template)
{
    echo "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text);"
    for i in $(seq -f %02g 1 10); do
        echo "CREATE TABLE owned_$i (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, body text, at timestamptz DEFAULT now());"
        echo "CREATE INDEX ON owned_$i (user_id);"
    done
    for i in $(seq -f %02g 1 5); do
        echo "CREATE TABLE child_$i (id bigserial PRIMARY KEY, parent_id bigint NOT NULL REFERENCES owned_$i ON DELETE CASCADE, body text);"
        echo "CREATE INDEX ON child_$i (parent_id);"
    done
    for i in $(seq -f %02g 1 4); do
        echo "CREATE TABLE mention_$i (id bigserial PRIMARY KEY, by_user bigint REFERENCES users ON DELETE SET NULL, body text);"
        echo "CREATE INDEX ON mention_$i (by_user);"
    done
    others=$((PER_TABLE / 20)); [ "$others" -ge 1 ] || others=1
    echo "INSERT INTO users SELECT g, 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, $((USERS + 1))) g;"
    # The subject is user 1: PER_TABLE rows in each table; every other user, $others.
    for i in $(seq -f %02g 1 10); do
        echo "INSERT INTO owned_$i (user_id, body) SELECT 1, md5(g::text) FROM generate_series(1, $PER_TABLE) g;"
        echo "INSERT INTO owned_$i (user_id, body) SELECT 2 + g % $USERS, md5(g::text) FROM generate_series(1, $((USERS * others))) g;"
    done
    for i in $(seq -f %02g 1 5); do
        # One child per owned row of the subject's, $PER_TABLE in all; others alike.
        echo "INSERT INTO child_$i (parent_id, body) SELECT id, body FROM owned_$i WHERE user_id = 1;"
        echo "INSERT INTO child_$i (parent_id, body) SELECT id, body FROM owned_$i WHERE user_id <> 1;"
    done
    for i in $(seq -f %02g 1 4); do
        echo "INSERT INTO mention_$i (by_user, body) SELECT 1, md5(g::text) FROM generate_series(1, $PER_TABLE) g;"
        echo "INSERT INTO mention_$i (by_user, body) SELECT 2 + g % $USERS, md5(g::text) FROM generate_series(1, $((USERS * others))) g;"
    done
    echo "VACUUM ANALYZE;"
} >"$OUTDIR/schema.sql"
q "$TEMPLATE" -f "$OUTDIR/schema.sql" >"$OUTDIR/schema.log" 2>&1 || die "loading the schema failed: see $OUTDIR/schema.log"
SUBJECT_ROWS=$(q "$TEMPLATE" -c "SELECT (SELECT count(*) FROM users WHERE id = 1)
    $(for i in $(seq -f %02g 1 10); do echo "+ (SELECT count(*) FROM owned_$i WHERE user_id = 1)"; done)
    $(for i in $(seq -f %02g 1 5); do echo "+ (SELECT count(*) FROM child_$i c JOIN owned_$i o ON o.id = c.parent_id WHERE o.user_id = 1)"; done)
    $(for i in $(seq -f %02g 1 4); do echo "+ (SELECT count(*) FROM mention_$i WHERE by_user = 1)"; done)")
TOTAL_ROWS=$(q "$TEMPLATE" -c "SELECT sum(n_live_tup) FROM pg_stat_user_tables")

PROJECT=$OUTDIR/project
mkdir -p "$PROJECT"
{
    printf '[gdpr]\nsubject = "users"\n\n[gdpr.tables.users]\naction = "delete"\n'
    for i in $(seq -f %02g 1 10); do printf '[gdpr.tables.owned_%s]\naction = "delete"\n' "$i"; done
    for i in $(seq -f %02g 1 5); do printf '[gdpr.tables.child_%s]\naction = "delete"\n' "$i"; done
    for i in $(seq -f %02g 1 4); do printf '[gdpr.tables.mention_%s]\naction = "unlink"\n' "$i"; done
} >"$PROJECT/tend.toml"
(cd "$PROJECT" && DATABASE_URL=$TEMPLATE "$TEND" gdpr check >"$OUTDIR/check.log" 2>&1) \
    || die "tend gdpr check failed: see $OUTDIR/check.log"

left() {
    q "$1" -c "SELECT (SELECT count(*) FROM users WHERE id = 1)
        $(for i in $(seq -f %02g 1 10); do echo "+ (SELECT count(*) FROM owned_$i WHERE user_id = 1)"; done)
        $(for i in $(seq -f %02g 1 4); do echo "+ (SELECT count(*) FROM mention_$i WHERE by_user = 1)"; done)"
}
now() { date +%s.%N; }
TEND_TIMES=()
PEER_TIMES=()
EXPORT_TIMES=()
for run in $(seq 1 "$RUNS"); do
    for kind in tend peer; do
        db="gdpr_${kind}_$run"
        q "$URL" -c "CREATE DATABASE $db TEMPLATE gdpr_template"
        target=$(url_of "$db")
        start=$(now)
        if [ "$kind" = tend ]; then
            (cd "$PROJECT" && DATABASE_URL=$target "$TEND" gdpr erase users:1 --yes --json \
                >"$OUTDIR/erase-$run.json" 2>"$OUTDIR/erase-$run.log") || die "tend gdpr erase failed: see $OUTDIR/erase-$run.log"
        else
            q "$target" -c "BEGIN; DELETE FROM users WHERE id = 1; COMMIT;" >/dev/null || die "the hand-written erase failed"
        fi
        end=$(now)
        took=$(python3 -c "print(f'{$end - $start:.3f}')")
        [ "$(left "$target")" = 0 ] || die "$kind left rows of the subject in $db"
        if [ "$kind" = tend ]; then TEND_TIMES+=("$took"); else PEER_TIMES+=("$took"); fi
        q "$URL" -c "DROP DATABASE $db"
    done
    rm -rf "$OUTDIR/export-$run"
    start=$(now)
    (cd "$PROJECT" && DATABASE_URL=$TEMPLATE "$TEND" gdpr export users:1 --out "$OUTDIR/export-$run" \
        >"$OUTDIR/export-$run.log" 2>&1) || die "tend gdpr export failed: see $OUTDIR/export-$run.log"
    end=$(now)
    EXPORT_TIMES+=("$(python3 -c "print(f'{$end - $start:.3f}')")")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
T=$(median "${TEND_TIMES[@]}")
P=$(median "${PEER_TIMES[@]}")
E=$(median "${EXPORT_TIMES[@]}")
RATIO=$(python3 -c "print(f'{$T / $P:.2f}')")
{
    echo "## tend gdpr erase: $SUBJECT_ROWS rows of one subject across 20 tables"
    echo
    echo "$("$TEND" --version | head -1), PostgreSQL $(q "$URL" -c 'SHOW server_version'), $(nproc) cores;" \
         "database of $TOTAL_ROWS rows; $RUNS runs, each on a fresh copy."
    echo
    echo "| | median | runs (s) |"
    echo "|---|---|---|"
    echo "| tend gdpr erase (whole command) | ${T} s | ${TEND_TIMES[*]} |"
    echo "| hand-written DELETE FROM users (psql) | ${P} s | ${PEER_TIMES[*]} |"
    echo "| ratio tend / hand-written | ${RATIO}x | |"
    echo "| tend gdpr export (whole command) | ${E} s | ${EXPORT_TIMES[*]} |"
    echo
    echo "Command: bench/gdpr.sh --runs $RUNS --users $USERS --per-table $PER_TABLE"
} | tee "$OUTDIR/results.md"
