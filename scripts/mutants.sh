#!/usr/bin/env bash
# Mutation benchmark of the non-root tests: cargo-mutants (crates.io) makes small deliberate bugs
# in the sans-IO core and the wire formats, one at a time, and checks that at least one of the
# non-root test binaries fails for each. A benchmark of the tests, not a CI step: every mutant
# costs a build and a test run, and all of src/core and src/wire is about a thousand mutants, so
# run it on a few files or one shard at a time.
#
# Usage: scripts/mutants.sh [FILE-GLOB...]     default: src/core and src/wire
#   scripts/mutants.sh src/core/fdb.rs src/wire/vxlan.rs
#   MUTANTS_SHARD=0/8 scripts/mutants.sh        # one eighth of everything
#   MUTANTS_RE='frame_from_port|datagram_from_vtep' scripts/mutants.sh src/core/switch.rs
# Env:   MUTANTS_SHARD    k/n: only shard k of n
#        MUTANTS_RE       only mutants whose description matches this regex
#        MUTANTS_TIMEOUT  stop after this many seconds (what ran is still reported)
#        MUTANTS_OUT      where mutants.out/ goes (default target/mutants)
#        MUTANTS_ITERATE  1: test again only what the last run in MUTANTS_OUT did not catch
#                         (cargo-mutants --iterate), e.g. a --lib run's survivors with every
#                         non-root test binary
#        MUTANTS_TESTS    the test binaries, as cargo test arguments (default: the library's
#                         tests and every non-root test binary; a narrower set is faster, and a
#                         survivor of it must be re-run with the default before it counts)
#
# Results: mutants.out/caught.txt, missed.txt (survivors: a test gap, or an equivalent mutant),
# timeout.txt and unviable.txt (did not build), and a summary line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "mutants: installing cargo-mutants" >&2
    cargo install cargo-mutants --locked
fi

globs=("$@")
if [ ${#globs[@]} -eq 0 ]; then
    globs=('src/core/**' 'src/wire/**')
fi
args=()
for g in "${globs[@]}"; do
    args+=(--file "$g")
done
if [ -n "${MUTANTS_SHARD:-}" ]; then
    args+=(--shard "$MUTANTS_SHARD")
fi
if [ "${MUTANTS_ITERATE:-}" = 1 ]; then
    args+=(--iterate)
fi
if [ -n "${MUTANTS_RE:-}" ]; then
    args+=(--re "$MUTANTS_RE")
fi
# Every test binary that needs no root: the library, the simulated fabrics, the fixtures and the
# fuzz corpus.
tests=(--lib)
for t in fabric wire_props fixtures fuzz_corpus rotation_fabric hostile_underlay cluster_fabric \
    gateway_fabric port_security; do
    tests+=(--test "$t")
done
if [ -n "${MUTANTS_TESTS:-}" ]; then
    read -ra tests <<<"$MUTANTS_TESTS"
fi
# No debug info: it halves each mutant's build (12 s to 6.6 s for the library's tests here) and
# changes no test's outcome.
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-0}
out=${MUTANTS_OUT:-target/mutants}
mkdir -p "$out"

# The test binaries go to every cargo invocation (--cargo-arg), not only to `cargo test`: the
# build of each mutant then builds just those binaries, not every test target of the crate
# (for the library's tests alone, 6 s instead of 12 s here).
for t in "${tests[@]}"; do
    args+=("--cargo-arg=$t")
done
run=(cargo mutants "${args[@]}" --test-tool=cargo --no-shuffle --jobs 1 --output "$out")
set +e
if [ -n "${MUTANTS_TIMEOUT:-}" ]; then
    timeout --signal=INT "$MUTANTS_TIMEOUT" "${run[@]}"
else
    "${run[@]}"
fi
status=$?
set -e

count() {
    if [ -f "$out/mutants.out/$1" ]; then
        grep -c . "$out/mutants.out/$1" || true # grep -c prints 0, and fails, on no match
    else
        echo 0
    fi
}
caught=$(count caught.txt)
missed=$(count missed.txt)
timeouts=$(count timeout.txt)
unviable=$(count unviable.txt)
tested=$((caught + missed + timeouts))
echo "mutants: $caught caught, $missed missed, $timeouts timed out, $unviable unviable" \
    "(score $caught/$tested; survivors in $out/mutants.out/missed.txt)"
# cargo-mutants exits 2 when a mutant survived: that is a result here, not a failure.
case $status in
    0 | 2 | 3 | 124 | 130) exit 0 ;;
    *) exit "$status" ;;
esac
