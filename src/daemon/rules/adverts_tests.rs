//! The advertisement rules, without a switch or a store: what a state asks for, and the changes
//! that get the switch there.

use std::net::{Ipv4Addr, SocketAddr};

use super::*;
use crate::core::{SwitchConfig, Timestamp};
use crate::store::{Advert, NetworkRecord};

fn vtep(last: u8) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(192, 0, 2, last).into(), 4789)
}

fn mac(n: u8) -> Mac {
    Mac([0x02, 0, 0, 0, 0, n])
}

fn blue() -> Vni {
    Vni::new(100).expect("vni")
}

fn advert(m: u8, ip: [u8; 4], host: u8) -> Advert {
    Advert {
        network: "blue".into(),
        ip: Ipv4Addr::from(ip),
        mac: mac(m),
        host: format!("h{host}"),
        vtep: vtep(host),
    }
}

/// Network blue (10.0.0.0/24); peers .2 and .3 from the registry and .9 static.
fn state(endpoints: Vec<Advert>) -> State {
    let mut s = State::empty();
    s.networks.push(NetworkRecord::plain(
        "blue",
        blue(),
        "10.0.0.0/24".parse().expect("cidr"),
    ));
    s.peers = vec![vtep(9), vtep(2), vtep(3)];
    s.cluster = Some(Cluster {
        hosts: vec![vtep(2), vtep(3)],
        endpoints,
    });
    s
}

#[test]
fn without_a_cluster_nothing_is_asked_and_what_was_installed_is_undone() {
    let mut plain = state(vec![]);
    plain.cluster = None;
    assert_eq!(desired(&plain, |_| true), None);
    let mut installed = Installed::default();
    installed
        .endpoints
        .insert((blue(), mac(1)), ([10, 0, 0, 1].into(), vtep(2)));
    installed.flood.insert(blue(), vec![vtep(2)]);
    let effects = changes(&installed, None);
    assert!(matches!(
        effects[..],
        [
            Effect::RemoveEndpoint { mac: m, .. },
            Effect::SetFlood { vteps: None, .. }
        ] if m == mac(1)
    ));
}

#[test]
fn floods_go_to_hosts_with_endpoints_and_to_static_peers() {
    let s = state(vec![advert(1, [10, 0, 0, 1], 2)]);
    let d = desired(&s, |_| true).expect("a cluster");
    assert_eq!(
        d.flood[&blue()],
        [vtep(2), vtep(9)],
        "not .3: no endpoint there"
    );
    assert_eq!(
        d.endpoints[&(blue(), mac(1))],
        (Ipv4Addr::new(10, 0, 0, 1), vtep(2))
    );
    assert!(d.ignored.is_empty());
    // A network this host cannot use (no key here) gets nothing.
    let d = desired(&s, |n| n != "blue").expect("a cluster");
    assert!(d.endpoints.is_empty() && d.flood.is_empty());
}

#[test]
fn unusable_advertisements_are_ignored_with_a_reason() {
    let mut other_net = advert(6, [10, 0, 0, 6], 2);
    other_net.network = "red".into();
    let mut dead = advert(7, [10, 0, 0, 7], 2);
    dead.vtep = vtep(50);
    let mut group = advert(8, [10, 0, 0, 8], 2);
    group.mac = Mac([0x01, 0, 0x5e, 0, 0, 1]);
    let s = state(vec![
        advert(1, [10, 0, 0, 1], 2),
        advert(1, [10, 0, 0, 2], 3),
        advert(2, [10, 0, 0, 1], 3),
        advert(3, [10, 9, 0, 1], 3),
        other_net,
        dead,
        group,
    ]);
    let d = desired(&s, |_| true).expect("a cluster");
    assert_eq!(d.endpoints.len(), 1, "{d:?}");
    let why = d.ignored.join("\n");
    for reason in [
        "a MAC already advertised",
        "an address already advertised",
        "an address outside the subnet",
        "unknown network 'red'",
        "a host that is not a peer",
        "a MAC no station can have",
    ] {
        assert!(why.contains(reason), "{reason} in:\n{why}");
    }
    assert_eq!(d.ignored.len(), 6);
}

#[test]
fn changes_are_the_difference_removals_first() {
    let before = desired(&state(vec![advert(1, [10, 0, 0, 1], 2)]), |_| true).expect("cluster");
    let mut installed = Installed::default();
    let mut sw = Switch::new(SwitchConfig::default());
    sw.add_network(blue()).expect("network");
    for p in [2, 3, 9] {
        sw.add_peer(Vtep(vtep(p))).expect("peer");
    }
    for e in changes(&installed, Some(&before)) {
        installed
            .apply(&mut sw, &e, Timestamp(0))
            .expect("an advert effect")
            .expect("applied");
    }
    assert!(
        changes(&installed, Some(&before)).is_empty(),
        "nothing left to do"
    );
    assert_eq!(sw.flood_list(blue()), [Vtep(vtep(2)), Vtep(vtep(9))]);
    // mac(1) moves to .3, mac(2) appears on .2 and goes again: one SetEndpoint for the move.
    let after = desired(&state(vec![advert(1, [10, 0, 0, 1], 3)]), |_| true).expect("cluster");
    let effects = changes(&installed, Some(&after));
    assert!(
        matches!(
            effects[..],
            [
                Effect::SetFlood { vteps: Some(ref v), .. },
                Effect::SetEndpoint { mac: m, vtep: t, .. }
            ] if m == mac(1) && t == vtep(3) && *v == [vtep(3), vtep(9)]
        ),
        "{effects:?}"
    );
    let gone = desired(&state(vec![]), |_| true).expect("cluster");
    let effects = changes(&installed, Some(&gone));
    assert!(
        matches!(effects[0], Effect::RemoveEndpoint { .. }),
        "{effects:?}"
    );
    // Effects for a network the switch no longer has: removals are fine, others are not.
    sw.remove_network(blue()).expect("no ports");
    let removals = [
        effects[0].clone(),
        Effect::SetFlood {
            vni: blue(),
            vteps: None,
        },
    ];
    for e in &removals {
        installed
            .apply(&mut sw, e, Timestamp(0))
            .expect("an advert effect")
            .expect("nothing to remove is fine");
    }
    assert_eq!(installed, Installed::default());
    let flood = Effect::SetFlood {
        vni: blue(),
        vteps: Some(vec![vtep(9)]),
    };
    assert!(matches!(
        installed.apply(&mut sw, &flood, Timestamp(0)),
        Some(Err(_))
    ));
    assert!(installed
        .apply(&mut sw, &Effect::AddPeer(vtep(4)), Timestamp(0))
        .is_none());
    let set = Effect::SetEndpoint {
        vni: blue(),
        mac: mac(1),
        ip: [10, 0, 0, 1].into(),
        vtep: vtep(2),
    };
    assert!(matches!(
        installed.apply(&mut sw, &set, Timestamp(0)),
        Some(Err(_))
    ));
}
