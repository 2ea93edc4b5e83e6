//! What the daemon shows: typed responses built from the rules' view, the switch and the data
//! path. Read-only.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::rules::View;
use crate::control::DataplaneStats;
use crate::control::{
    FdbRow, FdbStats, NetworkDetail, NetworkStats, NetworkSummary, PeerInfo, PortStats, SealStatus,
    Stats,
};
use crate::core::seal::{RotationPhase, Sealer};
use crate::core::{Location, PortId, Switch, Timestamp};
use crate::store::NetworkRecord;
use std::collections::HashMap;

pub fn summary(view: &View<'_>, n: &NetworkRecord) -> NetworkSummary {
    NetworkSummary {
        name: n.name.clone(),
        vni: n.vni,
        subnet: n.subnet,
        gateway: n.gateway,
        mtu: view.mtu(n),
        encrypted: n.encrypted,
        internal: n.internal,
        ports: view.ports_of(&n.name).count(),
    }
}

pub fn network_list(view: &View<'_>) -> Vec<NetworkSummary> {
    view.state
        .networks
        .iter()
        .map(|n| summary(view, n))
        .collect()
}

pub fn network_detail(
    view: &View<'_>,
    sw: &Switch,
    n: &NetworkRecord,
    endpoints: Vec<crate::control::EndpointInfo>,
) -> NetworkDetail {
    NetworkDetail {
        name: n.name.clone(),
        vni: n.vni,
        subnet: n.subnet,
        gateway: n.gateway,
        mtu: view.mtu(n),
        encrypted: n.encrypted,
        internal: n.internal,
        ports: view
            .ports_of(&n.name)
            .map(|(_, p)| p.info.clone())
            .collect(),
        traffic: sw.network_traffic(n.vni).unwrap_or_default(),
        endpoints,
        flood: sw.flood_list(n.vni).into_iter().map(|v| v.0).collect(),
        arp_answered: sw.arp_answered(n.vni),
    }
}

pub fn peer_list(view: &View<'_>, sw: &Switch) -> Vec<PeerInfo> {
    view.state
        .peers
        .iter()
        .map(|p| PeerInfo {
            addr: *p,
            traffic: sw.peer_traffic(p.ip()).unwrap_or_default(),
        })
        .collect()
}

pub fn fdb(view: &View<'_>, sw: &Switch, network: Option<&str>, now: Timestamp) -> Vec<FdbRow> {
    let mut rows = Vec::new();
    for n in view
        .state
        .networks
        .iter()
        .filter(|n| network.is_none_or(|x| n.name == x))
    {
        for e in sw.fdb_entries(n.vni) {
            let (kind, port, vtep, location) = match e.location {
                Location::Port(id) => {
                    let what = view
                        .ports
                        .get(&id)
                        .map(|p| {
                            format!("port {} (netns {}, {})", id.0, p.info.netns, p.info.ifname)
                        })
                        .unwrap_or_else(|| format!("port {}", id.0));
                    ("port", Some(id.0), None, what)
                }
                Location::Vtep(v) if e.pinned => (
                    "vtep",
                    None,
                    Some(v.0),
                    format!("vtep {} (advertised)", v.0),
                ),
                Location::Vtep(v) => ("vtep", None, Some(v.0), format!("vtep {}", v.0)),
            };
            rows.push(FdbRow {
                network: n.name.clone(),
                vni: n.vni,
                mac: e.mac,
                kind: kind.into(),
                port,
                vtep,
                location,
                age_secs: now.saturating_sub(e.last_seen).as_secs_f64(),
                pinned: e.pinned,
            });
        }
    }
    rows
}

