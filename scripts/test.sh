#!/usr/bin/env bash
# Runs every test of the workspace against real PostgreSQL clusters that the tests start
# themselves (set TEND_TEST_DATABASE_URL to use an existing superuser connection instead).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --for-tests
exec cargo test --workspace --locked "$@"
