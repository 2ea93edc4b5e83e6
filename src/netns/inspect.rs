//! Reading back what a container's interface looks like, for CNI `CHECK`: its MAC, MTU and
//! IPv4 addresses as the container's kernel has them.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;

use super::netlink::{link_mtu, to_io, Netlink};
use super::{NetnsError, NetnsRef};

/// An interface inside a namespace, as its kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceState {
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// IPv4 addresses with their prefix lengths.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

/// The interface `ifname` in `ns`, or `None` when there is no such interface.
pub async fn interface_state_in(
    ns: &NetnsRef,
    ifname: &str,
) -> Result<Option<InterfaceState>, NetnsError> {
    let nl = Netlink::inside(ns).await?;
    let Some(link) = nl.link_in(ifname, ns).await? else {
        return Ok(None);
    };
    let mac = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
        _ => None,
    });
    let addresses: Vec<_> = nl
        .handle()
        .address()
        .get()
        .set_link_index_filter(link.header.index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetnsError::Netlink {
            op: format!("listing addresses in network namespace {ns}"),
            source: to_io(e),
        })?;
    let ipv4 = addresses
        .iter()
        .filter(|m| m.header.index == link.header.index)
        .flat_map(|m| {
            m.attributes.iter().filter_map(move |a| match a {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some((*ip, m.header.prefix_len)),
                _ => None,
            })
        })
        .collect();
    Ok(Some(InterfaceState {
        mac,
        mtu: link_mtu(&link),
        ipv4,
    }))
}
