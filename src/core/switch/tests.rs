//! The switch's API contract: the order of deliveries and sends, and every drop counted once.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::core::seal::{NetworkKey, SealConfig, Sealer};

const NOW: Timestamp = Timestamp(0);

fn vni() -> Vni {
    Vni::new(7).expect("vni")
}

fn peer() -> SocketAddr {
    "192.0.2.2:4789".parse().expect("addr")
}

/// A switch with ports 1 and 2 on network 7 and one peer; sealed when asked.
fn switch(sealed: bool) -> Switch {
    let mut s = Switch::new(SwitchConfig::default());
    s.add_network(vni()).expect("network");
    s.add_port(PortId(1), vni()).expect("port 1");
    s.add_port(PortId(2), vni()).expect("port 2");
    s.add_peer(Vtep(peer())).expect("peer");
    if sealed {
        let key = NetworkKey::from_bytes([7; 32]);
        let sealer = Sealer::new(vni().get(), &key, 1, SealConfig::default()).expect("sealer");
        s.set_sealer(vni(), Some(sealer)).expect("sealed");
    }
    s
}

fn broadcast(len: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(len, 0xab);
    f
}

fn in_buffer(frame: &[u8]) -> (Vec<u8>, Range<usize>) {
    let mut buf = vec![0u8; HEADROOM + frame.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    (buf, HEADROOM..HEADROOM + frame.len())
}

#[test]
fn local_deliveries_happen_before_sealing_in_place() {
    let s = switch(true);
    let frame = broadcast(100);
    let (mut buf, range) = in_buffer(&frame);
    let mut out = Forward::default();
    s.frame_from_port(NOW, PortId(1), &buf[range.clone()], &mut out);
    let mut delivered = Vec::new();
    let sends = out
        .deliver(&buf[range.clone()], |port, f| {
            delivered.push((port, f.to_vec()))
        })
        .expect("flooded to the peer too");
    // By the time the sends exist, every local copy is out, in plaintext.
    assert_eq!(delivered, [(PortId(2), frame.clone())]);
    assert_eq!(sends.vni(), vni());
    assert_eq!(sends.vteps(), [Vtep(peer())]);
    let enc = s
        .encapsulate(&sends, &mut buf, range.clone())
        .expect("sealed");
    assert_ne!(
        &buf[range],
        &frame[..],
        "sealing encrypted the frame where it lay"
    );
    assert_eq!(
        enc.datagram.len(),
        vxlan::HEADER_LEN + SEAL_OVERHEAD + frame.len()
    );
}

#[test]
fn deliver_gives_no_sends_without_vteps_or_after_a_drop() {
    let s = switch(false);
    let mut out = Forward::default();
    // From the underlay: local ports only (split horizon).
    let mut datagram = VxlanRepr {
        vni: vni(),
        sealed: false,
    }
    .to_bytes()
    .to_vec();
    datagram.extend_from_slice(&broadcast(60));
    s.datagram_from_vtep(NOW, peer(), &mut datagram, &mut out);
    let mut ports = Vec::new();
    let frame = datagram[out.frame.clone()].to_vec();
    assert!(out.deliver(&frame, |p, _| ports.push(p)).is_none());
    assert_eq!(ports, [PortId(1), PortId(2)]);
    // Dropped (unknown port): nothing delivered, nothing to send.
    s.frame_from_port(NOW, PortId(9), &broadcast(60), &mut out);
    assert_eq!(out.dropped, Some(DropReason::UnknownPort));
    assert!(out
        .deliver(&broadcast(60), |p, _| panic!("delivered to {p:?}"))
        .is_none());
}

#[test]
fn every_encapsulation_refusal_is_counted_once_by_reason() {
    for sealed in [false, true] {
        let s = switch(sealed);
        let mut out = Forward::default();
        let frame = broadcast(60);
        s.frame_from_port(NOW, PortId(1), &frame, &mut out);
        let sends = out.deliver(&frame, |_, _| {}).expect("to the peer");
        // No headroom for the headers.
        let mut buf = frame.clone();
        assert_eq!(
            s.encapsulate(&sends, &mut buf, 0..frame.len()),
            Err(DropReason::TooBig)
        );
        // Too large for one IPv4 packet once the outer headers are added.
        let huge = u16::MAX as usize - OUTER_LEN - vxlan::HEADER_LEN + 1;
        let mut buf = vec![0u8; HEADROOM + huge + TAILROOM];
        assert_eq!(
            s.encapsulate(&sends, &mut buf, HEADROOM..HEADROOM + huge),
            Err(DropReason::TooBig)
        );
        // A range outside the buffer.
        assert_eq!(
            s.encapsulate(&sends, &mut [0u8; 10], HEADROOM..HEADROOM + 1),
            Err(DropReason::Truncated)
        );
        assert_eq!(s.drops.get(DropReason::TooBig), 2, "sealed: {sealed}");
        assert_eq!(s.drops.get(DropReason::Truncated), 1);
        assert_eq!(s.drops.total(), 3);
        let network = s.network_traffic(vni()).expect("network");
        assert_eq!(network.drops.get("too_big"), Some(&2));
        assert_eq!(network.drops.get("truncated"), Some(&1));
        if let Some(sealer) = s.network(vni()).and_then(Network::sealer) {
            assert_eq!(sealer.stats().sealed(), 0);
        }
        // A shell-side drop lands in the same counters.
        s.count_drop(vni(), DropReason::TooBig);
        assert_eq!(s.drops.get(DropReason::TooBig), 3);
    }
}

#[test]
fn a_failed_open_is_counted_once_under_the_switch_reason() {
    let s = switch(true);
    let mut datagram = VxlanRepr {
        vni: vni(),
        sealed: true,
    }
    .to_bytes()
    .to_vec();
    datagram.extend_from_slice(&[0x02; 80]); // sealed v2 by its version byte, but forged
    let mut out = Forward::default();
    s.datagram_from_vtep(NOW, peer(), &mut datagram, &mut out);
    let reason = out.dropped.expect("dropped");
    assert!(
        matches!(reason, DropReason::UnknownKey | DropReason::AuthFailed),
        "{reason:?}"
    );
    assert_eq!(s.drops.get(reason), 1);
    assert_eq!(s.drops.total(), 1, "counted once");
    let sealer = s.network(vni()).and_then(Network::sealer).expect("sealed");
    assert_eq!(sealer.stats().opened(), 0);
}

#[test]
fn frames_over_the_port_mtu_are_refused_at_ingress_and_counted() {
    let vni = Vni::new(7).expect("vni");
    let mut sw = Switch::new(SwitchConfig::default());
    sw.add_network(vni).expect("network");
    sw.add_port(PortId(1), vni).expect("port");
    assert!(sw.admit_len(PortId(1), 9014), "no MTU set: no limit");
    sw.set_port_mtu(PortId(1), Some(1450)).expect("port");
    assert!(sw.admit_len(PortId(1), 1464));
    assert!(!sw.admit_len(PortId(1), 1465));
    assert!(!sw.admit_len(PortId(1), 9014));
    assert_eq!(sw.drops.get(DropReason::TooBig), 2);
    let port = sw.port_traffic(PortId(1)).expect("port");
    assert_eq!(port.drops.get("too_big"), Some(&2));
    assert!(sw.set_port_mtu(PortId(9), Some(1)).is_err());
}

#[test]
fn announce_within_is_half_the_rotating_networks_shortest_interval() {
    let mut s = Switch::new(SwitchConfig::default());
    let key = NetworkKey::from_bytes([7; 32]);
    // Two sealed networks with their own announcement intervals (neither the default).
    let mut sealers = Vec::new();
    for (v, ms) in [(7, 800), (8, 600)] {
        let vni = Vni::new(v).expect("vni");
        s.add_network(vni).expect("network");
        let config = SealConfig {
            announce_interval: Duration::from_millis(ms),
            ..SealConfig::default()
        };
        let sealer = Sealer::new(v, &key, v.into(), config).expect("sealer");
        s.set_sealer(vni, Some(sealer)).expect("sealed");
        sealers.push(
            s.network(vni)
                .and_then(|n| n.sealer())
                .expect("set")
                .clone(),
        );
    }
    // Stable: nothing to announce.
    assert_eq!(s.announce_within(), None);
    let new_key = NetworkKey::from_bytes([9; 32]);
    sealers[0].rotate(&new_key, &[peer()], NOW).expect("rotate");
    assert_eq!(s.announce_within(), Some(Duration::from_millis(400)));
    sealers[1].rotate(&new_key, &[peer()], NOW).expect("rotate");
    assert_eq!(s.announce_within(), Some(Duration::from_millis(300)));
}

/// Every flow of an encrypted network, and its control datagrams, leave from the network's one
/// source port (so a receiver takes them from one queue, in order: see `sealed_source_port`);
/// a plain network's flows spread over ports by their hash.
#[test]
fn a_sealed_network_sends_every_flow_and_its_control_from_one_port() {
    let ports = |sealed: bool| {
        let s = switch(sealed);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..32u8 {
            let mut frame = broadcast(100);
            frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, i, 1]);
            let (mut buf, range) = in_buffer(&frame);
            let mut out = Forward::default();
            s.frame_from_port(NOW, PortId(1), &buf[range.clone()], &mut out);
            let sends = out
                .deliver(&buf[range.clone()], |_, _| {})
                .expect("to the peer");
            let enc = s
                .encapsulate(&sends, &mut buf, range)
                .expect("encapsulated");
            seen.insert(enc.src_port);
        }
        (s, seen)
    };
    let (_, plain) = ports(false);
    assert!(plain.len() > 8, "32 flows spread over ports: {plain:?}");
    let (sealed, one) = ports(true);
    let port = sealed_source_port(vni());
    assert_eq!(one.into_iter().collect::<Vec<_>>(), [port]);
    assert!((49152..=65535).contains(&port));
    assert_ne!(
        port,
        sealed_source_port(Vni::new(8).expect("vni")),
        "per network"
    );
    let mut control = Vec::new();
    sealed.announce(NOW, |vtep, src_port, bytes| {
        control.push((vtep, src_port, bytes.len()))
    });
    assert!(!control.is_empty(), "the new peer's handshake is due");
    for (vtep, src_port, _) in control {
        assert_eq!((vtep, src_port), (Vtep(peer()), port));
    }
}
