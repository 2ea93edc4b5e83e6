#!/usr/bin/env bash
# End-to-end benchmark: two containers on two simulated hosts (network namespaces joined by a
# veth underlay, 192.0.2.0/24, MTU 1500), measured over
#   a  a direct veth between the two containers (the ceiling)
#   b  kernel vxlan (VNI 100, dstport 4789) + a Linux bridge in each host, container MTU 1450
#   c  vswitch: one daemon per host, peered, network --vni 100 --subnet 10.77.0.0/24, attach
#   d  vswitch with an encrypted network (skipped with a note until `vswitch key generate` works)
# Metrics: iperf3 TCP 1 and 4 streams, UDP 64-byte packet rate, UDP with USO (UDP_SEGMENT
# superframes of 1,400-byte datagrams), ping latency p50/p99; fan-in
# (modes b-d): ten more containers on host 1 each sending TCP to its own receiver on host 2, all
# at once; and for vswitch, each daemon's CPU use while idle (from /proc/PID/stat).
# Prints a table with the ratio of each mode to (b) and writes target/bench-e2e/results.json
# (raw iperf3/ping output in target/bench-e2e/raw/). A benchmark, not a test: it fails only when
# a mode cannot be set up or measured, and then says which step.
#
# Usage: scripts/bench-e2e.sh [--quick] [--only a,b,c,d] [--time SECONDS] [--idle SECONDS]
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<EOF
usage: $0 [--quick] [--only a,b,c,d] [--time SECONDS] [--idle SECONDS]

  --quick        2 s per iperf3 test, 50 pings, 5 s idle (default: 5 s, 200 pings, 30 s)
  --only LIST    comma-separated modes to run (default: a,b,c,d)
                   a  direct veth between the containers (ceiling)
                   b  kernel vxlan + Linux bridge per host (the baseline for ratios)
                   c  vswitch
                   d  vswitch, encrypted network
  --time N       seconds per iperf3 test (overrides --quick)
  --idle N       seconds over which an idle daemon's CPU use is measured (overrides --quick)

Environment: VSWITCH=path to the binary (default target/release/vswitch, built by this
script), VS_KEEP_WORK=1 keeps the work dir (daemon logs) after the run, RUST_LOG for daemons.
EOF
}

MODES=(a b c d)
DURATION=5
PINGS=200
IDLE=30
QUICK=0
# Fan-in: this many sender containers on host 1, one receiver each on host 2.
FANIN=10
while (($#)); do
    case $1 in
    --quick)
        QUICK=1
        DURATION=2
        PINGS=50
        IDLE=5
        ;;
    --only)
        [[ $# -ge 2 ]] || die "--only needs a list, e.g. --only a,b"
        IFS=, read -ra MODES <<<"$2"
        shift
        ;;
    --only=*) IFS=, read -ra MODES <<<"${1#*=}" ;;
    --time)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--time needs a whole number of seconds"
        DURATION=$2
        shift
        ;;
    --idle)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--idle needs a whole number of seconds"
        IDLE_SET=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
    shift
done
IDLE=${IDLE_SET:-$IDLE}
for m in "${MODES[@]}"; do
    [[ $m =~ ^[abcd]$ ]] || die "unknown mode '$m' in --only (choose from a,b,c,d)"
done

declare -A LABEL=([a]="veth (ceiling)" [b]="kernel vxlan" [c]="vswitch" [d]="vswitch+enc")

VNI=100
SUBNET=10.77.0.0/24
IP1=10.77.0.11
IP2=10.77.0.12
PORT=5201

need_root "$@"
ensure_pkgs iperf3:iperf3 iproute2:ip iputils-ping:ping python3:python3 procps:sysctl coreutils:timeout
vs_init "vsb$$"
P=$VS_PREFIX

