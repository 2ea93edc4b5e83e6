//! The stored records: the state file's format, version 1.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::wire::{Mac, Vni};

/// The file format's version; a newer file is refused rather than misread.
pub const VERSION: u32 = 1;

/// Everything a daemon keeps across restarts (keys apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    pub networks: Vec<NetworkRecord>,
    pub peers: Vec<SocketAddr>,
    /// What a cluster store shows besides: never in the state file, `None` for a store that
    /// keeps no host registry.
    #[serde(skip)]
    pub cluster: Option<Cluster>,
}

/// The cluster's view beside the networks: the other live hosts, and the endpoints they
/// advertise (their address claims, under their leases).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// The VTEPs of the other live hosts (the registry's peers; the rest are static peers).
    pub hosts: Vec<SocketAddr>,
    /// The endpoints other hosts advertise.
    pub endpoints: Vec<Advert>,
}

/// One endpoint another host advertises: a container's MAC and address on a network, and
/// where its host's switch is. Comes from another host: the rules check it before use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Advert {
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: crate::wire::Mac,
    pub host: String,
    pub vtep: SocketAddr,
}

impl State {
    /// An empty state of the current version.
    pub fn empty() -> State {
        State {
            version: VERSION,
            ..State::default()
        }
    }

    pub fn network(&self, name: &str) -> Option<&NetworkRecord> {
        self.networks.iter().find(|n| n.name == name)
    }
}

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRecord {
    pub name: String,
    pub vni: Vni,
    pub subnet: Ipv4Net,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// An explicit container MTU; without one the MTU follows the underlay.
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub encrypted: bool,
    /// Where the key was first read from (encrypted networks); the daemon keeps its own copy.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The key's check value (encrypted networks): hosts with another key refuse the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
    /// No egress for its containers (`network create --internal`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

impl NetworkRecord {
    /// A plain network with no gateway and the MTU following the underlay.
    pub fn plain(name: &str, vni: Vni, subnet: Ipv4Net) -> NetworkRecord {
        NetworkRecord {
            name: name.to_owned(),
            vni,
            subnet,
            gateway: None,
            mtu: None,
            encrypted: false,
            key_file: None,
            key_check: None,
            internal: false,
        }
    }
}

/// A port as stored, so that a restarted daemon can take it back: host-local (the state dir's
/// ports file, in cluster mode too), never shared with other hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortEntry {
    pub id: u32,
    pub network: String,
    /// The namespace as the user named it (`NAME`, `/run/netns/NAME`, `/proc/PID/ns/net`).
    pub netns: String,
    /// The namespace's identity when the port was attached (nsfs device and inode): a name
    /// that now leads to another namespace is not the port's.
    pub ns_dev: u64,
    pub ns_ino: u64,
    pub ifname: String,
    pub mac: Mac,
    /// CIDR notation.
    #[serde(default)]
    pub ip: Option<String>,
    pub mtu: u32,
    #[serde(default)]
    pub port_security: bool,
    /// The port's names in the network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The container runtime's id (CNI), when a CNI plugin attached the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The port's egress address (CIDR): its namespace's egress link belongs to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
}

/// The ports file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsFile {
    pub version: u32,
    pub ports: Vec<PortEntry>,
}

/// Parses a ports file's bytes.
pub fn decode_ports(bytes: &[u8]) -> Result<Vec<PortEntry>, DecodeError> {
    let file: PortsFile =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    if file.version != VERSION {
        return Err(DecodeError::Version(file.version));
    }
    Ok(file.ports)
}

/// Why a state file's bytes are not a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the state's shape (serde's message names the place).
    #[error("{0}")]
    Json(String),
    #[error("version {0} (this vswitch reads version {VERSION})")]
    Version(u32),
}

/// Parses a state file's bytes (also the fuzz target's entry point).
pub fn decode(bytes: &[u8]) -> Result<State, DecodeError> {
    let state: State =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    if state.version != VERSION {
        return Err(DecodeError::Version(state.version));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_or_future_files_are_refused_with_a_reason() {
        assert!(decode(b"{").is_err());
        let future = decode(br#"{"version":2,"networks":[],"peers":[]}"#).expect_err("future");
        assert_eq!(future, DecodeError::Version(2));
        assert!(future.to_string().contains("version 2"));
        assert!(decode(
            br#"{"version":1,"networks":[{"name":"x","vni":0,"subnet":"10.0.0.0/24"}],"peers":[]}"#
        )
        .is_err());
    }

    #[test]
    fn ports_file_round_trips_and_refuses_garbage() {
        let entry = PortEntry {
            id: 3,
            network: "blue".into(),
            netns: "c1".into(),
            ns_dev: 4,
            ns_ino: 4026532000,
            ifname: "eth0".into(),
            mac: Mac([2, 0, 0, 0, 0, 1]),
            ip: Some("10.0.0.2/24".into()),
            mtu: 1450,
            port_security: true,
            names: vec!["web".into(), "db".into()],
            container_id: Some("c0ffee".into()),
            egress: Some("172.31.0.2/16".into()),
        };
        let bytes = serde_json::to_vec(&PortsFile {
            version: VERSION,
            ports: vec![entry.clone()],
        })
        .expect("encodes");
        assert_eq!(decode_ports(&bytes), Ok(vec![entry]));
        assert!(decode_ports(b"[]").is_err());
        assert_eq!(
            decode_ports(br#"{"version":9,"ports":[]}"#),
            Err(DecodeError::Version(9))
        );
    }

    /// A file written by the previous release (which stored the control API's `NetworkSpec`)
    /// still reads, field for field.
    #[test]
    fn files_of_the_previous_release_still_read() {
        let old = br#"{
  "version": 1,
  "networks": [
    {
      "name": "sec",
      "vni": 300,
      "subnet": "10.30.0.0/24",
      "gateway": "10.30.0.1",
      "mtu": 1400,
      "encrypted": true,
      "key_file": "/root/k.key"
    },
    { "name": "blue", "vni": 100, "subnet": "10.10.0.0/24" }
  ],
  "peers": ["192.0.2.2:4789"]
}"#;
        let state = decode(old).expect("reads");
        assert_eq!(state.networks.len(), 2);
        let sec = state.network("sec").expect("sec");
        assert_eq!(
            (sec.vni.get(), sec.mtu, sec.encrypted),
            (300, Some(1400), true)
        );
        assert_eq!(sec.gateway, Some(Ipv4Addr::new(10, 30, 0, 1)));
        assert_eq!(
            sec.key_file.as_deref(),
            Some(std::path::Path::new("/root/k.key"))
        );
        let blue = state.network("blue").expect("blue");
        assert_eq!(
            (blue.gateway, blue.mtu, blue.encrypted),
            (None, None, false)
        );
        assert_eq!(state.peers, vec!["192.0.2.2:4789".parse().expect("addr")]);
    }
}
