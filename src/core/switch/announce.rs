//! Key announcements: what the switch sends on its own, so key rotations finish on idle
//! networks (see `core::seal`, "Announcements").

use std::time::Duration;

use super::{Switch, Vtep, ANNOUNCEMENT_LEN};
use crate::core::Timestamp;
use crate::wire::vxlan::{self, VxlanRepr};

impl Switch {
    /// Sends the key announcements due at `now`: for every encrypted network whose key
    /// rotation is in progress, one authenticated datagram with an empty frame to every peer
    /// (see [`Sealer::announce`]), so rotations finish on idle networks too. Call it whenever
    /// `tick` is called, and every [`Switch::announce_within`] while that is `Some`.
    pub fn announce(&self, now: Timestamp, mut send: impl FnMut(Vtep, &[u8])) {
        let mut buf = [0u8; ANNOUNCEMENT_LEN];
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
            match sealer.announce(&mut buf, now) {
                None => {}
                Some(Ok(len)) => {
                    for peer in &self.peers {
                        send(peer.vtep, &buf[..len]);
                    }
                }
                Some(Err(e)) => self.count_in(network, e.into()),
            }
        }
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
