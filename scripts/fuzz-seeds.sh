#!/usr/bin/env bash
# Writes the handmade seeds of the byte-level fuzz targets into fuzz/corpus/, and imports the
# kernel VXLAN captures in src/wire/fixtures/ when they exist: each NAME.hex (a UDP payload, in
# hex) seeds `vxlan_header` whole and `inner_frame` with its inner frame (payload[8..]); each
# NAME.outer.hex (a whole outer Ethernet frame) seeds `inner_frame` too.
#
# Idempotent: file names are fixed (`seed-*`, `fixture-*`), so rerunning rewrites, never adds.
# The `switch_ops` seeds are not made here: they are encodings of `switch_ops::seeds()`, written
# by `VSWITCH_WRITE_SEEDS=1 cargo test --test fuzz_corpus`.
#
# Usage: scripts/fuzz-seeds.sh [FIXTURE_DIR]   (default: src/wire/fixtures)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${1:-$root/src/wire/fixtures}
corpus=$root/fuzz/corpus
mkdir -p "$corpus/vxlan_header" "$corpus/inner_frame"

# seed TARGET NAME HEX...
seed() {
    local target=$1 name=$2
    shift 2
    printf '%s' "$*" | tr -d ' ' | xxd -r -p >"$corpus/$target/seed-$name"
}

eth_ipv4='02 00 00 00 00 02  02 00 00 00 00 01  08 00'
ipv4_tcp='45 00 00 3c 00 00 40 00 40 06 00 00  0a 00 00 01  0a 00 00 02'
tcp='9c 40 14 51 00 00 00 01 00 00 00 00 50 18 ff ff 00 00 00 00'
payload='70 61 79 6c 6f 61 64 21 70 61 79 6c 6f 61 64 21 70 61 79 6c'
tcp_frame="$eth_ipv4 $ipv4_tcp $tcp $payload"
ipv6_udp='02 00 00 00 00 02  02 00 00 00 00 01  86 dd
          60 00 00 00 00 10 11 40
          fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
          fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02
          d4 31 00 35 00 10 00 00  68 65 6c 6c 6f 21 21 21'
arp='ff ff ff ff ff ff  02 00 00 00 00 01  08 06
     00 01 08 00 06 04 00 01  02 00 00 00 00 01  0a 00 00 01
     00 00 00 00 00 00  0a 00 00 02'

# vxlan_header: the I flag and VNI 100 in front of a TCP frame; sealed; I flag clear; VNI 0;
# the largest VNI; reserved bits all set; header only; one byte short.
seed vxlan_header plain "08 00 00 00 00 00 64 00 $tcp_frame"
seed vxlan_header sealed "0a 00 00 00 00 00 64 00 01 00 00 00 00 00 00 07 de ad be ef"
seed vxlan_header no-i-flag "00 00 00 00 00 00 64 00 $tcp_frame"
seed vxlan_header vni-zero "08 00 00 00 00 00 00 00 $arp"
seed vxlan_header vni-max "08 00 00 00 ff ff ff 00 $ipv6_udp"
seed vxlan_header reserved-set "fd ff ff ff 00 00 64 ff $tcp_frame"
seed vxlan_header header-only "08 00 00 00 00 00 64 00"
seed vxlan_header truncated "08 00 00 00 00 00 64"

# inner_frame: TCP/IPv4, UDP/IPv6, ARP, 802.1Q- and QinQ-tagged, a truncated IPv4 header, a
# tagged frame cut inside its tag, one byte short of an Ethernet header.
seed inner_frame tcp-ipv4 "$tcp_frame"
seed inner_frame udp-ipv6 "$ipv6_udp"
seed inner_frame arp "$arp"
seed inner_frame vlan "02 00 00 00 00 02  02 00 00 00 00 01  81 00 00 07  08 00 $ipv4_tcp $tcp"
seed inner_frame qinq "02 00 00 00 00 02  02 00 00 00 00 01  88 a8 00 64  81 00 00 07  08 00 $ipv4_tcp"
seed inner_frame ipv4-truncated "$eth_ipv4 45 00 00 3c 00 00"
seed inner_frame vlan-truncated "02 00 00 00 00 02  02 00 00 00 00 01  81 00 00"
seed inner_frame short "02 00 00 00 00 02  02 00 00 00 00 01  08"

# Kernel captures, when present. A .hex file is hex digits, with whitespace, ':' separators and
# '#' comments ignored.
unhex() { sed 's/#.*//' "$1" | tr -d ' \t\r\n:' | xxd -r -p; }
shopt -s nullglob
imported=0
for f in "$fixtures"/*.hex; do
    case $f in
    *.outer.hex)
        unhex "$f" >"$corpus/inner_frame/fixture-$(basename "$f" .hex)"
        ;;
    *)
        name=$(basename "$f" .hex)
        unhex "$f" >"$corpus/vxlan_header/fixture-$name"
        tail -c +9 "$corpus/vxlan_header/fixture-$name" >"$corpus/inner_frame/fixture-$name"
        ;;
    esac
    imported=$((imported + 1))
done
echo "seeds written; $imported fixture file(s) imported from $fixtures"
