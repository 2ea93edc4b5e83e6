//! The rules of `attach` and `detach`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::{Decision, Effect, PortRecord, View};
use crate::control::{AttachRequest, PortInfo};
use crate::core::{ipam, PortId};
use crate::daemon::errors::{list_or_none, RequestError};
use crate::netns::{NsId, PortConfig};
use crate::store::{NetworkRecord, State};
use crate::wire::Mac;

/// Which network an attach is for: the named one, or the only one there is.
pub fn attach_network<'a>(
    view: &View<'a>,
    req: &AttachRequest,
) -> Result<&'a NetworkRecord, RequestError> {
    let state: &'a State = view.state;
    match &req.network {
        Some(name) => state
            .network(name)
            .ok_or_else(|| RequestError::NoSuchNetwork {
                name: name.clone(),
                existing: list_or_none(&view.network_names()),
            }),
        None => match state.networks.as_slice() {
            [one] => Ok(one),
            [] => Err(RequestError::NoNetworks),
            many => Err(RequestError::WhichNetwork(
                many.iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        },
    }
}

/// The facts about the container's namespace an attach depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetnsFacts {
    pub id: NsId,
    /// The interface name asked for is already taken in the namespace.
    pub ifname_taken: bool,
}

/// How the address of a new port is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressChoice {
    /// The user's address: probe it once; a conflict refuses the attach.
    Requested(Ipv4Addr),
    /// The next free one: probe candidates in order, skipping the ones someone answers for.
    Next { taken: BTreeSet<Ipv4Addr> },
}

/// An attach that passed every check that needs no probing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachPlan {
    pub network: NetworkRecord,
    pub netns: String,
    pub ns: NsId,
    pub ifname: String,
    pub mac: Mac,
    pub address: AddressChoice,
    /// Claimed addresses skipped so far.
    pub claims: u32,
    /// Lock the port to its MAC and address.
    pub port_security: bool,
    /// The port's DNS names.
    pub names: Vec<String>,
    /// The resolv.conf to write into the namespace's /etc/netns dir, if any.
    pub resolv_conf: Option<(std::path::PathBuf, String)>,
    /// The container runtime's id (CNI), recorded with the port.
    pub container_id: Option<String>,
    /// Leave the TAP in the daemon's namespace under `ifname` ([`AttachRequest::handoff`]).
    pub handoff: bool,
    /// The container's address on its egress link, when it gets one (see [`super::egress`]).
    pub egress: Option<Ipv4Addr>,
}

impl AttachPlan {
    /// The next address to probe, when choosing one: `None` once the subnet is exhausted.
    pub fn candidate(&self) -> Result<Ipv4Addr, RequestError> {
        match &self.address {
            AddressChoice::Requested(ip) => Ok(*ip),
            AddressChoice::Next { taken } => {
                ipam::next_free(self.network.subnet, self.network.gateway, taken).ok_or_else(|| {
                    RequestError::NoFreeAddress {
                        network: self.network.name.clone(),
                        subnet: self.network.subnet,
                    }
                })
            }
        }
    }

    /// Station `owner` answered the probe for `ip`. The daemon's own records win over a claim
    /// from one of its own ports: a local container claiming an address it was not given is
    /// ignored ([`Claim::Ignored`]). Any other claim refuses a requested address and skips a
    /// chosen one, at most [`MAX_CLAIMS`] times per attach, so a station that answers for
    /// every address cannot make an attach walk the whole subnet.
    pub fn conflict(
        &mut self,
        view: &View<'_>,
        ip: Ipv4Addr,
        owner: Mac,
    ) -> Result<Claim, RequestError> {
        let own = view
            .ports_of(&self.network.name)
            .find(|(_, p)| p.info.mac == owner);
        if let Some((id, p)) = own {
            let recorded = p.info.ip.as_deref().and_then(|c| c.split('/').next());
            if recorded != Some(ip.to_string().as_str()) {
                return Ok(Claim::Ignored {
                    port: *id,
                    netns: p.info.netns.clone(),
                });
            }
        }
        let owner = format!("MAC {owner}");
        match &mut self.address {
            AddressChoice::Requested(_) => Err(RequestError::AddressInUse { ip, owner }),
            AddressChoice::Next { taken } => {
                taken.insert(ip);
                self.claims += 1;
                if self.claims >= MAX_CLAIMS {
                    return Err(RequestError::TooManyClaims {
                        network: self.network.name.clone(),
                        claims: self.claims,
                        last: ip,
                        owner,
                    });
                }
                Ok(Claim::Skip)
            }
        }
    }
}

