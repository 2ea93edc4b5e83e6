//! Every rule and every refusal, without root: a `View` built by hand, facts passed in.

use super::*;
use crate::control::AttachRequest;
use crate::core::seal::KEY_LEN;
use crate::wire::Mac;

const UNDERLAY: u32 = 1500;
/// This host's own addresses (its underlay address and loopback).
const OWN: &[std::net::IpAddr] = &[
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
];

fn vni(n: u32) -> Vni {
    Vni::new(n).expect("vni")
}

fn spec(name: &str, n: u32, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        vni: vni(n),
        subnet: subnet.parse().expect("cidr"),
        gateway: None,
        mtu: None,
        encrypted: false,
        key_file: None,
        internal: false,
    }
}

fn record(name: &str, n: u32, subnet: &str) -> NetworkRecord {
    let s = spec(name, n, subnet);
    NetworkRecord {
        name: s.name,
        vni: s.vni,
        subnet: s.subnet,
        gateway: s.gateway,
        mtu: s.mtu,
        encrypted: false,
        key_file: None,
        key_check: None,
        internal: false,
    }
}

fn ns(ino: u64) -> NsId {
    NsId { dev: 4, ino }
}

fn port(network: &str, netns: &str, ino: u64, ip: &str, mac: u8) -> PortRecord {
    PortRecord {
        info: PortInfo {
            port: 0,
            network: network.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            mac: Mac([2, 0, 0, 0, 0, mac]),
            ip: Some(ip.into()),
            mtu: 1450,
            port_security: true,
            names: vec![netns.into()],
            container_id: None,
            egress: None,
        },
        ns: ns(ino),
    }
}

/// A host with networks blue (VNI 100, 10.10.0.0/24) and red (200, 10.20.0.0/24), one peer,
/// and one container (netns c1) on blue at 10.10.0.1.
struct World {
    state: State,
    ports: BTreeMap<PortId, PortRecord>,
    egress: super::egress::Egress,
}

impl World {
    fn new() -> World {
        let mut state = State::empty();
        state.networks.push(record("blue", 100, "10.10.0.0/24"));
        state.networks.push(record("red", 200, "10.20.0.0/24"));
        state.peers.push("192.0.2.2:4789".parse().expect("addr"));
        let mut ports = BTreeMap::new();
        ports.insert(PortId(1), port("blue", "c1", 11, "10.10.0.1/24", 1));
        World {
            state,
            ports,
            egress: Default::default(),
        }
    }

    fn view(&self) -> View<'_> {
        View {
            state: &self.state,
            ports: &self.ports,
            underlay_mtu: UNDERLAY,
            egress: self.egress,
        }
    }
}

fn no_key(_: &Path) -> Result<NetworkKey, KeyFileError> {
    panic!("the key file must not be read for this request")
}

fn saved(effects: &[Effect]) -> &State {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Save(s) => Some(s),
            _ => None,
        })
        .expect("the decision saves the state")
}

// ---- network create / rm / rotate-key

#[test]
fn create_adds_to_the_switch_then_saves() {
    let w = World::new();
    let d = network_create(w.view(), spec("green", 300, "10.30.0.0/24"), no_key).expect("ok");
    assert_eq!(d.reply.name, "green");
    assert!(matches!(
        d.effects.as_slice(),
        [Effect::AddNetwork { vni: v, key: KeySource::Plain, .. }, Effect::Save(_)] if v.get() == 300
    ));
    assert_eq!(saved(&d.effects).networks.len(), 3);
    assert_eq!(w.view().mtu(&d.reply), 1450, "1500 - 50");
}

/// Cluster mode: a host without the key of an encrypted network another host created installs
/// it with the same definition; a different definition is "exists", and nothing is saved.
#[test]
fn join_installs_the_key_of_an_identical_encrypted_network_and_saves_nothing() {
    let mut w = World::new();
    let mut stored = record("sec", 300, "10.30.0.0/24");
    stored.encrypted = true;
    w.state.networks.push(stored);
    let mut s = spec("sec", 300, "10.30.0.0/24");
    s.encrypted = true;
    s.key_file = Some("/k".into());
    let d = network_join(w.view(), s.clone(), |_| {
        Ok(NetworkKey::from_bytes([2; KEY_LEN]))
    })
    .expect("joins");
    assert!(matches!(
        d.effects.as_slice(),
        [
            Effect::PutKey { network, .. },
            Effect::AddNetwork { key: KeySource::Given(_), vni: v, .. },
        ] if network == "sec" && v.get() == 300
    ));
    let mut other = s.clone();
    other.vni = vni(301);
    assert!(matches!(
        network_join(w.view(), other, no_key),
        Err(RequestError::NetworkExists(n)) if n == "sec"
    ));
    let mut plain = s;
    plain.encrypted = false;
    plain.key_file = None;
    assert!(matches!(
        network_join(w.view(), plain, no_key),
        Err(RequestError::NetworkExists(_))
    ));
}

