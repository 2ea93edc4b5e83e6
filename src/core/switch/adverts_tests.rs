//! Endpoint advertisements: static entries, proxy ARP, flood lists.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::core::{Fdb, FdbConfig, Learned};

const NOW: Timestamp = Timestamp(0);

fn vni() -> Vni {
    Vni::new(7).expect("vni")
}

fn vtep(last: u8) -> Vtep {
    Vtep(SocketAddr::new(
        Ipv4Addr::new(192, 0, 2, last).into(),
        vxlan::UDP_PORT,
    ))
}

fn mac(n: u8) -> Mac {
    Mac([0x02, 0, 0, 0, 0, n])
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// Ports 1 and 2 (port 1 secured as mac(1)/ip(1)) on network 7, peers .2 and .3.
fn switch(proxy_arp: bool) -> Switch {
    let mut s = Switch::new(SwitchConfig {
        proxy_arp,
        ..SwitchConfig::default()
    });
    s.add_network(vni()).expect("network");
    s.add_port(PortId(1), vni()).expect("port 1");
    s.add_port(PortId(2), vni()).expect("port 2");
    s.set_port_security(
        PortId(1),
        Some(PortSecurity {
            mac: mac(1),
            ipv4: vec![ip(1)],
            ipv6: vec![],
        }),
    )
    .expect("secured");
    s.add_peer(vtep(2)).expect("peer");
    s.add_peer(vtep(3)).expect("peer");
    s
}

fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.0.to_vec();
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn unicast(dst: Mac, src: Mac) -> Vec<u8> {
    eth(dst, src, 0x88b5, &[0x45; 46])
}

fn arp(op: u16, sender: (Mac, Ipv4Addr), target: (Mac, Ipv4Addr)) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0x00, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sender.0 .0);
    p.extend_from_slice(&sender.1.octets());
    p.extend_from_slice(&target.0 .0);
    p.extend_from_slice(&target.1.octets());
    eth(Mac([0xff; 6]), sender.0, 0x0806, &p)
}

fn arp_request(from: (Mac, Ipv4Addr), wanted: Ipv4Addr) -> Vec<u8> {
    arp(1, from, (Mac([0; 6]), wanted))
}

/// `frame` with Ethernet source `src`.
fn with_src(mut frame: Vec<u8>, src: Mac) -> Vec<u8> {
    frame[6..12].copy_from_slice(&src.0);
    frame
}

fn datagram(frame: &[u8]) -> Vec<u8> {
    let mut d = VxlanRepr {
        vni: vni(),
        sealed: false,
    }
    .to_bytes()
    .to_vec();
    d.extend_from_slice(frame);
    d
}

/// Where a frame from `port` goes: (ports with the bytes they get, vteps).
fn from_port(
    s: &Switch,
    now: Timestamp,
    port: PortId,
    frame: &[u8],
) -> (Vec<(PortId, Vec<u8>)>, Vec<Vtep>) {
    let mut out = Forward::default();
    s.frame_from_port(now, port, frame, &mut out);
    let mut ports = Vec::new();
    let vteps = out
        .deliver(frame, |p, f| ports.push((p, f.to_vec())))
        .map(|s| s.vteps().to_vec())
        .unwrap_or_default();
    (ports, vteps)
}

#[test]
fn an_advertised_mac_is_unicast_to_its_vtep_at_once_and_never_ages() {
    let mut s = switch(false);
    assert!(s
        .set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(3), NOW)
        .expect("installed"));
    let (ports, vteps) = from_port(&s, NOW, PortId(1), &unicast(mac(9), mac(1)));
    assert_eq!((ports.len(), vteps), (0, vec![vtep(3)]), "no flood");
    // Long past the ageing time it is still there.
    let later = NOW.saturating_add(Duration::from_secs(3600));
    s.tick(later);
    let (_, vteps) = from_port(&s, later, PortId(1), &unicast(mac(9), mac(1)));
    assert_eq!(vteps, [vtep(3)]);
    let entry = s.fdb_entries(vni()).into_iter().find(|e| e.mac == mac(9));
    assert!(entry.expect("listed").pinned);
    assert_eq!(s.network(vni()).expect("n").fdb.pinned(), 1);
    // An advertisement behind a host that is not a peer, or on an unknown network, is refused.
    assert!(s
        .set_remote_endpoint(vni(), mac(8), None, vtep(99), NOW)
        .is_err());
    assert!(s
        .set_remote_endpoint(Vni::new(8).expect("vni"), mac(8), None, vtep(2), NOW)
        .is_err());
}

