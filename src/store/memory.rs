//! An in-memory store: for tests of the rules and for the simulator. It behaves like a shared
//! store (revisions, compare-and-swap, a watch channel fed by [`MemoryStore::external_write`]),
//! so the daemon's handling of conflicts and outside changes can be tested without a cluster.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::{PortEntry, Revision, Snapshot, State, StateStore, StoreError};
use crate::core::seal::NetworkKey;
use crate::core::sync::lock;

#[derive(Debug, Default)]
struct Inner {
    snapshot: Option<Snapshot>,
    keys: BTreeMap<String, NetworkKey>,
    ports: Vec<PortEntry>,
    watchers: Vec<mpsc::Sender<Snapshot>>,
    /// When set, every call fails as if the backend were unreachable.
    down: bool,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Another writer changes the state: the revision moves on and watchers hear of it.
    pub fn external_write(&self, state: State) -> Revision {
        let mut inner = lock(&self.inner);
        let revision = Revision(current(&inner).revision.0 + 1);
        let snapshot = Snapshot { state, revision };
        inner.snapshot = Some(snapshot.clone());
        inner
            .watchers
            .retain(|w| w.try_send(snapshot.clone()).is_ok());
        revision
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

impl StateStore for MemoryStore {
    fn describe(&self) -> String {
        "in-memory store".into()
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let inner = lock(&self.inner);
        Self::check_up(&inner)?;
        Ok(current(&inner))
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
            state: state.clone(),
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
        lock(&self.inner).watchers.push(tx);
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
