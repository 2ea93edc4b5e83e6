//! The daemon's rules: pure functions from what the daemon knows ([`View`]) and a request to a
//! [`Decision`] (the effects to carry out, in order, and the reply) or a [`RequestError`].
//!
//! Nothing here touches the kernel, a file or the clock. Facts that need I/O (the identity of
//! a namespace, whether an interface name is free, a key file's contents, a fresh MAC) are
//! gathered by the shell and passed in, so every rule and every refusal is unit-tested without
//! root. A refusal carries no effects, so it changes nothing. The shell ([`super::effects`])
//! runs a decision's effects in order and undoes the done ones if a later one fails.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::errors::{list_or_none, RequestError};
use super::keys::KeyFileError;
use crate::control::{NetworkSpec, PeerInfo, PortInfo};
use crate::core::gateway::GatewayAddr;
use crate::core::seal::{NetworkKey, SEAL_OVERHEAD};
use crate::core::{ipam, PortId, PortSecurity};
use crate::netns::{NsId, PortConfig};
use crate::store::{NetworkRecord, State};
use crate::wire::{vxlan, Mac, Vni};

/// The smallest container MTU (IPv4's minimum).
pub const MIN_MTU: u32 = 68;

/// What the rules see: the stored state, the live ports, and the host's facts.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub state: &'a State,
    pub ports: &'a BTreeMap<PortId, PortRecord>,
    pub underlay_mtu: u32,
    /// This host's egress subnet, and whether egress is on.
    pub egress: egress::Egress,
}

/// A live port, as the rules know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    pub info: PortInfo,
    /// The namespace it lives in.
    pub ns: NsId,
}

/// Where the key of a network being added to the switch comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A plain network.
    Plain,
    /// This key (just read from the user's key file).
    Given(NetworkKey),
    /// The state store's copy (a restart, or a network another host created).
    Stored,
}

/// One thing the shell does. See [`super::effects`] for how each is undone.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Write the state to the store (compare-and-swap against the revision decided on).
    Save(State),
    /// Keep the daemon's own copy of a network's key in the store.
    PutKey {
        network: String,
        key: NetworkKey,
    },
    /// Forget the stored key of a removed network (best effort: a leftover file is logged).
    ForgetKey {
        network: String,
    },
    AddNetwork {
        vni: Vni,
        network: String,
        key: KeySource,
        /// The network's gateway host, which the switch runs (see `core::gateway`).
        gateway: Option<GatewayAddr>,
    },
    RemoveNetwork {
        vni: Vni,
    },
    /// Start rotating an encrypted network's key (cannot be undone: order it last).
    RotateKey {
        network: String,
        vni: Vni,
        key: NetworkKey,
        peers: Vec<SocketAddr>,
    },
    AddPeer(SocketAddr),
    RemovePeer(SocketAddr),
    /// Create a TAP (with the virtio-net header and offloads) in the daemon's namespace.
    CreateTap {
        id: PortId,
        name: String,
    },
    /// Move the TAP into the container's namespace and configure it there.
    MoveTap {
        id: PortId,
        config: PortConfig,
    },
    /// Set the TAP's MAC and MTU where it is, for the caller to move (a hand-off).
    PrepareTap {
        id: PortId,
        mac: Mac,
        mtu: u32,
    },
    /// Add the port to the switch, locked to its MAC and addresses unless `security` is `None`.
    AddPort {
        id: PortId,
        vni: Vni,
        /// Frames from the container longer than this MTU are dropped at ingress.
        mtu: u32,
        security: Option<PortSecurity>,
    },
    /// Start moving frames for the port.
    StartPort {
        id: PortId,
    },
    /// Remember the port (the daemon's own table).
    RecordPort {
        id: PortId,
        record: PortRecord,
    },
    /// Stop a port and delete its TAP (the interface disappears from the container).
    DetachPort(PortId),
    /// Install another host's advertised endpoint: a static FDB entry and an ARP answer.
    SetEndpoint {
        vni: Vni,
        mac: crate::wire::Mac,
        ip: std::net::Ipv4Addr,
        vtep: SocketAddr,
    },
    /// Remove an advertised endpoint that was withdrawn.
    RemoveEndpoint {
        vni: Vni,
        mac: crate::wire::Mac,
    },
    /// Restrict a network's floods to these VTEPs (`None`: every peer).
    SetFlood {
        vni: Vni,
        vteps: Option<Vec<SocketAddr>>,
    },
    /// Open a recorded port's persistent TAP again, from inside its namespace, where it is
    /// called `ifname` and must still have `mac` (a restarted daemon taking its ports back).
    ReopenTap {
        id: PortId,
        ifname: String,
        mac: Mac,
    },
    /// Forget the container's dynamic ARP/NDP entries on the port's interface (a port taken
    /// back after a restart: entries left unresolved while no daemon ran would hold traffic up
    /// to their next retry). Best effort.
    ForgetNeighbours {
        ifname: String,
    },
    /// Send a gratuitous ARP (an ARP announcement, RFC 5227) from the port's address into its
    /// network, so that peers with a stale ARP entry for it recover at once.
    Announce {
        id: PortId,
        mac: Mac,
        ip: std::net::Ipv4Addr,
    },
    /// Write a named namespace's resolv.conf (`/etc/netns/NAME/resolv.conf`).
    WriteResolvConf {
        path: std::path::PathBuf,
        text: String,
    },
    /// Remove a resolv.conf vswitch wrote (one that starts with `services::RESOLV_MARK`).
    RemoveResolvConf {
        path: std::path::PathBuf,
    },
    /// Give the container (the namespace a port moves into) its egress link.
    AddEgress(crate::netns::EgressLink),
    /// Delete an egress link, if it is still there (best effort: a leftover is logged).
    RemoveEgress {
        host_ifname: String,
    },
    /// Install the daemon's firewall table for this egress subnet (`None`: delete it).
    SetEgressRules(Option<ipnet::Ipv4Net>),
    /// Put the table back for a taken-back port's egress link, which it should still have (best
    /// effort: a failure is logged and costs the port nothing).
    RepairEgressRules(ipnet::Ipv4Net),
}

