//! Endpoint advertisements (cluster mode): what other hosts say they have, and what the switch
//! does with it.
//!
//! - **Static FDB entries.** [`Switch::set_remote_endpoint`] pins the endpoint's MAC at its
//!   host's VTEP (see [`Fdb::pin`](crate::core::Fdb::pin)), so unicast to it never floods and
//!   learning from another VTEP does not move it; [`Switch::remove_remote_endpoint`] (or the
//!   peer's removal) takes it away.
//! - **Proxy ARP** ([`SwitchConfig::proxy_arp`](super::SwitchConfig)): an ARP request from a
//!   local port for an advertised address, or for a secured local port's address, is answered
//!   by the switch itself, back to the asking port, so it never crosses the underlay: a
//!   broadcast one, and a unicast one too (the kernel's reachability probes). The reply
//!   is built in the caller's [`Forward`] (no allocation) and handed out by
//!   [`Forward::deliver`] in place of the request.
//! - **Flood lists.** [`Switch::set_flood_list`] restricts a network's broadcast, multicast and
//!   unknown-unicast frames to the listed VTEPs (the hosts that have endpoints on it); without
//!   a list (static `--peer` setups) they go to every peer, as before.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Forward, Network, Port, Switch, SwitchError, Vtep};
use crate::core::forward::{Reply, ARP_FRAME_LEN};
use crate::core::{PortId, Timestamp};
use crate::wire::{EtherType, Mac, Vni};

/// One network's advertised endpoints and flood list.
#[derive(Debug, Default)]
pub(super) struct Adverts {
    /// Advertised endpoints: MAC → (IPv4 address, the VTEP of its host).
    remote: HashMap<Mac, (Option<Ipv4Addr>, Vtep)>,
    /// The addresses proxy ARP answers for: IPv4 → MAC (every one is in `remote`).
    arp: HashMap<Ipv4Addr, Mac>,
    /// `None`: floods go to every peer. `Some`: only to these (if they are peers).
    flood: Option<Vec<Vtep>>,
    /// ARP requests answered by the switch.
    pub(super) answered: AtomicU64,
}

impl Adverts {
    fn forget(&mut self, mac: Mac) -> Option<Vtep> {
        let (ip, vtep) = self.remote.remove(&mac)?;
        if let Some(ip) = ip {
            if self.arp.get(&ip) == Some(&mac) {
                self.arp.remove(&ip);
            }
        }
        Some(vtep)
    }

    /// Forgets every endpoint behind `vtep` (the peer went; its FDB entries are flushed).
    pub(super) fn forget_vtep(&mut self, vtep: Vtep) {
        let gone: Vec<Mac> = self
            .remote
            .iter()
            .filter(|(_, (_, v))| *v == vtep)
            .map(|(m, _)| *m)
            .collect();
        for mac in gone {
            self.forget(mac);
        }
    }
}

/// An advertised endpoint, as [`Switch::remote_endpoints`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub mac: Mac,
    pub ip: Option<Ipv4Addr>,
    pub vtep: Vtep,
}

impl Switch {
    /// Installs an advertised endpoint of network `vni`: `mac` (a station's: not multicast nor
    /// zero; with IPv4 address `ip`) lives behind `vtep`, which must be a peer. Replaces an
    /// earlier advertisement of the MAC (forgotten even when this one is refused).
    /// `Ok(false)`: the MAC lives at a live local port here, which keeps it (nothing changed).
    pub fn set_remote_endpoint(
        &mut self,
        vni: Vni,
        mac: Mac,
        ip: Option<Ipv4Addr>,
        vtep: Vtep,
        now: Timestamp,
    ) -> Result<bool, SwitchError> {
        if !mac.is_valid_source() {
            return Err(SwitchError::BadMac(mac));
        }
        if !self.peers.iter().any(|p| p.vtep == vtep) {
            return Err(SwitchError::UnknownPeer(vtep.0.ip()));
        }
        let network = self
            .networks
            .get_mut(&vni)
            .ok_or(SwitchError::UnknownNetwork(vni))?;
        if let Some(old) = network.adverts.forget(mac) {
            if old != vtep {
                network.fdb.unpin(mac, old);
            }
        }
        if !network.fdb.pin(mac, vtep, now) {
            return Ok(false);
        }
        if let Some(ip) = ip {
            if let Some(other) = network.adverts.arp.insert(ip, mac) {
                // The address moved to another MAC: the old one keeps its FDB entry only.
                if let Some(e) = network
                    .adverts
                    .remote
                    .get_mut(&other)
                    .filter(|_| other != mac)
                {
                    e.0 = None;
                }
            }
        }
        network.adverts.remote.insert(mac, (ip, vtep));
        Ok(true)
    }

    /// Removes the advertised endpoint `mac` of network `vni` (its advertisement went): its
    /// static entry and its ARP answer. Returns whether there was one.
    pub fn remove_remote_endpoint(&mut self, vni: Vni, mac: Mac) -> Result<bool, SwitchError> {
        let network = self
            .networks
            .get_mut(&vni)
            .ok_or(SwitchError::UnknownNetwork(vni))?;
        Ok(match network.adverts.forget(mac) {
            Some(vtep) => {
                network.fdb.unpin(mac, vtep);
                true
            }
            None => false,
        })
    }

