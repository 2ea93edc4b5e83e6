#!/usr/bin/env bash
# Runs every vswitch test: formatting and lints, unit and property tests, the simulated fabric,
# the kernel-captured fixtures, fuzz-corpus replay, and the end-to-end tests with real network
# namespaces, TAPs, daemons, ping/iperf3, tshark and the kernel's vxlan device.
#
# Needs root (namespaces, TAPs). Installs what it needs on Debian. Every test binary runs inside a
# network namespace (and mount namespace) of its own, so nothing a test sends can reach the
# machine's real network, and namespaces a test names under /run/netns vanish with it.
#
#   scripts/test.sh                 # everything (as root; re-runs itself with sudo otherwise)
#   FUZZ_SECONDS=0 scripts/test.sh  # skip the bounded fuzzing run (corpus replay still runs)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

need_root "$@"
ensure_pkgs iproute2 iperf3 tshark tcpdump iputils-ping:ping python3:python3 util-linux:unshare \
    protobuf-compiler:protoc openssl:openssl etcd-client:etcdctl busybox-static:busybox \
    nftables:nft
# nft: the egress tests' daemons masquerade through their own table (`ip vswitch`), in the test
# host's namespace only.
# The etcd-client crate's build needs protoc. The cluster tests run the real etcd (Debian's
# etcd-server; etcdctl, from the etcd-client package, looks into it), each its own process on a
# test namespace's address (see ensure_etcd).
ensure_etcd
# promtool (Debian's prometheus) checks the daemon's /metrics; the server's own service is kept
# from starting.
ensure_quiet_pkgs prometheus:promtool
# The CNI end-to-end test runs podman (CNI backend) with an image imported from the static
# busybox; its services are kept from starting too.
ensure_quiet_pkgs podman:podman containernetworking-plugins busybox-static tar:tar
# The Docker tests run dockerd themselves, one per test host (tests/e2e/docker.rs).
ensure_quiet_pkgs docker.io:dockerd

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== build tests"
cargo test --locked --no-run

echo "== tests (inside a private network + mount namespace; every test binary runs, even after a failure)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
unshare --net --mount --propagation private -- \
    bash -c 'ip link set lo up && cargo test --locked --offline --no-fail-fast -- --test-threads 2' 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

if [ "$status" = 0 ] && [ "${FUZZ_SECONDS:-30}" != 0 ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "== fuzz smoke (${FUZZ_SECONDS:-30} s per target)"
        scripts/fuzz-smoke.sh
    else
        # libFuzzer needs nightly, which only rustup's servers have; the corpus replay in
        # tests/fuzz_corpus.rs has already run every target's checks on stable.
        echo "warning: no nightly toolchain: bounded fuzzing skipped (corpus replay ran)" >&2
    fi
fi

# One closing line for the whole run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
