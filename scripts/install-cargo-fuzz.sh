#!/usr/bin/env bash
# Installs cargo-fuzz (the libFuzzer driver for `fuzz/`) from crates.io.
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, -Cpasses=sancov-module); on the stable
# toolchain here, RUSTC_BOOTSTRAP=1 unlocks them. See docs/fuzzing.md for how the targets run.
set -euo pipefail
if command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz already installed: $(cargo fuzz --version 2>/dev/null || true)"
  exit 0
fi
nice cargo install cargo-fuzz --locked
