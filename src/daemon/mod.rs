//! The daemon: owns the switch, the data path and the state dir, and answers the control socket.
//! Each request is checked completely before anything changes, so a refused request changes
//! nothing.

pub mod keys;
mod probe;

use crate::core::sync::{read, write};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::control::server::{ControlSocket, Handler};
use crate::control::{
    AttachRequest, FdbRow, FdbStats, NetworkDetail, NetworkSpec, NetworkStats, NetworkSummary,
    PeerInfo, PortInfo, PortStats, Request, Stats,
};
use crate::core::seal::{generate_sender_id, NetworkKey, SealConfig, Sealer, SEAL_OVERHEAD};
use crate::core::{ipam, Location, PortId, Switch, SwitchConfig, Vtep};
use crate::dataplane::tap::{Offload, Tap, TapOptions};
use crate::dataplane::{Dataplane, PortSink};
use crate::netns::{self, NetnsRef, PortConfig};
use crate::store::{State, Store};
use crate::wire::{vxlan, Mac};

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: Ipv4Addr,
    pub port: u16,
    pub peers: Vec<SocketAddr>,
    pub state_dir: PathBuf,
    pub underlay_mtu: Option<u32>,
    pub socket: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// One attached container interface.
#[derive(Debug)]
struct Port {
    info: PortInfo,
    ns: NetnsRef,
    // Held so the TAP lives as long as the port; the data path holds another handle.
    _tap: Arc<Tap>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    ports: BTreeMap<PortId, Port>,
    next_port: u32,
}

struct Daemon {
    switch: Arc<RwLock<Switch>>,
    dataplane: Dataplane,
    store: Store,
    underlay_mtu: u32,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("underlay_mtu", &self.underlay_mtu)
            .finish()
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(config))
}

async fn run_async(config: DaemonConfig) -> Result<(), DaemonError> {
    let start = Instant::now();
    let store = Store::open(&config.state_dir)?;
    let mut state = store.load()?;
    for p in &config.peers {
        if !state.peers.iter().any(|q| q.ip() == p.ip()) {
            state.peers.push(*p);
        }
    }
    let underlay_mtu = match config.underlay_mtu {
        Some(m) => m,
        None => netns::underlay_mtu(IpAddr::V4(config.listen))
            .await
            .map_err(|e| {
                DaemonError::Config(format!(
                    "cannot detect the underlay MTU ({e}); pass --underlay-mtu"
                ))
            })?,
    };
    let mut switch = Switch::new(SwitchConfig::default());
    for n in &state.networks {
        switch
            .add_network(n.vni)
            .map_err(|e| DaemonError::Config(format!("state file: {e}")))?;
        if n.encrypted {
            let key = keys::read(&store.path(&key_name(&n.name))).map_err(DaemonError::Config)?;
            let sealer = new_sealer(n, &key).map_err(DaemonError::Config)?;
            switch
                .set_sealer(n.vni, Some(sealer))
                .map_err(|e| DaemonError::Config(e.to_string()))?;
        }
    }
    for p in &state.peers {
        switch
            .add_peer(Vtep(*p))
            .map_err(|e| DaemonError::Config(format!("state file: {e}")))?;
    }
    store.save(&state)?;
    let switch = Arc::new(RwLock::new(switch));
    let dataplane = Dataplane::start(switch.clone(), config.listen, config.port, start)?;
    tracing::info!(
        "underlay {}:{} (MTU {underlay_mtu}), {} networks, {} peers",
        config.listen,
        config.port,
        state.networks.len(),
        state.peers.len()
    );
    let daemon = Arc::new(Daemon {
        switch,
        dataplane,
        store,
        underlay_mtu,
        inner: Mutex::new(Inner {
            state,
            ports: BTreeMap::new(),
            next_port: 1,
        }),
    });
    let ticker = {
        let d = daemon.clone();
        tokio::spawn(async move {
            const TICK: Duration = Duration::from_secs(1);
            loop {
                let next = d.dataplane.tick().map_or(TICK, |soon| soon.min(TICK));
                tokio::time::sleep(next).await;
            }
        })
    };
    // The socket appears only now, when every request can be served.
    let socket = ControlSocket::bind(&config.socket)?;
    tracing::info!("control socket {}", socket.path().display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = socket.serve(daemon.clone()) => {}
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    ticker.abort();
    let _ = ticker.await;
    // Closing every TAP deletes the container interfaces.
    let mut inner = daemon.inner.lock().await;
    for (id, _) in std::mem::take(&mut inner.ports) {
        daemon.dataplane.remove_port(id);
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: T) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| format!("internal: {e}"))
}

