#!/usr/bin/env bash
# The vswitch demo: two simulated hosts, one vswitch daemon on each, one container on each, and
# the containers talking over VXLAN that the daemons build themselves. Everything lives in
# network namespaces named vsd<PID>-* and is removed at exit, even on failure or Ctrl-C.
#
# Usage: scripts/demo.sh [--cluster] (as root; re-runs itself with sudo otherwise)
#   --cluster  cluster mode instead: an etcd and three hosts, the network created once, no
#              --peer anywhere, containers pinging across hosts, and what the endpoint
#              advertisements put in the switches (static FDB entries, flood lists, ARP answers).
# Environment: VSWITCH=path to a vswitch binary (default: build target/release/vswitch),
#              VS_KEEP_WORK=1 to keep the daemons' logs and state after the demo.
set -Eeuo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

CLUSTER=
case ${1:-} in
-h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
--cluster) CLUSTER=1 ;;
"") ;;
*) die "unknown argument: $1 (try --help)" ;;
esac

need_root "$@"
ensure_pkgs iperf3:iperf3 iproute2:ip iputils-ping:ping
[[ -n $CLUSTER ]] && ensure_etcd
vs_init "vsd$$"
build_release

P=$VS_PREFIX
HOST1=$P-host1
HOST2=$P-host2
APP1=$P-app1
APP2=$P-app2
NET=demo
VNI=42
SUBNET=10.77.0.0/24
IP1=10.77.0.10
IP2=10.77.0.20

# If anything fails, say at which step and show the daemons' logs: the reason is usually there.
STEP="setup"
on_fail() {
    local rc=$1 cmd=$2 f
    trap - ERR
    fail "demo failed at step '$STEP': '$cmd' exited $rc"
    for f in "$VS_WORK"/daemon-*.log; do
        [[ -e $f ]] && dump_log "$f" 30
    done
}
trap 'on_fail $? "$BASH_COMMAND"' ERR

# step TEXT — announce a step of the demo.
step() {
    STEP=$1
    echo
    say "$1"
}

# sock_of HOSTNUM — the control socket of host N's daemon.
sock_of() { echo "$VS_WORK/host$1/vswitch.sock"; }

# vs HOSTNUM ARGS... — run the CLI against host N's daemon, showing the command.
vs() {
    local n=$1
    shift
    printf '    [host%s]$ vswitch %s\n' "$n" "$*"
    vsctl "$(sock_of "$n")" "$@"
}

# run_in NS LABEL CMD... — run a command inside a namespace, showing it.
run_in() {
    local ns=$1 label=$2
    shift 2
    printf '    [%s]$ %s\n' "$label" "$*"
    ip netns exec "$ns" "$@"
}

# The cluster demo: an etcd and three hosts, no --peer.
cluster_demo() {
    local etcd=$P-etcd etcd_ip i h
    etcd_ip=$(host_ip 4)
    step "1/7  Simulate three hosts and a machine for etcd"
    echo "     Each is a network namespace on one underlay LAN (a bridge): host1..3 = $(host_ip 1)..3,"
    echo "     etcd = $etcd_ip."
    for i in 1 2 3; do mk_host "$P-host$i"; done
    mk_host "$etcd"
    mk_underlay "$P-host1" "$P-host2" "$P-host3" "$etcd"

    step "2/7  Start etcd, and a vswitch daemon on each host with --store (no --peer)"
    echo "     Each daemon registers itself in etcd under a lease; its peers are the other live hosts."
    printf '    [etcd]$ etcd --listen-client-urls http://%s:2379 ... &\n' "$etcd_ip"
    start_etcd "$etcd" "$etcd_ip" || die "etcd did not start (its log is above)"
    for i in 1 2 3; do
        printf '    [host%s]$ vswitch daemon --listen %s --store etcd://%s:2379 --name host%s &\n' \
            "$i" "$(host_ip "$i")" "$etcd_ip" "$i"
        start_daemon "$P-host$i" "$(sock_of "$i")" "$VS_WORK/host$i/state" --listen "$(host_ip "$i")" \
            --store "etcd://$etcd_ip:2379" --name "host$i" ||
            die "the vswitch daemon on host$i did not start (its log is above)"
    done
    vs 1 host ls
    vs 1 peer ls

    step "3/7  Create the network '$NET' once, on host1"
    vs 1 network create "$NET" --vni "$VNI" --subnet "$SUBNET"
    for i in 2 3; do
        for ((h = 0; h < 30; h++)); do
            vsctl "$(sock_of "$i")" network ls | grep -q "^$NET " && break
            sleep 0.1
        done
        vs "$i" network ls
    done

    step "4/7  Attach a 'container' on each host"
    echo "     Attach takes the address with an etcd transaction and advertises the endpoint"
    echo "     (network, MAC, IP, host) under the host's lease; every daemon watches the adverts."
    for i in 1 2 3; do
        mk_container "$P-app$i"
        vs "$i" attach "$P-app$i" --network "$NET" --ip "10.77.0.$((i * 10))/24"
    done
    vs 2 network inspect "$NET"

    step "5/7  Ping across the hosts"
    run_in "$P-app1" app1 ping -c 3 -i 0.2 -W 2 10.77.0.20
    run_in "$P-app2" app2 ping -c 3 -i 0.2 -W 2 10.77.0.30
    run_in "$P-app3" app3 ping -c 3 -i 0.2 -W 2 10.77.0.10

    step "6/7  What the advertisements put in host1's switch"
    echo "     Static FDB entries for the other hosts' containers (no flood, no learning needed),"
    echo "     ARP answered by the switch, and floods only to hosts with endpoints on the network."
    vs 1 fdb
    vs 1 network inspect "$NET"

    step "7/7  Tear down"
    echo "     Daemons leave the cluster (their leases are revoked), etcd stops, namespaces go."
    trap - ERR
    VS_CLEANUP_REPORT=1
    cleanup 0
}