    /// The advertised endpoints of network `vni`, sorted by MAC.
    pub fn remote_endpoints(&self, vni: Vni) -> Vec<RemoteEndpoint> {
        let mut v: Vec<RemoteEndpoint> = self
            .networks
            .get(&vni)
            .map(|n| {
                n.adverts
                    .remote
                    .iter()
                    .map(|(&mac, &(ip, vtep))| RemoteEndpoint { mac, ip, vtep })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Restricts the floods of network `vni` to `vteps` (`None`: every peer).
    pub fn set_flood_list(
        &mut self,
        vni: Vni,
        vteps: Option<Vec<Vtep>>,
    ) -> Result<(), SwitchError> {
        let network = self
            .networks
            .get_mut(&vni)
            .ok_or(SwitchError::UnknownNetwork(vni))?;
        network.adverts.flood = vteps.map(|mut v| {
            v.sort();
            v.dedup();
            v
        });
        Ok(())
    }

    /// Where a flood of network `vni` goes now: the peers in its flood list, or every peer.
    pub fn flood_list(&self, vni: Vni) -> Vec<Vtep> {
        let mut out = Vec::new();
        if let Some(n) = self.networks.get(&vni) {
            self.flood_to(n, &mut out);
        }
        out
    }

    /// How many ARP requests of network `vni` the switch answered itself.
    pub fn arp_answered(&self, vni: Vni) -> u64 {
        self.networks
            .get(&vni)
            .map_or(0, |n| n.adverts.answered.load(Ordering::Relaxed))
    }

    pub(super) fn flood_to(&self, network: &Network, out: &mut Vec<Vtep>) {
        let peers = self.peers.iter().map(|p| p.vtep);
        match &network.adverts.flood {
            None => out.extend(peers),
            Some(list) => out.extend(peers.filter(|v| list.binary_search(v).is_ok())),
        }
    }

    /// Answers `frame` (from `port`, admitted) itself when it is an ARP request for a known
    /// address: the reply goes back to `port` alone. Returns whether it did.
    pub(super) fn proxy_arp(
        &self,
        network: &Network,
        port: PortId,
        frame: &[u8],
        out: &mut Forward,
    ) -> bool {
        if !self.config.proxy_arp {
            return false;
        }
        let Some(request) = ArpRequest::parse(frame) else {
            return false;
        };
        let local = || {
            network.ports.iter().find_map(|q| {
                let security = self.ports.get(q).and_then(|p: &Port| p.security.as_ref())?;
                security
                    .ipv4
                    .contains(&request.target)
                    .then_some(security.mac)
            })
        };
        let Some(mac) = network
            .adverts
            .arp
            .get(&request.target)
            .copied()
            .or_else(local)
        else {
            return false;
        };
        // A station asking about an address that is its own (a duplicate-address check) is
        // left to the network: answering with its own MAC would look like a conflict.
        if mac == request.sender_mac || mac == request.src {
            return false;
        }
        out.reply = Some(request.reply(mac));
        out.ports.push(port);
        network.adverts.answered.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// The fields of an Ethernet + ARP (IPv4 over Ethernet) request that an answer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ArpRequest {
    /// The Ethernet source.
    src: Mac,
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target: Ipv4Addr,
}

impl ArpRequest {
    /// An untagged ARP request for an IPv4 address over Ethernet; `None` for anything else
    /// (replies, gratuitous ARP, other hardware or protocol types, short frames).
    fn parse(frame: &[u8]) -> Option<ArpRequest> {
        let f = frame.get(..ARP_FRAME_LEN)?;
        let mac = |at: usize| Mac(<[u8; 6]>::try_from(&f[at..at + 6]).unwrap_or_default());
        let ip =
            |at: usize| Ipv4Addr::from(<[u8; 4]>::try_from(&f[at..at + 4]).unwrap_or_default());
        let arp = &f[14..];
        let fixed = u16::from_be_bytes([f[12], f[13]]) == EtherType::ARP
            && arp[..6] == [0, 1, 0x08, 0x00, 6, 4]
            && arp[6..8] == [0, 1];
        let request = ArpRequest {
            src: mac(6),
            sender_mac: mac(22),
            sender_ip: ip(28),
            target: ip(38),
        };
        (fixed && request.sender_ip != request.target).then_some(request)
    }

    /// The reply `mac` would send.
    fn reply(&self, mac: Mac) -> Reply {
        let mut b = [0u8; ARP_FRAME_LEN];
        b[0..6].copy_from_slice(&self.src.0);
        b[6..12].copy_from_slice(&mac.0);
        b[12..14].copy_from_slice(&EtherType::ARP.to_be_bytes());
        b[14..20].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        b[20..22].copy_from_slice(&[0, 2]);
        b[22..28].copy_from_slice(&mac.0);
        b[28..32].copy_from_slice(&self.target.octets());
        b[32..38].copy_from_slice(&self.sender_mac.0);
        b[38..42].copy_from_slice(&self.sender_ip.octets());
        Reply(b)
    }
}
