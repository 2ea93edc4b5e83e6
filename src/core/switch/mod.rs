//! The switch: one learning L2 switch per network (VNI), joined to other hosts' switches by
//! VXLAN. Deterministic and free of I/O: the caller passes in frames, datagrams and the time,
//! and gets back a [`Forward`] saying where the frame goes.
//!
//! Rules:
//! - known unicast goes to the one port or VTEP that owns the destination MAC, never back out of
//!   the port it came in on;
//! - broadcast, multicast and unknown unicast from a port go to every other port of the network
//!   and, by head-end replication, to every peer VTEP;
//! - split horizon: a frame from the underlay goes only to local ports, never to another VTEP,
//!   so a full mesh cannot loop;
//! - networks are isolated: a frame only ever meets the ports and table of its own VNI.
//!
//! Data-path calls take `&self` so several workers can share one switch; configuration calls
//! take `&mut self` (the shell holds the switch in a read-mostly lock).

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use std::sync::Arc;

use super::counters::{DropCounters, DropReason, Traffic, TrafficSnapshot};
use super::fdb::{Fdb, FdbConfig, FdbEntry, Learned, Location, PortId, Vtep};
pub use super::forward::{Encapsulated, Forward, Sends};
use super::gateway::GatewayAddr;
use super::seal::{Sealer, CONTROL_LEN};
use super::time::Timestamp;
use crate::wire::sealed::{self, SEAL_OVERHEAD};
use crate::wire::underlay::OUTER_LEN;
use crate::wire::vxlan::{self, VxlanPacket, VxlanRepr};
use crate::wire::{classify, Mac, Vni};
pub use guard::{PortSecurity, StormControl};

/// Headroom a caller reserves in front of a frame so encapsulation writes in place: outer IPv4
/// and UDP (28), VXLAN (8), a sealed envelope header (20), rounded up.
pub const HEADROOM: usize = 64;
/// Tailroom a caller reserves behind a frame (room for an authentication tag).
pub const TAILROOM: usize = 16;

/// Switch-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SwitchConfig {
    pub fdb: FdbConfig,
    /// Carry 802.1Q-tagged inner frames instead of dropping them (RFC 7348 §6.1 default: drop).
    pub allow_vlan_tagged: bool,
    /// Storm control: at most this many broadcast/multicast frames per second from each port
    /// (bursts of up to twice as many); 0 turns it off. The core's default is off; the daemon
    /// turns it on.
    pub storm_pps: u32,
    /// Answer ARP requests for known addresses (advertised endpoints, secured local ports)
    /// from the switch instead of flooding them (cluster mode; see `adverts`).
    pub proxy_arp: bool,
}

/// A configuration change the switch refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error("network with VNI {0} already exists")]
    NetworkExists(Vni),
    #[error("no network with VNI {0}")]
    UnknownNetwork(Vni),
    #[error("network with VNI {vni} still has ports {ports:?}; detach them first")]
    NetworkHasPorts { vni: Vni, ports: Vec<PortId> },
    #[error("port {0:?} already exists")]
    PortExists(PortId),
    #[error("no port {0:?}")]
    UnknownPort(PortId),
    #[error("peer {0} already exists")]
    PeerExists(IpAddr),
    #[error("no peer {0}")]
    UnknownPeer(IpAddr),
    #[error("{0} cannot be a station's MAC")]
    BadMac(Mac),
}

/// One network: its table, its ports, its counters.
#[derive(Debug)]
pub struct Network {
    pub vni: Vni,
    pub fdb: Fdb,
    ports: Vec<PortId>,
    pub traffic: Traffic,
    /// Present when the network is encrypted.
    seal: Option<Arc<Sealer<SocketAddr>>>,
    adverts: adverts::Adverts,
    /// The network's own gateway host, when it has one (see [`Switch::set_gateway`]).
    gateway: Option<GatewayAddr>,
}

impl Network {
    pub fn ports(&self) -> &[PortId] {
        &self.ports
    }

    pub fn sealer(&self) -> Option<&Arc<Sealer<SocketAddr>>> {
        self.seal.as_ref()
    }
}