if [[ -n $CLUSTER ]]; then
    cluster_demo
    exit 0
fi

step "1/9  Simulate two hosts"
echo "     Each host is a network namespace. A veth pair between them is the 'physical' network"
echo "     (the underlay): host1 = $(host_ip 1), host2 = $(host_ip 2), MTU 1500."
mk_host "$HOST1"
mk_host "$HOST2"
mk_underlay "$HOST1" "$HOST2"
run_in "$HOST1" host1 ping -c 1 -W 2 "$(host_ip 2)"

step "2/9  Start a vswitch daemon on each host"
echo "     Each daemon listens for VXLAN on UDP 4789 of its host and knows the other as a --peer."
echo "     The CLI talks to a daemon through its control socket (--socket or VSWITCH_SOCKET)."
for i in 1 2; do
    h=$P-host$i
    sock=$(sock_of "$i")
    peer=$(host_ip $((3 - i)))
    printf '    [host%s]$ vswitch daemon --listen %s --peer %s &\n' "$i" "$(host_ip "$i")" "$peer"
    start_daemon "$h" "$sock" "$VS_WORK/host$i/state" --listen "$(host_ip "$i")" --peer "$peer" ||
        die "the vswitch daemon on host$i did not start (its log is above)"
    echo "     daemon on host$i is up (PID $DAEMON_PID, socket $sock)"
done

step "3/9  Create the network '$NET' on both hosts"
echo "     Same name, VNI and subnet on each host: that is what makes it one network across hosts."
vs 1 network create "$NET" --vni "$VNI" --subnet "$SUBNET"
vs 2 network create "$NET" --vni "$VNI" --subnet "$SUBNET"
vs 1 network ls

step "4/9  Start a 'container' on each host and attach it to '$NET'"
echo "     A container here is just a network namespace. 'vswitch attach' gives it an eth0 that is"
echo "     a TAP port of the switch, with the address, MAC and MTU set."
mk_container "$APP1"
mk_container "$APP2"
vs 1 attach "$APP1" --network "$NET" --ip "$IP1/24"
vs 2 attach "$APP2" --network "$NET" --ip "$IP2/24"
run_in "$APP1" app1 ip addr show dev eth0
run_in "$APP2" app2 ip addr show dev eth0

step "5/9  Ping app2 from app1"
echo "     app1 eth0 -> vswitch on host1 -> VXLAN in UDP to $(host_ip 2):4789 -> vswitch on host2 -> app2 eth0"
run_in "$APP1" app1 ping -c 5 -i 0.2 -W 2 "$IP2"

step "6/9  Measure throughput with iperf3 for 3 seconds"
spawn "$VS_WORK/iperf3-server.log" "$APP2" iperf3 -s -B "$IP2"
wait_listen "$APP2" 5201 5 || die "iperf3 server in app2 did not start"
run_in "$APP1" app1 iperf3 -c "$IP2" -t 3 -f m
stop_pid "$SPAWN_PID"

step "7/9  What the switches learned: the forwarding database (MAC -> port or remote host)"
vs 1 fdb
vs 2 fdb

step "8/9  Counters: packets and bytes per port and per peer, and drops by reason"
vs 1 stats
vs 2 stats

step "9/9  Tear down"
echo "     Daemons get SIGTERM and exit; the namespaces, and with them the TAPs and veths, are deleted."
trap - ERR
VS_CLEANUP_REPORT=1
cleanup 0
