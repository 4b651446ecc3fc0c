#!/usr/bin/env bash
# Checks tend's schema diff against a migration history (issue 4): for each pair of
# consecutive states, the diff applied with psql onto the first must give the second
# (pg_dump -s), and the diff of a state with itself must be empty.
#
#   bench/schema-history.sh DIR [--from N] [--limit N] [--url URL] [--show-plan]
#
# DIR: Prisma's layout (<name>/migration.sql) or plain *.sql files, in name order.
# The server: --url, else TEND_TEST_DATABASE_URL, else DATABASE_URL, else a throwaway
# PostgreSQL cluster (run as root, it runs as the postgres user). See docs/schema-diff.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
cargo build -q -p tend-schema --example history_check
exec target/debug/examples/history_check "$@"