/// What a rule decided: the effects to run, in order, and the reply once they all succeed.
#[derive(Debug, Clone)]
pub struct Decision<T> {
    pub effects: Vec<Effect>,
    pub reply: T,
}

impl View<'_> {
    /// The largest container MTU that fits the underlay without fragmenting.
    pub fn max_mtu(&self, network: &NetworkRecord) -> u32 {
        let mut overhead = vxlan::IPV4_OVERHEAD as u32;
        if network.encrypted {
            overhead += SEAL_OVERHEAD as u32;
        }
        self.underlay_mtu.saturating_sub(overhead)
    }

    /// The gateway host the switch runs for `network`, when it has a gateway address.
    pub fn gateway(&self, network: &NetworkRecord) -> Option<GatewayAddr> {
        let ip = network.gateway?;
        let prefix = network.subnet.prefix_len();
        Some(GatewayAddr::new(network.vni, ip, prefix, self.mtu(network)))
    }

    /// The container MTU of `network`.
    pub fn mtu(&self, network: &NetworkRecord) -> u32 {
        network.mtu.unwrap_or_else(|| self.max_mtu(network))
    }

    /// The network called `name`, or an error that lists the ones there are.
    pub fn network(&self, name: &str) -> Result<&NetworkRecord, RequestError> {
        self.state
            .network(name)
            .ok_or_else(|| RequestError::NoSuchNetwork {
                name: name.to_owned(),
                existing: list_or_none(&self.network_names()),
            })
    }

    pub(crate) fn network_names(&self) -> Vec<&str> {
        self.state
            .networks
            .iter()
            .map(|n| n.name.as_str())
            .collect()
    }

    /// The live ports of network `name`.
    pub fn ports_of<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = (&'s PortId, &'s PortRecord)> + 's {
        self.ports
            .iter()
            .filter(move |(_, p)| p.info.network == name)
    }
}

fn check_name(name: &str) -> Result<(), RequestError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RequestError::InvalidName(name.to_owned()))
    }
}

/// A peer must be another host's IPv4 VTEP with a port: not IPv6 (yet), not an address that
/// is not one host's (0.0.0.0, broadcast, multicast), and not one of this host's own addresses
/// (`own`), which would make the switch its own peer: every frame it floods would come back
/// and move its containers' MACs behind itself.
fn check_peer(addr: SocketAddr, own: &[IpAddr]) -> Result<(), RequestError> {
    let SocketAddr::V4(v4) = addr else {
        return Err(RequestError::PeerNotIpv4(addr));
    };
    let ip = v4.ip();
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(RequestError::PeerNotUnicast(addr));
    }
    if own.contains(&IpAddr::V4(*ip)) || ip.is_loopback() {
        return Err(RequestError::PeerIsSelf(addr));
    }
    if addr.port() == 0 {
        return Err(RequestError::PeerPortZero(addr));
    }
    Ok(())
}

/// The state a daemon starts with: the stored one plus the `--peer`s it was given. A peer
/// that could never carry traffic (IPv6, port 0, not another host's unicast address: `own` is
/// this host's), stored or given, is refused.
pub fn startup(
    mut state: State,
    peers: &[SocketAddr],
    own: &[IpAddr],
) -> Result<State, RequestError> {
    for &p in &state.peers {
        check_peer(p, own)?;
    }
    for &p in peers {
        check_peer(p, own)?;
        if !state.peers.iter().any(|q| q.ip() == p.ip()) {
            state.peers.push(p);
        }
    }
    Ok(state)
}

