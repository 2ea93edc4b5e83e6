//! An in-memory store: for tests of the rules and for the simulator. It behaves like a shared
//! store (revisions, compare-and-swap, a watch channel fed by [`MemoryStore::external_write`]),
//! so the daemon's handling of conflicts and outside changes can be tested without a cluster.
//!
//! It can also stand in for the cluster store: [`MemoryStore::join`] gives a host its own
//! handle on the same store, with a registry of hosts and address claims (the endpoint
//! advertisements), as etcd keeps them; [`MemoryStore::kill`] is a host whose lease ran out.
//! Every change reaches every watcher at once, as its host sees it, so several hosts' rules
//! can run against one store on the simulated fabric, deterministically.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{
    AddressHolder, Advert, Cluster, HostEntry, PortEntry, Revision, Snapshot, State, StateStore,
    StoreError,
};
use crate::core::seal::NetworkKey;
use crate::core::sync::lock;

#[derive(Debug, Default)]
struct Inner {
    snapshot: Option<Snapshot>,
    keys: BTreeMap<String, NetworkKey>,
    ports: Vec<PortEntry>,
    /// Each watcher with the host it watches for (`None`: a store without a registry).
    watchers: Vec<(Option<String>, mpsc::Sender<Snapshot>)>,
    /// When set, every call fails as if the backend were unreachable.
    down: bool,
    /// The registry: name → (VTEP, alive).
    hosts: BTreeMap<String, (SocketAddr, bool)>,
    claims: BTreeMap<(String, Ipv4Addr), AddressHolder>,
}

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    /// The host this handle is (see [`MemoryStore::join`]).
    me: Option<String>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Another writer changes the state: the revision moves on and watchers hear of it.
    pub fn external_write(&self, state: State) -> Revision {
        let mut inner = lock(&self.inner);
        let revision = Revision(current(&inner).revision.0 + 1);
        inner.snapshot = Some(Snapshot { state, revision });
        notify(&mut inner);
        revision
    }

    /// A handle on the same store for host `name` at `vtep`, registered and alive.
    pub fn join(&self, name: &str, vtep: SocketAddr) -> MemoryStore {
        let mut inner = lock(&self.inner);
        inner.hosts.insert(name.to_owned(), (vtep, true));
        bump(&mut inner);
        notify(&mut inner);
        MemoryStore {
            inner: self.inner.clone(),
            me: Some(name.to_owned()),
        }
    }

    /// Host `name` dies: its lease runs out, and its address claims with it.
    pub fn kill(&self, name: &str) {
        let mut inner = lock(&self.inner);
        if let Some(h) = inner.hosts.get_mut(name) {
            h.1 = false;
        }
        inner.claims.retain(|_, h| h.host != name);
        bump(&mut inner);
        notify(&mut inner);
    }

    /// Makes the store unreachable (or reachable again).
    pub fn set_down(&self, down: bool) {
        lock(&self.inner).down = down;
    }

    fn check_up(inner: &Inner) -> Result<(), StoreError> {
        if inner.down {
            return Err(StoreError::Unavailable {
                backend: "memory".into(),
                reason: "marked down by the test".into(),
            });
        }
        Ok(())
    }
}

fn current(inner: &Inner) -> Snapshot {
    inner.snapshot.clone().unwrap_or(Snapshot {
        state: State::empty(),
        revision: Revision(0),
    })
}

/// The revision moves on for a change outside the state (the registry, a claim).
fn bump(inner: &mut Inner) {
    let mut s = current(inner);
    s.revision.0 += 1;
    inner.snapshot = Some(s);
}

/// The state as host `me` sees it: its peers are the static ones plus the other live hosts,
/// and the cluster view lists the other hosts' endpoints.
fn seen_by(inner: &Inner, me: Option<&str>) -> Snapshot {
    let mut s = current(inner);
    let Some(me) = me else {
        return s;
    };
    let others: Vec<(&String, SocketAddr)> = inner
        .hosts
        .iter()
        .filter(|(n, (_, alive))| *alive && n.as_str() != me)
        .map(|(n, (vtep, _))| (n, *vtep))
        .collect();
    let hosts: Vec<SocketAddr> = others.iter().map(|(_, v)| *v).collect();
    s.state.peers = super::etcd::layout::peers(&s.state.peers, &hosts);
    let endpoints = inner
        .claims
        .iter()
        .filter_map(|((network, ip), h)| {
            let (_, vtep) = others.iter().find(|(n, _)| **n == h.host)?;
            Some(Advert {
                network: network.clone(),
                ip: *ip,
                mac: h.mac,
                host: h.host.clone(),
                vtep: *vtep,
            })
        })
        .collect();
    s.state.cluster = Some(Cluster { hosts, endpoints });
    s
}

