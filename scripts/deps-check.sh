#!/usr/bin/env bash
# Supply-chain checks for CI (.ci/run) and for anyone before a dependency change:
#   cargo machete                            no unused dependencies
#   cargo deny check bans licenses sources   deny.toml: licenses, duplicate versions (warnings),
#                                            wildcards, registries
#   cargo deny check advisories              only when github.com is reachable: the RustSec
#                                            database is a git repository there
# Installs cargo-machete and cargo-deny first when they are missing (scripts/install-dev-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-dev-tools.sh
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"

cargo machete
# fuzz/ is a workspace of its own that the main one excludes; cargo-machete reads its
# Cargo.toml above, cargo-deny checks the main workspace's graph only.
cargo deny --log-level error check bans licenses sources
if timeout 5 bash -c 'exec 3<>/dev/tcp/github.com/443' 2>/dev/null; then
    cargo deny --log-level error check advisories
else
    echo "deps-check: github.com is not reachable, so the advisories check (RustSec database) is skipped; run \`cargo deny check advisories\` where it is" >&2
fi
