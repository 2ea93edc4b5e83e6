//! A container's egress link: a veth pair whose one end is the container's egress interface
//! (an address of the egress subnet, the default route) and whose other end stays in the
//! daemon's namespace, holding the egress gateway address and a host route back to the
//! container. The daemon's namespace routes (and masquerades, see `daemon::masquerade`) what
//! the container sends to the world.
//!
//! Kernel routing, not the switch: egress traffic never enters the userspace data path, and the
//! link keeps working while no daemon runs (a restart changes nothing for it).

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::ifname::check_ifname;
use super::netlink::{to_io, Netlink};
use super::{NetnsError, NetnsRef};

/// One container's egress link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressLink {
    /// The veth end in the daemon's namespace.
    pub host_ifname: String,
    /// The veth end in the container.
    pub ifname: String,
    /// The container's address in the egress subnet, and the subnet's prefix length.
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// The egress subnet's gateway: held by every host end, the container's default route.
    pub gateway: Ipv4Addr,
}

/// Creates the egress link into `ns`. On failure nothing is left (deleting one end of a veth
/// pair deletes both).
pub async fn add_egress(ns: &NetnsRef, link: &EgressLink) -> Result<(), NetnsError> {
    for name in [&link.host_ifname, &link.ifname] {
        check_ifname(name)
            .map_err(|why| NetnsError::InvalidConfig(format!("egress interface name: {why}")))?;
    }
    let host = Netlink::here()?;
    let inside = Netlink::inside(ns).await?;
    if inside.link_in(&link.ifname, ns).await?.is_some() {
        return Err(NetnsError::InterfaceExists {
            ifname: link.ifname.clone(),
            ns: ns.to_string(),
        });
    }
    // The peer is made in the container's namespace under its final name: one message, so no
    // stray end ever appears in the daemon's namespace.
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(link.ifname.clone())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let pair = LinkVeth::new(&link.host_ifname, &link.ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    host.handle()
        .link()
        .add(pair)
        .execute()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: format!(
                "creating the egress link '{}' (in the daemon's namespace) and '{}' (in {ns})",
                link.host_ifname, link.ifname
            ),
            source: to_io(e),
        })?;
    if let Err(e) = configure(&host, &inside, ns, link).await {
        if let Err(undo) = remove_egress(&link.host_ifname).await {
            tracing::warn!("could not remove the half-made egress link: {undo}");
        }
        return Err(e);
    }
    Ok(())
}

async fn configure(
    host: &Netlink,
    inside: &Netlink,
    ns: &NetnsRef,
    link: &EgressLink,
) -> Result<(), NetnsError> {
    let failed = |op: String| move |source| NetnsError::Netlink { op, source };
    let missing = |name: &str, where_: String| NetnsError::Netlink {
        op: format!("finding '{name}' in {where_} after creating it"),
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    };
    let theirs = inside
        .link_in(&link.ifname, ns)
        .await?
        .ok_or_else(|| missing(&link.ifname, ns.to_string()))?
        .header
        .index;
    let ours = host
        .link_by_name(&link.host_ifname)
        .await
        .map_err(failed(format!("looking up '{}'", link.host_ifname)))?
        .ok_or_else(|| missing(&link.host_ifname, "the daemon's namespace".into()))?
        .header
        .index;

    // The container's end: up, its address, the default route through the gateway.
    inside
        .set_link(LinkUnspec::new_with_index(theirs).up().build())
        .await
        .map_err(failed(format!("bringing up '{}' in {ns}", link.ifname)))?;
    inside
        .handle()
        .address()
        .add(theirs, IpAddr::V4(link.address), link.prefix)
        .execute()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: format!(
                "adding {}/{} to '{}' in {ns}",
                link.address, link.prefix, link.ifname
            ),
            source: to_io(e),
        })?;
    let default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(link.gateway)
        .output_interface(theirs)
        .build();
    inside
        .handle()
        .route()
        .add(default)
        .execute()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: format!(
                "adding the default route via {} on '{}' in {ns} (does the container have a \
                 default route already?)",
                link.gateway, link.ifname
            ),
            source: to_io(e),
        })?;

    // The daemon's end: up, the gateway address, the route back to the container.
    host.set_link(LinkUnspec::new_with_index(ours).up().build())
        .await
        .map_err(failed(format!("bringing up '{}'", link.host_ifname)))?;
    host.handle()
        .address()
        .add(ours, IpAddr::V4(link.gateway), 32)
        .execute()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: format!("adding {}/32 to '{}'", link.gateway, link.host_ifname),
            source: to_io(e),
        })?;
    let back = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(link.address, 32)
        .output_interface(ours)
        .pref_source(link.gateway)
        .scope(RouteScope::Link)
        .build();
    host.handle()
        .route()
        .add(back)
        .execute()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: format!(
                "adding the route to {} via '{}'",
                link.address, link.host_ifname
            ),
            source: to_io(e),
        })
}

/// Deletes an egress link by its end in the daemon's namespace (the container's end goes with
/// it). `false` when there was none (its container's namespace was deleted, which takes the
/// pair with it).
pub async fn remove_egress(host_ifname: &str) -> Result<bool, NetnsError> {
    let host = Netlink::here()?;
    let failed = |source| NetnsError::Netlink {
        op: format!("removing the egress link '{host_ifname}'"),
        source,
    };
    let Some(link) = host.link_by_name(host_ifname).await.map_err(failed)? else {
        return Ok(false);
    };
    if !is_veth(&link) {
        return Err(NetnsError::InvalidConfig(format!(
            "'{host_ifname}' in the daemon's namespace is not a veth; refusing to delete it"
        )));
    }
    match host.del_link(link.header.index).await {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(failed(e)),
    }
}

/// Whether the egress link's end `host_ifname` is in the daemon's namespace.
pub async fn egress_exists(host_ifname: &str) -> Result<bool, NetnsError> {
    let host = Netlink::here()?;
    let link = host
        .link_by_name(host_ifname)
        .await
        .map_err(|source| NetnsError::Netlink {
            op: format!("looking up the egress link '{host_ifname}'"),
            source,
        })?;
    Ok(link.is_some_and(|l| is_veth(&l)))
}

fn is_veth(link: &rtnetlink::packet_route::link::LinkMessage) -> bool {
    super::netlink::link_kind_is(link, &rtnetlink::packet_route::link::InfoKind::Veth)
}
