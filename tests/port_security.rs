//! Port security, MAC-move protection and storm control on the simulated fabric: a container
//! cannot take another's traffic by sending with its MAC, and cannot flood the overlay.

use std::net::Ipv4Addr;

use vswitch::core::{DropReason, Location, PortId, PortSecurity, SwitchConfig};
use vswitch::sim::{frame, Fabric};
use vswitch::wire::{EtherType, Mac, Vni};

const NET: Vni = match Vni::new(100) {
    Ok(v) => v,
    Err(_) => panic!(),
};

fn mac(n: u8) -> Mac {
    Mac([2, 0, 0, 0, 0, n])
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// An IPv4 frame from `src` (MAC `n`, address 10.0.0.`from`) to MAC `dst`.
fn ipv4(dst: Mac, src: Mac, from: Ipv4Addr) -> Vec<u8> {
    let mut l3 = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
    l3.extend_from_slice(&from.octets());
    l3.extend_from_slice(&[10, 0, 0, 99]);
    l3.resize(46, 0);
    frame(dst, src, EtherType::IPV4, &l3)
}

/// Two hosts; host 0 has containers 1 and 3, host 1 has container 2; every port secured with
/// MAC `n` and address 10.0.0.`n`.
fn fabric(config: SwitchConfig) -> Fabric {
    let mut f = Fabric::full_mesh(2, config);
    f.add_network_everywhere(NET);
    for (host, n) in [(0, 1), (1, 2), (0, 3)] {
        f.attach(host, PortId(u32::from(n)), NET);
        f.hosts[host]
            .switch
            .set_port_security(
                PortId(u32::from(n)),
                Some(PortSecurity {
                    mac: mac(n),
                    ipv4: vec![ip(n)],
                    ipv6: vec![],
                }),
            )
            .expect("port exists");
    }
    f
}

fn drops(f: &Fabric, host: usize, port: u32, reason: DropReason) -> u64 {
    f.hosts[host]
        .switch
        .port_traffic(PortId(port))
        .and_then(|t| t.drops.get(reason.name()).copied())
        .unwrap_or(0)
}

#[test]
fn a_container_cannot_steal_another_ones_traffic_by_spoofing_its_mac() {
    let mut f = fabric(SwitchConfig::default());
    // Containers 1 and 2 talk; the switch learns where they are.
    f.send(0, PortId(1), &ipv4(Mac::BROADCAST, mac(1), ip(1)));
    f.send(1, PortId(2), &ipv4(mac(1), mac(2), ip(2)));
    f.take();
    // Container 3 sends as container 1: dropped at its port, counted there.
    for _ in 0..5 {
        f.send(0, PortId(3), &ipv4(Mac::BROADCAST, mac(1), ip(1)));
    }
    let (delivered, underlay) = f.take();
    assert!(delivered.is_empty() && underlay.is_empty());
    assert_eq!(drops(&f, 0, 3, DropReason::PortSecurity), 5);
    // And traffic for container 1 still reaches container 1.
    f.send(1, PortId(2), &ipv4(mac(1), mac(2), ip(2)));
    let (delivered, _) = f.take();
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].host, delivered[0].port), (0, PortId(1)));
    // Its own MAC with someone else's address is refused too.
    f.send(0, PortId(3), &ipv4(Mac::BROADCAST, mac(3), ip(1)));
    assert_eq!(drops(&f, 0, 3, DropReason::PortSecurity), 6);
    f.send(0, PortId(3), &ipv4(Mac::BROADCAST, mac(3), ip(3)));
    assert_eq!(f.take().0.len(), 2, "as itself it is heard");
}

#[test]
fn without_port_security_a_mac_still_does_not_leave_a_live_local_port() {
    let mut f = fabric(SwitchConfig::default());
    f.hosts[0]
        .switch
        .set_port_security(PortId(3), None)
        .expect("port exists");
    f.send(0, PortId(1), &ipv4(Mac::BROADCAST, mac(1), ip(1)));
    f.take();
    f.send(0, PortId(3), &ipv4(Mac::BROADCAST, mac(1), ip(1)));
    let (delivered, underlay) = f.take();
    assert!(delivered.is_empty() && underlay.is_empty(), "{delivered:?}");
    assert_eq!(drops(&f, 0, 3, DropReason::MacConflict), 1);
    let at = f.hosts[0]
        .switch
        .network(NET)
        .and_then(|n| n.fdb.lookup(mac(1), f.now));
    assert_eq!(at, Some(Location::Port(PortId(1))), "not moved");
    // Once its port is gone, the MAC may live elsewhere.
    f.hosts[0].switch.remove_port(PortId(1)).expect("detach");
    f.send(0, PortId(3), &ipv4(Mac::BROADCAST, mac(1), ip(1)));
    let at = f.hosts[0]
        .switch
        .network(NET)
        .and_then(|n| n.fdb.lookup(mac(1), f.now));
    assert_eq!(at, Some(Location::Port(PortId(3))));
}

#[test]
fn a_broadcast_storm_is_cut_to_the_port_rate() {
    let config = SwitchConfig {
        storm_pps: 100,
        ..SwitchConfig::default()
    };
    let mut f = fabric(config);
    for _ in 0..1000 {
        f.send(0, PortId(1), &ipv4(Mac::BROADCAST, mac(1), ip(1)));
    }
    let (_, underlay) = f.take();
    // A burst of twice the rate crosses; the rest is dropped at the port.
    assert_eq!(underlay.len(), 200);
    assert_eq!(drops(&f, 0, 1, DropReason::StormControl), 800);
    // Unicast is not limited.
    f.send(1, PortId(2), &ipv4(Mac::BROADCAST, mac(2), ip(2)));
    f.take();
    for _ in 0..1000 {
        f.send(0, PortId(1), &ipv4(mac(2), mac(1), ip(1)));
    }
    assert_eq!(f.take().1.len(), 1000);
    // A second later the port may broadcast again.
    f.advance(std::time::Duration::from_secs(1));
    f.take();
    f.send(0, PortId(1), &ipv4(Mac::BROADCAST, mac(1), ip(1)));
    assert_eq!(f.take().1.len(), 1);
}
