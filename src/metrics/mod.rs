//! Prometheus metrics: `vswitch daemon --metrics ADDR:PORT` serves `/metrics` in the text
//! exposition format. The numbers are the daemon's `stats` (the same `control::Stats` the
//! CLI prints), turned into metric families by `render`, a pure function; `server.rs` is the
//! small HTTP side.
//!
//! The format is written by `prometheus-client` (the Prometheus project's own Rust crate): names
//! get their `_total` and unit suffixes from it, and label values are escaped by it.

pub mod server;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::control::Stats;
use crate::core::TrafficSnapshot;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The metric families of one scrape, registered as they are made.
struct Families {
    registry: Registry,
}

impl Families {
    fn counter(&mut self, name: &str, help: &str, unit: Option<Unit>) -> Family<Labels, Counter> {
        let f = Family::<Labels, Counter>::default();
        match unit {
            Some(u) => self.registry.register_with_unit(name, help, u, f.clone()),
            None => self.registry.register(name, help, f.clone()),
        }
        f
    }

    fn gauge(&mut self, name: &str, help: &str) -> Family<Labels, Gauge> {
        let f = Family::<Labels, Gauge>::default();
        self.registry.register(name, help, f.clone());
        f
    }

    /// Received and sent frames and bytes of one kind of thing (network, port, peer).
    fn traffic(&mut self, of: &str) -> Traffic {
        let name = |dir: &str| format!("vswitch_{of}_{dir}");
        Traffic {
            rx_frames: self.counter(
                &name("rx_frames"),
                &format!("Frames received by the {of}"),
                None,
            ),
            rx_bytes: self.counter(
                &name("rx"),
                &format!("Bytes received by the {of}"),
                Some(Unit::Bytes),
            ),
            tx_frames: self.counter(
                &name("tx_frames"),
                &format!("Frames sent by the {of}"),
                None,
            ),
            tx_bytes: self.counter(
                &name("tx"),
                &format!("Bytes sent by the {of}"),
                Some(Unit::Bytes),
            ),
        }
    }
}

fn add(f: &Family<Labels, Counter>, l: &Labels, v: u64) {
    f.get_or_create(l).inc_by(v);
}

fn set(f: &Family<Labels, Gauge>, l: &Labels, v: u64) {
    f.get_or_create(l).set(i64::try_from(v).unwrap_or(i64::MAX));
}

struct Traffic {
    rx_frames: Family<Labels, Counter>,
    rx_bytes: Family<Labels, Counter>,
    tx_frames: Family<Labels, Counter>,
    tx_bytes: Family<Labels, Counter>,
}

impl Traffic {
    fn record(&self, l: &Labels, t: &TrafficSnapshot) {
        add(&self.rx_frames, l, t.rx_frames);
        add(&self.rx_bytes, l, t.rx_bytes);
        add(&self.tx_frames, l, t.tx_frames);
        add(&self.tx_bytes, l, t.tx_bytes);
    }
}

/// How a scrape wants its text: OpenMetrics (what Prometheus asks for in its `Accept`), or the
/// Prometheus text format 0.0.4 (anything else: curl, `promtool check metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text004,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// `stats` in `format`.
pub fn render(stats: &Stats, format: Format) -> String {
    let open = openmetrics(stats);
    match format {
        Format::OpenMetrics => open,
        Format::Text004 => text_004(&open),
    }
}

