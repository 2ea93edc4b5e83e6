//! The rules of egress: its IPAM, who gets a link, when the firewall table comes and goes, and
//! the user errors.

use super::*;
use crate::daemon::rules::egress::{parse_subnet, Egress, DEFAULT_SUBNET, IFNAME};

/// A world whose daemon forwards (egress on), egress subnet `subnet`.
fn forwarding(subnet: &str) -> World {
    let mut w = World::new();
    w.egress = Egress {
        subnet: subnet.parse().expect("cidr"),
        forwarding: true,
    };
    w
}

/// Attaches namespace `netns` (inode `ino`) to `network` as port `id`, as the daemon would, and
/// records the port; returns the decision.
fn attach(w: &mut World, netns: &str, ino: u64, network: &str, id: u32) -> Decision<PortInfo> {
    let mut r = req(netns, Some(network));
    r.mac = Some(Mac([2, 0, 0, 0, 1, id as u8]));
    let mut plan = attach_check(w.view(), &r, facts(ino), MAC).expect("attach");
    let ip = plan.candidate().expect("free");
    plan.address = AddressChoice::Requested(ip);
    let d = attach_commit(w.view(), plan, ip, PortId(id));
    let record = d
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::RecordPort { record, .. } => Some(record.clone()),
            _ => None,
        })
        .expect("a record");
    w.ports.insert(PortId(id), record);
    d
}

fn egress_of(d: &Decision<PortInfo>) -> Option<&str> {
    d.reply.egress.as_deref()
}

#[test]
fn the_egress_subnet_is_checked_as_the_user_gave_it() {
    assert_eq!(
        parse_subnet(DEFAULT_SUBNET).expect("default"),
        "172.31.0.0/16".parse::<ipnet::Ipv4Net>().expect("cidr")
    );
    assert!(parse_subnet("10.9.0.0/30").is_ok());
    let small = parse_subnet("10.9.0.0/31").expect_err("too small");
    assert!(small.contains("/30 or larger"), "{small}");
    let bits = parse_subnet("10.9.0.1/24").expect_err("host bits");
    assert!(bits.contains("10.9.0.0/24"), "{bits}");
    let junk = parse_subnet("fd00::/64").expect_err("not IPv4");
    assert!(junk.contains("IPv4"), "{junk}");
}

#[test]
fn a_network_overlapping_the_egress_subnet_is_a_user_error() {
    let w = World::new();
    for subnet in ["172.31.5.0/24", "172.0.0.0/8", "172.31.0.0/16"] {
        let e = network_create(w.view(), spec("green", 300, subnet), no_key)
            .expect_err("overlaps the egress subnet");
        assert!(matches!(e, RequestError::EgressOverlap { .. }), "{e}");
        let msg = e.to_string();
        for needle in [
            "172.31.0.0/16",
            subnet,
            "--internal",
            "--egress-subnet",
            "--subnet",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in: {msg}");
        }
    }
    // Internal networks have no egress: any subnet.
    let mut internal = spec("green", 300, "172.31.5.0/24");
    internal.internal = true;
    let d = network_create(w.view(), internal, no_key).expect("internal may overlap");
    assert!(d.reply.internal);
    assert!(saved(&d.effects).network("green").expect("saved").internal);
    // Next to it is fine.
    network_create(w.view(), spec("green", 300, "172.30.0.0/16"), no_key).expect("adjacent");
}

#[test]
fn without_ip_forwarding_there_is_no_egress_and_eth0_keeps_the_default_route() {
    let mut w = World::new();
    w.state.networks[0].gateway = Some("10.10.0.1".parse().expect("ip"));
    let d = attach(&mut w, "c2", 12, "blue", 2);
    assert_eq!(egress_of(&d), None);
    assert!(!d
        .effects
        .iter()
        .any(|e| matches!(e, Effect::AddEgress(_) | Effect::SetEgressRules(_))));
    let Some(Effect::MoveTap { config, .. }) = d.effects.get(1) else {
        panic!("a move: {:?}", d.effects)
    };
    assert_eq!(config.gateway, Some("10.10.0.1".parse().expect("ip")));
}

