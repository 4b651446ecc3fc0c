#!/usr/bin/env bash
# Installs the supply-chain checkers CI runs (scripts/deps-check.sh) from crates.io, each only
# when it is missing, so CI pays for the build once per cached ~/.cargo:
#   cargo-machete  unused dependencies (reads Cargo.toml and the sources, no build)
#   cargo-deny     bans (duplicate versions), licenses and sources against deny.toml
# They are built unoptimized (--debug): the checks take seconds either way, and a debug build of
# both takes about two minutes on 2 cores where an optimized one takes far longer
# (docs/dependencies.md has the figures).
set -euo pipefail
cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
have() { command -v "$1" >/dev/null || [[ -x "$cargo_bin/$1" ]]; }
# Pinned versions: bump them here, together, after checking they build on the toolchain.
MACHETE_VERSION=0.9.2
DENY_VERSION=0.20.2
if ! have cargo-machete; then
    echo "install-dev-tools: building cargo-machete $MACHETE_VERSION from crates.io" >&2
    nice cargo install cargo-machete --version "$MACHETE_VERSION" --locked --debug --quiet
fi
if ! have cargo-deny; then
    echo "install-dev-tools: building cargo-deny $DENY_VERSION from crates.io" >&2
    nice cargo install cargo-deny --version "$DENY_VERSION" --locked --debug --quiet
fi