impl Handler for Daemon {
    async fn handle(&self, request: Request) -> Result<serde_json::Value, String> {
        let mut inner = self.inner.lock().await;
        match request {
            Request::NetworkCreate(spec) => to_json(self.network_create(&mut inner, spec)?),
            Request::NetworkList => to_json(self.network_list(&inner)),
            Request::NetworkInspect { name } => to_json(self.network_inspect(&inner, &name)?),
            Request::NetworkRemove { name } => to_json(self.network_remove(&mut inner, &name)?),
            Request::NetworkRotateKey { name, key_file } => {
                to_json(self.rotate_key(&inner, &name, &key_file)?)
            }
            Request::Attach(req) => to_json(self.attach(&mut inner, req).await?),
            Request::Detach { netns, network } => {
                to_json(self.detach(&mut inner, &netns, network.as_deref())?)
            }
            Request::PeerAdd { addr } => to_json(self.peer_add(&mut inner, addr)?),
            Request::PeerRemove { addr } => to_json(self.peer_remove(&mut inner, addr)?),
            Request::PeerList => to_json(self.peer_list(&inner)),
            Request::Fdb { network } => to_json(self.fdb(&inner, network.as_deref())?),
            Request::Stats => to_json(self.stats(&inner)),
        }
    }
}

impl Daemon {
    /// The largest container MTU that fits the underlay without fragmenting.
    fn max_mtu(&self, spec: &NetworkSpec) -> u32 {
        let mut overhead = vxlan::IPV4_OVERHEAD as u32;
        if spec.encrypted {
            overhead += SEAL_OVERHEAD as u32;
        }
        self.underlay_mtu.saturating_sub(overhead)
    }

    fn mtu(&self, spec: &NetworkSpec) -> u32 {
        spec.mtu.unwrap_or_else(|| self.max_mtu(spec))
    }

    fn persist(&self, inner: &mut Inner, new: State) -> Result<(), String> {
        self.store.save(&new).map_err(|e| e.to_string())?;
        inner.state = new;
        Ok(())
    }