#[test]
fn egress_takes_the_next_free_address_after_the_gateway_and_owns_the_default_route() {
    let mut w = forwarding("172.31.0.0/16");
    let d = attach(&mut w, "c2", 12, "blue", 2);
    assert_eq!(egress_of(&d), Some("172.31.0.2/16"));
    let [Effect::CreateTap { .. }, Effect::MoveTap { config, .. }, Effect::AddEgress(link), Effect::SetEgressRules(Some(subnet)), ..] =
        d.effects.as_slice()
    else {
        panic!("create, move, egress link, rules first: {:?}", d.effects)
    };
    assert_eq!(
        config.gateway, None,
        "the default route is the egress link's"
    );
    assert_eq!(link.host_ifname, "vseg2");
    assert_eq!(link.ifname, IFNAME);
    assert_eq!(link.address.to_string(), "172.31.0.2");
    assert_eq!(link.prefix, 16);
    assert_eq!(link.gateway.to_string(), "172.31.0.1");
    assert_eq!(subnet.to_string(), "172.31.0.0/16");
    // The record keeps it, so a restarted daemon knows it.
    assert_eq!(
        entry(PortId(2), &w.ports[&PortId(2)]).egress.as_deref(),
        Some("172.31.0.2/16")
    );

    // The next container gets the next address; a released one is handed out again.
    let d3 = attach(&mut w, "c3", 13, "red", 3);
    assert_eq!(egress_of(&d3), Some("172.31.0.3/16"));
    w.ports.remove(&PortId(2));
    let d4 = attach(&mut w, "c4", 14, "red", 4);
    assert_eq!(egress_of(&d4), Some("172.31.0.2/16"));
}

#[test]
fn who_gets_no_egress_link() {
    let mut w = forwarding("172.31.0.0/16");
    let mut internal = record("quiet", 300, "10.30.0.0/24");
    internal.internal = true;
    internal.gateway = Some("10.30.0.1".parse().expect("ip"));
    w.state.networks.push(internal);
    let d = attach(&mut w, "c2", 12, "quiet", 2);
    assert_eq!(egress_of(&d), None, "an --internal network");
    let Some(Effect::MoveTap { config, .. }) = d.effects.get(1) else {
        panic!("a move: {:?}", d.effects)
    };
    assert_eq!(config.gateway, Some("10.30.0.1".parse().expect("ip")));

    // A namespace with an egress link already (its port on another network).
    assert_eq!(
        egress_of(&attach(&mut w, "c3", 13, "blue", 3)),
        Some("172.31.0.2/16")
    );
    assert_eq!(egress_of(&attach(&mut w, "c3", 13, "red", 4)), None);

    // Ports a container runtime sets up itself.
    for (cni, handoff) in [(true, false), (false, true)] {
        let mut r = req("c5", Some("blue"));
        r.container_id = cni.then(|| "abc".into());
        r.handoff = handoff;
        let plan = attach_check(w.view(), &r, facts(15), MAC).expect("attach");
        assert_eq!(plan.egress, None, "cni {cni} handoff {handoff}");
    }
}

#[test]
fn an_exhausted_egress_subnet_refuses_the_attach() {
    // A /30: the gateway .1 and one container, .2.
    let mut w = forwarding("10.99.0.0/30");
    assert_eq!(
        egress_of(&attach(&mut w, "c2", 12, "blue", 2)),
        Some("10.99.0.2/30")
    );
    let e = attach_check(w.view(), &req("c3", Some("blue")), facts(13), MAC)
        .expect_err("no egress address left");
    assert!(matches!(e, RequestError::NoFreeEgressAddress { .. }), "{e}");
    assert!(e.to_string().contains("--egress-subnet"), "{e}");
}

#[test]
fn attaching_to_a_stored_network_that_overlaps_the_egress_subnet_is_refused() {
    // Another host (with another egress subnet) created it.
    let mut w = forwarding("10.20.0.0/16");
    let e = attach_check(w.view(), &req("c2", Some("red")), facts(12), MAC).expect_err("overlap");
    assert!(matches!(e, RequestError::EgressOverlap { .. }), "{e}");
    // Without forwarding there is no egress, so nothing to overlap.
    w.egress.forwarding = false;
    attach_check(w.view(), &req("c2", Some("red")), facts(12), MAC).expect("no egress");
}

