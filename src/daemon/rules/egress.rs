//! The rules of egress: which containers get an egress link, which address of the egress subnet
//! each gets, and when the daemon's firewall table comes and goes.
//!
//! Egress is host-local: the egress subnet (`daemon --egress-subnet`, default 172.31.0.0/16) is
//! this host's alone, and its addresses are the ports' records, so IPAM needs no store: an
//! address is taken while a port records it and free once the port is gone.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use super::{Effect, View};
use crate::core::{ipam, PortId};
use crate::daemon::errors::RequestError;
use crate::daemon::masquerade::HOST_PREFIX;
use crate::netns::{EgressLink, NsId};
use crate::store::NetworkRecord;

/// The default `--egress-subnet`.
pub const DEFAULT_SUBNET: &str = "172.31.0.0/16";

/// The egress interface's name in the container.
pub const IFNAME: &str = "egress0";

/// This host's egress, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    pub subnet: Ipv4Net,
    /// IP forwarding is on in the daemon's namespace (`net.ipv4.ip_forward`): without it there
    /// is no egress, and containers are attached as on an `--internal` network.
    pub forwarding: bool,
}

impl Egress {
    /// The egress subnet's gateway: its first host address, which every egress link's end in
    /// the daemon's namespace holds.
    pub fn gateway(&self) -> Ipv4Addr {
        ipam::default_gateway(self.subnet).unwrap_or(self.subnet.network())
    }
}

impl Default for Egress {
    fn default() -> Egress {
        Egress {
            subnet: DEFAULT_SUBNET
                .parse()
                .expect("the default egress subnet parses"),
            forwarding: false,
        }
    }
}

/// `--egress-subnet`: an IPv4 subnet with room for its gateway and containers.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        format!("'{s}' is not an IPv4 subnet in CIDR notation (e.g. 172.31.0.0/16)")
    })?;
    if net.prefix_len() > 30 {
        return Err(format!(
            "egress subnet {net} is too small: use /30 or larger (its first address is the \
             gateway, then one per container)"
        ));
    }
    if net.network() != net.addr() {
        return Err(format!(
            "'{s}' has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// The egress subnet must not hold an address of this host (`own`) other than its gateway,
/// which the egress links' host ends hold: routes to the subnet would take that address's
/// traffic to the containers.
pub fn check_host(egress: &Egress, own: &[IpAddr]) -> Result<(), Ipv4Addr> {
    let gateway = egress.gateway();
    own.iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .find(|a| *a != gateway && egress.subnet.contains(a))
        .map_or(Ok(()), Err)
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A network whose containers get egress must not overlap the egress subnet: a container would
/// have both behind two interfaces. `--internal` networks have no egress, so any subnet is fine.
pub fn check_overlap(
    egress: &Egress,
    network: &str,
    subnet: Ipv4Net,
    internal: bool,
) -> Result<(), RequestError> {
    if internal || !overlaps(egress.subnet, subnet) {
        return Ok(());
    }
    Err(RequestError::EgressOverlap {
        network: network.to_owned(),
        subnet,
        egress: egress.subnet,
    })
}

/// The egress end of port `id` in the daemon's namespace.
pub fn host_ifname(id: PortId) -> String {
    format!("{HOST_PREFIX}{}", id.0)
}

/// The egress address a port records (CIDR).
pub fn address_of(egress: Option<&str>) -> Option<Ipv4Addr> {
    egress?.split('/').next()?.parse().ok()
}

/// The egress address for a new port on `network` in namespace `ns`, or `None` when the port
/// gets no egress link: an `--internal` network, IP forwarding off, a namespace that has one
/// already (from its port on another network), or a port a container runtime sets up itself
/// (Docker's hand-off, CNI), whose runtime owns the namespace's routes.
pub fn plan(
    view: &View<'_>,
    network: &NetworkRecord,
    ns: NsId,
    runtime_managed: bool,
) -> Result<Option<Ipv4Addr>, RequestError> {
    let egress = &view.egress;
    if network.internal || !egress.forwarding || runtime_managed {
        return Ok(None);
    }
    if view
        .ports
        .values()
        .any(|p| p.ns == ns && p.info.egress.is_some())
    {
        return Ok(None);
    }
    check_overlap(egress, &network.name, network.subnet, network.internal)?;
    let taken: BTreeSet<Ipv4Addr> = view
        .ports
        .values()
        .filter_map(|p| address_of(p.info.egress.as_deref()))
        .collect();
    ipam::next_free(egress.subnet, Some(egress.gateway()), &taken)
        .map(Some)
        .ok_or(RequestError::NoFreeEgressAddress {
            subnet: egress.subnet,
        })
}

/// The link of port `id` with egress address `ip`.
pub fn link(egress: &Egress, id: PortId, ip: Ipv4Addr) -> EgressLink {
    EgressLink {
        host_ifname: host_ifname(id),
        ifname: IFNAME.into(),
        address: ip,
        prefix: egress.subnet.prefix_len(),
        gateway: egress.gateway(),
    }
}

/// What goes with recorded ports a starting daemon dropped (`dropped`, which had egress links
/// and are not in the view): their links, and the table unless a port taken back has a link.
pub fn dropped(view: View<'_>, dropped: &[PortId]) -> Vec<Effect> {
    let mut effects: Vec<Effect> = dropped
        .iter()
        .map(|id| Effect::RemoveEgress {
            host_ifname: host_ifname(*id),
        })
        .collect();
    if !view.ports.values().any(|p| p.info.egress.is_some()) {
        effects.push(Effect::SetEgressRules(None));
    }
    effects
}

/// What goes with ports `gone`: their egress links, and the firewall table once no port is left
/// with one.
pub fn on_removal(view: &View<'_>, gone: &[PortId]) -> Vec<Effect> {
    let had = |id: &PortId| view.ports.get(id).is_some_and(|p| p.info.egress.is_some());
    let mut effects: Vec<Effect> = gone
        .iter()
        .filter(|id| had(id))
        .map(|id| Effect::RemoveEgress {
            host_ifname: host_ifname(*id),
        })
        .collect();
    let left = view
        .ports
        .iter()
        .any(|(id, p)| p.info.egress.is_some() && !gone.contains(id));
    if !effects.is_empty() && !left {
        effects.push(Effect::SetEgressRules(None));
    }
    effects
}
