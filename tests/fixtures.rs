//! Real VXLAN datagrams, captured from the kernel's vxlan device (scripts/capture-fixtures.sh)
//! and decoded by tshark into src/wire/fixtures/expected.json, parsed by vswitch.

use std::path::Path;

use serde_json::Value;
use vswitch::core::{DropReason, Forward, PortId, Switch, SwitchConfig, Timestamp, Vtep};
use vswitch::wire::vxlan::{VxlanPacket, VxlanRepr, HEADER_LEN};
use vswitch::wire::{classify, flow_hash, udp_source_port, Mac, Vni, WireError};

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/wire/fixtures"))
}

fn hex(file: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(dir().join(file)).expect("fixture");
    let t = text.trim();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex"))
        .collect()
}

fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn every_fixture_parses_to_what_tshark_saw_and_re_emits_identically() {
    let all = expected();
    // One entry per .hex capture in the directory, and no entry without its file.
    let mut listed: Vec<&str> = all
        .iter()
        .map(|e| e["file"].as_str().expect("file"))
        .collect();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .expect("fixtures directory")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".hex") && !n.ends_with(".outer.hex"))
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk);
    assert_eq!(all.len(), 13);
    for e in all {
        let file = e["file"].as_str().expect("file");
        let bytes = hex(file);
        assert_eq!(
            bytes.len() as u64,
            e["len"].as_u64().expect("len"),
            "{file}"
        );
        let packet = VxlanPacket::new_checked(&bytes[..]).expect(file);
        assert_eq!(
            u64::from(packet.flags()),
            e["flags"].as_u64().expect("flags"),
            "{file}"
        );
        let repr = VxlanRepr::parse(&packet).expect(file);
        assert_eq!(
            u64::from(repr.vni.get()),
            e["vni"].as_u64().expect("vni"),
            "{file}"
        );
        assert!(!repr.sealed);
        // Re-emitting the header gives the captured bytes back.
        assert_eq!(repr.to_bytes(), bytes[..HEADER_LEN], "{file}");
        let info = classify(packet.payload()).expect(file);
        let mac = |k: &str| e[k].as_str().expect(k).parse::<Mac>().expect(k);
        assert_eq!(info.dst, mac("dst_mac"), "{file}");
        assert_eq!(info.src, mac("src_mac"), "{file}");
        assert_eq!(
            u64::from(info.ethertype),
            e["ethertype"].as_u64().expect("ethertype"),
            "{file}"
        );
        assert_eq!(info.vlan.map(u64::from), e["vlan"].as_u64(), "{file}");
        // Our outer source port for this flow: the top 14 bits of its hash in 49152..=65535,
        // the same port `Switch::encapsulate` picks for it.
        let hash = flow_hash(packet.payload());
        let port = udp_source_port(hash);
        assert_eq!(port, 0xc000 | (hash >> 18) as u16, "{file}");
        let mut s = Switch::new(SwitchConfig {
            allow_vlan_tagged: true,
            ..SwitchConfig::default()
        });
        s.add_network(repr.vni).expect("net");
        s.add_port(PortId(1), repr.vni).expect("port");
        s.add_peer(Vtep("192.0.2.2:4789".parse().expect("addr")))
            .expect("peer");
        let inner = packet.payload();
        let mut out = Forward::default();
        s.frame_from_port(Timestamp(0), PortId(1), inner, &mut out);
        let sends = out.deliver(inner, |_, _| {}).expect(file);
        let mut buf = vec![0u8; 64 + inner.len() + 16];
        buf[64..64 + inner.len()].copy_from_slice(inner);
        let enc = s
            .encapsulate(&sends, &mut buf, 64..64 + inner.len())
            .expect(file);
        assert_eq!(enc.src_port, port, "{file}");
    }
}