#[test]
fn learning_from_another_vtep_does_not_move_a_static_entry_but_a_local_port_does() {
    let mut s = switch(false);
    s.set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(3), NOW)
        .expect("installed");
    // A frame from peer .2 claiming mac(9): refused, counted, the entry stays.
    let mut d = datagram(&unicast(mac(1), mac(9)));
    let mut out = Forward::default();
    s.datagram_from_vtep(NOW, vtep(2).0, &mut d, &mut out);
    assert_eq!(out.dropped, Some(DropReason::MacConflict));
    assert_eq!(s.drops.get(DropReason::MacConflict), 1);
    assert_eq!(
        s.network(vni()).expect("n").fdb.lookup(mac(9), NOW),
        Some(Location::Vtep(vtep(3)))
    );
    // From its own VTEP: delivered (mac(1) is not known yet: to every port), the entry stays
    // static.
    let mut d = datagram(&unicast(mac(1), mac(9)));
    s.datagram_from_vtep(NOW, vtep(3).0, &mut d, &mut out);
    assert_eq!(
        (out.dropped, out.ports.clone()),
        (None, vec![PortId(1), PortId(2)])
    );
    assert_eq!(s.network(vni()).expect("n").fdb.pinned(), 1);
    // The container moved here (port 2 is not secured): the local port takes the MAC over.
    from_port(&s, NOW, PortId(1), &unicast(mac(2), mac(1)));
    let (_, vteps) = from_port(&s, NOW, PortId(2), &unicast(mac(1), mac(9)));
    assert!(vteps.is_empty());
    assert_eq!(
        s.network(vni()).expect("n").fdb.lookup(mac(9), NOW),
        Some(Location::Port(PortId(2)))
    );
    assert_eq!(s.network(vni()).expect("n").fdb.pinned(), 0);
    // The advertisement's removal then leaves the local entry alone.
    assert!(s.remove_remote_endpoint(vni(), mac(9)).expect("network"));
    assert_eq!(
        s.network(vni()).expect("n").fdb.lookup(mac(9), NOW),
        Some(Location::Port(PortId(2)))
    );
    // And an advertisement does not take a MAC from a live local port.
    assert!(!s
        .set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(3), NOW)
        .expect("network"));
    assert!(s.remote_endpoints(vni()).is_empty());
}

#[test]
fn a_removed_advertisement_or_peer_takes_the_entry_and_the_arp_answer_away() {
    let mut s = switch(true);
    s.set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(3), NOW)
        .expect("installed");
    s.set_remote_endpoint(vni(), mac(8), Some(ip(8)), vtep(2), NOW)
        .expect("installed");
    assert_eq!(s.remote_endpoints(vni()).len(), 2);
    assert!(s.remove_remote_endpoint(vni(), mac(9)).expect("network"));
    assert!(!s.remove_remote_endpoint(vni(), mac(9)).expect("network"));
    let (_, vteps) = from_port(&s, NOW, PortId(1), &unicast(mac(9), mac(1)));
    assert_eq!(vteps, [vtep(2), vtep(3)], "unknown again: flooded");
    let (ports, _) = from_port(&s, NOW, PortId(1), &arp_request((mac(1), ip(1)), ip(9)));
    assert!(ports.iter().all(|(_, f)| f[21] == 1), "not answered");
    s.remove_peer(vtep(2).0.ip()).expect("peer");
    assert!(s.remote_endpoints(vni()).is_empty());
    assert!(s.fdb_entries(vni()).iter().all(|e| e.mac != mac(8)));
    let (ports, vteps) = from_port(&s, NOW, PortId(1), &arp_request((mac(1), ip(1)), ip(8)));
    assert_eq!(
        (ports.len(), vteps),
        (1, vec![vtep(3)]),
        "flooded, not answered"
    );
}

