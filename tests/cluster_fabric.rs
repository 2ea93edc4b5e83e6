//! Cluster mode without root: three hosts' rules over one shared in-memory store
//! (`MemoryStore::join`), their switches on the simulated fabric. Address claims are the
//! endpoint advertisements; each host turns what its watch shows into switch calls through the
//! same rules the daemon uses (`rules::reconcile`, `rules::adverts`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use tokio::sync::mpsc::Receiver;
use vswitch::core::{Location, PortId, SwitchConfig, Vtep};
use vswitch::daemon::rules::{self, adverts::Installed, Effect, View};
use vswitch::sim::{frame, host_addr, Fabric};
use vswitch::store::{AddressHolder, MemoryStore, NetworkRecord, Snapshot, State, StateStore};
use vswitch::wire::{Mac, Vni};

const BLUE: Vni = match Vni::new(100) {
    Ok(v) => v,
    Err(_) => panic!(),
};

fn mac(n: u8) -> Mac {
    Mac([0x02, 0, 0, 0, 0, n])
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// One host's daemon, reduced to its rules: what it knows and what its switch has.
struct Member {
    store: MemoryStore,
    watch: Receiver<Snapshot>,
    state: State,
    installed: Installed,
    ignored: usize,
}

struct Cluster {
    fabric: Fabric,
    members: Vec<Member>,
    store: MemoryStore,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

impl Cluster {
    /// Three hosts with network blue (10.0.0.0/24), proxy ARP on, one container port each
    /// (port h+1 on host h, not yet advertised).
    fn new() -> Cluster {
        let store = MemoryStore::new();
        let mut state = State::empty();
        state.networks.push(NetworkRecord::plain(
            "blue",
            BLUE,
            "10.0.0.0/24".parse().expect("cidr"),
        ));
        store.external_write(state);
        let mut fabric = Fabric::full_mesh(
            3,
            SwitchConfig {
                proxy_arp: true,
                ..SwitchConfig::default()
            },
        );
        fabric.add_network_everywhere(BLUE);
        let members: Vec<Member> = (0..3)
            .map(|h| {
                let store = store.join(NAMES[h], host_addr(h));
                let watch = store.watch().expect("watchable");
                Member {
                    store,
                    watch,
                    state: State::empty(),
                    installed: Installed::default(),
                    ignored: 0,
                }
            })
            .collect();
        for h in 0..3 {
            fabric.attach(h, PortId(h as u32 + 1), BLUE);
        }
        let mut c = Cluster {
            fabric,
            members,
            store,
        };
        for m in &mut c.members {
            m.state = block(m.store.load()).expect("load").state;
        }
        c.sync();
        c
    }

    /// Every host applies what its watch showed, as the daemon's `adopt` does.
    fn sync(&mut self) {
        let ports = BTreeMap::new();
        for (h, m) in self.members.iter_mut().enumerate() {
            let mut latest = None;
            while let Ok(s) = m.watch.try_recv() {
                latest = Some(s);
            }
            let Some(snapshot) = latest else { continue };
            let sw = &mut self.fabric.hosts[h].switch;
            let view = View {
                state: &m.state,
                ports: &ports,
                underlay_mtu: 1500,
                egress: Default::default(),
            };
            for effect in rules::reconcile(view, &snapshot.state) {
                match effect {
                    Effect::AddPeer(a) => sw.add_peer(Vtep(a)).expect("new peer"),
                    Effect::RemovePeer(a) => {
                        sw.remove_peer(a.ip()).expect("known peer");
                    }
                    other => panic!("host {h}: unexpected {other:?}"),
                }
            }
            m.state = snapshot.state;
            let desired = rules::adverts::desired(&m.state, |_| true);
            m.ignored = desired.as_ref().map_or(0, |d| d.ignored.len());
            for effect in rules::adverts::changes(&m.installed, desired.as_ref()) {
                m.installed
                    .apply(sw, &effect, self.fabric.now)
                    .expect("an advertisement effect")
                    .expect("applied");
            }
        }
    }

    /// Host `h`'s container advertises itself (attach claims its address).
    fn claim(&mut self, h: usize, m: Mac, addr: Ipv4Addr) {
        let holder = AddressHolder {
            host: NAMES[h].into(),
            netns: format!("c{h}"),
            ifname: "eth0".into(),
            mac: m,
            names: vec![],
        };
        block(self.members[h].store.claim_address("blue", addr, holder)).expect("claimed");
        self.sync();
    }

    fn release(&mut self, h: usize, addr: Ipv4Addr) {
        block(self.members[h].store.release_address("blue", addr)).expect("released");
        self.sync();
    }

    /// Where host `h`'s datagrams went during `f`: the underlay destinations.
    fn underlay_after(&mut self, f: impl FnOnce(&mut Fabric)) -> Vec<usize> {
        self.fabric.take();
        f(&mut self.fabric);
        let (_, underlay) = self.fabric.take();
        underlay
            .iter()
            .map(|d| (0..3).find(|&i| host_addr(i) == d.to).expect("a host"))
            .collect()
    }
}

fn arp_request(from: (Mac, Ipv4Addr), wanted: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    p.extend_from_slice(&from.0 .0);
    p.extend_from_slice(&from.1.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&wanted.octets());
    frame(Mac([0xff; 6]), from.0, 0x0806, &p)
}

fn unicast(dst: Mac, src: Mac) -> Vec<u8> {
    frame(dst, src, 0x88b5, &[0x5a; 46])
}

fn broadcast(src: Mac) -> Vec<u8> {
    frame(Mac([0xff; 6]), src, 0x88b5, &[0x5a; 46])
}

#[test]
fn advertised_endpoints_need_no_arp_nor_flood_across_hosts_and_follow_a_move() {
    let mut c = Cluster::new();
    // Before anyone advertises, a network with no remote endpoints floods nowhere remote.
    assert!(c
        .underlay_after(|f| f.send(0, PortId(1), &broadcast(mac(1))))
        .is_empty());
    c.claim(0, mac(1), ip(1));
    c.claim(1, mac(2), ip(2));

    // ARP from host a's container for b's address: answered on host a, nothing on the
    // underlay.
    let sent = c.underlay_after(|f| f.send(0, PortId(1), &arp_request((mac(1), ip(1)), ip(2))));
    assert!(sent.is_empty(), "ARP crossed the underlay to {sent:?}");
    let (delivered, _) = c.fabric.take();
    assert_eq!(delivered.len(), 0, "taken by underlay_after");
    c.fabric
        .send(0, PortId(1), &arp_request((mac(1), ip(1)), ip(2)));
    let (delivered, _) = c.fabric.take();
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].host, delivered[0].port), (0, PortId(1)));
    assert_eq!(
        &delivered[0].frame[22..28],
        &mac(2).0,
        "b's MAC in the reply"
    );
    assert_eq!(c.fabric.hosts[0].switch.arp_answered(BLUE), 2);

    // The first unicast frame to b goes to b alone: c sees no copy.
    assert_eq!(
        c.underlay_after(|f| f.send(0, PortId(1), &unicast(mac(2), mac(1)))),
        [1]
    );
    // Broadcasts go to the hosts with endpoints on the network: b, not c.
    assert_eq!(
        c.underlay_after(|f| f.send(0, PortId(1), &broadcast(mac(1)))),
        [1]
    );
    assert_eq!(
        c.underlay_after(|f| f.send(1, PortId(2), &broadcast(mac(2)))),
        [0]
    );

    // The container moves from b to c, same MAC and address.
    c.fabric.hosts[1]
        .switch
        .remove_port(PortId(2))
        .expect("detached");
    c.release(1, ip(2));
    c.claim(2, mac(2), ip(2));
    for h in [0, 1] {
        assert_eq!(
            c.fabric.hosts[h]
                .switch
                .network(BLUE)
                .expect("blue")
                .fdb
                .lookup(mac(2), c.fabric.now),
            Some(Location::Vtep(Vtep(host_addr(2)))),
            "host {h} follows the move"
        );
    }
    assert_eq!(
        c.underlay_after(|f| f.send(0, PortId(1), &unicast(mac(2), mac(1)))),
        [2]
    );
    assert_eq!(
        c.underlay_after(|f| f.send(0, PortId(1), &broadcast(mac(1)))),
        [2]
    );
    c.fabric
        .send(0, PortId(1), &arp_request((mac(1), ip(1)), ip(2)));
    let (delivered, underlay) = c.fabric.take();
    assert!(underlay.is_empty());
    assert_eq!(&delivered[0].frame[22..28], &mac(2).0);

    // Host c dies: after its lease, it is gone from a's peers, FDB and flood list.
    c.store.kill("c");
    c.sync();
    let sw = &c.fabric.hosts[0].switch;
    assert!(sw.peers().all(|p| p != Vtep(host_addr(2))));
    assert!(sw.fdb_entries(BLUE).iter().all(|e| e.mac != mac(2)));
    assert!(sw.remote_endpoints(BLUE).is_empty());
    assert_eq!(sw.flood_list(BLUE), []);
    assert!(c
        .underlay_after(|f| f.send(0, PortId(1), &broadcast(mac(1))))
        .is_empty());
    assert!(c.members[0].installed.endpoints.is_empty());
}

#[test]
fn unusable_advertisements_are_ignored_and_counted() {
    let mut c = Cluster::new();
    c.claim(1, Mac([0x01, 0, 0x5e, 0, 0, 1]), ip(7)); // a multicast MAC
    c.claim(1, mac(2), Ipv4Addr::new(10, 9, 0, 1)); // outside the subnet
    c.claim(1, mac(3), ip(3));
    c.claim(2, mac(3), ip(4)); // the same MAC from another host
    assert_eq!(c.members[0].ignored, 3);
    let sw = &c.fabric.hosts[0].switch;
    let installed: Vec<Mac> = sw.remote_endpoints(BLUE).iter().map(|e| e.mac).collect();
    assert_eq!(installed, [mac(3)]);
    assert_eq!(sw.fdb_entries(BLUE).len(), 1);
}
