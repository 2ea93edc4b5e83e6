//! Human-readable output of the CLI: tables and sentences (`--json` prints the daemon's reply
//! as it is).

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::control::{
    FdbRow, NetworkDetail, NetworkSummary, PeerInfo, PortInfo, Request, Response, SealStatus, Stats,
};
use crate::core::TrafficSnapshot;
use crate::daemon::rules::egress;

fn traffic(t: &TrafficSnapshot) -> String {
    format!(
        "rx {} frames / {} bytes, tx {} frames / {} bytes{}",
        t.rx_frames,
        t.rx_bytes,
        t.tx_frames,
        t.tx_bytes,
        match drops(&t.drops) {
            d if d == "none" => String::new(),
            d => format!(", dropped {d}"),
        }
    )
}

/// `3 replayed, 1 auth_failed`, largest first, zeros left out; `none` when nothing was dropped.
fn drops(d: &BTreeMap<String, u64>) -> String {
    let mut nonzero: Vec<(&String, &u64)> = d.iter().filter(|(_, n)| **n > 0).collect();
    nonzero.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if nonzero.is_empty() {
        return "none".into();
    }
    nonzero
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the reply to `request` for a person.
pub fn human(request: &Request, reply: &Response, out: &mut impl Write) -> io::Result<()> {
    match (request, reply) {
        (Request::NetworkCreate(_), Response::Network(n)) => writeln!(
            out,
            "created network {} (VNI {}, subnet {}, MTU {}{}{})",
            n.name,
            n.vni,
            n.subnet,
            n.mtu,
            if n.encrypted { ", encrypted" } else { "" },
            if n.internal { ", internal" } else { "" }
        ),
        (_, Response::Network(n)) => writeln!(out, "removed network {} (VNI {})", n.name, n.vni),
        (Request::NetworkRotateKey { name, .. }, Response::Rotation(s)) => {
            writeln!(out, "rotating the key of network {name}:")?;
            seal(out, s)
        }
        (_, Response::Networks(ns)) => networks(out, ns),
        (_, Response::NetworkDetail(n)) => detail(out, n),
        (_, Response::Port(p)) => writeln!(
            out,
            "attached {} to {}: {} mac {} ip {} mtu {}{}",
            p.netns,
            p.network,
            p.ifname,
            p.mac,
            p.ip.as_deref().unwrap_or("-"),
            p.mtu,
            p.egress
                .as_deref()
                .map_or(String::new(), |e| format!("; {} {e}", egress::IFNAME))
        ),
        (_, Response::Ports(ps)) => {
            for p in ps {
                writeln!(
                    out,
                    "detached {} ({}) from {}",
                    p.netns, p.ifname, p.network
                )?;
            }
            Ok(())
        }
        (Request::PeerAdd { .. }, Response::Peer(p)) => writeln!(out, "added peer {}", p.addr),
        (_, Response::Peer(p)) => writeln!(out, "removed peer {}", p.addr),
        (_, Response::Peers(ps)) => peers(out, ps),
        (_, Response::Fdb(rows)) => fdb(out, rows),
        (_, Response::Stats(s)) => stats(out, s),
        (_, Response::Rotation(s)) => seal(out, s),
        (_, Response::Hosts(hs)) => hosts(out, hs),
    }
}

fn networks(out: &mut impl Write, ns: &[NetworkSummary]) -> io::Result<()> {
    writeln!(
        out,
        "{:<16} {:>8}  {:<18} {:<15} {:>5}  {:<9} {:>5}",
        "NAME", "VNI", "SUBNET", "GATEWAY", "MTU", "ENCRYPTED", "PORTS"
    )?;
    for n in ns {
        let gw = n.gateway.map_or("-".into(), |g| g.to_string());
        writeln!(
            out,
            "{:<16} {:>8}  {:<18} {:<15} {:>5}  {:<9} {:>5}",
            n.name,
            n.vni.get(),
            n.subnet.to_string(),
            gw,
            n.mtu,
            if n.encrypted { "yes" } else { "no" },
            n.ports
        )?;
    }
    Ok(())
}

fn ports_table(out: &mut impl Write, ports: &[PortInfo]) -> io::Result<()> {
    writeln!(
        out,
        "  {:>5}  {:<20} {:<10} {:<17}  {:<18} {:>5}",
        "PORT", "NETNS", "IFNAME", "MAC", "IP", "MTU"
    )?;
    for p in ports {
        writeln!(
            out,
            "  {:>5}  {:<20} {:<10} {:<17}  {:<18} {:>5}",
            p.port,
            p.netns,
            p.ifname,
            p.mac.to_string(),
            p.ip.as_deref().unwrap_or("-"),
            p.mtu
        )?;
    }
    Ok(())
}

fn detail(out: &mut impl Write, n: &NetworkDetail) -> io::Result<()> {
    writeln!(
        out,
        "network {}: VNI {}, subnet {}, gateway {}, MTU {}, {}{}",
        n.name,
        n.vni,
        n.subnet,
        n.gateway.map_or("none".into(), |g| g.to_string()),
        n.mtu,
        if n.encrypted { "encrypted" } else { "plain" },
        if n.internal {
            ", internal (no egress)"
        } else {
            ""
        }
    )?;
    writeln!(out, "  traffic: {}", traffic(&n.traffic))?;
    let flood: Vec<String> = n.flood.iter().map(|v| v.to_string()).collect();
    writeln!(
        out,
        "  floods go to: {}; ARP requests answered here: {}",
        if flood.is_empty() {
            "no other host".to_owned()
        } else {
            flood.join(", ")
        },
        n.arp_answered
    )?;
    if n.ports.is_empty() {
        writeln!(out, "  no ports")?;
    } else {
        ports_table(out, &n.ports)?;
    }
    if !n.endpoints.is_empty() {
        writeln!(
            out,
            "  endpoints:\n  {:<20} {:<20} {:<8} {:<17}  {:<15}  NAMES",
            "HOST", "NETNS", "IFNAME", "MAC", "IP"
        )?;
        for e in &n.endpoints {
            writeln!(
                out,
                "  {:<20} {:<20} {:<8} {:<17}  {:<15}  {}",
                e.host,
                e.netns,
                e.ifname,
                e.mac.to_string(),
                e.ip.to_string(),
                if e.names.is_empty() {
                    "-".to_string()
                } else {
                    e.names.join(",")
                }
            )?;
        }
    }
    Ok(())
}

fn hosts(out: &mut impl Write, hs: &[crate::control::HostInfo]) -> io::Result<()> {
    writeln!(out, "{:<24} {:<22} {:<6} ", "HOST", "VTEP", "ALIVE")?;
    for h in hs {
        writeln!(
            out,
            "{:<24} {:<22} {:<6} {}",
            h.name,
            h.vtep.to_string(),
            if h.alive { "yes" } else { "no" },
            if h.local { "(this host)" } else { "" }
        )?;
    }
    Ok(())
}

fn peers(out: &mut impl Write, ps: &[PeerInfo]) -> io::Result<()> {
    writeln!(
        out,
        "{:<22} {:>10} {:>10} {:>10} {:>10}  DROPPED",
        "PEER", "RX FRAMES", "RX BYTES", "TX FRAMES", "TX BYTES"
    )?;
    for p in ps {
        let t = &p.traffic;
        writeln!(
            out,
            "{:<22} {:>10} {:>10} {:>10} {:>10}  {}",
            p.addr.to_string(),
            t.rx_frames,
            t.rx_bytes,
            t.tx_frames,
            t.tx_bytes,
            drops(&t.drops)
        )?;
    }
    Ok(())
}

fn fdb(out: &mut impl Write, rows: &[FdbRow]) -> io::Result<()> {
    writeln!(
        out,
        "{:<12} {:>8}  {:<17}  {:<40} {:>8}",
        "NETWORK", "VNI", "MAC", "LOCATION", "AGE"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<12} {:>8}  {:<17}  {:<40} {:>7.1}s",
            r.network,
            r.vni.get(),
            r.mac.to_string(),
            r.location,
            r.age_secs
        )?;
    }
    Ok(())
}

