//! Endpoint advertisements (cluster mode): from what the store shows ([`Cluster`]) to what the
//! switch should have, and the changes that get it there.
//!
//! - every advertised endpoint of another host becomes a static FDB entry at its host's VTEP
//!   and a proxy-ARP answer ([`Effect::SetEndpoint`]); a withdrawn one is removed
//!   ([`Effect::RemoveEndpoint`]);
//! - each network floods only to the hosts that have endpoints on it, plus the static peers
//!   (`--peer`, `peer add`: they are not in the registry, so they keep today's behaviour)
//!   ([`Effect::SetFlood`]).
//!
//! An advertisement comes from another host, so it is checked first: an unknown network, a
//! MAC that cannot be a station's, an address outside the network's subnet, a host that is
//! not a peer, or a MAC or address another advertisement of the network already has, is
//! ignored and counted ([`Desired::ignored`]), never installed.
//!
//! What the switch has is kept in an [`Installed`] ledger; [`changes`] compares it with what
//! the store asks for, so the same function serves the first listing, every watch event, and a
//! network that was (re)created meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};

use super::Effect;
use crate::core::{Switch, SwitchError, Timestamp, Vtep};
use crate::store::{Cluster, State};
use crate::wire::{Mac, Vni};

/// Where an advertised endpoint is: its address and its host's VTEP.
pub type Place = (Ipv4Addr, SocketAddr);

/// What the switch should have, from one state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub endpoints: BTreeMap<(Vni, Mac), Place>,
    pub flood: BTreeMap<Vni, Vec<SocketAddr>>,
    /// Advertisements not installed, and why (one line each).
    pub ignored: Vec<String>,
}

/// What the switch has: the advertised endpoints and flood lists set so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub endpoints: BTreeMap<(Vni, Mac), Place>,
    pub flood: BTreeMap<Vni, Vec<SocketAddr>>,
    /// How many advertisements the last state had that were ignored.
    pub ignored: usize,
}

/// What `state` asks of the switch; `None` without a cluster (static setups: no
/// advertisements, floods to every peer). `usable` says which networks this host has in its
/// switch (an encrypted one without its key here has nothing installed).
pub fn desired(state: &State, usable: impl Fn(&str) -> bool) -> Option<Desired> {
    let cluster: &Cluster = state.cluster.as_ref()?;
    let mut d = Desired::default();
    let statics: Vec<SocketAddr> = state
        .peers
        .iter()
        .filter(|p| !cluster.hosts.contains(p))
        .copied()
        .collect();
    let mut addresses: BTreeSet<(Vni, Ipv4Addr)> = BTreeSet::new();
    for a in &cluster.endpoints {
        let Some(n) = state.network(&a.network) else {
            d.ignored.push(format!(
                "{} on unknown network '{}' from host {}",
                a.mac, a.network, a.host
            ));
            continue;
        };
        let why = if !a.mac.is_valid_source() {
            Some("a MAC no station can have")
        } else if !n.subnet.contains(&a.ip) {
            Some("an address outside the subnet")
        } else if !state.peers.contains(&a.vtep) {
            Some("a host that is not a peer")
        } else if d.endpoints.contains_key(&(n.vni, a.mac)) {
            Some("a MAC already advertised")
        } else if addresses.contains(&(n.vni, a.ip)) {
            Some("an address already advertised")
        } else {
            None
        };
        if let Some(why) = why {
            d.ignored.push(format!(
                "{} {} on '{}' from host {}: {why}",
                a.mac, a.ip, a.network, a.host
            ));
            continue;
        }
        if usable(&n.name) {
            addresses.insert((n.vni, a.ip));
            d.endpoints.insert((n.vni, a.mac), (a.ip, a.vtep));
        }
    }
    for n in state.networks.iter().filter(|n| usable(&n.name)) {
        let mut list = statics.clone();
        list.extend(
            d.endpoints
                .range((n.vni, Mac([0; 6]))..=(n.vni, Mac([0xff; 6])))
                .map(|(_, (_, vtep))| *vtep),
        );
        list.sort();
        list.dedup();
        d.flood.insert(n.vni, list);
    }
    Some(d)
}

/// The effects that take the switch from `installed` to `desired`: removals first, then
/// flood lists and endpoints. `None` (no cluster) undoes whatever was installed.
pub fn changes(installed: &Installed, desired: Option<&Desired>) -> Vec<Effect> {
    let empty = Desired::default();
    let want = desired.unwrap_or(&empty);
    let mut effects = Vec::new();
    for (&(vni, mac), _) in installed
        .endpoints
        .iter()
        .filter(|(k, _)| !want.endpoints.contains_key(k))
    {
        effects.push(Effect::RemoveEndpoint { vni, mac });
    }
    for (&vni, _) in installed
        .flood
        .iter()
        .filter(|(v, _)| !want.flood.contains_key(v))
    {
        effects.push(Effect::SetFlood { vni, vteps: None });
    }
    for (&vni, list) in &want.flood {
        if installed.flood.get(&vni) != Some(list) {
            effects.push(Effect::SetFlood {
                vni,
                vteps: Some(list.clone()),
            });
        }
    }
    for (&(vni, mac), &(ip, vtep)) in &want.endpoints {
        if installed.endpoints.get(&(vni, mac)) != Some(&(ip, vtep)) {
            effects.push(Effect::SetEndpoint { vni, mac, ip, vtep });
        }
    }
    effects
}

impl Installed {
    /// Carries out one advertisement effect on `sw` and records it; `None` for any other
    /// effect. A network the switch no longer has needs nothing removed.
    pub fn apply(
        &mut self,
        sw: &mut Switch,
        effect: &Effect,
        now: Timestamp,
    ) -> Option<Result<(), SwitchError>> {
        let done = match *effect {
            Effect::SetEndpoint { vni, mac, ip, vtep } => sw
                .set_remote_endpoint(vni, mac, Some(ip), Vtep(vtep), now)
                .map(|_| {
                    // Not installed when a live local port has the MAC: recorded all the same,
                    // so it is not retried on every change (a later move re-advertises it).
                    self.endpoints.insert((vni, mac), (ip, vtep));
                }),
            Effect::RemoveEndpoint { vni, mac } => {
                self.endpoints.remove(&(vni, mac));
                match sw.remove_remote_endpoint(vni, mac) {
                    Err(SwitchError::UnknownNetwork(_)) => Ok(()),
                    r => r.map(|_| ()),
                }
            }
            Effect::SetFlood { vni, ref vteps } => {
                let list = vteps.as_ref().map(|v| v.iter().map(|a| Vtep(*a)).collect());
                match sw.set_flood_list(vni, list) {
                    Err(SwitchError::UnknownNetwork(_)) if vteps.is_none() => {
                        self.flood.remove(&vni);
                        Ok(())
                    }
                    r => r.map(|()| match vteps {
                        Some(v) => {
                            self.flood.insert(vni, v.clone());
                        }
                        None => {
                            self.flood.remove(&vni);
                        }
                    }),
                }
            }
            _ => return None,
        };
        Some(done)
    }

    /// Forgets what was installed on network `vni` (the switch added or removed it: it has
    /// none of it now).
    pub fn forget_network(&mut self, vni: Vni) {
        self.endpoints.retain(|(v, _), _| *v != vni);
        self.flood.remove(&vni);
    }
}

#[cfg(test)]
#[path = "adverts_tests.rs"]
mod tests;
