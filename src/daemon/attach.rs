//! `attach`, the one request that does I/O between deciding and committing: it resolves the
//! container's namespace, then takes an address (a lease from a shared store, or an ARP probe of
//! the overlay), without holding the daemon's state lock while it waits.

use std::net::Ipv4Addr;

use super::errors::RequestError;
use super::rules::{self, NetnsFacts};
use super::{probe, Daemon};
use crate::core::PortId;
use crate::netns::{self, NetnsRef};
use crate::store::{StateStore, StoreError};
use crate::wire::Mac;

impl<S: StateStore> Daemon<S> {
    /// `attach`: decide under the state lock, probe the overlay without it (one attach at a
    /// time), then decide again on the state as it is now and commit.
    pub(super) async fn attach(
        &self,
        req: crate::control::AttachRequest,
    ) -> Result<crate::control::PortInfo, RequestError> {
        let _one_at_a_time = self.attaching.lock().await;
        let mtu = self.underlay_mtu;
        let (mut plan, ns, facts) = {
            let mut inner = self.inner.lock().await;
            inner.egress.forwarding = super::masquerade::ip_forwarding();
            // The network first, so an unknown one is named before the namespace is looked at.
            let network = rules::attach_network(&inner.view(mtu), &req)?;
            if let Some(why) = inner.unusable.get(&network.name) {
                return Err(RequestError::NetworkUnusable {
                    name: network.name.clone(),
                    why: why.clone(),
                });
            }
            // A hand-off port is made in the daemon's own namespace (its label is no path).
            let ns = match req.handoff {
                true => NetnsRef::current().map_err(RequestError::Netns)?,
                false => resolve_container(&req.netns).await?,
            };
            let ifname = req.ifname.as_deref().unwrap_or("eth0");
            let facts = NetnsFacts {
                id: ns_id(&ns)?,
                ifname_taken: netns::interface_exists_in(&ns, ifname).await?,
            };
            let plan = rules::attach_check(inner.view(mtu), &req, facts, random_mac())?;
            let runtime_managed = req.handoff || req.container_id.is_some();
            if !plan.network.internal && !runtime_managed && !inner.egress.forwarding {
                tracing::info!(
                    "no egress for {} on {}: IP forwarding is off in the daemon's namespace \
                     (sysctl net.ipv4.ip_forward=1 turns it on)",
                    req.netns,
                    plan.network.name
                );
            }
            (plan, ns, facts)
        };
        // Choose the address: in cluster mode, taken from the store (an etcd transaction, so
        // two hosts never get the same one); otherwise the requested one or the next free
        // one, probed on the overlay.
        let leased = self.store.leases_addresses();
        let ip = if leased {
            self.claim_address(&mut plan).await?
        } else {
            self.probe_address(&mut plan).await?
        };
        let mut inner = self.inner.lock().await;
        // The state may have changed meanwhile: the same rules decide again, for this
        // address, before anything is created.
        let mut again = req.clone();
        again.ip = Some(ip);
        again.prefix = None;
        again.mac = Some(plan.mac);
        let committed = match rules::attach_check(inner.view(mtu), &again, facts, plan.mac) {
            Ok(plan) => {
                let d = rules::attach_commit(inner.view(mtu), plan, ip, PortId(inner.next_port));
                self.apply(&mut inner, d.effects, Some(&ns))
                    .await
                    .map(|()| d.reply)
            }
            Err(e) => Err(e),
        };
        let info = match committed {
            Ok(info) => info,
            Err(e) => {
                if leased {
                    if let Err(r) = self.store.release_address(&plan.network.name, ip).await {
                        tracing::warn!("{ip} stays claimed after a failed attach: {r}");
                    }
                }
                return Err(e);
            }
        };
        tracing::info!(
            "attached {} to {}: {} {} {:?}",
            info.netns,
            info.network,
            info.ifname,
            info.mac,
            info.ip
        );
        Ok(info)
    }

