//! The pure half of the etcd store: the `--store` URL, the key layout under `--store-prefix`,
//! decoding a listing, and turning a change of networks into one transaction's compares and
//! operations. No I/O here, so all of it is unit-tested without etcd.
//!
//! Keys (values are JSON):
//! ```text
//! PREFIX/networks/NAME   a NetworkRecord (never a key: keys stay in each host's state dir)
//! PREFIX/vnis/VNI        the name of the network that holds VNI (makes VNIs unique in a txn)
//! PREFIX/hosts/NAME      a HostRecord {name, vtep}; stays when the host stops
//! PREFIX/alive/NAME      empty, under the host's lease (TTL 10 s): present while it is alive
//! PREFIX/addresses/NETWORK/IP   an AddressHolder {host, netns, mac}, under the host's lease
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::store::NetworkRecord;
use crate::wire::Vni;

/// The default etcd client port, when `--store` leaves it out.
pub const DEFAULT_PORT: u16 = 2379;

/// Parses `etcd://HOST:PORT[,HOST:PORT...]` into `HOST:PORT` endpoints.
pub fn parse_url(s: &str) -> Result<Vec<String>, String> {
    let rest = s.strip_prefix("etcd://").ok_or_else(|| {
        format!("'{s}' is not an etcd store URL: use etcd://HOST:PORT[,HOST:PORT...]")
    })?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(format!(
            "'{s}' names no etcd endpoint: use etcd://HOST:PORT"
        ));
    }
    let mut endpoints = Vec::new();
    for part in rest.split(',') {
        let ep = endpoint(part).map_err(|why| format!("'{s}': endpoint '{part}' {why}"))?;
        if !endpoints.contains(&ep) {
            endpoints.push(ep);
        }
    }
    Ok(endpoints)
}

/// One `HOST[:PORT]` (an IPv4 address, `[IPv6]`, or a DNS name).
fn endpoint(part: &str) -> Result<String, String> {
    let (host, port) = if let Some(v6) = part.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("has an unclosed '['".to_string())?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "is not a valid IPv6 address".to_string())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("has junk after ']'")?),
        };
        (format!("[{addr}]"), port)
    } else {
        match part.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (part.to_owned(), None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')));
    if !host_ok {
        return Err("is not HOST:PORT".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("has an invalid port '{p}'"))?,
    };
    Ok(format!("{host}:{port}"))
}

/// Checks `--store-prefix`: absolute, no trailing slash, no empty or dot segments.
pub fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = s.starts_with('/')
        && s.len() > 1
        && s.len() <= 128
        && s[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a store prefix: use an absolute path like /vswitch (letters, digits, \
             '-', '_', '.', no trailing '/')"
        ))
    }
}

/// A host as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRecord {
    pub name: String,
    /// The underlay address and UDP port its switch listens on.
    pub vtep: SocketAddr,
}

/// The key layout under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Network(String),
    Vni(String),
    Host(String),
    Alive(String),
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// Every key of ours starts with this (watch and list ranges).
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    pub fn network(&self, name: &str) -> String {
        format!("{}/networks/{name}", self.prefix)
    }

    pub fn vni(&self, vni: Vni) -> String {
        format!("{}/vnis/{}", self.prefix, vni.get())
    }

    pub fn host(&self, name: &str) -> String {
        format!("{}/hosts/{name}", self.prefix)
    }

    pub fn alive(&self, name: &str) -> String {
        format!("{}/alive/{name}", self.prefix)
    }

    /// The addresses of `network` (a range: every key starts with this).
    pub fn addresses(&self, network: &str) -> String {
        format!("{}/addresses/{network}/", self.prefix)
    }

    /// Every network's addresses.
    pub fn all_addresses(&self) -> String {
        format!("{}/addresses/", self.prefix)
    }

    pub fn address(&self, network: &str, ip: std::net::Ipv4Addr) -> String {
        format!("{}{ip}", self.addresses(network))
    }

    /// `(network, ip)` of an address key.
    pub fn parse_address(&self, key: &[u8]) -> Option<(String, std::net::Ipv4Addr)> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.all_addresses())?;
        let (network, ip) = rest.split_once('/')?;
        Some((network.to_owned(), ip.parse().ok()?))
    }

    /// Which entry `key` is; `None` for keys of no known kind (left alone).
    pub fn classify(&self, key: &[u8]) -> Option<Entry> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.root())?;
        let (kind, name) = rest.split_once('/')?;
        if name.is_empty() || name.contains('/') {
            return None;
        }
        let name = name.to_owned();
        Some(match kind {
            "networks" => Entry::Network(name),
            "vnis" => Entry::Vni(name),
            "hosts" => Entry::Host(name),
            "alive" => Entry::Alive(name),
            _ => return None,
        })
    }
}