/// OpenMetrics to the Prometheus text format 0.0.4, which differs in what this encoder writes
/// only in that a counter's HELP and TYPE name the sample (`…_total`), and that there are no
/// `# UNIT` and `# EOF` lines (the 0.0.4 parser would take the `_total` samples for an untyped
/// family of their own).
fn text_004(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The OpenMetrics exposition of `stats` (ending in `# EOF`).
fn openmetrics(stats: &Stats) -> String {
    let mut m = Families {
        registry: Registry::default(),
    };
    // A gauge named `_info` rather than OpenMetrics' `info` type, which Prometheus' text
    // parser (and promtool) do not know.
    let build = m.gauge("vswitch_build_info", "The vswitch build (always 1)");
    set(
        &build,
        &labels(&[("version", env!("CARGO_PKG_VERSION").to_string())]),
        1,
    );

    let networks = m.traffic("network");
    let ports = m.traffic("port");
    let peers = m.traffic("peer");
    let drops = m.counter(
        "vswitch_drops",
        "Frames and datagrams dropped, by reason",
        None,
    );
    let fdb_entries = m.gauge("vswitch_fdb_entries", "MAC table entries");
    let fdb_capacity = m.gauge("vswitch_fdb_capacity_entries", "MAC table capacity");
    let fdb_learned = m.counter("vswitch_fdb_learned", "MACs learned", None);
    let fdb_moved = m.counter("vswitch_fdb_moved", "MACs seen at a new location", None);
    let fdb_evicted = m.counter(
        "vswitch_fdb_evicted",
        "MACs evicted from a full table",
        None,
    );
    let fdb_aged = m.counter("vswitch_fdb_aged", "MACs aged out", None);
    let sealed = m.counter(
        "vswitch_seal_sealed_frames",
        "Frames sealed (encrypted networks)",
        None,
    );
    let opened = m.counter(
        "vswitch_seal_opened_datagrams",
        "Datagrams authenticated and opened",
        None,
    );
    let challenges = m.counter(
        "vswitch_seal_challenges_sent",
        "Handshake challenges sent",
        None,
    );
    let answers = m.counter("vswitch_seal_answers_sent", "Handshake answers sent", None);
    let verified = m.counter(
        "vswitch_seal_verified_senders",
        "Peer senders verified by handshake",
        None,
    );
    let senders = m.gauge(
        "vswitch_seal_senders",
        "Verified (sender, key) pairs remembered",
    );
    let dataplane = m.counter(
        "vswitch_dataplane_errors",
        "Data path errors, by kind",
        None,
    );
    let underlay_rx = m.counter(
        "vswitch_underlay_rx_datagrams",
        "Datagrams received on the underlay",
        None,
    );
    let underlay_tx = m.counter(
        "vswitch_underlay_tx_datagrams",
        "Datagrams sent on the underlay",
        None,
    );
    let store_up = m.gauge(
        "vswitch_store_connected",
        "Whether the last exchange with the state store worked (1) or not (0)",
    );
    let store_rev = m.gauge(
        "vswitch_store_revision",
        "The newest state store revision seen",
    );
    let store_endpoints = m.gauge(
        "vswitch_store_endpoints",
        "Other hosts' endpoints installed from the store (cluster mode)",
    );
    let restore = m.counter(
        "vswitch_restore_ports",
        "Ports taken back, dropped or reaped (live restore), by outcome",
        None,
    );

    for (reason, n) in &stats.drops {
        add(&drops, &labels(&[("reason", reason.clone())]), *n);
    }
    for n in &stats.networks {
        let l = labels(&[("network", n.name.clone()), ("vni", n.vni.to_string())]);
        networks.record(&l, &n.traffic);
        set(&fdb_entries, &l, n.fdb.entries as u64);
        set(&fdb_capacity, &l, n.fdb.capacity as u64);
        add(&fdb_learned, &l, n.fdb.learned);
        add(&fdb_moved, &l, n.fdb.moved);
        add(&fdb_evicted, &l, n.fdb.evicted);
        add(&fdb_aged, &l, n.fdb.aged);
        if let Some(s) = &n.seal {
            add(&sealed, &l, s.sealed);
            add(&opened, &l, s.opened);
            add(&challenges, &l, s.challenges_sent);
            add(&answers, &l, s.answers_sent);
            add(&verified, &l, s.verified);
            set(&senders, &l, s.senders as u64);
        }
    }
    for p in &stats.ports {
        let l = labels(&[
            ("network", p.network.clone()),
            ("port", p.port.to_string()),
            ("netns", p.netns.clone()),
            ("ifname", p.ifname.clone()),
        ]);
        ports.record(&l, &p.traffic);
    }
    for p in &stats.peers {
        peers.record(&labels(&[("peer", p.addr.to_string())]), &p.traffic);
    }
    let d = &stats.dataplane;
    for (kind, n) in [
        ("tap_read", d.tap_read_errors),
        ("tap_write", d.tap_write_errors),
        ("underlay_send", d.underlay_send_errors),
        ("underlay_recv", d.underlay_recv_errors),
        ("offload", d.offload_errors),
        // Frames lost before the switch saw them (counted by the kernel), or on the way to a
        // network's gateway.
        ("underlay_rx_overflow", d.underlay_rx_overflows),
        ("tap_queue_overrun", d.tap_queue_overruns),
        ("gateway_queue_full", d.gateway_queue_full),
    ] {
        add(&dataplane, &labels(&[("kind", kind.to_string())]), n);
    }
    add(&underlay_rx, &Labels::new(), d.underlay_rx_datagrams);
    add(&underlay_tx, &Labels::new(), d.underlay_tx_datagrams);
    let s = labels(&[("backend", stats.store.backend.clone())]);
    set(&store_up, &s, u64::from(stats.store.connected));
    set(&store_rev, &s, stats.store.revision);
    set(&store_endpoints, &s, stats.store.endpoints as u64);
    for (outcome, n) in [
        ("readopted", stats.restore.readopted),
        ("dropped", stats.restore.dropped),
        ("reaped", stats.restore.reaped),
    ] {
        add(&restore, &labels(&[("outcome", outcome.to_string())]), n);
    }

    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &m.registry);
    text
}

#[cfg(test)]
mod tests;