#[test]
fn create_encrypted_stores_the_key_before_adding_the_network() {
    let w = World::new();
    let mut s = spec("sec", 300, "10.30.0.0/24");
    s.encrypted = true;
    s.key_file = Some("/k".into());
    let d = network_create(w.view(), s, |p| {
        assert_eq!(p, Path::new("/k"));
        Ok(NetworkKey::from_bytes([1; KEY_LEN]))
    })
    .expect("ok");
    assert!(matches!(
        d.effects.as_slice(),
        [
            Effect::PutKey { network, .. },
            Effect::AddNetwork { key: KeySource::Given(_), .. },
            Effect::Save(_)
        ] if network == "sec"
    ));
    assert_eq!(w.view().mtu(&d.reply), 1414, "1500 - 50 - 36");
}

#[test]
fn create_refusals_name_the_problem() {
    let w = World::new();
    let refuse = |s: NetworkSpec| {
        network_create(w.view(), s, |_| {
            Err(KeyFileError::NotRegular { path: "/k".into() })
        })
        .expect_err("refused")
        .to_string()
    };
    assert!(refuse(spec("bad name", 300, "10.30.0.0/24")).contains("not a valid network name"));
    assert!(refuse(spec(&"x".repeat(65), 300, "10.30.0.0/24")).contains("not a valid"));
    assert!(refuse(spec("blue", 300, "10.30.0.0/24")).contains("already exists"));
    assert!(refuse(spec("green", 100, "10.30.0.0/24"))
        .contains("VNI 100 is already used by network 'blue'"));
    let mut s = spec("green", 300, "10.30.0.0/24");
    s.gateway = Some("10.31.0.1".parse().expect("ip"));
    assert!(refuse(s).contains("gateway: 10.31.0.1 is outside"));
    let mut s = spec("green", 300, "10.30.0.0/24");
    s.encrypted = true;
    assert!(refuse(s).contains("--encrypted and --key-file go together"));
    let mut s = spec("green", 300, "10.30.0.0/24");
    s.encrypted = true;
    s.key_file = Some("/k".into());
    assert!(refuse(s).contains("not a regular file"));
    let mut s = spec("green", 300, "10.30.0.0/24");
    s.mtu = Some(1451);
    assert_eq!(
        refuse(s),
        "MTU 1451 does not fit: the underlay MTU 1500 leaves at most 1450 for containers"
    );
    let mut s = spec("green", 300, "10.30.0.0/24");
    s.mtu = Some(67);
    assert!(refuse(s).contains("below the IPv4 minimum"));
}

#[test]
fn remove_saves_first_and_refuses_a_network_with_ports() {
    let w = World::new();
    let d = network_remove(w.view(), "red").expect("ok");
    assert!(matches!(
        d.effects.as_slice(),
        [Effect::Save(s), Effect::RemoveNetwork { vni: v }] if s.networks.len() == 1 && v.get() == 200
    ));
    let e = network_remove(w.view(), "blue")
        .expect_err("has ports")
        .to_string();
    assert_eq!(
        e,
        "network 'blue' still has ports: c1 (eth0); detach them first (vswitch detach NETNS --network blue)"
    );
    let e = network_remove(w.view(), "nope")
        .expect_err("unknown")
        .to_string();
    assert_eq!(e, "no network named 'nope' (networks: blue, red)");
}

#[test]
fn removing_an_encrypted_network_forgets_its_key() {
    let mut w = World::new();
    w.state.networks[1].encrypted = true;
    let d = network_remove(w.view(), "red").expect("ok");
    assert!(matches!(
        d.effects.last(),
        Some(Effect::ForgetKey { network }) if network == "red"
    ));
}

#[test]
fn rotate_key_stores_the_key_then_rotates_towards_every_peer() {
    let mut w = World::new();
    w.state.networks[1].encrypted = true;
    let d = rotate_key(w.view(), "red", || Ok(NetworkKey::from_bytes([3; KEY_LEN]))).expect("ok");
    assert_eq!(d.reply.get(), 200);
    assert!(matches!(
        d.effects.as_slice(),
        [Effect::PutKey { .. }, Effect::Save(_), Effect::RotateKey { peers, .. }] if peers == &w.state.peers
    ));
    let e = rotate_key(w.view(), "blue", || panic!("not read")).expect_err("plain");
    assert!(e.to_string().contains("not encrypted"), "{e}");
    let e = rotate_key(w.view(), "nope", || panic!("not read")).expect_err("unknown");
    assert!(e.to_string().contains("no network named 'nope'"), "{e}");
}