OUT=$VS_ROOT/target/bench-e2e
RAW=$OUT/raw
mkdir -p "$RAW"
rm -f "$RAW"/*

selected() {
    local m
    for m in "${MODES[@]}"; do [[ $m == "$1" ]] && return 0; done
    return 1
}

BUILD_OK=1
if selected c || selected d; then
    if ! (build_release); then
        BUILD_OK=0
        warn "build failed; modes c/d will be reported as failed"
    fi
else
    note "modes c/d not selected: not building vswitch"
fi

# ---------------------------------------------------------------------------------------------
# Per-mode bookkeeping. Each mode runs in a subshell with `set -e`; its current step and the
# first failing command are written to files so the parent can say what broke.

MODE=
step() {
    echo "$*" >"$VS_WORK/step-$MODE"
    printf '  [%s] %s\n' "$MODE" "$*"
}

# shellcheck disable=SC2317 # called from the ERR trap
on_err() {
    local rc=$1 cmd=$2 where=$3
    [[ -e $VS_WORK/err-$MODE ]] && return 0
    if [[ $cmd == return* ]]; then
        echo "exit status $rc (see the messages above)" >"$VS_WORK/err-$MODE"
    else
        printf "command '%s' exited %s (%s)" "$cmd" "$rc" "$where" >"$VS_WORK/err-$MODE"
    fi
}

# Namespace names of the current mode.
h1() { echo "$P-$MODE-h1"; }
h2() { echo "$P-$MODE-h2"; }
c1() { echo "$P-$MODE-c1"; }
c2() { echo "$P-$MODE-c2"; }

# The interface carrying the container's traffic (for reporting its MTU).
CIF=$P-e0

# mk_hosts — two hosts on the veth underlay: h1 = 192.0.2.1, h2 = 192.0.2.2.
mk_hosts() {
    mk_host "$(h1)"
    mk_host "$(h2)"
    mk_underlay "$(h1)" "$(h2)"
}

setup_a() {
    step "create containers and a direct veth between them"
    mk_container "$(c1)"
    mk_container "$(c2)"
    mk_veth "$(c1)" "$CIF" "$(c2)" "$CIF" 1500
    ip -n "$(c1)" addr add "$IP1/24" dev "$CIF"
    ip -n "$(c2)" addr add "$IP2/24" dev "$CIF"
}

setup_b() {
    local i peer h c
    step "create hosts and the veth underlay"
    mk_hosts
    step "kernel vxlan $VNI (dstport 4789) + bridge in each host"
    for i in 1 2; do
        peer=$((3 - i))
        h=$P-$MODE-h$i
        c=$P-$MODE-c$i
        ip -n "$h" link add "$P-vx" type vxlan id "$VNI" dstport 4789 \
            local "$(host_ip "$i")" remote "$(host_ip "$peer")" dev "$(underlay_if)"
        ip -n "$h" link add "$P-br" type bridge
        ip -n "$h" link set "$P-vx" master "$P-br"
        ip -n "$h" link set "$P-vx" up
        ip -n "$h" link set "$P-br" up
        mk_container "$c"
        mk_veth "$c" "$CIF" "$h" "$P-v1" 1450
        ip -n "$h" link set "$P-v1" master "$P-br"
    done
    ip -n "$(c1)" addr add "$IP1/24" dev "$CIF"
    ip -n "$(c2)" addr add "$IP2/24" dev "$CIF"
    setup_fanin
}

# The fan-in pairs: sender i (1..FANIN) on host 1 is 10.77.0.(100+i), its receiver on host 2
# is 10.77.0.(150+i).
fan_ns() { echo "$P-$MODE-f$1$2"; }
fan_ip() { if [[ $2 == a ]]; then echo "10.77.0.$((100 + $1))"; else echo "10.77.0.$((150 + $1))"; fi; }

setup_fanin() {
    local i side h c link host
    step "fan-in: $FANIN containers on host 1 and $FANIN on host 2"
    for ((i = 1; i <= FANIN; i++)); do
        for side in a b; do
            host=1
            [[ $side == b ]] && host=2
            h=$P-$MODE-h$host
            c=$(fan_ns "$i" "$side")
            mk_container "$c"
            if [[ $MODE == b ]]; then
                link=$P-f$i$side
                mk_veth "$c" "$P-e0" "$h" "$link" 1450
                ip -n "$h" link set "$link" master "$P-br"
                ip -n "$c" addr add "$(fan_ip "$i" "$side")/24" dev "$P-e0"
            else
                vsctl "$VS_WORK/$MODE-h$host/vswitch.sock" attach "$c" --network bench \
                    --ip "$(fan_ip "$i" "$side")/24" >/dev/null
            fi
        done
    done
}

# setup_vswitch [--encrypted] — modes c and d.
setup_vswitch() {
    local enc=${1:-} i peer h c sock key=$VS_WORK/$MODE.key
    local -a netargs=(--vni "$VNI" --subnet "$SUBNET")
    if [[ $enc == --encrypted ]]; then
        step "vswitch key generate --out $key"
        if ! "$VSWITCH" key generate --out "$key" >"$VS_WORK/$MODE-keygen.log" 2>&1 || [[ ! -s $key ]]; then
            echo "vswitch key generate does not work yet ($(head -c 200 "$VS_WORK/$MODE-keygen.log" | tr '\n' ' '))" \
                >"$VS_WORK/skip-$MODE"
            return 0
        fi
        netargs+=(--encrypted --key-file "$key")
    fi
    step "create hosts and the veth underlay"
    mk_hosts
    for i in 1 2; do
        peer=$((3 - i))
        h=$P-$MODE-h$i
        sock=$VS_WORK/$MODE-h$i/vswitch.sock
        step "start vswitch daemon in host $i ($(host_ip "$i"), --peer $(host_ip "$peer"))"
        start_daemon "$h" "$sock" "$VS_WORK/$MODE-h$i/state" \
            --listen "$(host_ip "$i")" --port 4789 --peer "$(host_ip "$peer"):4789" --underlay-mtu 1500
        echo "$DAEMON_PID" >>"$VS_WORK/daemons-$MODE"
    done
    for i in 1 2; do
        sock=$VS_WORK/$MODE-h$i/vswitch.sock
        step "vswitch network create bench ${netargs[*]} (host $i)"
        vsctl "$sock" network create bench "${netargs[@]}"
    done
    for i in 1 2; do
        c=$P-$MODE-c$i
        sock=$VS_WORK/$MODE-h$i/vswitch.sock
        mk_container "$c"
        step "vswitch attach $c --network bench --ip 10.77.0.1$i/24 (host $i)"
        vsctl "$sock" attach "$c" --network bench --ip "10.77.0.1$i/24"
    done
    CIF=eth0
    step "check eth0 in the containers"
    ip -n "$(c1)" -o addr show dev eth0
    ip -n "$(c2)" -o addr show dev eth0
    setup_fanin
}


# Diagnostics for a failed vswitch mode: daemon logs, fdb, stats.
diag_vswitch() {
    local i sock
    for i in 1 2; do
        sock=$VS_WORK/$MODE-h$i/vswitch.sock
        [[ -e $VS_WORK/daemon-$P-$MODE-h$i.log ]] && dump_log "$VS_WORK/daemon-$P-$MODE-h$i.log" 25
        if [[ -S $sock ]]; then
            echo "---- host $i: vswitch fdb / stats ----" >&2
            timeout 5 "$VSWITCH" --socket "$sock" fdb >&2 2>&1 || true
            timeout 5 "$VSWITCH" --socket "$sock" stats >&2 2>&1 || true
        fi
    done
}

# ipf NAME IPERF3-ARGS... — an iperf3 client run from c1 to the server in c2, JSON to raw/.
ipf() {
    local name=$1 f=$RAW/$MODE-$1.json rc=0
    shift
    timeout $((DURATION + 30)) ip netns exec "$(c1)" \
        iperf3 -c "$IP2" -p "$PORT" --connect-timeout 5000 -J "$@" >"$f" 2>"$f.stderr" || rc=$?
    [[ -s $f.stderr ]] || rm -f "$f.stderr"
    if ((rc)); then
        printf 'iperf3 %s failed (status %s): %s\n' "$name" "$rc" \
            "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error",""))' "$f" 2>/dev/null ||
                head -c 300 "$f.stderr")" >&2
        return "$rc"
    fi
}

measure() {
    local omit=() i daemons
    ((QUICK)) || omit=(-O 1)
    step "start iperf3 server in container 2"
    spawn "$VS_WORK/iperf3-server-$MODE.log" "$(c2)" iperf3 -s -B "$IP2" -p "$PORT"
    wait_listen "$(c2)" "$PORT" 5 || {
        echo "iperf3 server did not listen on $IP2:$PORT within 5 s" >&2
        dump_log "$VS_WORK/iperf3-server-$MODE.log" 10
        return 1
    }
    step "connectivity: ping $IP2 from container 1"
    wait_ping "$(c1)" "$IP2" 10 || {
        echo "no ping reply from $IP2 within 10 s: container 1 cannot reach container 2" >&2
        return 1
    }
    step "iperf3 TCP, 1 stream, ${DURATION}s"
    ipf tcp1 -t "$DURATION" "${omit[@]}"
    step "iperf3 TCP, 4 streams, ${DURATION}s"
    ipf tcp4 -t "$DURATION" -P 4 "${omit[@]}"
    step "iperf3 UDP, 64-byte payload, -b 0, ${DURATION}s"
    ipf udp64 -u -l 64 -b 0 -t "$DURATION"
    uso
    step "ping latency, $PINGS pings at 5 ms intervals"
    ip netns exec "$(c1)" ping -n -c "$PINGS" -i 0.005 -W 1 "$IP2" >"$RAW/$MODE-ping.txt"
    [[ $MODE == a ]] || fanin
    if [[ $MODE == [cd] ]]; then
        step "idle: each daemon's CPU use over ${IDLE}s without traffic"
        mapfile -t daemons <"$VS_WORK/daemons-$MODE"
        idle_cpu "$IDLE" "${daemons[@]}" >"$RAW/$MODE-idle.txt"
    fi
    if [[ $MODE == [cd] ]]; then
        step "save vswitch stats --json of both daemons"
        for i in 1 2; do
            vsctl "$VS_WORK/$MODE-h$i/vswitch.sock" --json stats >"$RAW/$MODE-h$i-stats.json" ||
                warn "vswitch stats --json failed on host $i (not fatal)"
        done
    fi
    step "parse results"
    python3 - "$RAW" "$MODE" "$(ip -n "$(c1)" -o link show dev "$CIF" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')" \
        >"$VS_WORK/res-$MODE.json" <<'PY'
import json, os, re, sys
raw, mode, mtu = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    with open(f"{raw}/{mode}-{name}.json") as f:
        return json.load(f)
m = {}
for name in ("tcp1", "tcp4"):
    end = load(name)["end"]
    m[f"{name}_gbps"] = end["sum_received"]["bits_per_second"] / 1e9
    m[f"{name}_retransmits"] = end["sum_sent"].get("retransmits")
end = load("udp64")["end"]
rx = end.get("sum_received", end["sum"])
tx = end.get("sum_sent", end["sum"])
got = rx["packets"] - rx["lost_packets"]
m["udp64_tx_kpps"] = tx["packets"] / tx["seconds"] / 1e3
m["udp64_rx_kpps"] = got / rx["seconds"] / 1e3
m["udp64_rx_mbps"] = got * 64 * 8 / rx["seconds"] / 1e6
m["udp64_loss_pct"] = rx["lost_percent"]
with open(f"{raw}/{mode}-ping.txt") as f:
    text = f.read()
times = sorted(float(t) for t in re.findall(r"time=([0-9.]+) ms", text))
sent = re.search(r"(\d+) packets transmitted, (\d+) received", text)
def pct(p):  # nearest-rank percentile
    return times[max(0, min(len(times) - 1, -(-p * len(times) // 100) - 1))] * 1000
m["ping_p50_us"] = pct(50) if times else None
m["ping_p99_us"] = pct(99) if times else None
m["ping_loss_pct"] = 100 * (1 - int(sent[2]) / int(sent[1])) if sent else None
def last_json(path):
    with open(path) as f:
        return json.loads([l for l in f if l.startswith("{")][-1])
utx, urx = last_json(f"{raw}/{mode}-uso-tx.json"), last_json(f"{raw}/{mode}-uso-rx.json")
m["uso_tx_gbps"] = utx["bytes"] * 8 / utx["seconds"] / 1e9
m["uso_rx_gbps"] = urx["bytes"] * 8 / urx["seconds"] / 1e9 if urx["seconds"] else 0.0
m["uso_loss_pct"] = 100 * (1 - urx["bytes"] / utx["bytes"]) if utx["bytes"] else None
fan = [f"{raw}/{mode}-fanin-{i}.json" for i in range(1, 100)]
fan = [f for f in fan if os.path.exists(f)]
if fan:
    m["fanin_gbps"] = sum(json.load(open(f))["end"]["sum_received"]["bits_per_second"] for f in fan) / 1e9
    m["fanin_retransmits"] = sum(json.load(open(f))["end"]["sum_sent"].get("retransmits", 0) for f in fan)
if os.path.exists(f"{raw}/{mode}-idle.txt"):
    with open(f"{raw}/{mode}-idle.txt") as f:
        m["idle_cpu_pct"] = max(float(line.split()[1]) for line in f if line.strip())
out = {"status": "ok", "mtu": int(mtu) if mtu else None, "metrics": m}
for h in (1, 2):  # vswitch modes: drop counters by reason, per host
    try:
        with open(f"{raw}/{mode}-h{h}-stats.json") as f:
            out.setdefault("drops", {})[f"host{h}"] = json.load(f).get("drops")
    except (OSError, ValueError, AttributeError):
        pass
print(json.dumps(out))
PY
}

# fanin — FANIN iperf3 clients on host 1, each to its own server on host 2, all at once.
fanin() {
    local i pids=() rc=0
    step "fan-in: $FANIN TCP senders on host 1 to $FANIN receivers on host 2, ${DURATION}s"
    for ((i = 1; i <= FANIN; i++)); do
        spawn "$VS_WORK/iperf3-fan$i-$MODE.log" "$(fan_ns "$i" b)" iperf3 -s -B "$(fan_ip "$i" b)" -p "$PORT"
    done
    for ((i = 1; i <= FANIN; i++)); do
        wait_listen "$(fan_ns "$i" b)" "$PORT" 5 || {
            echo "fan-in iperf3 server $i did not listen within 5 s" >&2
            return 1
        }
        wait_ping "$(fan_ns "$i" a)" "$(fan_ip "$i" b)" 10 || {
            echo "fan-in sender $i cannot reach $(fan_ip "$i" b)" >&2
            return 1
        }
    done
    for ((i = 1; i <= FANIN; i++)); do
        timeout $((DURATION + 30)) ip netns exec "$(fan_ns "$i" a)" iperf3 -c "$(fan_ip "$i" b)" \
            -p "$PORT" --connect-timeout 5000 -J -t "$DURATION" >"$RAW/$MODE-fanin-$i.json" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || rc=$?; done
    ((rc == 0)) || echo "a fan-in iperf3 client failed (status $rc); see $RAW/$MODE-fanin-*.json" >&2
    return "$rc"
}

# uso — UDP with segmentation offload: a sender in container 1 writes 64 KiB superframes of
# 1,400-byte datagrams (smaller if the MTU is) with UDP_SEGMENT as fast as it can for DURATION
# seconds (what QUIC stacks do); the receiver in container 2 reads with UDP_GRO. iperf3 3.12 cannot send with GSO, hence
# Python; both report JSON ($RAW/$MODE-uso-tx.json, -rx.json).
uso() {
    local rx=$RAW/$MODE-uso-rx.json tx=$RAW/$MODE-uso-tx.json rc=0 mtu seg
    # 1,400-byte datagrams, or smaller where the container's MTU is (a sealed network: 1,414).
    mtu=$(ip -n "$(c1)" -o link show dev "$CIF" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
    seg=$((mtu - 28 < 1400 ? mtu - 28 : 1400))
    step "UDP with USO: ${seg}-byte datagrams in 64 KiB superframes, ${DURATION}s"
    spawn "$rx" "$(c2)" python3 -c '
import json, socket, sys, time
ip, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
s.setsockopt(socket.SOL_UDP, 104, 1)  # UDP_GRO
s.bind((ip, port)); s.settimeout(1.0)
print("ready", flush=True)
got, first, last = 0, None, None
end = time.monotonic() + secs + 10
while time.monotonic() < end:
    try:
        n = len(s.recv(1 << 16))
    except socket.timeout:
        if first is not None:
            break
        continue
    last = time.monotonic()
    first = first or last
    got += n
secs_rx = (last - first) if first and last and last > first else None
print(json.dumps({"bytes": got, "seconds": secs_rx}))
' "$IP2" "$((PORT + 1))" "$DURATION"
    local rxpid=$SPAWN_PID i
    for ((i = 0; i < 50; i++)); do
        grep -q ready "$rx" 2>/dev/null && break
        sleep 0.1
    done
    timeout $((DURATION + 30)) ip netns exec "$(c1)" python3 -c '
import json, socket, sys, time
ip, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
seg = int(sys.argv[4])
s.setsockopt(socket.SOL_UDP, 103, seg)  # UDP_SEGMENT
s.connect((ip, port))
buf = bytes(seg * (65000 // seg))
sent, errors, t0 = 0, 0, time.monotonic()
while time.monotonic() - t0 < secs:
    try:
        sent += s.send(buf)
    except OSError:
        errors += 1
print(json.dumps({"bytes": sent, "seconds": time.monotonic() - t0, "errors": errors}))
' "$IP2" "$((PORT + 1))" "$DURATION" "$seg" >"$tx" || rc=$?
    wait "$rxpid" || true
    ((rc == 0)) || echo "the USO sender failed (status $rc); see $tx" >&2
    return "$rc"
}

# idle_cpu SECONDS PID... — each PID's CPU use (user + system) over SECONDS, in % of one core,
# one line per PID.
idle_cpu() {
    local secs=$1 pid
    shift
    python3 - "$secs" "$@" <<'PY'
import os, sys, time
secs, pids = float(sys.argv[1]), sys.argv[2:]
tck = os.sysconf("SC_CLK_TCK")
def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime
before = {p: ticks(p) for p in pids}
t0 = time.monotonic()
time.sleep(secs)
elapsed = time.monotonic() - t0
for p in pids:
    print(p, 100.0 * (ticks(p) - before[p]) / tck / elapsed)
PY
}

run_mode() {
    MODE=$1
    trap 'on_err $? "$BASH_COMMAND" "${BASH_SOURCE[0]##*/}:$LINENO"' ERR
    case $MODE in
    a) setup_a ;;
    b) setup_b ;;
    c) setup_vswitch ;;
    d) setup_vswitch --encrypted ;;
    esac
    if [[ -e $VS_WORK/skip-$MODE ]]; then
        return 0
    fi
    measure
}