/// `network create`. `read_key` reads the user's key file (asked only for an encrypted
/// network, after every other check passed).
pub fn network_create(
    view: View<'_>,
    spec: NetworkSpec,
    read_key: impl FnOnce(&Path) -> Result<NetworkKey, KeyFileError>,
) -> Result<Decision<NetworkRecord>, RequestError> {
    check_name(&spec.name)?;
    if view.state.network(&spec.name).is_some() {
        return Err(RequestError::NetworkExists(spec.name));
    }
    if let Some(n) = view.state.networks.iter().find(|n| n.vni == spec.vni) {
        return Err(RequestError::VniInUse {
            vni: spec.vni,
            network: n.name.clone(),
        });
    }
    if let Some(gw) = spec.gateway {
        ipam::assignable(spec.subnet, None, gw).map_err(RequestError::Gateway)?;
    }
    let gateway = spec.gateway.or_else(|| ipam::default_gateway(spec.subnet));
    egress::check_overlap(&view.egress, &spec.name, spec.subnet, spec.internal)?;
    let key = match (spec.encrypted, &spec.key_file) {
        (false, None) => None,
        (true, Some(path)) => Some(read_key(path)?),
        _ => return Err(RequestError::KeyWithoutEncryption),
    };
    let record = NetworkRecord {
        name: spec.name,
        vni: spec.vni,
        subnet: spec.subnet,
        gateway,
        mtu: spec.mtu,
        encrypted: spec.encrypted,
        key_file: spec.key_file,
        key_check: key.as_ref().map(NetworkKey::check_value),
        internal: spec.internal,
    };
    let max = view.max_mtu(&record);
    if let Some(m) = record.mtu {
        if m > max {
            return Err(RequestError::MtuTooBig {
                mtu: m,
                underlay_mtu: view.underlay_mtu,
                max,
            });
        }
        if m < MIN_MTU {
            return Err(RequestError::MtuTooSmall(m));
        }
    }
    let mut state = view.state.clone();
    state.networks.push(record.clone());
    let mut effects = Vec::new();
    let key = match key {
        Some(key) => {
            // The daemon keeps its own copy, so a restart does not depend on the user's file.
            effects.push(Effect::PutKey {
                network: record.name.clone(),
                key: key.clone(),
            });
            KeySource::Given(key)
        }
        None => KeySource::Plain,
    };
    effects.push(Effect::AddNetwork {
        vni: record.vni,
        network: record.name.clone(),
        key,
        gateway: view.gateway(&record),
    });
    effects.push(Effect::Save(state));
    Ok(Decision {
        effects,
        reply: record,
    })
}

/// `network create` of an encrypted network another host created, on a host that has no key
/// for it (cluster mode): the same definition and a key file install the key here and set the
/// network up. Any difference from the stored definition is the usual "exists".
pub fn network_join(
    view: View<'_>,
    spec: NetworkSpec,
    read_key: impl FnOnce(&Path) -> Result<NetworkKey, KeyFileError>,
) -> Result<Decision<NetworkRecord>, RequestError> {
    let stored = view.network(&spec.name)?.clone();
    let same = stored.vni == spec.vni
        && stored.subnet == spec.subnet
        && match spec.gateway {
            Some(g) => stored.gateway == Some(g),
            // A record from before gateways were the default has none.
            None => stored
                .gateway
                .is_none_or(|g| Some(g) == ipam::default_gateway(spec.subnet)),
        }
        && stored.mtu == spec.mtu
        && stored.internal == spec.internal
        && stored.encrypted
        && spec.encrypted;
    let (true, Some(path)) = (same, spec.key_file.as_deref()) else {
        return Err(RequestError::NetworkExists(spec.name));
    };
    let key = read_key(path)?;
    if stored
        .key_check
        .as_ref()
        .is_some_and(|c| *c != key.check_value())
    {
        return Err(RequestError::KeyMismatch(stored.name));
    }
    Ok(Decision {
        effects: vec![
            Effect::PutKey {
                network: stored.name.clone(),
                key: key.clone(),
            },
            Effect::AddNetwork {
                vni: stored.vni,
                network: stored.name.clone(),
                key: KeySource::Given(key),
                gateway: view.gateway(&stored),
            },
        ],
        reply: stored,
    })
}

/// `network rm`: only a network without ports.
pub fn network_remove(view: View<'_>, name: &str) -> Result<Decision<NetworkRecord>, RequestError> {
    let network = view.network(name)?.clone();
    let users: Vec<String> = view
        .ports_of(name)
        .map(|(_, p)| format!("{} ({})", p.info.netns, p.info.ifname))
        .collect();
    if !users.is_empty() {
        return Err(RequestError::NetworkHasPorts {
            name: name.to_owned(),
            users: users.join(", "),
        });
    }
    let mut state = view.state.clone();
    state.networks.retain(|n| n.name != name);
    let mut effects = vec![
        Effect::Save(state),
        Effect::RemoveNetwork { vni: network.vni },
    ];
    if network.encrypted {
        effects.push(Effect::ForgetKey {
            network: name.to_owned(),
        });
    }
    Ok(Decision {
        effects,
        reply: network,
    })
}

