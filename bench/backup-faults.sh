#!/usr/bin/env bash
# Fault injection: damages copies of real backups in many ways and checks that
# `tend backup verify` catches every one (a non-zero exit and a message that says the backup is
# damaged, cannot be decrypted, misses an object or has a bad manifest), and that intact backups
# never raise a false alarm.
#
#   bench/backup-faults.sh [--faults N] [--intact-every K] [--resealed-flips M]
#                          [--manifest-flips M] [--seed S] [--no-build]
#
# --faults N          faults to inject (default 1000), the kinds taking turns
# --intact-every K    also verify the intact backup after every K-th fault (default 50)
# --resealed-flips M  also flip M random bytes of the data object and write the damaged
#                     object's size and SHA-256 into the manifest, so only age's authentication
#                     and zstd can catch them (default 100; a miss fails the script too)
# --manifest-flips M  informational: flip M random bytes of the manifest itself (default 100);
#                     reported apart, never fails the script (the manifest carries no checksum)
# --seed S            seed of the random offsets, lengths and bytes (default 1)
#
# Fault kinds: a flipped byte (in the first 256 bytes, the middle or the last 256 bytes of the
# data object, in turn), a truncation at a random length, an extra appended byte, the data
# object deleted, a wrong age identity, and a manifest swapped in from another backup (as is,
# and with its id rewritten to match, in turn).
#
# The backups are of a small generated database on a throwaway PostgreSQL 15 cluster, encrypted
# to an age X25519 key (a passphrase would add 0.3-2 s of scrypt to every verify). Each
# fault is injected into the store, verified, and the original bytes put back. Prints a
# Markdown table and writes it to bench/.work/backup-faults/results.md; exits non-zero on any
# miss or false alarm.
set -euo pipefail

FAULTS=1000
INTACT_EVERY=50
MANIFEST_FLIPS=100
RESEALED_FLIPS=100
SEED=1
BUILD=1
usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --faults) FAULTS=$2; shift 2 ;;
        --intact-every) INTACT_EVERY=$2; shift 2 ;;
        --manifest-flips) MANIFEST_FLIPS=$2; shift 2 ;;
        --resealed-flips) RESEALED_FLIPS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "backup-faults.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$FAULTS" "$INTACT_EVERY" "$SEED"; do
    case "$n" in ''|*[!0-9]*|0) echo "backup-faults.sh: --faults, --intact-every and --seed take positive integers" >&2; exit 2 ;; esac
done
for n in "$MANIFEST_FLIPS" "$RESEALED_FLIPS"; do
    case "$n" in ''|*[!0-9]*) echo "backup-faults.sh: --manifest-flips and --resealed-flips take a number" >&2; exit 2 ;; esac
done

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUTDIR=$BENCH/.work/backup-faults
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=$PGBIN/psql
PGBENCH=$PGBIN/pgbench
unset PGOPTIONS PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE PGSERVICE PSQLRC \
      DATABASE_URL BACKUP_DIR BACKUP_ENCRYPTION_KEY BACKUP_AGE_RECIPIENTS \
      BACKUP_AGE_IDENTITY_FILE BACKUP_COMPRESSION_LEVEL BACKUP_S3_BUCKET BACKUP_S3_PREFIX
export NO_COLOR=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

[ -x "$PSQL" ] && [ -x "$PGBENCH" ] || die "PostgreSQL 15 programs not found in $PGBIN (set PGBIN)"
command -v age-keygen >/dev/null || die "age-keygen is needed (apt-get install age)"
if [ "$BUILD" = 1 ]; then
    say "building tend (release)"
    (cd "$ROOT" && cargo build --release -q -p tend) >&2
fi
TEND=${CARGO_TARGET_DIR:-$ROOT/target}/release/tend
[ -x "$TEND" ] || die "$TEND not found; run without --no-build"