    fn network<'a>(&self, inner: &'a Inner, name: &str) -> Result<&'a NetworkSpec, String> {
        inner
            .state
            .networks
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = inner
                    .state
                    .networks
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect();
                format!(
                    "no network named '{name}' (networks: {})",
                    list_or_none(&names)
                )
            })
    }

    fn ports_of<'a>(
        &self,
        inner: &'a Inner,
        network: &'a str,
    ) -> impl Iterator<Item = (&'a PortId, &'a Port)> + 'a {
        inner
            .ports
            .iter()
            .filter(move |(_, p)| p.info.network == network)
    }

    fn network_create(
        &self,
        inner: &mut Inner,
        spec: NetworkSpec,
    ) -> Result<NetworkSummary, String> {
        check_name(&spec.name)?;
        if inner.state.networks.iter().any(|n| n.name == spec.name) {
            return Err(format!("a network named '{}' already exists", spec.name));
        }
        if let Some(n) = inner.state.networks.iter().find(|n| n.vni == spec.vni) {
            return Err(format!(
                "VNI {} is already used by network '{}'",
                spec.vni, n.name
            ));
        }
        if let Some(gw) = spec.gateway {
            ipam::assignable(spec.subnet, None, gw).map_err(|e| format!("gateway: {e}"))?;
        }
        let sealer = match (&spec.encrypted, &spec.key_file) {
            (false, None) => None,
            (true, Some(path)) => {
                let key = keys::read(path)?;
                Some((new_sealer(&spec, &key)?, key))
            }
            _ => return Err("--encrypted and --key-file go together".into()),
        };
        let max = self.max_mtu(&spec);
        if let Some(m) = spec.mtu {
            if m > max {
                return Err(format!(
                    "MTU {m} does not fit: the underlay MTU {} leaves at most {max} for containers",
                    self.underlay_mtu
                ));
            }
            if m < 68 {
                return Err(format!("MTU {m} is below the IPv4 minimum of 68"));
            }
        }
        let mut new = inner.state.clone();
        new.networks.push(spec.clone());
        if let Some((_, key)) = &sealer {
            // The daemon keeps its own copy, so a restart does not depend on the user's file.
            self.store
                .write_atomic(&key_name(&spec.name), keys::encode(key).as_bytes(), 0o600)
                .map_err(|e| e.to_string())?;
        }
        {
            let mut sw = write(&self.switch);
            sw.add_network(spec.vni).map_err(|e| e.to_string())?;
            if let Some((s, _)) = sealer {
                sw.set_sealer(spec.vni, Some(s))
                    .map_err(|e| e.to_string())?;
            }
        }
        if let Err(e) = self.persist(inner, new) {
            let _ = write(&self.switch).remove_network(spec.vni);
            let _ = self.store.remove(&key_name(&spec.name));
            return Err(e);
        }
        tracing::info!(
            "network {} created (VNI {}, {})",
            spec.name,
            spec.vni,
            spec.subnet
        );
        Ok(self.summary(inner, &spec))
    }

    fn summary(&self, inner: &Inner, spec: &NetworkSpec) -> NetworkSummary {
        NetworkSummary {
            name: spec.name.clone(),
            vni: spec.vni,
            subnet: spec.subnet,
            gateway: spec.gateway,
            mtu: self.mtu(spec),
            encrypted: spec.encrypted,
            ports: self.ports_of(inner, &spec.name).count(),
        }
    }

    fn network_list(&self, inner: &Inner) -> Vec<NetworkSummary> {
        inner
            .state
            .networks
            .iter()
            .map(|n| self.summary(inner, n))
            .collect()
    }

    fn network_inspect(&self, inner: &Inner, name: &str) -> Result<NetworkDetail, String> {
        let spec = self.network(inner, name)?;
        Ok(NetworkDetail {
            name: spec.name.clone(),
            vni: spec.vni,
            subnet: spec.subnet,
            gateway: spec.gateway,
            mtu: self.mtu(spec),
            encrypted: spec.encrypted,
            ports: self
                .ports_of(inner, name)
                .map(|(_, p)| p.info.clone())
                .collect(),
            traffic: read(&self.switch)
                .network_traffic(spec.vni)
                .unwrap_or_default(),
        })
    }

    fn network_remove(&self, inner: &mut Inner, name: &str) -> Result<NetworkSummary, String> {
        let spec = self.network(inner, name)?.clone();
        let users: Vec<String> = self
            .ports_of(inner, name)
            .map(|(_, p)| format!("{} ({})", p.info.netns, p.info.ifname))
            .collect();
        if !users.is_empty() {
            return Err(format!(
                "network '{name}' still has ports: {}; detach them first (vswitch detach NETNS --network {name})",
                users.join(", ")
            ));
        }
        let summary = self.summary(inner, &spec);
        let mut new = inner.state.clone();
        new.networks.retain(|n| n.name != name);
        self.persist(inner, new)?;
        write(&self.switch)
            .remove_network(spec.vni)
            .map_err(|e| e.to_string())?;
        let _ = self.store.remove(&key_name(name));
        Ok(summary)
    }

    fn rotate_key(
        &self,
        inner: &Inner,
        name: &str,
        key_file: &std::path::Path,
    ) -> Result<serde_json::Value, String> {
        let spec = self.network(inner, name)?;
        if !spec.encrypted {
            return Err(format!(
                "network '{name}' is not encrypted, so it has no key to rotate"
            ));
        }
        let key = keys::read(key_file)?;
        let sw = read(&self.switch);
        let sealer = sw
            .network(spec.vni)
            .and_then(|n| n.sealer())
            .ok_or_else(|| format!("network '{name}' has no sealer (internal)"))?;
        let peers: Vec<SocketAddr> = sw.peers().map(|v| v.0).collect();
        sealer
            .rotate(&key, &peers, self.dataplane.now())
            .map_err(|e| format!("cannot rotate the key of '{name}': {e}"))?;
        let sealer = sealer.clone();
        drop(sw);
        // Tell the peers at once; the ticker keeps announcing until the rotation is over.
        self.dataplane.tick();
        self.store
            .write_atomic(&key_name(name), keys::encode(&key).as_bytes(), 0o600)
            .map_err(|e| e.to_string())?;
        Ok(seal_status(&sealer))
    }

    async fn attach(&self, inner: &mut Inner, req: AttachRequest) -> Result<PortInfo, String> {
        let spec = match &req.network {
            Some(name) => self.network(inner, name)?.clone(),
            None => match inner.state.networks.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(
                        "there are no networks yet: create one with `vswitch network create`"
                            .into(),
                    )
                }
                many => {
                    let names: Vec<_> = many.iter().map(|n| n.name.as_str()).collect();
                    return Err(format!(
                        "several networks exist ({}): say which with --network",
                        names.join(", ")
                    ));
                }
            },
        };
        let ns = NetnsRef::resolve(&req.netns).map_err(|e| e.to_string())?;
        for (_, p) in self.ports_of(inner, &spec.name) {
            if p.ns.is_same(&ns).unwrap_or(false) {
                return Err(format!(
                    "namespace '{}' is already attached to network '{}' (as {})",
                    req.netns, spec.name, p.info.ifname
                ));
            }
        }
        let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
        if netns::interface_exists_in(&ns, &ifname)
            .await
            .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "namespace '{}' already has an interface named '{ifname}'; pick another with --ifname",
                req.netns
            ));
        }
        let taken: std::collections::BTreeSet<Ipv4Addr> = self
            .ports_of(inner, &spec.name)
            .filter_map(|(_, p)| p.info.ip.as_deref())
            .filter_map(|ip| ip.split('/').next()?.parse().ok())
            .collect();
        if let Some(ip) = req.ip {
            ipam::assignable(spec.subnet, spec.gateway, ip)?;
            if let Some(prefix) = req.prefix {
                if prefix != spec.subnet.prefix_len() {
                    return Err(format!(
                        "{ip}/{prefix} does not match the network's subnet {}: use /{}",
                        spec.subnet,
                        spec.subnet.prefix_len()
                    ));
                }
            }
            if taken.contains(&ip) {
                return Err(format!("{ip} is already taken on network '{}'", spec.name));
            }
        }
        let mac = req.mac.unwrap_or_else(random_mac);
        if inner
            .ports
            .values()
            .any(|p| p.info.mac == mac && p.info.network == spec.name)
        {
            return Err(format!(
                "MAC {mac} is already used on network '{}'",
                spec.name
            ));
        }
        let id = PortId(inner.next_port);
        // Choose the address: the requested one or the next free one, probed on the overlay.
        let ip = match req.ip {
            Some(ip) => {
                if let Some(owner) = probe::conflict(self, spec.vni, mac, ip).await {
                    return Err(format!(
                        "{ip} is already in use on the overlay (by {owner})"
                    ));
                }
                ip
            }
            None => {
                let mut taken = taken;
                loop {
                    let Some(ip) = ipam::next_free(spec.subnet, spec.gateway, &taken) else {
                        return Err(format!(
                            "network '{}' has no free address left in {}",
                            spec.name, spec.subnet
                        ));
                    };
                    match probe::conflict(self, spec.vni, mac, ip).await {
                        None => break ip,
                        Some(owner) => {
                            tracing::info!("{ip} answered by {owner}: trying the next address");
                            taken.insert(ip);
                        }
                    }
                }
            }
        };
        let mtu = self.mtu(&spec);
        let tap_name = format!("vsw{}", id.0);
        // The virtio-net header and TSO/checksum offloads: the container's kernel sends us
        // 64 KiB TCP superframes with partial checksums and takes coalesced ones back (see
        // `dataplane` "Offloads").
        let tap = Tap::create(&tap_name, TapOptions::new().vnet_hdr(true))
            .and_then(|tap| {
                tap.set_offload(Offload::CSUM | Offload::TSO4 | Offload::TSO6 | Offload::TSO_ECN)?;
                Ok(tap)
            })
            .map_err(|e| format!("cannot create TAP {tap_name}: {e}"))?;
        let tap = Arc::new(tap);
        let cfg = PortConfig {
            ifname: ifname.clone(),
            mac: mac.0,
            mtu,
            address: Some((IpAddr::V4(ip), spec.subnet.prefix_len())),
            gateway: spec.gateway.map(IpAddr::V4),
        };
        netns::attach_port(tap.name(), &ns, &cfg)
            .await
            .map_err(|e| e.to_string())?;
        write(&self.switch)
            .add_port(id, spec.vni)
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.dataplane.add_port(id, PortSink::Tap(tap.clone())) {
            let _ = write(&self.switch).remove_port(id);
            return Err(format!("cannot start the port: {e}"));
        }
        inner.next_port += 1;
        let info = PortInfo {
            port: id.0,
            network: spec.name.clone(),
            netns: req.netns.clone(),
            ifname,
            mac,
            ip: Some(format!("{ip}/{}", spec.subnet.prefix_len())),
            mtu,
        };
        tracing::info!(
            "attached {} to {}: {} {} {:?}",
            info.netns,
            info.network,
            info.ifname,
            mac,
            info.ip
        );
        inner.ports.insert(
            id,
            Port {
                info: info.clone(),
                ns,
                _tap: tap,
            },
        );
        Ok(info)
    }

    fn detach(
        &self,
        inner: &mut Inner,
        netns: &str,
        network: Option<&str>,
    ) -> Result<Vec<PortInfo>, String> {
        let ns = NetnsRef::resolve(netns).map_err(|e| e.to_string())?;
        if let Some(n) = network {
            self.network(inner, n)?;
        }
        let ids: Vec<PortId> = inner
            .ports
            .iter()
            .filter(|(_, p)| {
                network.is_none_or(|n| p.info.network == n) && p.ns.is_same(&ns).unwrap_or(false)
            })
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Err(match network {
                Some(n) => format!("namespace '{netns}' is not attached to network '{n}'"),
                None => format!("namespace '{netns}' is not attached to any network"),
            });
        }
        if network.is_none() && ids.len() > 1 {
            return Err(format!(
                "namespace '{netns}' is attached to several networks: say which with --network"
            ));
        }
        let mut out = Vec::new();
        for id in ids {
            self.dataplane.remove_port(id);
            let _ = write(&self.switch).remove_port(id);
            if let Some(p) = inner.ports.remove(&id) {
                out.push(p.info);
            }
        }
        Ok(out)
    }

    fn peer_add(&self, inner: &mut Inner, addr: SocketAddr) -> Result<PeerInfo, String> {
        if let Some(p) = inner.state.peers.iter().find(|p| p.ip() == addr.ip()) {
            return Err(format!("peer {} already exists (as {p})", addr.ip()));
        }
        let mut new = inner.state.clone();
        new.peers.push(addr);
        write(&self.switch)
            .add_peer(Vtep(addr))
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.persist(inner, new) {
            let _ = write(&self.switch).remove_peer(addr.ip());
            return Err(e);
        }
        Ok(PeerInfo {
            addr,
            traffic: Default::default(),
        })
    }

    fn peer_remove(&self, inner: &mut Inner, addr: SocketAddr) -> Result<PeerInfo, String> {
        let Some(existing) = inner
            .state
            .peers
            .iter()
            .find(|p| **p == addr || (p.ip() == addr.ip() && addr.port() == vxlan::UDP_PORT))
            .copied()
        else {
            let peers: Vec<String> = inner.state.peers.iter().map(|p| p.to_string()).collect();
            let names: Vec<&str> = peers.iter().map(String::as_str).collect();
            return Err(format!("no peer {addr} (peers: {})", list_or_none(&names)));
        };
        let mut new = inner.state.clone();
        new.peers.retain(|p| *p != existing);
        let traffic = read(&self.switch)
            .peer_traffic(existing.ip())
            .unwrap_or_default();
        self.persist(inner, new)?;
        let _ = write(&self.switch).remove_peer(existing.ip());
        Ok(PeerInfo {
            addr: existing,
            traffic,
        })
    }

    fn peer_list(&self, inner: &Inner) -> Vec<PeerInfo> {
        let s = read(&self.switch);
        inner
            .state
            .peers
            .iter()
            .map(|p| PeerInfo {
                addr: *p,
                traffic: s.peer_traffic(p.ip()).unwrap_or_default(),
            })
            .collect()
    }

    fn fdb(&self, inner: &Inner, network: Option<&str>) -> Result<Vec<FdbRow>, String> {
        if let Some(n) = network {
            self.network(inner, n)?;
        }
        let now = self.dataplane.now();
        let s = read(&self.switch);
        let mut rows = Vec::new();
        for spec in inner
            .state
            .networks
            .iter()
            .filter(|n| network.is_none_or(|x| n.name == x))
        {
            for e in s.fdb_entries(spec.vni) {
                let (kind, port, vtep, location) = match e.location {
                    Location::Port(id) => {
                        let what = inner
                            .ports
                            .get(&id)
                            .map(|p| {
                                format!("port {} (netns {}, {})", id.0, p.info.netns, p.info.ifname)
                            })
                            .unwrap_or_else(|| format!("port {}", id.0));
                        ("port", Some(id.0), None, what)
                    }
                    Location::Vtep(v) => ("vtep", None, Some(v.0), format!("vtep {}", v.0)),
                };
                rows.push(FdbRow {
                    network: spec.name.clone(),
                    vni: spec.vni,
                    mac: e.mac,
                    kind: kind.into(),
                    port,
                    vtep,
                    location,
                    age_secs: now.saturating_sub(e.last_seen).as_secs_f64(),
                });
            }
        }
        Ok(rows)
    }

    fn stats(&self, inner: &Inner) -> Stats {
        let s = read(&self.switch);
        let networks = inner
            .state
            .networks
            .iter()
            .filter_map(|spec| {
                let n = s.network(spec.vni)?;
                let c = &n.fdb.counters;
                let ld =
                    |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                Some(NetworkStats {
                    name: spec.name.clone(),
                    vni: spec.vni,
                    traffic: n.traffic.snapshot(),
                    fdb: FdbStats {
                        entries: n.fdb.len(),
                        capacity: n.fdb.capacity(),
                        learned: ld(&c.learned),
                        moved: ld(&c.moved),
                        evicted: ld(&c.evicted),
                        aged: ld(&c.aged),
                    },
                    seal: n.sealer().map(|s| seal_status(s)),
                })
            })
            .collect();
        let ports = inner
            .ports
            .iter()
            .map(|(id, p)| PortStats {
                port: id.0,
                network: p.info.network.clone(),
                netns: p.info.netns.clone(),
                ifname: p.info.ifname.clone(),
                traffic: s.port_traffic(*id).unwrap_or_default(),
            })
            .collect();
        Stats {
            drops: s.drops.snapshot(),
            networks,
            ports,
            peers: self.peer_list(inner),
            dataplane: self.dataplane.stats(),
        }
    }
}