/// The Internet checksum (RFC 1071) of `chunks`, summed as one byte string.
fn internet_checksum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn outer_frames_carry_the_datagram_and_the_outer_fields_tshark_saw() {
    let mut checked = 0;
    for e in expected() {
        let Some(outer_file) = e["outer_file"].as_str() else {
            continue;
        };
        let file = e["file"].as_str().expect("file");
        let outer = hex(outer_file);
        let inner = hex(file);
        let field = |k: &str| e[k].as_u64().unwrap_or_else(|| panic!("{k} of {file}"));
        let text = |k: &str| e[k].as_str().unwrap_or_else(|| panic!("{k} of {file}"));
        assert_eq!(outer.len() as u64, field("frame_len"), "{outer_file}");
        // Ethernet: addresses, IPv4.
        let mac = |b: &[u8]| Mac(b.try_into().expect("6 bytes"));
        assert_eq!(
            mac(&outer[0..6]),
            text("outer_dst_mac").parse().expect("mac")
        );
        assert_eq!(
            mac(&outer[6..12]),
            text("outer_src_mac").parse().expect("mac")
        );
        assert_eq!(&outer[12..14], &[0x08, 0x00], "{outer_file}");
        // IPv4 without options, UDP, the addresses tshark saw, a valid header checksum.
        let ip = &outer[14..34];
        assert_eq!((ip[0], ip[9]), (0x45, 17), "{outer_file}");
        assert_eq!(
            u16::from_be_bytes([ip[2], ip[3]]) as usize,
            outer.len() - 14,
            "{outer_file}"
        );
        let addr = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let (src, dst) = (addr(&ip[12..16]), addr(&ip[16..20]));
        assert_eq!(
            src,
            text("outer_src_ip")
                .parse::<std::net::Ipv4Addr>()
                .expect("ip")
        );
        assert_eq!(
            dst,
            text("outer_dst_ip")
                .parse::<std::net::Ipv4Addr>()
                .expect("ip")
        );
        assert_eq!(internet_checksum(&[ip]), 0, "{outer_file}: IPv4 checksum");
        // UDP: ports and checksum as tshark saw them, the checksum verifies, and the payload is
        // the `.hex` datagram byte for byte.
        let udp = &outer[34..42];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        let udp_len = u16::from_be_bytes([udp[4], udp[5]]);
        let csum = u16::from_be_bytes([udp[6], udp[7]]);
        assert_eq!(u64::from(sport), field("outer_src_port"), "{outer_file}");
        assert_eq!(u64::from(dport), field("outer_dst_port"), "{outer_file}");
        assert_eq!(dport, vswitch::wire::vxlan::UDP_PORT);
        assert_eq!(u64::from(csum), field("outer_udp_checksum"), "{outer_file}");
        assert_eq!(usize::from(udp_len), 8 + inner.len(), "{outer_file}");
        assert_eq!(&outer[42..], &inner[..], "{outer_file}");
        let pseudo = [
            &ip[12..20],
            &[0, 17][..],
            &udp_len.to_be_bytes()[..],
            &outer[34..],
        ];
        assert_eq!(internet_checksum(&pseudo), 0, "{outer_file}: UDP checksum");
        // Our own outer headers for this datagram agree with the kernel's on every field that
        // is not per-packet (identification, checksums) or a choice of ours (DF, the UDP
        // checksum left zero for the raw socket).
        use vswitch::wire::underlay::{UnderlayPacket, UnderlayRepr, OUTER_LEN};
        let mut ours = vec![0u8; OUTER_LEN + inner.len()];
        UnderlayRepr {
            source: std::net::SocketAddrV4::new(src, sport),
            destination: std::net::SocketAddrV4::new(dst, dport),
            payload_len: inner.len(),
        }
        .emit(&mut UnderlayPacket::new_checked(&mut ours[..]).expect("room"))
        .expect("fits");
        assert_eq!(ours[..4], ip[..4], "{outer_file}: version, length");
        assert_eq!(ours[6] & 0x40, 0x40, "we set DF");
        assert_eq!(ours[8..10], ip[8..10], "{outer_file}: TTL, protocol");
        assert_eq!(ours[12..20], ip[12..20], "{outer_file}: addresses");
        assert_eq!(ours[20..26], udp[..6], "{outer_file}: ports, length");
        assert_eq!(ours[26..28], [0, 0], "UDP checksum zero");
        checked += 1;
    }
    assert_eq!(checked, 7, "outer frames");
}

#[test]
fn reserved_bits_set_by_a_sender_are_ignored_and_a_clear_i_bit_is_refused() {
    let mut bytes = hex("icmp_echo_request.hex");
    let clean = VxlanRepr::parse(&VxlanPacket::new_checked(&bytes[..]).expect("ok")).expect("ok");
    bytes[0] |= 0xf0 | 0x04 | 0x01;
    bytes[1..4].copy_from_slice(&[0xde, 0xad, 0xbe]);
    bytes[7] = 0xef;
    let noisy = VxlanRepr::parse(&VxlanPacket::new_checked(&bytes[..]).expect("ok")).expect("ok");
    assert_eq!(clean, noisy);
    bytes[0] &= !0x08;
    assert_eq!(
        VxlanRepr::parse(&VxlanPacket::new_checked(&bytes[..]).expect("ok")),
        Err(WireError::NoVniFlag)
    );
}

#[test]
fn the_switch_delivers_kernel_datagrams_and_drops_the_tagged_one() {
    let peer: std::net::SocketAddr = "192.0.2.1:4789".parse().expect("addr");
    let mut s = Switch::new(SwitchConfig::default());
    let vni = Vni::new(4242).expect("vni");
    s.add_network(vni).expect("net");
    s.add_port(PortId(1), vni).expect("port");
    s.add_peer(Vtep(peer)).expect("peer");
    let mut out = Forward::default();
    let mut arp = hex("arp_request.hex");
    s.datagram_from_vtep(Timestamp(0), peer, &mut arp, &mut out);
    assert_eq!(out.ports, vec![PortId(1)]);
    assert_eq!(out.frame, HEADER_LEN..arp.len());
    let mut tagged = hex("vlan_tagged.hex");
    s.datagram_from_vtep(Timestamp(0), peer, &mut tagged, &mut out);
    assert_eq!(out.dropped, Some(DropReason::VlanTagged));
    let mut other_vni = hex("arp_request_vni_abcdef.hex");
    s.datagram_from_vtep(Timestamp(0), peer, &mut other_vni, &mut out);
    assert_eq!(out.dropped, Some(DropReason::UnknownVni));
}

#[test]
fn encapsulating_a_captured_inner_frame_rebuilds_the_kernel_datagram() {
    let captured = hex("tcp_syn.hex");
    let frame = &captured[HEADER_LEN..];
    let mut s = Switch::new(SwitchConfig::default());
    let vni = Vni::new(4242).expect("vni");
    s.add_network(vni).expect("net");
    s.add_port(PortId(1), vni).expect("port");
    let peer = Vtep("192.0.2.2:4789".parse().expect("addr"));
    s.add_peer(peer).expect("peer");
    let mut out = Forward::default();
    s.frame_from_port(Timestamp(0), PortId(1), frame, &mut out);
    let sends = out
        .deliver(frame, |p, _| {
            panic!("no other port, yet delivered to {p:?}")
        })
        .expect("flooded to the peer");
    assert_eq!(sends.vteps(), [peer]);
    let mut buf = vec![0u8; 64 + frame.len() + 16];
    buf[64..64 + frame.len()].copy_from_slice(frame);
    let enc = s
        .encapsulate(&sends, &mut buf, 64..64 + frame.len())
        .expect("encap");
    assert_eq!(&buf[enc.datagram], &captured[..]);
}
