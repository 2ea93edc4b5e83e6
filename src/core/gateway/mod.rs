//! The network's own host: an anycast gateway inside the switch.
//!
//! Every network has a gateway address, and the switch itself owns it, on every host at once:
//! each host's switch answers ARP and ICMP echo for it with the same MAC ([`anycast_mac`],
//! derived from the VNI, locally administered), so a container always talks to the gateway of
//! its own host and nothing to or from the gateway crosses the underlay. No kernel interface is
//! involved, so two networks with the same subnet each have their own gateway.
//!
//! Two halves:
//! - [`steer`] is the switch's one question on the data path: does this frame from a port go to
//!   the gateway? Only frames addressed to the gateway MAC and ARP requests for the gateway
//!   address do; everything else never meets the gateway (it stays off the fast path).
//! - [`Host`] is the gateway itself, a small IP stack (smoltcp) per network, sans-IO like the
//!   rest of the core: frames in, frames out, time passed in. It answers ARP and ICMP echo,
//!   and DNS for the network's names on port 53 (UDP and TCP), handing other names to the
//!   caller for the host's resolvers.

#![forbid(unsafe_code)]

mod dns;
mod host;

pub use dns::{DnsStats, Upstream, PORT as DNS_PORT};
pub use host::Host;

use std::net::Ipv4Addr;

use etherparse::{ArpOperation, ArpPacketSlice};

use crate::wire::{classify, EtherType, Mac, Vni};

/// What a network's gateway is: its address, the MAC every host answers with, and the MTU of
/// the network's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayAddr {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
}

impl GatewayAddr {
    /// The gateway of network `vni` at `ip` in a subnet of `prefix` bits, with the anycast MAC.
    pub fn new(vni: Vni, ip: Ipv4Addr, prefix: u8, mtu: u32) -> GatewayAddr {
        GatewayAddr {
            mac: anycast_mac(vni),
            ip,
            prefix,
            mtu,
        }
    }
}

/// The gateway MAC of network `vni`: `02:76:73` ("vs", locally administered, unicast) and the
/// 24-bit VNI, the same on every host.
pub fn anycast_mac(vni: Vni) -> Mac {
    let [_, a, b, c] = vni.get().to_be_bytes();
    Mac([0x02, 0x76, 0x73, a, b, c])
}

/// Whether a frame a port sent to `dst` goes to the gateway instead of through the switch:
/// unicast to the gateway MAC, or an ARP request for the gateway address (which the switch
/// answers itself rather than flooding it to every port and peer).
pub fn steer(gateway: &GatewayAddr, dst: Mac, frame: &[u8]) -> bool {
    if dst == gateway.mac {
        return true;
    }
    dst.is_broadcast() && is_arp_request_for(frame, gateway.ip)
}

fn is_arp_request_for(frame: &[u8], ip: Ipv4Addr) -> bool {
    if classify(frame).map(|i| i.ethertype) != Ok(EtherType::ARP) {
        return false;
    }
    let Some(Ok(arp)) = frame.get(14..).map(ArpPacketSlice::from_slice) else {
        return false;
    };
    let Ok(arp) = arp.to_packet().try_eth_ipv4() else {
        return false;
    };
    arp.operation == ArpOperation::REQUEST && arp.target_ipv4_addr() == ip
}

#[cfg(test)]
mod tests;
