//! Docker's remote network and IPAM driver (`vswitch daemon --docker-plugin`): HTTP/1.1 with
//! JSON bodies on a Unix socket that dockerd finds under `/run/docker/plugins/`.
//!
//! The plugin holds no network logic of its own: every request that changes something becomes
//! one of the daemon's own [`Request`]s, served by the same [`Handler`] as the control socket,
//! so `docker network create` and `vswitch network create` obey the same rules and refuse with
//! the same messages (inside Docker's `{"Err": …}`).
//!
//! Docker moves a driver's interface into the container itself (`Join` names it), so `Join`
//! attaches a *hand-off* port: the TAP is made, addressed to the switch and started in the
//! daemon's own namespace under a temporary name; Docker moves and renames it, and the daemon
//! goes on serving it through its file descriptor, which does not care where the TAP lives.
//!
//! What only Docker needs between its calls is kept here, in memory: the endpoints created
//! but not yet joined, and the addresses the IPAM handed out per pool.

pub mod protocol;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::Mutex;

use crate::control::server::Handler;
use crate::control::{Request, Response};
use crate::core::ipam;
use protocol::{Endpoint, PluginError};

/// Where dockerd looks for plugin sockets; the socket is `vswitch.sock` there.
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/vswitch.sock";

/// The content type of every reply (Docker's plugin protocol, version 1).
const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// An IPAM pool: the subnet of one Docker network, and the addresses handed out from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pool {
    subnet: Ipv4Net,
    /// Where addresses are chosen from (`--ip-range`, or the subnet): hosts sharing a network
    /// in file-store mode each take their own range.
    range: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    handed: BTreeSet<Ipv4Addr>,
}

#[derive(Debug, Default)]
struct State {
    /// Docker network ID → vswitch network, where `-o name=` chose it (kept in `names_file`).
    names: BTreeMap<String, String>,
    endpoints: BTreeMap<String, Endpoint>,
    pools: BTreeMap<String, Pool>,
    next_pool: u64,
}

/// The plugin: Docker's calls, served by the daemon's `handler`.
#[derive(Debug)]
pub struct Plugin<H> {
    handler: Arc<H>,
    state: Mutex<State>,
    names_file: Option<PathBuf>,
}

impl<H: Handler> Plugin<H> {
    /// A plugin that keeps the networks' names (`-o name=`) in `names_file`, if given.
    pub fn new(handler: Arc<H>, names_file: Option<PathBuf>) -> Self {
        let names = names_file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default();
        Plugin {
            handler,
            state: Mutex::new(State {
                names,
                ..State::default()
            }),
            names_file,
        }
    }

    /// The vswitch network of Docker network `id`.
    async fn network_of(&self, id: &str) -> String {
        let named = self.state.lock().await.names.get(id).cloned();
        named.unwrap_or_else(|| protocol::network_name(id))
    }

