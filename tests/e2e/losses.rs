//! Every frame lost on vswitch's path is counted in `vswitch stats`, even where the switch
//! never sees it: at a TAP's full queue (the interface's own `tx_dropped`) and at the underlay
//! socket's full receive queue (`SO_RXQ_OVFL`). The daemon is paused (SIGSTOP) so both queues
//! certainly overflow.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// SIGSTOPs a daemon this test started; SIGCONT when dropped, panics included.
struct Paused(libc::pid_t);

impl Paused {
    fn new(h: &Host) -> Paused {
        let pid = h.pid().expect("the daemon runs") as libc::pid_t;
        // SAFETY: kill(2) on the PID of a daemon child this test spawned and has not reaped.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as in `Paused::new`; the child is still not reaped.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

const FLOOD: &str = "
import socket, sys
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# 1 000 bytes each: 40 000 of them are about twice what the daemon's 16 MiB receive buffer
# (32 MiB with the kernel's bookkeeping) holds.
payload = b'lost-or-counted' * 67
for _ in range(n):
    s.sendto(payload, (ip, port))
";

fn flood(ns: &str, ip: &str, port: u16, n: u64) {
    let out = run_cmd(
        &mut py_cmd(ns, FLOOD, &[ip, &port.to_string(), &n.to_string()]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "flood from {ns}: {out:?}");
}

fn dataplane(h: &Host, key: &str) -> u64 {
    h.json(&["stats"])["dataplane"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats.dataplane.{key} is a number"))
}

/// The datagrams a paused daemon's socket had no room for are counted: every datagram sent
/// was either received or counted as an overflow (less what the kernel dropped before the
/// socket, in its per-CPU backlogs, which is no queue of ours).
#[test]
fn underlay_socket_overflows_are_counted() {
    let mut lab = Lab::new(1);
    lab.start_mesh();
    let h = &lab.hosts[0];
    let sender = lab.underlay_node("fl", "192.0.2.50");
    let rx0 = dataplane(h, "underlay_rx_datagrams");
    assert_eq!(dataplane(h, "underlay_rx_overflows"), 0);
    let backlog0 = backlog_drops();
    const N: u64 = 40_000;
    const AFTER: u64 = 20;
    {
        let _paused = Paused::new(h);
        flood(&sender, &h.ip, 4789, N);
    }
    // The queue drains; datagrams queued after the overflow carry the count.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    loop {
        let rx = dataplane(h, "underlay_rx_datagrams");
        if rx == last || Instant::now() > deadline {
            break;
        }
        last = rx;
        std::thread::sleep(Duration::from_millis(300));
    }
    // The overflow shows without any datagram after it: the datagrams drained above were
    // queued before it and carry no count, and a later one may land on another worker's
    // socket (the kernel hashes each flow to one socket of the group).
    let deadline = Instant::now() + Duration::from_secs(5);
    while dataplane(h, "underlay_rx_overflows") == 0 {
        assert!(
            Instant::now() < deadline,
            "5 s after the flood, stats show no overflow of the paused daemon's socket"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    flood(&sender, &h.ip, 4789, AFTER);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (rx, overflows) = loop {
        let v: Value = h.json(&["stats"]);
        let d = &v["dataplane"];
        let rx = d["underlay_rx_datagrams"].as_u64().expect("rx") - rx0;
        let overflows = d["underlay_rx_overflows"].as_u64().expect("overflows");
        if rx + overflows >= N + AFTER || Instant::now() > deadline {
            break (rx, overflows);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let backlog = backlog_drops() - backlog0;
    assert!(
        overflows > 0,
        "a paused daemon's socket overflowed, but stats show no overflow (rx {rx})"
    );
    assert!(
        rx + overflows <= N + AFTER && rx + overflows + backlog >= N + AFTER,
        "sent {} datagrams: received {rx} + counted overflows {overflows} (+ {backlog} dropped \
         in the kernel's backlogs) must account for all of them, no more",
        N + AFTER
    );
}

/// The kernel's count of packets dropped at its per-CPU input backlogs (`/proc/net/softnet_stat`,
/// second column, hex), summed over CPUs.
fn backlog_drops() -> u64 {
    read_file(std::path::Path::new("/proc/net/softnet_stat"))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum()
}

/// Frames a container sent while the switch was not reading, beyond what the TAP's queue
/// holds, are dropped by the kernel at the TAP; `stats` shows exactly the interface's own count,
/// per port and in total.
#[test]
fn tap_queue_overruns_are_counted() {
    let mut lab = Lab::new(1);
    lab.start_mesh();
    let h = &lab.hosts[0];
    h.create_network("ov", 141, "10.91.0.0/24", &["--gateway", "10.91.0.254"]);
    let c = lab.netns("c1");
    h.attach(&c, "ov", &["--ip", "10.91.0.1/24"]);
    // A neighbour that needs no ARP: every datagram becomes a frame on the TAP at once.
    sh_ok(&[
        "ip",
        "-n",
        &c,
        "neigh",
        "replace",
        "10.91.0.9",
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    const N: u64 = 3_000;
    {
        let _paused = Paused::new(h);
        flood(&c, "10.91.0.9", 9, N);
    }
    let dropped = tx_dropped(&c);
    // The TAP's queue holds its txqueuelen (500 by default) frames; the rest were dropped.
    assert!(
        dropped >= N - 1000,
        "only {dropped} of {N} frames were dropped at the TAP"
    );
    let v = h.json(&["stats"]);
    let port = v["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["netns"].as_str() == Some(c.as_str())))
        .unwrap_or_else(|| panic!("the port of {c} is in stats: {v}"));
    assert_eq!(port["overruns"].as_u64(), Some(dropped), "{port}");
    assert_eq!(
        v["dataplane"]["tap_queue_overruns"].as_u64(),
        Some(dropped),
        "{}",
        v["dataplane"]
    );
}

/// The interface's `tx_dropped`, as the container's kernel counts it.
fn tx_dropped(ns: &str) -> u64 {
    let out = sh_ok(&["ip", "-n", ns, "-s", "-j", "link", "show", "eth0"]);
    let v: Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["stats64"]["tx"]["dropped"]
        .as_u64()
        .unwrap_or_else(|| panic!("tx dropped in {out}"))
}
