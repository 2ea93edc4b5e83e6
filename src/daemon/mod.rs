//! The daemon: owns the switch, the data path and the state store, and answers the control
//! socket.
//!
//! Four parts, one job each:
//! - this file: wiring (startup, the ticker, signals, shutdown) and the request dispatch;
//! - [`rules`]: pure decisions, `(view, request) → effects + reply | RequestError`, unit-tested
//!   without root; a refused request changes nothing;
//! - [`effects`]: carries a decision out, undoing what was done when a later step fails;
//! - [`views`]: the typed responses.
//!
//! Requests are served one at a time (an async mutex over the daemon's state), so each rule
//! decides on a consistent view and the store's compare-and-swap only fails when another
//! writer of a shared store got there first.

mod adverts;
mod attach;
use attach::{is_conflict, port_ip};
mod effects;
pub mod errors;
pub mod masquerade;
mod restore;
pub use restore::{cleanup, Cleanup};
pub mod keys;
pub mod probe;
mod process;
pub mod rules;
mod services;
mod views;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub use errors::{DaemonError, RequestError};

use crate::control::server::{ControlSocket, Handler};
use crate::control::{Request, Response};
use crate::core::seal::{generate_sender_id, NetworkKey, SealConfig, Sealer};
use crate::core::sync::read;
use crate::core::{PortId, Switch, SwitchConfig};
use crate::dataplane::tap::Tap;
use crate::dataplane::Dataplane;
use crate::netns;
use crate::store::{
    EtcdConfig, EtcdStore, FileStore, Revision, Snapshot, State, StateStore, StoreError, TlsFiles,
};
use crate::wire::Vni;
use rules::{Effect, KeySource, PortRecord, View};

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: Ipv4Addr,
    pub port: u16,
    pub peers: Vec<SocketAddr>,
    pub state_dir: PathBuf,
    pub underlay_mtu: Option<u32>,
    pub socket: PathBuf,
    /// Storm control per port, broadcast/multicast frames per second (0: off).
    pub storm_limit: u32,
    /// Data-path worker threads (`None`: one per CPU, at most `dataplane::MAX_WORKERS`).
    pub workers: Option<u16>,
    /// The resolvers the networks' DNS forwards other names to (empty: /etc/resolv.conf's).
    pub dns_upstreams: Vec<SocketAddr>,
    /// This host's name (default: the kernel's hostname).
    pub name: Option<String>,
    /// Cluster mode: the etcd store (`None`: the state dir alone).
    pub cluster: Option<ClusterConfig>,
    /// Where to serve Prometheus metrics (`None`: nowhere).
    pub metrics: Option<SocketAddr>,
    /// Serve Docker's driver protocol on this socket (`--docker-plugin`).
    pub docker_plugin: Option<PathBuf>,
    /// The host-local subnet containers reach the outside through (`--egress-subnet`).
    pub egress_subnet: ipnet::Ipv4Net,
}

/// `--store etcd://…` and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub tls: Option<TlsFiles>,
}

/// The daemon's mutable state, behind one async mutex.
#[derive(Debug)]
pub(crate) struct Inner {
    state: State,
    revision: Revision,
    ports: BTreeMap<PortId, PortRecord>,
    /// Open TAPs (the data path holds another handle of each started one).
    taps: BTreeMap<PortId, Arc<Tap>>,
    next_port: u32,
    /// Networks of a shared store this host could not set up, and why (attach refuses them).
    unusable: BTreeMap<String, String>,
    /// Other hosts' advertised endpoints and the flood lists, as installed in the switch.
    adverts: rules::adverts::Installed,
    /// What startup did with the recorded ports.
    restore: crate::control::RestoreStats,
    /// The egress subnet, and whether IP forwarding was on at the last look.
    egress: rules::egress::Egress,
}

impl Inner {
    fn view(&self, underlay_mtu: u32) -> View<'_> {
        View {
            state: &self.state,
            ports: &self.ports,
            underlay_mtu,
            egress: self.egress,
        }
    }
}