/// `network rotate-key`: the new key is stored first (undone if the rotation is refused),
/// then the rotation starts.
pub fn rotate_key(
    view: View<'_>,
    name: &str,
    read_key: impl FnOnce() -> Result<NetworkKey, KeyFileError>,
) -> Result<Decision<Vni>, RequestError> {
    let network = view.network(name)?;
    if !network.encrypted {
        return Err(RequestError::NotEncrypted(name.to_owned()));
    }
    let key = read_key()?;
    // The record carries the new key's check value, so a host that joins later must bring the
    // new key.
    let mut state = view.state.clone();
    if let Some(n) = state.networks.iter_mut().find(|n| n.name == name) {
        n.key_check = Some(key.check_value());
    }
    Ok(Decision {
        effects: vec![
            Effect::PutKey {
                network: name.to_owned(),
                key: key.clone(),
            },
            Effect::Save(state),
            Effect::RotateKey {
                network: name.to_owned(),
                vni: network.vni,
                key,
                peers: view.state.peers.clone(),
            },
        ],
        reply: network.vni,
    })
}

/// `peer add`.
pub fn peer_add(
    view: View<'_>,
    addr: SocketAddr,
    own: &[IpAddr],
) -> Result<Decision<PeerInfo>, RequestError> {
    check_peer(addr, own)?;
    if let Some(p) = view.state.peers.iter().find(|p| p.ip() == addr.ip()) {
        return Err(RequestError::PeerExists {
            ip: addr.ip(),
            existing: *p,
        });
    }
    let mut state = view.state.clone();
    state.peers.push(addr);
    Ok(Decision {
        effects: vec![Effect::AddPeer(addr), Effect::Save(state)],
        reply: PeerInfo {
            addr,
            traffic: Default::default(),
        },
    })
}

/// `peer rm`: `IP` matches the peer at the default port, `IP:PORT` exactly.
pub fn peer_remove(view: View<'_>, addr: SocketAddr) -> Result<Decision<SocketAddr>, RequestError> {
    let Some(existing) = view
        .state
        .peers
        .iter()
        .find(|p| **p == addr || (p.ip() == addr.ip() && addr.port() == vxlan::UDP_PORT))
        .copied()
    else {
        let peers: Vec<String> = view.state.peers.iter().map(|p| p.to_string()).collect();
        return Err(RequestError::NoSuchPeer {
            addr,
            existing: list_or_none(&peers),
        });
    };
    let mut state = view.state.clone();
    state.peers.retain(|p| *p != existing);
    Ok(Decision {
        effects: vec![Effect::Save(state), Effect::RemovePeer(existing)],
        reply: existing,
    })
}

/// What changes when another writer's state `incoming` replaces ours (a shared store): the
/// networks and peers to add and remove. A network that still has local ports is kept in the
/// switch (its containers keep working) until they are detached; the stored state is adopted
/// as it is, so nothing is saved.
pub fn reconcile(view: View<'_>, incoming: &State) -> Vec<Effect> {
    let mut effects = Vec::new();
    for old in &view.state.networks {
        let gone = incoming
            .networks
            .iter()
            .all(|n| n.name != old.name || n.vni != old.vni);
        if gone && view.ports_of(&old.name).next().is_none() {
            effects.push(Effect::RemoveNetwork { vni: old.vni });
        }
    }
    for new in &incoming.networks {
        let known = view
            .state
            .networks
            .iter()
            .any(|n| n.name == new.name && n.vni == new.vni);
        if !known {
            effects.push(Effect::AddNetwork {
                vni: new.vni,
                network: new.name.clone(),
                key: if new.encrypted {
                    KeySource::Stored
                } else {
                    KeySource::Plain
                },
                gateway: view.gateway(new),
            });
        }
    }
    for p in &view.state.peers {
        if !incoming.peers.contains(p) {
            effects.push(Effect::RemovePeer(*p));
        }
    }
    for p in &incoming.peers {
        if !view.state.peers.contains(p) && check_peer(*p, &[]).is_ok() {
            effects.push(Effect::AddPeer(*p));
        }
    }
    effects
}

pub mod adverts;
mod attach;
pub mod egress;
mod restore;
pub mod services;
#[cfg(test)]
mod tests;

pub use restore::{detach_vanished, entry, entry_ns, info, readopt, reap, Lost};

pub use attach::{
    attach_check, attach_commit, attach_network, detach, AddressChoice, AttachPlan, Claim,
    NetnsFacts, MAX_CLAIMS,
};
