//! Egress: a container on a network that is not `--internal` reaches the other host's underlay
//! address (ICMP and TCP), and the far side sees this host's underlay address as the source; an
//! `--internal` network's container cannot. Detach releases the egress address; the daemon's
//! nft table goes with the last egress link and with `daemon --cleanup`; the link survives a
//! daemon restart.
//!
//! The nft rules and `ip_forward=1` are set in host A's namespace only (the lab's), never in
//! the test's own.

use std::time::Duration;

use crate::support::*;

/// Accepts one TCP connection on argv[1]:argv[2] and prints `peer <address> <data>`.
const PY_LISTEN: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
s.settimeout(30)
print('listening', flush=True)
c, peer = s.accept()
data = c.recv(64).decode()
c.sendall(b'back')
c.close()
print('peer', peer[0], data, flush=True)
"#;

/// Connects to argv[1]:argv[2] (timeout argv[3] s), sends `hello`, prints what comes back.
const PY_CONNECT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    s.sendall(b'hello')
    print('got', s.recv(16).decode())
except OSError as e:
    print('failed', e)
    sys.exit(1)
"#;

const FAR: &str = "192.0.2.2";

/// Whether host `ns` has the daemon's nft table.
fn has_table(ns: &str) -> bool {
    ns_exec(ns, &["nft", "list", "table", "ip", "vswitch"])
        .status
        .success()
}

/// Connects from `from` to the far host on `port`; returns the source address the far side
/// saw, or `None` if the connection failed.
fn tcp_source(lab: &Lab, from: &str, port: u16) -> Option<String> {
    let far = &lab.hosts[1].ns.name;
    let port = port.to_string();
    let mut listener = Bg::spawn(&mut py_cmd(far, PY_LISTEN, &[FAR, &port]));
    listener.wait_for("listening", Duration::from_secs(10));
    let out = run_cmd(
        &mut py_cmd(from, PY_CONNECT, &[FAR, &port, "3"]),
        Duration::from_secs(20),
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        assert!(said.contains("failed"), "the client helper broke: {said}");
        return None;
    }
    assert_eq!(said.trim(), "got back", "{said}");
    let heard = listener.finish(Duration::from_secs(10));
    let line = heard
        .out
        .iter()
        .find(|l| l.starts_with("peer "))
        .unwrap_or_else(|| panic!("the listener saw no connection: {:?}", heard.out));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.get(2), Some(&"hello"), "{line}");
    fields.get(1).map(|s| s.to_string())
}

/// Host A forwards (egress on), runs a daemon meshed with B; networks `out` and `quiet`
/// (internal) exist on A.
fn lab() -> Lab {
    require_tool("nft", "nftables");
    let mut lab = Lab::new(2);
    lab.hosts[0].ns.set_forwarding(true);
    lab.start_mesh();
    let a = &lab.hosts[0];
    a.create_network("out", 120, "10.120.0.0/24", &[]);
    a.create_network("quiet", 121, "10.121.0.0/24", &["--internal"]);
    lab
}

