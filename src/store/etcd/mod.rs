//! The cluster store: networks and the host registry in etcd, shared by every daemon started
//! with `--store etcd://…`.
//!
//! - **Networks** are cluster-wide: `save` writes the difference between the networks at the
//!   revision the daemon decided on and its new state in ONE transaction, which compares what
//!   it read (a new name and its VNI must be absent, a changed or removed network unchanged
//!   since). Two hosts creating the same name or VNI at once: one wins, the other gets
//!   [`StoreError::Conflict`] and the daemon decides again on the fresh state ("exists").
//! - **Hosts** register under `hosts/NAME` and keep `alive/NAME` under a lease (TTL 10 s)
//!   that a task keeps alive; a lost lease (etcd away for longer than the TTL) is granted and
//!   registered again when etcd is back. The peers a snapshot shows are the static ones
//!   (`--peer`, `peer add`, kept in the local state dir: they still work in cluster mode)
//!   followed by the VTEPs of the other live hosts. A registry peer cannot be removed with
//!   `peer rm`; it leaves when its host does.
//! - **Keys of encrypted networks never go to etcd**: `put_key`, `key` and `remove_key` use
//!   the local state dir (a [`FileStore`]).
//! - The revision is etcd's. `watch` lists the prefix, watches it from the next revision and
//!   sends a fresh listing after every change; a compacted or broken watch starts over with a
//!   new listing, so no change is missed.
//! - Every request has a 2 s deadline: an unreachable etcd is [`StoreError::Unavailable`],
//!   naming the endpoints, at once rather than a hung request.

mod background;
pub mod layout;
use background::{keep_alive, watch};

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity,
    LeaseKeepAliveStream, LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    AddressHolder, FileStore, HostEntry, PortEntry, Revision, Snapshot, State, StateStore,
    StoreError, StoreHealth, VERSION,
};
use crate::core::seal::NetworkKey;
use crate::core::sync::lock;
use layout::{Check, HostRecord, Keys, Kv, Listing, Op, Plan};

/// How long any one request to etcd may take.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// The TTL of a host's lease: a host that stops without saying so is gone after this long.
pub const LEASE_TTL: i64 = 10;
/// How often the lease is refreshed (a third of its TTL).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(3);
/// How long to wait before trying again after etcd failed.
const RETRY: Duration = Duration::from_secs(1);

/// TLS to etcd: the CA that signs the servers' certificates, and the client's certificate and
/// key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// How to reach etcd and who this host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `HOST:PORT` each (see [`layout::parse_url`]).
    pub endpoints: Vec<String>,
    /// `--store-prefix` (see [`layout::parse_prefix`]).
    pub prefix: String,
    pub tls: Option<TlsFiles>,
    /// This host's name in the registry.
    pub name: String,
    /// This host's VTEP.
    pub vtep: SocketAddr,
}

#[derive(Debug, Default)]
struct Health {
    connected: bool,
    revision: i64,
    last_error: Option<String>,
}

/// What the store and its tasks share.
struct Shared {
    client: Client,
    keys: Keys,
    me: HostRecord,
    /// The endpoints as dialled, for errors.
    endpoints: String,
    prefix: String,
    statics: Mutex<Vec<SocketAddr>>,
    health: Mutex<Health>,
    lease: Mutex<Option<i64>>,
    /// The addresses this host holds (put again under a new lease after a lost one).
    claims: Mutex<BTreeMap<(String, Ipv4Addr), AddressHolder>>,
}

/// The etcd store (see the module doc).
pub struct EtcdStore {
    shared: Arc<Shared>,
    local: FileStore,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.shared.endpoints)
            .field("prefix", &self.shared.prefix)
            .field("me", &self.shared.me)
            .finish_non_exhaustive()
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })
}

/// An etcd client error in one line: gRPC's message and the innermost cause (e.g. "tcp
/// connect error: Connection refused (os error 111)").
fn error_text(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let etcd_client::Error::GRpcStatus(status) = e else {
        return e.to_string();
    };
    let mut text = status.message().to_owned();
    let mut innermost = None;
    let mut source = status.source();
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = innermost.filter(|c| !text.contains(c.as_str())) {
        text = format!("{text}: {cause}");
    }
    if text.is_empty() {
        text = format!("{:?}", status.code());
    }
    text
}

