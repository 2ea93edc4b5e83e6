//! The CNI commands, carried out through the daemon's control socket with the same typed
//! requests the CLI sends (`control::client::call`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{
    add_result, code, prev_addresses, version_result, CniError, Command, Invocation, NetConf,
};
use crate::cli::DEFAULT_SOCKET;
use crate::control::client::{call, ClientError};
use crate::control::{AttachRequest, NetworkDetail, PortInfo, Request, Response};

/// How long one exchange with the daemon may take (attach probes the overlay for a second).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one invocation: what to print on stdout on success (ADD's result, VERSION's answer),
/// or the error to print. `stdin` is the network configuration.
pub fn run(inv: &Invocation, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if inv.command == Command::Version {
        return Ok(Some(version_result()));
    }
    let conf = NetConf::parse(stdin)?;
    if matches!(inv.command, Command::Status | Command::Gc) && !conf.has_status_and_gc() {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "{:?} needs CNI version 1.1.0, the config says {}",
                inv.command, conf.cni_version
            ),
            "set \"cniVersion\": \"1.1.0\" in the network configuration",
        ));
    }
    let daemon = Daemon {
        socket: conf
            .socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        unreachable: if inv.command == Command::Status {
            code::NOT_AVAILABLE
        } else {
            code::TRY_AGAIN_LATER
        },
    };
    match inv.command {
        Command::Add => add(&daemon, inv, &conf).map(Some),
        Command::Del => del(&daemon, inv, &conf).map(|()| None),
        Command::Check => check(&daemon, inv, &conf).map(|()| None),
        Command::Status => status(&daemon, &conf).map(|()| None),
        Command::Gc => gc(&daemon, &conf).map(|()| None),
        Command::Version => Ok(Some(version_result())),
    }
}

struct Daemon {
    socket: PathBuf,
    /// The code for "the daemon does not answer": try again later, or (STATUS) not available.
    unreachable: u32,
}

impl Daemon {
    fn call(&self, request: &Request) -> Result<Response, CniError> {
        call(&self.socket, request, TIMEOUT).map_err(|e| match e {
            ClientError::Connect { .. } => CniError::new(
                self.unreachable,
                "the vswitch daemon is not reachable",
                format!("{e}; the socket comes from \"socket\" in the network configuration"),
            ),
            ClientError::Io { .. } => CniError::new(code::IO_FAILURE, e.to_string(), io_detail(&e)),
            ClientError::BadReply(_) => CniError::new(
                code::DECODE_FAILURE,
                "the daemon's reply is not understood",
                e.to_string(),
            ),
            ClientError::Refused(why) => {
                CniError::new(code::REFUSED, why, "the vswitch daemon refused the request")
            }
        })
    }

    /// The network, or `None` when the daemon has no such network.
    fn network(&self, name: &str) -> Result<Option<NetworkDetail>, CniError> {
        let Response::Networks(all) = self.call(&Request::NetworkList)? else {
            return Err(unexpected());
        };
        if !all.iter().any(|n| n.name == name) {
            return Ok(None);
        }
        match self.call(&Request::NetworkInspect {
            name: name.to_owned(),
        })? {
            Response::NetworkDetail(d) => Ok(Some(d)),
            _ => Err(unexpected()),
        }
    }

    fn known_network(&self, name: &str) -> Result<NetworkDetail, CniError> {
        self.network(name)?.ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("the vswitch daemon has no network {name:?}"),
                format!("create it (vswitch network create {name} --vni N --subnet CIDR --gateway IP) or set \"network\" in the config"),
            )
        })
    }

    fn detach(&self, port: &PortInfo) -> Result<(), CniError> {
        let request = Request::Detach {
            netns: port.netns.clone(),
            network: Some(port.network.clone()),
        };
        match self.call(&request) {
            Ok(_) => Ok(()),
            // Gone meanwhile (reaped, or another DEL): as good as detached.
            Err(e) if e.code == code::REFUSED && !self.still_there(port)? => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn still_there(&self, port: &PortInfo) -> Result<bool, CniError> {
        Ok(self
            .network(&port.network)?
            .is_some_and(|n| n.ports.iter().any(|p| p.port == port.port)))
    }
}

fn io_detail(e: &ClientError) -> String {
    match e {
        ClientError::Io { source, .. } => source.to_string(),
        _ => String::new(),
    }
}

fn unexpected() -> CniError {
    CniError::new(
        code::DECODE_FAILURE,
        "the daemon answered with the wrong kind of reply",
        "",
    )
}

/// The ports a container has on a network through `ifname`.
fn ports_of<'a>(
    net: &'a NetworkDetail,
    container: &'a str,
    ifname: &'a str,
) -> impl Iterator<Item = &'a PortInfo> {
    net.ports
        .iter()
        .filter(move |p| p.container_id.as_deref() == Some(container) && p.ifname == ifname)
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, CniError> {
    v.as_deref()
        .ok_or_else(|| CniError::new(code::INVALID_ENV, format!("{name} is not set"), ""))
}