pub(crate) struct Daemon<S> {
    /// This host, as `host ls` shows it.
    name: String,
    vtep: SocketAddr,
    switch: Arc<RwLock<Switch>>,
    dataplane: Dataplane,
    store: S,
    underlay_mtu: u32,
    inner: Mutex<Inner>,
    /// Serialises attaches (each probes the overlay without holding `inner`).
    attaching: Mutex<()>,
}

impl<S> std::fmt::Debug for Daemon<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("underlay_mtu", &self.underlay_mtu)
            .finish_non_exhaustive()
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    match process::raise_open_files() {
        Ok((soft, _)) => tracing::debug!("open files: up to {soft}"),
        Err(e) => tracing::warn!("cannot raise the limit on open files: {e}"),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let Some(cluster) = config.cluster.clone() else {
        let store = FileStore::open(&config.state_dir)?;
        return rt.block_on(run_with(config, store));
    };
    if config.listen.is_unspecified() {
        return Err(DaemonError::ClusterListen);
    }
    let name = process::host_name(config.name.as_deref())?;
    rt.block_on(async {
        let store = EtcdStore::connect(
            EtcdConfig {
                endpoints: cluster.endpoints,
                prefix: cluster.prefix,
                tls: cluster.tls,
                name,
                vtep: SocketAddr::new(IpAddr::V4(config.listen), config.port),
            },
            &config.state_dir,
        )
        .await
        .map_err(|e| match e {
            e @ (StoreError::Unavailable { .. } | StoreError::Io { .. }) => DaemonError::Cluster(e),
            e => DaemonError::Store(e),
        })?;
        run_with(config, store).await
    })
}

/// Runs the daemon on `store` until SIGTERM or SIGINT.
pub async fn run_with<S: StateStore>(config: DaemonConfig, store: S) -> Result<(), DaemonError> {
    let start = Instant::now();
    let loaded = store.load().await?;
    let own = netns::local_addresses()
        .await
        .map_err(|e| DaemonError::Restore(e.into()))?;
    let state = rules::startup(loaded.state, &config.peers, &own).map_err(DaemonError::Restore)?;
    let egress = masquerade::startup(config.egress_subnet, &own)?;
    let underlay_mtu = match config.underlay_mtu {
        Some(m) => m,
        None => netns::underlay_mtu(IpAddr::V4(config.listen))
            .await
            .map_err(DaemonError::UnderlayMtu)?,
    };
    let switch = Arc::new(RwLock::new(Switch::new(SwitchConfig {
        storm_pps: config.storm_limit,
        // Cluster mode knows every endpoint's address: ARP for them is answered here.
        proxy_arp: store.leases_addresses(),
        ..SwitchConfig::default()
    })));
    let workers = match config.workers {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(crate::dataplane::MAX_WORKERS),
    };
    let dataplane = Dataplane::start(switch.clone(), config.listen, config.port, workers, start)?;
    let upstreams = match config.dns_upstreams.as_slice() {
        [] => services::system_resolvers(),
        given => given.to_vec(),
    };
    tracing::info!("DNS: other names go to {upstreams:?}");
    dataplane.set_dns_upstreams(upstreams);
    tracing::info!(
        "underlay {}:{} (MTU {underlay_mtu}), {} networks, {} peers, {}",
        config.listen,
        config.port,
        state.networks.len(),
        state.peers.len(),
        store.describe()
    );
    let daemon = Arc::new(Daemon {
        name: process::host_name(config.name.as_deref()).unwrap_or_else(|_| "localhost".into()),
        vtep: SocketAddr::new(IpAddr::V4(config.listen), config.port),
        switch,
        dataplane,
        store,
        underlay_mtu,
        inner: Mutex::new(Inner {
            state: State::empty(),
            revision: loaded.revision,
            ports: BTreeMap::new(),
            taps: BTreeMap::new(),
            next_port: 1,
            unusable: BTreeMap::new(),
            adverts: Default::default(),
            restore: Default::default(),
            egress,
        }),
        attaching: Mutex::new(()),
    });
    daemon.restore(state).await.map_err(DaemonError::Restore)?;
    daemon.readopt().await.map_err(DaemonError::Restore)?;
    let ticker = {
        let d = daemon.clone();
        tokio::spawn(async move {
            const TICK: Duration = Duration::from_secs(1);
            let mut named = Instant::now();
            loop {
                // Other hosts' names, at most once a second (a key rotation ticks faster).
                if named.elapsed() >= TICK {
                    d.refresh_names().await;
                    named = Instant::now();
                }
                let next = d.dataplane.tick().map_or(TICK, |soon| soon.min(TICK));
                tokio::time::sleep(next).await;
            }
        })
    };
    let watcher = daemon.store.watch().map(|mut changes| {
        let d = daemon.clone();
        tokio::spawn(async move {
            while let Some(snapshot) = changes.recv().await {
                let mut inner = d.inner.lock().await;
                d.adopt(&mut inner, snapshot).await;
            }
        })
    });
    let reaper = daemon.dataplane.gone_ports().map(|mut gone| {
        let d = daemon.clone();
        tokio::spawn(async move {
            while let Some(id) = gone.recv().await {
                d.reap(id).await;
            }
        })
    });
    let metrics = crate::metrics::server::start(config.metrics, daemon.clone()).await?;
    // The socket appears only now, when every request can be served.
    let socket = ControlSocket::bind(&config.socket)?;
    tracing::info!("control socket {}", socket.path().display());
    // Under systemd (Type=notify) the service is up once the socket serves; no-op elsewhere.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd the daemon is ready: {e}");
    }
    let plugin = crate::docker::spawn(config.docker_plugin.as_deref(), &config.state_dir, &daemon)?;
    let follower = restore::follow(&daemon);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = socket.serve(daemon.clone()) => {}
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    ticker.abort();
    let _ = ticker.await;
    let tasks = [Some(follower), watcher, reaper, plugin, metrics];
    for task in tasks.into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    daemon.leave_ports().await?;
    daemon.store.close().await;
    Ok(())
}