/// Everything under the prefix at one revision, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Networks with the revision their key was last modified at.
    pub networks: Vec<(NetworkRecord, i64)>,
    pub hosts: Vec<HostRecord>,
    /// Names with a live `alive/` key.
    pub alive: BTreeSet<String>,
    /// Address claims: (network, address, holder). They are the endpoint advertisements.
    pub addresses: Vec<(String, std::net::Ipv4Addr, crate::store::AddressHolder)>,
    /// Keys whose value did not decode (named in logs, otherwise ignored).
    pub garbled: Vec<String>,
}

/// One key-value pair as etcd returns it.
#[derive(Debug, Clone, Copy)]
pub struct Kv<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub mod_revision: i64,
}

impl Listing {
    pub fn decode<'a>(keys: &Keys, kvs: impl IntoIterator<Item = Kv<'a>>) -> Listing {
        let mut l = Listing::default();
        for kv in kvs {
            let garbled = || String::from_utf8_lossy(kv.key).into_owned();
            if kv.key.starts_with(keys.all_addresses().as_bytes()) {
                match (keys.parse_address(kv.key), serde_json::from_slice(kv.value)) {
                    (Some((network, ip)), Ok(holder)) => l.addresses.push((network, ip, holder)),
                    _ => l.garbled.push(garbled()),
                }
                continue;
            }
            match keys.classify(kv.key) {
                Some(Entry::Network(name)) => {
                    match serde_json::from_slice::<NetworkRecord>(kv.value) {
                        Ok(n) if n.name == name => l.networks.push((n, kv.mod_revision)),
                        _ => l.garbled.push(garbled()),
                    }
                }
                Some(Entry::Host(name)) => match serde_json::from_slice::<HostRecord>(kv.value) {
                    Ok(h) if h.name == name => l.hosts.push(h),
                    _ => l.garbled.push(garbled()),
                },
                Some(Entry::Alive(name)) => {
                    l.alive.insert(name);
                }
                Some(Entry::Vni(_)) | None => {}
            }
        }
        l.networks.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        l.hosts.sort_by(|a, b| a.name.cmp(&b.name));
        l
    }

    pub fn network_records(&self) -> Vec<NetworkRecord> {
        self.networks.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The other live hosts and the endpoints they advertise (their address claims), each at
    /// its host's VTEP. A claim of a host that is not alive is left out (its lease, which
    /// takes the claim too, is running out).
    pub fn cluster(&self, me: &HostRecord) -> crate::store::Cluster {
        let mut endpoints: Vec<crate::store::Advert> = self
            .addresses
            .iter()
            .filter(|(_, _, h)| h.host != me.name)
            .filter_map(|(network, ip, h)| {
                let host = self
                    .hosts
                    .iter()
                    .find(|r| r.name == h.host && self.alive.contains(&r.name))?;
                Some(crate::store::Advert {
                    network: network.clone(),
                    ip: *ip,
                    mac: h.mac,
                    host: h.host.clone(),
                    vtep: host.vtep,
                })
            })
            .collect();
        endpoints.sort();
        crate::store::Cluster {
            hosts: self.registry_peers(me),
            endpoints,
        }
    }

    /// The VTEPs of the live hosts other than `me` (by name and by address).
    pub fn registry_peers(&self, me: &HostRecord) -> Vec<SocketAddr> {
        self.hosts
            .iter()
            .filter(|h| self.alive.contains(&h.name))
            .filter(|h| h.name != me.name && h.vtep.ip() != me.vtep.ip())
            .map(|h| h.vtep)
            .collect()
    }
}

