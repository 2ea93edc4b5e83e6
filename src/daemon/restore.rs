//! Live restore: a starting daemon takes back the ports its previous run left (their TAPs are
//! persistent), and `vswitch daemon --cleanup` removes them for good.
//!
//! What is taken back and what is dropped is decided by [`rules::readopt`]; this file gathers
//! the facts (does the recorded namespace still exist, as the same namespace?) and carries the
//! decisions out through the same effects as `attach`.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::errors::RequestError;
use super::rules;
use super::{attach::port_ip, Daemon, DaemonError};
use crate::core::PortId;
use crate::dataplane::tap::{Tap, TapOptions};
use crate::netns::{self, NetnsRef};
use crate::store::{AddressHolder, FileStore, PortEntry, StateStore};
use crate::wire::Mac;

/// The recorded namespace of `e`, if it still exists and is the one the port was attached in:
/// by its name, or else by a process in it (a port Docker moved has a label, not a name).
fn recorded_ns(e: &PortEntry) -> Option<NetnsRef> {
    let want = rules::entry_ns(e);
    let named = NetnsRef::resolve(&e.netns).ok();
    if let Some(ns) = named.filter(|ns| ns.id().ok() == Some(want)) {
        return Some(ns);
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter(|p| {
            p.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|p| NetnsRef::resolve(&format!("{}/ns/net", p.path().display())).ok())
        .find(|ns| ns.id().ok() == Some(want))
}

/// Records where moved ports are, every [`FOLLOW`], so that even a daemon killed with
/// `kill -9` is followed by one that finds them.
pub(super) fn follow<S: StateStore>(daemon: &Arc<Daemon<S>>) -> tokio::task::JoinHandle<()> {
    let d = daemon.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FOLLOW).await;
            let mut inner = d.inner.lock().await;
            if follow_moved_ports(&mut inner) {
                if let Err(e) = d.save_ports(&inner).await {
                    tracing::warn!("cannot record where the moved ports are: {e}");
                }
            }
        }
    })
}

/// How often [`follow`] looks.
const FOLLOW: Duration = Duration::from_secs(1);

/// Where each port's TAP is now, and under which name. A hand-off port (Docker's) was moved
/// and renamed by its caller after attach; the record follows it, so the next daemon takes it
/// back there.
pub(super) fn follow_moved_ports(inner: &mut super::Inner) -> bool {
    let mut moved = false;
    for (id, rec) in inner.ports.iter_mut() {
        let Some(tap) = inner.taps.get(id) else {
            continue;
        };
        let ns = tap
            .netns()
            .and_then(|fd| std::fs::File::from(fd).metadata());
        let (Ok(ns), Ok(name)) = (ns, tap.current_name()) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        let ns = crate::netns::NsId {
            dev: ns.dev(),
            ino: ns.ino(),
        };
        if (ns, &name) != (rec.ns, &rec.info.ifname) {
            (rec.ns, rec.info.ifname) = (ns, name);
            moved = true;
        }
    }
    moved
}

/// Opens the persistent TAP `ifname` in `ns` again, if it is there and has the port's `mac`:
/// anything else by that name is not the port's, and is left alone.
pub(super) async fn reopen_tap(
    ns: &NetnsRef,
    ifname: &str,
    mac: Mac,
    opts: TapOptions,
) -> io::Result<Tap> {
    let name = ifname.to_owned();
    ns.run_inside(move || {
        let tap = Tap::reopen(&name, opts)?;
        let found = tap.mac()?;
        if found != mac.0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("'{name}' has MAC {}, not the port's {mac}", Mac(found)),
            ));
        }
        Ok(tap)
    })
    .await
}

