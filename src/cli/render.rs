//! Human-readable output of the CLI (`--json` prints the daemon's reply as it is).

use std::io::{self, Write};

use serde::de::DeserializeOwned;

use crate::control::{FdbRow, NetworkDetail, NetworkSummary, PeerInfo, PortInfo, Request, Stats};
use crate::core::TrafficSnapshot;

fn decode<T: DeserializeOwned>(v: &serde_json::Value) -> io::Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn traffic(t: &TrafficSnapshot) -> String {
    let mut s = format!(
        "rx {} frames / {} bytes, tx {} frames / {} bytes",
        t.rx_frames, t.rx_bytes, t.tx_frames, t.tx_bytes
    );
    if !t.drops.is_empty() {
        let d: Vec<String> = t.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(", drops {}", d.join(" ")));
    }
    s
}

/// Prints the reply to `request` for a person.
pub fn human(request: &Request, reply: &serde_json::Value, out: &mut impl Write) -> io::Result<()> {
    match request {
        Request::NetworkCreate(_) => {
            let n: NetworkSummary = decode(reply)?;
            writeln!(
                out,
                "created network {} (VNI {}, subnet {}, MTU {})",
                n.name, n.vni, n.subnet, n.mtu
            )
        }
        Request::NetworkRemove { .. } => {
            let n: NetworkSummary = decode(reply)?;
            writeln!(out, "removed network {} (VNI {})", n.name, n.vni)
        }
        Request::NetworkRotateKey { name, .. } => {
            writeln!(out, "rotating the key of network {name}: {reply}")
        }
        Request::NetworkList => {
            let ns: Vec<NetworkSummary> = decode(reply)?;
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
        Request::NetworkInspect { .. } => {
            let n: NetworkDetail = decode(reply)?;
            writeln!(
                out,
                "network {}: VNI {}, subnet {}, gateway {}, MTU {}, {}",
                n.name,
                n.vni,
                n.subnet,
                n.gateway.map_or("none".into(), |g| g.to_string()),
                n.mtu,
                if n.encrypted { "encrypted" } else { "plain" }
            )?;
            writeln!(out, "  traffic: {}", traffic(&n.traffic))?;
            for p in n.ports {
                writeln!(
                    out,
                    "  port {}: netns {} {} mac {} ip {} mtu {}",
                    p.port,
                    p.netns,
                    p.ifname,
                    p.mac,
                    p.ip.as_deref().unwrap_or("-"),
                    p.mtu
                )?;
            }
            Ok(())
        }
        Request::Attach(_) => {
            let p: PortInfo = decode(reply)?;
            writeln!(
                out,
                "attached {} to {}: {} mac {} ip {} mtu {}",
                p.netns,
                p.network,
                p.ifname,
                p.mac,
                p.ip.as_deref().unwrap_or("-"),
                p.mtu
            )
        }
        Request::Detach { .. } => {
            let ps: Vec<PortInfo> = decode(reply)?;
            for p in ps {
                writeln!(
                    out,
                    "detached {} ({}) from {}",
                    p.netns, p.ifname, p.network
                )?;
            }
            Ok(())
        }
        Request::PeerAdd { .. } => {
            let p: PeerInfo = decode(reply)?;
            writeln!(out, "added peer {}", p.addr)
        }
        Request::PeerRemove { .. } => {
            let p: PeerInfo = decode(reply)?;
            writeln!(out, "removed peer {}", p.addr)
        }
        Request::PeerList => {
            let ps: Vec<PeerInfo> = decode(reply)?;
            for p in ps {
                writeln!(out, "{:<22} {}", p.addr.to_string(), traffic(&p.traffic))?;
            }
            Ok(())
        }
        Request::Fdb { .. } => {
            let rows: Vec<FdbRow> = decode(reply)?;
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
        Request::Stats => {
            let s: Stats = decode(reply)?;
            let drops: Vec<String> = s.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                out,
                "drops: {}",
                if drops.is_empty() {
                    "none".into()
                } else {
                    drops.join(" ")
                }
            )?;
            for n in &s.networks {
                writeln!(
                    out,
                    "network {} (VNI {}): {}",
                    n.name,
                    n.vni,
                    traffic(&n.traffic)
                )?;
                writeln!(
                    out,
                    "  fdb: {} entries of {}, learned {} moved {} evicted {} aged {}",
                    n.fdb.entries,
                    n.fdb.capacity,
                    n.fdb.learned,
                    n.fdb.moved,
                    n.fdb.evicted,
                    n.fdb.aged
                )?;
                if let Some(seal) = &n.seal {
                    writeln!(out, "  seal: {seal}")?;
                }
            }
            for p in &s.ports {
                writeln!(
                    out,
                    "port {} ({} {}, network {}): {}",
                    p.port,
                    p.netns,
                    p.ifname,
                    p.network,
                    traffic(&p.traffic)
                )?;
            }
            for p in &s.peers {
                writeln!(out, "peer {}: {}", p.addr, traffic(&p.traffic))?;
            }
            let d = &s.dataplane;
            writeln!(out, "dataplane: underlay rx {} tx {} datagrams, send errors {}, recv errors {}, tap read errors {}, tap write errors {}",
                d.underlay_rx_datagrams, d.underlay_tx_datagrams, d.underlay_send_errors, d.underlay_recv_errors, d.tap_read_errors, d.tap_write_errors)?;
            writeln!(
                out,
                "offload: superframes segmented {}, coalesced {}, errors {}",
                d.superframes_segmented, d.superframes_coalesced, d.offload_errors
            )
        }
    }
}