#[test]
fn a_moved_endpoint_follows_its_new_advertisement() {
    let mut s = switch(true);
    let entry = |s: &Switch| {
        let e = s.fdb_entries(vni());
        assert_eq!(s.network(vni()).expect("n").fdb.pinned(), e.len());
        e.iter()
            .find(|e| e.mac == mac(9))
            .map(|e| (e.location, e.last_seen, e.pinned))
    };
    s.set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(2), NOW)
        .expect("installed");
    // The same advertisement again (a resync) changes nothing: not even the entry's time.
    assert!(s
        .set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(2), Timestamp(5_000))
        .expect("again"));
    assert_eq!(entry(&s), Some((Location::Vtep(vtep(2)), NOW, true)));
    s.set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(3), Timestamp(6_000))
        .expect("moved");
    assert_eq!(
        entry(&s),
        Some((Location::Vtep(vtep(3)), Timestamp(6_000), true))
    );
    let (_, vteps) = from_port(&s, NOW, PortId(1), &unicast(mac(9), mac(1)));
    assert_eq!(vteps, [vtep(3)]);
    // The address moved to another MAC: ARP answers with the new one, and the old MAC is
    // listed without it.
    s.set_remote_endpoint(vni(), mac(7), Some(ip(9)), vtep(2), NOW)
        .expect("installed");
    let (ports, _) = from_port(&s, NOW, PortId(1), &arp_request((mac(1), ip(1)), ip(9)));
    assert_eq!(&ports[0].1[6..12], &mac(7).0);
    let listed: Vec<_> = s
        .remote_endpoints(vni())
        .iter()
        .map(|e| (e.mac, e.ip, e.vtep))
        .collect();
    assert_eq!(
        listed,
        [(mac(7), Some(ip(9)), vtep(2)), (mac(9), None, vtep(3))]
    );
    // Removing the old MAC does not take the address's answer from the new one.
    s.remove_remote_endpoint(vni(), mac(9)).expect("network");
    let (ports, _) = from_port(&s, NOW, PortId(1), &arp_request((mac(1), ip(1)), ip(9)));
    assert_eq!(&ports[0].1[6..12], &mac(7).0);
}

#[test]
fn arp_for_a_known_address_is_answered_to_the_asker_alone() {
    let mut s = switch(true);
    s.set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(3), NOW)
        .expect("installed");
    let request = arp_request((mac(1), ip(1)), ip(9));
    let (ports, vteps) = from_port(&s, NOW, PortId(1), &request);
    assert!(vteps.is_empty(), "nothing crosses the underlay");
    let want = {
        let mut r = arp(2, (mac(9), ip(9)), (mac(1), ip(1)));
        r[..6].copy_from_slice(&mac(1).0);
        r
    };
    assert_eq!(ports, [(PortId(1), want)]);
    assert_eq!(s.arp_answered(vni()), 1);
    // A secured local port's address is answered too (from port 2, for port 1's address).
    let (ports, vteps) = from_port(&s, NOW, PortId(2), &arp_request((mac(2), ip(2)), ip(1)));
    assert!(vteps.is_empty());
    assert_eq!(ports.len(), 1);
    assert_eq!(
        (ports[0].0, &ports[0].1[22..28]),
        (PortId(2), &mac(1).0[..])
    );
    assert_eq!(s.arp_answered(vni()), 2);
    // Unknown addresses, gratuitous ARP, replies and a station asking for its own address
    // are not answered: they are flooded as before.
    for frame in [
        arp_request((mac(1), ip(1)), ip(50)),
        arp_request((mac(9), ip(9)), ip(9)),
        arp(2, (mac(1), ip(1)), (mac(9), ip(9))),
        arp_request((mac(9), ip(0)), ip(9)),
        // The owner asking, named by its Ethernet source only or by its ARP sender only.
        with_src(arp_request((mac(9), ip(0)), ip(9)), mac(5)),
        with_src(arp_request((mac(5), ip(0)), ip(9)), mac(9)),
    ] {
        let src = Mac(<[u8; 6]>::try_from(&frame[6..12]).expect("mac"));
        let port = if src == mac(1) { PortId(1) } else { PortId(2) };
        let (ports, vteps) = from_port(&s, NOW, port, &frame);
        assert!(ports.iter().all(|(_, f)| *f == frame), "{frame:02x?}");
        assert_eq!(vteps, [vtep(2), vtep(3)]);
    }
    assert_eq!(s.arp_answered(vni()), 2);
    // A unicast request (a kernel's reachability probe) is answered too.
    let mut probe = request.clone();
    probe[..6].copy_from_slice(&mac(9).0);
    let (ports, vteps) = from_port(&s, NOW, PortId(1), &probe);
    assert_eq!((ports.len(), vteps.len()), (1, 0));
    assert_eq!(s.arp_answered(vni()), 3);
    // A short ARP frame is not read past its end.
    let (ports, _) = from_port(&s, NOW, PortId(1), &request[..41]);
    assert!(ports.iter().all(|(_, f)| f.len() == 41));
}

