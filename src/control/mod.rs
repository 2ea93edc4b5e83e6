//! The daemon's API: newline-delimited JSON over a Unix stream socket. One request per line, one
//! reply per line. The types here are shared by the daemon (server) and the CLI (client), so the
//! two cannot drift apart.
//!
//! Values are typed (`Vni`, `Mac`, `Ipv4Net`, …): a request with an invalid value fails to
//! decode, and the daemon answers with an error naming it.

pub mod client;
pub mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::core::TrafficSnapshot;
use crate::wire::{Mac, Vni};

/// The longest request line the daemon reads.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    NetworkCreate(NetworkSpec),
    NetworkList,
    NetworkInspect {
        name: String,
    },
    NetworkRemove {
        name: String,
    },
    NetworkRotateKey {
        name: String,
        key_file: PathBuf,
    },
    Attach(AttachRequest),
    Detach {
        netns: String,
        network: Option<String>,
    },
    PeerAdd {
        addr: SocketAddr,
    },
    PeerRemove {
        addr: SocketAddr,
    },
    PeerList,
    Fdb {
        network: Option<String>,
    },
    Stats,
    HostList,
}

/// A network as the user defines it (the state store has its own record type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub name: String,
    pub vni: Vni,
    pub subnet: Ipv4Net,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// An explicit container MTU; the default follows the underlay.
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub encrypted: bool,
    /// Where the key was read from (encrypted networks only).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// No egress: containers reach their network and its gateway, nothing outside.
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    pub netns: String,
    pub network: Option<String>,
    /// An address with or without a prefix length; without, the subnet's is used.
    pub ip: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub mac: Option<Mac>,
    pub ifname: Option<String>,
    /// Let the port send from any MAC and address.
    #[serde(default)]
    pub no_port_security: bool,
    /// The container's DNS name (default: the netns name, when it is a named namespace).
    #[serde(default)]
    pub name: Option<String>,
    /// More DNS names for the container.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Do not write the namespace's resolv.conf.
    #[serde(default)]
    pub no_dns: bool,
    /// The container runtime's id for the container (CNI `CNI_CONTAINERID`), recorded with the
    /// port so that CNI DEL and GC find it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Leave the TAP in the daemon's own namespace, named `ifname`, for the caller to move
    /// (Docker moves it into the sandbox itself); `netns` is then only the port's label.
    #[serde(default)]
    pub handoff: bool,
}

/// The daemon's answer on the wire: `{"ok": RESPONSE}` or `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(Response),
    Error(String),
}

/// A reply as read off the wire, before its body is decoded by the request it answers (the
/// body's shape depends on the request, not on a tag of its own).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireReply {
    Ok(serde_json::Value),
    Error(String),
}

/// What the daemon answers a request with. Serialized without a tag: `--json` prints exactly
/// the body README documents for each command.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// `network create`, `network rm`.
    Network(NetworkSummary),
    /// `network ls`.
    Networks(Vec<NetworkSummary>),
    /// `network inspect`.
    NetworkDetail(NetworkDetail),
    /// `network rotate-key`: where the rotation stands.
    Rotation(SealStatus),
    /// `attach`.
    Port(PortInfo),
    /// `detach`.
    Ports(Vec<PortInfo>),
    /// `peer add`, `peer rm`.
    Peer(PeerInfo),
    /// `peer ls`.
    Peers(Vec<PeerInfo>),
    /// `fdb`.
    Fdb(Vec<FdbRow>),
    /// `stats`.
    Stats(Box<Stats>),
    /// `host ls`.
    Hosts(Vec<HostInfo>),
}

impl Response {
    /// Decodes the body of an `ok` reply to `request`.
    pub fn decode(
        request: &Request,
        body: serde_json::Value,
    ) -> Result<Response, serde_json::Error> {
        use serde_json::from_value as v;
        Ok(match request {
            Request::NetworkCreate(_) | Request::NetworkRemove { .. } => {
                Response::Network(v(body)?)
            }
            Request::NetworkList => Response::Networks(v(body)?),
            Request::NetworkInspect { .. } => Response::NetworkDetail(v(body)?),
            Request::NetworkRotateKey { .. } => Response::Rotation(v(body)?),
            Request::Attach(_) => Response::Port(v(body)?),
            Request::Detach { .. } => Response::Ports(v(body)?),
            Request::PeerAdd { .. } | Request::PeerRemove { .. } => Response::Peer(v(body)?),
            Request::PeerList => Response::Peers(v(body)?),
            Request::Fdb { .. } => Response::Fdb(v(body)?),
            Request::Stats => Response::Stats(v(body)?),
            Request::HostList => Response::Hosts(v(body)?),
        })
    }
}

/// An encrypted network's sealing state (`stats` per network, and `rotate-key`'s reply).
/// Fields are in alphabetical order, as the JSON has always had them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    /// The key id advertised as the newest this host accepts.
    pub accept_key: u8,
    /// Every key id this host opens, oldest first.
    pub accepted_keys: Vec<u8>,
    /// Key announcements this host sent (each to every peer) during rotations.
    #[serde(default)]
    pub announced: u64,
    /// Key announcements received and opened (included in `opened`).
    #[serde(default)]
    pub announcements_opened: u64,
    /// Handshake messages sent that only answered a peer's challenge.
    #[serde(default)]
    pub answers_sent: u64,
    /// Handshake messages sent that challenged a peer to prove its sender is fresh.
    #[serde(default)]
    pub challenges_sent: u64,
    /// Datagrams authenticated, fresh and decrypted.
    pub opened: u64,
    /// Where the rotation stands, in words.
    pub phase: String,
    /// Frames sealed.
    pub sealed: u64,
    /// (sender, key) pairs verified and remembered for replay protection.
    pub senders: usize,
    /// The key id new datagrams are sealed with.
    pub sending_key: u8,
    /// Peers' senders verified by answering this host's challenge (after a restart of
    /// either side, each peer is verified again before its datagrams are accepted).
    #[serde(default)]
    pub verified: u64,
    /// Peers that have not yet shown they accept the new key.
    pub waiting_for: Vec<String>,
}

