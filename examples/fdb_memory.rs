//! How much memory one network's MAC table takes, and that it stays bounded: fills an `Fdb` of
//! capacity N with N MACs, then offers N more (each evicting one), and prints the resident set
//! size (VmRSS) after each step. Run by `scripts/bench-scale.sh`; not a test.
//!
//! Usage: cargo run --release --example fdb_memory -- [ENTRIES]   (default 1000000)

use std::time::Duration;

use vswitch::core::fdb::{Fdb, FdbConfig, Location};
use vswitch::core::{PortId, Timestamp};
use vswitch::wire::Mac;

/// The resident set size in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mac(i: u64) -> Mac {
    let b = i.to_be_bytes();
    Mac([0x02, b[3], b[4], b[5], b[6], b[7]])
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ENTRIES is a number"))
        .unwrap_or(1_000_000);
    let before = rss_kib();
    let fdb = Fdb::new(FdbConfig {
        ageing: Duration::from_secs(300),
        capacity: n as usize,
    });
    for i in 0..n {
        fdb.learn(
            mac(i),
            Location::Port(PortId((i % 1024) as u32)),
            Timestamp(i),
        );
    }
    let full = rss_kib();
    for i in n..2 * n {
        fdb.learn(
            mac(i),
            Location::Port(PortId((i % 1024) as u32)),
            Timestamp(i),
        );
    }
    let churned = rss_kib();
    assert_eq!(fdb.len() as u64, n, "the table stays at its capacity");
    println!(
        "fdb entries={n} rss_before_kib={before} rss_full_kib={full} rss_after_{n}_evictions_kib={churned} bytes_per_entry={:.0}",
        (full.saturating_sub(before) * 1024) as f64 / n as f64
    );
}
