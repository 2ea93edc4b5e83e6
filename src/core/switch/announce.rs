//! Control datagrams: what the switch sends on its own on encrypted networks. Handshakes
//! verify that a peer's sender is fresh (so nothing recorded before a restart can be replayed),
//! and key announcements let key rotations finish on idle networks (see `core::seal`,
//! "Freshness" and "Announcements").

use std::time::Duration;

use super::{Switch, Vtep, CONTROL_LEN};
use crate::core::seal::ControlTarget;
use crate::core::Timestamp;
use crate::wire::vxlan::{self, VxlanRepr};

impl Switch {
    /// Sends the control datagrams due at `now` on every encrypted network: handshake
    /// messages to single peers, and while a key rotation is in progress, key announcements
    /// to every peer (see [`Sealer::poll_control`](crate::core::seal::Sealer::poll_control)).
    /// Call it whenever `tick` is called, every [`Switch::announce_within`] while that is
    /// `Some`, and from the data path whenever [`Switch::control_due`] (after a batch of
    /// received datagrams), so that a handshake takes one round trip.
    pub fn announce(&self, now: Timestamp, mut send: impl FnMut(Vtep, &[u8])) {
        let mut buf = [0u8; CONTROL_LEN];
        for network in self.networks.values() {
            let Some(sealer) = &network.seal else {
                continue;
            };
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
                            send(peer.vtep, &buf[..len]);
                        }
                    }
                    Ok((ControlTarget::Peer(addr), len)) => {
                        // Only to a peer that is still configured.
                        if let Some(peer) = self.peers.iter().find(|p| p.vtep.0 == addr) {
                            send(peer.vtep, &buf[..len]);
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