/// The daemon's copy of a network's key, in the state dir.
fn key_name(network: &str) -> String {
    format!("key-{network}.hex")
}

/// A sealer for a network, with a sender id of its own (fresh for every sealer: see
/// `core::seal`).
fn new_sealer(spec: &NetworkSpec, key: &NetworkKey) -> Result<Sealer<SocketAddr>, String> {
    let rng = ring::rand::SystemRandom::new();
    let sender = generate_sender_id(&rng).map_err(|e| e.to_string())?;
    Sealer::new(spec.vni.get(), key, sender, SealConfig::default()).map_err(|e| e.to_string())
}

/// Sealing counters and rotation state, for `stats` and `rotate-key`.
fn seal_status(s: &Sealer<SocketAddr>) -> serde_json::Value {
    // Drops are not here: the switch counts each once, by reason, in the network's traffic.
    let st = s.stats();
    let status = s.status();
    serde_json::json!({
        "sending_key": status.sending.0,
        "accept_key": status.accept_id.0,
        "accepted_keys": status.accepted.iter().map(|k| k.0).collect::<Vec<_>>(),
        "phase": status.phase.to_string(),
        "waiting_for": status.waiting_for.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "sealed": st.sealed(),
        "opened": st.opened(),
        "announced": st.announced(),
        "announcements_opened": st.announcements_opened(),
        "senders": s.known_senders(),
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid network name (1-64 letters, digits, '-', '_' or '.')"
        ))
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A random locally administered unicast MAC.
fn random_mac() -> Mac {
    let mut b = [0u8; 6];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    Mac::local(b)
}
