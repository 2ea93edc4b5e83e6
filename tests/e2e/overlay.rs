//! Forwarding across hosts: isolation between networks with overlapping subnets, flooding
//! exactly once in a full mesh, and what the underlay actually carries.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

#[test]
fn two_hosts_two_networks_same_subnet() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    for h in [a, b] {
        h.create_network("blue", 100, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
        h.create_network("red", 200, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
    }
    let a1 = lab.netns("a1");
    let a2 = lab.netns("a2");
    let b1 = lab.netns("b1");
    let b2 = lab.netns("b2");
    let r3 = lab.netns("r3");
    const A1_MAC: &str = "02:00:00:00:01:01";
    let att = a.attach(&a1, "blue", &["--ip", "10.10.0.1/24", "--mac", A1_MAC]);
    assert_eq!(jstr(&att, "ip"), "10.10.0.1/24", "attach --json: {att}");
    assert_eq!(jstr(&att, "mac"), A1_MAC, "attach --json: {att}");
    b.attach(
        &b1,
        "blue",
        &["--ip", "10.10.0.2/24", "--mac", "02:00:00:00:01:02"],
    );
    a.attach(
        &a2,
        "red",
        &["--ip", "10.10.0.1/24", "--mac", "02:00:00:00:02:01"],
    );
    b.attach(
        &b2,
        "red",
        &["--ip", "10.10.0.2/24", "--mac", "02:00:00:00:02:02"],
    );
    // An address that exists only in red.
    b.attach(
        &r3,
        "red",
        &["--ip", "10.10.0.3/24", "--mac", "02:00:00:00:02:03"],
    );
    assert_eq!(
        link(&a1, "eth0")["address"].as_str(),
        Some(A1_MAC),
        "a1's eth0 should carry the MAC given with --mac"
    );

    // The same addresses live on both networks: check who answered, not just that someone did.
    lab.assert_ping(&a1, "10.10.0.2");
    assert_neigh(&a1, "10.10.0.2", "02:00:00:00:01:02");
    lab.assert_ping(&a2, "10.10.0.2");
    assert_neigh(&a2, "10.10.0.2", "02:00:00:00:02:02");
    lab.assert_ping(&b2, "10.10.0.1");
    assert_neigh(&b2, "10.10.0.1", "02:00:00:00:02:01");
    lab.assert_ping(&b1, "10.10.0.1");
    assert_neigh(&b1, "10.10.0.1", A1_MAC);

    tcp_transfer(&a1, &b1, "10.10.0.2", 9100, 20 * 1024 * 1024);

    // Isolation: while a1 ARPs for, pings and broadcasts to blue, nothing from a1's MAC shows
    // up in red (b2), and b1 (blue) does see the broadcast, so the counters are live.
    sh_ok(&["ip", "-n", &a1, "neigh", "flush", "all"]);
    let mark = marker("iso");
    let in_b2 = count_frames(&b2, "eth0", 60.0, None, None, Some(A1_MAC));
    let in_r3 = count_frames(&r3, "eth0", 60.0, None, None, Some(A1_MAC));
    let bcast_b1 = count_frames(&b1, "eth0", 60.0, Some(MARK_ETHERTYPE), Some(&mark), None);
    send_frame(&a1, "eth0", "ff:ff:ff:ff:ff:ff", MARK_ETHERTYPE, &mark);
    let replies = ping(&a1, "10.10.0.2", 3);
    assert_eq!(
        replies, 3,
        "a1 -> b1 ping during the isolation window: {replies}/3"
    );
    assert_eq!(
        bcast_b1.stop_after(Duration::from_secs(1)),
        1,
        "b1 (blue) should receive a1's broadcast exactly once"
    );
    let leaked = in_b2.stop_after(Duration::ZERO);
    assert_eq!(leaked, 0, "{leaked} frames from a1 (blue) reached b2 (red)");
    let leaked = in_r3.stop_after(Duration::ZERO);
    assert_eq!(leaked, 0, "{leaked} frames from a1 (blue) reached r3 (red)");

    // ARP from blue for an address present only in red: no answer. The same probe for a blue
    // address is answered, proving the probe itself works.
    let n = arp_replies(&a1, "eth0", "10.10.0.1", "10.10.0.2", 3);
    assert_eq!(
        n, 3,
        "control: 3 ARP requests for 10.10.0.2 (b1, blue) from a1: one reply each"
    );
    let n = arp_replies(&a1, "eth0", "10.10.0.1", "10.10.0.3", 3);
    assert_eq!(
        n, 0,
        "ARP from a1 (blue) for 10.10.0.3 (only in red) was answered {n} times"
    );
}

#[test]
fn three_host_broadcast_exactly_once() {
    let mut lab = Lab::new(3);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("bc", 300, "10.30.0.0/24", &["--gateway", "10.30.0.254"]);
    }
    let a1 = lab.netns("a1");
    let a2 = lab.netns("a2");
    let b1 = lab.netns("b1");
    let c1 = lab.netns("c1");
    let (a, b, c) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);
    a.attach(
        &a1,
        "bc",
        &["--ip", "10.30.0.1/24", "--mac", "02:00:00:30:00:01"],
    );
    a.attach(
        &a2,
        "bc",
        &["--ip", "10.30.0.2/24", "--mac", "02:00:00:30:00:02"],
    );
    b.attach(
        &b1,
        "bc",
        &["--ip", "10.30.0.3/24", "--mac", "02:00:00:30:00:03"],
    );
    c.attach(
        &c1,
        "bc",
        &["--ip", "10.30.0.4/24", "--mac", "02:00:00:30:00:04"],
    );

    let mark = marker("bcast");
    let counters: Vec<(&str, Counter)> = [("a1", &a1), ("a2", &a2), ("b1", &b1), ("c1", &c1)]
        .into_iter()
        .map(|(n, ns)| {
            (
                n,
                count_frames(ns, "eth0", 60.0, Some(MARK_ETHERTYPE), Some(&mark), None),
            )
        })
        .collect();
    send_frame(&a1, "eth0", "ff:ff:ff:ff:ff:ff", MARK_ETHERTYPE, &mark);
    let mut got = Vec::new();
    // Duplicates would arrive within milliseconds; two seconds is generous.
    let mut settle = Duration::from_secs(2);
    for (n, c) in counters {
        got.push((n, c.stop_after(settle)));
        settle = Duration::ZERO;
    }
    let want = vec![("a1", 0), ("a2", 1), ("b1", 1), ("c1", 1)];
    assert_eq!(
        got,
        want,
        "one broadcast from a1 must reach every other container exactly once and not echo back \
         to a1 (got, want)\n{}",
        lab.logs()
    );
}