// ---- attach / detach

fn req(netns: &str, network: Option<&str>) -> AttachRequest {
    AttachRequest {
        netns: netns.into(),
        network: network.map(Into::into),
        ip: None,
        prefix: None,
        mac: None,
        ifname: None,
        no_port_security: false,
        name: None,
        aliases: Vec::new(),
        no_dns: false,
        container_id: None,
        handoff: false,
    }
}

fn facts(ino: u64) -> NetnsFacts {
    NetnsFacts {
        id: ns(ino),
        ifname_taken: false,
    }
}

const MAC: Mac = Mac([2, 0, 0, 0, 0, 0x42]);

#[test]
fn attach_picks_the_next_free_address_and_skips_conflicts() {
    let w = World::new();
    let mut plan = attach_check(w.view(), &req("c2", Some("blue")), facts(12), MAC).expect("ok");
    assert_eq!(plan.mac, MAC);
    assert_eq!(plan.candidate().expect("free").to_string(), "10.10.0.2");
    let stranger = Mac([2, 0, 0, 0, 0, 0x99]);
    let claim = plan
        .conflict(&w.view(), "10.10.0.2".parse().expect("ip"), stranger)
        .expect("skipped");
    assert_eq!(claim, Claim::Skip);
    let ip = plan.candidate().expect("free");
    assert_eq!(ip.to_string(), "10.10.0.3");
    let d = attach_commit(w.view(), plan, ip, PortId(7));
    assert_eq!(d.reply.ip.as_deref(), Some("10.10.0.3/24"));
    assert_eq!((d.reply.port, d.reply.mtu), (7, 1450));
    let [Effect::CreateTap { id, name }, Effect::MoveTap { config, .. }, Effect::AddPort { vni: v, .. }, Effect::StartPort { .. }, Effect::RecordPort { record, .. }, Effect::Announce {
        mac, ip: announced, ..
    }] = d.effects.as_slice()
    else {
        panic!(
            "create, move, add, start, record, announce: {:?}",
            d.effects
        )
    };
    assert_eq!(
        (*mac, *announced),
        (MAC, ip),
        "a gratuitous ARP from the new address"
    );
    assert_eq!(
        (*id, name.as_str(), v.get(), record.ns),
        (PortId(7), "vsw7", 100, ns(12))
    );
    assert_eq!(config.address, Some(("10.10.0.3".parse().expect("ip"), 24)));
    let Some(Effect::AddPort {
        security: Some(sec),
        ..
    }) = d.effects.get(2)
    else {
        panic!("a secured port: {:?}", d.effects)
    };
    assert_eq!(
        (sec.mac, sec.ipv4.as_slice()),
        (MAC, &["10.10.0.3".parse().expect("ip")][..])
    );
    assert!(d.reply.port_security);
    assert_eq!((config.mtu, config.mac), (1450, MAC.0));
}

#[test]
fn a_requested_address_in_conflict_is_refused_with_its_owner() {
    let w = World::new();
    let mut r = req("c2", Some("blue"));
    r.ip = Some("10.10.0.9".parse().expect("ip"));
    let mut plan = attach_check(w.view(), &r, facts(12), MAC).expect("ok");
    assert_eq!(plan.candidate().expect("ip").to_string(), "10.10.0.9");
    let e = plan
        .conflict(
            &w.view(),
            "10.10.0.9".parse().expect("ip"),
            Mac([2, 0, 0, 0, 0, 9]),
        )
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        "10.10.0.9 is already in use on the overlay (by MAC 02:00:00:00:00:09)"
    );
}

#[test]
fn a_full_subnet_says_so() {
    let mut w = World::new();
    w.state.networks.push(record("tiny", 300, "10.30.0.0/30"));
    w.ports
        .insert(PortId(2), port("tiny", "a", 21, "10.30.0.1/30", 2));
    w.ports
        .insert(PortId(3), port("tiny", "b", 22, "10.30.0.2/30", 3));
    let plan = attach_check(w.view(), &req("c", Some("tiny")), facts(23), MAC).expect("ok");
    assert_eq!(
        plan.candidate().expect_err("full").to_string(),
        "network 'tiny' has no free address left in 10.30.0.0/30"
    );
}