fn notify(inner: &mut Inner) {
    let snapshots: Vec<Snapshot> = inner
        .watchers
        .iter()
        .map(|(me, _)| seen_by(inner, me.as_deref()))
        .collect();
    let mut i = 0;
    inner.watchers.retain(|(_, w)| {
        i += 1;
        w.try_send(snapshots[i - 1].clone()).is_ok()
    });
}

impl StateStore for MemoryStore {
    fn describe(&self) -> String {
        "in-memory store".into()
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let inner = lock(&self.inner);
        Self::check_up(&inner)?;
        Ok(seen_by(&inner, self.me.as_deref()))
    }

    async fn save(&self, expected: Revision, state: &State) -> Result<Revision, StoreError> {
        let mut inner = lock(&self.inner);
        Self::check_up(&inner)?;
        let found = current(&inner).revision;
        if found != expected {
            return Err(StoreError::Conflict {
                expected: expected.0,
                found: found.0,
            });
        }
        let revision = Revision(found.0 + 1);
        inner.snapshot = Some(Snapshot {
            state: State {
                cluster: None,
                ..state.clone()
            },
            revision,
        });
        Ok(revision)
    }

    async fn ports(&self) -> Result<Vec<PortEntry>, StoreError> {
        let inner = lock(&self.inner);
        Self::check_up(&inner)?;
        Ok(inner.ports.clone())
    }

