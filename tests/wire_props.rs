//! Property tests of the wire formats: parse(emit(x)) == x, and no input makes a parser panic.

use proptest::prelude::*;
use vswitch::core::{Forward, PortId, Switch, SwitchConfig, Timestamp, Vtep};
use vswitch::wire::vxlan::{VxlanPacket, VxlanRepr, FLAG_I, HEADER_LEN};
use vswitch::wire::{classify, flow_hash, udp_source_port, Mac, Vni, WireError};

fn any_repr() -> impl Strategy<Value = VxlanRepr> {
    (1..=Vni::MAX, any::<bool>()).prop_map(|(v, sealed)| VxlanRepr {
        vni: Vni::new(v).expect("in range"),
        sealed,
    })
}

proptest! {
    #[test]
    fn vxlan_parse_of_emit_is_identity(repr in any_repr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = vec![0u8; HEADER_LEN + payload.len()];
        buf[HEADER_LEN..].copy_from_slice(&payload);
        repr.emit(&mut VxlanPacket::new_unchecked(&mut buf[..]));
        let packet = VxlanPacket::new_checked(&buf[..]).expect("long enough");
        prop_assert_eq!(VxlanRepr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
        // On send every reserved bit is zero.
        prop_assert_eq!(buf[0] & !(FLAG_I | vswitch::wire::vxlan::FLAG_SEALED), 0);
        prop_assert_eq!(&buf[1..4], &[0, 0, 0]);
        prop_assert_eq!(buf[7], 0);
    }

    #[test]
    fn vxlan_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
        match VxlanPacket::new_checked(&bytes[..]) {
            Err(e) => prop_assert_eq!(e, WireError::Truncated),
            Ok(p) => match VxlanRepr::parse(&p) {
                Ok(r) => {
                    prop_assert!(bytes[0] & FLAG_I != 0);
                    prop_assert_eq!(r.vni.get(), u32::from_be_bytes([0, bytes[4], bytes[5], bytes[6]]));
                }
                Err(WireError::NoVniFlag) => prop_assert!(bytes[0] & FLAG_I == 0),
                Err(WireError::InvalidVni(0)) => prop_assert_eq!(&bytes[4..7], &[0, 0, 0]),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            },
        }
    }

    #[test]
    fn reserved_bits_never_change_the_meaning(vni in 1..=Vni::MAX, noise in any::<[u8; 4]>()) {
        let clean = VxlanRepr { vni: Vni::new(vni).expect("in range"), sealed: false }.to_bytes();
        let mut noisy = clean;
        noisy[0] |= noise[0] & !vswitch::wire::vxlan::FLAG_SEALED;
        noisy[1] = noise[1];
        noisy[2] = noise[2];
        noisy[3] = noise[3];
        noisy[7] = noise[0];
        let a = VxlanRepr::parse(&VxlanPacket::new_unchecked(&clean[..]));
        let b = VxlanRepr::parse(&VxlanPacket::new_unchecked(&noisy[..]));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn inner_frame_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let info = classify(&bytes);
        prop_assert_eq!(info.is_err(), bytes.len() < 14);
        let hash = flow_hash(&bytes);
        // The top 14 bits of the hash, in the dynamic range 49152..=65535 (RFC 7348 §5).
        prop_assert_eq!(udp_source_port(hash), 0xc000 | (hash >> 18) as u16);
    }

    #[test]
    fn flow_hash_ignores_payload_but_not_ports(sport in any::<u16>(), dport in any::<u16>(), other in 1..=u16::MAX, p1 in any::<[u8; 8]>(), p2 in any::<[u8; 8]>()) {
        let a = tcp_frame(sport, dport, &p1);
        let b = tcp_frame(sport, dport, &p2);
        prop_assert_eq!(flow_hash(&a), flow_hash(&b));
        // Another source or destination port is another flow. (The hash is 32 bits, so two
        // flows could collide by chance, about once in 2^32: not in these few hundred cases.)
        let other_sport = tcp_frame(sport.wrapping_add(other), dport, &p1);
        let other_dport = tcp_frame(sport, dport.wrapping_add(other), &p1);
        prop_assert_ne!(flow_hash(&a), flow_hash(&other_sport));
        prop_assert_ne!(flow_hash(&a), flow_hash(&other_dport));
        prop_assert_ne!(flow_hash(&other_sport), flow_hash(&other_dport));
    }

    #[test]
    fn mac_display_parses_back(bytes in any::<[u8; 6]>()) {
        let m = Mac(bytes);
        prop_assert_eq!(m.to_string().parse::<Mac>(), Ok(m));
    }

    #[test]
    fn switch_never_panics_on_any_datagram_or_frame(bytes in proptest::collection::vec(any::<u8>(), 0..96), vni_byte in any::<u8>()) {
        let mut s = Switch::new(SwitchConfig::default());
        let vni = Vni::new(u32::from(vni_byte) + 1).expect("in range");
        s.add_network(vni).expect("new");
        s.add_port(PortId(1), vni).expect("new");
        s.add_port(PortId(2), vni).expect("new");
        let peer = "192.0.2.2:4789".parse().expect("addr");
        s.add_peer(Vtep(peer)).expect("new");
        let mut out = Forward::default();
        let mut d = bytes.clone();
        s.datagram_from_vtep(Timestamp(1), peer, &mut d, &mut out);
        prop_assert!(out.vteps.is_empty(), "split horizon");
        prop_assert!(out.frame.end <= d.len());
        s.frame_from_port(Timestamp(2), PortId(1), &bytes, &mut out);
        prop_assert!(!out.ports.contains(&PortId(1)), "never back out of the ingress port");
        prop_assert_eq!(out.dropped.is_some(), out.ports.is_empty() && out.vteps.is_empty());
    }
}

#[test]
fn source_ports_span_the_dynamic_range() {
    assert_eq!(udp_source_port(0), 49152);
    assert_eq!(udp_source_port((1 << 18) - 1), 49152);
    assert_eq!(udp_source_port(1 << 18), 49153);
    assert_eq!(udp_source_port(0x8000_0000), 49152 + 8192);
    assert_eq!(udp_source_port(u32::MAX), 65535);
}

#[test]
fn distinct_flows_spread_over_source_ports() {
    let ports: std::collections::HashSet<u16> = (0..1000u16)
        .map(|p| udp_source_port(flow_hash(&tcp_frame(40000 + p, 5201, b"payload!"))))
        .collect();
    // 1000 flows into 16384 ports: a decent hash leaves few collisions.
    assert!(ports.len() > 950, "only {} distinct ports", ports.len());
}

#[test]
fn vni_bounds() {
    assert!(Vni::new(0).is_err());
    assert!(Vni::new(1).is_ok());
    assert!(Vni::new(16_777_215).is_ok());
    assert!(Vni::new(16_777_216).is_err());
}

#[test]
fn mac_parse_errors_name_the_input() {
    for bad in [
        "",
        "02:00:00:00:00",
        "02:00:00:00:00:00:00",
        "zz:00:00:00:00:00",
        "020:0:0:0:0:0",
    ] {
        let e = bad.parse::<Mac>().expect_err(bad);
        assert!(e.to_string().contains(&format!("'{bad}'")));
    }
}

fn tcp_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + 20 + payload.len()) as u16;
    f.extend([
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend([10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend(sport.to_be_bytes());
    f.extend(dport.to_be_bytes());
    f.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend(payload);
    f
}
