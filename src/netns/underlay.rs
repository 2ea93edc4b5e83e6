//! The underlay MTU: what the daemon's VXLAN datagrams can carry, from which the ports' MTU
//! follows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{RouteAttribute, RouteHeader, RouteMetric, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::netlink::{link_is_loopback, link_is_up, link_mtu, to_io, Netlink};
use super::NetnsError;

/// What is assumed when nothing better is known.
pub const DEFAULT_MTU: u32 = 1500;

/// One interface as far as the MTU choice is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Iface {
    index: u32,
    mtu: u32,
    up: bool,
    loopback: bool,
}

/// A default route: its output interface and the `mtu` route metric, if set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DefaultRoute {
    oif: u32,
    mtu: Option<u32>,
}

/// The MTU of the interface that holds `listen` in the daemon's namespace.
///
/// For an unspecified address (`0.0.0.0`, `::`): the interface of the default route (IPv4 for
/// `0.0.0.0`; IPv6, then IPv4 for `::`), capped by the route's own `mtu` if it has one; without
/// a default route, the smallest MTU among interfaces that are up and not loopback; with none
/// of those, [`DEFAULT_MTU`].
pub async fn underlay_mtu(listen: IpAddr) -> Result<u32, NetnsError> {
    let nl = Netlink::here()?;
    let ifaces = ifaces(&nl).await?;
    if !listen.is_unspecified() {
        let holders = address_holders(&nl).await?;
        return mtu_of_address(listen, &ifaces, &holders);
    }
    let mut defaults = Vec::new();
    if listen.is_ipv6() {
        defaults.extend(default_route(&nl, AddressFamily::Inet6).await?);
    }
    defaults.extend(default_route(&nl, AddressFamily::Inet).await?);
    Ok(mtu_for_unspecified(&ifaces, defaults.first().copied()))
}

/// Every address of the daemon's namespace (what a peer must not be).
pub async fn local_addresses() -> Result<Vec<IpAddr>, NetnsError> {
    let nl = Netlink::here()?;
    Ok(address_holders(&nl)
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

async fn ifaces(nl: &Netlink) -> Result<Vec<Iface>, NetnsError> {
    let links = nl.links().await.map_err(|source| NetnsError::Netlink {
        op: "listing interfaces".into(),
        source,
    })?;
    Ok(links
        .iter()
        .map(|l| Iface {
            index: l.header.index,
            mtu: link_mtu(l).unwrap_or(DEFAULT_MTU),
            up: link_is_up(l),
            loopback: link_is_loopback(l),
        })
        .collect())
}

/// `(interface index, address)` for every address in the namespace.
async fn address_holders(nl: &Netlink) -> Result<Vec<(u32, IpAddr)>, NetnsError> {
    let msgs: Vec<_> = nl
        .handle()
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: "listing addresses".into(),
            source: to_io(e),
        })?;
    let mut out = Vec::new();
    for msg in &msgs {
        for attr in &msg.attributes {
            // IFA_LOCAL is the address itself on point-to-point links, where IFA_ADDRESS is the
            // peer; elsewhere both are the same. Either identifies the holder.
            if let AddressAttribute::Local(a) | AddressAttribute::Address(a) = attr {
                out.push((msg.header.index, *a));
            }
        }
    }
    Ok(out)
}

async fn default_route(
    nl: &Netlink,
    family: AddressFamily,
) -> Result<Option<DefaultRoute>, NetnsError> {
    let filter = if family == AddressFamily::Inet6 {
        RouteMessageBuilder::<Ipv6Addr>::new().build()
    } else {
        RouteMessageBuilder::<Ipv4Addr>::new().build()
    };
    let routes: Vec<_> = nl
        .handle()
        .route()
        .get(filter)
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: "listing routes".into(),
            source: to_io(e),
        })?;
    for r in &routes {
        let table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(r.header.table));
        if r.header.address_family != family
            || r.header.destination_prefix_length != 0
            || r.header.kind != RouteType::Unicast
            || table != u32::from(RouteHeader::RT_TABLE_MAIN)
        {
            continue;
        }
        let oif = r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            RouteAttribute::MultiPath(hops) => hops.first().map(|h| h.interface_index),
            _ => None,
        });
        let mtu = r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Metrics(ms) => ms.iter().find_map(|m| match m {
                RouteMetric::Mtu(v) if *v > 0 => Some(*v),
                _ => None,
            }),
            _ => None,
        });
        if let Some(oif) = oif {
            return Ok(Some(DefaultRoute { oif, mtu }));
        }
    }
    Ok(None)
}