#[derive(Debug)]
struct Port {
    vni: Vni,
    traffic: Traffic,
    /// `None`: the port may send from any MAC and address (`attach --no-port-security`).
    security: Option<PortSecurity>,
    storm: Option<StormControl>,
    /// The port's MTU: a frame (not a superframe) longer than this plus its Ethernet header is
    /// dropped at ingress. `None`: no limit.
    mtu: Option<u32>,
}

#[derive(Debug)]
struct Peer {
    vtep: Vtep,
    traffic: Traffic,
}

/// The switch.
#[derive(Debug, Default)]
pub struct Switch {
    config: SwitchConfig,
    networks: IdMap<Vni, Network>,
    ports: IdMap<PortId, Port>,
    peers: Vec<Peer>,
    /// Every drop, whatever it is also counted against.
    pub drops: DropCounters,
}

impl Switch {
    pub fn new(config: SwitchConfig) -> Switch {
        Switch {
            config,
            ..Switch::default()
        }
    }

    pub fn config(&self) -> &SwitchConfig {
        &self.config
    }

    // ---- configuration ----

    pub fn add_network(&mut self, vni: Vni) -> Result<(), SwitchError> {
        if self.networks.contains_key(&vni) {
            return Err(SwitchError::NetworkExists(vni));
        }
        self.networks.insert(
            vni,
            Network {
                vni,
                fdb: Fdb::new(self.config.fdb),
                ports: Vec::new(),
                traffic: Traffic::default(),
                seal: None,
                adverts: adverts::Adverts::default(),
                gateway: None,
            },
        );
        Ok(())
    }

    /// Makes a network encrypted (or plain again with `None`). Every frame of an encrypted
    /// network is sealed before it leaves and must open before it is delivered; plain datagrams
    /// for it are dropped.
    pub fn set_sealer(
        &mut self,
        vni: Vni,
        sealer: Option<Sealer<SocketAddr>>,
    ) -> Result<(), SwitchError> {
        let network = self
            .networks
            .get_mut(&vni)
            .ok_or(SwitchError::UnknownNetwork(vni))?;
        network.seal = sealer.map(Arc::new);
        if let Some(sealer) = &network.seal {
            // Verify every peer before traffic needs it (see `announce`).
            for peer in &self.peers {
                sealer.challenge(peer.vtep.0);
            }
        }
        Ok(())
    }

    pub fn remove_network(&mut self, vni: Vni) -> Result<(), SwitchError> {
        let network = self
            .networks
            .get(&vni)
            .ok_or(SwitchError::UnknownNetwork(vni))?;
        if !network.ports.is_empty() {
            return Err(SwitchError::NetworkHasPorts {
                vni,
                ports: network.ports.clone(),
            });
        }
        self.networks.remove(&vni);
        Ok(())
    }