#[test]
fn attach_refusals_name_the_problem() {
    let w = World::new();
    let refuse = |r: &AttachRequest, f: NetnsFacts| {
        attach_check(w.view(), r, f, MAC)
            .expect_err("refused")
            .to_string()
    };
    assert!(refuse(&req("c2", None), facts(12)).contains("several networks exist (blue, red)"));
    assert!(refuse(&req("c2", Some("x")), facts(12)).contains("no network named 'x'"));
    assert_eq!(
        refuse(&req("c1again", Some("blue")), facts(11)),
        "namespace 'c1again' is already attached to network 'blue' (as eth0)"
    );
    let taken = NetnsFacts {
        id: ns(12),
        ifname_taken: true,
    };
    assert!(refuse(&req("c2", Some("blue")), taken).contains("pick another with --ifname"));
    let mut r = req("c2", Some("blue"));
    r.ip = Some("10.10.0.1".parse().expect("ip"));
    assert!(refuse(&r, facts(12)).contains("10.10.0.1 is already taken on network 'blue'"));
    r.ip = Some("10.99.0.1".parse().expect("ip"));
    assert!(refuse(&r, facts(12)).contains("outside the network's subnet"));
    r.ip = Some("10.10.0.255".parse().expect("ip"));
    assert!(refuse(&r, facts(12)).contains("broadcast"));
    r.ip = Some("10.10.0.5".parse().expect("ip"));
    r.prefix = Some(16);
    assert_eq!(
        refuse(&r, facts(12)),
        "10.10.0.5/16 does not match the network's subnet 10.10.0.0/24: use /24"
    );
    let mut r = req("c2", Some("blue"));
    r.mac = Some(Mac([2, 0, 0, 0, 0, 1]));
    assert!(refuse(&r, facts(12)).contains("MAC 02:00:00:00:00:01 is already used"));

    let empty = State::empty();
    let none = BTreeMap::new();
    let view = View {
        state: &empty,
        ports: &none,
        underlay_mtu: UNDERLAY,
        egress: Default::default(),
    };
    let e = attach_check(view, &req("c", None), facts(1), MAC).expect_err("no networks");
    assert!(e.to_string().contains("vswitch network create"), "{e}");
}

#[test]
fn attach_without_network_uses_the_only_one() {
    let mut w = World::new();
    w.state.networks.truncate(1);
    let plan = attach_check(w.view(), &req("c2", None), facts(12), MAC).expect("ok");
    assert_eq!(plan.network.name, "blue");
}

#[test]
fn a_gateway_is_never_handed_out_and_becomes_the_default_route() {
    let mut w = World::new();
    w.state.networks[1].gateway = Some("10.20.0.1".parse().expect("ip"));
    let plan = attach_check(w.view(), &req("c2", Some("red")), facts(12), MAC).expect("ok");
    let ip = plan.candidate().expect("free");
    assert_eq!(ip.to_string(), "10.20.0.2");
    let d = attach_commit(w.view(), plan, ip, PortId(2));
    let Some(Effect::MoveTap { config, .. }) = d.effects.get(1) else {
        panic!("a move: {:?}", d.effects)
    };
    assert_eq!(config.gateway, Some("10.20.0.1".parse().expect("ip")));
}

#[test]
fn detach_finds_the_ports_of_a_namespace() {
    let mut w = World::new();
    w.ports
        .insert(PortId(2), port("red", "c1", 11, "10.20.0.1/24", 2));
    let d = detach(w.view(), "c1", ns(11), Some("red")).expect("ok");
    assert!(matches!(
        d.effects.as_slice(),
        [Effect::DetachPort(PortId(2))]
    ));
    assert_eq!(d.reply[0].network, "red");
    let e = detach(w.view(), "c1", ns(11), None).expect_err("two");
    assert!(e.to_string().contains("several networks"), "{e}");
    let e = detach(w.view(), "c9", ns(99), None).expect_err("none");
    assert_eq!(
        e.to_string(),
        "namespace 'c9' is not attached to any network"
    );
    let e = detach(w.view(), "c9", ns(99), Some("blue")).expect_err("none");
    assert_eq!(
        e.to_string(),
        "namespace 'c9' is not attached to network 'blue'"
    );
    let e = detach(w.view(), "c1", ns(11), Some("x")).expect_err("unknown network");
    assert!(e.to_string().contains("no network named 'x'"), "{e}");
}

// ---- peers and startup