pub fn stats(
    view: &View<'_>,
    sw: &Switch,
    dataplane: DataplaneStats,
    store: crate::store::StoreHealth,
    adverts: &crate::daemon::rules::adverts::Installed,
    restore: crate::control::RestoreStats,
    now: Timestamp,
) -> Stats {
    let networks = view
        .state
        .networks
        .iter()
        .filter_map(|spec| {
            let n = sw.network(spec.vni)?;
            let c = &n.fdb.counters;
            Some(NetworkStats {
                name: spec.name.clone(),
                vni: spec.vni,
                traffic: n.traffic.snapshot(),
                fdb: FdbStats {
                    entries: n.fdb.len(),
                    capacity: n.fdb.capacity(),
                    learned: c.learned.load(Ordering::Relaxed),
                    moved: c.moved.load(Ordering::Relaxed),
                    evicted: c.evicted.load(Ordering::Relaxed),
                    aged: c.aged.load(Ordering::Relaxed),
                },
                seal: n.sealer().map(|s| seal_status(s, now)),
            })
        })
        .collect();
    let ports = view
        .ports
        .iter()
        .map(|(id, p)| PortStats {
            port: id.0,
            network: p.info.network.clone(),
            netns: p.info.netns.clone(),
            ifname: p.info.ifname.clone(),
            traffic: sw.port_traffic(*id).unwrap_or_default(),
            // Filled in by the daemon from the interfaces (`Dataplane::port_overruns`).
            overruns: 0,
        })
        .collect();
    Stats {
        drops: sw.drops.snapshot_all(),
        networks,
        ports,
        peers: peer_list(view, sw),
        dataplane,
        store: crate::control::StoreStats {
            backend: store.backend.into(),
            location: store.location,
            connected: store.connected,
            revision: store.revision,
            last_error: store.last_error,
            endpoints: adverts.endpoints.len(),
            ignored_endpoints: adverts.ignored,
        },
        restore,
    }
}

/// `stats` with each port's TAP queue overruns (`Dataplane::port_overruns`) and their sum.
pub fn with_overruns(mut stats: Stats, overruns: &HashMap<PortId, u64>) -> Stats {
    for p in &mut stats.ports {
        p.overruns = overruns.get(&PortId(p.port)).copied().unwrap_or(0);
    }
    stats.dataplane.tap_queue_overruns = stats.ports.iter().map(|p| p.overruns).sum();
    stats
}

/// Sealing counters and where the rotation stands, with times relative to `now`. What the
/// sealer refused is not here: the switch counts it once, in the network's traffic drops.
pub fn seal_status(s: &Sealer<SocketAddr>, now: Timestamp) -> SealStatus {
    let st = s.stats();
    let status = s.status();
    SealStatus {
        accept_key: status.accept_id.0,
        accepted_keys: status.accepted.iter().map(|k| k.0).collect(),
        announced: st.announced(),
        announcements_opened: st.announcements_opened(),
        answers_sent: st.answers_sent(),
        challenges_sent: st.challenges_sent(),
        opened: st.opened(),
        phase: phase_text(status.phase, now),
        sealed: st.sealed(),
        senders: s.known_senders(),
        sending_key: status.sending.0,
        verified: st.verified(),
        waiting_for: status.waiting_for.iter().map(|p| p.to_string()).collect(),
    }
}

/// A rotation phase for people: what happens next, and in how long.
pub fn phase_text(phase: RotationPhase, now: Timestamp) -> String {
    let until = |t: Timestamp| {
        let secs = t.saturating_sub(now).as_secs_f64().ceil();
        format!("{secs:.0} s")
    };
    match phase {
        RotationPhase::Stable => "stable".into(),
        RotationPhase::Accepting {
            next,
            grace_deadline,
            switched_at: None,
        } => format!(
            "accepting new key {next}; sends with it once every peer accepts it, or in {} at the latest",
            until(grace_deadline)
        ),
        RotationPhase::Accepting {
            next,
            switched_at: Some(_),
            ..
        } => format!("sending with new key {next}; every peer accepts it"),
        RotationPhase::Overlap { previous, drop_at } => format!(
            "sending with the new key; old key {previous} still accepted for {}",
            until(drop_at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::seal::KeyId;

    #[test]
    fn phases_read_as_durations_not_clock_values() {
        let now = Timestamp::from_secs(100);
        let p = RotationPhase::Accepting {
            next: KeyId(0x2a),
            grace_deadline: Timestamp::from_millis(127_500),
            switched_at: None,
        };
        assert_eq!(
            phase_text(p, now),
            "accepting new key 0x2a; sends with it once every peer accepts it, or in 28 s at the latest"
        );
        let p = RotationPhase::Overlap {
            previous: KeyId(0x01),
            drop_at: Timestamp::from_secs(160),
        };
        assert_eq!(
            phase_text(p, now),
            "sending with the new key; old key 0x01 still accepted for 60 s"
        );
        assert_eq!(phase_text(RotationPhase::Stable, now), "stable");
    }
}