    /// Records (or, with `None`, forgets) the name `-o name=` gave Docker network `id`.
    async fn name(&self, id: &str, name: Option<String>) -> Result<(), PluginError> {
        let mut s = self.state.lock().await;
        match name {
            Some(n) => s.names.insert(id.to_owned(), n),
            None => s.names.remove(id),
        };
        let Some(file) = &self.names_file else {
            return Ok(());
        };
        let text = serde_json::to_vec(&s.names).unwrap_or_default();
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, file))
            .map_err(|e| {
                PluginError::new(format!(
                    "vswitch cannot record the network's name in {}: {e}",
                    file.display()
                ))
            })
    }

    /// `CreateNetwork`. With `-o name=` the network may exist already (created by another
    /// host's Docker, in cluster mode): the same VNI, subnet and encryption join it.
    async fn create_network(&self, create: protocol::CreateNetwork) -> Result<Value, PluginError> {
        let spec = protocol::network_spec(&create)?;
        let named = spec.name != protocol::network_name(&create.network_id);
        if let Err(e) = self.daemon(Request::NetworkCreate(spec.clone())).await {
            let name = spec.name.clone();
            let same = match self.handler.handle(Request::NetworkInspect { name }).await {
                Ok(Response::NetworkDetail(d)) => {
                    (d.vni, d.subnet, d.encrypted) == (spec.vni, spec.subnet, spec.encrypted)
                }
                _ => false,
            };
            if !(named && same) {
                return Err(e);
            }
        }
        if named {
            self.name(&create.network_id, Some(spec.name)).await?;
        }
        Ok(json!({}))
    }

    async fn daemon(&self, request: Request) -> Result<Response, PluginError> {
        self.handler
            .handle(request)
            .await
            .map_err(|e| PluginError::new(format!("vswitch: {e}")))
    }

    /// Serves one call: `method` is the path without its `/`, `body` Docker's JSON.
    pub async fn call(&self, method: &str, body: &[u8]) -> Result<Value, PluginError> {
        match method {
            "Plugin.Activate" => Ok(json!({ "Implements": ["NetworkDriver", "IpamDriver"] })),
            // Local scope: each host's Docker keeps its own record of the network (create it
            // on every host with the same -o vni); the overlay itself spans the hosts.
            "NetworkDriver.GetCapabilities" => {
                Ok(json!({ "Scope": "local", "ConnectivityScope": "global" }))
            }
            "NetworkDriver.CreateNetwork" => self.create_network(decode(body)?).await,
            "NetworkDriver.DeleteNetwork" => {
                let r: protocol::NetworkRef = decode(body)?;
                let name = self.network_of(&r.network_id).await;
                let removed = self
                    .daemon(Request::NetworkRemove { name: name.clone() })
                    .await;
                // Another host's Docker removed the shared network first (cluster mode).
                if let Err(e) = removed {
                    if self
                        .handler
                        .handle(Request::NetworkInspect { name })
                        .await
                        .is_ok()
                    {
                        return Err(e);
                    }
                }
                self.name(&r.network_id, None).await?;
                Ok(json!({}))
            }
            "NetworkDriver.CreateEndpoint" => {
                let r: protocol::EndpointRef = decode(body)?;
                let ep = protocol::endpoint(&r, self.network_of(&r.network_id).await)?;
                self.daemon(Request::NetworkInspect {
                    name: ep.network.clone(),
                })
                .await?;
                self.state.lock().await.endpoints.insert(r.endpoint_id, ep);
                Ok(json!({ "Interface": {} }))
            }
            "NetworkDriver.EndpointOperInfo" => Ok(json!({ "Value": {} })),
            "NetworkDriver.DeleteEndpoint" => {
                let r: protocol::EndpointRef = decode(body)?;
                self.state.lock().await.endpoints.remove(&r.endpoint_id);
                Ok(json!({}))
            }
            "NetworkDriver.Join" => self.join(decode(body)?).await,
            "NetworkDriver.Leave" => {
                let r: protocol::EndpointRef = decode(body)?;
                self.daemon(Request::Detach {
                    netns: protocol::endpoint_label(&r.endpoint_id),
                    network: Some(self.network_of(&r.network_id).await),
                })
                .await?;
                Ok(json!({}))
            }
            "NetworkDriver.DiscoverNew"
            | "NetworkDriver.DiscoverDelete"
            | "NetworkDriver.ProgramExternalConnectivity"
            | "NetworkDriver.RevokeExternalConnectivity"
            | "NetworkDriver.AllocateNetwork"
            | "NetworkDriver.FreeNetwork" => Ok(json!({})),
            "IpamDriver.GetCapabilities" => Ok(json!({ "RequiresMACAddress": false })),
            "IpamDriver.GetDefaultAddressSpaces" => Ok(json!({
                "LocalDefaultAddressSpace": "vswitch",
                "GlobalDefaultAddressSpace": "vswitch",
            })),
            "IpamDriver.RequestPool" => self.request_pool(decode(body)?).await,
            "IpamDriver.ReleasePool" => {
                let r: protocol::PoolRef = decode(body)?;
                self.state.lock().await.pools.remove(&r.pool_id);
                Ok(json!({}))
            }
            "IpamDriver.RequestAddress" => self.request_address(decode(body)?).await,
            "IpamDriver.ReleaseAddress" => {
                let r: protocol::ReleaseAddress = decode(body)?;
                let ip = protocol::address_of(&r.address)?;
                if let Some(p) = self.state.lock().await.pools.get_mut(&r.pool_id) {
                    p.handed.remove(&ip);
                }
                Ok(json!({}))
            }
            other => Err(PluginError::new(format!(
                "vswitch does not implement '{other}': it is a NetworkDriver and IpamDriver plugin"
            ))),
        }
    }

    async fn join(&self, r: protocol::EndpointRef) -> Result<Value, PluginError> {
        let ep = self
            .state
            .lock()
            .await
            .endpoints
            .get(&r.endpoint_id)
            .cloned()
            .ok_or_else(|| {
                PluginError::new(format!(
                    "vswitch has no endpoint {} (was the vswitch daemon restarted between \
                     creating and joining it?): start the container again",
                    r.endpoint_id
                ))
            })?;
        let Response::NetworkDetail(net) = self
            .daemon(Request::NetworkInspect {
                name: ep.network.clone(),
            })
            .await?
        else {
            return Err(PluginError::new(
                "vswitch: unexpected reply to network inspect",
            ));
        };
        let req = protocol::attach(&r.endpoint_id, &ep);
        let tap = req.ifname.clone().unwrap_or_default();
        self.daemon(Request::Attach(req)).await?;
        Ok(protocol::join_reply(&tap, net.gateway))
    }

    async fn request_pool(&self, r: protocol::RequestPool) -> Result<Value, PluginError> {
        if r.v6 {
            return Err(PluginError::new(
                "vswitch networks are IPv4 only: create the network without --ipv6",
            ));
        }
        let subnet: Ipv4Net = r.pool.parse().map_err(|_| {
            PluginError::new(match r.pool.as_str() {
                "" => "vswitch's IPAM needs the subnet: pass --subnet, e.g. --subnet 10.10.0.0/24"
                    .to_owned(),
                p => format!("'{p}' is no IPv4 subnet: pass --subnet like 10.10.0.0/24"),
            })
        })?;
        let range = match r.sub_pool.as_str() {
            "" => subnet,
            sub => sub
                .parse::<Ipv4Net>()
                .ok()
                .filter(|range| subnet.contains(range))
                .ok_or_else(|| {
                    PluginError::new(format!(
                        "--ip-range {sub} is not within --subnet {subnet}: pick a range inside it"
                    ))
                })?,
        };
        let mut s = self.state.lock().await;
        s.next_pool += 1;
        // Two networks may share a subnet (each is its own VNI): one pool each. The ID says
        // what the pool is, so a restarted daemon serves pools it did not see created.
        let id = format!("vswitch:{subnet}:{range}:{}", s.next_pool);
        s.pools.insert(
            id.clone(),
            Pool {
                subnet,
                range,
                gateway: None,
                handed: BTreeSet::new(),
            },
        );
        Ok(json!({ "PoolID": id, "Pool": subnet.to_string(), "Data": {} }))
    }

    /// Addresses the daemon's ports (and, in cluster mode, every host's endpoints) hold on
    /// networks with this subnet: what a restarted plugin no longer remembers handing out. A
    /// pool does not know its network, so a choice skips them on every network with the subnet
    /// (a requested address is checked on its own network, by attach).
    async fn held(&self, subnet: Ipv4Net) -> Result<BTreeSet<Ipv4Addr>, PluginError> {
        let Response::Networks(nets) = self.daemon(Request::NetworkList).await? else {
            return Ok(BTreeSet::new());
        };
        let mut held = BTreeSet::new();
        for n in nets.into_iter().filter(|n| n.subnet == subnet) {
            held.extend(n.gateway);
            let name = n.name;
            if let Response::NetworkDetail(d) =
                self.daemon(Request::NetworkInspect { name }).await?
            {
                let ports = d.ports.iter().filter_map(|p| p.ip.as_deref());
                held.extend(ports.filter_map(|ip| protocol::address_of(ip).ok()));
                held.extend(d.endpoints.iter().map(|e| e.ip));
            }
        }
        Ok(held)
    }

    async fn request_address(&self, r: protocol::RequestAddress) -> Result<Value, PluginError> {
        let gateway = r.options.get("RequestAddressType").map(String::as_str)
            == Some(protocol::GATEWAY_REQUEST);
        let subnet = match self.state.lock().await.pools.get(&r.pool_id) {
            Some(p) => p.subnet,
            None => pool_of(&r.pool_id)?.subnet,
        };
        let mut taken = match gateway {
            true => BTreeSet::new(),
            false => self.held(subnet).await?,
        };
        let mut s = self.state.lock().await;
        if !s.pools.contains_key(&r.pool_id) {
            s.pools.insert(r.pool_id.clone(), pool_of(&r.pool_id)?);
        }
        let Some(pool) = s.pools.get_mut(&r.pool_id) else {
            return Err(PluginError::new("vswitch: the pool went away meanwhile"));
        };
        taken.extend(&pool.handed);
        // The gateway comes from the subnet; containers' addresses from the range.
        let from = if gateway { pool.subnet } else { pool.range };
        let ip = match r.address.as_str() {
            "" => ipam::next_free(from, pool.gateway, &taken).ok_or_else(|| {
                PluginError::new(format!(
                    "vswitch: no free address left in {from}: use a larger --subnet or --ip-range"
                ))
            })?,
            a => {
                let ip = protocol::address_of(a)?;
                if !gateway {
                    ipam::assignable(pool.subnet, pool.gateway, ip)
                        .map_err(|e| PluginError::new(format!("vswitch: {e}")))?;
                }
                if pool.handed.contains(&ip) || pool.gateway == Some(ip) {
                    return Err(PluginError::new(format!(
                        "vswitch: {ip} is already in use on this network: pick another --ip"
                    )));
                }
                ip
            }
        };
        match gateway {
            true => pool.gateway = Some(ip),
            false => {
                pool.handed.insert(ip);
            }
        }
        let cidr = format!("{ip}/{}", pool.subnet.prefix_len());
        Ok(json!({ "Address": cidr, "Data": {} }))
    }

    async fn http(&self, req: hyper::Request<Incoming>) -> HttpResponse<Full<Bytes>> {
        let method = req.uri().path().trim_start_matches('/').to_owned();
        let reply = match req.into_body().collect().await {
            Ok(body) => self.call(&method, &body.to_bytes()).await,
            Err(e) => Err(PluginError::new(format!("cannot read the request: {e}"))),
        };
        let (status, body) = match reply {
            Ok(v) => (StatusCode::OK, v),
            Err(e) => {
                tracing::info!("docker {method}: refused: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!(protocol::ErrBody { err: e.0 }),
                )
            }
        };
        let mut resp = HttpResponse::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(CONTENT_TYPE),
        );
        resp
    }
}