mkdir -p "$OUTDIR"
LOG=$OUTDIR/verify.log
: > "$LOG"
WORK=$(mktemp -d /tmp/tend-bench-faults.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    (cd "$WORK" && "$TEND" dev destroy --yes >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
STORE=$WORK/store
PRISTINE=$WORK/pristine
mkdir -p "$STORE" "$PRISTINE"
export BACKUP_DIR=$STORE

say "starting a throwaway PostgreSQL cluster and a small database"
URL=$("$TEND" dev url -q 2>"$WORK/dev.err") || die "tend dev url failed: $(cat "$WORK/dev.err")"
q() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -XqAt -v ON_ERROR_STOP=1 "$@"; }
"$PGBENCH" -i -q -s 1 "$URL" >"$WORK/pgbench.log" 2>&1 || die "pgbench -i failed: $(tail -3 "$WORK/pgbench.log")"
q "$URL" -c "CREATE TABLE notes AS
    SELECT g AS id, md5(g::text) AS title, now() - g * interval '1 minute' AS at,
           jsonb_build_object('n', g, 'tag', 'tag' || g % 17, 'ok', g % 3 = 0) AS doc,
           decode(md5(random()::text), 'hex') AS digest, ARRAY[g, g * 2, g % 7] AS nums
      FROM generate_series(1, 20000) AS g" -c "ALTER TABLE notes ADD PRIMARY KEY (id)"

age-keygen -o "$WORK/key.txt" 2>/dev/null
age-keygen -o "$WORK/wrong.txt" 2>/dev/null
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$WORK/key.txt" | head -1)
take_backup() {
    DATABASE_URL=$URL BACKUP_AGE_RECIPIENTS=$RECIPIENT "$TEND" backup run --json >"$WORK/backup.json" \
        || die "tend backup run failed"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/backup.json"
}
A=$(take_backup)
q "$URL" -c "INSERT INTO notes VALUES (0, 'another backup', now(), '{}', '\\x00', '{}')"
sleep 1  # backup ids carry the time in seconds
B=$(take_backup)
[ "$A" != "$B" ] || die "two backups got the same id"
cp -a "$STORE/$A" "$PRISTINE/$A"
cp -a "$STORE/$B" "$PRISTINE/$B"
DATA=data.dump.zst.age
SIZE=$(stat -c %s "$PRISTINE/$A/$DATA")
MANIFEST_SIZE=$(stat -c %s "$PRISTINE/$A/manifest.json")
DB_SIZE=$(q "$URL" -c "SELECT pg_database_size(current_database())")
say "backups $A and $B; database $(numfmt --to=iec "$DB_SIZE"), data object $SIZE bytes"

RANDOM=$SEED
# rand N: sets R to a number in [0, N). Never in a subshell: bash reseeds RANDOM there.
rand() { R=$(((RANDOM << 15 | RANDOM) % $1)); }
put_back() { rm -rf "${STORE:?}/$A"; cp -a "$PRISTINE/$A" "$STORE/$A"; }
flip_byte() {  # file offset: XOR the byte there with a random non-zero mask
    local file=$1 off=$2 old new
    old=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
    new=$((old ^ (1 + RANDOM % 255)))
    printf '%b' "$(printf '\\x%02x' "$new")" | dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
    FAULT_DETAIL="offset $off: $old -> $new"
}
# verify [identity]: runs tend backup verify on A; sets VERIFY_RC and VERIFY_OUT.
verify() {
    local identity=${1:-$WORK/key.txt}
    set +e
    VERIFY_OUT=$(BACKUP_AGE_IDENTITY_FILE=$identity "$TEND" backup verify "$A" 2>&1)
    VERIFY_RC=$?
    set -e
    VERIFY_OUT=$(printf '%s' "$VERIFY_OUT" | tr '\n' ' ')
}
# How verify said it: the first reason its message names.
reason() {
    local m=${1,,}
    case "$m" in
        *"missing from the store"*) echo "object missing" ;;
        *"bytes, the manifest says"*) echo "size differs from manifest" ;;
        *checksum*) echo "checksum mismatch" ;;
        *"cannot decrypt"*) echo "cannot decrypt" ;;
        *"decryption error"*|*"decryption failed"*) echo "decryption error while reading" ;;
        *"decompresses to"*) echo "decompressed length" ;;
        *manifest*) echo "bad manifest" ;;
        *"pg_restore cannot read"*) echo "archive unreadable" ;;
        *) echo "other" ;;
    esac
}

KINDS=(flip truncate append missing wrong_key manifest_swap)
declare -A INJECTED CAUGHT MISSED HOW
for k in "${KINDS[@]}"; do INJECTED[$k]=0; CAUGHT[$k]=0; MISSED[$k]=0; done
INTACT_RUNS=0
FALSE_ALARMS=0
check_intact() {
    verify
    INTACT_RUNS=$((INTACT_RUNS + 1))
    if [ "$VERIFY_RC" -ne 0 ] || [[ "$VERIFY_OUT" != *"is sound"* ]]; then
        FALSE_ALARMS=$((FALSE_ALARMS + 1))
        printf 'FALSE ALARM on the intact backup (%s): exit %s: %s\n' "$1" "$VERIFY_RC" "$VERIFY_OUT" >>"$LOG"
    fi
}
check_intact "before the faults"
A_SAVED=$A; A=$B; check_intact "the second backup, before the faults"; A=$A_SAVED