/// At most this many claimed addresses are skipped in one attach.
pub const MAX_CLAIMS: u32 = 8;

/// What to do about an answered probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Someone holds the address: try the next one.
    Skip,
    /// One of this daemon's own ports claimed an address it was not given: the claim is
    /// false, and the address is free.
    Ignored { port: PortId, netns: String },
}

/// `attach`, up to the address probe. `random_mac` is used when the request names none.
pub fn attach_check(
    view: View<'_>,
    req: &AttachRequest,
    ns: NetnsFacts,
    random_mac: Mac,
) -> Result<AttachPlan, RequestError> {
    let network = attach_network(&view, req)?.clone();
    let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
    // A hand-off port lives in the daemon's namespace until its caller moves it: its label
    // tells it apart, not its namespace.
    let same = |p: &PortRecord| match req.handoff {
        true => p.info.netns == req.netns,
        false => p.ns == ns.id,
    };
    if let Some((_, p)) = view.ports_of(&network.name).find(|(_, p)| same(p)) {
        return Err(RequestError::AlreadyAttached {
            netns: req.netns.clone(),
            network: network.name.clone(),
            ifname: p.info.ifname.clone(),
        });
    }
    if ns.ifname_taken {
        return Err(RequestError::InterfaceExists {
            netns: req.netns.clone(),
            ifname,
        });
    }
    let taken: BTreeSet<Ipv4Addr> = view
        .ports_of(&network.name)
        .filter_map(|(_, p)| p.info.ip.as_deref())
        .filter_map(|ip| ip.split('/').next()?.parse().ok())
        .collect();
    let address = match req.ip {
        Some(ip) => {
            ipam::assignable(network.subnet, network.gateway, ip)?;
            if let Some(prefix) = req.prefix {
                if prefix != network.subnet.prefix_len() {
                    return Err(RequestError::PrefixMismatch {
                        ip,
                        prefix,
                        subnet: network.subnet,
                    });
                }
            }
            if taken.contains(&ip) {
                return Err(RequestError::AddressTaken {
                    ip,
                    network: network.name.clone(),
                });
            }
            AddressChoice::Requested(ip)
        }
        None => AddressChoice::Next { taken },
    };
    let mac = req.mac.unwrap_or(random_mac);
    if view.ports_of(&network.name).any(|(_, p)| p.info.mac == mac) {
        return Err(RequestError::MacInUse {
            mac,
            network: network.name.clone(),
        });
    }
    let names = super::services::port_names(req)?;
    let resolv_conf = super::services::resolv_conf(req, &network);
    let runtime_managed = req.handoff || req.container_id.is_some();
    let egress = super::egress::plan(&view, &network, ns.id, runtime_managed)?;
    Ok(AttachPlan {
        network,
        netns: req.netns.clone(),
        ns: ns.id,
        ifname,
        mac,
        address,
        claims: 0,
        port_security: !req.no_port_security,
        names,
        resolv_conf,
        container_id: req.container_id.clone(),
        handoff: req.handoff,
        egress,
    })
}

