//! The rules of live restore: which recorded ports a starting daemon takes back, and the
//! conversion between the daemon's port table and the store's port records.
//!
//! A port outlives the daemon (its TAP is persistent). When a daemon starts, each recorded port
//! whose namespace still exists (the same namespace: its identity is recorded too) and whose
//! network is still defined is re-adopted through the same effects as an attach, minus the
//! creation and configuration of the interface, which the container still has. The others are
//! dropped: logged, counted, and their records forgotten.

use std::net::Ipv4Addr;

use super::{Decision, Effect, PortRecord, View};
use crate::control::PortInfo;
use crate::core::{PortId, PortSecurity};
use crate::netns::NsId;
use crate::store::PortEntry;
use crate::wire::{Mac, Vni};

/// Why a recorded port was not taken back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    #[error("its network namespace {0} is gone")]
    NamespaceGone(String),
    #[error("its network '{0}' no longer exists")]
    NetworkGone(String),
    #[error("port id {0} is recorded twice")]
    Duplicate(u32),
}

/// The store's record of a live port.
pub fn entry(id: PortId, r: &PortRecord) -> PortEntry {
    PortEntry {
        id: id.0,
        network: r.info.network.clone(),
        netns: r.info.netns.clone(),
        ns_dev: r.ns.dev,
        ns_ino: r.ns.ino,
        ifname: r.info.ifname.clone(),
        mac: r.info.mac,
        ip: r.info.ip.clone(),
        mtu: r.info.mtu,
        port_security: r.info.port_security,
        names: r.info.names.clone(),
        container_id: r.info.container_id.clone(),
        egress: r.info.egress.clone(),
    }
}

/// The port a stored record describes, as the control API shows it.
pub fn info(e: &PortEntry) -> PortInfo {
    PortInfo {
        port: e.id,
        network: e.network.clone(),
        netns: e.netns.clone(),
        ifname: e.ifname.clone(),
        mac: e.mac,
        ip: e.ip.clone(),
        mtu: e.mtu,
        port_security: e.port_security,
        names: e.names.clone(),
        container_id: e.container_id.clone(),
        egress: e.egress.clone(),
    }
}

/// The namespace a stored port was attached in.
pub fn entry_ns(e: &PortEntry) -> NsId {
    NsId {
        dev: e.ns_dev,
        ino: e.ns_ino,
    }
}

/// The `AddPort` effect of a port with this MAC and address: locked to them when `secure`.
pub(super) fn add_port(
    id: PortId,
    vni: Vni,
    mtu: u32,
    mac: Mac,
    ip: Option<Ipv4Addr>,
    secure: bool,
) -> Effect {
    Effect::AddPort {
        id,
        vni,
        mtu,
        security: secure.then(|| PortSecurity {
            mac,
            ipv4: ip.into_iter().collect(),
            ipv6: vec![],
        }),
    }
}

/// Takes back the recorded port `e`, whose namespace does (`ns_alive`) or does not still exist
/// as the one it was attached in.
pub fn readopt(view: View<'_>, e: &PortEntry, ns_alive: bool) -> Result<Decision<PortInfo>, Lost> {
    let id = PortId(e.id);
    if view.ports.contains_key(&id) {
        return Err(Lost::Duplicate(e.id));
    }
    if !ns_alive {
        return Err(Lost::NamespaceGone(e.netns.clone()));
    }
    let network = view
        .state
        .network(&e.network)
        .ok_or_else(|| Lost::NetworkGone(e.network.clone()))?;
    let mut info = info(e);
    // The egress link is the kernel's and kept working meanwhile; its rules are put back. One
    // from another egress subnet (`--egress-subnet` changed) is removed.
    let egress = match super::egress::address_of(info.egress.as_deref()) {
        None => None,
        Some(a) if view.egress.subnet.contains(&a) => {
            Some(Effect::RepairEgressRules(view.egress.subnet))
        }
        Some(_) => {
            info.egress = None;
            Some(Effect::RemoveEgress {
                host_ifname: super::egress::host_ifname(id),
            })
        }
    };
    let record = PortRecord {
        info: info.clone(),
        ns: entry_ns(e),
    };
    let ip = super::super::attach::port_ip(&info);
    Ok(Decision {
        effects: egress
            .into_iter()
            .chain([
                Effect::ReopenTap {
                    id,
                    ifname: e.ifname.clone(),
                    mac: e.mac,
                },
                add_port(id, network.vni, e.mtu, e.mac, ip, e.port_security),
                Effect::StartPort { id },
                Effect::ForgetNeighbours {
                    ifname: e.ifname.clone(),
                },
                Effect::RecordPort { id, record },
            ])
            .chain(ip.map(|ip| Effect::Announce { id, mac: e.mac, ip }))
            .collect(),
        reply: info,
    })
}

/// A live port whose TAP went away under the data path (its namespace or its interface was
/// deleted without `detach`): removed like a detach. `None` if the port is already gone.
pub fn reap(view: View<'_>, id: PortId) -> Option<Decision<PortInfo>> {
    let p = view.ports.get(&id)?;
    let mut effects = super::egress::on_removal(&view, &[id]);
    effects.push(Effect::DetachPort(id));
    Some(Decision {
        effects,
        reply: p.info.clone(),
    })
}

/// `detach` of a namespace that no longer exists: its ports (known by the name the user gave,
/// on `network` if given) are removed, and none is fine. CNI's DEL must be idempotent.
pub fn detach_vanished(
    view: View<'_>,
    netns: &str,
    network: Option<&str>,
) -> Decision<Vec<PortInfo>> {
    let ports: Vec<(&PortId, &PortRecord)> = view
        .ports
        .iter()
        .filter(|(_, p)| p.info.netns == netns && network.is_none_or(|n| p.info.network == n))
        .collect();
    let ids: Vec<PortId> = ports.iter().map(|(id, _)| **id).collect();
    Decision {
        effects: super::egress::on_removal(&view, &ids)
            .into_iter()
            .chain(ids.iter().map(|id| Effect::DetachPort(*id)))
            .collect(),
        reply: ports.into_iter().map(|(_, p)| p.info.clone()).collect(),
    }
}
