//! The CNI plugin's half that needs no daemon: the spec's JSON types (CNI 1.1.0, accepting
//! 0.4.0 and 1.0.0 configs), the `CNI_*` environment, error codes and the ADD result.
//!
//! The types are written here rather than taken from a crate: the CNI crates on crates.io
//! (`cni-plugin`, `rust-cni`) stop at spec 1.0.0 (no `STATUS`, no `GC`, no interface `mtu`)
//! and are not kept up; what the plugin needs is a handful of serde structs.

pub mod plugin;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::control::PortInfo;

/// The spec version this plugin implements; results and errors are in it unless the config
/// asked for an older one.
pub const SPEC_VERSION: &str = "1.1.0";
/// The config versions accepted.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The spec's well-known error codes (CNI spec, "Error").
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const CONTAINER_UNKNOWN: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific (100 and up): the daemon refused the request; `msg` is its reason.
    pub const REFUSED: u32 = 100;
    /// Plugin-specific: CHECK found the container's interface not as it was set up.
    pub const CHECK_FAILED: u32 = 101;
}

/// An error as the spec prints it on stdout: code, message, details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg} ({details})")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error's JSON, in the config's version when it is one this plugin speaks.
    pub fn to_json(&self, version: Option<&str>) -> Value {
        let version = version
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
            .unwrap_or(SPEC_VERSION);
        json!({"cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details})
    }
}

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: Option<String>,
    /// The container's namespace path; DEL may come without one (the namespace is gone).
    pub netns: Option<String>,
    pub ifname: Option<String>,
}

impl Invocation {
    /// Reads the environment through `var`; names what is missing or malformed (code 4).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some(other) => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!("unknown CNI_COMMAND {other:?}"),
                    "expected ADD, DEL, CHECK, VERSION, STATUS or GC",
                ))
            }
            None => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    "CNI_COMMAND is not set",
                    "vswitch-cni is a CNI plugin: a container runtime runs it with CNI_COMMAND and the other CNI_* variables set",
                ))
            }
        };
        let inv = Invocation {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
        };
        let needed: &[(&str, bool)] = match command {
            Command::Add | Command::Check => &[
                ("CNI_CONTAINERID", inv.container_id.is_some()),
                ("CNI_NETNS", inv.netns.is_some()),
                ("CNI_IFNAME", inv.ifname.is_some()),
            ],
            Command::Del => &[
                ("CNI_CONTAINERID", inv.container_id.is_some()),
                ("CNI_IFNAME", inv.ifname.is_some()),
            ],
            Command::Version | Command::Status | Command::Gc => &[],
        };
        if let Some((name, _)) = needed.iter().find(|(_, present)| !present) {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("{name} is not set"),
                format!("{command:?} needs {name} in the environment (CNI spec, \"Parameters\")"),
            ));
        }
        Ok(inv)
    }
}

/// The network configuration on stdin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The vswitch network; defaults to `name`.
    #[serde(default)]
    pub network: Option<String>,
    /// The daemon's control socket; defaults to the daemon's default.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default, rename = "prevResult")]
    pub prev_result: Option<Value>,
    /// GC: the attachments the runtime still has.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// One of GC's valid attachments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl NetConf {
    /// Parses stdin: undecodable JSON is code 6, a config missing what it needs is 7, a version
    /// this plugin does not speak is 1.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE_FAILURE,
                "cannot decode the network configuration on stdin",
                e.to_string(),
            )
        })?;
        let conf: NetConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("invalid network configuration: {e}"),
                "a vswitch-cni config needs cniVersion, name and type; network and socket are optional",
            )
        })?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("CNI version {} is not supported", conf.cni_version),
                format!("vswitch-cni speaks {}", SUPPORTED_VERSIONS.join(", ")),
            ));
        }
        if conf.name.is_empty() {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "invalid network configuration: name is empty",
                "name the network (it is also the vswitch network unless \"network\" is given)",
            ));
        }
        Ok(conf)
    }

    /// The vswitch network this config attaches to.
    pub fn network(&self) -> &str {
        self.network.as_deref().unwrap_or(&self.name)
    }

    /// Whether the config's version has `STATUS` and `GC` (1.1.0).
    pub fn has_status_and_gc(&self) -> bool {
        self.cni_version == "1.1.0"
    }
}

/// `VERSION`'s answer.
pub fn version_result() -> Value {
    json!({"cniVersion": SPEC_VERSION, "supportedVersions": SUPPORTED_VERSIONS})
}

/// ADD's result for a port, in the config's version: the interface in the sandbox, its
/// address with the gateway, the default route, and the gateway as the nameserver (every
/// network's gateway answers DNS for its containers' names and forwards the rest).
pub fn add_result(
    version: &str,
    port: &PortInfo,
    gateway: Option<Ipv4Addr>,
    sandbox: &str,
) -> Value {
    let mut interface =
        json!({"name": port.ifname, "mac": port.mac.to_string(), "sandbox": sandbox});
    if version == "1.1.0" {
        interface["mtu"] = json!(port.mtu);
    }
    let mut ips = Vec::new();
    if let Some(ip) = &port.ip {
        let mut entry = json!({"address": ip, "interface": 0});
        if let Some(gw) = gateway {
            entry["gateway"] = json!(gw.to_string());
        }
        if version == "0.4.0" {
            entry["version"] = json!("4");
        }
        ips.push(entry);
    }
    let routes: Vec<Value> = gateway
        .map(|gw| json!({"dst": "0.0.0.0/0", "gw": gw.to_string()}))
        .into_iter()
        .collect();
    let dns = match gateway {
        Some(gw) => json!({"nameservers": [gw.to_string()]}),
        None => json!({}),
    };
    json!({
        "cniVersion": version,
        "interfaces": [interface],
        "ips": ips,
        "routes": routes,
        "dns": dns,
    })
}

/// The addresses (CIDR) a previous result gave `ifname`, for CHECK.
pub fn prev_addresses(prev: &Value, ifname: &str) -> Vec<String> {
    let interfaces = prev["interfaces"].as_array().cloned().unwrap_or_default();
    prev["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ip| {
            ip["interface"]
                .as_u64()
                .and_then(|i| interfaces.get(usize::try_from(i).ok()?))
                .is_none_or(|i| i["name"] == ifname)
        })
        .filter_map(|ip| ip["address"].as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests;
