//! The network's own services: the anycast gateway (and, below, DNS and egress).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// The gateway MAC of VNI `vni` (README: `02:76:73` and the 24-bit VNI).
fn gateway_mac(vni: u32) -> String {
    let [_, a, b, c] = vni.to_be_bytes();
    format!("02:76:73:{a:02x}:{b:02x}:{c:02x}")
}

/// tshark on host `h`'s underlay, printing the innermost Ethernet addresses, ARP target and
/// IPv4 addresses of every VXLAN datagram; stop it with `interrupt`.
fn capture_inner(lab: &Lab, h: usize) -> Bg {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.hosts[h].ns.name, "tshark", "-l", "-n"])
        .args([
            "-i",
            UNDERLAY_DEV,
            "-f",
            "udp port 4789",
            "-a",
            "duration:60",
        ])
        .args(["-T", "fields", "-e", "eth.src", "-e", "eth.dst"])
        .args(["-e", "arp.dst.proto_ipv4", "-e", "ip.src", "-e", "ip.dst"])
        // The inner packet: the last occurrence of each field.
        .args(["-E", "occurrence=l"]);
    let mut bg = Bg::spawn(&mut cmd);
    bg.wait_for("Capturing on", Duration::from_secs(20));
    bg
}

#[test]
fn gateway_answers_on_every_host_and_never_crosses_the_underlay() {
    require_root();
    require_tool("tshark", "tshark");
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("svc", 110, "10.110.0.0/24", &[]);
    }
    let inspect = lab.hosts[0].json(&["network", "inspect", "svc"]);
    assert_eq!(
        jstr(&inspect, "gateway"),
        "10.110.0.1",
        "default: the first host address"
    );
    let ca = lab.netns("ca");
    let cb = lab.netns("cb");
    let pa = lab.hosts[0].attach(&ca, "svc", &[]);
    assert_eq!(
        jstr(&pa, "ip"),
        "10.110.0.2/24",
        "IPAM never hands out the gateway"
    );
    lab.hosts[1].attach(&cb, "svc", &["--ip", "10.110.0.3/24"]);
    for c in [&ca, &cb] {
        let routes = default_routes(c);
        assert_eq!(routes.len(), 1, "{c}: {routes:?}");
        assert_eq!(routes[0]["gateway"], "10.110.0.1");
    }

    let capture = capture_inner(&lab, 0);
    lab.assert_ping(&ca, "10.110.0.1");
    lab.assert_ping(&cb, "10.110.0.1");
    // A positive control: container-to-container traffic does show in the capture.
    lab.assert_ping(&ca, "10.110.0.3");
    let r = capture.interrupt(Duration::from_secs(20));

    // The same MAC answers on both hosts.
    let mac = gateway_mac(110);
    assert_neigh(&ca, "10.110.0.1", &mac);
    assert_neigh(&cb, "10.110.0.1", &mac);

    let rows: Vec<Vec<String>> = r
        .out
        .iter()
        .map(|l| l.split('\t').map(|f| f.trim().to_string()).collect())
        .filter(|f: &Vec<String>| f.len() == 5)
        .collect();
    assert!(
        rows.iter()
            .any(|f| f[3] == "10.110.0.2" && f[4] == "10.110.0.3"),
        "the capture saw no container traffic, so it proves nothing: {rows:?}\n{}",
        r.err.join("\n")
    );
    for f in &rows {
        assert!(
            f[0] != mac && f[1] != mac,
            "a frame from or to the gateway MAC crossed the underlay: {f:?}"
        );
        assert!(
            f[2] != "10.110.0.1" && f[3] != "10.110.0.1" && f[4] != "10.110.0.1",
            "a frame for the gateway address crossed the underlay: {f:?}"
        );
    }

    // No kernel interface for the network on either host.
    for h in &lab.hosts {
        let got: BTreeSet<String> = links(&h.ns.name).into_iter().collect();
        let want: BTreeSet<String> = ["lo", UNDERLAY_DEV].map(String::from).into();
        assert_eq!(got, want, "host {}'s interfaces", h.label);
    }
}

#[test]
fn two_networks_with_one_subnet_each_have_their_own_gateway() {
    require_root();
    let mut lab = Lab::new(1);
    lab.start_mesh();
    let a = &lab.hosts[0];
    a.create_network("red", 111, "10.111.0.0/24", &[]);
    a.create_network("blue", 112, "10.111.0.0/24", &[]);
    let r = lab.netns("r");
    let b = lab.netns("b");
    a.attach(&r, "red", &["--ip", "10.111.0.2/24"]);
    a.attach(&b, "blue", &["--ip", "10.111.0.2/24"]);
    lab.assert_ping(&r, "10.111.0.1");
    lab.assert_ping(&b, "10.111.0.1");
    assert_neigh(&r, "10.111.0.1", &gateway_mac(111));
    assert_neigh(&b, "10.111.0.1", &gateway_mac(112));
    // The gateway is not a port: the MAC table has only the container.
    let fdb = a.json(&["fdb", "--network", "red"]);
    let macs: Vec<String> = fdb
        .as_array()
        .expect("fdb list")
        .iter()
        .map(|e| jstr(e, "mac"))
        .collect();
    assert!(!macs.contains(&gateway_mac(111)), "{macs:?}");
    // Nothing for the gateway was lost on the way to it.
    let stats = a.json(&["stats"]);
    assert_eq!(stats["dataplane"]["gateway_queue_full"], 0, "{stats}");
}
