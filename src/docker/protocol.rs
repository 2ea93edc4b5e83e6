//! The JSON of Docker's remote `NetworkDriver` and `IpamDriver` protocols, and the pure mapping
//! of their requests onto the daemon's own [`Request`]s. Field names are Docker's (PascalCase).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::control::{AttachRequest, NetworkSpec};
use crate::wire::{Mac, Vni};

/// The option map `docker network create -o k=v` arrives in.
pub const GENERIC: &str = "com.docker.network.generic";
/// Marks `IpamDriver.RequestAddress` for the network's gateway.
pub const GATEWAY_REQUEST: &str = "com.docker.network.gateway";

/// A request Docker's plugin protocol refuses, with the message Docker shows its user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

impl PluginError {
    pub fn new(msg: impl Into<String>) -> Self {
        PluginError(msg.into())
    }
}

/// The body of every refusal: `{"Err": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrBody {
    #[serde(rename = "Err")]
    pub err: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpData {
    #[serde(default, deserialize_with = "nullable")]
    pub address_space: String,
    pub pool: String,
    #[serde(default, deserialize_with = "nullable")]
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, serde_json::Value>,
    #[serde(default, rename = "IPv4Data", deserialize_with = "nullable")]
    pub ipv4_data: Vec<IpData>,
    #[serde(default, rename = "IPv6Data", deserialize_with = "nullable")]
    pub ipv6_data: Vec<IpData>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NetworkRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    #[serde(default, deserialize_with = "nullable")]
    pub address: String,
    #[serde(default, rename = "AddressIPv6", deserialize_with = "nullable")]
    pub address_ipv6: String,
    #[serde(default, deserialize_with = "nullable")]
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub interface: Option<EndpointInterface>,
    #[serde(default, deserialize_with = "nullable")]
    pub sandbox_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPool {
    #[serde(default, deserialize_with = "nullable")]
    pub address_space: String,
    #[serde(default, deserialize_with = "nullable")]
    pub pool: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sub_pool: String,
    #[serde(default, rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub address: String,
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PoolRef {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// Go encodes an empty map, slice or string field as `null`: read it as empty.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The vswitch network behind Docker network `id`. Docker hands a driver only its own ID, never
/// the name the user typed; the name is stable for that ID.
pub fn network_name(id: &str) -> String {
    let short: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("docker-{short}")
}

/// The label of an endpoint's port (`vswitch detach` takes it) and its TAP's name until Docker
/// moves it into the sandbox.
pub fn endpoint_label(endpoint: &str) -> String {
    let short: String = endpoint
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("docker-ep-{short}")
}

pub fn tap_name(endpoint: &str) -> String {
    let short: String = endpoint
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    format!("vsd{short}")
}

fn option(create: &CreateNetwork, key: &str) -> Option<String> {
    let generic = create.options.get(GENERIC)?.as_object()?;
    match generic.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `NetworkDriver.CreateNetwork` as a vswitch network: `-o vni=N` (required), `-o mtu=N`,
/// `-o encrypted=KEY_FILE`, `-o name=NAME` (default `docker-` and Docker's ID; in cluster mode
/// the same name on every host makes them one network); the subnet and gateway come from the
/// IPAM data.
pub fn network_spec(create: &CreateNetwork) -> Result<NetworkSpec, PluginError> {
    if !create.ipv6_data.is_empty() {
        return Err(PluginError::new(
            "vswitch networks are IPv4 only: create the network without --ipv6",
        ));
    }
    let [data] = create.ipv4_data.as_slice() else {
        return Err(PluginError::new(
            "a vswitch network has exactly one IPv4 subnet: pass one --subnet",
        ));
    };
    let subnet: Ipv4Net = data.pool.parse().map_err(|_| {
        PluginError::new(format!(
            "'{}' is no IPv4 subnet: pass --subnet like 10.10.0.0/24",
            data.pool
        ))
    })?;
    let gateway = match data.gateway.as_deref() {
        None | Some("") => None,
        Some(g) => Some(address_of(g)?),
    };
    let vni = option(create, "vni").ok_or_else(|| {
        PluginError::new(
            "a vswitch network needs a VNI: add -o vni=N (1 to 16777215, the same on every host)",
        )
    })?;
    let vni = vni
        .parse::<u32>()
        .ok()
        .and_then(|v| Vni::new(v).ok())
        .ok_or_else(|| {
            PluginError::new(format!(
                "'{vni}' is no VNI: pass -o vni=N with N from 1 to 16777215"
            ))
        })?;
    let mtu = match option(create, "mtu") {
        None => None,
        Some(m) => Some(m.parse::<u32>().map_err(|_| {
            PluginError::new(format!("'{m}' is no MTU: pass -o mtu=N, e.g. -o mtu=1400"))
        })?),
    };
    let key_file = option(create, "encrypted").map(PathBuf::from);
    if key_file.as_ref().is_some_and(|k| !k.is_absolute()) {
        return Err(PluginError::new(
            "-o encrypted= takes the key file's absolute path (as `vswitch key generate` wrote it)",
        ));
    }
    Ok(NetworkSpec {
        name: option(create, "name").unwrap_or_else(|| network_name(&create.network_id)),
        vni,
        subnet,
        gateway,
        mtu,
        encrypted: key_file.is_some(),
        key_file,
        // vswitch gives Docker's containers no egress link (Docker owns their routes).
        internal: true,
    })
}

/// `10.0.0.2/24` or `10.0.0.2`: the address.
pub fn address_of(cidr: &str) -> Result<Ipv4Addr, PluginError> {
    cidr.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| PluginError::new(format!("'{cidr}' is no IPv4 address")))
}

/// What `CreateEndpoint` decided for `Join`: the address Docker's IPAM gave and the MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<Mac>,
}

/// `CreateEndpoint` on vswitch network `network`: the endpoint as `Join` will attach it.
pub fn endpoint(req: &EndpointRef, network: String) -> Result<Endpoint, PluginError> {
    let iface = req.interface.clone().unwrap_or_default();
    if !iface.address_ipv6.is_empty() {
        return Err(PluginError::new(
            "vswitch networks are IPv4 only: connect the container without --ip6",
        ));
    }
    let ip = match iface.address.as_str() {
        "" => None,
        a => Some(address_of(a)?),
    };
    let mac = match iface.mac_address.as_str() {
        "" => None,
        m => Some(m.parse::<Mac>().map_err(|_| {
            PluginError::new(format!(
                "'{m}' is no MAC address: pass --mac-address like 02:42:0a:0a:00:02"
            ))
        })?),
    };
    Ok(Endpoint { network, ip, mac })
}

/// `Join`: a port whose TAP stays in the daemon's namespace for Docker to move.
pub fn attach(endpoint_id: &str, ep: &Endpoint) -> AttachRequest {
    AttachRequest {
        netns: endpoint_label(endpoint_id),
        network: Some(ep.network.clone()),
        ip: ep.ip,
        prefix: None,
        mac: ep.mac,
        ifname: Some(tap_name(endpoint_id)),
        no_port_security: false,
        // Docker's own embedded DNS (127.0.0.11) serves its containers' names.
        name: None,
        aliases: Vec::new(),
        no_dns: true,
        container_id: None,
        handoff: true,
    }
}

/// The `Join` reply: Docker moves `SrcName` into the sandbox as `eth<N>`.
pub fn join_reply(tap: &str, gateway: Option<Ipv4Addr>) -> serde_json::Value {
    let mut reply = serde_json::json!({
        "InterfaceName": { "SrcName": tap, "DstPrefix": "eth" },
        "StaticRoutes": [],
        "DisableGatewayService": true,
    });
    if let Some(g) = gateway {
        reply["Gateway"] = serde_json::Value::String(g.to_string());
    }
    reply
}

#[cfg(test)]
mod tests;