#[test]
fn underlay_capture_shows_vxlan_with_vni() {
    require_root();
    require_tool("tshark", "tshark");
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("cap", 100, "10.100.0.0/24", &["--gateway", "10.100.0.254"]);
    }
    let ca = lab.netns("ca");
    let cb = lab.netns("cb");
    lab.hosts[0].attach(&ca, "cap", &["--ip", "10.100.0.1/24"]);
    lab.hosts[1].attach(&cb, "cap", &["--ip", "10.100.0.2/24"]);

    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.hosts[0].ns.name, "tshark", "-l", "-n"])
        .args([
            "-i",
            UNDERLAY_DEV,
            "-f",
            "udp port 4789",
            "-c",
            "8",
            "-a",
            "duration:25",
        ])
        .args(["-T", "fields", "-e", "vxlan.vni", "-e", "udp.dstport"])
        .args(["-e", "ip.flags.df", "-e", "udp.checksum"])
        // The outer headers: the first occurrence of each field (the inner packet has its own).
        .args(["-E", "occurrence=f"]);
    let mut tshark = Bg::spawn(&mut cmd);
    tshark.wait_for("Capturing on", Duration::from_secs(20));

    lab.assert_ping(&ca, "10.100.0.2");
    ping(&ca, "10.100.0.2", 3);
    let r = tshark.finish(Duration::from_secs(40));
    let fields: Vec<Vec<String>> = r
        .out
        .iter()
        .map(|l| l.split('\t').map(|f| f.trim().to_string()).collect())
        .filter(|f: &Vec<String>| f.len() == 4)
        .collect();
    // README: DF on every datagram (VXLAN is never fragmented), and the UDP checksum zero on
    // the single frames the raw socket sends (ping here; GSO runs carry one).
    for f in &fields {
        assert!(f[2] == "1" || f[2] == "True", "DF set: {f:?}");
        assert_eq!(
            f[3], "0x0000",
            "UDP checksum zero on raw-socket datagrams: {f:?}"
        );
    }
    let rows: Vec<(String, String)> = fields
        .iter()
        .map(|f| (f[0].clone(), f[1].clone()))
        .collect();
    assert!(
        rows.iter()
            .any(|(vni, port)| vni == "100" && port == "4789"),
        "tshark on host A's underlay saw no VXLAN VNI 100 to UDP 4789; rows: {rows:?}\nstderr: {}",
        r.err.join("\n")
    );
    assert!(
        rows.iter().all(|(vni, _)| vni == "100"),
        "every VXLAN packet on the underlay should carry VNI 100 (the only network): {rows:?}"
    );
}