# Stop this mode's processes and delete its namespaces (the EXIT trap catches the rest).
teardown_mode() {
    local pid _
    if [[ -e $VS_WORK/pids-$1 ]]; then
        while read -r pid _; do stop_pid "$pid"; done < <(tac "$VS_WORK/pids-$1")
    fi
    del_netns_prefix "$P-$1-"
}

RESULTS=()
for m in "${MODES[@]}"; do
    say "mode $m: ${LABEL[$m]}"
    res=$VS_WORK/res-$m.json
    if [[ $m =~ [cd] ]] && ((!BUILD_OK)); then
        printf '{"status":"failed","step":"cargo build --release","error":"build failed"}\n' >"$res"
        RESULTS+=("$res")
        continue
    fi
    set +e
    (
        set -eEuo pipefail
        # Stop at once on Ctrl-C; the parent's trap then cleans up everything.
        trap 'exit 130' INT
        trap 'exit 143' TERM
        VS_PIDFILE=$VS_WORK/pids-$m
        run_mode "$m"
    )
    rc=$?
    set -e
    if [[ -e $VS_WORK/skip-$m ]]; then
        note "mode $m skipped: $(cat "$VS_WORK/skip-$m")"
        python3 -c 'import json,sys; print(json.dumps({"status":"skipped","note":sys.argv[1]}))' \
            "$(cat "$VS_WORK/skip-$m")" >"$res"
    elif ((rc)) || [[ ! -s $res ]]; then
        st=$(cat "$VS_WORK/step-$m" 2>/dev/null || echo "?")
        er=$(cat "$VS_WORK/err-$m" 2>/dev/null || echo "exit status $rc")
        fail "mode $m FAILED at step: $st" "    $er"
        if [[ $m =~ [cd] ]]; then (MODE=$m diag_vswitch) || true; fi
        python3 -c 'import json,sys; print(json.dumps({"status":"failed","step":sys.argv[1],"error":sys.argv[2]}))' \
            "$st" "$er" >"$res"
    fi
    teardown_mode "$m"
    RESULTS+=("$res")
