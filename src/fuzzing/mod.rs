//! The bodies of the fuzz targets, shared by the cargo-fuzz crate in `fuzz/` and by
//! `tests/fuzz_corpus.rs`, which replays every corpus file in the normal test run.
//!
//! Not an API: each function asserts invariants and panics, on purpose, when one breaks — that is
//! how libFuzzer notices. Nothing here runs in the daemon.

#![forbid(unsafe_code)]

pub mod parsers;
pub mod reference;
pub mod services;
pub mod switch_ops;

use crate::wire::ethernet::{self, EtherType};
use crate::wire::vxlan::{self, VxlanPacket, VxlanRepr, FLAG_I, FLAG_SEALED};
use crate::wire::{classify, flow_hash, udp_source_port, WireError};

/// `vxlan_header`: parse any bytes as a VXLAN datagram; a header that parses emits to bytes that
/// parse back to the same meaning, with every reserved bit zero.
pub fn vxlan_header(data: &[u8]) {
    let packet = match VxlanPacket::new_checked(data) {
        Ok(packet) => packet,
        Err(e) => {
            assert_eq!(e, WireError::Truncated);
            assert!(data.len() < vxlan::HEADER_LEN);
            return;
        }
    };
    let repr = match VxlanRepr::parse(&packet) {
        Ok(repr) => repr,
        Err(WireError::NoVniFlag) => return assert_eq!(data[0] & FLAG_I, 0),
        Err(WireError::InvalidVni(v)) => {
            assert_eq!(v, packet.vni_field());
            return assert_eq!(v, 0, "a 24-bit field is only invalid when zero");
        }
        Err(WireError::Truncated) => panic!("{} bytes hold a header", data.len()),
    };
    assert_eq!(repr.vni.get(), packet.vni_field());
    assert_eq!(repr.sealed, data[0] & FLAG_SEALED != 0);
    assert_eq!(packet.payload(), &data[vxlan::HEADER_LEN..]);

    let mut emitted = [0u8; vxlan::HEADER_LEN];
    repr.emit(&mut VxlanPacket::new_unchecked(&mut emitted[..]));
    assert_eq!(emitted, repr.to_bytes());
    assert_eq!(
        emitted[0] & !(FLAG_I | FLAG_SEALED),
        0,
        "reserved flags are zero"
    );
    assert_eq!([emitted[1], emitted[2], emitted[3], emitted[7]], [0; 4]);
    let again = VxlanPacket::new_checked(&emitted[..]).expect("a whole header");
    assert_eq!(VxlanRepr::parse(&again), Ok(repr));
}

/// `inner_frame`: classify and hash any bytes as an Ethernet frame. Never panics; classify
/// succeeds exactly when there is a whole Ethernet header; the hash is a function of the bytes.
pub fn inner_frame(data: &[u8]) {
    let info = classify(data);
    assert_eq!(info.is_ok(), data.len() >= ethernet::HEADER_LEN);
    if let Ok(info) = info {
        assert_eq!(&info.dst.0[..], &data[0..6]);
        assert_eq!(&info.src.0[..], &data[6..12]);
        assert_eq!(info.ethertype, u16::from_be_bytes([data[12], data[13]]));
        assert_eq!(
            info.vlan.is_some(),
            EtherType::VLAN_TAGS.contains(&info.ethertype)
        );
        assert!(info.vlan.unwrap_or(0) < 4096);
    }
    let hash = flow_hash(data);
    assert_eq!(hash, flow_hash(data));
    assert!(udp_source_port(hash) >= 49152);
}
