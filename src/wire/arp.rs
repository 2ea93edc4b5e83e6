//! ARP for IPv4 over Ethernet, just what address conflict detection needs (RFC 5227): building a
//! probe, and recognising a frame that claims an address. Packet layout is etherparse's.

use std::net::Ipv4Addr;

use etherparse::{ArpEthIpv4Packet, ArpOperation, ArpPacketSlice, Ethernet2HeaderSlice};

use super::{EtherType, Mac};

/// An ARP probe (RFC 5227 §2.1.1): "who has `target`?", asked from `sender` with a zero sender
/// IP address so no one's cache learns anything, broadcast.
pub fn probe(sender: Mac, target: Ipv4Addr) -> Vec<u8> {
    request(sender, Ipv4Addr::UNSPECIFIED, target)
}

/// An ARP announcement (RFC 5227 §2.3, a gratuitous ARP): a broadcast request for `ip` from
/// `ip` itself, so every neighbour that has an entry for `ip` updates it to `sender`.
pub fn announcement(sender: Mac, ip: Ipv4Addr) -> Vec<u8> {
    request(sender, ip, ip)
}

/// A broadcast ARP request.
fn request(sender: Mac, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: sender.0,
        sender_ipv4: sender_ip.octets(),
        target_mac: [0; 6],
        target_ipv4: target.octets(),
    };
    let mut frame = Vec::with_capacity(14 + ArpEthIpv4Packet::LEN);
    frame.extend_from_slice(&Mac::BROADCAST.0);
    frame.extend_from_slice(&sender.0);
    frame.extend_from_slice(&EtherType::ARP.to_be_bytes());
    frame.extend_from_slice(&arp.to_bytes());
    frame
}

/// Whether `frame` is evidence that some other station uses `addr`: an ARP packet whose sender
/// IP is `addr` (a reply, or an announcement), or a probe for `addr` from another MAC (two hosts
/// probing for the same address at once). `own` is the MAC that sent our probe.
pub fn claims(frame: &[u8], addr: Ipv4Addr, own: Mac) -> bool {
    let Ok(eth) = Ethernet2HeaderSlice::from_slice(frame) else {
        return false;
    };
    if eth.ether_type().0 != EtherType::ARP {
        return false;
    }
    let Some(Ok(arp)) = frame.get(14..).map(ArpPacketSlice::from_slice) else {
        return false;
    };
    let Ok(arp) = arp.to_packet().try_eth_ipv4() else {
        return false;
    };
    if Mac(arp.sender_mac) == own {
        return false;
    }
    let sender = arp.sender_ipv4_addr();
    sender == addr
        || (sender.is_unspecified()
            && arp.operation == ArpOperation::REQUEST
            && arp.target_ipv4_addr() == addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 2]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

    fn reply(from: Mac, sender_ip: Ipv4Addr) -> Vec<u8> {
        let arp = ArpEthIpv4Packet {
            operation: ArpOperation::REPLY,
            sender_mac: from.0,
            sender_ipv4: sender_ip.octets(),
            target_mac: A.0,
            target_ipv4: [0; 4],
        };
        let mut f = [A.0, from.0].concat();
        f.extend_from_slice(&EtherType::ARP.to_be_bytes());
        f.extend_from_slice(&arp.to_bytes());
        f
    }

    #[test]
    fn probe_is_a_broadcast_request_with_zero_sender_ip() {
        let f = probe(A, IP);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[28..32], &[0, 0, 0, 0], "sender IP");
        assert_eq!(&f[38..42], &IP.octets());
    }

    #[test]
    fn announcement_is_a_broadcast_request_for_its_own_address() {
        let f = announcement(A, IP);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &A.0);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[22..28], &A.0, "sender MAC");
        assert_eq!(&f[28..32], &IP.octets(), "sender IP");
        assert_eq!(&f[38..42], &IP.octets(), "target IP");
        assert!(claims(&f, IP, B), "an announcement claims the address");
    }

    #[test]
    fn a_reply_from_the_owner_claims_the_address() {
        assert!(claims(&reply(B, IP), IP, A));
        assert!(!claims(&reply(B, Ipv4Addr::new(10, 0, 0, 6)), IP, A));
    }

    #[test]
    fn our_own_probe_and_other_traffic_do_not() {
        assert!(!claims(&probe(A, IP), IP, A));
        assert!(
            claims(&probe(B, IP), IP, A),
            "a simultaneous probe is a conflict"
        );
        assert!(!claims(&[0u8; 60], IP, A));
        assert!(!claims(&probe(A, IP)[..20], IP, B));
    }

    #[test]
    fn asking_for_the_address_or_probing_another_is_no_claim() {
        // An ordinary request from a host with an address, asking who has IP: it wants to talk
        // to IP's owner, it does not use IP.
        let asking = request(B, Ipv4Addr::new(10, 0, 0, 9), IP);
        assert!(!claims(&asking, IP, A));
        // Another station probing for a different address.
        assert!(!claims(&probe(B, Ipv4Addr::new(10, 0, 0, 6)), IP, A));
    }
}