    pub fn network(&self, vni: Vni) -> Option<&Network> {
        self.networks.get(&vni)
    }

    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.networks.values()
    }

    pub fn add_port(&mut self, port: PortId, vni: Vni) -> Result<(), SwitchError> {
        if self.ports.contains_key(&port) {
            return Err(SwitchError::PortExists(port));
        }
        let network = self
            .networks
            .get_mut(&vni)
            .ok_or(SwitchError::UnknownNetwork(vni))?;
        network.ports.push(port);
        let storm = match self.config.storm_pps {
            0 => None,
            pps => Some(StormControl::new(pps, pps.saturating_mul(2))),
        };
        self.ports.insert(
            port,
            Port {
                vni,
                traffic: Traffic::default(),
                security: None,
                storm,
                mtu: None,
            },
        );
        Ok(())
    }

    /// Sets the MTU frames from `port` must fit (see [`Switch::admit_len`]).
    pub fn set_port_mtu(&mut self, port: PortId, mtu: Option<u32>) -> Result<(), SwitchError> {
        let p = self
            .ports
            .get_mut(&port)
            .ok_or(SwitchError::UnknownPort(port))?;
        p.mtu = mtu;
        Ok(())
    }

    /// Whether a frame of `len` bytes (a single frame, not a TSO superframe, which the caller
    /// cuts to the MTU itself) fits `port`'s MTU. A frame that does not is counted `too_big` on
    /// the port and its network: a container that raised its own MTU cannot push jumbo frames
    /// at neighbours whose MTU is smaller.
    pub fn admit_len(&self, port: PortId, len: usize) -> bool {
        let Some(p) = self.ports.get(&port) else {
            return true;
        };
        let Some(mtu) = p.mtu else {
            return true;
        };
        let header = if self.config.allow_vlan_tagged {
            18
        } else {
            14
        };
        if len <= mtu as usize + header {
            return true;
        }
        p.traffic.drops.add(DropReason::TooBig);
        match self.networks.get(&p.vni) {
            Some(network) => self.count_in(network, DropReason::TooBig),
            None => self.drops.add(DropReason::TooBig),
        }
        false
    }

    /// Locks a port to the MAC and addresses it was given (`Some`), or lets it send from any
    /// (`None`, the default for a new port). See [`PortSecurity`].
    pub fn set_port_security(
        &mut self,
        port: PortId,
        security: Option<PortSecurity>,
    ) -> Result<(), SwitchError> {
        let p = self
            .ports
            .get_mut(&port)
            .ok_or(SwitchError::UnknownPort(port))?;
        p.security = security;
        Ok(())
    }

    /// Removes a port and forgets every MAC learned on it.
    pub fn remove_port(&mut self, port: PortId) -> Result<(), SwitchError> {
        let p = self
            .ports
            .remove(&port)
            .ok_or(SwitchError::UnknownPort(port))?;
        if let Some(network) = self.networks.get_mut(&p.vni) {
            network.ports.retain(|&q| q != port);
            network.fdb.flush(Location::Port(port));
        }
        Ok(())
    }

    pub fn add_peer(&mut self, vtep: Vtep) -> Result<(), SwitchError> {
        if self.peer_index(vtep.0.ip()).is_some() {
            return Err(SwitchError::PeerExists(vtep.0.ip()));
        }
        self.peers.push(Peer {
            vtep,
            traffic: Traffic::default(),
        });
        for sealer in self.networks.values().filter_map(|n| n.seal.as_ref()) {
            sealer.challenge(vtep.0);
        }
        Ok(())
    }

    /// Removes a peer and forgets every MAC learned behind it.
    pub fn remove_peer(&mut self, ip: IpAddr) -> Result<Vtep, SwitchError> {
        let i = self.peer_index(ip).ok_or(SwitchError::UnknownPeer(ip))?;
        let peer = self.peers.remove(i);
        for network in self.networks.values_mut() {
            network.fdb.flush(Location::Vtep(peer.vtep));
            if let Some(sealer) = &network.seal {
                sealer.forget_peer(&peer.vtep.0);
            }
            network.adverts.forget_vtep(peer.vtep);
        }
        Ok(peer.vtep)
    }

    pub fn peers(&self) -> impl Iterator<Item = Vtep> + '_ {
        self.peers.iter().map(|p| p.vtep)
    }

    fn peer_index(&self, ip: IpAddr) -> Option<usize> {
        self.peers.iter().position(|p| p.vtep.0.ip() == ip)
    }

    // ---- the data path ----

    /// Decides where a frame from a local port goes, learning its source on the way.
    pub fn frame_from_port(&self, now: Timestamp, port: PortId, frame: &[u8], out: &mut Forward) {
        out.clear();
        out.frame = 0..frame.len();
        let Some(p) = self.ports.get(&port) else {
            return self.drop_frame(out, DropReason::UnknownPort, &[]);
        };
        p.traffic.rx(&out.lane, frame.len());
        let Some(network) = self.networks.get(&p.vni) else {
            return self.drop_frame(out, DropReason::UnknownPort, &[&p.traffic]);
        };
        out.vni = Some(network.vni);
        network.traffic.rx(&out.lane, frame.len());
        let scopes = [&p.traffic, &network.traffic];
        let dst = match self.admit(now, network, frame, Location::Port(port), Some(p)) {
            Ok(dst) => dst,
            Err(reason) => return self.drop_frame(out, reason, &scopes),
        };
        if gateway::steers(network, dst, frame) {
            out.gateway = true;
            return;
        }
        if self.proxy_arp(network, port, frame, out) {
            return self.count_tx(network, out, frame.len());
        }
        match (dst.is_multicast(), network.fdb.lookup(dst, now)) {
            (false, Some(Location::Port(q))) if q == port => {
                return self.drop_frame(out, DropReason::SamePort, &scopes)
            }
            (false, Some(Location::Port(q))) => out.ports.push(q),
            (false, Some(Location::Vtep(v))) => out.vteps.push(v),
            _ => {
                out.ports
                    .extend(network.ports.iter().copied().filter(|&q| q != port));
                self.flood_to(network, &mut out.vteps);
            }
        }
        self.count_tx(network, out, frame.len());
    }

    /// Decides where a datagram from the underlay goes. On success `out.frame` is the inner
    /// frame's range inside `datagram`.
    pub fn datagram_from_vtep(
        &self,
        now: Timestamp,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut Forward,
    ) {
        out.clear();
        let Some(peer) = self.peers.iter().find(|p| p.vtep.0.ip() == from.ip()) else {
            return self.drop_frame(out, DropReason::UnknownVtep, &[]);
        };
        peer.traffic.rx(&out.lane, datagram.len());
        let repr = match VxlanRepr::parse(&VxlanPacket::new_unchecked(&*datagram)) {
            Ok(repr) => repr,
            Err(e) => return self.drop_frame(out, e.into(), &[&peer.traffic]),
        };
        let Some(network) = self.networks.get(&repr.vni) else {
            return self.drop_frame(out, DropReason::UnknownVni, &[&peer.traffic]);
        };
        out.vni = Some(network.vni);
        let scopes = [&peer.traffic, &network.traffic];
        out.frame = match (&network.seal, repr.sealed) {
            (None, false) => vxlan::HEADER_LEN..datagram.len(),
            (None, true) => return self.drop_frame(out, DropReason::UnexpectedSeal, &scopes),
            (Some(_), false) => return self.drop_frame(out, DropReason::NotSealed, &scopes),
            (Some(sealer), true) => match sealer.open(&peer.vtep.0, datagram, now) {
                // A key announcement (see `announce`): the sealer has taken it in; nothing to
                // deliver.
                Ok(range) if range.is_empty() => return,
                Ok(range) => range,
                Err(e) => return self.drop_frame(out, e.into(), &scopes),
            },
        };
        let frame = &datagram[out.frame.clone()];
        network.traffic.rx(&out.lane, frame.len());
        let dst = match self.admit(now, network, frame, Location::Vtep(peer.vtep), None) {
            Ok(dst) => dst,
            Err(reason) => return self.drop_frame(out, reason, &scopes),
        };
        match (dst.is_multicast(), network.fdb.lookup(dst, now)) {
            (false, Some(Location::Port(q))) => out.ports.push(q),
            (false, Some(Location::Vtep(_))) => {
                return self.drop_frame(out, DropReason::SplitHorizon, &scopes)
            }
            _ => out.ports.extend_from_slice(&network.ports),
        }
        self.count_tx(network, out, frame.len());
    }

    /// Encapsulates the frame at `frame` inside `buf` in place, for sending to
    /// `sends.vteps()`: writes the VXLAN header in front of it and, on an encrypted network,
    /// seals it (which needs [`HEADROOM`] bytes before the frame and [`TAILROOM`] after it).
    /// Sealing encrypts the frame where it lies; the [`Sends`] shows the local deliveries are
    /// done. A refusal is counted (switch-wide and against the network) before it is returned.
    pub fn encapsulate(
        &self,
        sends: &Sends<'_>,
        buf: &mut [u8],
        frame: Range<usize>,
    ) -> Result<Encapsulated, DropReason> {
        let network = self.networks.get(&sends.vni()).ok_or_else(|| {
            self.drops.add(DropReason::UnknownVni);
            DropReason::UnknownVni
        })?;
        self.seal_frame(network, buf, frame)
            .inspect_err(|&reason| self.count_in(network, reason))
    }

    fn seal_frame(
        &self,
        network: &Network,
        buf: &mut [u8],
        frame: Range<usize>,
    ) -> Result<Encapsulated, DropReason> {
        let inner = buf.get(frame.clone()).ok_or(DropReason::Truncated)?;
        let src_port = announce::source_port(network, inner);
        let (header_len, overhead) = match network.seal {
            Some(_) => (
                vxlan::HEADER_LEN + sealed::HEADER_LEN,
                vxlan::HEADER_LEN + SEAL_OVERHEAD,
            ),
            None => (vxlan::HEADER_LEN, vxlan::HEADER_LEN),
        };
        // The datagram must fit in one IPv4 packet with the outer headers the shell adds.
        if OUTER_LEN + overhead + frame.len() > usize::from(u16::MAX) {
            return Err(DropReason::TooBig);
        }
        let start = frame
            .start
            .checked_sub(header_len)
            .ok_or(DropReason::TooBig)?;
        let header = VxlanRepr {
            vni: network.vni,
            sealed: network.seal.is_some(),
        }
        .to_bytes();
        buf[start..start + vxlan::HEADER_LEN].copy_from_slice(&header);
        let end = match &network.seal {
            None => frame.end,
            Some(sealer) => {
                let room = buf.len().min(frame.end + TAILROOM);
                start + sealer.seal(&mut buf[start..room], frame.len())?
            }
        };
        Ok(Encapsulated {
            datagram: start..end,
            src_port,
        })
    }

    /// Counts a drop the shell decided on for a frame of network `vni` (say, a datagram it
    /// could not address), so every drop is in the same counters under one name.
    pub fn count_drop(&self, vni: Vni, reason: DropReason) {
        match self.networks.get(&vni) {
            Some(network) => self.count_in(network, reason),
            None => self.drops.add(reason),
        }
    }

    fn count_in(&self, network: &Network, reason: DropReason) {
        self.drops.add(reason);
        network.traffic.drops.add(reason);
    }

    /// Advances time: forgets MACs that have aged out.
    pub fn tick(&self, now: Timestamp) {
        for network in self.networks.values() {
            network.fdb.age(now);
            if let Some(sealer) = &network.seal {
                sealer.tick(now);
            }
        }
    }

    /// Checks a frame's header and learns its source; returns its destination.
    fn admit(
        &self,
        now: Timestamp,
        network: &Network,
        frame: &[u8],
        at: Location,
        port: Option<&Port>,
    ) -> Result<Mac, DropReason> {
        let info = classify(frame)?;
        if info.vlan.is_some() && !self.config.allow_vlan_tagged {
            return Err(DropReason::VlanTagged);
        }
        if !info.src.is_valid_source() {
            return Err(DropReason::BadSourceMac);
        }
        if let Some(p) = port {
            if let Some(security) = &p.security {
                security.check(&info, frame)?;
            }
            if let (true, Some(storm)) = (info.dst.is_multicast(), &p.storm) {
                storm.admit(now)?;
            }
        }
        match network.fdb.learn(info.src, at, now) {
            Learned::Refused => Err(DropReason::MacConflict),
            _ => Ok(info.dst),
        }
    }

    fn drop_frame(&self, out: &mut Forward, reason: DropReason, scopes: &[&Traffic]) {
        self.drops.add(reason);
        for s in scopes {
            s.drops.add(reason);
        }
        out.drop(reason);
    }

    fn count_tx(&self, network: &Network, out: &Forward, len: usize) {
        for q in &out.ports {
            if let Some(p) = self.ports.get(q) {
                p.traffic.tx(&out.lane, len);
                network.traffic.tx(&out.lane, len);
            }
        }
        for v in &out.vteps {
            if let Some(peer) = self.peers.iter().find(|p| p.vtep == *v) {
                peer.traffic.tx(&out.lane, len);
                network.traffic.tx(&out.lane, len);
            }
        }
    }

    // ---- observation ----

    pub fn port_traffic(&self, port: PortId) -> Option<TrafficSnapshot> {
        self.ports.get(&port).map(|p| p.traffic.snapshot())
    }

    pub fn peer_traffic(&self, ip: IpAddr) -> Option<TrafficSnapshot> {
        self.peer_index(ip)
            .map(|i| self.peers[i].traffic.snapshot())
    }

    pub fn network_traffic(&self, vni: Vni) -> Option<TrafficSnapshot> {
        self.networks.get(&vni).map(|n| n.traffic.snapshot())
    }

    pub fn fdb_entries(&self, vni: Vni) -> Vec<FdbEntry> {
        self.networks
            .get(&vni)
            .map(|n| n.fdb.entries())
            .unwrap_or_default()
    }
}

mod adverts;
mod announce;
mod gateway;
mod guard;
mod idmap;
pub use adverts::RemoteEndpoint;
pub use announce::sealed_source_port;
use idmap::IdMap;
#[cfg(test)]
mod adverts_tests;
#[cfg(test)]
mod tests;