#[test]
fn without_proxy_arp_requests_are_flooded() {
    let mut s = switch(false);
    s.set_remote_endpoint(vni(), mac(9), Some(ip(9)), vtep(3), NOW)
        .expect("installed");
    let request = arp_request((mac(1), ip(1)), ip(9));
    let (ports, vteps) = from_port(&s, NOW, PortId(1), &request);
    assert_eq!(ports, [(PortId(2), request)]);
    assert_eq!(vteps, [vtep(2), vtep(3)]);
    assert_eq!(s.arp_answered(vni()), 0);
}

#[test]
fn floods_go_only_to_the_flood_list() {
    let mut s = switch(false);
    let bcast = eth(Mac([0xff; 6]), mac(1), 0x88b5, &[0; 46]);
    assert_eq!(from_port(&s, NOW, PortId(1), &bcast).1, [vtep(2), vtep(3)]);
    assert_eq!(s.flood_list(vni()), [vtep(2), vtep(3)]);
    s.set_flood_list(vni(), Some(vec![vtep(3), vtep(99)]))
        .expect("network");
    let (ports, vteps) = from_port(&s, NOW, PortId(1), &bcast);
    assert_eq!(
        (ports.len(), vteps),
        (1, vec![vtep(3)]),
        "not to .2, nor a non-peer"
    );
    assert_eq!(s.flood_list(vni()), [vtep(3)]);
    // Unknown unicast too.
    assert_eq!(
        from_port(&s, NOW, PortId(1), &unicast(mac(42), mac(1))).1,
        [vtep(3)]
    );
    let tx = s.peer_traffic(vtep(2).0.ip()).expect("peer").tx_frames;
    assert_eq!(tx, 1, "only the first flood reached .2");
    s.set_flood_list(vni(), Some(vec![])).expect("network");
    assert!(from_port(&s, NOW, PortId(1), &bcast).1.is_empty());
    s.set_flood_list(vni(), None).expect("network");
    assert_eq!(from_port(&s, NOW, PortId(1), &bcast).1, [vtep(2), vtep(3)]);
    assert!(s.set_flood_list(Vni::new(8).expect("vni"), None).is_err());
}

#[test]
fn static_entries_are_neither_evicted_nor_counted_against_the_capacity() {
    let fdb = fdb(2);
    for n in 10..13 {
        assert!(fdb.pin(mac(n), vtep(2), NOW));
    }
    assert_eq!(
        fdb.learn(mac(1), Location::Port(PortId(1)), NOW),
        Learned::New
    );
    assert_eq!(
        fdb.learn(mac(2), Location::Port(PortId(1)), NOW),
        Learned::New
    );
    assert_eq!((fdb.len(), fdb.pinned()), (5, 3));
    let later = NOW.saturating_add(Duration::from_secs(1));
    assert_eq!(
        fdb.learn(mac(3), Location::Port(PortId(2)), later),
        Learned::NewEvicted
    );
    assert_eq!(fdb.lookup(mac(1), later), None, "a learned entry made room");
    assert!((10..13).all(|n| fdb.lookup(mac(n), later).is_some()));
    // Ageing leaves them too; flushing their VTEP and unpinning take them.
    fdb.age(NOW.saturating_add(Duration::from_secs(60)));
    assert_eq!((fdb.len(), fdb.pinned()), (3, 3));
    assert!(!fdb.unpin(mac(10), vtep(3)), "not static at .3");
    assert!(fdb.unpin(mac(10), vtep(2)));
    assert_eq!(fdb.flush(Location::Vtep(vtep(2))), 2);
    assert_eq!((fdb.len(), fdb.pinned()), (0, 0));
    // A station's MAC only.
    let mut s = switch(false);
    assert_eq!(
        s.set_remote_endpoint(vni(), Mac([0xff; 6]), None, vtep(2), NOW),
        Err(SwitchError::BadMac(Mac([0xff; 6])))
    );
}

