//! Attaching a daemon-owned TAP to a container: move it into the namespace and configure it
//! there, all over netlink.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use rtnetlink::packet_route::address::AddressHeaderFlags;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{LinkUnspec, RouteMessageBuilder};

use super::ifname::check_ifname;
use super::netlink::{link_is_tun, link_is_up, to_io, Netlink};
use super::{NetnsError, NetnsRef};
use crate::wire::Mac;

/// The smallest MTU Linux accepts on an Ethernet device (RFC 791's 68 bytes).
pub const MIN_MTU: u32 = 68;
/// The largest MTU a TAP device accepts.
pub const MAX_MTU: u32 = 65535;
/// IPv6 needs at least this much (RFC 8200); below it the kernel disables IPv6 on the link.
pub const MIN_MTU_IPV6: u32 = 1280;

/// How the port looks from inside the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Interface name inside the namespace.
    pub ifname: String,
    /// The port's MAC address (unicast).
    pub mac: [u8; 6],
    /// The port's MTU: the underlay MTU minus the encapsulation overhead.
    pub mtu: u32,
    /// Address and prefix length to assign, if any.
    pub address: Option<(IpAddr, u8)>,
    /// Default route via this gateway, if any; needs `address` of the same family.
    pub gateway: Option<IpAddr>,
}

impl PortConfig {
    /// `eth0` with the given MAC and MTU, no address, no route.
    pub fn new(mac: [u8; 6], mtu: u32) -> PortConfig {
        PortConfig {
            ifname: "eth0".to_string(),
            mac,
            mtu,
            address: None,
            gateway: None,
        }
    }

    /// Checks everything that can be checked without the kernel, so a bad request changes
    /// nothing.
    pub fn validate(&self) -> Result<(), NetnsError> {
        let bad = |msg: String| Err(NetnsError::InvalidConfig(msg));

        if let Err(why) = check_ifname(&self.ifname) {
            return bad(format!("interface name: {why}"));
        }
        if self.ifname.contains('%') {
            return bad(format!(
                "interface name '{}' contains '%'; give the exact name the container should see",
                self.ifname
            ));
        }
        if let Err(why) = Mac(self.mac).check_station() {
            return bad(why.to_string());
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return bad(format!(
                "MTU {} is out of range; it must be between {MIN_MTU} and {MAX_MTU}",
                self.mtu
            ));
        }

        let Some((addr, prefix)) = self.address else {
            if let Some(gw) = self.gateway {
                return bad(format!(
                    "gateway {gw} given without an address; a default route needs an address \
                     in the gateway's subnet"
                ));
            }
            return Ok(());
        };
        match addr {
            IpAddr::V4(a) => {
                if prefix == 0 || prefix > 32 {
                    return bad(format!("prefix length /{prefix} for {a}: must be 1..=32"));
                }
                if a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback() {
                    return bad(format!("{a} cannot be an interface address"));
                }
            }
            IpAddr::V6(a) => {
                if prefix == 0 || prefix > 128 {
                    return bad(format!("prefix length /{prefix} for {a}: must be 1..=128"));
                }
                if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                    return bad(format!("{a} cannot be an interface address"));
                }
                if self.mtu < MIN_MTU_IPV6 {
                    return bad(format!(
                        "MTU {} is below {MIN_MTU_IPV6}, the minimum for IPv6 address {a}",
                        self.mtu
                    ));
                }
            }
        }

        let Some(gw) = self.gateway else {
            return Ok(());
        };
        if gw == addr {
            return bad(format!("gateway {gw} is the port's own address"));
        }
        match (addr, gw) {
            (IpAddr::V4(a), IpAddr::V4(g)) => {
                if !same_subnet_v4(a, g, prefix) {
                    return bad(format!(
                        "gateway {g} is not in the port's subnet {}/{prefix}",
                        network_v4(a, prefix)
                    ));
                }
            }
            (IpAddr::V6(a), IpAddr::V6(g)) => {
                if !is_link_local_v6(g) && !same_subnet_v6(a, g, prefix) {
                    return bad(format!(
                        "gateway {g} is neither link-local nor in the port's subnet {a}/{prefix}"
                    ));
                }
            }
            _ => {
                return bad(format!(
                    "gateway {gw} and address {addr} are of different IP versions"
                ))
            }
        }
        Ok(())
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn network_v4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a) & mask_v4(prefix))
}

fn same_subnet_v4(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let m = mask_v4(prefix);
    u32::from(a) & m == u32::from(b) & m
}

fn same_subnet_v6(a: Ipv6Addr, b: Ipv6Addr, prefix: u8) -> bool {
    let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(a) & m == u128::from(b) & m
}

