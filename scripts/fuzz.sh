#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and prints, per target, the runs
# libFuzzer made and the CPU time it used (user+sys), for docs/fuzzing.md.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default: 60 seconds, every target)
# The stable toolchain runs cargo-fuzz with RUSTC_BOOTSTRAP=1 (it needs -Z flags).
# A crash leaves its input in fuzz/artifacts/TARGET/ and makes this script exit non-zero.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
nice cargo fuzz build -O >/dev/null || exit 1
triple=$(rustc -vV | sed -n 's/^host: //p')
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    TIMEFORMAT="%U %S"
    # The built binary itself, so the CPU time counted is fuzzing only, not compiling.
    mkdir -p "artifacts/$target"
    cpu=$( { time nice "target/$triple/release/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 "corpus/$target" \
        >"$log" 2>&1; } 2>&1 )
    rc=$?
    runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | tail -1)
    cpu_total=$(awk '{printf "%.0f", $1 + $2}' <<<"$cpu")
    if ((rc != 0)); then
        status=1
        echo "$target: CRASH (exit $rc), see fuzz/artifacts/$target/"
        grep -m5 -E 'panicked|ERROR|SUMMARY' "$log"
    else
        echo "$target: ${runs:-?} runs, ${cpu_total}s CPU, no crash"
    fi
    rm -f "$log"
done
exit $status
