//! Address conflict detection on the overlay (RFC 5227, shortened): before an address is
//! handed out, the daemon sends ARP probes for it into the network, as the new interface, and
//! listens for anyone who claims it.
//!
//! RFC 5227 waits 1–2 s between three probes; an attach should not take 7 s, so vswitch sends
//! two probes 200 ms apart and listens for 600 ms in all. Containers on this overlay answer
//! within a round trip, so that is ample; it is not a defence against a host that is down.

use std::net::Ipv4Addr;
use std::sync::RwLock;
use std::time::Duration;

use crate::core::sync::write;
use crate::core::{PortId, Switch};
use crate::dataplane::{Dataplane, PortSink};
use crate::wire::{arp, Mac, Vni};

/// The port id of the daemon's own probe port (never a TAP's).
pub const PROBE_PORT: PortId = PortId(u32::MAX);
const PROBES: u32 = 2;
const INTERVAL: Duration = Duration::from_millis(200);
const LISTEN: Duration = Duration::from_millis(600);

/// Why a probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot add the probe port to the switch: {0}")]
    Switch(crate::core::SwitchError),
    #[error("cannot start the probe port: {0}")]
    Start(std::io::Error),
}

/// Probes `ip` on network `vni` as `mac`; returns the MAC of the station that claims it, if
/// any. A probe that could not run is an error, never "no conflict".
pub async fn conflict(
    switch: &RwLock<Switch>,
    dataplane: &Dataplane,
    vni: Vni,
    mac: Mac,
    ip: Ipv4Addr,
) -> Result<Option<Mac>, ProbeError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(256);
    write(switch)
        .add_port(PROBE_PORT, vni)
        .map_err(ProbeError::Switch)?;
    if let Err(e) = dataplane.add_port(PROBE_PORT, PortSink::Host(tx)) {
        let _ = write(switch).remove_port(PROBE_PORT);
        return Err(ProbeError::Start(e));
    }
    let probe = arp::probe(mac, ip);
    let mut found = None;
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    let mut sent = 0;
    'listen: while waited < LISTEN {
        if sent < PROBES && waited >= INTERVAL * sent {
            dataplane.inject(PROBE_PORT, &probe);
            sent += 1;
        }
        tokio::time::sleep(step).await;
        waited += step;
        while let Ok(frame) = rx.try_recv() {
            if arp::claims(&frame, ip, mac) {
                if let Some(owner) = frame.get(6..12).and_then(|b| <[u8; 6]>::try_from(b).ok()) {
                    found = Some(Mac(owner));
                    break 'listen;
                }
            }
        }
    }
    dataplane.remove_port(PROBE_PORT);
    let _ = write(switch).remove_port(PROBE_PORT);
    Ok(found)
}