#[test]
fn peers_are_added_and_removed_by_ip() {
    let w = World::new();
    let new: SocketAddr = "192.0.2.3:4789".parse().expect("addr");
    let d = peer_add(w.view(), new, OWN).expect("ok");
    assert!(
        matches!(d.effects.as_slice(), [Effect::AddPeer(a), Effect::Save(s)] if *a == new && s.peers.len() == 2)
    );
    let e = peer_add(w.view(), "192.0.2.2:5000".parse().expect("addr"), OWN).expect_err("dup");
    assert_eq!(
        e.to_string(),
        "peer 192.0.2.2 already exists (as 192.0.2.2:4789)"
    );
    let d = peer_remove(w.view(), "192.0.2.2:4789".parse().expect("addr")).expect("ok");
    assert!(
        matches!(d.effects.as_slice(), [Effect::Save(s), Effect::RemovePeer(_)] if s.peers.is_empty())
    );
    let e = peer_remove(w.view(), new).expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "no peer 192.0.2.3:4789 (peers: 192.0.2.2:4789)"
    );
}

#[test]
fn ipv6_and_port_zero_peers_are_refused_by_the_daemon_itself() {
    let w = World::new();
    let v6: SocketAddr = "[2001:db8::1]:4789".parse().expect("addr");
    let e = peer_add(w.view(), v6, OWN).expect_err("v6");
    assert!(
        e.to_string().contains("IPv6 underlays are not supported"),
        "{e}"
    );
    let e = peer_add(w.view(), "192.0.2.9:0".parse().expect("addr"), OWN).expect_err("port 0");
    assert!(e.to_string().contains("port 0"), "{e}");
    assert!(
        startup(State::empty(), &[v6], OWN).is_err(),
        "--peer [v6] refused at start"
    );
    let mut stored = State::empty();
    stored.peers.push(v6);
    assert!(
        startup(stored, &[], OWN).is_err(),
        "a v6 peer in the state file is refused"
    );
}

#[test]
fn peers_that_cannot_be_peers_are_refused_naming_why() {
    let w = World::new();
    for (peer, why) in [
        ("192.0.2.1:4789", "this host's own addresses"),
        ("127.0.0.1:4789", "this host's own addresses"),
        ("0.0.0.0:4789", "not one host's address"),
        ("255.255.255.255:4789", "not one host's address"),
        ("239.1.1.1:4789", "not one host's address"),
    ] {
        let addr: SocketAddr = peer.parse().expect("addr");
        let e = peer_add(w.view(), addr, OWN).expect_err(peer);
        assert!(e.to_string().contains(why), "{peer}: {e}");
        assert!(e.to_string().contains("give another host's"), "{peer}: {e}");
        assert!(
            startup(State::empty(), &[addr], OWN).is_err(),
            "--peer {peer}"
        );
    }
    assert!(peer_add(w.view(), "192.0.2.9:4789".parse().expect("addr"), OWN).is_ok());
}

#[test]
fn startup_merges_command_line_peers_by_ip() {
    let w = World::new();
    let s = startup(
        w.state.clone(),
        &[
            "192.0.2.2:5000".parse().expect("addr"),
            "192.0.2.3:4789".parse().expect("addr"),
        ],
        OWN,
    )
    .expect("ok");
    let peers: Vec<String> = s.peers.iter().map(|p| p.to_string()).collect();
    assert_eq!(peers, ["192.0.2.2:4789", "192.0.2.3:4789"]);
}

// ---- changes from other writers

#[test]
fn reconcile_adds_and_removes_what_others_changed_but_keeps_networks_in_use() {
    let w = World::new();
    let mut incoming = State::empty();
    let mut green = record("green", 300, "10.30.0.0/24");
    green.encrypted = true;
    incoming.networks.push(green);
    incoming.peers.push("192.0.2.7:4789".parse().expect("addr"));
    let effects = reconcile(w.view(), &incoming);
    let names: Vec<String> = effects
        .iter()
        .map(|e| match e {
            Effect::RemoveNetwork { vni } => format!("rm {vni}"),
            Effect::AddNetwork {
                network,
                key: KeySource::Stored,
                ..
            } => format!("add {network} sealed"),
            Effect::RemovePeer(p) => format!("rm peer {p}"),
            Effect::AddPeer(p) => format!("add peer {p}"),
            other => format!("unexpected {other:?}"),
        })
        .collect();
    // blue has a port, so it stays in the switch; red goes.
    assert_eq!(
        names,
        [
            "rm 200",
            "add green sealed",
            "rm peer 192.0.2.2:4789",
            "add peer 192.0.2.7:4789"
        ]
    );
    assert!(
        reconcile(w.view(), &w.state).is_empty(),
        "no change, no effect"
    );
}