/// A table with ten seconds of ageing and room for `capacity` learned entries.
fn fdb(capacity: usize) -> Fdb {
    Fdb::new(FdbConfig {
        ageing: Duration::from_secs(10),
        capacity,
    })
}

#[test]
fn pinning_replaces_what_the_mac_had_unless_a_live_port_holds_it() {
    let at = |s| NOW.saturating_add(Duration::from_secs(s));
    let port = Location::Port(PortId(1));
    let f = fdb(8);
    // Learned at a VTEP: pinning there makes it static (it no longer ages) and counts it once.
    f.learn(mac(1), Location::Vtep(vtep(2)), NOW);
    assert!(f.pin(mac(1), vtep(2), NOW));
    assert_eq!(f.pinned(), 1);
    f.age(at(60));
    assert_eq!(f.lookup(mac(1), at(60)), Some(Location::Vtep(vtep(2))));
    // Pinned elsewhere, it moves, and is still counted once.
    assert!(f.pin(mac(1), vtep(3), at(60)));
    assert_eq!(f.lookup(mac(1), at(60)), Some(Location::Vtep(vtep(3))));
    assert_eq!(f.pinned(), 1);
    // A fresh entry at another VTEP is no reason to refuse.
    f.learn(mac(2), Location::Vtep(vtep(2)), NOW);
    assert!(f.pin(mac(2), vtep(3), NOW));
    assert_eq!(f.lookup(mac(2), NOW), Some(Location::Vtep(vtep(3))));
    assert_eq!(f.pinned(), 2);
    // A live port keeps its MAC until the very instant its entry expires.
    f.learn(mac(3), port, NOW);
    assert!(!f.pin(mac(3), vtep(2), Timestamp(at(10).0 - 1)));
    assert_eq!(f.pinned(), 2);
    assert!(f.pin(mac(3), vtep(2), at(10)));
    assert_eq!(f.lookup(mac(3), at(10)), Some(Location::Vtep(vtep(2))));
    assert_eq!(f.pinned(), 3);
}

#[test]
fn a_port_entry_moves_to_a_vtep_from_the_instant_it_expires() {
    let f = fdb(8);
    let port = Location::Port(PortId(1));
    let peer = Location::Vtep(vtep(2));
    f.learn(mac(1), port, NOW);
    let expiry = NOW.saturating_add(Duration::from_secs(10));
    assert_eq!(
        f.learn(mac(1), peer, Timestamp(expiry.0 - 1)),
        Learned::Refused
    );
    assert_eq!(f.learn(mac(1), peer, expiry), Learned::Moved);
    assert_eq!(f.lookup(mac(1), expiry), Some(peer));
}

#[test]
fn a_port_taking_a_static_entry_over_evicts_only_when_the_learned_entries_fill_the_table() {
    let port = Location::Port(PortId(1));
    // Room for two learned entries. Beside the static one, one learned entry leaves room for the
    // takeover; two make it evict one first.
    for learned in [&[1][..], &[1, 3]] {
        let f = fdb(2);
        for &n in learned {
            f.learn(mac(n), port, NOW);
        }
        assert!(f.pin(mac(2), vtep(2), NOW));
        assert_eq!(
            f.learn(mac(2), Location::Port(PortId(2)), NOW),
            Learned::Moved
        );
        assert_eq!((f.len(), f.pinned()), (2, 0), "{learned:?} learned");
        if let [only] = learned {
            assert_eq!(f.lookup(mac(*only), NOW), Some(port), "nothing evicted");
        }
    }
}