impl EtcdStore {
    /// Connects, checks that etcd answers, and registers this host. The local state dir keeps
    /// network keys and static peers. An unreachable or refusing etcd is an error naming the
    /// endpoints.
    pub async fn connect(config: EtcdConfig, state_dir: &Path) -> Result<EtcdStore, StoreError> {
        let local = FileStore::open(state_dir)?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let urls: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let endpoints = urls.join(",");
        let unavailable = |reason: String| StoreError::Unavailable {
            backend: format!("etcd at {endpoints}"),
            reason,
        };
        let mut options = ConnectOptions::new().with_connect_timeout(OP_TIMEOUT);
        if let Some(t) = &config.tls {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read_pem(&t.ca)?));
            if let Some((cert, key)) = &t.identity {
                tls = tls.identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
            }
            options = options.with_tls(tls);
        }
        let client =
            match tokio::time::timeout(OP_TIMEOUT, Client::connect(&urls, Some(options))).await {
                Err(_) => return Err(unavailable("no connection within 2 s".into())),
                Ok(Err(e)) => return Err(unavailable(error_text(&e))),
                Ok(Ok(c)) => c,
            };
        let statics = local.load().await?.state.peers;
        let shared = Arc::new(Shared {
            client,
            keys: Keys::new(&config.prefix),
            me: HostRecord {
                name: config.name,
                vtep: config.vtep,
            },
            endpoints,
            prefix: config.prefix,
            statics: Mutex::new(statics),
            health: Mutex::new(Health::default()),
            lease: Mutex::new(None),
            claims: Mutex::new(BTreeMap::new()),
        });
        // The first request may meet an etcd that has only just started, or a loaded machine:
        // one that gets no answer in time is asked again, twice; a refusal is final at once.
        let mut attempts = 1;
        loop {
            match shared.list(None).await {
                Ok(_) => break,
                Err(StoreError::Unavailable { reason, .. })
                    if reason.starts_with("no answer") && attempts < 3 =>
                {
                    attempts += 1;
                    tracing::warn!("{reason}; asking again ({attempts} of 3)");
                }
                Err(e) => return Err(e),
            }
        }
        shared.register().await?;
        shared.drop_orphans().await?;
        let keeper = tokio::spawn(keep_alive(shared.clone()));
        Ok(EtcdStore {
            shared,
            local,
            tasks: Mutex::new(vec![keeper]),
        })
    }
}

impl Shared {
    fn backend(&self) -> String {
        format!("etcd at {}", self.endpoints)
    }

    fn failed(&self, reason: &str) {
        let mut h = lock(&self.health);
        if h.connected || h.last_error.as_deref() != Some(reason) {
            tracing::warn!("{}: {reason}", self.backend());
        }
        h.connected = false;
        h.last_error = Some(reason.to_owned());
    }

    fn worked(&self, revision: i64) {
        let mut h = lock(&self.health);
        if !h.connected && h.last_error.is_some() {
            tracing::info!("{}: reachable again", self.backend());
        }
        h.connected = true;
        h.last_error = None;
        h.revision = h.revision.max(revision);
    }

    /// Runs one request with the deadline; failures are `Unavailable` and recorded.
    async fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        let reason = match tokio::time::timeout(OP_TIMEOUT, request).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => format!("{what}: {}", error_text(&e)),
            Err(_) => format!("no answer to {what} within {} s", OP_TIMEOUT.as_secs()),
        };
        self.failed(&reason);
        Err(StoreError::Unavailable {
            backend: self.backend(),
            reason,
        })
    }

    /// Everything under the prefix, now or at an earlier revision, and the store's revision.
    async fn list(&self, at: Option<i64>) -> Result<(Listing, i64), StoreError> {
        let mut options = GetOptions::new().with_prefix();
        if let Some(r) = at {
            options = options.with_revision(r);
        }
        let mut c = self.client.clone();
        let resp = match self
            .call("a listing", c.get(self.keys.root(), Some(options)))
            .await
        {
            // The revision decided on is no longer kept: the decision has to be made again.
            Err(StoreError::Unavailable { reason, .. }) if reason.contains("compacted") => {
                return Err(StoreError::Conflict {
                    expected: at.unwrap_or(0) as u64,
                    found: 0,
                });
            }
            r => r?,
        };
        let revision = resp.header().map_or(0, |h| h.revision());
        let listing = Listing::decode(
            &self.keys,
            resp.kvs().iter().map(|kv| Kv {
                key: kv.key(),
                value: kv.value(),
                mod_revision: kv.mod_revision(),
            }),
        );
        for g in &listing.garbled {
            tracing::warn!("etcd key {g} does not hold what vswitch expects; ignored");
        }
        self.worked(revision);
        Ok((listing, revision))
    }

    fn snapshot(&self, listing: &Listing, revision: i64) -> Snapshot {
        let statics = lock(&self.statics).clone();
        Snapshot {
            state: State {
                version: VERSION,
                networks: listing.network_records(),
                peers: layout::peers(&statics, &listing.registry_peers(&self.me)),
                cluster: Some(listing.cluster(&self.me)),
            },
            revision: Revision(revision.max(0) as u64),
        }
    }

    fn describe(&self) -> String {
        format!("{} (prefix {})", self.backend(), self.prefix)
    }
}

