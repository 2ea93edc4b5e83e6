//! Live restore: ports outlive the daemon (SIGTERM, SIGKILL), a restarted daemon takes them
//! back, drops those whose namespace is gone, and `vswitch daemon --cleanup` removes them.

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::*;

/// Sends an ICMP echo every 10 ms until the file argv[2] exists; prints `reply <unix time>`
/// for every answer, as it comes.
const PY_LIVE_PING: &str = concat!(
    crate::py_icmp_csum!(),
    r#"
dst, stop = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
ident = (os.getpid() * 7919) & 0xffff
seq, next_send = 0, 0.0
print('started', flush=True)
while not os.path.exists(stop):
    now = time.time()
    if now >= next_send:
        payload = b'vse-live' + bytes(48)
        hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
        try:
            s.sendto(struct.pack('!BBHHH', 8, 0, csum(hdr + payload), ident, seq) + payload, (dst, 0))
        except OSError:
            pass
        seq, next_send = (seq + 1) & 0xffff, now + 0.01
    if select.select([s], [], [], 0.005)[0]:
        try:
            data, addr = s.recvfrom(4096)
        except OSError:
            continue
        icmp = data[(data[0] & 0xf) * 4:][:8]
        if addr[0] == dst and len(icmp) == 8:
            t, _, _, i, _ = struct.unpack('!BBHHH', icmp)
            if t == 0 and i == ident:
                print('reply %.6f' % time.time(), flush=True)
"#
);

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// When the daemon's control socket appeared (its inode's modification time, set by `bind`).
fn socket_born(h: &Host) -> f64 {
    unix(
        fs::metadata(&h.socket)
            .and_then(|m| m.modified())
            .expect("control socket metadata"),
    )
}

/// Link flags of `dev` in `ns` (`UP`, `NO-CARRIER`, …).
fn flags(ns: &str, dev: &str) -> Vec<String> {
    link(ns, dev)["flags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What a container's eth0 is: MAC, addresses, default routes (their gateway and device; a
/// route's `linkdown` flag follows the carrier).
fn interface(ns: &str) -> (Value, Vec<String>, Vec<(Value, Value)>) {
    (
        link(ns, "eth0")["address"].clone(),
        addrs4(ns, "eth0"),
        default_routes(ns)
            .into_iter()
            .map(|r| (r["gateway"].clone(), r["dev"].clone()))
            .collect(),
    )
}

/// Two hosts, network `live` on both, c1 on A and c2 on B.
fn two_containers() -> (Lab, String, String) {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("live", 900, "10.90.0.0/24", &["--gateway", "10.90.0.254"]);
    }
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    lab.hosts[0].attach(&c1, "live", &["--ip", "10.90.0.1/24"]);
    lab.hosts[1].attach(&c2, "live", &["--ip", "10.90.0.2/24"]);
    lab.assert_ping(&c1, "10.90.0.2");
    (lab, c1, c2)
}

fn restore_stats(h: &Host) -> (u64, u64) {
    let s = h.json(&["stats"]);
    (
        s["restore"]["readopted"]
            .as_u64()
            .expect("restore.readopted"),
        s["restore"]["dropped"].as_u64().expect("restore.dropped"),
    )
}

/// kill -9 with a live ping running: the container keeps its interface (NO-CARRIER while no
/// daemon runs), the restarted daemon takes it back, and replies flow again within 1 s of the
/// control socket appearing.
#[test]
fn sigkill_restart_keeps_the_port_and_traffic_resumes_within_a_second() {
    let (mut lab, c1, _c2) = two_containers();
    let before = interface(&c1);
    let stop = lab.dir.join("live-ping.stop");
    let mut live = Bg::spawn(&mut py_cmd(
        &c1,
        PY_LIVE_PING,
        &["10.90.0.2", &stop.to_string_lossy()],
    ));
    live.wait_for("reply", Duration::from_secs(10));

    lab.hosts[0].kill();
    let killed = unix(SystemTime::now());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(interface(&c1), before, "eth0 changed while no daemon ran");
    assert!(
        flags(&c1, "eth0").iter().any(|f| f == "NO-CARRIER"),
        "eth0 should show NO-CARRIER while no daemon runs: {:?}",
        flags(&c1, "eth0")
    );
    let respawned = unix(SystemTime::now());
    lab.hosts[0].respawn();
    let born = socket_born(&lab.hosts[0]);
    assert!(born >= respawned, "the socket is the new daemon's");
    // Long enough for a reply within the target and a margin to see a late one; then stop.
    std::thread::sleep(Duration::from_millis(1500));
    fs::write(&stop, b"").expect("stop file");
    let out = live.finish(Duration::from_secs(5));
    let replies: Vec<f64> = out
        .out
        .iter()
        .filter_map(|l| l.strip_prefix("reply ")?.parse().ok())
        .collect();
    let lost = replies
        .iter()
        .filter(|&&t| t > killed + 0.05 && t < respawned)
        .count();
    assert_eq!(lost, 0, "replies while no daemon ran: {replies:?}");
    let first = replies
        .iter()
        .copied()
        .find(|&t| t > born)
        .unwrap_or_else(|| panic!("no reply after the restart\n{}", lab.logs()));
    let gap = first - born;
    eprintln!(
        "restore: first reply {:.0} ms after the control socket appeared",
        gap * 1000.0
    );
    assert!(
        gap <= 1.0,
        "traffic resumed {gap:.3} s after the control socket appeared (target ≤ 1 s)\n{}",
        lab.logs()
    );
    assert_eq!(interface(&c1), before, "eth0 changed across the restart");
    assert!(!flags(&c1, "eth0").iter().any(|f| f == "NO-CARRIER"));
    assert_eq!(restore_stats(&lab.hosts[0]), (1, 0));
    let ports = lab.hosts[0].json(&["network", "inspect", "live"])["ports"].clone();
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports}");
}

