//! Carrying out the rules' decisions: each [`Effect`] is done in order, and when one fails the
//! ones already done are undone, newest first, here and nowhere else. What cannot be undone
//! (a started key rotation, a removed network's sealer state) is ordered last by the rules.

use std::net::SocketAddr;
use std::sync::Arc;

use super::errors::RequestError;
use super::rules::{self, Effect, KeySource};
use super::{new_sealer, Daemon, Inner};
use crate::core::seal::{generate_sender_id, NetworkKey, RotateError};
use crate::core::sync::{read, write};
use crate::core::{PortId, Vtep};
use crate::dataplane::tap::{Offload, Tap, TapOptions};
use crate::dataplane::PortSink;
use crate::netns::{self, NetnsRef};
use crate::store::{State, StateStore};
use crate::wire::{arp, Vni};

/// How to take back one done effect.
#[derive(Debug)]
enum Undo {
    Nothing,
    Save(State),
    Key {
        network: String,
        previous: Option<NetworkKey>,
    },
    RemoveNetwork(Vni),
    AddPeer(SocketAddr),
    RemovePeer(SocketAddr),
    CloseTap(PortId),
    RemovePort(PortId),
    StopPort(PortId),
    ForgetPort(PortId),
    RemoveFile(std::path::PathBuf),
    RemoveEgress(String),
    RemoveEgressRules,
}