fn seal(out: &mut impl Write, s: &SealStatus) -> io::Result<()> {
    writeln!(out, "  {}", s.phase)?;
    let keys: Vec<String> = s
        .accepted_keys
        .iter()
        .map(|k| format!("{k:#04x}"))
        .collect();
    writeln!(
        out,
        "  sends with key {:#04x}, accepts {}",
        s.sending_key,
        keys.join(" and ")
    )?;
    if !s.waiting_for.is_empty() {
        writeln!(
            out,
            "  waiting for {} to accept the new key",
            s.waiting_for.join(", ")
        )?;
    }
    writeln!(
        out,
        "  {} sealed, {} opened ({} key announcements), {} announced, {} senders known",
        s.sealed, s.opened, s.announcements_opened, s.announced, s.senders,
    )?;
    writeln!(
        out,
        "  handshakes: {} peers verified, {} challenges and {} answers sent",
        s.verified, s.challenges_sent, s.answers_sent,
    )
}

fn stats(out: &mut impl Write, s: &Stats) -> io::Result<()> {
    writeln!(out, "dropped: {}", drops(&s.drops))?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<16} {:>8} {:>10} {:>12} {:>10} {:>12}  {:>7}  DROPPED",
        "NETWORK", "VNI", "RX FRAMES", "RX BYTES", "TX FRAMES", "TX BYTES", "MACS"
    )?;
    for n in &s.networks {
        let t = &n.traffic;
        writeln!(
            out,
            "{:<16} {:>8} {:>10} {:>12} {:>10} {:>12}  {:>7}  {}",
            n.name,
            n.vni.get(),
            t.rx_frames,
            t.rx_bytes,
            t.tx_frames,
            t.tx_bytes,
            n.fdb.entries,
            drops(&t.drops)
        )?;
    }
    for n in &s.networks {
        let f = &n.fdb;
        writeln!(
            out,
            "\nnetwork {}: {} of {} MACs in the table; since start {} learned, {} moved, {} evicted, {} aged out",
            n.name, f.entries, f.capacity, f.learned, f.moved, f.evicted, f.aged
        )?;
        if let Some(sl) = &n.seal {
            seal(out, sl)?;
        }
    }
    if !s.ports.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:>5}  {:<12} {:<20} {:<8} {:>10} {:>12} {:>10} {:>12}  DROPPED",
            "PORT", "NETWORK", "NETNS", "IFNAME", "RX FRAMES", "RX BYTES", "TX FRAMES", "TX BYTES"
        )?;
        for p in &s.ports {
            let t = &p.traffic;
            writeln!(
                out,
                "{:>5}  {:<12} {:<20} {:<8} {:>10} {:>12} {:>10} {:>12}  {}",
                p.port,
                p.network,
                p.netns,
                p.ifname,
                t.rx_frames,
                t.rx_bytes,
                t.tx_frames,
                t.tx_bytes,
                drops(&t.drops)
            )?;
        }
    }
    if !s.peers.is_empty() {
        writeln!(out)?;
        peers(out, &s.peers)?;
    }
    let d = &s.dataplane;
    writeln!(out)?;
    writeln!(
        out,
        "underlay: {} datagrams received, {} sent; {} send errors, {} receive errors",
        d.underlay_rx_datagrams,
        d.underlay_tx_datagrams,
        d.underlay_send_errors,
        d.underlay_recv_errors
    )?;
    writeln!(
        out,
        "taps: {} read errors, {} write errors",
        d.tap_read_errors, d.tap_write_errors
    )?;
    writeln!(
        out,
        "offloads: {} superframes segmented, {} coalesced, {} refused; {} partial checksums completed",
        d.superframes_segmented, d.superframes_coalesced, d.offload_errors, d.checksums_completed
    )?;
    writeln!(
        out,
        "ports: {} taken back at start, {} dropped at start, {} reaped (interface gone)",
        s.restore.readopted, s.restore.dropped, s.restore.reaped
    )?;
    let st = &s.store;
    writeln!(
        out,
        "store: {} {}, {}, revision {}{}",
        st.backend,
        st.location,
        if st.connected {
            "connected"
        } else {
            "NOT connected"
        },
        st.revision,
        st.last_error
            .as_ref()
            .map_or_else(String::new, |e| format!("; last error: {e}"))
    )?;
    if st.endpoints + st.ignored_endpoints > 0 {
        writeln!(
            out,
            "advertised endpoints of other hosts: {} installed, {} ignored",
            st.endpoints, st.ignored_endpoints
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_tables_and_sentences_not_json() {
        let mut st = Stats {
            drops: BTreeMap::from([("replayed".into(), 3), ("truncated".into(), 0)]),
            networks: vec![],
            ports: vec![],
            peers: vec![],
            dataplane: Default::default(),
            store: crate::control::StoreStats {
                backend: "etcd".into(),
                location: "etcd at http://192.0.2.10:2379 (prefix /vswitch)".into(),
                connected: false,
                revision: 42,
                last_error: Some("no answer to a listing within 2 s".into()),
                ..Default::default()
            },
            restore: crate::control::RestoreStats {
                readopted: 2,
                dropped: 1,
                reaped: 4,
            },
        };
        st.networks.push(crate::control::NetworkStats {
            name: "sec".into(),
            vni: crate::wire::Vni::new(300).expect("vni"),
            traffic: crate::core::TrafficSnapshot {
                drops: BTreeMap::from([("auth_failed".into(), 1)]),
                ..Default::default()
            },
            fdb: crate::control::FdbStats {
                entries: 2,
                capacity: 65536,
                learned: 3,
                moved: 0,
                evicted: 0,
                aged: 0,
            },
            seal: Some(SealStatus {
                accept_key: 0x2a,
                accepted_keys: vec![0x01, 0x2a],
                announced: 4,
                announcements_opened: 5,
                answers_sent: 1,
                challenges_sent: 2,
                opened: 10,
                phase: "accepting new key 0x2a; ... in 28 s at the latest".into(),
                sealed: 9,
                senders: 1,
                sending_key: 0x01,
                verified: 2,
                waiting_for: vec!["192.0.2.2:4789".into()],
            }),
        });
        let mut out = Vec::new();
        human(&Request::Stats, &Response::Stats(Box::new(st)), &mut out).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("dropped: 3 replayed\n"), "{text}");
        assert!(
            !text.contains('{') && !text.contains('"'),
            "no JSON: {text}"
        );
        assert!(
            text.contains("sends with key 0x01, accepts 0x01 and 0x2a"),
            "{text}"
        );
        assert!(text.contains("waiting for 192.0.2.2:4789"), "{text}");
        assert!(
            text.contains("ports: 2 taken back at start, 1 dropped at start, 4 reaped"),
            "{text}"
        );
        // What the sealer refused is a drop of the network, counted by the switch.
        assert!(text.contains("1 auth_failed"), "{text}");
        assert!(text.contains("in 28 s"), "{text}");
        assert!(!text.contains(" ms"), "durations, not clocks: {text}");
        assert!(
            text.contains("store: etcd etcd at http://192.0.2.10:2379 (prefix /vswitch), NOT connected, revision 42; last error: no answer"),
            "{text}"
        );
    }
}
