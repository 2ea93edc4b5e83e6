//! Switch behaviour on the in-process fabric: three hosts in a full mesh, two networks each,
//! a virtual clock. No root, no sockets.

use std::collections::BTreeMap;
use std::time::Duration;

use vswitch::core::{DropReason, FdbConfig, Location, PortId, SwitchConfig, Timestamp, Vtep};
use vswitch::sim::{frame, host_addr, Delivery, Fabric};
use vswitch::wire::{vxlan, EtherType, Mac, Vni};

const BLUE: Vni = match Vni::new(100) {
    Ok(v) => v,
    Err(_) => panic!(),
};
const RED: Vni = match Vni::new(200) {
    Ok(v) => v,
    Err(_) => panic!(),
};

/// Container MAC `n` — the same MACs are reused on both networks on purpose.
fn mac(n: u8) -> Mac {
    Mac([0x02, 0, 0, 0, 0, n])
}

/// Port numbering: host h, network colour c (0 blue, 1 red), container k.
fn port(h: usize, c: u32, k: u32) -> PortId {
    PortId(h as u32 * 100 + c * 10 + k)
}

/// Three hosts; on each, one blue and one red container, plus a second blue container on host 0.
/// Blue and red use identical MACs: container on host h has MAC h+1 in both networks.
fn three_hosts(config: SwitchConfig) -> Fabric {
    let mut f = Fabric::full_mesh(3, config);
    f.add_network_everywhere(BLUE);
    f.add_network_everywhere(RED);
    for h in 0..3 {
        f.attach(h, port(h, 0, 0), BLUE);
        f.attach(h, port(h, 1, 0), RED);
    }
    f.attach(0, port(0, 0, 1), BLUE);
    f
}

fn payload(tag: &str) -> Vec<u8> {
    let mut p = tag.as_bytes().to_vec();
    p.resize(46, 0);
    p
}

fn ip_frame(dst: Mac, src: Mac, tag: &str) -> Vec<u8> {
    frame(dst, src, EtherType::IPV4, &payload(tag))
}

/// How many times each (host, port) received something.
fn receipt_counts(d: &[Delivery]) -> BTreeMap<(usize, PortId), usize> {
    let mut m = BTreeMap::new();
    for x in d {
        *m.entry((x.host, x.port)).or_default() += 1;
    }
    m
}