/// A pool by its ID (`vswitch:SUBNET:RANGE:N`), as [`Plugin::request_pool`] made it.
fn pool_of(id: &str) -> Result<Pool, PluginError> {
    let mut parts = id.split(':').skip(1).map(str::parse::<Ipv4Net>);
    match (id.starts_with("vswitch:"), parts.next(), parts.next()) {
        (true, Some(Ok(subnet)), Some(Ok(range))) => Ok(Pool {
            subnet,
            range,
            gateway: None,
            handed: BTreeSet::new(),
        }),
        _ => Err(PluginError::new(format!(
            "'{id}' is no vswitch address pool: create the network with --ipam-driver vswitch"
        ))),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, PluginError> {
    serde_json::from_slice(body)
        .map_err(|e| PluginError::new(format!("vswitch cannot read Docker's request: {e}")))
}

/// The plugin's socket, bound (its directory made) and ready to serve.
#[derive(Debug)]
pub struct PluginSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl PluginSocket {
    /// Binds `path`, replacing a stale socket a previous daemon left there.
    pub fn bind(path: &Path) -> std::io::Result<PluginSocket> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        // Whoever can connect can attach ports: root's (dockerd's) alone.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(PluginSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves Docker's calls until the task is dropped, one connection per task.
    pub async fn serve<H: Handler>(self, handler: Arc<H>, names_file: Option<PathBuf>) {
        let plugin = Arc::new(Plugin::new(handler, names_file));
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("docker plugin socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let plugin = plugin.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let plugin = plugin.clone();
                    async move { Ok::<_, std::convert::Infallible>(plugin.http(req).await) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!("docker plugin connection: {e}");
                }
            });
        }
    }
}

/// `--docker-plugin`: serves Docker on `path` (if given) until the task is aborted, keeping
/// the networks' names in `state_dir`.
pub fn spawn<H: Handler>(
    path: Option<&Path>,
    state_dir: &Path,
    handler: &Arc<H>,
) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(path) = path else { return Ok(None) };
    let socket = PluginSocket::bind(path)?;
    tracing::info!("docker plugin socket {}", socket.path().display());
    let names = Some(state_dir.join(NAMES_FILE));
    Ok(Some(tokio::spawn(socket.serve(handler.clone(), names))))
}

/// Where the plugin keeps Docker network IDs' vswitch names, in the state dir.
pub const NAMES_FILE: &str = "docker-networks.json";

impl Drop for PluginSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests;
