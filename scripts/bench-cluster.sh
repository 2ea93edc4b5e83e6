#!/usr/bin/env bash
# Cluster-mode benchmark (not a test): an etcd and three simulated hosts in network namespaces
# on one underlay LAN, daemons with --store and no --peer. It measures
#   1. how long a `network create` on host1 takes to be listed by hosts 2 and 3;
#   2. attach latency (the CLI's wall time) in cluster mode, p50/p99, over BENCH_ENDPOINTS
#      attaches spread round-robin over the three hosts (addresses from etcd);
#   3. watch catch-up after an etcd restart, with those endpoints advertised: from etcd
#      serving again until a network created then is listed by every host, and until every
#      host shows the store connected with all other hosts' endpoints installed.
# Everything lives in namespaces named vsc<PID>-* and is removed at exit, even on failure.
#
# Usage: scripts/bench-cluster.sh (as root; re-runs itself with sudo otherwise)
# Environment: BENCH_ENDPOINTS (default 200), BENCH_CREATES (default 10),
#              VSWITCH=path to a vswitch binary (default: build target/release/vswitch),
#              VS_KEEP_WORK=1 to keep the logs.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

case ${1:-} in
-h | --help)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*) die "unknown argument: $1 (try --help)" ;;
esac

ENDPOINTS=${BENCH_ENDPOINTS:-200}
CREATES=${BENCH_CREATES:-10}
[[ $ENDPOINTS =~ ^[0-9]+$ ]] && ((ENDPOINTS >= 3 && ENDPOINTS <= 250)) ||
    die "BENCH_ENDPOINTS must be 3..250 (one /24), got '$ENDPOINTS'"
[[ $CREATES =~ ^[0-9]+$ ]] && ((CREATES >= 1 && CREATES <= 200)) ||
    die "BENCH_CREATES must be 1..200, got '$CREATES'"

need_root "$@"
ensure_pkgs iproute2:ip python3:python3
ensure_etcd
vs_init "vsc$$"
build_release

P=$VS_PREFIX
ETCD_NS=$P-etcd
ETCD_IP=$(host_ip 4)
trap 'fail "bench failed: $BASH_COMMAND"; dump_log "$VS_WORK/etcd.log" 20' ERR

sock_of() { echo "$VS_WORK/host$1/vswitch.sock"; }
vsn() {
    local n=$1
    shift
    vsctl "$(sock_of "$n")" "$@"
}
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# json_field N PY_EXPR ARGS... — evaluate a Python expression over `vswitch --json ARGS` of host N
# (bound to `j`).
json_field() {
    local n=$1 expr=$2
    shift 2
    vsn "$n" --json "$@" | python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)"
}

# listed_everywhere NAME — whether hosts 2 and 3 list network NAME.
listed_everywhere() {
    local i
    for i in 2 3; do
        vsn "$i" network ls 2>/dev/null | grep -q "^$1 " || return 1
    done
}

# wait_until SECONDS CMD... — poll CMD every 5 ms; fail after SECONDS.
wait_until() {
    local limit=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        (($(now_ms) < limit)) || return 1
        sleep 0.005
    done
}

# stats_of "V1 V2 ..." — p50, p99 and max of integer samples, as text.
stats_of() {
    printf '%s\n' $1 | sort -n | awk '{v[NR]=$1} END {
        p50=v[int((NR+1)*0.50)]; p99=v[int(NR*0.99) > 0 ? int(NR*0.99) : 1];
        printf "p50 %d ms, p99 %d ms, max %d ms (n=%d)", p50, p99, v[NR], NR }'
}

say "setup: etcd at $ETCD_IP, three hosts, no --peer"
for i in 1 2 3; do mk_host "$P-host$i"; done
mk_host "$ETCD_NS"
mk_underlay "$P-host1" "$P-host2" "$P-host3" "$ETCD_NS"
start_etcd "$ETCD_NS" "$ETCD_IP" || die "etcd did not start"
for i in 1 2 3; do
    RUST_LOG=warn start_daemon "$P-host$i" "$(sock_of "$i")" "$VS_WORK/host$i/state" \
        --listen "$(host_ip "$i")" --store "etcd://$ETCD_IP:2379" --name "host$i" ||
        die "daemon on host$i did not start"
done

say "1/3  network create on host1 -> listed by hosts 2 and 3 ($CREATES networks)"
samples=
for ((k = 1; k <= CREATES; k++)); do
    t0=$(now_ms)
    vsn 1 network create "n$k" --vni $((1000 + k)) --subnet "10.$((100 + k / 250)).$((k % 250)).0/24" >/dev/null
    wait_until 10 listed_everywhere "n$k" || die "network n$k not listed everywhere within 10 s"
    samples+=" $(($(now_ms) - t0))"
done
CREATE_RESULT=$(stats_of "$samples")
echo "     create -> visible on all hosts: $CREATE_RESULT"

say "2/3  attach latency, $ENDPOINTS endpoints over 3 hosts (addresses from etcd)"
vsn 1 network create bench --vni 2000 --subnet 10.200.0.0/24 >/dev/null
wait_until 10 listed_everywhere bench || die "network bench not listed everywhere"
samples=
declare -A OWN=([1]=0 [2]=0 [3]=0)
for ((k = 0; k < ENDPOINTS; k++)); do
    h=$((k % 3 + 1))
    mk_container "$P-e$k"
    t0=$(now_ms)
    vsn "$h" attach "$P-e$k" --network bench >/dev/null
    samples+=" $(($(now_ms) - t0))"
    OWN[$h]=$((OWN[$h] + 1))
done
ATTACH_RESULT=$(stats_of "$samples")
echo "     attach: $ATTACH_RESULT"

# all_caught_up — every host connected, with every other host's endpoints installed.
all_caught_up() {
    local i want got
    for i in 1 2 3; do
        want=$((ENDPOINTS - OWN[$i]))
        got=$(json_field "$i" 'j["store"]["connected"] and j["store"]["endpoints"]' stats 2>/dev/null) ||
            return 1
        [[ $got == "$want" ]] || return 1
    done
}
wait_until 10 all_caught_up || die "the hosts did not install every other host's endpoints"

say "3/3  etcd restart with $ENDPOINTS endpoints advertised: watch catch-up"
stop_pid "$ETCD_PID"
sleep 1
start_etcd "$ETCD_NS" "$ETCD_IP" || die "etcd did not start again"
t0=$(now_ms)
until vsn 1 network create after-restart --vni 3000 --subnet 10.201.0.0/24 >/dev/null 2>&1; do
    (($(now_ms) - t0 < 30000)) || die "host1 could not write to etcd within 30 s of its restart"
    sleep 0.05
done
t_write=$(($(now_ms) - t0))
wait_until 30 listed_everywhere after-restart || die "after-restart not listed everywhere"
t_seen=$(($(now_ms) - t0))
wait_until 30 all_caught_up || die "the hosts did not catch up within 30 s"
t_caught=$(($(now_ms) - t0))
echo "     etcd serving -> host1's create accepted: ${t_write} ms"
echo "     etcd serving -> that network listed by hosts 2 and 3: ${t_seen} ms"
echo "     etcd serving -> every host connected with all $ENDPOINTS endpoints: ${t_caught} ms"

echo
say "results (3 hosts, $ENDPOINTS endpoints, $(nproc) CPUs)"
echo "network create -> visible on all hosts: $CREATE_RESULT"
echo "attach latency (cluster mode):          $ATTACH_RESULT"
echo "watch catch-up after an etcd restart:   write ${t_write} ms, seen everywhere ${t_seen} ms, all endpoints ${t_caught} ms"
trap - ERR
cleanup 0