#[test]
fn broadcast_reaches_every_other_container_of_its_network_exactly_once() {
    let mut f = three_hosts(SwitchConfig::default());
    let bcast = ip_frame(Mac::BROADCAST, mac(1), "hello all");
    f.send(0, port(0, 0, 0), &bcast);
    let (delivered, underlay) = f.take();
    let expected: BTreeMap<_, _> = [
        ((0, port(0, 0, 1)), 1),
        ((1, port(1, 0, 0)), 1),
        ((2, port(2, 0, 0)), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(receipt_counts(&delivered), expected);
    assert!(delivered.iter().all(|d| d.frame == bcast));
    // Head-end replication: one datagram to each of the two peers, and split horizon means the
    // receivers sent nothing on.
    assert_eq!(underlay.len(), 2);
    assert!(underlay.iter().all(|d| d.from == host_addr(0)));
    let mut to: Vec<_> = underlay.iter().map(|d| d.to).collect();
    to.sort();
    assert_eq!(to, vec![host_addr(1), host_addr(2)]);
}

#[test]
fn unknown_unicast_floods_then_learned_unicast_goes_to_one_place() {
    let mut f = three_hosts(SwitchConfig::default());
    // Host 0 does not know mac(2) yet: flood within blue.
    f.send(0, port(0, 0, 0), &ip_frame(mac(2), mac(1), "who"));
    let (delivered, underlay) = f.take();
    assert_eq!(delivered.len(), 3, "flooded to the other blue containers");
    assert_eq!(underlay.len(), 2);
    // The reply teaches host 1's switch nothing new about the destination (it learned mac(1)
    // from the flood), so it goes straight to host 0, container port(0,0,0) only.
    f.send(1, port(1, 0, 0), &ip_frame(mac(1), mac(2), "reply"));
    let (delivered, underlay) = f.take();
    assert_eq!(
        delivered,
        vec![Delivery {
            host: 0,
            port: port(0, 0, 0),
            frame: ip_frame(mac(1), mac(2), "reply"),
        }]
    );
    assert_eq!(underlay.len(), 1);
    assert_eq!(
        (underlay[0].from, underlay[0].to),
        (host_addr(1), host_addr(0))
    );
    // Now host 0 knows mac(2) lives behind host 1: unicast, one datagram, one delivery.
    f.send(0, port(0, 0, 0), &ip_frame(mac(2), mac(1), "again"));
    let (delivered, underlay) = f.take();
    assert_eq!(receipt_counts(&delivered), [((1, port(1, 0, 0)), 1)].into());
    assert_eq!(underlay.len(), 1);
    assert_eq!(underlay[0].to, host_addr(1));
    assert_eq!(
        f.hosts[0]
            .switch
            .network(BLUE)
            .map(|n| n.fdb.lookup(mac(2), f.now)),
        Some(Some(Location::Vtep(Vtep(host_addr(1)))))
    );
}

#[test]
fn local_unicast_stays_on_the_host() {
    let mut f = three_hosts(SwitchConfig::default());
    f.send(
        0,
        port(0, 0, 1),
        &ip_frame(Mac::BROADCAST, mac(9), "announce"),
    );
    f.take();
    f.send(0, port(0, 0, 0), &ip_frame(mac(9), mac(1), "local"));
    let (delivered, underlay) = f.take();
    assert_eq!(receipt_counts(&delivered), [((0, port(0, 0, 1)), 1)].into());
    assert!(
        underlay.is_empty(),
        "local traffic must not touch the underlay"
    );
}

#[test]
fn a_frame_never_goes_back_out_of_its_ingress_port() {
    let mut f = three_hosts(SwitchConfig::default());
    f.send(
        0,
        port(0, 0, 0),
        &ip_frame(Mac::BROADCAST, mac(1), "announce"),
    );
    f.take();
    // A frame from port(0,0,0) addressed to a MAC learned on that same port.
    f.send(0, port(0, 0, 0), &ip_frame(mac(1), mac(7), "hairpin"));
    let (delivered, underlay) = f.take();
    assert!(delivered.is_empty() && underlay.is_empty());
    assert_eq!(f.hosts[0].switch.drops.get(DropReason::SamePort), 1);
    // Nor does a flood: the ingress port is not among the receivers.
    f.send(0, port(0, 0, 0), &ip_frame(Mac::BROADCAST, mac(1), "flood"));
    let (delivered, _) = f.take();
    assert!(delivered
        .iter()
        .all(|d| (d.host, d.port) != (0, port(0, 0, 0))));
}

#[test]
fn split_horizon_drops_underlay_frames_for_remote_macs() {
    let mut f = three_hosts(SwitchConfig::default());
    // Host 0 learns mac(3) behind host 2.
    f.send(2, port(2, 0, 0), &ip_frame(Mac::BROADCAST, mac(3), "hi"));
    f.take();
    // Host 1 (misbehaving, or with a stale table) sends host 0 a frame for mac(3).
    let mut dgram = vxlan::VxlanRepr {
        vni: BLUE,
        sealed: false,
    }
    .to_bytes()
    .to_vec();
    dgram.extend(ip_frame(mac(3), mac(2), "relay me"));
    f.inject(host_addr(1), 0, &dgram);
    let (delivered, underlay) = f.take();
    assert!(delivered.is_empty());
    assert_eq!(underlay.len(), 1, "host 0 relayed nothing to host 2");
    assert_eq!(f.hosts[0].switch.drops.get(DropReason::SplitHorizon), 1);
}

#[test]
fn networks_are_isolated_even_with_identical_macs() {
    let mut f = three_hosts(SwitchConfig::default());
    // Identical conversations in both networks: mac(1) on host 0 ⇄ mac(2) on host 1.
    for (c, vni_tag) in [(0, "blue"), (1, "red")] {
        f.send(0, port(0, c, 0), &ip_frame(Mac::BROADCAST, mac(1), vni_tag));
        f.send(1, port(1, c, 0), &ip_frame(mac(1), mac(2), vni_tag));
        f.send(0, port(0, c, 0), &ip_frame(mac(2), mac(1), vni_tag));
    }
    let (delivered, underlay) = f.take();
    for d in &delivered {
        let colour = (d.port.0 / 10) % 10;
        let tag = if colour == 0 { "blue" } else { "red" };
        assert!(
            d.frame[14..].starts_with(tag.as_bytes()),
            "{d:?} crossed networks"
        );
    }
    // Every datagram carries the VNI of the network it came from.
    for u in &underlay {
        let v = vxlan::VxlanPacket::new_checked(&u.bytes[..]).expect("valid header");
        let tag = &u.bytes[vxlan::HEADER_LEN + 14..];
        let vni = if tag.starts_with(b"blue") { BLUE } else { RED };
        assert_eq!(v.vni_field(), vni.get());
    }
    // The tables are separate: mac(2) is behind host 1 in both, learned independently, and
    // detaching red ports leaves blue's table alone.
    let blue = f.hosts[0].switch.fdb_entries(BLUE);
    let red = f.hosts[0].switch.fdb_entries(RED);
    assert_eq!(blue.len(), 2);
    assert_eq!(red.len(), 2);
    f.hosts[0]
        .switch
        .remove_port(port(0, 1, 0))
        .expect("port exists");
    assert_eq!(f.hosts[0].switch.fdb_entries(RED).len(), 1);
    assert_eq!(f.hosts[0].switch.fdb_entries(BLUE).len(), 2);
}

#[test]
fn datagram_for_an_unknown_vni_is_dropped_and_counted() {
    let mut f = three_hosts(SwitchConfig::default());
    let mut dgram = vxlan::VxlanRepr {
        vni: Vni::new(999).expect("valid"),
        sealed: false,
    }
    .to_bytes()
    .to_vec();
    dgram.extend(ip_frame(Mac::BROADCAST, mac(2), "stray"));
    f.inject(host_addr(1), 0, &dgram);
    let (delivered, _) = f.take();
    assert!(delivered.is_empty());
    let s = &f.hosts[0].switch;
    assert_eq!(s.drops.get(DropReason::UnknownVni), 1);
    let peer = s.peer_traffic(host_addr(1).ip()).expect("peer");
    assert_eq!(peer.drops.get("unknown_vni"), Some(&1));
}

#[test]
fn bad_datagrams_are_dropped_by_reason() {
    let mut f = three_hosts(SwitchConfig::default());
    let good_frame = ip_frame(Mac::BROADCAST, mac(2), "x");
    let mut no_i = vec![0u8, 0, 0, 0, 0, 0, 100, 0];
    no_i.extend(&good_frame);
    let mut vni0 = vec![0x08u8, 0, 0, 0, 0, 0, 0, 0];
    vni0.extend(&good_frame);
    let mut runt = vxlan::VxlanRepr {
        vni: BLUE,
        sealed: false,
    }
    .to_bytes()
    .to_vec();
    runt.extend(&[0xff; 10]);
    let mut sealed = vxlan::VxlanRepr {
        vni: BLUE,
        sealed: true,
    }
    .to_bytes()
    .to_vec();
    sealed.extend(&good_frame);
    let cases: [(&[u8], DropReason); 5] = [
        (&[0x08, 0, 0], DropReason::Truncated),
        (&no_i, DropReason::NoVniFlag),
        (&vni0, DropReason::InvalidVni),
        (&runt, DropReason::Truncated),
        (&sealed, DropReason::UnexpectedSeal),
    ];
    for (bytes, reason) in cases {
        let before = f.hosts[0].switch.drops.get(reason);
        f.inject(host_addr(1), 0, bytes);
        assert_eq!(
            f.hosts[0].switch.drops.get(reason),
            before + 1,
            "{reason:?}"
        );
    }
    // From an address that is not a peer.
    let stranger = "198.51.100.7:4789".parse().expect("addr");
    let mut ok = vxlan::VxlanRepr {
        vni: BLUE,
        sealed: false,
    }
    .to_bytes()
    .to_vec();
    ok.extend(&good_frame);
    f.inject(stranger, 0, &ok);
    assert_eq!(f.hosts[0].switch.drops.get(DropReason::UnknownVtep), 1);
    let (delivered, _) = f.take();
    assert!(delivered.is_empty(), "nothing bad was delivered");
}

#[test]
fn reserved_bits_are_ignored_on_receive() {
    let mut f = three_hosts(SwitchConfig::default());
    // All reserved bits set (except our S flag, which has a meaning of its own).
    let mut dgram = vec![!vxlan::FLAG_SEALED, 0xff, 0xff, 0xff, 0, 0, 100, 0xff];
    dgram.extend(ip_frame(Mac::BROADCAST, mac(2), "noisy"));
    f.inject(host_addr(1), 0, &dgram);
    let (delivered, _) = f.take();
    assert_eq!(
        delivered.len(),
        2,
        "delivered to both blue containers of host 0"
    );
}

#[test]
fn multicast_broadcast_and_zero_source_macs_are_never_learned() {
    let mut f = three_hosts(SwitchConfig::default());
    for src in [Mac::BROADCAST, Mac([0x01, 0, 0x5e, 0, 0, 1]), Mac::ZERO] {
        f.send(0, port(0, 0, 0), &ip_frame(Mac::BROADCAST, src, "bad"));
    }
    let (delivered, underlay) = f.take();
    assert!(delivered.is_empty() && underlay.is_empty());
    let s = &f.hosts[0].switch;
    assert_eq!(s.drops.get(DropReason::BadSourceMac), 3);
    assert!(s.fdb_entries(BLUE).is_empty());
    let p = s.port_traffic(port(0, 0, 0)).expect("port");
    assert_eq!(p.drops.get("bad_source_mac"), Some(&3));
    // Same from the underlay.
    let mut dgram = vxlan::VxlanRepr {
        vni: BLUE,
        sealed: false,
    }
    .to_bytes()
    .to_vec();
    dgram.extend(ip_frame(Mac::BROADCAST, Mac([0x03, 1, 2, 3, 4, 5]), "bad"));
    f.inject(host_addr(1), 0, &dgram);
    assert_eq!(f.hosts[0].switch.drops.get(DropReason::BadSourceMac), 4);
    assert!(f.hosts[0].switch.fdb_entries(BLUE).is_empty());
}

#[test]
fn vlan_tagged_inner_frames_are_dropped_by_default() {
    let mut f = three_hosts(SwitchConfig::default());
    let mut tagged = frame(Mac::BROADCAST, mac(1), 0x8100, &[0x00, 0x0a, 0x08, 0x00]);
    tagged.extend(payload("tagged"));
    f.send(0, port(0, 0, 0), &tagged);
    let (delivered, underlay) = f.take();
    assert!(delivered.is_empty() && underlay.is_empty());
    assert_eq!(f.hosts[0].switch.drops.get(DropReason::VlanTagged), 1);

    let mut allow = three_hosts(SwitchConfig {
        allow_vlan_tagged: true,
        ..SwitchConfig::default()
    });
    allow.send(0, port(0, 0, 0), &tagged);
    assert_eq!(allow.take().0.len(), 3);
}

#[test]
fn entries_age_out_on_the_virtual_clock() {
    let mut f = three_hosts(SwitchConfig::default());
    f.send(1, port(1, 0, 0), &ip_frame(Mac::BROADCAST, mac(2), "hi"));
    f.take();
    f.advance(Duration::from_secs(299));
    f.send(0, port(0, 0, 0), &ip_frame(mac(2), mac(1), "still known"));
    assert_eq!(f.take().1.len(), 1, "unicast before the entry ages");
    // 299 s later mac(1) was refreshed on host 0 but mac(2) was not.
    f.advance(Duration::from_secs(1));
    assert_eq!(
        f.hosts[0]
            .switch
            .network(BLUE)
            .map(|n| n.fdb.lookup(mac(2), f.now)),
        Some(None)
    );
    let aged = f.hosts[0].switch.network(BLUE).map(|n| {
        n.fdb
            .counters
            .aged
            .load(std::sync::atomic::Ordering::Relaxed)
    });
    assert_eq!(aged, Some(1));
    assert_eq!(
        f.hosts[0].switch.fdb_entries(BLUE).len(),
        1,
        "mac(1) remains"
    );
    f.send(0, port(0, 0, 0), &ip_frame(mac(2), mac(1), "flood again"));
    assert_eq!(f.take().1.len(), 2, "unknown again: flooded to both peers");
}

#[test]
fn ageing_is_configurable() {
    let mut f = three_hosts(SwitchConfig {
        fdb: FdbConfig {
            ageing: Duration::from_secs(10),
            ..FdbConfig::default()
        },
        ..SwitchConfig::default()
    });
    f.send(1, port(1, 0, 0), &ip_frame(Mac::BROADCAST, mac(2), "hi"));
    f.advance(Duration::from_secs(9));
    assert_eq!(f.hosts[0].switch.fdb_entries(BLUE).len(), 1);
    f.advance(Duration::from_secs(1));
    assert!(f.hosts[0].switch.fdb_entries(BLUE).is_empty());
}

#[test]
fn a_mac_seen_at_a_new_location_moves_at_once() {
    let mut f = three_hosts(SwitchConfig::default());
    f.send(
        1,
        port(1, 0, 0),
        &ip_frame(Mac::BROADCAST, mac(5), "on host 1"),
    );
    f.take();
    // The container restarts on host 2 with the same MAC.
    f.send(
        2,
        port(2, 0, 0),
        &ip_frame(Mac::BROADCAST, mac(5), "on host 2"),
    );
    f.take();
    let loc = f.hosts[0]
        .switch
        .network(BLUE)
        .and_then(|n| n.fdb.lookup(mac(5), f.now));
    assert_eq!(loc, Some(Location::Vtep(Vtep(host_addr(2)))));
    f.send(0, port(0, 0, 0), &ip_frame(mac(5), mac(1), "where are you"));
    let (delivered, underlay) = f.take();
    assert_eq!(receipt_counts(&delivered), [((2, port(2, 0, 0)), 1)].into());
    assert_eq!(underlay.len(), 1);
    let moved = f.hosts[0].switch.network(BLUE).map(|n| {
        n.fdb
            .counters
            .moved
            .load(std::sync::atomic::Ordering::Relaxed)
    });
    assert_eq!(moved, Some(1));
    // A remote MAC that shows up on a local port moves there too.
    f.send(
        0,
        port(0, 0, 1),
        &ip_frame(Mac::BROADCAST, mac(5), "now local"),
    );
    let loc = f.hosts[0]
        .switch
        .network(BLUE)
        .and_then(|n| n.fdb.lookup(mac(5), f.now));
    assert_eq!(loc, Some(Location::Port(port(0, 0, 1))));
}

#[test]
fn a_full_table_evicts_the_entry_that_expires_soonest() {
    let mut f = Fabric::full_mesh(
        1,
        SwitchConfig {
            fdb: FdbConfig {
                capacity: 4,
                ..FdbConfig::default()
            },
            ..SwitchConfig::default()
        },
    );
    f.add_network_everywhere(BLUE);
    f.attach(0, PortId(1), BLUE);
    for n in 1..=4 {
        f.send(0, PortId(1), &ip_frame(Mac::BROADCAST, mac(n), "fill"));
        f.advance(Duration::from_secs(1));
    }
    // mac(1) is the oldest — refresh it, so mac(2) becomes the soonest to expire.
    f.send(0, PortId(1), &ip_frame(Mac::BROADCAST, mac(1), "refresh"));
    f.advance(Duration::from_secs(1));
    f.send(0, PortId(1), &ip_frame(Mac::BROADCAST, mac(5), "overflow"));
    let table: Vec<Mac> = f.hosts[0]
        .switch
        .fdb_entries(BLUE)
        .iter()
        .map(|e| e.mac)
        .collect();
    assert_eq!(table, vec![mac(1), mac(3), mac(4), mac(5)]);
    let n = f.hosts[0].switch.network(BLUE).expect("network");
    assert_eq!(
        n.fdb
            .counters
            .evicted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // A flood of new MACs never grows the table past its capacity.
    for i in 0..200u8 {
        f.send(
            0,
            PortId(1),
            &ip_frame(Mac::BROADCAST, Mac([2, 9, 9, 9, i, 0]), "flood"),
        );
    }
    assert_eq!(f.hosts[0].switch.fdb_entries(BLUE).len(), 4);
}

#[test]
fn counters_per_port_peer_and_network() {
    let mut f = three_hosts(SwitchConfig::default());
    let b = ip_frame(Mac::BROADCAST, mac(1), "count me");
    let len = b.len() as u64;
    f.send(0, port(0, 0, 0), &b);
    let s0 = &f.hosts[0].switch;
    let p = s0.port_traffic(port(0, 0, 0)).expect("port");
    assert_eq!((p.rx_frames, p.rx_bytes, p.tx_frames), (1, len, 0));
    let q = s0.port_traffic(port(0, 0, 1)).expect("port");
    assert_eq!((q.tx_frames, q.tx_bytes), (1, len));
    let peer = s0.peer_traffic(host_addr(1).ip()).expect("peer");
    assert_eq!((peer.tx_frames, peer.tx_bytes), (1, len));
    let net = s0.network_traffic(BLUE).expect("net");
    assert_eq!((net.rx_frames, net.tx_frames), (1, 3));
    assert_eq!(s0.network_traffic(RED).expect("net").rx_frames, 0);
    let s1 = &f.hosts[1].switch;
    let from0 = s1.peer_traffic(host_addr(0).ip()).expect("peer");
    assert_eq!((from0.rx_frames, from0.rx_bytes), (1, len + 8));
    let r = s1.port_traffic(port(1, 0, 0)).expect("port");
    assert_eq!((r.tx_frames, r.tx_bytes), (1, len));
}

#[test]
fn configuration_errors_change_nothing() {
    let mut f = three_hosts(SwitchConfig::default());
    let s = &mut f.hosts[0].switch;
    assert!(s.add_network(BLUE).is_err());
    assert!(matches!(
        s.remove_network(BLUE),
        Err(vswitch::core::SwitchError::NetworkHasPorts { .. })
    ));
    assert!(s.add_port(port(0, 0, 0), RED).is_err());
    assert!(s.add_port(PortId(77), Vni::new(5).expect("vni")).is_err());
    assert!(s.add_peer(Vtep(host_addr(1))).is_err());
    assert_eq!(s.network(BLUE).map(|n| n.ports().len()), Some(2));
    assert_eq!(s.peers().count(), 2);
    // Removing a peer forgets the MACs behind it.
    f.send(1, port(1, 0, 0), &ip_frame(Mac::BROADCAST, mac(2), "hi"));
    let s = &mut f.hosts[0].switch;
    assert_eq!(s.fdb_entries(BLUE).len(), 1);
    s.remove_peer(host_addr(1).ip()).expect("peer");
    assert!(s.fdb_entries(BLUE).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Sealed networks on the fabric: blue is sealed on every host, red stays plain.

use vswitch::core::seal::{NetworkKey, SealConfig, Sealer, FRAME_OFFSET, MAX_FRAME_LEN};
use vswitch::core::switch::{HEADROOM, TAILROOM};
use vswitch::core::{Forward, PortSecurity};
use vswitch::wire::underlay::OUTER_LEN;

/// What `Forward::deliver` hands out for a frame flooded on blue from host `host`: the sends to
/// every peer. Built directly, so the switch learns and counts nothing.
fn blue_flood(f: &Fabric, host: usize) -> Forward {
    Forward {
        vni: Some(BLUE),
        vteps: f.hosts[host].switch.peers().collect(),
        ..Forward::default()
    }
}

fn network_key(byte: u8) -> NetworkKey {
    NetworkKey::from_bytes([byte; 32])
}

/// Seals `vni` on `host` with `key`; the sender id differs per host, as a fresh one would.
fn seal_network(f: &mut Fabric, host: usize, vni: Vni, key: &NetworkKey) {
    let sealer = Sealer::new(vni.get(), key, 0x5e00 + host as u64, SealConfig::default())
        .expect("default config is valid");
    f.hosts[host]
        .switch
        .set_sealer(vni, Some(sealer))
        .expect("network exists");
}

/// `three_hosts` with blue sealed under one key everywhere, after the hosts' handshakes (the
/// underlay log and deliveries are cleared; the handshakes drop nothing).
fn three_hosts_sealed() -> Fabric {
    let mut f = three_hosts(SwitchConfig::default());
    let key = network_key(7);
    for h in 0..3 {
        seal_network(&mut f, h, BLUE, &key);
    }
    settle(&mut f);
    for h in 0..3 {
        assert_eq!(f.hosts[h].switch.drops.total(), 0, "host {h}'s handshakes");
    }
    f
}

/// Lets the due control datagrams (handshakes) cross, then clears the logs.
fn settle(f: &mut Fabric) {
    f.advance(std::time::Duration::ZERO);
    f.take();
}

/// A plain VXLAN datagram of `vni` carrying `frame`.
fn plain_datagram(vni: Vni, frame: &[u8]) -> Vec<u8> {
    let mut d = vxlan::VxlanRepr { vni, sealed: false }.to_bytes().to_vec();
    d.extend_from_slice(frame);
    d
}

/// Drop counters by name, as `vswitch stats` shows them.
fn drops(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
}

/// Host `host` seals `frame` for blue as it would for sending, without anyone receiving it.
fn sealed_datagram(f: &Fabric, host: usize, frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; HEADROOM + frame.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let flood = blue_flood(f, host);
    let sends = flood.deliver(&[], |_, _| {}).expect("to the peers");
    let enc = f.hosts[host]
        .switch
        .encapsulate(&sends, &mut buf, HEADROOM..HEADROOM + frame.len())
        .expect("room reserved");
    buf[enc.datagram].to_vec()
}

/// A frame and host 0's sealed datagram of it, which nobody has received yet.
fn one_sealed_datagram(f: &Fabric, tag: &str) -> (Vec<u8>, Vec<u8>) {
    let sent = ip_frame(Mac::BROADCAST, mac(1), tag);
    let datagram = sealed_datagram(f, 0, &sent);
    (sent, datagram)
}

#[test]
fn a_sealed_network_delivers_sealed_frames_intact_and_never_in_the_clear() {
    let mut f = three_hosts_sealed();
    let sent = ip_frame(Mac::BROADCAST, mac(1), "sealed hello");
    f.send(0, port(0, 0, 0), &sent);
    let (delivered, underlay) = f.take();
    let expected: BTreeMap<_, _> = [
        ((0, port(0, 0, 1)), 1),
        ((1, port(1, 0, 0)), 1),
        ((2, port(2, 0, 0)), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(receipt_counts(&delivered), expected);
    assert!(delivered.iter().all(|d| d.frame == sent), "{delivered:?}");
    assert_eq!(underlay.len(), 2);
    for d in &underlay {
        // I and S flags, then the VNI; the envelope adds 20 bytes in front and a 16-byte tag.
        assert_eq!(d.bytes[0], 0x0a, "flags of a sealed datagram");
        assert_eq!(&d.bytes[1..4], &[0, 0, 0]);
        assert_eq!(&d.bytes[4..7], &BLUE.get().to_be_bytes()[1..]);
        assert_eq!(d.bytes[7], 0);
        assert_eq!(d.bytes.len(), vxlan::HEADER_LEN + 20 + sent.len() + 16);
        let body = &d.bytes[FRAME_OFFSET..FRAME_OFFSET + sent.len()];
        assert_ne!(
            body,
            &sent[..],
            "the frame crossed the underlay in the clear"
        );
        assert!(
            !d.bytes
                .windows(b"sealed hello".len())
                .any(|w| w == b"sealed hello"),
            "payload visible on the underlay"
        );
    }
    for h in 0..3 {
        assert_eq!(f.hosts[h].switch.drops.total(), 0, "host {h} dropped");
    }
    // The plain network next to it is untouched: plain datagrams, flags 0x08.
    f.send(
        0,
        port(0, 1, 0),
        &ip_frame(Mac::BROADCAST, mac(1), "plain red"),
    );
    let (delivered, underlay) = f.take();
    assert_eq!(delivered.len(), 2);
    assert!(underlay.iter().all(|d| d.bytes[0] == 0x08));
}

#[test]
fn plain_vxlan_from_a_peer_is_never_delivered_on_a_sealed_network() {
    let mut f = three_hosts_sealed();
    // From host 1's own address, for blue: a broadcast, and a unicast to a known container.
    f.send(
        0,
        port(0, 0, 0),
        &ip_frame(Mac::BROADCAST, mac(1), "learn me"),
    );
    f.take();
    let entries_before = f.hosts[0].switch.fdb_entries(BLUE);
    for dst in [Mac::BROADCAST, mac(1)] {
        f.inject(
            host_addr(1),
            0,
            &plain_datagram(BLUE, &ip_frame(dst, mac(66), "forged plain")),
        );
    }
    let (delivered, _) = f.take();
    assert!(delivered.is_empty(), "plain VXLAN delivered: {delivered:?}");
    let s = &f.hosts[0].switch;
    assert_eq!(s.drops.snapshot(), drops(&[("not_sealed", 2)]));
    let peer = s.peer_traffic(host_addr(1).ip()).expect("peer");
    assert_eq!(peer.drops, drops(&[("not_sealed", 2)]));
    let net = s.network_traffic(BLUE).expect("network");
    assert_eq!(net.drops, drops(&[("not_sealed", 2)]));
    assert_eq!(net.rx_frames, 1, "only the container's own frame");
    // Nothing was learned from the unauthenticated frame.
    assert_eq!(s.fdb_entries(BLUE), entries_before);
    // A plain datagram for the plain network from the same peer is fine.
    f.inject(
        host_addr(1),
        0,
        &plain_datagram(RED, &ip_frame(Mac::BROADCAST, mac(2), "plain red")),
    );
    assert_eq!(f.take().0.len(), 1);
    assert_eq!(
        f.hosts[0].switch.drops.snapshot(),
        drops(&[("not_sealed", 2)])
    );
}

#[test]
fn a_sealed_datagram_for_a_plain_network_is_unexpected_seal() {
    let mut f = three_hosts_sealed();
    let (_, mut datagram) = one_sealed_datagram(&f, "for blue");
    // The same sealed datagram relabelled to red, which is plain on host 1.
    datagram[4..7].copy_from_slice(&RED.get().to_be_bytes()[1..]);
    f.inject(host_addr(0), 1, &datagram);
    assert!(f.take().0.is_empty());
    let s = &f.hosts[1].switch;
    assert_eq!(s.drops.snapshot(), drops(&[("unexpected_seal", 1)]));
    assert_eq!(
        s.network_traffic(RED).expect("red").drops,
        drops(&[("unexpected_seal", 1)])
    );
}

#[test]
fn malformed_envelopes_are_bad_envelope() {
    let mut f = three_hosts_sealed();
    let (_, datagram) = one_sealed_datagram(&f, "envelope");
    // Too short to hold the envelope and its tag, at several lengths.
    for len in [8, 9, 27, 28, 43] {
        f.inject(host_addr(0), 1, &datagram[..len]);
    }
    // A whole datagram with an unknown envelope version.
    let mut v3 = datagram.clone();
    v3[vxlan::HEADER_LEN] = 3;
    f.inject(host_addr(0), 1, &v3);
    assert!(f.take().0.is_empty());
    let s = &f.hosts[1].switch;
    assert_eq!(s.drops.snapshot(), drops(&[("bad_envelope", 6)]));
    assert_eq!(
        s.peer_traffic(host_addr(0).ip()).expect("peer").drops,
        drops(&[("bad_envelope", 6)])
    );
    // The untouched datagram still opens: nothing above consumed its counter.
    f.inject(host_addr(0), 1, &datagram);
    assert_eq!(f.take().0.len(), 1);
}

#[test]
fn a_datagram_under_a_key_this_host_lacks_is_unknown_key() {
    let mut f = three_hosts_sealed();
    // Host 0 moves to a key with another id; host 1 does not have it.
    let other = (8..=255)
        .map(network_key)
        .find(|k| k.id() != network_key(7).id())
        .expect("another key id");
    seal_network(&mut f, 0, BLUE, &other);
    // Host 0's challenges under the new key reach hosts 1 and 2: unknown_key there too.
    settle(&mut f);
    f.send(
        0,
        port(0, 0, 0),
        &ip_frame(Mac::BROADCAST, mac(1), "new key"),
    );
    let (delivered, underlay) = f.take();
    assert_eq!(
        receipt_counts(&delivered),
        [((0, port(0, 0, 1)), 1)].into(),
        "only host 0's own container"
    );
    assert_eq!(underlay.len(), 2);
    assert!(underlay
        .iter()
        .all(|d| d.bytes[vxlan::HEADER_LEN + 1] == other.id().0));
    // Once more to host 1.
    f.inject(host_addr(0), 1, &underlay[0].bytes);
    assert!(f.take().0.is_empty());
    for (h, n) in [(1, 3), (2, 2)] {
        assert_eq!(
            f.hosts[h].switch.drops.snapshot(),
            drops(&[("unknown_key", n)]),
            "host {h}"
        );
    }
}

#[test]
fn a_forged_or_corrupted_datagram_is_auth_failed() {
    let mut f = three_hosts_sealed();
    let (_, datagram) = one_sealed_datagram(&f, "authentic");
    let mut corrupted = datagram.clone();
    corrupted[FRAME_OFFSET + 3] ^= 0x01;
    let mut tag = datagram.clone();
    let last = tag.len() - 1;
    tag[last] ^= 0x80;
    // The right key id but another key: a forgery by someone without the network key.
    let forger_key = (0..=u16::MAX)
        .map(|i| {
            let mut b = [9u8; 32];
            b[..2].copy_from_slice(&i.to_be_bytes());
            NetworkKey::from_bytes(b)
        })
        .find(|k| k.id() == network_key(7).id())
        .expect("a colliding key id within 65536 keys");
    let forger =
        Sealer::<std::net::SocketAddr>::new(BLUE.get(), &forger_key, 0xf0f0, SealConfig::default())
            .expect("config");
    let frame = ip_frame(mac(1), mac(66), "forged");
    let mut buf = vec![0u8; FRAME_OFFSET + frame.len() + 16];
    buf[..8].copy_from_slice(
        &vxlan::VxlanRepr {
            vni: BLUE,
            sealed: true,
        }
        .to_bytes(),
    );
    buf[FRAME_OFFSET..FRAME_OFFSET + frame.len()].copy_from_slice(&frame);
    let len = forger.seal(&mut buf, frame.len()).expect("seal");
    for bytes in [&corrupted, &tag, &buf[..len].to_vec()] {
        f.inject(host_addr(0), 1, bytes);
    }
    assert!(f.take().0.is_empty());
    let s = &f.hosts[1].switch;
    assert_eq!(s.drops.snapshot(), drops(&[("auth_failed", 3)]));
    assert!(
        !s.fdb_entries(BLUE).iter().any(|e| e.mac == mac(66)),
        "a forged source was learned"
    );
    // The genuine datagram still opens after the failures.
    f.inject(host_addr(0), 1, &datagram);
    assert_eq!(f.take().0.len(), 1);
}

#[test]
fn a_replayed_datagram_is_dropped_as_replayed_and_delivered_once() {
    let mut f = three_hosts_sealed();
    let (sent, datagram) = one_sealed_datagram(&f, "only once");
    f.inject(host_addr(0), 1, &datagram);
    let (delivered, _) = f.take();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].frame, sent);
    // An attacker replays it twice.
    for _ in 0..2 {
        f.inject(host_addr(0), 1, &datagram);
    }
    assert!(f.take().0.is_empty(), "a replay was delivered");
    let s = &f.hosts[1].switch;
    assert_eq!(s.drops.snapshot(), drops(&[("replayed", 2)]));
    assert_eq!(
        s.network_traffic(BLUE).expect("blue").drops,
        drops(&[("replayed", 2)])
    );
    // A replay from the address of another peer is no better: host 0's sender is verified at
    // host 0's address only.
    f.inject(host_addr(2), 1, &datagram);
    assert!(f.take().0.is_empty());
    assert_eq!(
        f.hosts[1].switch.drops.snapshot(),
        drops(&[("replayed", 2), ("unverified", 1)])
    );
    // Fresh datagrams keep flowing.
    f.send(0, port(0, 0, 0), &sent);
    assert_eq!(f.take().0.len(), 3);
}

#[test]
fn a_frame_too_big_to_seal_is_too_big_and_counted() {
    let mut f = three_hosts_sealed();
    let flood = blue_flood(&f, 0);
    let sends = flood.deliver(&[], |_, _| {}).expect("to the peers");
    let s = &f.hosts[0].switch;
    let frame = ip_frame(Mac::BROADCAST, mac(1), "x");
    // No tailroom for the tag.
    let mut buf = vec![0u8; HEADROOM + frame.len()];
    buf[HEADROOM..].copy_from_slice(&frame);
    let at = HEADROOM..HEADROOM + frame.len();
    assert_eq!(s.encapsulate(&sends, &mut buf, at), Err(DropReason::TooBig));
    // A frame longer than one sealed UDP datagram can carry.
    let huge = MAX_FRAME_LEN + 1;
    let mut buf = vec![0u8; HEADROOM + huge + TAILROOM];
    let at = HEADROOM..HEADROOM + huge;
    assert_eq!(s.encapsulate(&sends, &mut buf, at), Err(DropReason::TooBig));
    // The largest frame whose sealed datagram, with the outer IPv4 and UDP headers, still fits
    // one IPv4 packet; one byte more is too big.
    let max = u16::MAX as usize - OUTER_LEN - FRAME_OFFSET - 16;
    let mut buf = vec![0u8; HEADROOM + max + 1 + TAILROOM];
    let at = HEADROOM..HEADROOM + max + 1;
    assert_eq!(s.encapsulate(&sends, &mut buf, at), Err(DropReason::TooBig));
    assert_eq!(s.drops.snapshot(), drops(&[("too_big", 3)]));
    assert_eq!(
        s.network_traffic(BLUE).expect("blue").drops,
        drops(&[("too_big", 3)])
    );
    let mut big = ip_frame(Mac::BROADCAST, mac(1), "biggest");
    big.resize(max, 0x5a);
    let mut buf = vec![0u8; HEADROOM + max + TAILROOM];
    buf[HEADROOM..HEADROOM + max].copy_from_slice(&big);
    let enc = s
        .encapsulate(&sends, &mut buf, HEADROOM..HEADROOM + max)
        .expect("the largest frame seals");
    assert_eq!(enc.datagram.len(), u16::MAX as usize - OUTER_LEN);
    let datagram = buf[enc.datagram].to_vec();
    f.inject(host_addr(0), 1, &datagram);
    let (delivered, _) = f.take();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].frame, big);
}

#[test]
fn a_sealed_network_turned_plain_again_takes_plain_datagrams() {
    let mut f = three_hosts_sealed();
    f.hosts[1]
        .switch
        .set_sealer(BLUE, None)
        .expect("network exists");
    let plain = plain_datagram(BLUE, &ip_frame(Mac::BROADCAST, mac(1), "plain again"));
    f.inject(host_addr(0), 1, &plain);
    assert_eq!(f.take().0.len(), 1);
    assert_eq!(f.hosts[1].switch.drops.total(), 0);
    assert!(f.hosts[1]
        .switch
        .set_sealer(Vni::new(4321).expect("vni"), None)
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// Drop reasons: every one produced on the fabric and reported under its documented name.

/// The drop reason names README documents, in its order.
fn documented_drop_reasons() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("The drop reasons\nare ")
        .or_else(|| readme.find("The drop reasons are "))
        .expect("README lists the drop reasons");
    let list = &readme[start..];
    let list = &list[..list.find(".\n").expect("the list ends with a full stop")];
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn drop_reason_names_are_exactly_the_documented_ones() {
    let names: Vec<String> = DropReason::ALL
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    assert_eq!(names, documented_drop_reasons());
    assert_eq!(
        names,
        [
            "truncated",
            "no_vni_flag",
            "invalid_vni",
            "unknown_vni",
            "unknown_vtep",
            "unknown_port",
            "vlan_tagged",
            "bad_source_mac",
            "same_port",
            "split_horizon",
            "not_sealed",
            "unexpected_seal",
            "bad_envelope",
            "unknown_key",
            "auth_failed",
            "replayed",
            "unverified",
            "key_exhausted",
            "too_big",
            "port_security",
            "storm_control",
            "mac_conflict",
        ]
    );
    // Each reason counts under its own name only.
    for r in DropReason::ALL {
        let c = vswitch::core::counters::DropCounters::default();
        c.add(r);
        assert_eq!(c.snapshot(), drops(&[(r.name(), 1)]), "{r:?}");
        assert_eq!((c.get(r), c.total()), (1, 1), "{r:?}");
    }
}

#[test]
fn every_drop_reason_the_fabric_can_produce_is_counted_under_its_name() {
    let mut f = three_hosts_sealed();
    let good = ip_frame(Mac::BROADCAST, mac(2), "x");
    let inject = |f: &mut Fabric, bytes: &[u8]| f.inject(host_addr(1), 0, bytes);
    // From the underlay, plain red.
    inject(&mut f, &[0x08, 0, 0]);
    inject(&mut f, &[&[0u8, 0, 0, 0, 0, 0, 200, 0][..], &good].concat());
    inject(
        &mut f,
        &[&[0x08u8, 0, 0, 0, 0, 0, 0, 0][..], &good].concat(),
    );
    inject(&mut f, &plain_datagram(Vni::new(999).expect("vni"), &good));
    f.inject(
        "198.51.100.7:4789".parse().expect("addr"),
        0,
        &plain_datagram(RED, &good),
    );
    let mut sealed_red = vxlan::VxlanRepr {
        vni: RED,
        sealed: true,
    }
    .to_bytes()
    .to_vec();
    sealed_red.extend(&good);
    inject(&mut f, &sealed_red);
    // From ports.
    f.send(0, PortId(999), &good);
    let mut tagged = frame(Mac::BROADCAST, mac(1), 0x8100, &[0x00, 0x0a, 0x08, 0x00]);
    tagged.extend(payload("tagged"));
    f.send(0, port(0, 1, 0), &tagged);
    f.send(
        0,
        port(0, 1, 0),
        &ip_frame(Mac::BROADCAST, Mac::ZERO, "bad"),
    );
    f.send(0, port(0, 1, 0), &ip_frame(Mac::BROADCAST, mac(1), "learn"));
    f.send(0, port(0, 1, 0), &ip_frame(mac(1), mac(7), "hairpin"));
    // Split horizon: host 0 learned mac(3) behind host 2, host 1 sends a frame for it.
    f.send(
        2,
        port(2, 1, 0),
        &ip_frame(Mac::BROADCAST, mac(3), "I am 3"),
    );
    inject(
        &mut f,
        &plain_datagram(RED, &ip_frame(mac(3), mac(2), "relay")),
    );
    // Sealed blue.
    inject(&mut f, &plain_datagram(BLUE, &good));
    let sealed_to_0 = sealed_datagram(&f, 1, &good);
    inject(&mut f, &sealed_to_0[..20]);
    let mut unknown = sealed_to_0.clone();
    unknown[vxlan::HEADER_LEN + 1] ^= 0xff;
    inject(&mut f, &unknown);
    let mut flipped = sealed_to_0.clone();
    flipped[FRAME_OFFSET] ^= 1;
    inject(&mut f, &flipped);
    inject(&mut f, &sealed_to_0);
    inject(&mut f, &sealed_to_0);
    // Host 1's datagram from host 2's address: host 1's sender is not verified there.
    f.inject(host_addr(2), 0, &sealed_datagram(&f, 1, &good));
    // Port security: a secured port sending as another MAC.
    f.hosts[0]
        .switch
        .set_port_security(
            port(0, 0, 1),
            Some(PortSecurity {
                mac: mac(9),
                ipv4: vec![],
                ipv6: vec![],
            }),
        )
        .expect("port exists");
    f.send(0, port(0, 0, 1), &ip_frame(Mac::BROADCAST, mac(5), "spoof"));
    // MAC-move protection: mac(1) lives at host 0's red port; a frame from host 1 claims it.
    inject(
        &mut f,
        &plain_datagram(RED, &ip_frame(Mac::BROADCAST, mac(1), "from afar")),
    );
    let flood = blue_flood(&f, 0);
    let sends = flood.deliver(&[], |_, _| {}).expect("to the peers");
    let s = &f.hosts[0].switch;
    let frame = ip_frame(Mac::BROADCAST, mac(1), "no tailroom");
    let mut buf = vec![0u8; HEADROOM + frame.len()];
    buf[HEADROOM..].copy_from_slice(&frame);
    assert_eq!(
        s.encapsulate(&sends, &mut buf, HEADROOM..HEADROOM + frame.len()),
        Err(DropReason::TooBig)
    );
    // Everything but key_exhausted (which needs 2^64 frames; see the sealing unit tests) and
    // storm_control (off in this fabric's switches; see tests/port_security.rs).
    let expected: BTreeMap<String, u64> = DropReason::ALL
        .iter()
        .filter(|&&r| r != DropReason::KeyExhausted && r != DropReason::StormControl)
        .map(|r| (r.name().to_owned(), 1))
        .collect();
    assert_eq!(s.drops.snapshot(), expected);
}

// ---------------------------------------------------------------------------------------------
// Expiry between ticks: an entry past its ageing time is not used, even before `tick` removes it.

#[test]
fn an_entry_that_aged_out_since_the_last_tick_is_not_used() {
    let mut f = three_hosts(SwitchConfig::default());
    f.send(1, port(1, 0, 0), &ip_frame(Mac::BROADCAST, mac(2), "hi"));
    f.take();
    // Move the clock without ticking: the entry is still in the table, but stale.
    f.now = Timestamp::from_secs(300);
    assert_eq!(f.hosts[0].switch.fdb_entries(BLUE).len(), 1, "not yet aged");
    f.send(0, port(0, 0, 0), &ip_frame(mac(2), mac(1), "where now"));
    let (delivered, underlay) = f.take();
    assert_eq!(underlay.len(), 2, "flooded to both peers, not unicast");
    assert_eq!(delivered.len(), 3);
    // One millisecond earlier it would still have been unicast.
    let mut g = three_hosts(SwitchConfig::default());
    g.send(1, port(1, 0, 0), &ip_frame(Mac::BROADCAST, mac(2), "hi"));
    g.take();
    g.now = Timestamp::from_millis(299_999);
    g.send(0, port(0, 0, 0), &ip_frame(mac(2), mac(1), "still here"));
    let (_, underlay) = g.take();
    assert_eq!(underlay.len(), 1);
    assert_eq!(underlay[0].to, host_addr(1));
}

#[test]
fn a_stale_entry_does_not_cause_a_split_horizon_drop_or_a_same_port_drop() {
    let mut f = three_hosts(SwitchConfig::default());
    // Host 0 learns mac(3) behind host 2 and mac(9) on its port (0,0,1).
    f.send(
        2,
        port(2, 0, 0),
        &ip_frame(Mac::BROADCAST, mac(3), "I am 3"),
    );
    f.send(
        0,
        port(0, 0, 1),
        &ip_frame(Mac::BROADCAST, mac(9), "I am 9"),
    );
    f.take();
    f.now = Timestamp::from_secs(301);
    // From the underlay, for the stale remote MAC: flooded to local ports, not dropped.
    f.inject(
        host_addr(1),
        0,
        &plain_datagram(BLUE, &ip_frame(mac(3), mac(2), "stale remote")),
    );
    let (delivered, _) = f.take();
    assert_eq!(delivered.len(), 2);
    // From port (0,0,1) to its own stale MAC: flooded, not a same-port drop.
    f.send(0, port(0, 0, 1), &ip_frame(mac(9), mac(8), "stale local"));
    let (delivered, underlay) = f.take();
    assert_eq!(receipt_counts(&delivered).len(), 3);
    assert_eq!(underlay.len(), 2);
    assert_eq!(f.hosts[0].switch.drops.total(), 0);
}

#[test]
fn fdb_lookup_honours_expiry_without_ageing() {
    let fdb = vswitch::core::Fdb::new(FdbConfig {
        ageing: Duration::from_secs(10),
        capacity: 4,
    });
    let at = Location::Port(PortId(1));
    assert_eq!((fdb.len(), fdb.is_empty(), fdb.capacity()), (0, true, 4));
    fdb.learn(mac(1), at, Timestamp::from_secs(5));
    assert_eq!((fdb.len(), fdb.is_empty()), (1, false));
    assert_eq!(fdb.lookup(mac(1), Timestamp::from_secs(5)), Some(at));
    assert_eq!(fdb.lookup(mac(1), Timestamp::from_millis(14_999)), Some(at));
    assert_eq!(fdb.lookup(mac(1), Timestamp::from_secs(15)), None);
    assert_eq!(fdb.lookup(mac(1), Timestamp(u64::MAX)), None);
    assert_eq!(fdb.len(), 1, "lookup does not remove; age does");
    // A refresh restarts the timer.
    fdb.learn(mac(1), at, Timestamp::from_secs(14));
    assert_eq!(fdb.lookup(mac(1), Timestamp::from_secs(23)), Some(at));
    assert_eq!(fdb.lookup(mac(1), Timestamp::from_secs(24)), None);
    assert_eq!(fdb.age(Timestamp::from_secs(23)), 0);
    assert_eq!(fdb.age(Timestamp::from_secs(24)), 1);
    assert!(fdb.is_empty());
    // Flushing a location removes exactly its entries, and says how many.
    let other = Location::Port(PortId(2));
    for (n, loc) in [(1, at), (2, at), (3, other)] {
        fdb.learn(mac(n), loc, Timestamp::from_secs(30));
    }
    assert_eq!(fdb.flush(at), 2);
    assert_eq!(fdb.flush(at), 0);
    assert_eq!(fdb.len(), 1);
    assert_eq!(fdb.lookup(mac(3), Timestamp::from_secs(30)), Some(other));
    assert_eq!(fdb.lookup(mac(2), Timestamp(0)), None);
}

#[test]
fn documented_defaults() {
    // README: 300 s ageing and 65 536 entries per network; 4 096 remembered senders per sealed
    // network, a 30 s grace and a 60 s overlap for key rotation.
    assert_eq!(
        FdbConfig::default(),
        FdbConfig {
            ageing: Duration::from_secs(300),
            capacity: 65_536,
        }
    );
    let seal = SealConfig::default();
    assert_eq!(
        (seal.grace, seal.overlap, seal.max_senders),
        (Duration::from_secs(30), Duration::from_secs(60), 4096)
    );
    assert_eq!(SwitchConfig::default().fdb, FdbConfig::default());
    assert!(!SwitchConfig::default().allow_vlan_tagged);
}
