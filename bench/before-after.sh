#!/usr/bin/env bash
# Runs benchmarks for two builds of tend, taking turns, so that a change is measured against
# the build before it under the same load: each round runs a bench once with the base build and
# once with the new one (base first in odd rounds, new first in even ones). Each bench run also
# times the bench's peer (dbmate, migra, pg_dump, check_postgres), so every result carries its
# own ratio to the peer, measured seconds apart from the other build's.
#
#   bench/before-after.sh --base REV [--rounds N] [--only NAME]... [-- BENCH-ARGS]
#
# --base REV    the git revision to compare against; its release build goes to
#               bench/.work/base/<commit>/target (a git worktree under bench/.work/base)
# --rounds N    rounds (default 2)
# --only NAME   migrate, schema, backup or checks (repeatable; default: all four), each with
#               light arguments (below) so that a round takes minutes, not hours
# -- BENCH-ARGS  more arguments for every bench run, after the light ones (with one --only:
#               `--only migrate -- --no-fsync`)
#
# The new build is this checkout's (`cargo build --release`). Every run's report is kept in
# bench/.work/before-after/<bench>-<build>-<round>.md; the script prints them in order.
set -euo pipefail

BASE=""
ROUNDS=2
ONLY=()
EXTRA=()
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
        --base) BASE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --only) ONLY+=("$2"); shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) usage; exit 0 ;;
        *) echo "before-after.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -n "$BASE" ] || { echo "before-after.sh: --base REV is required" >&2; usage >&2; exit 2; }
case "$ROUNDS" in ''|*[!0-9]*|0) echo "before-after.sh: --rounds takes a positive integer" >&2; exit 2 ;; esac
((${#ONLY[@]})) || ONLY=(migrate schema backup checks)

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUT=$BENCH/.work/before-after
mkdir -p "$OUT"

say() { printf '\n== %s\n' "$*" >&2; }

# The two builds: release binaries (and the schema bench's diff_timing example) of each.
COMMIT=$(git -C "$ROOT" rev-parse --verify "$BASE^{commit}")
BASE_TREE=$BENCH/.work/base/$COMMIT
if [ ! -d "$BASE_TREE" ]; then
    say "checking out $BASE ($COMMIT) into $BASE_TREE"
    git -C "$ROOT" worktree add --detach "$BASE_TREE" "$COMMIT" >&2
fi
build() {
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo build --release -q -p tend &&
        CARGO_TARGET_DIR=$2 cargo build --release -q -p tend-schema --example diff_timing) >&2
}
say "building the base ($COMMIT) and the new build (release)"
build "$BASE_TREE" "$BASE_TREE/target"
build "$ROOT" "${CARGO_TARGET_DIR:-$ROOT/target}"
declare -A TARGET=([base]=$BASE_TREE/target [new]=${CARGO_TARGET_DIR:-$ROOT/target})

# Light arguments: enough work to compare, little enough to repeat.
declare -A ARGS=(
    [migrate]="--count 200 --runs 3 --status-runs 5 --no-sqlx"
    [schema]="--runs 3"
    [backup]="--runs 2 --size-gb 0.5 --no-extras"
    [checks]="--runs 3"
)
for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then order=(base new); else order=(new base); fi
    for bench in "${ONLY[@]}"; do
        [ -n "${ARGS[$bench]:-}" ] || { echo "before-after.sh: no bench called $bench" >&2; exit 2; }
        for build in "${order[@]}"; do
            say "round $round: $bench with the $build build"
            # Each bench prints its Markdown report on stdout.
            # shellcheck disable=SC2086 # the arguments are words on purpose
            CARGO_TARGET_DIR=${TARGET[$build]} "$BENCH/$bench.sh" --no-build ${ARGS[$bench]} \
                "${EXTRA[@]}" >"$OUT/$bench-$build-$round.md"
        done
    done
done

for bench in "${ONLY[@]}"; do
    for round in $(seq "$ROUNDS"); do
        for build in base new; do
            printf '\n### %s, %s build (%s), round %s\n\n' "$bench" "$build" \
                "$([ "$build" = base ] && echo "$COMMIT" || git -C "$ROOT" rev-parse HEAD)" "$round"
            cat "$OUT/$bench-$build-$round.md"
        done
    done
done