impl<S: StateStore> Handler for Daemon<S> {
    type Error = RequestError;

    async fn handle(&self, request: Request) -> Result<Response, RequestError> {
        // Attach probes the overlay for a second or so; it takes the state lock only to decide
        // and to commit, so other requests are served meanwhile.
        let request = match request {
            Request::Attach(req) => return Ok(Response::Port(self.attach(req).await?)),
            other => other,
        };
        let mut inner = self.inner.lock().await;
        let mtu = self.underlay_mtu;
        let now = self.dataplane.now();
        match request {
            Request::NetworkCreate(spec) if inner.unusable.contains_key(&spec.name) => {
                let d = rules::network_join(inner.view(mtu), spec, keys::read)?;
                self.apply(&mut inner, d.effects, None).await?;
                inner.unusable.remove(&d.reply.name);
                self.sync_adverts(&mut inner).await;
                tracing::info!("network {} set up here with its key", d.reply.name);
                Ok(Response::Network(views::summary(
                    &inner.view(mtu),
                    &d.reply,
                )))
            }
            Request::NetworkCreate(spec) => {
                let mut d = rules::network_create(inner.view(mtu), spec.clone(), keys::read)?;
                if let Err(e) = self.apply(&mut inner, d.effects.clone(), None).await {
                    // Another host wrote first: decide again on the store as it is now (which
                    // names the network or VNI that now exists).
                    if !is_conflict(&e) {
                        return Err(e);
                    }
                    self.refresh(&mut inner).await?;
                    d = rules::network_create(inner.view(mtu), spec, keys::read)?;
                    self.apply(&mut inner, d.effects.clone(), None).await?;
                }
                tracing::info!(
                    "network {} created (VNI {}, {})",
                    d.reply.name,
                    d.reply.vni,
                    d.reply.subnet
                );
                Ok(Response::Network(views::summary(
                    &inner.view(mtu),
                    &d.reply,
                )))
            }
            Request::NetworkList => Ok(Response::Networks(views::network_list(&inner.view(mtu)))),
            Request::NetworkInspect { name } => {
                inner.view(mtu).network(&name)?;
                let endpoints = self.endpoints(&inner, &name).await?;
                let view = inner.view(mtu);
                let n = view.network(&name)?;
                let sw = read(&self.switch);
                Ok(Response::NetworkDetail(views::network_detail(
                    &view, &sw, n, endpoints,
                )))
            }
            Request::NetworkRemove { name } => {
                let mut d = rules::network_remove(inner.view(mtu), &name)?;
                // In cluster mode other hosts' endpoints hold addresses of the network.
                if self.store.leases_addresses() {
                    let held = self.store.held_addresses(&name).await?;
                    let users: Vec<String> = held
                        .values()
                        .filter(|h| h.host != self.name)
                        .map(|h| format!("{} (host {})", h.netns, h.host))
                        .collect();
                    if !users.is_empty() {
                        return Err(RequestError::NetworkHasPorts {
                            name,
                            users: users.join(", "),
                        });
                    }
                }
                let mut summary = views::summary(&inner.view(mtu), &d.reply);
                if let Err(e) = self.apply(&mut inner, d.effects.clone(), None).await {
                    if !is_conflict(&e) {
                        return Err(e);
                    }
                    self.refresh(&mut inner).await?;
                    d = rules::network_remove(inner.view(mtu), &name)?;
                    summary = views::summary(&inner.view(mtu), &d.reply);
                    self.apply(&mut inner, d.effects, None).await?;
                }
                inner.unusable.remove(&name);
                Ok(Response::Network(summary))
            }
            Request::NetworkRotateKey { name, key_file } => {
                let d = rules::rotate_key(inner.view(mtu), &name, || keys::read(&key_file))?;
                self.apply(&mut inner, d.effects, None).await?;
                let sw = read(&self.switch);
                let sealer = sw
                    .network(d.reply)
                    .and_then(|n| n.sealer())
                    .ok_or_else(|| RequestError::Internal(format!("'{name}' has no sealer")))?;
                Ok(Response::Rotation(views::seal_status(sealer, now)))
            }
            Request::Attach(_) => unreachable!("handled above"),
            Request::Detach { netns, network } => Ok(Response::Ports(
                self.detach(&mut inner, &netns, network.as_deref()).await?,
            )),
            Request::PeerAdd { addr } => {
                let own = netns::local_addresses().await?;
                let d = rules::peer_add(inner.view(mtu), addr, &own)?;
                self.apply(&mut inner, d.effects, None).await?;
                // A static peer gets every flood (cluster mode's flood lists include it).
                self.sync_adverts(&mut inner).await;
                Ok(Response::Peer(d.reply))
            }
            Request::PeerRemove { addr } => {
                let d = rules::peer_remove(inner.view(mtu), addr)?;
                let traffic = read(&self.switch)
                    .peer_traffic(d.reply.ip())
                    .unwrap_or_default();
                self.apply(&mut inner, d.effects, None).await?;
                self.sync_adverts(&mut inner).await;
                Ok(Response::Peer(crate::control::PeerInfo {
                    addr: d.reply,
                    traffic,
                }))
            }
            Request::PeerList => {
                let sw = read(&self.switch);
                Ok(Response::Peers(views::peer_list(&inner.view(mtu), &sw)))
            }
            Request::Fdb { network } => {
                let view = inner.view(mtu);
                if let Some(n) = &network {
                    view.network(n)?;
                }
                let sw = read(&self.switch);
                Ok(Response::Fdb(views::fdb(
                    &view,
                    &sw,
                    network.as_deref(),
                    now,
                )))
            }
            Request::Stats => {
                let sw = read(&self.switch);
                let stats = views::stats(
                    &inner.view(mtu),
                    &sw,
                    self.dataplane.stats(),
                    self.store.health(),
                    &inner.adverts,
                    inner.restore,
                    now,
                );
                let stats = views::with_overruns(stats, &self.dataplane.port_overruns());
                Ok(Response::Stats(Box::new(stats)))
            }
            Request::HostList => {
                drop(inner);
                Ok(Response::Hosts(self.hosts().await?))
            }
        }
    }
}

