//! The daemon's own attack surface, as a hostile user or container would probe it: namespace
//! paths that are not containers' (a FIFO, a symlink, the daemon's own namespace, PID 1's), and
//! a container that answers ARP for every address while another attaches.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::*;

/// Two meshed hosts with network `n` (VNI `vni`, `subnet`) on both.
fn two_hosts_with_network(vni: u32, subnet: &str) -> Lab {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        // The gateway out of the way of the containers at .1 and .2.
        let gateway = subnet.replace(".0/24", ".254");
        h.create_network("n", vni, subnet, &["--gateway", &gateway]);
    }
    lab
}

/// Files this test put under /run/netns, removed even when it fails.
struct RunNetnsFiles(Vec<PathBuf>);

impl Drop for RunNetnsFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `vswitch attach ARGS` must fail with one error line containing `needle`, quickly, and
/// leave the network without ports; `stats` answers right after.
fn refused(h: &Host, netns: &str, needle: &str) {
    let started = Instant::now();
    let out = h.vs(&["attach", netns, "--network", "n"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "attach {netns}: {out:?}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "attach {netns}: expected {needle:?} in {stderr}"
    );
    assert!(
        took < Duration::from_secs(5),
        "attach {netns} took {took:?}"
    );
    let inspect = h.json(&["network", "inspect", "n"]);
    assert_eq!(inspect["ports"], serde_json::json!([]), "{inspect}");
}

#[test]
fn attach_refuses_fifos_symlinks_the_daemon_and_the_host() {
    let mut lab = Lab::new(1);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let h = &lab.hosts[0];
    h.create_network("n", 50, "10.50.0.0/24", &[]);
    let real = lab.netns("real");

    std::fs::create_dir_all("/run/netns").expect("/run/netns");
    let fifo = PathBuf::from(format!("/run/netns/{}fifo", lab.prefix));
    let link = PathBuf::from(format!("/run/netns/{}link", lab.prefix));
    let _files = RunNetnsFiles(vec![fifo.clone(), link.clone()]);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::os::unix::fs::symlink(format!("/run/netns/{real}"), &link).expect("symlink");

    // A FIFO would hang a plain open (and with it the whole daemon) until someone wrote to it.
    refused(h, &format!("{}fifo", lab.prefix), "not a network namespace");
    refused(h, &format!("{}link", lab.prefix), "symbolic link");
    let pid = h.pid().expect("daemon running");
    refused(
        h,
        &format!("/proc/{pid}/ns/net"),
        "the daemon's own network namespace",
    );
    // PID 1's namespace: refused as the host's, or (in a sandbox) not even openable.
    let out = h.vs(&["attach", "/proc/1/ns/net", "--network", "n"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    refused(h, "/proc/self/ns/net", "/proc/PID/ns/net");
    refused(h, "/tmp/anything", "/proc/PID/ns/net");
    // And a real container still attaches, by name and by /run/netns path.
    h.attach(&real, "n", &[]);
    assert_eq!(
        h.json(&["network", "inspect", "n"])["ports"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// Answers every ARP request for an address of 10.60.0.0/24 with this namespace's MAC, each
/// reply `delay` seconds after the request.
const PY_ARP_LIAR: &str = r#"
import socket, struct, sys, time
ifname, seconds = sys.argv[1], float(sys.argv[2])
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
due = []
m = bytes.fromhex(open('/sys/class/net/%s/address' % ifname).read().strip().replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0x0806))
s.settimeout(0.1)
print('ready', flush=True)
end = time.time() + seconds
n = 0
while time.time() < end:
    while due and due[0][0] <= time.time():
        s.send(due.pop(0)[1])
        n += 1
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 42: continue
    if data[12:14] != b'\x08\x06' or data[20:22] != b'\x00\x01': continue
    sha, tpa = data[22:28], data[38:42]
    if tpa[:3] != bytes([10, 60, 0]): continue
    reply = (sha + m + b'\x08\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2)
             + m + tpa + sha + data[28:32])
    due.append((time.time() + delay, reply.ljust(60, b'\0')))
    s.settimeout(min(0.1, delay) if delay else 0.1)
print(n, flush=True)
"#;

#[test]
fn a_station_answering_arp_for_every_address_cannot_block_attach_or_the_daemon() {
    let lab = two_hosts_with_network(60, "10.60.0.0/24");
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    // The liar lives on host B; host A's attach probes across the overlay.
    let liar = lab.netns("liar");
    // Without port security (which would drop its false claims at its own port: see
    // `port_security_drops_false_arp_claims`), so the probe cap is what stops the attach.
    let liar_port = b.attach(
        &liar,
        "n",
        &["--ip", "10.60.0.200/24", "--no-port-security"],
    );
    let liar_mac = jstr(&liar_port, "mac");
    // Each claim comes 0.4 s after the probe: 8 probes keep the attach busy for over 3 s.
    let mut responder = Bg::spawn(&mut py_cmd(&liar, PY_ARP_LIAR, &["eth0", "40", "0.4"]));
    responder.wait_for("ready", Duration::from_secs(15));

    let victim = lab.netns("victim");
    let started = Instant::now();
    let (out, stats_took) = std::thread::scope(|s| {
        let attach = s.spawn(|| a.vs(&["attach", &victim, "--network", "n"]));
        // While the attach probes, the daemon keeps serving: it does not hold its state lock
        // across the probes (if it did, stats would wait about 2 s more for the attach).
        std::thread::sleep(Duration::from_millis(1000));
        let t = Instant::now();
        a.json(&["stats"]);
        let stats_took = t.elapsed();
        assert!(!attach.is_finished(), "the attach is still probing");
        (attach.join().expect("attach thread"), stats_took)
    });
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("8 addresses in a row"), "{stderr}");
    assert!(
        stderr.contains(&liar_mac),
        "names the station that claimed them: {stderr}"
    );
    assert!(
        took < Duration::from_secs(20),
        "capped, not a walk of the /24: {took:?}"
    );
    assert!(
        stats_took < Duration::from_millis(1500),
        "stats waited {stats_took:?} behind the attach"
    );
    // Nothing was left behind; once the liar is gone the attach works.
    assert_eq!(
        a.json(&["network", "inspect", "n"])["ports"],
        serde_json::json!([])
    );
    drop(responder);
    a.attach(&victim, "n", &[]);
}

#[test]
fn port_security_drops_false_arp_claims() {
    let lab = two_hosts_with_network(60, "10.60.0.0/24");
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let liar = lab.netns("liar");
    b.attach(&liar, "n", &["--ip", "10.60.0.200/24"]);
    let mut responder = Bg::spawn(&mut py_cmd(&liar, PY_ARP_LIAR, &["eth0", "30"]));
    responder.wait_for("ready", Duration::from_secs(15));
    let c = lab.netns("c");
    let port = a.attach(&c, "n", &[]);
    assert_eq!(
        jstr(&port, "ip"),
        "10.60.0.1/24",
        "the first address: no claim got through"
    );
    assert!(
        port_drops(b, &liar, "port_security") >= 1,
        "the false claims were dropped"
    );
    drop(responder);
}

#[test]
fn a_local_container_cannot_claim_addresses_it_was_not_given() {
    let mut lab = Lab::new(1);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let h = &lab.hosts[0];
    h.create_network("n", 60, "10.60.0.0/24", &["--gateway", "10.60.0.254"]);
    let liar = lab.netns("liar");
    h.attach(
        &liar,
        "n",
        &["--ip", "10.60.0.200/24", "--no-port-security"],
    );
    let mut responder = Bg::spawn(&mut py_cmd(&liar, PY_ARP_LIAR, &["eth0", "30"]));
    responder.wait_for("ready", Duration::from_secs(15));
    // The daemon's records say the liar has 10.60.0.200: its claim on 10.60.0.1 is ignored.
    let c = lab.netns("c");
    let port = h.attach(&c, "n", &[]);
    assert_eq!(jstr(&port, "ip"), "10.60.0.1/24");
    assert!(
        h.log_text().contains("which it was not given; ignored"),
        "{}",
        h.log_text()
    );
    drop(responder);
}

/// Sends `count` copies of one raw frame from `ifname` as fast as it can, with source MAC
/// `src` (spoofed or not) and destination `dst`.
const PY_BLAST: &str = r#"
import socket, sys, time
ifname, dst, src, count, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
mac = lambda m: bytes.fromhex(m.replace(':', ''))
frame = (mac(dst) + mac(src) + b'\x88\xb5' + b'blast').ljust(60, b'\0')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
sent = 0
end = time.time() + seconds
while sent < count and (seconds == 0 or time.time() < end):
    try:
        s.send(frame); sent += 1
    except OSError:
        pass
    if seconds and sent % 64 == 0:
        time.sleep(0.0005)
print(sent, flush=True)
"#;

/// Sends up to `count` copies of a raw frame (for at most `seconds`, if not 0).
fn blast(ns: &str, dst: &str, src: &str, count: u32, seconds: f64) {
    let out = run_cmd(
        &mut py_cmd(
            ns,
            PY_BLAST,
            &["eth0", dst, src, &count.to_string(), &seconds.to_string()],
        ),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "blast from {ns}: {out:?}");
}

/// The `TRAFFIC` of the port in namespace `netns`, from `stats`.
fn port_traffic(h: &Host, netns: &str) -> serde_json::Value {
    let stats = h.json(&["stats"]);
    stats["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["netns"] == netns))
        .map(|p| p["traffic"].clone())
        .unwrap_or_else(|| panic!("no port of {netns} in {stats}"))
}

fn port_rx(h: &Host, netns: &str) -> u64 {
    port_traffic(h, netns)["rx_frames"]
        .as_u64()
        .expect("rx_frames")
}

/// A port's drops for `reason` (a `TRAFFIC` lists only reasons that occurred, so a missing one
/// is 0; the name itself must be a real reason).
fn port_drops(h: &Host, netns: &str, reason: &str) -> u64 {
    assert!(
        vswitch::core::DropReason::ALL
            .iter()
            .any(|r| r.name() == reason),
        "{reason:?} is not a drop reason"
    );
    port_traffic(h, netns)["drops"][reason]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_container_cannot_spoof_another_ones_mac_and_a_storm_is_cut() {
    let lab = two_hosts_with_network(70, "10.70.0.0/24");
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    let c3 = lab.netns("c3");
    let p1 = a.attach(&c1, "n", &["--ip", "10.70.0.1/24"]);
    b.attach(&c2, "n", &["--ip", "10.70.0.2/24"]);
    a.attach(&c3, "n", &["--ip", "10.70.0.3/24"]);
    lab.assert_ping(&c2, "10.70.0.1");
    // c3 sends 50 frames as c1 (unicast to c2 and broadcast): every one dropped at its port.
    let c1_mac = jstr(&p1, "mac");
    blast(&c3, "ff:ff:ff:ff:ff:ff", &c1_mac, 25, 0.0);
    blast(&c3, "02:00:00:00:00:02", &c1_mac, 25, 0.0);
    assert_eq!(port_drops(a, &c3, "port_security"), 50);
    // c1 is still where the switches think it is, and c2's pings reach it: 5 of 5.
    let out = ns_exec(
        &c2,
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.70.0.1"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 received"),
        "{out:?}"
    );
    // A broadcast storm from c1 for 2 s: at most the port's rate (1000/s, bursts of 2000)
    // crosses, and the rest is counted at the port.
    let before = b.json(&["stats"])["peers"][0]["traffic"]["rx_frames"]
        .as_u64()
        .expect("peer rx");
    let rx_before = port_rx(a, &c1);
    let started = Instant::now();
    blast(&c1, "ff:ff:ff:ff:ff:ff", &c1_mac, 1_000_000, 2.0);
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let after = b.json(&["stats"])["peers"][0]["traffic"]["rx_frames"]
        .as_u64()
        .expect("peer rx");
    let crossed = after - before;
    let allowed = 2000.0 + 1000.0 * (secs + 0.5);
    assert!(
        (crossed as f64) <= allowed,
        "{crossed} broadcast frames crossed in {secs:.2} s (limit ≈ {allowed:.0})"
    );
    let dropped = port_drops(a, &c1, "storm_control");
    let read = port_rx(a, &c1) - rx_before;
    assert!(
        read as f64 > allowed,
        "the daemon read {read} frames in {secs:.2} s, more than the limit: a real storm"
    );
    // What did not cross was counted (the peer also hears a few other frames from host A in
    // this window, IPv6 neighbour discovery and the like, so this is not an equality).
    assert!(
        dropped as f64 >= read as f64 - allowed,
        "{dropped} of {read} frames counted as dropped; at most {allowed:.0} may pass"
    );
}

#[test]
fn a_jumbo_frame_from_a_container_that_raised_its_mtu_is_dropped_at_its_port() {
    let lab = two_hosts_with_network(80, "10.80.0.0/24");
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    let c3 = lab.netns("c3");
    let p1 = a.attach(&c1, "n", &["--ip", "10.80.0.1/24"]);
    a.attach(&c2, "n", &["--ip", "10.80.0.2/24"]);
    b.attach(&c3, "n", &["--ip", "10.80.0.3/24"]);
    assert_eq!(p1["mtu"], 1450);
    sh_ok(&["ip", "-n", &c1, "link", "set", "eth0", "mtu", "9000"]);
    let mark = marker("jumbo");
    let seen_local = count_frames(&c2, "eth0", 3.0, Some(MARK_ETHERTYPE), Some(&mark), None);
    let seen_remote = count_frames(&c3, "eth0", 3.0, Some(MARK_ETHERTYPE), Some(&mark), None);
    let jumbo = format!("{mark}{}", "j".repeat(9000 - mark.len()));
    send_frame(&c1, "eth0", "ff:ff:ff:ff:ff:ff", MARK_ETHERTYPE, &jumbo);
    assert_eq!(
        seen_local.result(),
        0,
        "no jumbo frame reached the neighbour on host A"
    );
    assert_eq!(seen_remote.result(), 0, "no jumbo frame reached host B");
    assert_eq!(port_drops(a, &c1, "too_big"), 1);
    // A frame that fits still goes everywhere.
    let ok = marker("fits");
    let seen = count_frames(&c3, "eth0", 3.0, Some(MARK_ETHERTYPE), Some(&ok), None);
    send_frame(&c1, "eth0", "ff:ff:ff:ff:ff:ff", MARK_ETHERTYPE, &ok);
    assert_eq!(seen.result(), 1);
}

/// Sends `count` UDP datagrams to `dst:port` from namespace `ns`.
const PY_UDP_FLOOD: &str = r#"
import socket, sys
dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(count):
    s.sendto(b'x' * 1000, (dst, port))
print('sent', flush=True)
"#;

#[test]
fn nothing_sent_to_the_source_port_sockets_is_queued() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    // The daemon's UDP sockets in host A's namespace, other than 4789: the source-port pool.
    let udp = ns_exec(&a.ns.name, &["cat", "/proc/net/udp"]);
    let table = String::from_utf8_lossy(&udp.stdout).into_owned();
    let pool: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let local = l.split_whitespace().nth(1)?;
            u16::from_str_radix(local.split(':').nth(1)?, 16).ok()
        })
        .filter(|&p| p >= 49152)
        .collect();
    assert_eq!(pool.len(), 8, "eight pool sockets: {table}");
    let out = run_cmd(
        &mut py_cmd(
            &b.ns.name,
            PY_UDP_FLOOD,
            &[&a.ip, &pool[0].to_string(), "2000"],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_millis(200));
    let udp = ns_exec(&a.ns.name, &["cat", "/proc/net/udp"]);
    let table = String::from_utf8_lossy(&udp.stdout).into_owned();
    let row = table
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|local| local.ends_with(&format!(":{:04X}", pool[0])))
        })
        .unwrap_or_else(|| panic!("pool socket {} in {table}", pool[0]));
    // Column 4 is tx_queue:rx_queue, in hex bytes.
    let queues = row.split_whitespace().nth(4).expect("queues");
    assert!(queues.ends_with(":00000000"), "nothing queued: {row}");
}

/// `peer add` refuses the daemon's own address (the switch would be its own peer, and its
/// containers' MACs would move behind it), 0.0.0.0 and multicast, changing nothing.
#[test]
fn peers_that_cannot_be_peers_are_refused() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    let a = &lab.hosts[0];
    let before = a.json(&["peer", "ls"]);
    for peer in [a.ip.as_str(), "127.0.0.1", "0.0.0.0", "239.1.2.3"] {
        let out = a.vs(&["peer", "add", peer]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "peer add {peer}: {err}");
        assert!(
            err.starts_with("error: peer ") && err.contains("give another host's underlay address"),
            "peer add {peer}: {err}"
        );
    }
    assert_eq!(a.json(&["peer", "ls"]), before, "nothing changed");
}