impl<S: StateStore> Daemon<S> {
    /// Runs `effects` in order; on the first failure undoes the done ones and returns its
    /// error. `netns` is the container namespace a port moves into, when there is one.
    pub(super) async fn apply(
        &self,
        inner: &mut Inner,
        effects: Vec<Effect>,
        netns: Option<&NetnsRef>,
    ) -> Result<(), RequestError> {
        let mut done = Vec::with_capacity(effects.len());
        for effect in effects {
            match self.run(inner, effect, netns).await {
                Ok(undo) => done.push(undo),
                Err(e) => {
                    for undo in done.into_iter().rev() {
                        if let Err(u) = self.undo(inner, undo).await {
                            tracing::error!("undoing part of a failed request: {u}");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn run(
        &self,
        inner: &mut Inner,
        effect: Effect,
        netns: Option<&NetnsRef>,
    ) -> Result<Undo, RequestError> {
        let internal = |e: &dyn std::fmt::Display| RequestError::Internal(e.to_string());
        Ok(match effect {
            Effect::Save(state) => {
                inner.revision = self.store.save(inner.revision, &state).await?;
                Undo::Save(std::mem::replace(&mut inner.state, state))
            }
            Effect::PutKey { network, key } => {
                let previous = self.store.key(&network).await?;
                self.store.put_key(&network, &key).await?;
                Undo::Key { network, previous }
            }
            Effect::ForgetKey { network } => {
                if let Err(e) = self.store.remove_key(&network).await {
                    tracing::warn!("network {network} removed, but its stored key stays: {e}");
                }
                Undo::Nothing
            }
            Effect::AddNetwork {
                vni,
                network,
                key,
                gateway,
            } => {
                let key = match key {
                    KeySource::Plain => None,
                    KeySource::Given(k) => Some(k),
                    // This host's own copy: trusted as it is (the cluster may have rotated
                    // since; the rotation reaches this host through `rotate-key`).
                    KeySource::Stored => Some(
                        self.store
                            .key(&network)
                            .await?
                            .ok_or_else(|| RequestError::NoKeyHere(network.clone()))?,
                    ),
                };
                let sealer = key.map(|k| new_sealer(vni, &k)).transpose()?;
                let sealed = sealer.is_some();
                {
                    let mut sw = write(&self.switch);
                    sw.add_network(vni).map_err(|e| internal(&e))?;
                    if let Some(s) = sealer {
                        sw.set_sealer(vni, Some(s)).map_err(|e| internal(&e))?;
                    }
                }
                if sealed {
                    // The handshakes with every peer go out now, before any traffic.
                    self.dataplane.tick();
                }
                inner.adverts.forget_network(vni);
                if gateway.is_some() {
                    let rng = ring::rand::SystemRandom::new();
                    let seed = generate_sender_id(&rng).map_err(|e| internal(&e))?;
                    if let Err(e) = self.dataplane.set_gateway(vni, gateway, seed) {
                        let _ = write(&self.switch).remove_network(vni);
                        return Err(internal(&e));
                    }
                }
                Undo::RemoveNetwork(vni)
            }
            Effect::RemoveNetwork { vni } => {
                write(&self.switch)
                    .remove_network(vni)
                    .map_err(|e| internal(&e))?;
                inner.adverts.forget_network(vni);
                self.dataplane.forget_gateway(vni);
                Undo::Nothing
            }
            Effect::RotateKey {
                network,
                vni,
                key,
                peers,
            } => {
                {
                    let sw = read(&self.switch);
                    let sealer = sw.network(vni).and_then(|n| n.sealer()).ok_or_else(|| {
                        RequestError::Internal(format!("network '{network}' has no sealer"))
                    })?;
                    let now = self.dataplane.now();
                    sealer
                        .rotate(&key, &peers, now)
                        .map_err(|source| match source {
                            RotateError::InProgress { phase } => RequestError::RotationInProgress {
                                network,
                                phase: super::views::phase_text(phase, now),
                            },
                            source => RequestError::Rotate { network, source },
                        })?;
                }
                // Tell the peers at once; the ticker keeps announcing until it is over.
                self.dataplane.tick();
                Undo::Nothing
            }
            Effect::AddPeer(addr) => {
                write(&self.switch)
                    .add_peer(Vtep(addr))
                    .map_err(|e| internal(&e))?;
                // Encrypted networks' handshakes with the new peer go out now.
                self.dataplane.tick();
                Undo::RemovePeer(addr)
            }
            Effect::RemovePeer(addr) => {
                write(&self.switch)
                    .remove_peer(addr.ip())
                    .map_err(|e| internal(&e))?;
                Undo::AddPeer(addr)
            }
            Effect::CreateTap { id, name } => {
                // Persistent: the port outlives the daemon (see `dataplane::tap`, "Lifetime").
                let tap = Tap::create(&name, self.tap_options())
                    .and_then(|tap| {
                        with_offloads(&tap)?;
                        tap.set_persist(true)?;
                        Ok(tap)
                    })
                    .map_err(|source| RequestError::Tap { name, source })?;
                inner.taps.insert(id, Arc::new(tap));
                Undo::CloseTap(id)
            }
            Effect::ReopenTap { id, ifname, mac } => {
                let ns = netns.ok_or_else(|| internal(&"no namespace to reopen the TAP in"))?;
                let tap = super::restore::reopen_tap(ns, &ifname, mac, self.tap_options())
                    .await
                    .and_then(|tap| with_offloads(&tap).map(|()| tap))
                    .map_err(|source| RequestError::Tap {
                        name: ifname,
                        source,
                    })?;
                inner.taps.insert(id, Arc::new(tap));
                Undo::CloseTap(id)
            }
            Effect::ForgetNeighbours { ifname } => {
                if let Some(ns) = netns {
                    if let Err(e) = netns::forget_neighbours(ns, &ifname).await {
                        tracing::warn!("{e}");
                    }
                }
                Undo::Nothing
            }
            Effect::Announce { id, mac, ip } => {
                self.dataplane.inject(id, &arp::announcement(mac, ip));
                Undo::Nothing
            }
            Effect::PrepareTap { id, mac, mtu } => {
                let tap = inner
                    .taps
                    .get(&id)
                    .ok_or_else(|| internal(&"no TAP to prepare"))?;
                netns::prepare_tap(tap.name(), mac, mtu).await?;
                Undo::Nothing
            }
            Effect::MoveTap { id, config } => {
                let tap = inner
                    .taps
                    .get(&id)
                    .ok_or_else(|| internal(&"no TAP to move"))?;
                let ns = netns.ok_or_else(|| internal(&"no namespace to move the TAP into"))?;
                netns::attach_port(tap.name(), ns, &config).await?;
                // Closing the TAP (the undo of CreateTap) deletes it wherever it is.
                Undo::Nothing
            }
            Effect::AddPort {
                id,
                vni,
                mtu,
                security,
            } => {
                let mut sw = write(&self.switch);
                sw.add_port(id, vni).map_err(|e| internal(&e))?;
                let configured = sw
                    .set_port_security(id, security)
                    .and_then(|()| sw.set_port_mtu(id, Some(mtu)));
                if let Err(e) = configured {
                    let _ = sw.remove_port(id);
                    return Err(internal(&e));
                }
                Undo::RemovePort(id)
            }
            Effect::StartPort { id } => {
                let tap = inner
                    .taps
                    .get(&id)
                    .ok_or_else(|| internal(&"no TAP to start"))?;
                self.dataplane
                    .add_port(id, PortSink::Tap(tap.clone()))
                    .map_err(RequestError::StartPort)?;
                Undo::StopPort(id)
            }
            Effect::RecordPort { id, record } => {
                let network = record.info.network.clone();
                inner.ports.insert(id, record);
                inner.next_port = inner.next_port.max(id.0.saturating_add(1));
                if let Err(e) = self.save_ports(inner).await {
                    inner.ports.remove(&id);
                    return Err(e);
                }
                self.publish_names(inner, &network).await;
                Undo::ForgetPort(id)
            }
            e @ (Effect::SetEndpoint { .. }
            | Effect::RemoveEndpoint { .. }
            | Effect::SetFlood { .. }) => {
                let now = self.dataplane.now();
                let mut sw = write(&self.switch);
                if let Some(Err(err)) = inner.adverts.apply(&mut sw, &e, now) {
                    return Err(internal(&err));
                }
                // Another host's advertisement: the next listing says again what is wanted.
                Undo::Nothing
            }
            Effect::DetachPort(id) => {
                self.dataplane.remove_port(id);
                let _ = write(&self.switch).remove_port(id);
                let network = inner.ports.remove(&id).map(|p| p.info.network);
                delete_tap(inner, id);
                if let Err(e) = self.save_ports(inner).await {
                    // The port is gone; a restarted daemon finds no TAP and drops the record.
                    tracing::warn!("port {} removed, but its record stays: {e}", id.0);
                }
                if let Some(n) = network {
                    self.publish_names(inner, &n).await;
                }
                Undo::Nothing
            }
            Effect::WriteResolvConf { path, text } => {
                super::services::write_resolv_conf(&path, &text)
                    .map_err(|e| internal(&format_args!("cannot write {}: {e}", path.display())))?;
                Undo::RemoveFile(path)
            }
            Effect::RemoveResolvConf { path } => {
                super::services::remove_resolv_conf(&path);
                Undo::Nothing
            }
            Effect::AddEgress(link) => {
                let ns = netns.ok_or_else(|| internal(&"no namespace for the egress link"))?;
                netns::add_egress(ns, &link).await?;
                Undo::RemoveEgress(link.host_ifname)
            }
            Effect::RemoveEgress { host_ifname } => {
                if let Err(e) = netns::remove_egress(&host_ifname).await {
                    tracing::warn!("egress link {host_ifname} stays: {e}");
                }
                Undo::Nothing
            }
            Effect::SetEgressRules(Some(subnet)) => {
                let had = inner.ports.values().any(|p| p.info.egress.is_some());
                super::masquerade::install(subnet).await?;
                match had {
                    true => Undo::Nothing,
                    false => Undo::RemoveEgressRules,
                }
            }
            Effect::RepairEgressRules(subnet) => {
                if let Err(e) = super::masquerade::install(subnet).await {
                    tracing::warn!("the egress rules (nft table ip vswitch) are not back: {e}");
                }
                Undo::Nothing
            }
            Effect::SetEgressRules(None) => {
                if let Err(e) = super::masquerade::remove().await {
                    tracing::warn!("the egress rules (nft table ip vswitch) stay: {e}");
                }
                Undo::Nothing
            }
        })
    }

    async fn undo(&self, inner: &mut Inner, undo: Undo) -> Result<(), RequestError> {
        match undo {
            Undo::Nothing => {}
            Undo::Save(old) => {
                inner.revision = self.store.save(inner.revision, &old).await?;
                inner.state = old;
            }
            Undo::Key {
                network,
                previous: Some(key),
            } => self.store.put_key(&network, &key).await?,
            Undo::Key {
                network,
                previous: None,
            } => self.store.remove_key(&network).await?,
            Undo::RemoveNetwork(vni) => {
                let _ = write(&self.switch).remove_network(vni);
                self.dataplane.forget_gateway(vni);
            }
            Undo::AddPeer(addr) => {
                let _ = write(&self.switch).add_peer(Vtep(addr));
            }
            Undo::RemovePeer(addr) => {
                let _ = write(&self.switch).remove_peer(addr.ip());
            }
            Undo::CloseTap(id) => delete_tap(inner, id),
            Undo::RemovePort(id) => {
                let _ = write(&self.switch).remove_port(id);
            }
            Undo::StopPort(id) => {
                self.dataplane.remove_port(id);
            }
            Undo::ForgetPort(id) => {
                if let Some(p) = inner.ports.remove(&id) {
                    self.publish_names(inner, &p.info.network).await;
                }
                self.save_ports(inner).await?;
            }
            Undo::RemoveFile(path) => super::services::remove_resolv_conf(&path),
            Undo::RemoveEgress(host_ifname) => {
                netns::remove_egress(&host_ifname).await?;
            }
            Undo::RemoveEgressRules => super::masquerade::remove().await?,
        }
        Ok(())
    }

    /// Records every live port in the store, so a restarted daemon takes them back.
    pub(super) async fn save_ports(&self, inner: &Inner) -> Result<(), RequestError> {
        let entries: Vec<_> = inner
            .ports
            .iter()
            .map(|(id, r)| rules::entry(*id, r))
            .collect();
        Ok(self.store.save_ports(&entries).await?)
    }
}

impl<S: StateStore> Daemon<S> {
    /// How the daemon's TAPs are opened: the virtio-net header, one queue per data-path
    /// worker.
    fn tap_options(&self) -> TapOptions {
        // At most `MAX_WORKERS` (16) workers: the count always fits.
        let queues = u16::try_from(self.dataplane.workers()).unwrap_or(1);
        TapOptions::new().vnet_hdr(true).queues(queues)
    }
}

/// The virtio-net header and TSO/USO/checksum offloads: the container's kernel sends us 64 KiB
/// TCP and UDP superframes with partial checksums and takes coalesced TCP ones back (see
/// `dataplane` "Offloads"). A kernel older than 6.2 refuses the USO bits (`EINVAL`): then the
/// TAP gets TSO alone, and the container's kernel cuts its UDP superframes itself (and gets
/// no coalesced UDP from us: the data path asks [`Tap::offload`]).
fn with_offloads(tap: &Tap) -> std::io::Result<()> {
    let tso = Offload::CSUM | Offload::TSO4 | Offload::TSO6 | Offload::TSO_ECN;
    match tap.set_offload(tso | Offload::USO4 | Offload::USO6) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => tap.set_offload(tso),
        other => other,
    }
}

/// Forgets a port's TAP and deletes its interface: persistence off, so closing the last
/// descriptor (ours; the data path's went with the port) removes it.
fn delete_tap(inner: &mut Inner, id: PortId) {
    if let Some(tap) = inner.taps.remove(&id) {
        match tap.set_persist(false) {
            Ok(()) => {}
            // Detached by the kernel: the interface is gone already.
            Err(e) if e.raw_os_error() == Some(libc::EBADFD) => {}
            Err(e) => tracing::warn!("port {}: {e}; its interface may stay", id.0),
        }
    }
}
