//! The rules of the network's services on a port: its DNS names and the namespace's
//! resolv.conf.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::control::{AttachRequest, PortInfo};
use crate::core::dns::{check_name, Names};
use crate::daemon::errors::RequestError;
use crate::store::NetworkRecord;

/// Where `ip netns exec` finds a namespace's own /etc files (it bind-mounts them over /etc).
pub const NETNS_ETC: &str = "/etc/netns";
/// The first line of every resolv.conf vswitch writes: detach removes only such a file.
pub const RESOLV_MARK: &str = "# written by vswitch attach; removed by vswitch detach";

/// The name of a named namespace (`NAME` or `/run/netns/NAME`), `None` for other paths.
pub fn netns_name(arg: &str) -> Option<&str> {
    if !arg.contains('/') {
        return Some(arg);
    }
    let path = Path::new(arg);
    if path.parent() != Some(Path::new("/run/netns")) {
        return None;
    }
    path.file_name()?.to_str()
}

/// A port's DNS names: `--name` (or the namespace's name, when it is a named namespace and a
/// DNS name), then each `--alias`, without repeats.
pub fn port_names(req: &AttachRequest) -> Result<Vec<String>, RequestError> {
    let mut names: Vec<String> = Vec::new();
    match &req.name {
        Some(name) => {
            check_name(name).map_err(RequestError::DnsName)?;
            names.push(name.clone());
        }
        None => {
            if let Some(n) = netns_name(&req.netns).filter(|n| check_name(n).is_ok()) {
                names.push(n.to_owned());
            }
        }
    }
    for alias in &req.aliases {
        check_name(alias).map_err(RequestError::DnsName)?;
        if !names.iter().any(|n| n.eq_ignore_ascii_case(alias)) {
            names.push(alias.clone());
        }
    }
    Ok(names)
}

/// The resolv.conf to write for an attach: into `/etc/netns/NAME/` of a named namespace, with
/// the network's gateway as the nameserver; none with `--no-dns`, for a namespace given by a
/// path, or on a network without a gateway.
pub fn resolv_conf(req: &AttachRequest, network: &NetworkRecord) -> Option<(PathBuf, String)> {
    if req.no_dns {
        return None;
    }
    let name = netns_name(&req.netns)?;
    let gateway = network.gateway?;
    Some((resolv_path(name), resolv_text(gateway)))
}

/// Where the resolv.conf of named namespace `name` lives.
pub fn resolv_path(name: &str) -> PathBuf {
    Path::new(NETNS_ETC).join(name).join("resolv.conf")
}

/// The resolv.conf vswitch writes: the gateway as the one nameserver.
pub fn resolv_text(gateway: Ipv4Addr) -> String {
    format!("{RESOLV_MARK}\nnameserver {gateway}\n")
}

/// The DNS names of a network's ports.
pub fn names_of<'a>(ports: impl IntoIterator<Item = &'a PortInfo>) -> Names {
    Names::new(ports.into_iter().filter_map(|p| {
        let ip: Ipv4Addr = p.ip.as_deref()?.split('/').next()?.parse().ok()?;
        Some((p.names.as_slice(), ip))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(netns: &str, name: Option<&str>, aliases: &[&str]) -> AttachRequest {
        AttachRequest {
            netns: netns.into(),
            network: None,
            ip: None,
            prefix: None,
            mac: None,
            ifname: None,
            no_port_security: false,
            name: name.map(Into::into),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            no_dns: false,
            container_id: None,
            handoff: false,
        }
    }

    #[test]
    fn names_default_to_a_named_namespace() {
        assert_eq!(port_names(&req("web1", None, &[])).expect("ok"), ["web1"]);
        assert_eq!(
            port_names(&req("/run/netns/web1", None, &["web", "WEB1"])).expect("ok"),
            ["web1", "web"],
            "an alias equal to the name (case aside) is not repeated"
        );
        assert!(port_names(&req("/proc/1/ns/net", None, &[]))
            .expect("ok")
            .is_empty());
        // A namespace name DNS cannot carry is simply not a name.
        assert!(port_names(&req("c_1", None, &[])).expect("ok").is_empty());
        assert_eq!(
            port_names(&req("c1", Some("api"), &["web"])).expect("ok"),
            ["api", "web"]
        );
        let e = port_names(&req("c1", Some("bad name"), &[])).expect_err("refused");
        assert!(e.to_string().contains("is not a DNS name"), "{e}");
        let e = port_names(&req("c1", None, &["-x"])).expect_err("refused");
        assert!(e.to_string().contains("'-x'"), "{e}");
    }

    #[test]
    fn resolv_conf_only_for_named_namespaces_with_dns() {
        let mut network = NetworkRecord {
            name: "n".into(),
            vni: crate::wire::Vni::new(5).expect("vni"),
            subnet: "10.5.0.0/24".parse().expect("cidr"),
            gateway: Some(Ipv4Addr::new(10, 5, 0, 1)),
            mtu: None,
            encrypted: false,
            key_file: None,
            key_check: None,
            internal: false,
        };
        let (path, text) = resolv_conf(&req("c1", None, &[]), &network).expect("written");
        assert_eq!(path, Path::new("/etc/netns/c1/resolv.conf"));
        assert_eq!(text, format!("{RESOLV_MARK}\nnameserver 10.5.0.1\n"));
        assert!(resolv_conf(&req("/proc/1/ns/net", None, &[]), &network).is_none());
        let mut no_dns = req("c1", None, &[]);
        no_dns.no_dns = true;
        assert!(resolv_conf(&no_dns, &network).is_none());
        network.gateway = None;
        assert!(resolv_conf(&req("c1", None, &[]), &network).is_none());
    }

    #[test]
    fn names_of_ports_map_to_their_addresses() {
        let port = |ip: &str, names: &[&str]| PortInfo {
            port: 1,
            network: "n".into(),
            netns: "x".into(),
            ifname: "eth0".into(),
            mac: crate::wire::Mac([2, 0, 0, 0, 0, 1]),
            ip: Some(ip.into()),
            mtu: 1450,
            port_security: true,
            names: names.iter().map(|n| n.to_string()).collect(),
            container_id: None,
            egress: None,
        };
        let ports = [
            port("10.5.0.2/24", &["a", "web"]),
            port("10.5.0.3/24", &["b", "web"]),
        ];
        let names = names_of(&ports);
        assert_eq!(names.lookup("web").len(), 2);
        assert_eq!(names.lookup("A"), [Ipv4Addr::new(10, 5, 0, 2)]);
    }
}