/// The peers a snapshot shows: the static ones (`--peer`, `peer add`), then the registry's,
/// one per IP (a static peer at a host's address gives way to the registry's entry).
pub fn peers(statics: &[SocketAddr], registry: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = statics
        .iter()
        .filter(|s| registry.iter().all(|r| r.ip() != s.ip()))
        .copied()
        .collect();
    for r in registry {
        if out.iter().all(|p| p.ip() != r.ip()) {
            out.push(*r);
        }
    }
    out
}

/// The static peers in a state the daemon saves: its peers less the registry's at the base
/// revision. A registry peer missing from the state (`peer rm` of a live host) is refused:
/// `Err(that peer)`.
pub fn static_peers(
    registry: &[SocketAddr],
    state_peers: &[SocketAddr],
) -> Result<Vec<SocketAddr>, SocketAddr> {
    if let Some(gone) = registry.iter().find(|r| !state_peers.contains(r)) {
        return Err(*gone);
    }
    Ok(state_peers
        .iter()
        .filter(|p| !registry.contains(p))
        .copied()
        .collect())
}

/// A transaction's compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key does not exist.
    Absent(String),
    /// The key was last modified at this revision (so nobody changed it since).
    Unchanged { key: String, mod_revision: i64 },
}

/// A transaction's operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete(String),
}

/// One transaction: all `checks` hold, then all `ops` run; or nothing happens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub checks: Vec<Check>,
    pub ops: Vec<Op>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A network as stored in etcd: the key file's path is this host's business, not the cluster's.
pub fn cluster_record(n: &NetworkRecord) -> NetworkRecord {
    NetworkRecord {
        key_file: None,
        ..n.clone()
    }
}

/// The transaction that turns the networks of `base` (as listed at the revision the daemon
/// decided on) into `new`. A new name or VNI must be absent; a changed or removed network must
/// be unchanged since `base`. So two hosts creating the same name or VNI at once cannot both
/// succeed, and a change made by another host since `base` is never overwritten.
pub fn plan(keys: &Keys, base: &[(NetworkRecord, i64)], new: &[NetworkRecord]) -> Plan {
    let mut p = Plan::default();
    let base: BTreeMap<&str, &(NetworkRecord, i64)> =
        base.iter().map(|b| (b.0.name.as_str(), b)).collect();
    let new: BTreeMap<&str, NetworkRecord> = new
        .iter()
        .map(|n| (n.name.as_str(), cluster_record(n)))
        .collect();
    let json = |n: &NetworkRecord| serde_json::to_vec(n).unwrap_or_default();
    for (name, n) in &new {
        match base.get(name) {
            None => {
                p.checks.push(Check::Absent(keys.network(name)));
                p.checks.push(Check::Absent(keys.vni(n.vni)));
                p.ops.push(Op::Put {
                    key: keys.network(name),
                    value: json(n),
                });
                p.ops.push(Op::Put {
                    key: keys.vni(n.vni),
                    value: name.as_bytes().to_vec(),
                });
            }
            Some((old, rev)) if cluster_record(old) != *n => {
                p.checks.push(Check::Unchanged {
                    key: keys.network(name),
                    mod_revision: *rev,
                });
                p.ops.push(Op::Put {
                    key: keys.network(name),
                    value: json(n),
                });
                if old.vni != n.vni {
                    p.checks.push(Check::Absent(keys.vni(n.vni)));
                    p.ops.push(Op::Delete(keys.vni(old.vni)));
                    p.ops.push(Op::Put {
                        key: keys.vni(n.vni),
                        value: name.as_bytes().to_vec(),
                    });
                }
            }
            Some(_) => {}
        }
    }
    for (name, (old, rev)) in &base {
        if !new.contains_key(name) {
            p.checks.push(Check::Unchanged {
                key: keys.network(name),
                mod_revision: *rev,
            });
            p.ops.push(Op::Delete(keys.network(name)));
            p.ops.push(Op::Delete(keys.vni(old.vni)));
        }
    }
    p
}

#[cfg(test)]
mod tests;
