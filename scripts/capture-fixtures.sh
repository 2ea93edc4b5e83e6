#!/usr/bin/env bash
# capture-fixtures.sh — capture REAL VXLAN packets emitted by the Linux kernel
# vxlan driver and write them as hex fixtures for the wire parser tests.
#
# Usage (as root):  scripts/capture-fixtures.sh [OUT_DIR]
#   OUT_DIR defaults to <repo>/src/wire/fixtures
#   KEEP_PCAP=/some/path.pcap  additionally keeps the raw capture.
#
# Topology (everything lives in namespaces created here; nothing is ever put
# into the root namespace, no default routes, eth0 is never touched):
#
#   [c1] e0 02:00:00:00:00:0a 10.99.0.10/24, fd00:99::10/64     e0 [c2] (…:0b, .11)
#        e1 02:00:00:00:ab:0a 10.98.0.10/24                      e1      (…:0b, .11)
#         |  (tap<->tap "cable")                                  |
#   [h1] p0 -- br0 -- vx0 (VNI 4242)                 vx0 -- br0 -- p0  [h2]
#        p1 -- br1 -- vxab (VNI 0xabcdef)           vxab -- br1 -- p1
#              ul 02:00:00:00:01:01 192.0.2.1/24 <==> ul 192.0.2.2/24 (…:01:02)
#                     ^ tcpdump -w here (udp port 4789)
#
# This kernel has no veth/vlan drivers, so each "cable" is a pair of tap
# devices joined by a small userspace relay that copies frames verbatim.
# All VXLAN encapsulation is done by the kernel vxlan driver.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
OUT=${1:-$REPO/src/wire/fixtures}
PY=/usr/bin/python3          # system python (has scapy); not the pyenv shim

[[ $EUID -eq 0 ]] || { echo "must run as root" >&2; exit 1; }
for t in ip tcpdump tshark "$PY"; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
"$PY" -c 'import scapy.all' 2>/dev/null || { echo "python3-scapy missing for $PY" >&2; exit 1; }

