//! Control datagrams: what the switch sends on its own on encrypted networks. Handshakes
//! verify that a peer's sender is fresh (so nothing recorded before a restart can be replayed),
//! and key announcements let key rotations finish on idle networks (see `core::seal`,
//! "Freshness" and "Announcements").

use std::time::Duration;

use super::{Switch, Vtep, CONTROL_LEN};
use crate::core::seal::ControlTarget;
use crate::core::Timestamp;
use crate::wire::vxlan::{self, VxlanRepr};
use crate::wire::{udp_source_port, Vni};

impl Switch {
    /// Sends the control datagrams due at `now` on every encrypted network: handshake
    /// messages to single peers, and while a key rotation is in progress, key announcements
    /// to every peer (see [`Sealer::poll_control`](crate::core::seal::Sealer::poll_control)).
    /// Call it whenever `tick` is called, every [`Switch::announce_within`] while that is
    /// `Some`, and from the data path whenever [`Switch::control_due`] (after a batch of
    /// received datagrams), so that a handshake takes one round trip.
    ///
    /// `send` gets the VTEP, the outer source port to send from (the network's
    /// [`sealed_source_port`], so that control datagrams stay in line
    /// with the network's data) and the datagram.
    pub fn announce(&self, now: Timestamp, mut send: impl FnMut(Vtep, u16, &[u8])) {
        let mut buf = [0u8; CONTROL_LEN];
        for network in self.networks.values() {
            let Some(sealer) = &network.seal else {
                continue;
            };
            let port = sealed_source_port(network.vni);
            buf[..vxlan::HEADER_LEN].copy_from_slice(
                &VxlanRepr {
                    vni: network.vni,
                    sealed: true,
                }
                .to_bytes(),
            );
            while let Some(due) = sealer.poll_control(&mut buf, now) {
                match due {
                    Ok((ControlTarget::Everyone, len)) => {
                        for peer in &self.peers {
                            send(peer.vtep, port, &buf[..len]);
                        }
                    }
                    Ok((ControlTarget::Peer(addr), len)) => {
                        // Only to a peer that is still configured.
                        if let Some(peer) = self.peers.iter().find(|p| p.vtep.0 == addr) {
                            send(peer.vtep, port, &buf[..len]);
                        }
                    }
                    Err(e) => self.count_in(network, e.into()),
                }
            }
        }
    }

    /// True if a handshake message is due on some network: the data path then calls
    /// [`Switch::announce`] at once.
    pub fn control_due(&self) -> bool {
        self.networks
            .values()
            .filter_map(|n| n.seal.as_ref())
            .any(|s| s.control_due())
    }

    /// How soon the shell should call [`Switch::announce`] again: `Some` while any network is
    /// rotating its key (a switch inside `datagram_from_vtep` can make an announcement due at
    /// any moment), `None` when every network is stable.
    pub fn announce_within(&self) -> Option<Duration> {
        self.networks
            .values()
            .filter_map(|n| n.seal.as_ref())
            .filter(|s| s.next_announcement().is_some())
            .map(|s| s.config().announce_interval / 2)
            .min()
    }
}

/// The outer UDP source port of every datagram of encrypted network `vni`, data and control
/// alike, instead of a flow hash.
///
/// A receiver's replay window (`core::seal`) is per sender and key, and tolerates reordering only
/// within [`REPLAY_WINDOW`](crate::core::seal::REPLAY_WINDOW) counters. The receiving data path
/// runs a worker per core, and the kernel gives each worker the datagrams of some outer
/// addresses and ports (`SO_REUSEPORT`); two workers drain their queues at their own pace, so
/// datagrams of one sender spread over two of them can be processed thousands apart. One port
/// per network keeps each sender's datagrams of a network in one queue, in the order they were
/// sent. The cost: an encrypted network's traffic between two hosts takes one ECMP path and is
/// opened by one worker there (sealing still runs on every worker of the sender).
pub fn sealed_source_port(vni: Vni) -> u16 {
    udp_source_port(vni.get().wrapping_mul(0x9e37_79b9))
}

/// The outer UDP source port of a datagram of `network` carrying `inner`: the flow's hash on a
/// plain network (RFC 7348 §5), the network's one port on an encrypted one.
pub(super) fn source_port(network: &super::Network, inner: &[u8]) -> u16 {
    match network.seal {
        Some(_) => sealed_source_port(network.vni),
        None => udp_source_port(crate::wire::flow_hash(inner)),
    }
}
