//! Switch behaviour on the in-process fabric: three hosts in a full mesh, two networks each,
//! a virtual clock. No root, no sockets.

use std::collections::BTreeMap;
use std::time::Duration;

use vswitch::core::{DropReason, FdbConfig, Location, PortId, SwitchConfig, Vtep};
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
