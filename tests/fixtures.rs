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
    assert!(all.len() >= 10, "fixtures present");
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
        let port = udp_source_port(flow_hash(packet.payload()));
        assert!(port >= 49152, "{file}");
    }
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