    async fn save_ports(&self, ports: &[PortEntry]) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        Self::check_up(&inner)?;
        inner.ports = ports.to_vec();
        Ok(())
    }

    async fn put_key(&self, network: &str, key: &NetworkKey) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        Self::check_up(&inner)?;
        inner.keys.insert(network.to_owned(), key.clone());
        Ok(())
    }

    async fn key(&self, network: &str) -> Result<Option<NetworkKey>, StoreError> {
        let inner = lock(&self.inner);
        Self::check_up(&inner)?;
        Ok(inner.keys.get(network).cloned())
    }

    async fn remove_key(&self, network: &str) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        Self::check_up(&inner)?;
        inner.keys.remove(network);
        Ok(())
    }

    fn watch(&self) -> Option<mpsc::Receiver<Snapshot>> {
        let (tx, rx) = mpsc::channel(16);
        lock(&self.inner).watchers.push((self.me.clone(), tx));
        Some(rx)
    }

    fn health(&self) -> super::StoreHealth {
        let inner = lock(&self.inner);
        super::StoreHealth {
            backend: "memory",
            location: self.describe(),
            connected: !inner.down,
            revision: current(&inner).revision.0,
            last_error: inner.down.then(|| "marked down by the test".to_owned()),
        }
    }

    async fn hosts(&self) -> Result<Option<Vec<HostEntry>>, StoreError> {
        let inner = lock(&self.inner);
        Self::check_up(&inner)?;
        Ok(self.me.as_ref().map(|_| {
            inner
                .hosts
                .iter()
                .map(|(name, (vtep, alive))| HostEntry {
                    name: name.clone(),
                    vtep: *vtep,
                    alive: *alive,
                })
                .collect()
        }))
    }

    fn leases_addresses(&self) -> bool {
        self.me.is_some()
    }

    async fn held_addresses(
        &self,
        network: &str,
    ) -> Result<BTreeMap<Ipv4Addr, AddressHolder>, StoreError> {
        let inner = lock(&self.inner);
        Self::check_up(&inner)?;
        Ok(inner
            .claims
            .iter()
            .filter(|((n, _), _)| n == network)
            .map(|((_, ip), h)| (*ip, h.clone()))
            .collect())
    }

    async fn claim_address(
        &self,
        network: &str,
        ip: Ipv4Addr,
        holder: AddressHolder,
    ) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        Self::check_up(&inner)?;
        let holder = AddressHolder {
            host: self.me.clone().unwrap_or_default(),
            ..holder
        };
        let key = (network.to_owned(), ip);
        match inner.claims.get(&key) {
            Some(h) if *h == holder => return Ok(()),
            Some(h) => {
                return Err(StoreError::AddressHeld {
                    network: network.to_owned(),
                    ip,
                    holder: Box::new(h.clone()),
                })
            }
            None => {}
        }
        inner.claims.insert(key, holder);
        bump(&mut inner);
        notify(&mut inner);
        Ok(())
    }

    async fn release_address(&self, network: &str, ip: Ipv4Addr) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        Self::check_up(&inner)?;
        let key = (network.to_owned(), ip);
        if inner
            .claims
            .get(&key)
            .is_some_and(|h| Some(&h.host) == self.me.as_ref())
        {
            inner.claims.remove(&key);
            bump(&mut inner);
            notify(&mut inner);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::seal::KEY_LEN;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn compare_and_swap_refuses_a_stale_revision() {
        let store = MemoryStore::new();
        let first = block(store.load()).expect("load");
        assert_eq!(first.revision, Revision(0));
        let mut s = first.state.clone();
        s.peers.push("192.0.2.2:4789".parse().expect("addr"));
        let r1 = block(store.save(first.revision, &s)).expect("save");
        assert_eq!(r1, Revision(1));
        let e = block(store.save(first.revision, &State::empty())).expect_err("stale");
        assert!(
            matches!(
                e,
                StoreError::Conflict {
                    expected: 0,
                    found: 1
                }
            ),
            "{e}"
        );
        assert_eq!(block(store.load()).expect("load").state, s, "unchanged");
    }

    #[test]
    fn joined_hosts_share_claims_and_see_each_others_endpoints() {
        let store = MemoryStore::new();
        let a = store.join("a", "192.0.2.1:4789".parse().expect("addr"));
        let b = store.join("b", "192.0.2.2:4789".parse().expect("addr"));
        let mut watch_b = b.watch().expect("watchable");
        let holder = |mac: u8| AddressHolder {
            host: String::new(),
            netns: "c".into(),
            ifname: "eth0".into(),
            mac: crate::wire::Mac([2, 0, 0, 0, 0, mac]),
            names: vec![],
        };
        let ip: Ipv4Addr = "10.0.0.1".parse().expect("ip");
        block(a.claim_address("blue", ip, holder(1))).expect("claimed");
        let e = block(b.claim_address("blue", ip, holder(2))).expect_err("held by a");
        assert!(e.to_string().contains("on host a"), "{e}");
        block(b.release_address("blue", ip)).expect("not b's: a no-op");
        let seen = watch_b.try_recv().expect("a change").state;
        assert_eq!(seen.peers, vec!["192.0.2.1:4789".parse().expect("addr")]);
        let cluster = seen.cluster.expect("a cluster view");
        assert_eq!(cluster.endpoints.len(), 1);
        assert_eq!(cluster.endpoints[0].host, "a");
        // a's own view has no endpoint of its own; a killed host's claims go with it.
        let own = block(a.load())
            .expect("load")
            .state
            .cluster
            .expect("cluster");
        assert!(own.endpoints.is_empty());
        store.kill("a");
        let after = block(b.load()).expect("load").state;
        assert!(after.peers.is_empty());
        assert!(after.cluster.expect("cluster").endpoints.is_empty());
        assert!(block(b.held_addresses("blue")).expect("held").is_empty());
        assert!(!store.leases_addresses() && b.leases_addresses());
    }

    #[test]
    fn outside_writes_reach_watchers_and_a_down_store_says_so() {
        let store = MemoryStore::new();
        let mut rx = store.watch().expect("watchable");
        let mut s = State::empty();
        s.peers.push("192.0.2.3:4789".parse().expect("addr"));
        let r = store.external_write(s.clone());
        let seen = rx.try_recv().expect("a change");
        assert_eq!((seen.revision, seen.state), (r, s));
        block(store.put_key("sec", &NetworkKey::from_bytes([7; KEY_LEN]))).expect("put");
        store.set_down(true);
        let e = block(store.key("sec")).expect_err("down");
        assert!(e.to_string().contains("unreachable"), "{e}");
        store.set_down(false);
        let k = block(store.key("sec")).expect("up").expect("stored");
        assert_eq!(k.expose_secret(), &[7; KEY_LEN]);
    }
}
