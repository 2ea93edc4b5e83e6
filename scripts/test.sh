#!/usr/bin/env bash
# Runs every vswitch test: formatting and lints, unit and property tests, the simulated fabric,
# the kernel-captured fixtures, fuzz-corpus replay, and the end-to-end tests with real network
# namespaces, TAPs, daemons, ping/iperf3, tshark and the kernel's vxlan device.
#
# Needs root (namespaces, TAPs). Installs what it needs on Debian. Every test binary runs inside a
# network namespace (and mount namespace) of its own, so nothing a test sends can reach the
# machine's real network, and namespaces a test names under /run/netns vanish with it.
#
#   sudo scripts/test.sh            # everything
#   FUZZ_SECONDS=0 scripts/test.sh  # skip the bounded fuzzing run (corpus replay still runs)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

need_root
ensure_pkgs iproute2 iperf3 tshark tcpdump python3:python3 util-linux:unshare

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== build tests"
cargo test --locked --no-run

echo "== tests (inside a private network + mount namespace)"
unshare --net --mount --propagation private -- \
    bash -c 'ip link set lo up && cargo test --locked --offline -- --test-threads 2'

if [ "${FUZZ_SECONDS:-30}" != 0 ] && [ -x scripts/fuzz-smoke.sh ]; then
    echo "== fuzz smoke (${FUZZ_SECONDS:-30} s per target)"
    scripts/fuzz-smoke.sh
fi
