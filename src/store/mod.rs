//! Persistent state: the networks and peers a daemon was told about, the keys of encrypted
//! networks, and this host's ports, so a restarted daemon has them again.
//!
//! The daemon reads and writes through [`StateStore`]. Today's backend is the state dir
//! ([`FileStore`], the embedded default); [`MemoryStore`] serves tests and the simulator. The
//! trait is shaped for a backend shared by several hosts and reached over the network (the
//! cluster store):
//! - every read returns a [`Snapshot`] with a [`Revision`], and [`StateStore::save`] is a
//!   compare-and-swap against the revision the caller's decision was based on, so two hosts
//!   writing at once cannot silently lose each other's change ([`StoreError::Conflict`]);
//! - a backend that cannot be reached says so ([`StoreError::Unavailable`]) instead of
//!   blocking: the caller refuses the request and changes nothing;
//! - [`StateStore::watch`] delivers the changes other writers make, which the daemon applies
//!   through the same rules as its own requests. A store no one else writes has none.
//!
//! The on-disk format has its own record types ([`State`], [`NetworkRecord`]), apart from the
//! control API's, so an API change cannot silently change the file format.

pub mod etcd;
mod file;
pub mod keyhex;
mod memory;
mod records;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use etcd::{EtcdConfig, EtcdStore, TlsFiles};
pub use file::FileStore;
pub use memory::MemoryStore;
pub use records::{
    decode, decode_ports, Advert, Cluster, DecodeError, NetworkRecord, PortEntry, State, VERSION,
};

use crate::core::seal::NetworkKey;

/// A store's version counter: it grows with every accepted write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision(pub u64);

/// The state at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    pub revision: Revision,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {source}; move it aside to start empty")]
    Corrupt { path: PathBuf, source: DecodeError },
    #[error(
        "the stored state changed under this request (expected revision {expected}, found \
         {found}); nothing was changed: try again"
    )]
    Conflict { expected: u64, found: u64 },
    #[error("the state store ({backend}) is unreachable: {reason}; nothing was changed")]
    Unavailable { backend: String, reason: String },
    #[error("state dir {path} is not safe to use: {why}; use a directory only its owner can write, owned by the user running vswitch")]
    UnsafeDir { path: PathBuf, why: String },
    #[error("the key of network '{network}' in the state store is unusable: {reason}")]
    BadKey { network: String, reason: String },
    #[error(
        "peer {addr} is host '{host}' of the cluster's host registry: it stays a peer while that \
         host is alive, and leaves when it stops"
    )]
    RegistryPeer { addr: SocketAddr, host: String },
    #[error("host name '{name}' is taken by a live host at {vtep}: give this one another --name")]
    NameTaken { name: String, vtep: SocketAddr },
    #[error("{ip} is already taken on network '{network}' by {holder}")]
    AddressHeld {
        network: String,
        ip: std::net::Ipv4Addr,
        /// Boxed: a holder with names would make every store error large.
        holder: Box<AddressHolder>,
    },
}

/// Who holds an address of a network, in a store that hands addresses out (cluster mode).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressHolder {
    pub host: String,
    pub netns: String,
    #[serde(default)]
    pub ifname: String,
    pub mac: crate::wire::Mac,
    /// The endpoint's names in the network's DNS (left out when it has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl std::fmt::Display for AddressHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "netns {} on host {} (MAC {})",
            self.netns, self.host, self.mac
        )
    }
}

/// How the store is doing, for `stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// `file`, `etcd` or `memory`.
    pub backend: &'static str,
    /// Where it is (the state dir, the etcd endpoints and prefix).
    pub location: String,
    /// Whether the last exchange with the backend worked.
    pub connected: bool,
    /// The newest revision seen.
    pub revision: u64,
    /// The last error, if the backend failed since it last worked.
    pub last_error: Option<String>,
}

/// A host of the cluster, as `host ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub name: String,
    pub vtep: SocketAddr,
    pub alive: bool,
}

/// Where the daemon's state lives. Methods are async because a shared backend is reached over
/// the network; a local one does its file work off the runtime thread.
pub trait StateStore: Send + Sync + 'static {
    /// The backend, for logs and errors (e.g. `state dir /var/lib/vswitch`).
    fn describe(&self) -> String;

    /// The current state (an empty one when nothing was ever saved).
    fn load(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// Replaces the state, if it is still at `expected`; returns the new revision.
    fn save(
        &self,
        expected: Revision,
        state: &State,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// Stores the key of `network`, readable only by the daemon.
    fn put_key(
        &self,
        network: &str,
        key: &NetworkKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored key of `network`, if any.
    fn key(
        &self,
        network: &str,
    ) -> impl Future<Output = Result<Option<NetworkKey>, StoreError>> + Send;

    /// Forgets the key of `network` (absent is fine).
    fn remove_key(&self, network: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// This host's ports, as last saved (empty when none were).
    fn ports(&self) -> impl Future<Output = Result<Vec<PortEntry>, StoreError>> + Send;

    /// Replaces this host's saved ports. Host-local in every backend: a port is this host's
    /// business, and a restarted daemon takes its ports back from here.
    fn save_ports(
        &self,
        ports: &[PortEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Changes made by other writers, newest last; `None` for a store nobody else writes.
    fn watch(&self) -> Option<tokio::sync::mpsc::Receiver<Snapshot>>;

    /// How the backend is doing.
    fn health(&self) -> StoreHealth;

    /// The hosts of the cluster; `None` for a store that keeps no host registry.
    fn hosts(&self) -> impl Future<Output = Result<Option<Vec<HostEntry>>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// Whether this store hands out addresses (then `attach` takes them from it instead of
    /// probing the overlay with ARP).
    fn leases_addresses(&self) -> bool {
        false
    }

    /// The addresses of `network` held anywhere, and by whom.
    fn held_addresses(
        &self,
        _network: &str,
    ) -> impl Future<
        Output = Result<std::collections::BTreeMap<std::net::Ipv4Addr, AddressHolder>, StoreError>,
    > + Send {
        async { Ok(std::collections::BTreeMap::new()) }
    }

    /// Takes `ip` on `network` for a local endpoint (`holder.host` is this host), atomically: [`StoreError::AddressHeld`]
    /// when another endpoint holds it.
    fn claim_address(
        &self,
        _network: &str,
        _ip: std::net::Ipv4Addr,
        _holder: AddressHolder,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Gives back an address this host holds.
    fn release_address(
        &self,
        _network: &str,
        _ip: std::net::Ipv4Addr,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Leaves cleanly (a cluster store deregisters this host at once instead of waiting for
    /// its lease to run out).
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