say "injecting $FAULTS faults"
FLIP_REGIONS=(header middle end)
flips=0
swaps=0
started=$(date +%s)
for i in $(seq "$FAULTS"); do
    kind=${KINDS[$(((i - 1) % ${#KINDS[@]}))]}
    identity=$WORK/key.txt
    FAULT_DETAIL=
    case "$kind" in
        flip)
            region=${FLIP_REGIONS[$((flips % 3))]}
            flips=$((flips + 1))
            case "$region" in
                header) rand 256; off=$R ;;
                middle) rand $((SIZE - 512)); off=$((256 + R)) ;;
                end) rand 256; off=$((SIZE - 256 + R)) ;;
            esac
            flip_byte "$STORE/$A/$DATA" "$off"
            kind_shown="flip ($region)"
            ;;
        truncate)
            rand "$SIZE"; len=$R
            truncate -s "$len" "$STORE/$A/$DATA"
            FAULT_DETAIL="to $len bytes"
            kind_shown=$kind
            ;;
        append)
            printf '%b' "$(printf '\\x%02x' $((RANDOM % 256)))" >>"$STORE/$A/$DATA"
            kind_shown=$kind
            ;;
        missing)
            rm "$STORE/$A/$DATA"
            kind_shown=$kind
            ;;
        wrong_key)
            identity=$WORK/wrong.txt
            kind_shown=$kind
            ;;
        manifest_swap)
            if ((swaps % 2 == 0)); then
                cp "$PRISTINE/$B/manifest.json" "$STORE/$A/manifest.json"
                kind_shown="manifest swap (as is)"
            else
                sed "s/$B/$A/g" "$PRISTINE/$B/manifest.json" >"$STORE/$A/manifest.json"
                kind_shown="manifest swap (id rewritten)"
            fi
            swaps=$((swaps + 1))
            ;;
    esac
    verify "$identity"
    INJECTED[$kind]=$((INJECTED[$kind] + 1))
    how=$(reason "$VERIFY_OUT")
    if [ "$VERIFY_RC" -ne 0 ] && [[ "${VERIFY_OUT,,}" =~ damaged|decrypt|missing|manifest ]]; then
        CAUGHT[$kind]=$((CAUGHT[$kind] + 1))
        HOW["$kind_shown|$how"]=$((${HOW["$kind_shown|$how"]:-0} + 1))
        printf '%s\tcaught\t%s %s\texit %s: %s\n' "$i" "$kind_shown" "$FAULT_DETAIL" "$VERIFY_RC" "$VERIFY_OUT" >>"$LOG"
    else
        MISSED[$kind]=$((MISSED[$kind] + 1))
        HOW["$kind_shown|MISSED"]=$((${HOW["$kind_shown|MISSED"]:-0} + 1))
        printf '%s\tMISSED\t%s %s\texit %s: %s\n' "$i" "$kind_shown" "$FAULT_DETAIL" "$VERIFY_RC" "$VERIFY_OUT" >>"$LOG"
    fi
    put_back
    if ((i % INTACT_EVERY == 0)); then
        check_intact "after fault $i"
    fi
    if ((i % 100 == 0)); then
        say "$i faults, $(($(date +%s) - started)) s"
    fi
done
check_intact "after the faults"
elapsed=$(($(date +%s) - started))

# Flips the manifest's size and checksum are updated for: the checksum cannot see them, so
# they test the layers below it (age's authenticated chunks, zstd, pg_restore's reading).
declare -A RESEALED_HOW
RESEALED_MISSED=0
PRISTINE_SUM=$(sha256sum "$PRISTINE/$A/$DATA" | cut -d' ' -f1)
for i in $(seq "$RESEALED_FLIPS"); do
    rand "$SIZE"
    flip_byte "$STORE/$A/$DATA" "$R"
    sum=$(sha256sum "$STORE/$A/$DATA" | cut -d' ' -f1)
    sed -i "s/$PRISTINE_SUM/$sum/" "$STORE/$A/manifest.json"
    verify
    how=$(reason "$VERIFY_OUT")
    if [ "$VERIFY_RC" -ne 0 ] && [[ "${VERIFY_OUT,,}" =~ damaged|decrypt|missing|manifest ]]; then
        RESEALED_HOW[$how]=$((${RESEALED_HOW[$how]:-0} + 1))
        printf 'resealed %s\tcaught\t%s\texit %s: %s\n' "$i" "$FAULT_DETAIL" "$VERIFY_RC" "$VERIFY_OUT" >>"$LOG"
    else
        RESEALED_MISSED=$((RESEALED_MISSED + 1))
        printf 'resealed %s\tMISSED\t%s\texit %s: %s\n' "$i" "$FAULT_DETAIL" "$VERIFY_RC" "$VERIFY_OUT" >>"$LOG"
    fi
    put_back