P="vswfx$$"                  # namespace prefix (unique per run)
L="vf$$"                     # link-name prefix (IFNAMSIZ=16 → keep short)
NS_H1="${P}h1" NS_H2="${P}h2" NS_C1="${P}c1" NS_C2="${P}c2"
UL="${L}ul" VX0="${L}vx0" VXAB="${L}vxab" BR0="${L}br0" BR1="${L}br1"
P0="${L}p0" P1="${L}p1" E0="${L}e0" E1="${L}e1"
for n in "$UL" "$VX0" "$VXAB" "$BR0" "$BR1" "$P0" "$P1" "$E0" "$E1"; do
    (( ${#n} <= 15 )) || { echo "link name too long: $n" >&2; exit 1; }
done

VNI_A=4242
VNI_B=$((0xABCDEF))           # 11259375: distinct bytes → byte-order coverage

WORK=$(mktemp -d /tmp/vswfx.XXXXXX)
CREATED_NS=()
PIDS=()

cleanup() {
    local rc=$?
    set +e
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for ns in "${CREATED_NS[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$WORK"
    # paranoia: report anything of ours that survived
    if ip netns list | grep -q "^$P"; then echo "WARNING: leftover netns $P*" >&2; rc=1; fi
    if ip -o link | grep -q "$L"; then echo "WARNING: leftover link $L*" >&2; rc=1; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkns() { ip netns add "$1"; CREATED_NS+=("$1"); ip -n "$1" link set lo up; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---------------------------------------------------------------- helpers (py)
cat >"$WORK/relay.py" <<'EOF'
# Join pairs of persistent tap devices (in arbitrary netns) like a veth pair.
# argv: READY_FILE ns:ifname=ns:ifname ...
import ctypes, fcntl, os, select, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x40000000, 0x400454CA, 0x0002, 0x1000
def open_tap(spec):
    ns, ifname = spec.split(":")
    nsfd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    if libc.setns(nsfd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {ns}")
    os.close(nsfd)
    fd = os.open("/dev/net/tun", os.O_RDWR)   # tun fd binds to the current netns
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", ifname.encode(), IFF_TAP | IFF_NO_PI))
    return fd
peer = {}
for pair in sys.argv[2:]:
    a, b = (open_tap(s) for s in pair.split("="))
    peer[a], peer[b] = b, a
open(sys.argv[1], "w").close()
while True:
    for fd in select.select(list(peer), [], [])[0]:
        try:
            frame = os.read(fd, 65536)
            os.write(peer[fd], frame)
        except OSError:
            pass   # peer interface down (EIO) etc.
EOF

cat >"$WORK/server.py" <<'EOF'
# Runs in c2: TCP listener on :8080 and UDP sink on :9999 (so no ICMP unreachables).
import select, socket, sys
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("10.99.0.11", 8080)); t.listen(4)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.99.0.11", 9999))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); v.bind(("0.0.0.0", 9998))
open(sys.argv[1], "w").close()
while True:
    for s in select.select([t, u, v], [], [])[0]:
        if s is t:
            c, _ = t.accept(); c.settimeout(2)
            try: c.recv(100)
            except OSError: pass
            c.close()
        else:
            s.recvfrom(2048)
EOF

cat >"$WORK/client.py" <<'EOF'
# Runs in c1: generates one kind of traffic, deterministic ids/ports/payloads.
import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
PAYLOAD = b"vswitch-fixture!" * 2      # 32 bytes
IDENT, SEQ = 0x5657, 1                # 'VW'
act = sys.argv[1]
if act == "ping4":
    dst = sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(5)
    m = struct.pack("!BBHHH", 8, 0, 0, IDENT, SEQ) + PAYLOAD
    m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
    s.sendto(m, (dst, 0))
    while True:
        d, a = s.recvfrom(2048); ihl = (d[0] & 15) * 4
        if a[0] == dst and d[ihl] == 0 and struct.unpack("!H", d[ihl+4:ihl+6])[0] == IDENT: break
elif act == "ping6":
    dst = sys.argv[2]
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6); s.settimeout(5)
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, IDENT, SEQ) + PAYLOAD, (dst, 0))  # kernel fills csum
    while True:
        d, a = s.recvfrom(2048)
        if d[0] == 129 and struct.unpack("!H", d[4:6])[0] == IDENT: break
elif act == "tcp":
    s = socket.socket(); s.bind(("10.99.0.10", 40001)); s.settimeout(5)
    s.connect(("10.99.0.11", 8080)); s.sendall(b"hello vswitch\n"); time.sleep(0.2); s.close()
elif act == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.99.0.10", 40002))
    s.sendto(b"vswitch udp fixture\n", ("10.99.0.11", 9999))
elif act == "vlan":
    from scapy.all import Ether, Dot1Q, IP, UDP, Raw, sendp
    f = (Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
         / Dot1Q(prio=5, vlan=10)
         / IP(src="10.99.10.10", dst="10.99.10.11", id=0x1010, ttl=64, flags="DF")
         / UDP(sport=40010, dport=9998) / Raw(b"vswitch vlan fixture\n"))
    sendp(f, iface=sys.argv[2], verbose=False)
else:
    sys.exit(f"unknown action {act}")
EOF

wait_file() { local _i; for _i in $(seq 100); do [[ -e $1 ]] && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; return 1; }

# ---------------------------------------------------------------- topology
echo "== building topology (ns prefix $P, link prefix $L)"
for ns in "$NS_H1" "$NS_H2" "$NS_C1" "$NS_C2"; do mkns "$ns"; done
for ns in "$NS_H1" "$NS_H2"; do   # hosts: no IPv6 at all → no stray MLD/RS in the tunnel
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done

ip -n "$NS_H1" tuntap add dev "$UL" mode tap
ip -n "$NS_H2" tuntap add dev "$UL" mode tap
for h in "$NS_H1" "$NS_H2"; do
    ip -n "$h" tuntap add dev "$P0" mode tap
    ip -n "$h" tuntap add dev "$P1" mode tap
done
for c in "$NS_C1" "$NS_C2"; do
    ip -n "$c" tuntap add dev "$E0" mode tap
    ip -n "$c" tuntap add dev "$E1" mode tap
done

"$PY" "$WORK/relay.py" "$WORK/relay.ready" \
    "$NS_H1:$UL=$NS_H2:$UL" \
    "$NS_C1:$E0=$NS_H1:$P0" "$NS_C1:$E1=$NS_H1:$P1" \
    "$NS_C2:$E0=$NS_H2:$P0" "$NS_C2:$E1=$NS_H2:$P1" &
PIDS+=($!)
wait_file "$WORK/relay.ready"

setup_host() {  # ns own_ip peer_ip ul_mac
    local ns=$1 own=$2 peer=$3 mac=$4
    ip -n "$ns" link set "$UL" address "$mac" up
    ip -n "$ns" addr add "$own/24" dev "$UL"
    ip -n "$ns" link add "$VX0" type vxlan id "$VNI_A" dstport 4789 local "$own" remote "$peer" dev "$UL"
    ip -n "$ns" link add "$VXAB" type vxlan id "$VNI_B" dstport 4789 local "$own" remote "$peer" dev "$UL"
    ip -n "$ns" link add "$BR0" type bridge stp_state 0 forward_delay 0
    ip -n "$ns" link add "$BR1" type bridge stp_state 0 forward_delay 0
    ip -n "$ns" link set "$VX0" master "$BR0" up
    ip -n "$ns" link set "$P0" master "$BR0" up
    ip -n "$ns" link set "$VXAB" master "$BR1" up
    ip -n "$ns" link set "$P1" master "$BR1" up
    ip -n "$ns" link set "$BR0" up
    ip -n "$ns" link set "$BR1" up
}
setup_host "$NS_H1" 192.0.2.1 192.0.2.2 02:00:00:00:01:01
setup_host "$NS_H2" 192.0.2.2 192.0.2.1 02:00:00:00:01:02

setup_ctr() {  # ns last_octet_hex last_octet_dec
    local ns=$1 x=$2 d=$3
    nsx "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    nsx "$ns" sysctl -qw "net.ipv6.conf.$E1.disable_ipv6=1"
    ip -n "$ns" link set "$E0" address "02:00:00:00:00:$x" mtu 1450 addrgenmode none
    ip -n "$ns" link set "$E1" address "02:00:00:00:ab:$x" mtu 1450
    ip -n "$ns" addr add "10.99.0.$d/24" dev "$E0"
    ip -n "$ns" addr add "fd00:99::$d/64" dev "$E0" nodad
    ip -n "$ns" addr add "10.98.0.$d/24" dev "$E1"
    ip -n "$ns" link set "$E0" up
    ip -n "$ns" link set "$E1" up
}
setup_ctr "$NS_C1" 0a 10
setup_ctr "$NS_C2" 0b 11

# NB: background jobs are started as plain simple commands (not via the nsx
# function) so that $! is the real process and not a subshell wrapper.
ip netns exec "$NS_C2" "$PY" "$WORK/server.py" "$WORK/server.ready" &
PIDS+=($!)
wait_file "$WORK/server.ready"
sleep 1   # let link-up chatter settle (not captured anyway)

# ---------------------------------------------------------------- capture
PCAP="$WORK/cap.pcap"
echo "== capturing on $NS_H1/$UL"
ip netns exec "$NS_H1" tcpdump -i "$UL" -nn -U -s 0 --immediate-mode -w "$PCAP" 'udp port 4789' 2>"$WORK/tcpdump.err" &
TCPDUMP=$!
PIDS+=("$TCPDUMP")
for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && break; sleep 0.05; done
grep -q "listening on" "$WORK/tcpdump.err" || { cat "$WORK/tcpdump.err" >&2; exit 1; }

client() { nsx "$NS_C1" "$PY" "$WORK/client.py" "$@"; }
echo "   ARP + ICMP echo (VNI $VNI_A)";   client ping4 10.99.0.11;  sleep 0.3
echo "   TCP 40001->8080";                client tcp;               sleep 0.3
echo "   UDP 40002->9999";                client udp;               sleep 0.3
echo "   IPv6 ND + ICMPv6 echo";          client ping6 fd00:99::11; sleep 0.3
echo "   802.1Q vid 10 (scapy)";          client vlan "$E0";        sleep 0.3
echo "   ARP + ICMP echo (VNI $VNI_B)";   client ping4 10.98.0.11;  sleep 0.5

kill -TERM "$TCPDUMP"; wait "$TCPDUMP" || true
cat "$WORK/tcpdump.err" >&2
[[ -n ${KEEP_PCAP:-} ]] && cp "$PCAP" "$KEEP_PCAP"

# ---------------------------------------------------------------- extract
echo "== extracting with tshark -> $OUT"
tshark -r "$PCAP" -T pdml >"$WORK/cap.pdml" 2>/dev/null
mkdir -p "$OUT"
"$PY" - "$PCAP" "$WORK/cap.pdml" "$OUT" "$VNI_A" "$VNI_B" <<'EOF'
import json, os, struct, sys, xml.etree.ElementTree as ET
pcap_path, pdml_path, out, vni_a, vni_b = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

# raw frames straight from the pcap file
raw = open(pcap_path, "rb").read()
magic = struct.unpack("<I", raw[:4])[0]
assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
linktype = struct.unpack("<I", raw[20:24])[0]; assert linktype == 1, linktype  # Ethernet
frames, off = [], 24
while off < len(raw):
    incl, orig = struct.unpack("<II", raw[off+8:off+16])
    assert incl == orig, "truncated capture"
    frames.append(raw[off+16:off+16+incl]); off += 16 + incl

# tshark's dissection: ordered list of (proto, {field: (show, value)}) per packet
pkts = []
for p in ET.parse(pdml_path).getroot().iter("packet"):
    layers = []
    for proto in p.findall("proto"):
        f = {}
        for fld in proto.iter("field"):
            n = fld.get("name")
            if n and n not in f:
                f[n] = (fld.get("show"), fld.get("value"))
        layers.append((proto.get("name"), f, proto))
    pkts.append(layers)
assert len(pkts) == len(frames), (len(pkts), len(frames))

def decode(i):
    L = pkts[i]
    names = [n for n, _, _ in L]
    g = lambda name, k=0: [f for n, f, _ in L if n == name][k] if names.count(name) > k else None
    frame, oeth, oip, oudp, vx, ieth = g("frame"), g("eth", 0), g("ip", 0), g("udp", 0), g("vxlan"), g("eth", 1)
    if vx is None or ieth is None:
        return None
    vxpos = int([p for n, _, p in L if n == "vxlan"][0].get("pos"))
    payload = frames[i][vxpos:]
    d = {
        "vni": int(vx["vxlan.vni"][0]),
        "flags": int(vx["vxlan.flags"][1], 16) >> 8,      # 16-bit field; flags byte = high byte
        "dst_mac": ieth["eth.dst"][0], "src_mac": ieth["eth.src"][0],
        "ethertype": int(ieth["eth.type"][1], 16),
        "vlan": None, "vlan_pcp": None, "vlan_ethertype": None,
        "src_ip": None, "dst_ip": None, "ip_proto": None,
        "src_port": None, "dst_port": None,
        "arp_opcode": None, "icmp_type": None, "tcp_flags": None,
        "len": int(oudp["udp.length"][0]) - 8,
        "outer_src_mac": oeth["eth.src"][0], "outer_dst_mac": oeth["eth.dst"][0],
        "outer_src_ip": oip["ip.src"][0], "outer_dst_ip": oip["ip.dst"][0],
        "outer_src_port": int(oudp["udp.srcport"][0]), "outer_dst_port": int(oudp["udp.dstport"][0]),
        "outer_udp_checksum": int(oudp["udp.checksum"][1], 16),
        "frame_len": int(frame["frame.len"][0]),
    }
    assert d["len"] == len(payload), (d["len"], len(payload))
    if "udp.payload" in oudp:
        assert bytes.fromhex(oudp["udp.payload"][1]) == payload
    vl = g("vlan")
    if vl:
        d["vlan"] = int(vl["vlan.id"][0]); d["vlan_pcp"] = int(vl["vlan.priority"][0])
        d["vlan_ethertype"] = int(vl["vlan.etype"][1], 16)
    iip, ip6, arp = g("ip", 1), g("ipv6", 0), g("arp")
    if iip:
        d["src_ip"], d["dst_ip"], d["ip_proto"] = iip["ip.src"][0], iip["ip.dst"][0], int(iip["ip.proto"][0])
    elif ip6:
        d["src_ip"], d["dst_ip"], d["ip_proto"] = ip6["ipv6.src"][0], ip6["ipv6.dst"][0], int(ip6["ipv6.nxt"][0])
    elif arp:   # for ARP, "L3 src/dst" = sender / target protocol address
        d["src_ip"], d["dst_ip"] = arp["arp.src.proto_ipv4"][0], arp["arp.dst.proto_ipv4"][0]
        d["arp_opcode"] = int(arp["arp.opcode"][0])
    t, u, ic, ic6 = g("tcp"), g("udp", 1), g("icmp"), g("icmpv6")
    if t:
        d["src_port"], d["dst_port"] = int(t["tcp.srcport"][0]), int(t["tcp.dstport"][0])
        d["tcp_flags"] = int(t["tcp.flags"][1], 16)
    elif u:
        d["src_port"], d["dst_port"] = int(u["udp.srcport"][0]), int(u["udp.dstport"][0])
    if ic:  d["icmp_type"] = int(ic["icmp.type"][0])
    if ic6: d["icmp_type"] = int(ic6["icmpv6.type"][0])
    d["_payload"], d["_frame"] = payload, frames[i]
    return d

decoded = [x for x in (decode(i) for i in range(len(frames))) if x]

A, B = vni_a, vni_b
WANT = [  # (file stem, predicate, description)
 ("arp_request", lambda d: d["vni"] == A and d["arp_opcode"] == 1 and d["src_ip"] == "10.99.0.10", "ARP who-has 10.99.0.11 (broadcast)"),
 ("arp_reply", lambda d: d["vni"] == A and d["arp_opcode"] == 2 and d["src_ip"] == "10.99.0.11", "ARP is-at 02:00:00:00:00:0b"),
 ("icmp_echo_request", lambda d: d["vni"] == A and d["icmp_type"] == 8 and d["src_ip"] == "10.99.0.10", "ICMP echo request id 0x5657 seq 1"),
 ("icmp_echo_reply", lambda d: d["vni"] == A and d["icmp_type"] == 0 and d["src_ip"] == "10.99.0.11", "ICMP echo reply"),
 ("tcp_syn", lambda d: d["vni"] == A and d["tcp_flags"] == 0x002 and d["dst_port"] == 8080, "TCP SYN 40001->8080"),
 ("tcp_syn_ack", lambda d: d["vni"] == A and d["tcp_flags"] == 0x012 and d["src_port"] == 8080, "TCP SYN-ACK 8080->40001"),
 ("udp", lambda d: d["vni"] == A and d["vlan"] is None and d["ip_proto"] == 17 and d["dst_port"] == 9999, "UDP 40002->9999, 20-byte payload"),
 ("ipv6_ns", lambda d: d["vni"] == A and d["icmp_type"] == 135, "ICMPv6 neighbor solicitation (multicast 33:33:ff:..)"),
 ("ipv6_icmp", lambda d: d["vni"] == A and d["icmp_type"] == 128, "ICMPv6 echo request fd00:99::10 -> ::11"),
 ("ipv6_icmp_reply", lambda d: d["vni"] == A and d["icmp_type"] == 129, "ICMPv6 echo reply"),
 ("vlan_tagged", lambda d: d["vni"] == A and d["vlan"] == 10, "802.1Q PCP 5 VID 10 / IPv4 / UDP 40010->9998 (frame from scapy)"),
 ("arp_request_vni_abcdef", lambda d: d["vni"] == B and d["arp_opcode"] == 1, "ARP who-has 10.98.0.11 on VNI 0xabcdef"),
 ("icmp_echo_request_vni_abcdef", lambda d: d["vni"] == B and d["icmp_type"] == 8, "ICMP echo request on VNI 0xabcdef"),
]
OUTER = {"arp_request", "icmp_echo_request", "tcp_syn", "udp", "ipv6_icmp", "vlan_tagged", "arp_request_vni_abcdef"}

expected = []
for stem, pred, desc in WANT:
    m = [d for d in decoded if pred(d)]
    if not m:
        sys.exit(f"no packet matched fixture {stem}")
    d = dict(m[0])
    open(os.path.join(out, stem + ".hex"), "w").write(d.pop("_payload").hex() + "\n")
    frame = d.pop("_frame")
    d["outer_file"] = None
    if stem in OUTER:
        d["outer_file"] = stem + ".outer.hex"
        open(os.path.join(out, d["outer_file"]), "w").write(frame.hex() + "\n")
    expected.append({"file": stem + ".hex", "description": desc, **d})

json.dump(expected, open(os.path.join(out, "expected.json"), "w"), indent=2)
open(os.path.join(out, "expected.json"), "a").write("\n")

# ----- README (prose + tables generated from the same tshark data)
def h16(x): return "—" if x is None else f"0x{x:04x}"
def n(x): return "—" if x is None else str(x)
rows = []
for e in expected:
    et = h16(e["ethertype"]) + (f" → VID {e['vlan']} PCP {e['vlan_pcp']} / {h16(e['vlan_ethertype'])}" if e["vlan"] is not None else "")
    ports = "—" if e["src_port"] is None else f"{e['src_port']} → {e['dst_port']}"
    rows.append(f"| `{e['file']}` | {e['vni']} (0x{e['vni']:06x}) | 0x{e['flags']:02x} | {e['dst_mac']} | {e['src_mac']} | {et} | "
                f"{n(e['src_ip'])} → {n(e['dst_ip'])} | {n(e['ip_proto'])} | {ports} | {e['outer_src_port']} → {e['outer_dst_port']} | {e['len']} |")
outer_rows = [f"| `{e['outer_file']}` | {e['outer_src_mac']} → {e['outer_dst_mac']} | {e['outer_src_ip']} → {e['outer_dst_ip']} | "
              f"{e['outer_src_port']} → {e['outer_dst_port']} | 0x{e['outer_udp_checksum']:04x} | {e['frame_len']} |"
              for e in expected if e["outer_file"]]
desc_rows = [f"| `{e['file']}` | {e['description']} |" for e in expected]
readme = f"""# VXLAN wire fixtures (captured from the Linux kernel)

**Generated file — do not edit by hand.** Regenerate with (root required):

```sh
scripts/capture-fixtures.sh            # writes into src/wire/fixtures/
```

## How they were captured

`scripts/capture-fixtures.sh` builds a throw-away topology entirely inside
network namespaces it creates (unique `vswfx$PID*` names, removed by an EXIT
trap): two "host" namespaces joined by an underlay link
(`192.0.2.1/24` ⟷ `192.0.2.2/24`, MACs `02:00:00:00:01:01` / `02:00:00:00:01:02`).
Each host has two **kernel** vxlan devices
(`ip link add … type vxlan id 4242 dstport 4789 local <own> remote <peer> dev <ul>`
and the same with `id 0xabcdef` = 11259375), each enslaved to its own bridge,
and a "container" namespace plugged into those bridges:

| container | VNI 4242 iface | VNI 0xabcdef iface |
|---|---|---|
| c1 | `02:00:00:00:00:0a` 10.99.0.10/24, fd00:99::10/64 | `02:00:00:00:ab:0a` 10.98.0.10/24 |
| c2 | `02:00:00:00:00:0b` 10.99.0.11/24, fd00:99::11/64 | `02:00:00:00:ab:0b` 10.98.0.11/24 |

The kernel this was produced on ({os.uname().release}) has no `veth`/`8021q`
drivers, so each point-to-point "cable" is a pair of tap devices joined by a
tiny userspace relay that copies frames verbatim. The VXLAN encapsulation
(header, outer IPv4/UDP, flow-hashed source port) is done by the kernel
vxlan driver. Inner frames are produced by the container namespaces' kernel
stacks (ARP, ND, ICMP echo replies, TCP handshake) triggered from a small python
client with fixed ICMP id `0x5657`/seq 1, fixed TCP/UDP source ports
(40001/40002) and fixed payloads; the only exception is the 802.1Q frame, which
is built with scapy (`Ether()/Dot1Q(prio=5, vlan=10)/IP()/UDP()`) and injected
with `sendp` in c1 because there is no vlan driver here.

`tcpdump -w` runs on host 1's underlay interface with filter `udp port 4789`;
the pcap is dissected with `tshark -T pdml` (Wireshark's independent VXLAN
dissector), and both the hex files and `expected.json` are produced from
that — nothing here is written by hand.

## Files

* `NAME.hex` — the outer **UDP payload** (8-byte VXLAN header + inner Ethernet
  frame, no FCS), lowercase hex, one line.
* `NAME.outer.hex` — the complete outer frame (Ethernet + IPv4 + UDP + VXLAN + inner)
  for a subset of packets.
* `expected.json` — one object per `.hex` file with the decoded fields below.

Keys of `expected.json`: `file`, `vni`, `flags` (the VXLAN flags **byte**;
tshark's `vxlan.flags` is the 16-bit field `0x0800`, i.e. byte 0x08 = I bit),
`dst_mac`, `src_mac`, `ethertype` (the inner Ethernet type field as it appears
on the wire, so `0x8100` for the tagged frame), `vlan` (VID or null), plus
`vlan_pcp`/`vlan_ethertype` (the EtherType after the tag), `src_ip`/`dst_ip`
(inner IPv4/IPv6 addresses; for ARP the sender/target protocol addresses),
`ip_proto` (IPv4 protocol / IPv6 next header; null for ARP), `src_port`/`dst_port`
(inner TCP/UDP, else null), `len` (UDP payload length = bytes in the `.hex`
file), and extras `arp_opcode`, `icmp_type`, `tcp_flags`, `outer_*`
(outer MACs, IPs, UDP ports, UDP checksum), `frame_len`, `outer_file`, `description`.

{chr(10).join(["| file | content |", "|---|---|"] + desc_rows)}

## Decoded fields (tshark)

| file | VNI | flags | inner dst MAC | inner src MAC | EtherType | inner L3 src → dst | proto | L4 ports | outer UDP ports | len |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

### Outer frames

| file | outer MAC src → dst | outer IPv4 src → dst | UDP src → dst | UDP csum | frame len |
|---|---|---|---|---|---|
{chr(10).join(outer_rows)}

## Notes / what is and is not reproducible

Running the script again (same boot) reproduces `expected.json` exactly, but
**not** every byte of the `.hex` files:

* inner and outer IPv4 identification (and hence IPv4 header checksums),
  TCP initial sequence numbers and TCP timestamp values change per run;
* the outer UDP checksum is non-zero (the kernel vxlan device defaults to
  `udpcsum` here) and stays the same between runs, because each of the changes
  above is cancelled by the matching inner checksum in the one's-complement sum;
* the outer **UDP source port** comes from a hash of the inner flow
  (`udp_flow_src_port()`, range = `ip_local_port_range` 32768–60999) with a
  per-boot random seed: stable from run to run in the same boot, different
  after a reboot. The IPv4 flow hash is symmetric (request and reply of a
  flow share a port), IPv6 requests and replies differ (the flow label is hashed
  too), and every ARP frame hashes to the same port whatever the VNI (no L3/L4
  keys).

Inner frames are as the sending kernel put them on its interface: no FCS and
**no padding to 60 bytes** (the ARP frames are 42 bytes, so the VXLAN payload is 50).
The `.hex` files end with a single newline.

Tests should compare against `expected.json`, not against constants copied
from one particular capture.
"""
open(os.path.join(out, "README.md"), "w").write(readme)
for e in expected:
    print(f"  {e['file']:38} vni={e['vni']:<9} outer {e['outer_src_ip']}:{e['outer_src_port']} -> {e['outer_dst_ip']}:{e['outer_dst_port']} len={e['len']}")
EOF

echo "== done: $(find "$OUT" -maxdepth 1 -type f | wc -l) files in $OUT"