fn mtu_of_address(
    listen: IpAddr,
    ifaces: &[Iface],
    holders: &[(u32, IpAddr)],
) -> Result<u32, NetnsError> {
    holders
        .iter()
        .filter(|(_, a)| *a == listen)
        .find_map(|(index, _)| ifaces.iter().find(|i| i.index == *index))
        .map(|i| i.mtu)
        .ok_or(NetnsError::AddressNotFound { addr: listen })
}

fn mtu_for_unspecified(ifaces: &[Iface], default: Option<DefaultRoute>) -> u32 {
    if let Some(route) = default {
        if let Some(i) = ifaces.iter().find(|i| i.index == route.oif) {
            return route.mtu.map_or(i.mtu, |m| m.min(i.mtu));
        }
    }
    ifaces
        .iter()
        .filter(|i| i.up && !i.loopback)
        .map(|i| i.mtu)
        .min()
        .unwrap_or(DEFAULT_MTU)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: Iface = Iface {
        index: 1,
        mtu: 65536,
        up: true,
        loopback: true,
    };
    const ETH0: Iface = Iface {
        index: 2,
        mtu: 9000,
        up: true,
        loopback: false,
    };
    const ETH1: Iface = Iface {
        index: 3,
        mtu: 1450,
        up: true,
        loopback: false,
    };
    const DOWN: Iface = Iface {
        index: 4,
        mtu: 1280,
        up: false,
        loopback: false,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn address_picks_its_interface() {
        let ifaces = [LO, ETH0, ETH1];
        let holders = [
            (1, ip("127.0.0.1")),
            (2, ip("10.0.0.1")),
            (3, ip("10.1.0.1")),
        ];
        assert_eq!(
            mtu_of_address(ip("10.1.0.1"), &ifaces, &holders).ok(),
            Some(1450)
        );
        assert_eq!(
            mtu_of_address(ip("127.0.0.1"), &ifaces, &holders).ok(),
            Some(65536)
        );
        let err = mtu_of_address(ip("10.9.9.9"), &ifaces, &holders).expect_err("must fail");
        assert!(err.to_string().contains("10.9.9.9"), "{err}");
    }

    #[test]
    fn unspecified_follows_the_default_route() {
        let ifaces = [LO, ETH0, ETH1, DOWN];
        let via_eth0 = DefaultRoute { oif: 2, mtu: None };
        assert_eq!(mtu_for_unspecified(&ifaces, Some(via_eth0)), 9000);
        let capped = DefaultRoute {
            oif: 2,
            mtu: Some(1400),
        };
        assert_eq!(mtu_for_unspecified(&ifaces, Some(capped)), 1400);
    }

    #[test]
    fn unspecified_without_default_takes_the_smallest_up_interface() {
        assert_eq!(mtu_for_unspecified(&[LO, ETH0, ETH1, DOWN], None), 1450);
        // A route to an interface that vanished counts as no route.
        let stale = DefaultRoute { oif: 99, mtu: None };
        assert_eq!(mtu_for_unspecified(&[LO, ETH0], Some(stale)), 9000);
    }

    #[test]
    fn nothing_but_loopback_means_1500() {
        assert_eq!(mtu_for_unspecified(&[LO, DOWN], None), DEFAULT_MTU);
        assert_eq!(mtu_for_unspecified(&[], None), DEFAULT_MTU);
    }
}
