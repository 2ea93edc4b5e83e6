//! Daemon lifecycle (clean exit, state that survives a restart) and what `attach` sets up.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The static part of `network ls --json`, keyed by name (port counts may differ).
fn networks(h: &Host) -> Vec<Value> {
    let v = h.json(&["network", "ls"]);
    let mut nets: Vec<Value> = v
        .as_array()
        .unwrap_or_else(|| panic!("network ls --json is not an array: {v}"))
        .iter()
        .map(|n| {
            serde_json::json!({
                "name": n["name"], "vni": n["vni"], "subnet": n["subnet"],
                "gateway": n["gateway"], "mtu": n["mtu"], "encrypted": n["encrypted"],
            })
        })
        .collect();
    nets.sort_by_key(|n| n["name"].as_str().unwrap_or_default().to_string());
    nets
}

#[test]
fn daemon_restart_and_clean_exit() {
    let mut lab = Lab::new(2);
    let hn = lab.hosts[0].ns.name.clone();
    let host_links_before: BTreeSet<String> = links(&hn).into_iter().collect();
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    {
        let a = &lab.hosts[0];
        a.create_network("n1", 501, "10.51.0.0/24", &["--gateway", "10.51.0.1"]);
        a.create_network("n2", 502, "10.52.0.0/24", &["--mtu", "1400"]);
        a.ok(&["peer", "add", "192.0.2.77:4789"]);
        a.ok(&["peer", "add", "192.0.2.78"]);
        a.attach(&c1, "n1", &[]);
        let att2 = a.attach(&c2, "n2", &[]);
        assert!(
            links(&c1).iter().any(|l| l == "eth0"),
            "c1 has no eth0 after attach"
        );
        // The network's --mtu is what the container's interface gets.
        assert_eq!(att2["mtu"].as_u64(), Some(1400), "attach --json: {att2}");
        assert_eq!(
            link(&c2, "eth0")["mtu"].as_u64(),
            Some(1400),
            "eth0 in {c2} should have the network's --mtu 1400"
        );
    }
    let nets_before = networks(&lab.hosts[0]);
    let peers_before = peer_addrs(&lab.hosts[0].json(&["peer", "ls"]));
    assert_eq!(
        nets_before.len(),
        2,
        "network ls before restart: {nets_before:?}"
    );
    let expected_peers: BTreeSet<String> = [
        format!("{}:4789", lab.hosts[1].ip),
        "192.0.2.77:4789".to_string(),
        "192.0.2.78:4789".to_string(),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        peers_before, expected_peers,
        "peer ls should list the --peer and both added peers"
    );

    let status = lab.hosts[0].stop();
    assert_eq!(
        status.code(),
        Some(0),
        "daemon should exit 0 on SIGTERM, got {status}\n{}",
        lab.hosts[0].log_text()
    );
    // The containers keep their ports (the next daemon takes them back); the host's own
    // namespace is left as it was.
    for ns in [&c1, &c2] {
        assert_eq!(
            links(ns),
            vec!["lo".to_string(), "eth0".to_string()],
            "container {ns} after SIGTERM"
        );
    }
    let host_links_after: BTreeSet<String> = links(&hn).into_iter().collect();
    assert_eq!(
        host_links_after, host_links_before,
        "links left in host A's namespace after SIGTERM"
    );

    lab.hosts[0].respawn();
    let a = &lab.hosts[0];
    assert_eq!(
        networks(a),
        nets_before,
        "networks differ after restart with the same state dir"
    );
    assert_eq!(
        peer_addrs(&a.json(&["peer", "ls"])),
        peers_before,
        "peers differ after restart with the same state dir"
    );
    // The restarted daemon took the ports back and is usable: detach, then attach again.
    assert_eq!(
        a.json(&["network", "inspect", "n1"])["ports"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "c1's port taken back"
    );
    a.ok(&["detach", &c1]);
    assert_eq!(links(&c1), vec!["lo".to_string()], "detach after restart");
    a.attach(&c1, "n1", &[]);
    assert!(
        links(&c1).iter().any(|l| l == "eth0"),
        "c1 has no eth0 after re-attach"
    );
}

#[test]
fn attach_allocates_addresses_and_mtu() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    for h in [a, b] {
        h.create_network("alloc", 700, "10.70.0.0/24", &["--gateway", "10.70.0.1"]);
    }
    a.create_network("nogw", 701, "10.71.0.0/24", &[]);
    a.create_network("tiny", 702, "10.72.0.0/30", &["--gateway", "10.72.0.1"]);

    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    let c3 = lab.netns("c3");
    let att1 = a.attach(&c1, "alloc", &[]);
    let x = jstr(&att1, "ip");
    let (xa, xlen) = parse_cidr(&x);
    let (net, _) = parse_cidr("10.70.0.0/24");
    assert_eq!(
        xlen, 24,
        "allocated address should carry the subnet's prefix: {x}"
    );
    assert_eq!(
        xa & 0xffff_ff00,
        net,
        "allocated {x} is outside 10.70.0.0/24"
    );
    assert!(
        ![net, net + 1, net + 255].contains(&xa),
        "allocated {x}: the network, gateway or broadcast address"
    );
    assert_eq!(
        addrs4(&c1, "eth0"),
        vec![x.clone()],
        "address in the container vs attach --json"
    );
    assert_eq!(
        att1["mtu"].as_u64(),
        Some(1450),
        "attach --json mtu: {att1}"
    );
    assert_eq!(
        link(&c1, "eth0")["mtu"].as_u64(),
        Some(1450),
        "container MTU on a 1500-byte underlay should be 1450"
    );
    let routes = default_routes(&c1);
    assert!(
        routes
            .iter()
            .any(|r| r["gateway"].as_str() == Some("10.70.0.1")),
        "no default route via the gateway 10.70.0.1 in c1: {routes:?}"
    );

    let y = jstr(&a.attach(&c2, "alloc", &[]), "ip");
    assert_ne!(y, x, "two containers on host A got the same address");

    // Host B allocates from the same subnet: its probe must find x and y in use on host A.
    let z = jstr(&b.attach(&c3, "alloc", &[]), "ip");
    assert!(
        z != x && z != y,
        "host B gave {z} although host A already uses {x} and {y} on the same network"
    );
    let (za, _) = parse_cidr(&z);
    assert!(
        ![net, net + 1, net + 255].contains(&za),
        "host B allocated {z}"
    );
    let x_ip = x.split('/').next().unwrap_or_default().to_string();
    lab.assert_ping(&c3, &x_ip);

    // Without --gateway the gateway is the first host address, never handed out, and the
    // default route goes through it.
    let c4 = lab.netns("c4");
    assert_eq!(jstr(&a.attach(&c4, "nogw", &[]), "ip"), "10.71.0.2/24");
    let routes = default_routes(&c4);
    assert!(
        routes.len() == 1 && routes[0]["gateway"].as_str() == Some("10.71.0.1"),
        "network without --gateway: the default route goes via 10.71.0.1: {routes:?}"
    );

    // /30 with the gateway at .1: the only assignable address is .2; then the pool is empty.
    let c5 = lab.netns("c5");
    let c6 = lab.netns("c6");
    assert_eq!(jstr(&a.attach(&c5, "tiny", &[]), "ip"), "10.72.0.2/30");
    let out = a.vs(&["attach", &c6, "--network", "tiny"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.lines().any(|l| l.starts_with("error:")),
        "attach to a full /30 should fail with an error line (it must not hand out the network, \
         gateway or broadcast address); status {}, stdout {}, stderr {err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        links(&c6),
        vec!["lo".to_string()],
        "failed attach left a link in c6"
    );
}

/// What a SIGKILLed run leaves under /run/netns is removed by the next run; a live run's
/// namespaces are not touched.
#[test]
fn namespaces_left_by_a_killed_run_are_swept() {
    require_root();
    // A PID above the kernel's pid_max cannot be running.
    let stale = format!("vse{}_9stale", 1u64 << 32);
    let live = format!("vse{}_9live", std::process::id());
    sh_ok(&["ip", "netns", "add", &stale]);
    sh_ok(&["ip", "netns", "add", &live]);
    sweep_stale_namespaces();
    let left = String::from_utf8_lossy(&sh(&["ip", "netns", "list"]).stdout).into_owned();
    let gone = !left.contains(&stale);
    let kept = left.contains(&live);
    let _ = sh(&["ip", "netns", "del", &stale]);
    let _ = sh(&["ip", "netns", "del", &live]);
    assert!(gone, "the dead run's namespace is swept: {left}");
    assert!(kept, "a live run's namespace is kept: {left}");
}

/// README's lifecycle promises, one after another: `--port` and `--underlay-mtu` on the daemon,
/// attach by `/proc/PID/ns/net` with `--ifname`, detach (the interface disappears), `peer rm`,
/// `network rm`, and a clean exit on SIGINT.
#[test]
fn ports_mtu_paths_ifnames_detach_rm_and_sigint_do_what_readme_says() {
    let mut lab = Lab::new(2);
    for i in 0..2 {
        let peer = &lab.hosts[1 - i].ip;
        let args: Vec<String> = [
            "--listen",
            &lab.hosts[i].ip,
            "--port",
            "4790",
            "--peer",
            &format!("{peer}:4790"),
            "--underlay-mtu",
            "1400",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        lab.hosts[i].start(&args);
    }
    for h in &lab.hosts {
        h.create_network("n", 90, "10.90.0.0/24", &["--gateway", "10.90.0.254"]);
        let ls = h.json(&["network", "ls"]);
        assert_eq!(ls[0]["mtu"], 1350, "--underlay-mtu 1400 leaves 1350: {ls}");
        let peers = h.json(&["peer", "ls"]);
        assert!(
            peers[0]["addr"]
                .as_str()
                .is_some_and(|a| a.ends_with(":4790")),
            "{peers}"
        );
    }
    // Container 1 is named by the path of a process inside it, with its own interface name.
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    let holder = Bg::spawn(ns_cmd(&c1, "sleep").arg("60"));
    let pid = holder.pid().expect("the holder runs");
    let path = format!("/proc/{pid}/ns/net");
    let p1 = lab.hosts[0].json(&["attach", &path, "--network", "n", "--ifname", "vx0"]);
    assert_eq!(
        (jstr(&p1, "ifname"), p1["mtu"].clone()),
        ("vx0".into(), 1350.into())
    );
    assert!(links(&c1).iter().any(|l| l == "vx0"), "{:?}", links(&c1));
    let mtu_in = sh_ok(&["ip", "-n", &c1, "-j", "link", "show", "vx0"]);
    assert!(mtu_in.contains("\"mtu\":1350"), "{mtu_in}");
    lab.hosts[1].attach(&c2, "n", &[]);
    // The underlay really is port 4790.
    lab.assert_ping(&c2, "10.90.0.1");
    let peer_rx = lab.hosts[1].json(&["stats"])["peers"][0]["traffic"]["rx_frames"]
        .as_u64()
        .expect("rx");
    assert!(peer_rx > 0, "frames came in from the peer on 4790");
    // Detach by the same path: the interface is gone, and the reply names it.
    let gone = lab.hosts[0].json(&["detach", &path]);
    assert_eq!(jstr(&gone[0], "ifname"), "vx0");
    assert!(!links(&c1).iter().any(|l| l == "vx0"), "{:?}", links(&c1));
    assert_eq!(
        lab.hosts[0].json(&["network", "inspect", "n"])["ports"],
        serde_json::json!([])
    );
    let _ = holder.interrupt(Duration::from_secs(5));
    // peer rm and network rm succeed and say so.
    let b_peer = format!("{}:4790", lab.hosts[1].ip);
    let removed = lab.hosts[0].json(&["peer", "rm", &b_peer]);
    assert_eq!(jstr(&removed, "addr"), b_peer);
    assert_eq!(lab.hosts[0].json(&["peer", "ls"]), serde_json::json!([]));
    let rm = lab.hosts[0].json(&["network", "rm", "n"]);
    assert_eq!(jstr(&rm, "name"), "n");
    assert_eq!(lab.hosts[0].json(&["network", "ls"]), serde_json::json!([]));
    // SIGINT: a clean exit; host B's container keeps its interface for the next daemon.
    let status = lab.hosts[1].interrupt();
    assert!(status.success(), "exit on SIGINT: {status}");
    assert!(links(&c2).iter().any(|l| l == "eth0"), "{:?}", links(&c2));
}

/// README: "`--network` may be left out when the daemon has exactly one network". With none,
/// or with two, attach without it is refused with a message that names the fix, and changes
/// nothing.
#[test]
fn attach_without_network_takes_the_only_one_and_never_guesses() {
    let mut lab = Lab::new(1);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let a = &lab.hosts[0];
    let c1 = lab.netns("c1");
    let refused = |ns: &str, needle: &str| {
        let out = a.vs(&["attach", ns]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "refused: {stderr}");
        assert!(
            stderr.contains(needle),
            "names the fix ({needle:?}): {stderr}"
        );
        assert_eq!(
            links(ns),
            vec!["lo".to_string()],
            "nothing attached in {ns}"
        );
    };
    refused(&c1, "network create");
    a.create_network("only", 710, "10.71.0.0/24", &[]);
    let port = a.json(&["attach", &c1]);
    assert_eq!(port["network"], "only", "{port}");
    let ip = port["ip"].as_str().expect("an address").to_string();
    assert!(
        ip.starts_with("10.71.0."),
        "an address of the only network: {port}"
    );
    assert_eq!(addrs4(&c1, "eth0"), vec![ip]);
    a.create_network("second", 711, "10.72.0.0/24", &[]);
    let c2 = lab.netns("c2");
    refused(&c2, "--network");
}