#[test]
fn a_station_answering_for_every_address_stops_the_attach_after_a_few_probes() {
    let w = World::new();
    let mut plan = attach_check(w.view(), &req("c2", Some("blue")), facts(12), MAC).expect("ok");
    let liar = Mac([2, 0, 0, 0, 0, 0x66]);
    let mut probed = 0;
    let e = loop {
        let ip = plan.candidate().expect("free addresses remain");
        probed += 1;
        match plan.conflict(&w.view(), ip, liar) {
            Ok(Claim::Skip) => continue,
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(probed, MAX_CLAIMS);
    let msg = e.to_string();
    assert!(msg.contains("8 addresses in a row"), "{msg}");
    assert!(
        msg.contains("MAC 02:00:00:00:00:66"),
        "names who claimed it: {msg}"
    );
}

#[test]
fn a_local_container_claiming_an_address_it_was_not_given_is_not_believed() {
    let w = World::new();
    let mut plan = attach_check(w.view(), &req("c2", Some("blue")), facts(12), MAC).expect("ok");
    let ip = plan.candidate().expect("free");
    // c1 (port 1, recorded at 10.10.0.1) answers for 10.10.0.2.
    let c1 = Mac([2, 0, 0, 0, 0, 1]);
    let claim = plan.conflict(&w.view(), ip, c1).expect("not a refusal");
    assert_eq!(
        claim,
        Claim::Ignored {
            port: PortId(1),
            netns: "c1".into()
        }
    );
    assert_eq!(
        plan.candidate().expect("same"),
        ip,
        "the address stays the candidate"
    );
    assert_eq!(plan.claims, 0);
}

#[test]
fn no_port_security_leaves_the_port_open() {
    let w = World::new();
    let mut r = req("c2", Some("blue"));
    r.no_port_security = true;
    let plan = attach_check(w.view(), &r, facts(12), MAC).expect("ok");
    let ip = plan.candidate().expect("free");
    let d = attach_commit(w.view(), plan, ip, PortId(3));
    assert!(matches!(
        d.effects.get(2),
        Some(Effect::AddPort { security: None, .. })
    ));
    assert!(!d.reply.port_security);
}

#[test]
fn an_encrypted_network_carries_its_key_check_and_a_host_with_another_key_is_refused() {
    let w = World::new();
    let mut s = spec("sec", 300, "10.30.0.0/24");
    s.encrypted = true;
    s.key_file = Some("/k".into());
    let right = NetworkKey::from_bytes([1; KEY_LEN]);
    let d = network_create(w.view(), s.clone(), |_| Ok(right.clone())).expect("ok");
    assert_eq!(d.reply.key_check, Some(right.check_value()));
    assert_eq!(right.check_value().len(), 16);
    assert_ne!(
        right.check_value(),
        NetworkKey::from_bytes([2; KEY_LEN]).check_value()
    );
    // Another host of the cluster, which has the record but no key yet.
    let mut cluster = World::new();
    cluster.state.networks.push(d.reply.clone());
    let e = network_join(cluster.view(), s.clone(), |_| {
        Ok(NetworkKey::from_bytes([2; KEY_LEN]))
    })
    .expect_err("another key");
    assert!(e.to_string().contains("is not the network's key"), "{e}");
    network_join(cluster.view(), s, |_| Ok(right.clone())).expect("the right key joins");
}

#[test]
fn a_rotation_records_the_new_keys_check() {
    let mut w = World::new();
    w.state.networks[1].encrypted = true;
    let new = NetworkKey::from_bytes([4; KEY_LEN]);
    let d = rotate_key(w.view(), "red", || Ok(new.clone())).expect("ok");
    let saved = saved(&d.effects);
    assert_eq!(
        saved.network("red").and_then(|n| n.key_check.clone()),
        Some(new.check_value())
    );
}

// ---- live restore

fn stored(id: u32, network: &str, netns: &str, ino: u64, ip: &str) -> crate::store::PortEntry {
    let mut r = port(network, netns, ino, ip, id as u8);
    r.info.port = id;
    entry(PortId(id), &r)
}

#[test]
fn a_recorded_port_is_taken_back_as_it_was() {
    let w = World::new();
    let e = stored(5, "red", "c5", 55, "10.20.0.5/24");
    assert_eq!(entry_ns(&e), ns(55));
    let d = readopt(w.view(), &e, true).expect("taken back");
    assert_eq!(d.reply.ip.as_deref(), Some("10.20.0.5/24"));
    let [Effect::ReopenTap { id, ifname, mac }, Effect::AddPort {
        vni: v,
        mtu,
        security: Some(sec),
        ..
    }, Effect::StartPort { .. }, Effect::ForgetNeighbours { ifname: forget }, Effect::RecordPort { record, .. }, Effect::Announce { ip, .. }] =
        d.effects.as_slice()
    else {
        panic!(
            "reopen, add, start, forget neighbours, record, announce: {:?}",
            d.effects
        )
    };
    assert_eq!(forget, "eth0");
    assert_eq!((*id, ifname.as_str(), *mac), (PortId(5), "eth0", e.mac));
    assert_eq!((v.get(), *mtu), (200, 1450));
    assert_eq!(sec.ipv4, vec![ip.to_owned()]);
    assert_eq!(ip.to_string(), "10.20.0.5");
    assert_eq!((record.ns, entry(PortId(5), record)), (ns(55), e));
}

#[test]
fn a_recorded_port_without_its_namespace_or_network_is_dropped() {
    let w = World::new();
    let e = stored(5, "red", "c5", 55, "10.20.0.5/24");
    assert_eq!(
        readopt(w.view(), &e, false).map(|d| d.reply),
        Err(Lost::NamespaceGone("c5".into()))
    );
    let gone = stored(6, "green", "c6", 66, "10.30.0.6/24");
    let lost = readopt(w.view(), &gone, true).expect_err("no such network");
    assert_eq!(lost, Lost::NetworkGone("green".into()));
    assert_eq!(lost.to_string(), "its network 'green' no longer exists");
    let twice = stored(1, "blue", "c1", 11, "10.10.0.1/24");
    assert_eq!(
        readopt(w.view(), &twice, true).map(|d| d.reply),
        Err(Lost::Duplicate(1))
    );
}

// ---- the network's gateway

#[test]
fn create_defaults_the_gateway_to_the_first_host_and_runs_it_in_the_switch() {
    let w = World::new();
    let d = network_create(w.view(), spec("green", 300, "10.30.0.0/24"), no_key).expect("ok");
    let gw: std::net::Ipv4Addr = "10.30.0.1".parse().expect("ip");
    assert_eq!(
        d.reply.gateway,
        Some(gw),
        "Docker's default: the first host address"
    );
    assert_eq!(saved(&d.effects).networks[2].gateway, Some(gw));
    let Some(Effect::AddNetwork {
        gateway: Some(host),
        ..
    }) = d.effects.first()
    else {
        panic!("the switch runs the gateway: {:?}", d.effects)
    };
    assert_eq!(host.ip, gw);
    assert_eq!(host.prefix, 24);
    assert_eq!(host.mtu, 1450, "the network's MTU");
    assert_eq!(host.mac, crate::core::gateway::anycast_mac(vni(300)));
    // An explicit gateway is kept; IPAM never hands the default out either.
    let mut s = spec("pink", 400, "10.40.0.0/24");
    s.gateway = Some("10.40.0.254".parse().expect("ip"));
    let d = network_create(w.view(), s, no_key).expect("ok");
    assert_eq!(d.reply.gateway, Some("10.40.0.254".parse().expect("ip")));
}

#[test]
fn the_default_gateway_is_not_handed_out() {
    let mut w = World::new();
    let d = network_create(w.view(), spec("green", 300, "10.30.0.0/24"), no_key).expect("ok");
    w.state = saved(&d.effects).clone();
    let plan = attach_check(w.view(), &req("c2", Some("green")), facts(12), MAC).expect("ok");
    assert_eq!(plan.candidate().expect("free").to_string(), "10.30.0.2");
    let mut asked = req("c2", Some("green"));
    asked.ip = Some("10.30.0.1".parse().expect("ip"));
    let e = attach_check(w.view(), &asked, facts(12), MAC).expect_err("the gateway");
    assert!(e.to_string().contains("gateway"), "{e}");
}

#[test]
fn reconcile_runs_the_gateway_of_a_network_another_host_created() {
    let w = World::new();
    let mut incoming = w.state.clone();
    let mut green = record("green", 300, "10.30.0.0/24");
    green.gateway = Some("10.30.0.1".parse().expect("ip"));
    incoming.networks.push(green);
    let effects = reconcile(w.view(), &incoming);
    assert!(
        matches!(
            effects.as_slice(),
            [Effect::AddNetwork { gateway: Some(g), .. }] if g.ip.to_string() == "10.30.0.1"
        ),
        "{effects:?}"
    );
}

#[test]
fn a_port_whose_interface_went_away_is_reaped_once() {
    let w = World::new();
    let d = reap(w.view(), PortId(1)).expect("c1's port");
    assert_eq!(d.reply.netns, "c1");
    assert!(matches!(
        d.effects.as_slice(),
        [Effect::DetachPort(PortId(1))]
    ));
    assert!(reap(w.view(), PortId(9)).is_none(), "already gone");
}

#[test]
fn detach_of_a_vanished_namespace_removes_its_ports_by_name_or_nothing() {
    let w = World::new();
    let d = detach_vanished(w.view(), "c1", None);
    assert_eq!(d.reply.len(), 1);
    assert!(matches!(
        d.effects.as_slice(),
        [Effect::DetachPort(PortId(1))]
    ));
    assert!(detach_vanished(w.view(), "c1", Some("red"))
        .effects
        .is_empty());
    let none = detach_vanished(w.view(), "gone", None);
    assert!(none.effects.is_empty() && none.reply.is_empty());
}

#[test]
fn attach_names_the_port_and_writes_resolv_conf_and_detach_removes_it() {
    let w = World::new();
    let mut r = req("c2", Some("red"));
    r.aliases = vec!["web".into()];
    let plan = attach_check(w.view(), &r, facts(12), MAC).expect("ok");
    let d = attach_commit(w.view(), plan, "10.20.0.5".parse().expect("ip"), PortId(2));
    assert_eq!(d.reply.names, ["c2", "web"]);
    // red has no gateway in this world: no resolv.conf.
    assert!(!d
        .effects
        .iter()
        .any(|e| matches!(e, Effect::WriteResolvConf { .. })));
    let mut w = w;
    w.state.networks[1].gateway = Some("10.20.0.1".parse().expect("ip"));
    let plan = attach_check(w.view(), &r, facts(12), MAC).expect("ok");
    let d = attach_commit(w.view(), plan, "10.20.0.5".parse().expect("ip"), PortId(2));
    let Some(Effect::WriteResolvConf { path, text }) = d.effects.last() else {
        panic!("resolv.conf written last: {:?}", d.effects)
    };
    assert_eq!(path.to_str(), Some("/etc/netns/c2/resolv.conf"));
    assert!(text.ends_with("nameserver 10.20.0.1\n"), "{text}");
    r.no_dns = true;
    let plan = attach_check(w.view(), &r, facts(12), MAC).expect("ok");
    let d = attach_commit(w.view(), plan, "10.20.0.5".parse().expect("ip"), PortId(2));
    assert!(!d
        .effects
        .iter()
        .any(|e| matches!(e, Effect::WriteResolvConf { .. })));
    // A bad --name is refused before anything happens.
    r.name = Some("no_underscores".into());
    let e = attach_check(w.view(), &r, facts(12), MAC).expect_err("bad name");
    assert!(e.to_string().contains("is not a DNS name"), "{e}");

    let d = detach(w.view(), "c1", ns(11), None).expect("ok");
    assert!(matches!(
        d.effects.as_slice(),
        [Effect::DetachPort(PortId(1)), Effect::RemoveResolvConf { path }]
            if path.to_str() == Some("/etc/netns/c1/resolv.conf")
    ));
}

#[test]
fn handoff_leaves_the_tap_for_its_caller_and_tells_ports_apart_by_label() {
    let mut w = World::new();
    let mut r = req("docker-ep-aaa", Some("blue"));
    r.handoff = true;
    r.ifname = Some("vsdaaa".into());
    // The daemon's own namespace (11) already holds port c1: a hand-off port is no second
    // port of that namespace.
    let plan = attach_check(w.view(), &r, facts(11), MAC).expect("another label");
    let ip = plan.candidate().expect("free");
    let d = attach_commit(w.view(), plan, ip, PortId(8));
    let [Effect::CreateTap { name, .. }, Effect::PrepareTap { mac, mtu, .. }, Effect::AddPort { .. }, Effect::StartPort { .. }, Effect::RecordPort { record, .. }, Effect::Announce { .. }] =
        d.effects.as_slice()
    else {
        panic!(
            "create, prepare (no move), add, start, record, announce: {:?}",
            d.effects
        )
    };
    assert_eq!((name.as_str(), *mac, *mtu), ("vsdaaa", MAC, 1450));
    w.ports.insert(PortId(8), record.clone());
    let e = attach_check(w.view(), &r, facts(11), MAC).expect_err("same label twice");
    assert!(matches!(e, RequestError::AlreadyAttached { .. }), "{e}");
}

mod egress;