/// SIGTERM no longer removes ports: the restarted daemon takes them back, and `detach` still
/// removes one (the interface goes, and stays gone across the next restart).
#[test]
fn sigterm_restart_keeps_the_port_and_detach_still_removes_it() {
    let (mut lab, c1, _c2) = two_containers();
    let before = interface(&c1);
    let status = lab.hosts[0].stop();
    assert_eq!(status.code(), Some(0), "{}", lab.hosts[0].log_text());
    assert_eq!(interface(&c1), before, "eth0 after SIGTERM");
    lab.hosts[0].respawn();
    assert_eq!(restore_stats(&lab.hosts[0]), (1, 0));
    assert_eq!(interface(&c1), before, "eth0 after the restart");
    lab.assert_ping(&c1, "10.90.0.2");

    let gone = lab.hosts[0].json(&["detach", &c1]);
    assert_eq!(jstr(&gone[0], "ifname"), "eth0");
    assert_eq!(links(&c1), vec!["lo".to_string()], "detach removes eth0");
    lab.hosts[0].stop();
    lab.hosts[0].respawn();
    assert_eq!(
        restore_stats(&lab.hosts[0]),
        (0, 0),
        "a detached port is forgotten"
    );
    assert_eq!(links(&c1), vec!["lo".to_string()]);
}

/// A container whose namespace was deleted while no daemon ran: its port is dropped, logged and
/// counted; the other port is taken back; its address is free again.
#[test]
fn restart_drops_a_port_whose_namespace_is_gone() {
    let (mut lab, c1, _c2) = two_containers();
    let c3 = lab.netns("c3");
    lab.hosts[0].attach(&c3, "live", &["--ip", "10.90.0.3/24"]);
    lab.hosts[0].stop();
    sh_ok(&["ip", "netns", "del", &c3]);
    lab.hosts[0].respawn();
    assert_eq!(restore_stats(&lab.hosts[0]), (1, 1));
    let log = lab.hosts[0].log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("dropped port") && l.contains(&c3) && l.contains("is gone")),
        "the dropped port is logged with its namespace:\n{log}"
    );
    lab.assert_ping(&c1, "10.90.0.2");
    let c4 = lab.netns("c4");
    let att = lab.hosts[0].attach(&c4, "live", &["--ip", "10.90.0.3/24"]);
    assert_eq!(
        jstr(&att, "ip"),
        "10.90.0.3/24",
        "the dropped port's address is free"
    );
}

/// `vswitch daemon --cleanup` removes every port a stopped daemon left; refused while one runs.
#[test]
fn cleanup_removes_the_ports_a_stopped_daemon_left() {
    let (mut lab, c1, _c2) = two_containers();
    let cleanup = Host::cleanup;
    let refused = cleanup(&lab.hosts[0]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && err.contains("a daemon is running")
            && err.contains("stop it first"),
        "{err}"
    );
    assert!(
        links(&c1).iter().any(|l| l == "eth0"),
        "refused cleanup changed nothing"
    );
    lab.hosts[0].stop();
    let done = cleanup(&lab.hosts[0]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&done.stdout).trim(),
        "removed 1 ports (0 were already gone)"
    );
    assert_eq!(links(&c1), vec!["lo".to_string()]);
    let ports = read_file(&lab.hosts[0].state.join("ports.json"));
    assert!(ports.contains("\"ports\": []"), "{ports}");
    lab.hosts[0].respawn();
    assert_eq!(restore_stats(&lab.hosts[0]), (0, 0));
}