    /// `detach`: the ports of a namespace, or of one that no longer exists (by the name the
    /// user gave).
    pub(super) async fn detach(
        &self,
        inner: &mut super::Inner,
        netns: &str,
        network: Option<&str>,
    ) -> Result<Vec<crate::control::PortInfo>, RequestError> {
        let view = inner.view(self.underlay_mtu);
        let d = match resolve_container(netns).await {
            Ok(ns) => rules::detach(view, netns, ns_id(&ns)?, network)?,
            Err(RequestError::Netns(
                netns::NetnsError::NotFound { .. } | netns::NetnsError::PathNotFound { .. },
            )) => {
                if let Some(n) = network {
                    view.network(n)?;
                }
                rules::detach_vanished(view, netns, network)
            }
            Err(e) => return Err(e),
        };
        // The addresses go back to the cluster first: with the store away, the detach is
        // refused and nothing changes.
        for p in &d.reply {
            if let Some(ip) = port_ip(p) {
                self.store.release_address(&p.network, ip).await?;
            }
        }
        self.apply(inner, d.effects, None).await?;
        Ok(d.reply)
    }

    /// Takes the requested address, or the next free one, from the store. An address held
    /// elsewhere refuses a requested one (naming the holder) and is skipped otherwise.
    async fn claim_address(&self, plan: &mut rules::AttachPlan) -> Result<Ipv4Addr, RequestError> {
        let network = plan.network.name.clone();
        let held = self.store.held_addresses(&network).await?;
        match &mut plan.address {
            rules::AddressChoice::Requested(ip) => {
                if let Some(holder) = held.get(ip) {
                    return Err(StoreError::AddressHeld {
                        network,
                        ip: *ip,
                        holder: Box::new(holder.clone()),
                    }
                    .into());
                }
            }
            rules::AddressChoice::Next { taken } => taken.extend(held.keys()),
        }
        // Another host may take a candidate first: skip it and try the next.
        for _ in 0..64 {
            let ip = plan.candidate()?;
            match self
                .store
                .claim_address(
                    &network,
                    ip,
                    crate::store::AddressHolder {
                        host: self.name.clone(),
                        netns: plan.netns.clone(),
                        ifname: plan.ifname.clone(),
                        mac: plan.mac,
                        names: plan.names.clone(),
                    },
                )
                .await
            {
                Ok(()) => return Ok(ip),
                Err(e @ (StoreError::AddressHeld { .. } | StoreError::Conflict { .. })) => {
                    match &mut plan.address {
                        rules::AddressChoice::Next { taken } => {
                            taken.insert(ip);
                        }
                        rules::AddressChoice::Requested(_) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RequestError::NoFreeAddress {
            network,
            subnet: plan.network.subnet,
        })
    }

    /// Probes the requested address, or candidates in order, on the overlay with ARP.
    async fn probe_address(&self, plan: &mut rules::AttachPlan) -> Result<Ipv4Addr, RequestError> {
        let mtu = self.underlay_mtu;
        let ip = loop {
            let ip = plan.candidate()?;
            let probe = probe::conflict(
                &self.switch,
                &self.dataplane,
                plan.network.vni,
                plan.mac,
                ip,
            );
            match probe.await {
                Ok(None) => break ip,
                Ok(Some(owner)) => {
                    let inner = self.inner.lock().await;
                    match plan.conflict(&inner.view(mtu), ip, owner)? {
                        rules::Claim::Skip => tracing::info!("{ip} is answered for by {owner}"),
                        rules::Claim::Ignored { port, netns } => {
                            tracing::warn!(
                                "port {} (netns {netns}) claims {ip}, which it was not given; ignored",
                                port.0
                            );
                            break ip;
                        }
                    }
                }
                Err(source) => return Err(RequestError::ProbeFailed { ip, source }),
            }
        };
        Ok(ip)
    }
}

pub(super) fn is_conflict(e: &RequestError) -> bool {
    matches!(e, RequestError::Store(StoreError::Conflict { .. }))
}

/// The address of a port (its CIDR's address).
pub(super) fn port_ip(p: &crate::control::PortInfo) -> Option<Ipv4Addr> {
    p.ip.as_deref()?.split('/').next()?.parse().ok()
}

/// Resolves a user's NETNS off the runtime thread (a path could be slow to open).
async fn resolve_container(arg: &str) -> Result<NetnsRef, RequestError> {
    let arg = arg.to_owned();
    tokio::task::spawn_blocking(move || NetnsRef::resolve_container(&arg))
        .await
        .map_err(|e| RequestError::Internal(e.to_string()))?
        .map_err(RequestError::Netns)
}

fn ns_id(ns: &NetnsRef) -> Result<crate::netns::NsId, RequestError> {
    ns.id().map_err(|source| {
        RequestError::Netns(crate::netns::NetnsError::Open {
            ns: ns.to_string(),
            source,
        })
    })
}

/// A random locally administered unicast MAC.
fn random_mac() -> Mac {
    let mut b = [0u8; 6];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    Mac::local(b)
}
