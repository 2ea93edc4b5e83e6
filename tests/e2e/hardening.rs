//! The daemon's own attack surface, as a hostile user or container would probe it: namespace
//! paths that are not containers' (a FIFO, a symlink, the daemon's own namespace, PID 1's), and
//! a container that answers ARP for every address while another attaches.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::*;

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
    let mut lab = Lab::new(2);
    lab.start_mesh();
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    for h in [a, b] {
        h.create_network("n", 60, "10.60.0.0/24", &[]);
    }
    // The liar lives on host B; host A's attach probes across the overlay.
    let liar = lab.netns("liar");
    let liar_port = b.attach(&liar, "n", &["--ip", "10.60.0.200/24"]);
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
fn a_local_container_cannot_claim_addresses_it_was_not_given() {
    let mut lab = Lab::new(1);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let h = &lab.hosts[0];
    h.create_network("n", 60, "10.60.0.0/24", &[]);
    let liar = lab.netns("liar");
    h.attach(&liar, "n", &["--ip", "10.60.0.200/24"]);
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
