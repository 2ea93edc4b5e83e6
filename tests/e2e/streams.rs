//! Many TCP streams at once between two hosts, plain and sealed: 200 MB over 8 parallel
//! streams, each checked end to end with SHA-256. Parallel streams are what would reorder
//! datagrams if the data path spread one flow over several workers; on a sealed network a
//! reordered datagram outside the replay window is a `replayed` drop, so the sealed run also
//! checks that every datagram sealed was opened and that no sealed drop reason counted anything.

use crate::sealed::{assert_sealed_all_opened, drops, sealed_pair};
use crate::support::*;

const STREAMS: u16 = 8;
const TOTAL: usize = 200 << 20;

/// `TOTAL` bytes from `from` to `to_ip` (in `to`) over `STREAMS` TCP connections at once, on
/// ports `base..base + STREAMS`; every stream's SHA-256 is compared at both ends.
fn parallel_streams(from: &str, to: &str, to_ip: &str, base: u16) {
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        let streams: Vec<_> = (0..STREAMS)
            .map(|i| {
                s.spawn(move || {
                    tcp_transfer(from, to, to_ip, base + i, TOTAL / usize::from(STREAMS))
                })
            })
            .collect();
        for (i, t) in streams.into_iter().enumerate() {
            if let Err(e) = t.join() {
                std::panic::panic_any(format!(
                    "stream {i} of {STREAMS} failed: {}",
                    e.downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| e.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)")
                ));
            }
        }
    });
    eprintln!(
        "{STREAMS} streams, {TOTAL} bytes {from} -> {to} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Every drop counter of `h` by name (`stats` lists every reason, zeros included).
fn nonzero_drops(h: &Host) -> Vec<(String, u64)> {
    let s = h.json(&["stats"]);
    s["drops"]
        .as_object()
        .unwrap_or_else(|| panic!("stats has no drops object: {s}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
        .filter(|(_, n)| *n != 0)
        .collect()
}

#[test]
fn eight_parallel_streams_plain() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("par", 400, "10.40.0.0/24", &["--gateway", "10.40.0.254"]);
    }
    let c1 = lab.netns("p1");
    let c2 = lab.netns("p2");
    lab.hosts[0].attach(&c1, "par", &["--ip", "10.40.0.1/24"]);
    lab.hosts[1].attach(&c2, "par", &["--ip", "10.40.0.2/24"]);
    lab.assert_ping(&c1, "10.40.0.2");
    parallel_streams(&c1, &c2, "10.40.0.2", 9400);
    // Two hosts, one network, well-formed traffic: nothing is dropped anywhere, so nothing was
    // lost without a count either.
    for h in &lab.hosts {
        assert_eq!(nonzero_drops(h), [], "drops on {}", h.label);
    }
}

#[test]
fn eight_parallel_streams_sealed() {
    let (lab, c1, c2) = sealed_pair("k", "k");
    lab.assert_ping(&c1, "10.30.0.2");
    parallel_streams(&c1, &c2, "10.30.0.2", 9500);
    // A sealed datagram carries one frame of at most the MTU (1,414 bytes), so 200 MB is at
    // least this many datagrams from A. B sends ACKs, at least one per two 64 KiB coalesced
    // segments the container's TCP received (1,600 for 200 MiB).
    let min_a = (TOTAL / 1414) as u64;
    assert_sealed_all_opened(&lab, min_a, 1000);
    for h in &lab.hosts {
        assert_eq!(drops(h, "replayed"), 0, "replayed on {}", h.label);
    }
}