/// Deletes a recorded port's interface, if it is still there: `false` when it is not.
async fn delete_recorded_tap(ns: &NetnsRef, e: &PortEntry) -> io::Result<bool> {
    match reopen_tap(ns, &e.ifname, e.mac, TapOptions::new().vnet_hdr(true)).await {
        // Not persistent any more, so closing it (now) deletes it.
        Ok(tap) => tap.set_persist(false).map(|()| true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

impl<S: StateStore> Daemon<S> {
    /// At shutdown. The ports stay: their TAPs are persistent, and the next daemon takes them
    /// back (`vswitch daemon --cleanup` removes them for good).
    pub(super) async fn leave_ports(&self) -> Result<(), DaemonError> {
        let mut inner = self.inner.lock().await;
        if follow_moved_ports(&mut inner) {
            self.save_ports(&inner)
                .await
                .map_err(DaemonError::Restore)?;
        }
        if !inner.ports.is_empty() {
            tracing::info!(
                "{} ports stay in their containers until the daemon is back",
                inner.ports.len()
            );
        }
        Ok(())
    }

    /// Takes back every recorded port whose namespace and network still exist; drops, logs and
    /// counts the others. Runs before the control socket appears, so a client that sees the
    /// socket sees the ports.
    pub(super) async fn readopt(&self) -> Result<(), RequestError> {
        let entries = self.store.ports().await?;
        let mut inner = self.inner.lock().await;
        let mut dropped_egress = Vec::new();
        for e in &entries {
            let ns = recorded_ns(e);
            let taken = match rules::readopt(inner.view(self.underlay_mtu), e, ns.is_some()) {
                Err(lost) => Err(lost.to_string()),
                Ok(d) => match self.reclaim(e).await {
                    Err(why) => Err(why),
                    Ok(()) => match self.apply(&mut inner, d.effects, ns.as_ref()).await {
                        Ok(()) => Ok(()),
                        Err(err) => {
                            self.release(e).await;
                            Err(err.to_string())
                        }
                    },
                },
            };
            match taken {
                Ok(()) => {
                    inner.restore.readopted += 1;
                    tracing::info!(
                        "took back port {} ({} in {} on {})",
                        e.id,
                        e.ifname,
                        e.netns,
                        e.network
                    );
                }
                Err(why) => {
                    inner.restore.dropped += 1;
                    tracing::warn!(
                        "dropped port {} ({} in {} on {}): {why}",
                        e.id,
                        e.ifname,
                        e.netns,
                        e.network
                    );
                    // Its interface, if it is still there (the port's TAP, with its MAC), is not
                    // left behind.
                    if let Some(ns) = &ns {
                        if let Err(err) = delete_recorded_tap(ns, e).await {
                            tracing::warn!("port {}: {} stays: {err}", e.id, e.ifname);
                        }
                    }
                    if e.egress.is_some() {
                        dropped_egress.push(PortId(e.id));
                    }
                }
            }
        }
        if inner.restore.dropped > 0 {
            self.save_ports(&inner).await?;
        }
        // The egress links of dropped ports (a namespace's deletion took its link already), and
        // the table once no link is left.
        if !dropped_egress.is_empty() {
            let effects = rules::egress::dropped(inner.view(self.underlay_mtu), &dropped_egress);
            self.apply(&mut inner, effects, None).await?;
        }
        Ok(())
    }

    /// Removes a port whose TAP went away under the data path: releases its address, forgets
    /// its MACs (with the port), logs and counts it.
    pub(super) async fn reap(&self, id: PortId) {
        let mut inner = self.inner.lock().await;
        let Some(d) = rules::reap(inner.view(self.underlay_mtu), id) else {
            return;
        };
        let p = d.reply;
        if let Some(ip) = port_ip(&p) {
            if let Err(e) = self.store.release_address(&p.network, ip).await {
                tracing::warn!("{ip} stays claimed after its port went away: {e}");
            }
        }
        if let Err(e) = self.apply(&mut inner, d.effects, None).await {
            tracing::error!("cannot remove port {}: {e}", id.0);
            return;
        }
        inner.restore.reaped += 1;
        tracing::warn!(
            "reaped port {} ({} in {} on {}): its interface is gone (namespace deleted without \
             detach?)",
            id.0,
            p.ifname,
            p.netns,
            p.network
        );
    }

    /// Gives back the address [`Daemon::reclaim`] took for a port that was not taken back after
    /// all.
    async fn release(&self, e: &PortEntry) {
        if let Some(ip) = port_ip(&rules::info(e)) {
            if let Err(err) = self.store.release_address(&e.network, ip).await {
                tracing::warn!("{ip} stays claimed: {err}");
            }
        }
    }

    /// In a store that hands out addresses, claims a taken-back port's address again under
    /// this run's lease (the previous run's claims were released at startup). An address
    /// another host took meanwhile costs the port.
    async fn reclaim(&self, e: &PortEntry) -> Result<(), String> {
        if !self.store.leases_addresses() {
            return Ok(());
        }
        let Some(ip) = port_ip(&rules::info(e)) else {
            return Ok(());
        };
        let holder = AddressHolder {
            host: self.name.clone(),
            netns: e.netns.clone(),
            ifname: e.ifname.clone(),
            mac: e.mac,
            names: e.names.clone(),
        };
        self.store
            .claim_address(&e.network, ip, holder)
            .await
            .map_err(|err| err.to_string())
    }
}

/// What `vswitch daemon --cleanup` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Interfaces deleted.
    pub removed: usize,
    /// Records whose interface (or namespace) was already gone.
    pub gone: usize,
}

/// `vswitch daemon --cleanup`: deletes the interfaces of every port recorded in `state_dir`
/// and forgets them. Refused while a daemon answers on `socket` (it owns them).
pub fn cleanup(state_dir: &Path, socket: &Path) -> Result<Cleanup, DaemonError> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(DaemonError::Running(socket.to_owned()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = FileStore::open(state_dir)?;
        let entries = store.ports().await?;
        let mut done = Cleanup::default();
        for e in &entries {
            let removed = match recorded_ns(e) {
                Some(ns) => delete_recorded_tap(&ns, e)
                    .await
                    .map_err(|err| DaemonError::Cleanup(e.netns.clone(), err))?,
                None => false,
            };
            if removed {
                done.removed += 1;
            } else {
                done.gone += 1;
            }
            // Its egress link, if the namespace's deletion did not take it already.
            if e.egress.is_some() {
                let host = rules::egress::host_ifname(PortId(e.id));
                netns::remove_egress(&host)
                    .await
                    .map_err(DaemonError::CleanupEgress)?;
            }
        }
        // The daemon's firewall table. Without nft there is none to remove.
        match super::masquerade::remove().await {
            Ok(()) | Err(super::masquerade::MasqueradeError::NoNft(_)) => {}
            Err(e) => return Err(DaemonError::CleanupRules(e)),
        }
        store.save_ports(&[]).await.map_err(DaemonError::from)?;
        Ok::<_, DaemonError>(done)
    })
}