impl<S: StateStore> Daemon<S> {
    /// Puts the stored networks and peers into the switch.
    async fn restore(&self, state: State) -> Result<(), RequestError> {
        let mut inner = self.inner.lock().await;
        let view = inner.view(self.underlay_mtu);
        let mut effects: Vec<Effect> = state
            .networks
            .iter()
            .map(|n| Effect::AddNetwork {
                vni: n.vni,
                network: n.name.clone(),
                key: if n.encrypted {
                    KeySource::Stored
                } else {
                    KeySource::Plain
                },
                gateway: view.gateway(n),
            })
            .collect();
        effects.extend(state.peers.iter().map(|p| Effect::AddPeer(*p)));
        // Saved as well: `--peer`s given on the command line persist.
        effects.push(Effect::Save(state));
        self.apply(&mut inner, effects, None).await
    }

    /// Adopts a state another writer stored (a shared store), through the same rules. A
    /// snapshot older than the state the daemon has is ignored (a newer one follows). Each
    /// change is applied on its own: one that fails (an encrypted network this host has no key
    /// for) is logged and marks that network unusable here, without holding up the others.
    async fn adopt(&self, inner: &mut Inner, snapshot: Snapshot) {
        let Snapshot { state, revision } = snapshot;
        if revision < inner.revision {
            return;
        }
        for effect in rules::reconcile(inner.view(self.underlay_mtu), &state) {
            let network = match &effect {
                Effect::AddNetwork { network, .. } => Some(network.clone()),
                _ => None,
            };
            if let Err(e) = self.apply(inner, vec![effect], None).await {
                tracing::warn!("cannot apply a change from the store: {e}");
                if let Some(n) = network {
                    inner.unusable.insert(n, e.to_string());
                }
            }
        }
        inner
            .unusable
            .retain(|name, _| state.networks.iter().any(|n| &n.name == name));
        inner.state = state;
        inner.revision = revision;
        self.sync_adverts(inner).await;
    }

