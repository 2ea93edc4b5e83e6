//! README's stable JSON output: the `stats` and `fdb` fields it documents are all there (fields
//! may be added, never renamed), with the values the traffic implies.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::*;

/// Asserts that object `v` (named `what`) has at least the documented `fields`.
fn has_fields(what: &str, v: &Value, fields: &[&str]) {
    let keys: BTreeSet<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    let missing: Vec<&&str> = fields.iter().filter(|f| !keys.contains(**f)).collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}: {v}");
}

const TRAFFIC: [&str; 5] = ["rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "drops"];

#[test]
fn stats_and_fdb_json_have_the_documented_fields() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("j", 900, "10.90.0.0/24", &["--gateway", "10.90.0.254"]);
    }
    let c1 = lab.netns("j1");
    let c2 = lab.netns("j2");
    const C1_MAC: &str = "02:00:00:00:90:01";
    const C2_MAC: &str = "02:00:00:00:90:02";
    lab.hosts[0].attach(&c1, "j", &["--ip", "10.90.0.1/24", "--mac", C1_MAC]);
    lab.hosts[1].attach(&c2, "j", &["--ip", "10.90.0.2/24", "--mac", C2_MAC]);
    lab.assert_ping(&c1, "10.90.0.2");
    let a = &lab.hosts[0];

    let s = a.json(&["stats"]);
    has_fields(
        "stats",
        &s,
        &[
            "drops",
            "networks",
            "ports",
            "peers",
            "dataplane",
            "store",
            "restore",
        ],
    );
    has_fields(
        "stats restore",
        &s["restore"],
        &["readopted", "dropped", "reaped"],
    );
    // README: the top-level `drops` lists every reason, zeros included.
    let reasons: BTreeSet<&str> = s["drops"]
        .as_object()
        .unwrap_or_else(|| panic!("drops: {s}"))
        .keys()
        .map(String::as_str)
        .collect();
    let all: BTreeSet<&str> = vswitch::core::DropReason::ALL
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(reasons, all, "every drop reason, zeros included: {s}");
    has_fields(
        "stats store",
        &s["store"],
        &[
            "backend",
            "location",
            "connected",
            "revision",
            "last_error",
            "endpoints",
            "ignored_endpoints",
        ],
    );
    let nets = s["networks"].as_array().expect("networks array");
    assert_eq!(nets.len(), 1, "{s}");
    let n = &nets[0];
    has_fields(
        "stats network",
        n,
        &["name", "vni", "traffic", "fdb", "seal"],
    );
    assert_eq!(
        (n["name"].as_str(), n["vni"].as_u64()),
        (Some("j"), Some(900))
    );
    assert!(
        n["seal"].is_null(),
        "a plain network has no seal stats: {n}"
    );
    has_fields("network traffic", &n["traffic"], &TRAFFIC);
    assert!(n["traffic"]["rx_frames"].as_u64() > Some(0), "{n}");
    let fdb = &n["fdb"];
    has_fields(
        "stats fdb",
        fdb,
        &["entries", "capacity", "learned", "moved", "evicted", "aged"],
    );
    // README: 65 536 entries per network by default; both containers are known.
    assert_eq!(fdb["capacity"].as_u64(), Some(65_536), "{fdb}");
    assert_eq!(fdb["entries"].as_u64(), Some(2), "{fdb}");
    let ports = s["ports"].as_array().expect("ports array");
    assert_eq!(ports.len(), 1, "{s}");
    has_fields(
        "stats port",
        &ports[0],
        &["port", "network", "netns", "ifname", "traffic", "overruns"],
    );
    assert_eq!(ports[0]["netns"].as_str(), Some(c1.as_str()), "{s}");
    assert_eq!(ports[0]["ifname"].as_str(), Some("eth0"), "{s}");
    has_fields("port traffic", &ports[0]["traffic"], &TRAFFIC);
    let peers = s["peers"].as_array().expect("peers array");
    assert_eq!(peers.len(), 1, "{s}");
    has_fields(
        "stats dataplane",
        &s["dataplane"],
        &[
            "tap_read_errors",
            "tap_write_errors",
            "underlay_rx_datagrams",
            "underlay_tx_datagrams",
            "underlay_send_errors",
            "underlay_recv_errors",
            "superframes_segmented",
            "superframes_coalesced",
            "offload_errors",
            "checksums_completed",
            "gateway_queue_full",
            "dns_queries",
            "dns_forwarded",
            "dns_servfail",
            "dns_malformed",
            "underlay_rx_overflows",
            "tap_queue_overruns",
        ],
    );
    assert!(
        s["dataplane"]["underlay_tx_datagrams"].as_u64() > Some(0),
        "{s}"
    );

    let fdb = a.json(&["fdb"]);
    let rows = fdb.as_array().expect("fdb --json is an array");
    for r in rows {
        has_fields(
            "fdb entry",
            r,
            &[
                "network", "vni", "mac", "kind", "port", "vtep", "location", "age_secs",
            ],
        );
    }
    let row = |mac: &str| {
        rows.iter()
            .find(|r| r["mac"] == mac)
            .unwrap_or_else(|| panic!("{mac} in {fdb}"))
    };
    let (local, remote) = (row(C1_MAC), row(C2_MAC));
    assert_eq!(
        (local["network"].as_str(), local["vni"].as_u64()),
        (Some("j"), Some(900))
    );
    assert_eq!(local["kind"].as_str(), Some("port"), "{local}");
    assert_eq!(remote["kind"].as_str(), Some("vtep"), "{remote}");
    assert_eq!(
        remote["vtep"].as_str(),
        Some(format!("{}:4789", lab.hosts[1].ip).as_str()),
        "{remote}"
    );
}
