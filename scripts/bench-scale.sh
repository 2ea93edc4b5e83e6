#!/usr/bin/env bash
# Scale on one host: N containers (default 1024) attached to one daemon, spread over M networks
# (default 4), on a simulated host namespace. Measures
#   - attach latency (each `vswitch attach`, wall clock): p50, p99, max
#   - the daemon's resident memory (VmRSS) before the first and after the last attach, per port
#   - that every container pings its neighbour on its network (the next container of it)
#   - one network's MAC table at F entries (default 1,000,000): memory per entry, and that it
#     stays bounded when F more MACs arrive (examples/fdb_memory.rs)
# Prints the numbers and writes target/bench-scale/results.json. A benchmark, not a test: it
# fails only when a step cannot be carried out, and then says which.
#
# Usage: scripts/bench-scale.sh [--containers N] [--networks M] [--fdb F]
# Environment: VSWITCH=path to the binary (default: built, target/release/vswitch),
# FDB_MEMORY=path to the fdb_memory example (default: built).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

N=1024
M=4
F=1000000
while (($#)); do
    case $1 in
    --containers) N=${2:?--containers needs a number}; shift ;;
    --networks) M=${2:?--networks needs a number}; shift ;;
    --fdb) F=${2:?--fdb needs a number}; shift ;;
    -h | --help)
        sed -n '2,15p' "$0"
        exit 0
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[[ $N =~ ^[1-9][0-9]*$ && $M =~ ^[1-9][0-9]*$ && $F =~ ^[1-9][0-9]*$ ]] ||
    die "--containers, --networks and --fdb take whole numbers"
((M <= 64)) || die "--networks: at most 64"
# Each network is a /20 (4093 addresses); the gateway is .1.
((N <= M * 4000)) || die "--containers: at most 4000 per network"

need_root "$@"
ensure_pkgs iproute2:ip iputils-ping:ping procps:sysctl python3:python3
vs_init "vss$$"
P=$VS_PREFIX
OUT=$VS_ROOT/target/bench-scale
mkdir -p "$OUT"
build_release

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

H=$P-h
SOCK=$VS_WORK/h/vswitch.sock
say "host namespace and daemon"
mk_host "$H"
# The host needs an address to listen on; nothing is sent anywhere (no peers).
mk_veth "$H" "$P-d0" "$H" "$P-d1" 1500
ip -n "$H" addr add 192.0.2.1/24 dev "$P-d0"
start_daemon "$H" "$SOCK" "$VS_WORK/h/state" --listen 192.0.2.1 --underlay-mtu 1500 ||
    die "the daemon did not start"
for ((m = 0; m < M; m++)); do
    vsctl "$SOCK" network create "net$m" --vni $((1000 + m)) --subnet "10.$((100 + m)).0.0/20" \
        --gateway "10.$((100 + m)).0.1" >/dev/null
done
RSS0=$(rss_kib "$DAEMON_PID")

say "attaching $N containers to $M networks"
LAT=$VS_WORK/attach-ms
: >"$LAT"
for ((k = 0; k < N; k++)); do
    c=$P-c$k
    mk_container "$c"
    t0=$(date +%s%N)
    vsctl "$SOCK" attach "$c" --network "net$((k % M))" \
        --ip "10.$((100 + k % M)).$(((k / M + 2) / 256)).$(((k / M + 2) % 256))/20" >/dev/null ||
        die "attach of container $k failed"
    echo $((($(date +%s%N) - t0) / 1000000)) >>"$LAT"
    ((k % 128 == 127)) && note "$((k + 1)) attached"
done
RSS1=$(rss_kib "$DAEMON_PID")
sort -n "$LAT" >"$LAT.sorted"
pct() { sed -n "$(((N * $1 + 99) / 100))p" "$LAT.sorted"; }
P50=$(pct 50)
P99=$(pct 99)
MAX=$(tail -n 1 "$LAT.sorted")

say "every container pings its neighbour"
# The kernel's ARP table is one table for all namespaces (net.ipv4.neigh.default.gc_thresh3,
# 1,024 entries by default): a ping leaves an entry in the sender and one in the receiver, and
# 512 pairs fill it ("neighbor table overflow" in the kernel log; the next container cannot
# even send its ARP request). Each pair forgets its entries after its ping, so what is
# measured is the switch, not that host-wide limit (README: Limits).
FAILED=0
for ((k = 0; k < N; k++)); do
    n=$(((k + M) % N))
    ((n % M == k % M)) || continue
    ip=10.$((100 + n % M)).$(((n / M + 2) / 256)).$(((n / M + 2) % 256))
    if ! ip netns exec "$P-c$k" ping -n -c 1 -W 2 "$ip" >/dev/null 2>&1; then
        FAILED=$((FAILED + 1))
        # Say which, and whether it was for good: a second try (with ping's own words), the
        # sender's interface, address and neighbour entry, and both ports' counters.
        again=$(ip netns exec "$P-c$k" ping -n -c 3 -W 2 "$ip" 2>&1 | tail -n 2 | tr '\n' ' ' ||
            true)
        note "container $k could not ping $ip (container $n); 3 more pings: $again"
        note "  sender's eth0: $(ip -n "$P-c$k" -br addr show dev eth0 2>&1)"
        note "  sender's neighbour entry: $(ip -n "$P-c$k" neigh show "$ip" | tr '\n' ' ')"
        note "  target's eth0: $(ip -n "$P-c$n" -br addr show dev eth0 2>&1)"
        note "  ports: $(vsctl "$SOCK" stats --json | python3 -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    if p["netns"].endswith(("-c" + sys.argv[1], "-c" + sys.argv[2])):
        print(p["netns"], p["traffic"], "overruns", p["overruns"])' "$k" "$n")"
    fi
    ip -n "$P-c$k" neigh flush dev eth0 2>/dev/null || true
    ip -n "$P-c$n" neigh flush dev eth0 2>/dev/null || true
done
if ((FAILED > 0)); then
    note "the daemon's counters: $(vsctl "$SOCK" stats)"
fi

say "one network's MAC table at $F entries"
FDB_BIN=${FDB_MEMORY:-}
if [[ -z $FDB_BIN ]]; then
    (cd "$VS_ROOT" && "$(_vs_cargo)" build --release --example fdb_memory >/dev/null) ||
        die "cannot build examples/fdb_memory"
    FDB_BIN=${CARGO_TARGET_DIR:-$VS_ROOT/target}/release/examples/fdb_memory
fi
FDB=$("$FDB_BIN" "$F")

PER_PORT=$(((RSS1 - RSS0) * 1024 / N))
cat <<EOF
containers: $N on $M networks
attach latency: p50 ${P50} ms, p99 ${P99} ms, max ${MAX} ms
daemon RSS: ${RSS0} KiB before, ${RSS1} KiB after ($PER_PORT bytes per port)
pings to the neighbour that failed: $FAILED
$FDB
EOF
printf '{"containers":%s,"networks":%s,"attach_ms":{"p50":%s,"p99":%s,"max":%s},"rss_kib":{"before":%s,"after":%s},"rss_bytes_per_port":%s,"ping_failures":%s,"fdb":"%s"}\n' \
    "$N" "$M" "$P50" "$P99" "$MAX" "$RSS0" "$RSS1" "$PER_PORT" "$FAILED" "$FDB" >"$OUT/results.json"
((FAILED == 0)) || die "$FAILED containers could not ping their neighbour"