fn transaction(plan: &Plan) -> Txn {
    let compares: Vec<Compare> = plan
        .checks
        .iter()
        .map(|c| match c {
            Check::Absent(key) => Compare::version(key.clone(), CompareOp::Equal, 0),
            Check::Unchanged { key, mod_revision } => {
                Compare::mod_revision(key.clone(), CompareOp::Equal, *mod_revision)
            }
        })
        .collect();
    let ops: Vec<TxnOp> = plan
        .ops
        .iter()
        .map(|o| match o {
            Op::Put { key, value } => TxnOp::put(key.clone(), value.clone(), None),
            Op::Delete(key) => TxnOp::delete(key.clone(), None),
        })
        .collect();
    Txn::new().when(compares).and_then(ops)
}

impl StateStore for EtcdStore {
    fn describe(&self) -> String {
        self.shared.describe()
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let (listing, revision) = self.shared.list(None).await?;
        Ok(self.shared.snapshot(&listing, revision))
    }

    async fn save(&self, expected: Revision, state: &State) -> Result<Revision, StoreError> {
        let sh = &self.shared;
        // What the daemon decided on: the store as it was at `expected`.
        let base = match expected.0 {
            0 => Listing::default(),
            r => sh.list(Some(r as i64)).await?.0,
        };
        let registry = base.registry_peers(&sh.me);
        let statics = layout::static_peers(&registry, &state.peers).map_err(|addr| {
            StoreError::RegistryPeer {
                addr,
                host: base
                    .hosts
                    .iter()
                    .find(|h| h.vtep == addr)
                    .map_or_else(String::new, |h| h.name.clone()),
            }
        })?;
        let plan = layout::plan(&sh.keys, &base.networks, &state.networks);
        let revision = if plan.is_empty() {
            expected
        } else {
            let mut c = sh.client.clone();
            let resp = sh.call("a transaction", c.txn(transaction(&plan))).await?;
            let found = resp.header().map_or(0, |h| h.revision());
            if !resp.succeeded() {
                return Err(StoreError::Conflict {
                    expected: expected.0,
                    found: found.max(0) as u64,
                });
            }
            sh.worked(found);
            Revision(found.max(0) as u64)
        };
        if statics != *lock(&sh.statics) {
            // The state file's networks (file mode's) are left as they are.
            let file = self.local.load().await?;
            let mut kept = file.state;
            kept.peers = statics.clone();
            self.local.save(file.revision, &kept).await?;
            *lock(&sh.statics) = statics;
        }
        Ok(revision)
    }

    async fn put_key(&self, network: &str, key: &NetworkKey) -> Result<(), StoreError> {
        self.local.put_key(network, key).await
    }

    async fn ports(&self) -> Result<Vec<PortEntry>, StoreError> {
        self.local.ports().await
    }

    async fn save_ports(&self, ports: &[PortEntry]) -> Result<(), StoreError> {
        self.local.save_ports(ports).await
    }

    async fn key(&self, network: &str) -> Result<Option<NetworkKey>, StoreError> {
        self.local.key(network).await
    }

    async fn remove_key(&self, network: &str) -> Result<(), StoreError> {
        self.local.remove_key(network).await
    }