done

# ---------------------------------------------------------------------------------------------
# Report

python3 - "$OUT/results.json" "$DURATION" "$PINGS" "$QUICK" "$(uname -r)" "$(nproc)" \
    "$(iperf3 --version | head -n1)" "$(git -C "$VS_ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" "$IDLE" "$FANIN" \
    "${MODES[@]/#/mode=}" "${RESULTS[@]}" <<'PY'
import json, sys, time
out, duration, pings, quick, kernel, ncpu, iperf, rev, cpu, idle, fanin = sys.argv[1:12]
rest = sys.argv[12:]
modes = [a[5:] for a in rest if a.startswith("mode=")]
files = [a for a in rest if not a.startswith("mode=")]
labels = {"a": "veth (ceiling)", "b": "kernel vxlan", "c": "vswitch", "d": "vswitch+enc"}
res = {}
for m, f in zip(modes, files):
    with open(f) as fh:
        r = json.load(fh)
    r["label"] = labels[m]
    res[m] = r
doc = {
    "meta": {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "kernel": kernel, "cpus": int(ncpu), "cpu": cpu, "iperf3": iperf, "git": rev,
        "seconds_per_test": int(duration), "pings": int(pings), "quick": quick == "1",
        "idle_seconds": int(idle), "fanin_senders": int(fanin),
        "topology": "2 host netns joined by veth (192.0.2.0/24, MTU 1500); containers 10.77.0.11 -> 10.77.0.12",
    },
    "modes": res,
}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")

rows = [
    ("TCP 1 stream  Gbit/s", "tcp1_gbps", "{:.2f}", True),
    ("TCP 4 streams Gbit/s", "tcp4_gbps", "{:.2f}", True),
    ("TCP 1 retransmits", "tcp1_retransmits", "{}", False),
    ("TCP 4 retransmits", "tcp4_retransmits", "{}", False),
    ("UDP 64B rx    kpps", "udp64_rx_kpps", "{:.0f}", True),
    ("UDP 64B rx    Mbit/s", "udp64_rx_mbps", "{:.1f}", True),
    ("UDP 64B tx    kpps", "udp64_tx_kpps", "{:.0f}", True),
    ("UDP 64B loss  %", "udp64_loss_pct", "{:.1f}", False),
    ("UDP USO rx    Gbit/s", "uso_rx_gbps", "{:.2f}", True),
    ("UDP USO tx    Gbit/s", "uso_tx_gbps", "{:.2f}", True),
    ("UDP USO loss  %", "uso_loss_pct", "{:.1f}", False),
    ("ping p50      us", "ping_p50_us", "{:.0f}", True),
    ("ping p99      us", "ping_p99_us", "{:.0f}", True),
    ("ping loss     %", "ping_loss_pct", "{:.1f}", False),
    ("fan-in 10 TCP Gbit/s", "fanin_gbps", "{:.2f}", True),
    ("fan-in retransmits", "fanin_retransmits", "{}", False),
    ("idle CPU %core (max)", "idle_cpu_pct", "{:.2f}", False),
    ("container MTU", None, "{}", False),
]
base = res.get("b", {}).get("metrics") if res.get("b", {}).get("status") == "ok" else None

def cell(m, key, fmt, ratio):
    r = res[m]
    if r["status"] != "ok":
        return r["status"]
    v = r.get("mtu") if key is None else r["metrics"].get(key)
    if v is None:
        return "-"
    s = fmt.format(v)
    if ratio and base and m != "b" and base.get(key):
        s += " ({:.2f}x)".format(v / base[key])
    return s

w0 = max(len(r[0]) for r in rows)
cells = {m: [cell(m, k, f, q) for _, k, f, q in rows] for m in modes}
widths = {m: max([len(labels[m]) + 4] + [len(c) for c in cells[m]]) for m in modes}
print()
print("  ".join(["metric".ljust(w0)] + [f"{m}) {labels[m]}".rjust(widths[m]) for m in modes]))
print("  ".join(["-" * w0] + ["-" * widths[m] for m in modes]))
for i, (name, *_r) in enumerate(rows):
    print("  ".join([name.ljust(w0)] + [cells[m][i].rjust(widths[m]) for m in modes]))
print()
if base:
    print("(Nx) = ratio to b) kernel vxlan, same run. Throughput: higher is better; latency: lower is better.")
else:
    print("no ratios: b) kernel vxlan was not measured in this run.")
for m in modes:
    r = res[m]
    if r["status"] == "failed":
        print(f"{m}) {labels[m]}: FAILED at step: {r['step']}\n     {r['error']}")
    elif r["status"] == "skipped":
        print(f"{m}) {labels[m]}: skipped: {r['note']}")
print(f"raw results: {out}")
PY

failed=0
for f in "${RESULTS[@]}"; do
    grep -q '"status": *"failed"' "$f" && failed=1
done
exit "$failed"
