//! The switch's side of a network's gateway (see [`crate::core::gateway`]): which frames from
//! ports go to it, and where the frames it sends go. The gateway is not a port: it is never
//! learned in the MAC table, never flooded to, and never reached from, nor sends to, the
//! underlay, so every host's switch answers for it on its own.

use super::{Forward, Network, Switch, SwitchError};
use crate::core::counters::DropReason;
use crate::core::fdb::Location;
use crate::core::gateway::{steer, GatewayAddr};
use crate::core::Timestamp;
use crate::wire::{classify, Mac, Vni};

impl Switch {
    /// Gives network `vni` a gateway host (or takes it away with `None`).
    pub fn set_gateway(
        &mut self,
        vni: Vni,
        gateway: Option<GatewayAddr>,
    ) -> Result<(), SwitchError> {
        let network = self
            .networks
            .get_mut(&vni)
            .ok_or(SwitchError::UnknownNetwork(vni))?;
        network.gateway = gateway;
        Ok(())
    }

    pub fn gateway(&self, vni: Vni) -> Option<GatewayAddr> {
        self.networks.get(&vni).and_then(|n| n.gateway)
    }

    /// Decides where a frame network `vni`'s gateway host sent goes: to the local port that
    /// has the destination MAC, or to every local port for broadcast, multicast and unknown
    /// destinations. Never to a VTEP: a station behind another host has its own host's gateway.
    pub fn frame_from_gateway(&self, now: Timestamp, vni: Vni, frame: &[u8], out: &mut Forward) {
        out.clear();
        out.frame = 0..frame.len();
        let Some(network) = self.networks.get(&vni) else {
            return self.drop_frame(out, DropReason::UnknownVni, &[]);
        };
        out.vni = Some(vni);
        let dst = match classify(frame) {
            Ok(info) => info.dst,
            Err(e) => return self.drop_frame(out, e.into(), &[&network.traffic]),
        };
        match (dst.is_multicast(), network.fdb.lookup(dst, now)) {
            (false, Some(Location::Port(q))) => out.ports.push(q),
            (false, Some(Location::Vtep(_))) => {}
            _ => out.ports.extend_from_slice(&network.ports),
        }
        self.count_tx(network, out, frame.len());
    }
}

/// Whether a frame a port sent to `dst` on `network` is for the network's gateway.
pub(super) fn steers(network: &Network, dst: Mac, frame: &[u8]) -> bool {
    network
        .gateway
        .as_ref()
        .is_some_and(|gw| steer(gw, dst, frame))
}