#[test]
fn the_rules_go_with_the_last_egress_link() {
    let mut w = forwarding("172.31.0.0/16");
    attach(&mut w, "c2", 12, "blue", 2);
    attach(&mut w, "c3", 13, "blue", 3);
    let removes = |effects: &[Effect]| -> (Vec<String>, usize) {
        let links = effects
            .iter()
            .filter_map(|e| match e {
                Effect::RemoveEgress { host_ifname } => Some(host_ifname.clone()),
                _ => None,
            })
            .collect();
        let rules = effects
            .iter()
            .filter(|e| matches!(e, Effect::SetEgressRules(None)))
            .count();
        (links, rules)
    };
    let d = detach(w.view(), "c2", ns(12), None).expect("detach");
    assert_eq!(removes(&d.effects), (vec!["vseg2".to_string()], 0));
    w.ports.remove(&PortId(2));
    let d = detach(w.view(), "c3", ns(13), None).expect("detach");
    assert_eq!(removes(&d.effects), (vec!["vseg3".to_string()], 1));
    // The same through a reaped port and a vanished namespace.
    let r = reap(w.view(), PortId(3)).expect("a port");
    assert_eq!(removes(&r.effects), (vec!["vseg3".to_string()], 1));
    let v = detach_vanished(w.view(), "c3", None);
    assert_eq!(removes(&v.effects), (vec!["vseg3".to_string()], 1));
    // A port without egress takes nothing with it.
    let d = detach(w.view(), "c1", ns(11), None).expect("detach");
    assert_eq!(removes(&d.effects), (vec![], 0));
}

#[test]
fn a_restarted_daemon_keeps_egress_links_in_its_subnet() {
    let w = forwarding("172.31.0.0/16");
    let mut e = stored(5, "red", "c5", 55, "10.20.0.5/24");
    e.egress = Some("172.31.0.9/16".into());
    let d = readopt(w.view(), &e, true).expect("taken back");
    assert!(matches!(
        d.effects.first(),
        Some(Effect::RepairEgressRules(s)) if s.to_string() == "172.31.0.0/16"
    ));
    assert_eq!(d.reply.egress.as_deref(), Some("172.31.0.9/16"));

    // The daemon now runs with another egress subnet: the old link goes.
    e.egress = Some("10.250.0.9/16".into());
    let d = readopt(w.view(), &e, true).expect("taken back");
    assert!(matches!(
        d.effects.first(),
        Some(Effect::RemoveEgress { host_ifname }) if host_ifname == "vseg5"
    ));
    assert_eq!(d.reply.egress, None);
    let recorded = d.effects.iter().find_map(|e| match e {
        Effect::RecordPort { record, .. } => Some(record.info.egress.clone()),
        _ => None,
    });
    assert_eq!(recorded, Some(None));
}

#[test]
fn joining_a_network_compares_internal_too() {
    let mut w = World::new();
    let mut stored = record("sealed", 400, "10.40.0.0/24");
    stored.encrypted = true;
    stored.gateway = Some("10.40.0.1".parse().expect("ip"));
    w.state.networks.push(stored);
    let mut s = spec("sealed", 400, "10.40.0.0/24");
    s.encrypted = true;
    s.key_file = Some("/k".into());
    s.internal = true;
    let e = network_join(w.view(), s, |_| panic!("not read")).expect_err("differs");
    assert!(matches!(e, RequestError::NetworkExists(_)), "{e}");
}

#[test]
fn dropped_ports_take_their_links_and_the_last_one_the_table() {
    let mut w = forwarding("172.31.0.0/16");
    let d = crate::daemon::rules::egress::dropped(w.view(), &[PortId(7)]);
    assert!(matches!(
        d.as_slice(),
        [Effect::RemoveEgress { host_ifname }, Effect::SetEgressRules(None)] if host_ifname == "vseg7"
    ));
    // A port taken back still has its link: the table stays.
    attach(&mut w, "c2", 12, "blue", 2);
    let d = crate::daemon::rules::egress::dropped(w.view(), &[PortId(7)]);
    assert!(
        matches!(d.as_slice(), [Effect::RemoveEgress { .. }]),
        "{d:?}"
    );
}

#[test]
fn an_egress_subnet_holding_a_host_address_is_refused() {
    use crate::daemon::rules::egress::check_host;
    let egress = Egress::default();
    let addr = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
    assert_eq!(check_host(&egress, OWN), Ok(()));
    // The gateway is the egress links' own (a previous run's).
    assert_eq!(
        check_host(&egress, &[addr("172.31.0.1"), addr("::1")]),
        Ok(())
    );
    assert_eq!(
        check_host(&egress, &[addr("192.0.2.1"), addr("172.31.7.9")]),
        Err("172.31.7.9".parse().expect("ip"))
    );
}