    /// Loads the store's current state and adopts it.
    async fn refresh(&self, inner: &mut Inner) -> Result<(), RequestError> {
        let snapshot = self.store.load().await?;
        self.adopt(inner, snapshot).await;
        Ok(())
    }

    /// The endpoints of `network` on every host: the cluster's address claims, or this host's
    /// ports.
    async fn endpoints(
        &self,
        inner: &Inner,
        network: &str,
    ) -> Result<Vec<crate::control::EndpointInfo>, RequestError> {
        if self.store.leases_addresses() {
            let held = self.store.held_addresses(network).await?;
            return Ok(held
                .into_iter()
                .map(|(ip, h)| crate::control::EndpointInfo {
                    host: h.host,
                    netns: h.netns,
                    ifname: h.ifname,
                    mac: h.mac,
                    ip,
                    names: h.names,
                })
                .collect());
        }
        let mut local: Vec<_> = inner
            .ports
            .values()
            .filter(|p| p.info.network == network)
            .filter_map(|p| {
                Some(crate::control::EndpointInfo {
                    host: self.name.clone(),
                    netns: p.info.netns.clone(),
                    ifname: p.info.ifname.clone(),
                    mac: p.info.mac,
                    ip: port_ip(&p.info)?,
                    names: p.info.names.clone(),
                })
            })
            .collect();
        local.sort_by_key(|e| e.ip);
        Ok(local)
    }

    /// `host ls`: the store's host registry, or just this host.
    async fn hosts(&self) -> Result<Vec<crate::control::HostInfo>, RequestError> {
        let listed = self.store.hosts().await?;
        let me = crate::control::HostInfo {
            name: self.name.clone(),
            vtep: self.vtep,
            alive: true,
            local: true,
        };
        Ok(match listed {
            None => vec![me],
            Some(hosts) => hosts
                .into_iter()
                .map(|h| crate::control::HostInfo {
                    local: h.name == self.name,
                    alive: h.alive,
                    name: h.name,
                    vtep: h.vtep,
                })
                .collect(),
        })
    }
}

/// A sealer for network `vni`, with a sender id of its own (fresh for every sealer: see
/// `core::seal`).
fn new_sealer(vni: Vni, key: &NetworkKey) -> Result<Sealer<SocketAddr>, RequestError> {
    let rng = ring::rand::SystemRandom::new();
    let sender = generate_sender_id(&rng).map_err(|e| RequestError::Internal(e.to_string()))?;
    Sealer::new(vni.get(), key, sender, SealConfig::default())
        .map_err(|e| RequestError::Internal(e.to_string()))
}