done

# Informational: the manifest has no checksum of its own, so a flipped byte in a field verify
# does not compare (row counts, dates, versions) goes unnoticed.
MF_CAUGHT=0
MF_UNNOTICED=0
MF_EXAMPLES=()
for _ in $(seq "$MANIFEST_FLIPS"); do
    rand "$MANIFEST_SIZE"
    flip_byte "$STORE/$A/manifest.json" "$R"
    verify
    if [ "$VERIFY_RC" -ne 0 ]; then
        MF_CAUGHT=$((MF_CAUGHT + 1))
    else
        MF_UNNOTICED=$((MF_UNNOTICED + 1))
        if ((${#MF_EXAMPLES[@]} < 8)); then
            changed=$({ diff "$PRISTINE/$A/manifest.json" "$STORE/$A/manifest.json" || true; } | sed -n 's/^> *//p' | head -1)
            MF_EXAMPLES+=("$changed")
        fi
    fi
    put_back
done

{
    echo "Backups of a $(numfmt --to=iec "$DB_SIZE") database (pgbench -s 1 and a 20,000-row table),"
    echo "encrypted to an age X25519 key; data object $SIZE bytes. $FAULTS faults (seed $SEED) in"
    echo "$elapsed s, $(python3 -c "print(f'{$elapsed / $FAULTS * 1000:.0f}')") ms a fault including the copy back."
    echo
    echo "| fault | injected | caught | missed |"
    echo "|---|---|---|---|"
    total_i=0; total_c=0; total_m=0
    for k in "${KINDS[@]}"; do
        case "$k" in
            flip) shown="flipped byte (first 256 bytes, middle, last 256 bytes in turn)" ;;
            truncate) shown="truncated at a random length" ;;
            append) shown="one extra byte appended" ;;
            missing) shown="data object deleted" ;;
            wrong_key) shown="wrong age identity" ;;
            manifest_swap) shown="manifest of another backup (as is / id rewritten, in turn)" ;;
        esac
        echo "| $shown | ${INJECTED[$k]} | ${CAUGHT[$k]} | ${MISSED[$k]} |"
        total_i=$((total_i + INJECTED[$k])); total_c=$((total_c + CAUGHT[$k])); total_m=$((total_m + MISSED[$k]))
    done
    echo "| **all** | $total_i | $total_c | $total_m |"
    echo
    echo "| intact backup verified | false alarms |"
    echo "|---|---|"
    echo "| $INTACT_RUNS | $FALSE_ALARMS |"
    echo
    echo "How each fault was reported (the first reason in verify's message):"
    echo
    echo "| fault | reason | count |"
    echo "|---|---|---|"
    for key in "${!HOW[@]}"; do
        printf '| %s | %s | %s |\n' "${key%%|*}" "${key#*|}" "${HOW[$key]}"
    done | LC_ALL=C sort
    if ((RESEALED_FLIPS > 0)); then
        echo
        echo "$RESEALED_FLIPS more flipped bytes at random offsets, with the manifest's SHA-256"
        echo "rewritten to match the damaged object (so only age's authentication, zstd and"
        echo "pg_restore can notice): $((RESEALED_FLIPS - RESEALED_MISSED)) caught, $RESEALED_MISSED missed."
        echo
        echo "| reason | count |"
        echo "|---|---|"
        for key in "${!RESEALED_HOW[@]}"; do
            printf '| %s | %s |\n' "$key" "${RESEALED_HOW[$key]}"
        done | LC_ALL=C sort
    fi
    if ((MANIFEST_FLIPS > 0)); then
        echo
        echo "Informational, not counted above: $MANIFEST_FLIPS random bytes flipped in manifest.json"
        echo "itself: $MF_CAUGHT caught, $MF_UNNOTICED unnoticed by verify."
        if ((${#MF_EXAMPLES[@]})); then
            echo "Lines changed by unnoticed flips (examples):"
            echo
            for e in "${MF_EXAMPLES[@]}"; do echo "    $e"; done
        fi
    fi
} >"$OUTDIR/results.md"
echo
cat "$OUTDIR/results.md"
echo
echo "Each verify's message: $LOG"
if ((total_m > 0 || RESEALED_MISSED > 0 || FALSE_ALARMS > 0)); then
    die "$((total_m + RESEALED_MISSED)) missed fault(s), $FALSE_ALARMS false alarm(s)"
fi