/// The namespace path as the daemon accepts it: runtimes often name `/var/run/netns/X`, which
/// is `/run/netns/X` where `/var/run` links to `/run`.
fn container_netns(path: &str) -> Result<String, CniError> {
    let p = Path::new(path);
    if !p.exists() {
        return Err(CniError::new(
            code::CONTAINER_UNKNOWN,
            format!("the container's network namespace {path} does not exist"),
            "CNI_NETNS must name the container's network namespace",
        ));
    }
    if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
        if let Ok(dir) = std::fs::canonicalize(dir) {
            if dir == Path::new(crate::netns::NETNS_RUN_DIR) {
                return Ok(dir.join(name).display().to_string());
            }
        }
    }
    Ok(path.to_owned())
}

fn add(daemon: &Daemon, inv: &Invocation, conf: &NetConf) -> Result<Value, CniError> {
    let container = required(&inv.container_id, "CNI_CONTAINERID")?;
    let ifname = required(&inv.ifname, "CNI_IFNAME")?;
    let sandbox = required(&inv.netns, "CNI_NETNS")?;
    let netns = container_netns(sandbox)?;
    let net = daemon.known_network(conf.network())?;
    let Response::Port(port) = daemon.call(&Request::Attach(AttachRequest {
        netns,
        network: Some(net.name.clone()),
        ip: None,
        prefix: None,
        mac: None,
        ifname: Some(ifname.to_owned()),
        no_port_security: false,
        // The runtime writes the container's resolv.conf from the result's `dns`.
        name: None,
        aliases: Vec::new(),
        no_dns: true,
        container_id: Some(container.to_owned()),
        handoff: false,
    }))?
    else {
        return Err(unexpected());
    };
    Ok(add_result(&conf.cni_version, &port, net.gateway, sandbox))
}

/// DEL: succeeds when the port, the namespace or the network is already gone.
fn del(daemon: &Daemon, inv: &Invocation, conf: &NetConf) -> Result<(), CniError> {
    let container = required(&inv.container_id, "CNI_CONTAINERID")?;
    let ifname = required(&inv.ifname, "CNI_IFNAME")?;
    let Some(net) = daemon.network(conf.network())? else {
        return Ok(());
    };
    for port in ports_of(&net, container, ifname) {
        daemon.detach(port)?;
    }
    Ok(())
}

fn check(daemon: &Daemon, inv: &Invocation, conf: &NetConf) -> Result<(), CniError> {
    let container = required(&inv.container_id, "CNI_CONTAINERID")?;
    let ifname = required(&inv.ifname, "CNI_IFNAME")?;
    let netns = container_netns(required(&inv.netns, "CNI_NETNS")?)?;
    let Some(prev) = &conf.prev_result else {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs prevResult in the network configuration",
            "the runtime passes ADD's result as prevResult",
        ));
    };
    let net = daemon.known_network(conf.network())?;
    let failed = |msg: String| {
        CniError::new(
            code::CHECK_FAILED,
            msg,
            format!("container {container}, {ifname}"),
        )
    };
    let port = ports_of(&net, container, ifname).next().ok_or_else(|| {
        failed(format!(
            "vswitch has no port for this container on {}",
            net.name
        ))
    })?;
    let ip = port.ip.clone().unwrap_or_default();
    if !prev_addresses(prev, ifname).contains(&ip) {
        return Err(failed(format!(
            "prevResult does not give {ifname} the port's address {ip}"
        )));
    }
    let ns = crate::netns::NetnsRef::resolve_container(&netns).map_err(|e| {
        CniError::new(
            code::CONTAINER_UNKNOWN,
            e.to_string(),
            "CNI_NETNS must name the container's network namespace",
        )
    })?;
    let state = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO_FAILURE, "cannot start a runtime", e.to_string()))?
        .block_on(crate::netns::interface_state_in(&ns, ifname))
        .map_err(|e| {
            CniError::new(
                code::IO_FAILURE,
                e.to_string(),
                "reading the container's interface",
            )
        })?
        .ok_or_else(|| failed(format!("the container has no interface {ifname}")))?;
    if state.mac != Some(port.mac.0) {
        return Err(failed(format!(
            "{ifname} does not have the port's MAC {}",
            port.mac
        )));
    }
    let has_ip = state.ipv4.iter().any(|(a, p)| format!("{a}/{p}") == ip);
    if !has_ip {
        return Err(failed(format!(
            "{ifname} does not have the port's address {ip}"
        )));
    }
    Ok(())
}

/// STATUS: ready when the daemon answers and has the network.
fn status(daemon: &Daemon, conf: &NetConf) -> Result<(), CniError> {
    match daemon.network(conf.network())? {
        Some(_) => Ok(()),
        None => Err(CniError::new(
            code::NOT_AVAILABLE,
            format!("the vswitch daemon has no network {:?}", conf.network()),
            "create the network before starting containers on it",
        )),
    }
}

/// GC: detaches every port a CNI ADD made on this network whose attachment the runtime no
/// longer lists. Ports made by `vswitch attach` (no container id) are left alone.
fn gc(daemon: &Daemon, conf: &NetConf) -> Result<(), CniError> {
    let valid = conf.valid_attachments.clone().unwrap_or_default();
    let Some(net) = daemon.network(conf.network())? else {
        return Ok(());
    };
    for port in &net.ports {
        let Some(id) = &port.container_id else {
            continue;
        };
        if !valid
            .iter()
            .any(|a| &a.container_id == id && a.ifname == port.ifname)
        {
            daemon.detach(port)?;
        }
    }
    Ok(())
}