#[test]
fn egress_reaches_the_far_host_masqueraded_and_internal_networks_do_not() {
    let lab = lab();
    let a = &lab.hosts[0];
    let ha = a.ns.name.clone();
    assert!(!has_table(&ha), "no egress link yet, no table");
    let c1 = lab.netns("c1");
    let p1 = a.attach(&c1, "out", &[]);
    assert_eq!(p1["egress"], "172.31.0.2/16", "{p1}");
    assert_eq!(addrs4(&c1, "egress0"), vec!["172.31.0.2/16".to_string()]);
    let routes = default_routes(&c1);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "172.31.0.1");
    assert_eq!(routes[0]["dev"], "egress0");
    let host_end = format!("vseg{}", p1["port"]);
    assert!(links(&ha).contains(&host_end), "{:?}", links(&ha));
    assert!(has_table(&ha));

    // The far host, over ICMP and TCP, and this host itself; the far side sees host A.
    lab.assert_ping(&c1, FAR);
    lab.assert_ping(&c1, &a.ip);
    assert_eq!(tcp_source(&lab, &c1, 7101).as_deref(), Some(a.ip.as_str()));
    // The overlay still works beside it.
    let c0 = lab.netns("c0");
    let p0 = a.attach(&c0, "out", &[]);
    lab.assert_ping(&c1, jstr(&p0, "ip").split('/').next().unwrap_or_default());

    // An internal network: no egress link, no route out, nothing gets through.
    let c2 = lab.netns("c2");
    let p2 = a.attach(&c2, "quiet", &[]);
    assert!(p2.get("egress").is_none(), "{p2}");
    assert_eq!(links(&c2), vec!["lo".to_string(), "eth0".to_string()]);
    let routes = default_routes(&c2);
    assert!(
        routes.iter().all(|r| r["dev"] == "eth0"),
        "only the network's own gateway: {routes:?}"
    );
    assert_eq!(ping(&c2, FAR, 2), 0, "an internal network reached {FAR}");
    assert_eq!(tcp_source(&lab, &c2, 7102), None);

    // Host B does not forward: its containers are attached as on an internal network.
    let b = &lab.hosts[1];
    b.create_network("out", 120, "10.120.0.0/24", &[]);
    let cb = lab.netns("cb");
    let pb = b.attach(&cb, "out", &[]);
    assert!(pb.get("egress").is_none(), "{pb}");
    assert_eq!(links(&cb), vec!["lo".to_string(), "eth0".to_string()]);
    let routes = default_routes(&cb);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "10.120.0.1");
    assert!(!has_table(&b.ns.name));
    assert!(
        b.log_text().contains("IP forwarding is off"),
        "the daemon says why there is no egress"
    );

    // Detach releases the address; the table stays while another container has egress.
    a.ok(&["detach", &c1, "--network", "out"]);
    assert_eq!(links(&c1), vec!["lo".to_string()]);
    assert!(!links(&ha).contains(&host_end), "{:?}", links(&ha));
    let p0_egress = p0["egress"].as_str().unwrap_or_default().to_string();
    assert_eq!(p0_egress, "172.31.0.3/16", "{p0}");
    assert!(has_table(&ha), "c0 still has egress");
    let c3 = lab.netns("c3");
    let p3 = a.attach(&c3, "out", &[]);
    assert_eq!(p3["egress"], "172.31.0.2/16", "the released address: {p3}");
    a.ok(&["detach", &c3]);
    a.ok(&["detach", &c0]);
    assert!(
        !has_table(&ha),
        "the last egress link took the table with it"
    );
    let left: Vec<String> = links(&ha)
        .into_iter()
        .filter(|l| l.starts_with("vseg"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The user errors: a network overlapping the egress subnet, an egress subnet holding one of the
/// host's addresses.
#[test]
fn egress_subnet_clashes_are_user_errors() {
    let lab = lab();
    let a = &lab.hosts[0];
    let clash = ["network", "create", "clash", "--vni", "130"];
    let args = [&clash[..], &["--subnet", "172.31.9.0/24"]].concat();
    let out = a.vs(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error:"), "{err}");
    for needle in ["172.31.0.0/16", "--internal", "--egress-subnet"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    let listed = a.json(&["network", "ls"]);
    assert!(
        listed.as_array().is_some_and(|l| l.len() == 2),
        "the refused create changed nothing: {listed}"
    );
    a.ok(&[&args[..], &["--internal"]].concat());

    // Host B's own underlay address inside the egress subnet: the daemon does not start.
    let b = &lab.hosts[1];
    let out = run_cmd(
        ns_cmd(&b.ns.name, VSWITCH)
            .arg("--socket")
            .arg(lab.dir.join("clash.sock"))
            .args(["daemon", "--egress-subnet", "192.0.2.0/24", "--state-dir"])
            .arg(lab.dir.join("clash-state")),
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error:") && err.contains("192.0.2.2") && err.contains("--egress-subnet"),
        "{err}"
    );
}

#[test]
fn egress_survives_a_restart_and_goes_with_cleanup() {
    let mut lab = lab();
    let ha = lab.hosts[0].ns.name.clone();
    let c1 = lab.netns("c1");
    let p1 = lab.hosts[0].attach(&c1, "out", &[]);
    lab.assert_ping(&c1, FAR);

    // No daemon: the egress link is the kernel's, and keeps working.
    lab.hosts[0].stop();
    assert_eq!(ping(&c1, FAR, 3), 3, "egress while no daemon runs");
    lab.hosts[0].respawn();
    let inspect = lab.hosts[0].json(&["network", "inspect", "out"]);
    assert_eq!(inspect["ports"][0]["egress"], p1["egress"], "{inspect}");
    assert!(has_table(&ha));
    assert_eq!(tcp_source(&lab, &c1, 7103).as_deref(), Some("192.0.2.1"));

    lab.hosts[0].stop();
    let done = lab.hosts[0].cleanup();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(links(&c1), vec!["lo".to_string()]);
    assert!(!has_table(&ha), "cleanup removes the table");
    assert!(
        !links(&ha).iter().any(|l| l.starts_with("vseg")),
        "{:?}",
        links(&ha)
    );
}
