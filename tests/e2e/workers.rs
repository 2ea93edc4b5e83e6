//! Data-path workers (`daemon --workers N`): every port gets one TAP queue per worker, traffic
//! crosses hosts with different worker counts intact, and a restarted daemon takes its ports
//! back with its own worker count, whatever the last one ran.

use crate::support::*;

/// How many queues the kernel sends on for `dev` in `ns` (`ip netns exec` mounts the
/// namespace's own sysfs).
fn tx_queues(ns: &str, dev: &str) -> usize {
    let out = ns_exec(ns, &["ls", &format!("/sys/class/net/{dev}/queues")]);
    assert!(
        out.status.success(),
        "listing {dev}'s queues in {ns}: {out:?}"
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|q| q.starts_with("tx-"))
        .count()
}

/// `streams` TCP transfers of `each` bytes at once, on ports `base..`, each checked with
/// SHA-256 at both ends.
fn transfers(from: &str, to: &str, to_ip: &str, base: u16, streams: u16, each: usize) {
    std::thread::scope(|s| {
        let all: Vec<_> = (0..streams)
            .map(|i| s.spawn(move || tcp_transfer(from, to, to_ip, base + i, each)))
            .collect();
        for (i, t) in all.into_iter().enumerate() {
            assert!(t.join().is_ok(), "transfer {i} of {streams} failed");
        }
    });
}

fn start_with_workers(lab: &mut Lab, i: usize, workers: &str) {
    let mut args = lab.mesh_args(i);
    args.extend(["--workers".to_string(), workers.to_string()]);
    lab.hosts[i].start(&args);
}

#[test]
fn every_port_has_a_queue_per_worker_across_restarts() {
    let mut lab = Lab::new(2);
    start_with_workers(&mut lab, 0, "3");
    start_with_workers(&mut lab, 1, "1");
    for h in &lab.hosts {
        h.create_network("mq", 410, "10.41.0.0/24", &[]);
    }
    let c1 = lab.netns("q1");
    let c2 = lab.netns("q2");
    lab.hosts[0].attach(&c1, "mq", &["--ip", "10.41.0.11/24"]);
    lab.hosts[1].attach(&c2, "mq", &["--ip", "10.41.0.12/24"]);
    assert_eq!(tx_queues(&c1, "eth0"), 3, "host A runs 3 workers");
    assert_eq!(tx_queues(&c2, "eth0"), 1, "host B runs 1 worker");
    lab.assert_ping(&c1, "10.41.0.12");
    transfers(&c1, &c2, "10.41.0.12", 9410, 6, 16 << 20);
    transfers(&c2, &c1, "10.41.0.11", 9420, 6, 16 << 20);

    // Restarted with 2 workers, host A takes its port back with 2 queues.
    lab.hosts[0].stop();
    start_with_workers(&mut lab, 0, "2");
    assert_eq!(tx_queues(&c1, "eth0"), 2, "after a restart with 2 workers");
    lab.assert_ping(&c1, "10.41.0.12");
    transfers(&c1, &c2, "10.41.0.12", 9430, 4, 16 << 20);

    // And with 1 worker, one queue of the multi-queue port.
    lab.hosts[0].stop();
    start_with_workers(&mut lab, 0, "1");
    assert_eq!(tx_queues(&c1, "eth0"), 1, "after a restart with 1 worker");
    lab.assert_ping(&c1, "10.41.0.12");
    transfers(&c1, &c2, "10.41.0.12", 9440, 2, 16 << 20);
    for h in &lab.hosts {
        let s = h.json(&["stats"]);
        let drops: Vec<_> = s["drops"]
            .as_object()
            .unwrap_or_else(|| panic!("stats has no drops object: {s}"))
            .iter()
            .filter(|(_, n)| n.as_u64() != Some(0))
            .collect();
        assert!(drops.is_empty(), "drops on {}: {drops:?}", h.label);
    }
}

#[test]
fn a_worker_count_out_of_range_is_a_usage_error() {
    for bad in ["0", "17", "many"] {
        let out = sh(&[VSWITCH, "daemon", "--workers", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--workers {bad}: {stderr}");
        assert!(
            stderr.contains("--workers") && stderr.contains(bad),
            "--workers {bad}: the error names the flag and the value: {stderr}"
        );
    }
}