/// `attach`, once `ip` is known to be free: the port to create.
pub fn attach_commit(
    view: View<'_>,
    plan: AttachPlan,
    ip: Ipv4Addr,
    id: PortId,
) -> Decision<PortInfo> {
    let network = &plan.network;
    let mtu = view.mtu(network);
    let prefix = network.subnet.prefix_len();
    let info = PortInfo {
        port: id.0,
        network: network.name.clone(),
        netns: plan.netns,
        ifname: plan.ifname.clone(),
        mac: plan.mac,
        ip: Some(format!("{ip}/{prefix}")),
        mtu,
        port_security: plan.port_security,
        names: plan.names,
        container_id: plan.container_id,
        egress: plan
            .egress
            .map(|e| format!("{e}/{}", view.egress.subnet.prefix_len())),
    };
    let config = PortConfig {
        ifname: plan.ifname,
        mac: plan.mac.0,
        mtu,
        address: Some((IpAddr::V4(ip), prefix)),
        // With egress, the default route is the egress link's.
        gateway: network
            .gateway
            .filter(|_| plan.egress.is_none())
            .map(IpAddr::V4),
    };
    let record = PortRecord {
        info: info.clone(),
        ns: plan.ns,
    };
    let [create, place] = match plan.handoff {
        true => [
            Effect::CreateTap {
                id,
                name: config.ifname,
            },
            Effect::PrepareTap {
                id,
                mac: plan.mac,
                mtu,
            },
        ],
        false => [
            Effect::CreateTap {
                id,
                name: format!("vsw{}", id.0),
            },
            Effect::MoveTap { id, config },
        ],
    };
    let egress = plan.egress.into_iter().flat_map(|e| {
        [
            Effect::AddEgress(super::egress::link(&view.egress, id, e)),
            Effect::SetEgressRules(Some(view.egress.subnet)),
        ]
    });
    let mut effects: Vec<Effect> = [create, place].into_iter().chain(egress).collect();
    effects.extend([
        super::restore::add_port(id, network.vni, mtu, plan.mac, Some(ip), plan.port_security),
        Effect::StartPort { id },
        Effect::RecordPort { id, record },
        Effect::Announce {
            id,
            mac: plan.mac,
            ip,
        },
    ]);
    if let Some((path, text)) = plan.resolv_conf {
        effects.push(Effect::WriteResolvConf { path, text });
    }
    Decision {
        effects,
        reply: info,
    }
}

/// `detach`: the ports of namespace `ns` (on `network`, or its only one).
pub fn detach(
    view: View<'_>,
    netns: &str,
    ns: NsId,
    network: Option<&str>,
) -> Result<Decision<Vec<PortInfo>>, RequestError> {
    if let Some(n) = network {
        view.network(n)?;
    }
    let ports: Vec<(PortId, &PortRecord)> = view
        .ports
        .iter()
        .filter(|(_, p)| network.is_none_or(|n| p.info.network == n) && p.ns == ns)
        .map(|(id, p)| (*id, p))
        .collect();
    match (ports.len(), network) {
        (0, Some(n)) => Err(RequestError::NotAttachedTo {
            netns: netns.to_owned(),
            network: n.to_owned(),
        }),
        (0, None) => Err(RequestError::NotAttached(netns.to_owned())),
        (2.., None) => Err(RequestError::AttachedToSeveral(netns.to_owned())),
        _ => Ok(Decision {
            // The namespace's resolv.conf goes with its last port.
            effects: super::egress::on_removal(
                &view,
                &ports.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            )
            .into_iter()
            .chain(ports.iter().map(|(id, _)| Effect::DetachPort(*id)))
            .chain(
                super::services::netns_name(netns)
                    .filter(|_| view.ports.values().filter(|p| p.ns == ns).count() == ports.len())
                    .map(|name| Effect::RemoveResolvConf {
                        path: super::services::resolv_path(name),
                    }),
            )
            .collect(),
            reply: ports.into_iter().map(|(_, p)| p.info.clone()).collect(),
        }),
    }
}
