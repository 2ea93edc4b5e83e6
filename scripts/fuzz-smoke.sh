#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target in fuzz/ for a bounded time, prints how many
# inputs each one executed, and fails if any target crashes, leaks, hangs or runs out of memory.
#
# Needs a nightly toolchain (libFuzzer's sanitizer flags are nightly-only) and cargo-fuzz, which
# it installs when missing. The committed corpus (fuzz/corpus/<target>/) and regressions
# (fuzz/regressions/<target>/) are read as seeds; inputs the fuzzer finds go to
# fuzz/target/smoke/<target>/ (ignored by git), so a smoke run never dirties the tree. A crashing
# input is saved under fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz-smoke.sh [TARGET...]
# Env:   FUZZ_SECONDS   seconds per target (default 30)
#        FUZZ_JOBS      targets fuzzed at once (default: the number of CPUs; each target is one
#                       libFuzzer process on one core, so each still gets its FUZZ_SECONDS)
#        FUZZ_TOOLCHAIN toolchain to build with (default nightly)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-$(nproc)}
toolchain=${FUZZ_TOOLCHAIN:-nightly}

if ! rustup toolchain list | grep -q "^$toolchain"; then
    echo "fuzz-smoke: needs the $toolchain toolchain: rustup toolchain install $toolchain" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +"$toolchain" fuzz list)
fi
# Build up front, so a build error is not reported as a crash of the first target.
if [ ${#targets[@]} -eq 1 ]; then
    cargo +"$toolchain" fuzz build "${targets[0]}"
else
    cargo +"$toolchain" fuzz build
fi

work=$root/fuzz/target/smoke
# One target: its log in $work/$t.log, its result (ok or FAILED) in $work/$t.result.
fuzz_one() {
    local t=$1 d seeds=() result=ok
    mkdir -p "$work/$t"
    for d in "$root/fuzz/corpus/$t" "$root/fuzz/regressions/$t"; do
        [ -d "$d" ] && seeds+=("$d")
    done
    if ! cargo +"$toolchain" fuzz run "$t" "$work/$t" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$t.log" 2>&1; then
        result=FAILED
    fi
    echo "$result" >"$work/$t.result"
}
mkdir -p "$work"
running=0
for t in "${targets[@]}"; do
    rm -f "$work/$t.result"
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
    fuzz_one "$t" &
    running=$((running + 1))
done
wait

failed=()
printf '%-14s %14s  %s\n' target executions result
for t in "${targets[@]}"; do
    log=$work/$t.log
    result=$(cat "$work/$t.result" 2>/dev/null || echo FAILED)
    [ "$result" = ok ] || failed+=("$t")
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [ -z "$execs" ]; then
        execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
    fi
    printf '%-14s %14s  %s\n' "$t" "${execs:-?}" "$result"
done

if [ ${#failed[@]} -gt 0 ]; then
    for t in "${failed[@]}"; do
        echo "---- $t (log: $work/$t.log) ----" >&2
        tail -n 40 "$work/$t.log" >&2
    done
    echo "fuzz-smoke: failed: ${failed[*]}; crashing inputs are in fuzz/artifacts/" >&2
    exit 1
fi