/// README: datagrams the kernel segments for us (UDP GSO, the TSO path) carry a UDP checksum,
/// and it is right. Host A's underlay computes checksums in software (as a NIC without
/// checksum offload does), so the capture sees the finished checksum instead of veth's partial
/// one, and tshark verifies it. These carry DF too, like the raw socket's single frames; and
/// one flow keeps one outer source port whichever way its frames leave (single frames from the
/// raw socket, runs from a GSO socket), so ECMP keeps it on one path, in order.
#[test]
fn gso_datagrams_carry_a_correct_udp_checksum() {
    require_root();
    require_tool("tshark", "tshark");
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("gso", 100, "10.100.0.0/24", &["--gateway", "10.100.0.254"]);
    }
    let ca = lab.netns("ca");
    let cb = lab.netns("cb");
    lab.hosts[0].attach(&ca, "gso", &["--ip", "10.100.0.1/24"]);
    lab.hosts[1].attach(&cb, "gso", &["--ip", "10.100.0.2/24"]);
    disable_tx_checksum(&lab.hosts[0].ns.name, UNDERLAY_DEV);
    lab.assert_ping(&ca, "10.100.0.2");

    let src = &lab.hosts[0].ip;
    let filter = format!("udp dst port 4789 and src host {src}");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.hosts[0].ns.name, "tshark", "-l", "-n"])
        .args(["-i", UNDERLAY_DEV, "-f", &filter, "-c", "3000"])
        .args(["-a", "duration:40", "-o", "udp.check_checksum:TRUE"])
        .args([
            "-T",
            "fields",
            "-e",
            "udp.checksum",
            "-e",
            "udp.checksum.status",
        ])
        .args([
            "-e",
            "ip.flags.df",
            "-e",
            "udp.srcport",
            "-e",
            "tcp.dstport",
        ])
        // The outer IP and UDP headers' fields; the TCP port is the inner frame's.
        .args(["-E", "occurrence=f"]);
    let mut tshark = Bg::spawn(&mut cmd);
    tshark.wait_for("Capturing on", Duration::from_secs(20));
    tcp_transfer(&ca, &cb, "10.100.0.2", 5201, 8 << 20);
    let r = tshark.interrupt(Duration::from_secs(20));
    let fields: Vec<Vec<String>> = r
        .out
        .iter()
        .map(|l| l.split('\t').map(|f| f.trim().to_string()).collect())
        .filter(|f: &Vec<String>| f.len() == 5)
        .collect();
    for f in &fields {
        assert!(
            f[2] == "1" || f[2] == "True",
            "DF set on every datagram: {f:?}"
        );
    }
    // The transfer's data direction (to port 5201) left as single frames (its handshake,
    // checksum zero) and as GSO runs (checksummed), all from one outer source port.
    let flow: Vec<&Vec<String>> = fields.iter().filter(|f| f[4] == "5201").collect();
    let ports: std::collections::BTreeSet<&str> = flow.iter().map(|f| f[3].as_str()).collect();
    let single = flow.iter().filter(|f| f[0] == "0x0000").count();
    assert!(
        single >= 1 && flow.len() - single > 100,
        "the flow left both ways: {single} single frames, {} GSO datagrams",
        flow.len() - single
    );
    assert_eq!(
        ports.len(),
        1,
        "one flow, one outer source port, single frames and GSO runs alike: {ports:?}"
    );
    let rows: Vec<(String, String)> = fields
        .iter()
        .map(|f| (f[0].clone(), f[1].clone()))
        .collect();
    assert!(
        rows.len() > 1000,
        "too few datagrams captured: {}",
        rows.len()
    );
    // Single frames go out through the raw socket with checksum zero (checked above);
    // everything with a checksum came from a GSO run.
    let summed: Vec<&(String, String)> = rows.iter().filter(|(s, _)| s != "0x0000").collect();
    assert!(
        summed.len() > 100,
        "an 8 MB transfer should leave mostly in GSO runs, with checksums; {} of {} had one",
        summed.len(),
        rows.len()
    );
    let bad: Vec<_> = summed
        .iter()
        .filter(|(_, status)| status != "1" && status != "Good")
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} GSO datagrams failed tshark's UDP checksum check, e.g. {:?}",
        bad.len(),
        summed.len(),
        bad.iter().take(5).collect::<Vec<_>>()
    );
}