    fn watch(&self) -> Option<mpsc::Receiver<Snapshot>> {
        let (tx, rx) = mpsc::channel(16);
        lock(&self.tasks).push(tokio::spawn(watch(self.shared.clone(), tx)));
        Some(rx)
    }

    fn health(&self) -> StoreHealth {
        let h = lock(&self.shared.health);
        StoreHealth {
            backend: "etcd",
            location: self.shared.describe(),
            connected: h.connected,
            revision: h.revision.max(0) as u64,
            last_error: h.last_error.clone(),
        }
    }

    async fn hosts(&self) -> Result<Option<Vec<HostEntry>>, StoreError> {
        let (listing, _) = self.shared.list(None).await?;
        Ok(Some(
            listing
                .hosts
                .iter()
                .map(|h| HostEntry {
                    name: h.name.clone(),
                    vtep: h.vtep,
                    alive: listing.alive.contains(&h.name),
                })
                .collect(),
        ))
    }

    fn leases_addresses(&self) -> bool {
        true
    }

    async fn held_addresses(
        &self,
        network: &str,
    ) -> Result<BTreeMap<Ipv4Addr, AddressHolder>, StoreError> {
        let sh = &self.shared;
        let mut c = sh.client.clone();
        let resp = sh
            .call(
                "a listing of addresses",
                c.get(
                    sh.keys.addresses(network),
                    Some(GetOptions::new().with_prefix()),
                ),
            )
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let (_, ip) = sh.keys.parse_address(kv.key())?;
                Some((ip, serde_json::from_slice(kv.value()).ok()?))
            })
            .collect())
    }

    async fn claim_address(
        &self,
        network: &str,
        ip: Ipv4Addr,
        holder: AddressHolder,
    ) -> Result<(), StoreError> {
        let sh = &self.shared;
        let Some(lease) = *lock(&sh.lease) else {
            return Err(StoreError::Unavailable {
                backend: sh.backend(),
                reason: "this host's registration lapsed while etcd was away and is being \
                         renewed; try again in a few seconds"
                    .into(),
            });
        };
        let key = sh.keys.address(network, ip);
        let holder = AddressHolder {
            host: sh.me.name.clone(),
            ..holder
        };
        let json = serde_json::to_vec(&holder).unwrap_or_default();
        let txn = Txn::new()
            .when(vec![Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(
                key.clone(),
                json,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let mut c = sh.client.clone();
        let resp = sh.call("an address claim", c.txn(txn)).await?;
        if !resp.succeeded() {
            let current = sh.call("an address lookup", c.get(key, None)).await?;
            let other = current
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice::<AddressHolder>(kv.value()).ok());
            match other {
                Some(h) if h == holder => {}
                Some(h) => {
                    return Err(StoreError::AddressHeld {
                        network: network.to_owned(),
                        ip,
                        holder: Box::new(h),
                    })
                }
                // Released in between: the caller tries again.
                None => {
                    return Err(StoreError::Conflict {
                        expected: 0,
                        found: 0,
                    })
                }
            }
        }
        lock(&sh.claims).insert((network.to_owned(), ip), holder);
        Ok(())
    }

    async fn release_address(&self, network: &str, ip: Ipv4Addr) -> Result<(), StoreError> {
        let sh = &self.shared;
        let held = lock(&sh.claims).get(&(network.to_owned(), ip)).cloned();
        let Some(holder) = held else {
            return Ok(());
        };
        let key = sh.keys.address(network, ip);
        let json = serde_json::to_vec(&holder).unwrap_or_default();
        // Only our own claim is deleted, never one another host made since.
        let txn = Txn::new()
            .when(vec![Compare::value(key.clone(), CompareOp::Equal, json)])
            .and_then(vec![TxnOp::delete(key, None)]);
        let mut c = sh.client.clone();
        sh.call("an address release", c.txn(txn)).await?;
        lock(&sh.claims).remove(&(network.to_owned(), ip));
        Ok(())
    }

    async fn close(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        let lease = lock(&self.shared.lease).take();
        if let Some(id) = lease {
            let mut c = self.shared.client.clone();
            match self.shared.call("a lease revoke", c.lease_revoke(id)).await {
                Ok(_) => tracing::info!("deregistered host {}", self.shared.me.name),
                Err(e) => tracing::warn!("cannot deregister: {e}; the lease runs out by itself"),
            }
        }
    }
}
