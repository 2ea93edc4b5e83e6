use std::collections::BTreeMap;

use super::*;
use crate::control::{FdbStats, NetworkStats, PeerInfo, PortStats, RestoreStats, StoreStats};
use crate::dataplane::DataplaneStats;
use crate::wire::Vni;

fn traffic(rx: u64, drops: &[(&str, u64)]) -> TrafficSnapshot {
    TrafficSnapshot {
        rx_frames: rx,
        rx_bytes: rx * 100,
        tx_frames: rx + 1,
        tx_bytes: (rx + 1) * 100,
        drops: drops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn stats() -> Stats {
    Stats {
        drops: BTreeMap::from([("unknown_vtep".to_string(), 7), ("too_big".to_string(), 2)]),
        networks: vec![NetworkStats {
            name: "blue".into(),
            vni: Vni::new(100).expect("vni"),
            traffic: traffic(10, &[]),
            fdb: FdbStats {
                entries: 3,
                capacity: 65536,
                learned: 4,
                moved: 1,
                evicted: 0,
                aged: 1,
            },
            seal: None,
        }],
        ports: vec![PortStats {
            port: 1,
            network: "blue".into(),
            netns: "/run/netns/a\"b".into(),
            ifname: "eth0".into(),
            traffic: traffic(5, &[]),
            overruns: 0,
        }],
        peers: vec![PeerInfo {
            addr: "192.0.2.2:4789".parse().expect("addr"),
            traffic: traffic(6, &[]),
        }],
        dataplane: DataplaneStats {
            tap_write_errors: 9,
            underlay_rx_datagrams: 6,
            tap_queue_overruns: 4,
            ..DataplaneStats::default()
        },
        store: StoreStats {
            backend: "file".into(),
            connected: true,
            ..StoreStats::default()
        },
        restore: RestoreStats {
            readopted: 2,
            dropped: 0,
            reaped: 1,
        },
    }
}

fn sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
}

#[test]
fn every_counter_and_gauge_is_there_with_its_labels() {
    let text = render(&stats(), Format::OpenMetrics);
    let want = [
        ("vswitch_build_info{version=\"0.1.0\"}", "1"),
        ("vswitch_network_rx_frames_total{network=\"blue\",vni=\"100\"}", "10"),
        ("vswitch_network_rx_bytes_total{network=\"blue\",vni=\"100\"}", "1000"),
        ("vswitch_network_tx_frames_total{network=\"blue\",vni=\"100\"}", "11"),
        ("vswitch_port_tx_bytes_total{network=\"blue\",port=\"1\",netns=\"/run/netns/a\\\"b\",ifname=\"eth0\"}", "600"),
        ("vswitch_peer_rx_frames_total{peer=\"192.0.2.2:4789\"}", "6"),
        ("vswitch_drops_total{reason=\"unknown_vtep\"}", "7"),
        ("vswitch_drops_total{reason=\"too_big\"}", "2"),
        ("vswitch_fdb_entries{network=\"blue\",vni=\"100\"}", "3"),
        ("vswitch_fdb_learned_total{network=\"blue\",vni=\"100\"}", "4"),
        ("vswitch_fdb_moved_total{network=\"blue\",vni=\"100\"}", "1"),
        ("vswitch_dataplane_errors_total{kind=\"tap_write\"}", "9"),
        ("vswitch_dataplane_errors_total{kind=\"tap_queue_overrun\"}", "4"),
        ("vswitch_underlay_rx_datagrams_total", "6"),
        ("vswitch_store_connected{backend=\"file\"}", "1"),
        ("vswitch_restore_ports_total{outcome=\"reaped\"}", "1"),
    ];
    for (series, value) in want {
        assert_eq!(
            sample(&text, series).as_deref(),
            Some(value),
            "{series} in\n{text}"
        );
    }
    // A plain network has no seal series; the text ends as OpenMetrics says.
    assert!(
        !text.contains("vswitch_seal_sealed_frames_total{"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn the_004_text_names_counters_by_their_samples_and_has_no_openmetrics_lines() {
    let open = render(&stats(), Format::OpenMetrics);
    let text = render(&stats(), Format::Text004);
    assert!(open.contains("# TYPE vswitch_drops counter\n"), "{open}");
    assert!(text.contains("# HELP vswitch_drops_total Frames"), "{text}");
    assert!(
        text.contains("# TYPE vswitch_drops_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE vswitch_fdb_entries gauge\n"),
        "{text}"
    );
    assert!(
        !text.contains("# UNIT") && !text.contains("# EOF"),
        "{text}"
    );
    // The samples are the same (a family's series come in no particular order).
    let samples = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(samples(&open), samples(&text));
    assert!(samples(&text).len() > 20, "{text}");
}