/// `attach` announces the container's address (a gratuitous ARP): a peer container whose ARP
/// entry for that address still names an old MAC (a container that came back with a new one)
/// updates it at once, without sending anything itself.
#[test]
fn attach_announces_the_address_so_stale_arp_entries_recover() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("arp", 910, "10.91.0.0/24", &["--gateway", "10.91.0.254"]);
    }
    let c2 = lab.netns("c2");
    lab.hosts[1].attach(&c2, "arp", &["--ip", "10.91.0.2/24"]);
    let old = "02:00:00:91:00:99";
    sh_ok(&[
        "ip",
        "-n",
        &c2,
        "neigh",
        "replace",
        "10.91.0.1",
        "lladdr",
        old,
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);
    // The kernel ignores an update within 1 s (locktime) of the last one.
    std::thread::sleep(Duration::from_millis(1200));
    let c1 = lab.netns("c1");
    let new = "02:00:00:91:00:01";
    lab.hosts[0].attach(&c1, "arp", &["--ip", "10.91.0.1/24", "--mac", new]);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let seen = neigh_mac(&c2, "10.91.0.1");
        if seen.as_deref() == Some(new) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "c2 still resolves 10.91.0.1 to {seen:?} 1 s after the attach, not {new}\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon started while another holds the underlay port waits a little (the old one may be
/// exiting), then says so once, in one `error:` line naming what to do; logs carry no colour
/// codes when stderr is not a terminal.
#[test]
fn a_second_daemon_on_the_same_port_says_so_once_and_logs_have_no_colour_codes() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    let h = &lab.hosts[0];
    let other = lab.dir.join("second");
    let started = std::time::Instant::now();
    let out = run_cmd(
        ns_cmd(&h.ns.name, VSWITCH)
            .arg("--socket")
            .arg(other.join("sock"))
            .args(["daemon", "--listen", &h.ip, "--state-dir"])
            .arg(other.join("state")),
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "it waited for the port"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(errors[0].matches("in use").count(), 1, "said once: {err}");
    assert!(
        errors[0].contains("another vswitch daemon") && errors[0].contains("--port"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "colour codes on a pipe: {err:?}");
    let log = h.log_text();
    assert!(log.contains("control socket"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log:?}");
}

/// A container's namespace deleted without `detach` while the daemon runs: the port is reaped
/// at once (address free, logged, counted, no busy loop on the dead TAP), and `detach` of the
/// vanished namespace still succeeds, as CNI's DEL must.
#[test]
fn a_port_whose_namespace_is_deleted_is_reaped_at_once() {
    let (lab, c1, _c2) = two_containers();
    let a = &lab.hosts[0];
    let c3 = lab.netns("c3");
    a.attach(&c3, "live", &["--ip", "10.90.0.3/24"]);
    sh_ok(&["ip", "netns", "del", &c3]);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while a.json(&["stats"])["restore"]["reaped"].as_u64() != Some(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "port not reaped within 3 s\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(a.log_text().contains("reaped port"), "{}", a.log_text());
    std::thread::sleep(Duration::from_millis(500));
    let errors = a.json(&["stats"])["dataplane"]["tap_read_errors"]
        .as_u64()
        .expect("tap_read_errors");
    assert!(
        errors <= 2,
        "the dead TAP is not polled again: {errors} read errors"
    );
    let ports = a.json(&["network", "inspect", "live"])["ports"].clone();
    assert_eq!(
        ports.as_array().map(Vec::len),
        Some(1),
        "only c1's: {ports}"
    );
    let gone = a.json(&["detach", &c3]);
    assert_eq!(
        gone,
        serde_json::json!([]),
        "detach of a vanished namespace succeeds"
    );
    let c4 = lab.netns("c4");
    a.attach(&c4, "live", &["--ip", "10.90.0.3/24"]);
    lab.assert_ping(&c1, "10.90.0.2");
    // Nothing of the reaped port blocks `network rm` once the live ports are detached.
    a.ok(&["detach", &c1]);
    a.ok(&["detach", &c4]);
    a.ok(&["network", "rm", "live"]);
}