fn is_link_local_v6(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Sets the MAC and MTU of TAP `tap_ifname` in the daemon's own namespace, for a caller that
/// moves it into the container itself (Docker's `Join`).
pub async fn prepare_tap(tap_ifname: &str, mac: Mac, mtu: u32) -> Result<(), NetnsError> {
    let host = Netlink::here()?;
    let tap = find_tap(&host, tap_ifname).await?;
    host.set_link(
        LinkUnspec::new_with_index(tap.header.index)
            .address(mac.0.to_vec())
            .mtu(mtu)
            .build(),
    )
    .await
    .map_err(|source| NetnsError::Netlink {
        op: format!("setting MAC {mac} and MTU {mtu} on TAP '{tap_ifname}'"),
        source,
    })
}

/// The link called `tap_ifname` in the daemon's own namespace.
async fn find_tap(host: &Netlink, tap_ifname: &str) -> Result<LinkMessage, NetnsError> {
    host.link_by_name(tap_ifname)
        .await
        .map_err(|source| NetnsError::Netlink {
            op: format!("looking up TAP '{tap_ifname}'"),
            source,
        })?
        .ok_or_else(|| NetnsError::TapNotFound {
            name: tap_ifname.to_string(),
        })
}

/// Attaches the TAP `tap_ifname` (in the daemon's namespace) to the namespace `ns`.
///
/// Sets the TAP's MAC and MTU, moves it into `ns` under the name `cfg.ifname`, then inside `ns`
/// brings it up (and `lo`, if it is down), adds the address and the default route. Only TAP
/// devices are ever moved: a typo cannot hand the host's uplink to a container.
///
/// Fails without changing anything if `cfg` is invalid, the TAP does not exist or `cfg.ifname`
/// is taken in `ns`. If a later step fails, the link is deleted from `ns` again, so nothing is
/// left half-configured; the caller should then drop its TAP.
pub async fn attach_port(
    tap_ifname: &str,
    ns: &NetnsRef,
    cfg: &PortConfig,
) -> Result<(), NetnsError> {
    cfg.validate()?;
    if check_ifname(tap_ifname).is_err() {
        return Err(NetnsError::TapNotFound {
            name: tap_ifname.to_string(),
        });
    }

    let host = Netlink::here()?;
    let tap = find_tap(&host, tap_ifname).await?;
    if !link_is_tun(&tap) {
        return Err(NetnsError::NotATap {
            ifname: tap_ifname.to_string(),
            ns: "the daemon's network namespace".to_string(),
        });
    }
    let index = tap.header.index;

    let inside = Netlink::inside(ns).await?;
    if interface_exists(&inside, &cfg.ifname, ns).await? {
        return Err(NetnsError::InterfaceExists {
            ifname: cfg.ifname.clone(),
            ns: ns.to_string(),
        });
    }

    host.set_link(
        LinkUnspec::new_with_index(index)
            .address(cfg.mac.to_vec())
            .mtu(cfg.mtu)
            .build(),
    )
    .await
    .map_err(|source| NetnsError::Netlink {
        op: format!(
            "setting MAC {} and MTU {} on TAP '{tap_ifname}'",
            Mac(cfg.mac),
            cfg.mtu
        ),
        source,
    })?;

    // One message moves and renames: if the TAP's own name is taken in the target, the kernel
    // uses `ifname` for the move itself instead of failing.
    let moved = host
        .set_link(
            LinkUnspec::new_with_index(index)
                .setns_by_fd(ns.as_raw_fd())
                .name(cfg.ifname.clone())
                .build(),
        )
        .await;
    if let Err(source) = moved {
        return Err(undo_failed_move(&host, &inside, index, tap_ifname, ns, cfg, source).await);
    }

    let link = match inside.link_by_name(&cfg.ifname).await {
        Ok(Some(link)) => link,
        Ok(None) => {
            return Err(NetnsError::Netlink {
                op: format!(
                    "finding '{}' in network namespace {ns} after moving it there",
                    cfg.ifname
                ),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            })
        }
        Err(source) => {
            return Err(NetnsError::Netlink {
                op: format!("looking up '{}' in network namespace {ns}", cfg.ifname),
                source,
            })
        }
    };
    let inner_index = link.header.index;

    if let Err(err) = configure(&inside, &link, ns, cfg).await {
        if let Err(undo) = inside.del_link(inner_index).await {
            tracing::warn!(
                ifname = %cfg.ifname, %ns, error = %undo,
                "could not remove the half-configured port"
            );
        }
        return Err(err);
    }
    tracing::debug!(tap = tap_ifname, ifname = %cfg.ifname, %ns, "port attached");
    Ok(())
}

/// The move failed. Either nothing happened (map the error), or the kernel moved the TAP but
/// could not rename it; then it sits in `ns` under its old name and is deleted there.
async fn undo_failed_move(
    host: &Netlink,
    inside: &Netlink,
    index: u32,
    tap_ifname: &str,
    ns: &NetnsRef,
    cfg: &PortConfig,
    source: io::Error,
) -> NetnsError {
    let still_here = matches!(
        host.link_by_index(index).await,
        Ok(Some(ref l)) if super::netlink::link_name(l) == Some(tap_ifname)
    );
    if !still_here {
        if let Ok(Some(stray)) = inside.link_by_name(tap_ifname).await {
            if link_is_tun(&stray) {
                if let Err(e) = inside.del_link(stray.header.index).await {
                    tracing::warn!(tap = tap_ifname, %ns, error = %e, "could not remove the moved TAP");
                }
            }
        }
    }
    if source.raw_os_error() == Some(libc::EEXIST) {
        return NetnsError::InterfaceExists {
            ifname: cfg.ifname.clone(),
            ns: ns.to_string(),
        };
    }
    NetnsError::Netlink {
        op: format!(
            "moving TAP '{tap_ifname}' into network namespace {ns} as '{}'",
            cfg.ifname
        ),
        source,
    }
}

/// Everything done inside the namespace once the port is there.
async fn configure(
    nl: &Netlink,
    link: &LinkMessage,
    ns: &NetnsRef,
    cfg: &PortConfig,
) -> Result<(), NetnsError> {
    let ifname = &cfg.ifname;
    let index = link.header.index;
    let failed = |op: String| move |source| NetnsError::Netlink { op, source };

    match nl.link_by_name("lo").await {
        Ok(Some(lo)) if !link_is_up(&lo) => nl
            .set_link(LinkUnspec::new_with_index(lo.header.index).up().build())
            .await
            .map_err(failed(format!(
                "bringing up 'lo' in network namespace {ns}"
            )))?,
        // A namespace without `lo` is odd but not ours to fix.
        Ok(_) => {}
        Err(source) => {
            return Err(NetnsError::Netlink {
                op: format!("looking up 'lo' in network namespace {ns}"),
                source,
            })
        }
    }

    nl.set_link(LinkUnspec::new_with_index(index).up().build())
        .await
        .map_err(failed(format!(
            "bringing up '{ifname}' in network namespace {ns}"
        )))?;

    if let Some((addr, prefix)) = cfg.address {
        let mut req = nl.handle().address().add(index, addr, prefix);
        if addr.is_ipv6() {
            // Uniqueness is the switch's address management's job; skipping DAD makes the
            // address usable the moment the container starts instead of ~1 s later.
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        req.execute().await.map_err(|e| NetnsError::Netlink {
            op: format!("adding address {addr}/{prefix} to '{ifname}' in network namespace {ns}"),
            source: to_io(e),
        })?;
    }

    if let Some(gw) = cfg.gateway {
        let route = match gw {
            IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(g)
                .output_interface(index)
                .build(),
            IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(g)
                .output_interface(index)
                .build(),
        };
        nl.handle()
            .route()
            .add(route)
            .execute()
            .await
            .map_err(|e| NetnsError::Netlink {
                op: format!("adding default route via {gw} in network namespace {ns}"),
                source: to_io(e),
            })?;
    }
    Ok(())
}

async fn interface_exists(nl: &Netlink, ifname: &str, ns: &NetnsRef) -> Result<bool, NetnsError> {
    nl.link_in(ifname, ns).await.map(|l| l.is_some())
}

/// Whether an interface called `ifname` exists in `ns`.
pub async fn interface_exists_in(ns: &NetnsRef, ifname: &str) -> Result<bool, NetnsError> {
    if let Err(why) = check_ifname(ifname) {
        return Err(NetnsError::InvalidConfig(format!("interface name: {why}")));
    }
    let nl = Netlink::inside(ns).await?;
    interface_exists(&nl, ifname, ns).await
}

/// Removes the TAP `ifname` from `ns`. Returns `false` if there was no such interface.
///
/// Closing the daemon's descriptor removes the port anyway; this is for cleaning up after a
/// daemon that could not. Refuses to delete anything that is not a TAP.
pub async fn detach_port(ns: &NetnsRef, ifname: &str) -> Result<bool, NetnsError> {
    if let Err(why) = check_ifname(ifname) {
        return Err(NetnsError::InvalidConfig(format!("interface name: {why}")));
    }
    let nl = Netlink::inside(ns).await?;
    let link = nl
        .link_by_name(ifname)
        .await
        .map_err(|source| NetnsError::Netlink {
            op: format!("looking up '{ifname}' in network namespace {ns}"),
            source,
        })?;
    let Some(link) = link else {
        return Ok(false);
    };
    if !link_is_tun(&link) {
        return Err(NetnsError::NotATap {
            ifname: ifname.to_string(),
            ns: ns.to_string(),
        });
    }
    match nl.del_link(link.header.index).await {
        Ok(()) => Ok(true),
        // Gone in the meantime (the daemon closed the TAP): the goal is reached.
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(source) => Err(NetnsError::Netlink {
            op: format!("deleting '{ifname}' in network namespace {ns}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    fn v4(addr: &str, prefix: u8, gw: Option<&str>) -> PortConfig {
        PortConfig {
            address: Some((addr.parse().expect("addr"), prefix)),
            gateway: gw.map(|g| g.parse().expect("gw")),
            ..PortConfig::new(MAC, 1450)
        }
    }

    fn invalid(cfg: &PortConfig) -> String {
        match cfg.validate() {
            Err(NetnsError::InvalidConfig(msg)) => msg,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn good_configs() {
        PortConfig::new(MAC, 1500).validate().expect("bare port");
        v4("10.0.0.2", 24, Some("10.0.0.1")).validate().expect("v4");
        v4("10.0.0.2", 32, None).validate().expect("v4 /32");
        let v6 = PortConfig {
            address: Some(("fd00::2".parse().expect("addr"), 64)),
            gateway: Some("fe80::1".parse().expect("gw")),
            ..PortConfig::new(MAC, 1450)
        };
        v6.validate().expect("v6 with link-local gateway");
    }

    #[test]
    fn bad_ifname() {
        let mut cfg = PortConfig::new(MAC, 1500);
        cfg.ifname = "eth0-much-too-long".into();
        assert!(invalid(&cfg).contains("at most 15"));
        cfg.ifname = "eth%d".into();
        assert!(invalid(&cfg).contains('%'));
        cfg.ifname = "a/b".into();
        invalid(&cfg);
    }

    #[test]
    fn bad_mac() {
        assert!(invalid(&PortConfig::new([0; 6], 1500)).contains("00:00:00:00:00:00"));
        assert_eq!(
            invalid(&PortConfig::new([0x01, 0, 0x5e, 0, 0, 1], 1500)),
            "MAC address 01:00:5e:00:00:01 is a multicast address; the first octet must be even"
        );
    }

    #[test]
    fn bad_mtu() {
        assert!(invalid(&PortConfig::new(MAC, 67)).contains("between 68 and 65535"));
        assert!(invalid(&PortConfig::new(MAC, 65536)).contains("out of range"));
        let v6 = PortConfig {
            address: Some(("fd00::2".parse().expect("addr"), 64)),
            ..PortConfig::new(MAC, 1279)
        };
        assert!(invalid(&v6).contains("1280"));
    }

    #[test]
    fn bad_addresses() {
        assert!(invalid(&v4("10.0.0.2", 33, None)).contains("/33"));
        assert!(invalid(&v4("10.0.0.2", 0, None)).contains("/0"));
        assert!(invalid(&v4("0.0.0.0", 24, None)).contains("cannot be"));
        assert!(invalid(&v4("224.0.0.1", 24, None)).contains("cannot be"));
        assert!(invalid(&v4("127.0.0.2", 8, None)).contains("cannot be"));
    }

    #[test]
    fn bad_gateways() {
        assert_eq!(
            invalid(&v4("10.0.0.2", 24, Some("10.0.1.1"))),
            "gateway 10.0.1.1 is not in the port's subnet 10.0.0.0/24"
        );
        assert!(invalid(&v4("10.0.0.2", 24, Some("10.0.0.2"))).contains("own address"));
        assert!(invalid(&v4("10.0.0.2", 24, Some("fe80::1"))).contains("different IP versions"));
        let no_addr = PortConfig {
            gateway: Some("10.0.0.1".parse().expect("gw")),
            ..PortConfig::new(MAC, 1500)
        };
        assert!(invalid(&no_addr).contains("without an address"));
        let v6 = PortConfig {
            address: Some(("fd00::2".parse().expect("addr"), 64)),
            gateway: Some("fd01::1".parse().expect("gw")),
            ..PortConfig::new(MAC, 1500)
        };
        assert!(invalid(&v6).contains("neither link-local"));
    }

    #[test]
    fn subnet_math() {
        let a: Ipv4Addr = "192.168.7.9".parse().expect("a");
        assert_eq!(
            network_v4(a, 20),
            "192.168.0.0".parse::<Ipv4Addr>().expect("n")
        );
        assert_eq!(network_v4(a, 32), a);
        assert!(same_subnet_v4(a, "192.168.15.1".parse().expect("b"), 20));
        assert!(!same_subnet_v4(a, "192.168.16.1".parse().expect("b"), 20));
        assert!(same_subnet_v6(
            "fd00::1".parse().expect("a"),
            "fd00::ffff".parse().expect("b"),
            64
        ));
        assert!(is_link_local_v6("fe80::1".parse().expect("ll")));
        assert!(!is_link_local_v6("fec0::1".parse().expect("site-local")));
    }
}