/// A row of `network ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSummary {
    pub name: String,
    pub vni: Vni,
    pub subnet: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u32,
    pub encrypted: bool,
    #[serde(default)]
    pub internal: bool,
    pub ports: usize,
}

/// `network inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDetail {
    pub name: String,
    pub vni: Vni,
    pub subnet: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u32,
    pub encrypted: bool,
    #[serde(default)]
    pub internal: bool,
    pub ports: Vec<PortInfo>,
    pub traffic: TrafficSnapshot,
    /// Every endpoint of the network on every host (cluster mode), or this host's.
    #[serde(default)]
    pub endpoints: Vec<EndpointInfo>,
    /// The VTEPs a flood of this network goes to now (cluster mode: the hosts with endpoints
    /// on it, and static peers; otherwise every peer).
    #[serde(default)]
    pub flood: Vec<SocketAddr>,
    /// ARP requests the switch answered itself (proxy ARP, cluster mode).
    #[serde(default)]
    pub arp_answered: u64,
}

/// An endpoint of a network, on any host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub host: String,
    pub netns: String,
    pub ifname: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    /// The endpoint's names in the network's DNS.
    #[serde(default)]
    pub names: Vec<String>,
}

/// A port, as `attach` reports it and `inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub port: u32,
    pub network: String,
    pub netns: String,
    pub ifname: String,
    pub mac: Mac,
    /// CIDR notation, e.g. `10.0.0.2/24`.
    pub ip: Option<String>,
    pub mtu: u32,
    /// The port may send only as its own MAC and address.
    #[serde(default)]
    pub port_security: bool,
    /// The container's names in the network's DNS: its name first, then its aliases.
    #[serde(default)]
    pub names: Vec<String>,
    /// The container runtime's id for the container, when a CNI plugin attached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container's address on its egress link (CIDR), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    pub traffic: TrafficSnapshot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdbRow {
    pub network: String,
    pub vni: Vni,
    pub mac: Mac,
    /// `port` or `vtep`.
    pub kind: String,
    pub port: Option<u32>,
    pub vtep: Option<SocketAddr>,
    /// Human-readable location, e.g. `port 3 (netns c1, eth0)` or `vtep 192.0.2.2:4789`.
    pub location: String,
    pub age_secs: f64,
    /// A static entry from another host's advertisement (cluster mode): it does not age.
    #[serde(default, rename = "static")]
    pub pinned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbStats {
    pub entries: usize,
    pub capacity: usize,
    pub learned: u64,
    pub moved: u64,
    pub evicted: u64,
    pub aged: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    pub name: String,
    pub vni: Vni,
    pub traffic: TrafficSnapshot,
    pub fdb: FdbStats,
    /// Sealing counters, for encrypted networks.
    pub seal: Option<SealStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    pub port: u32,
    pub network: String,
    pub netns: String,
    pub ifname: String,
    pub traffic: TrafficSnapshot,
    /// Frames the container sent that the port's TAP queue had no room for (the interface's
    /// own `tx_dropped`): lost before the switch saw them.
    #[serde(default)]
    pub overruns: u64,
}

pub use crate::dataplane::DataplaneStats;

/// The state store, as `stats` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// `file` or `etcd`.
    pub backend: String,
    /// The state dir, or the etcd endpoints and prefix.
    pub location: String,
    /// Whether the last exchange with the store worked.
    pub connected: bool,
    /// The newest store revision seen.
    pub revision: u64,
    /// The last error since the store last worked.
    pub last_error: Option<String>,
    /// Other hosts' advertised endpoints installed in the switch (cluster mode).
    #[serde(default)]
    pub endpoints: usize,
    /// Advertisements in the store that were ignored as unusable (see the daemon's log).
    #[serde(default)]
    pub ignored_endpoints: usize,
}

/// Ports a starting daemon found recorded: taken back, or dropped (logged) because their
/// namespace, network or interface was gone; and ports reaped since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStats {
    pub readopted: u64,
    pub dropped: u64,
    /// Ports removed while the daemon ran because their interface went away (a namespace
    /// deleted without `detach`).
    #[serde(default)]
    pub reaped: u64,
}

/// `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub drops: std::collections::BTreeMap<String, u64>,
    pub networks: Vec<NetworkStats>,
    pub ports: Vec<PortStats>,
    pub peers: Vec<PeerInfo>,
    pub dataplane: DataplaneStats,
    #[serde(default)]
    pub store: StoreStats,
    #[serde(default)]
    pub restore: RestoreStats,
}

/// A row of `host ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub name: String,
    /// Its switch's underlay address and port.
    pub vtep: SocketAddr,
    /// Whether its lease is live (always true for this host, and with the file store).
    pub alive: bool,
    /// Whether it is the host that answered.
    pub local: bool,
}
