use std::net::Ipv4Addr;

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, ArpPacketSlice, Icmpv4Type, NetSlice, PacketBuilder,
    SlicedPacket, TransportSlice,
};

use super::*;
use crate::core::Timestamp;

const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const C1_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const C1: Mac = Mac([2, 0, 0, 0, 0, 2]);

fn vni(n: u32) -> Vni {
    Vni::new(n).expect("vni")
}

fn gw() -> GatewayAddr {
    GatewayAddr::new(vni(100), GW_IP, 24, 1450)
}

fn arp(op: ArpOperation, src: Mac, dst: Mac, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let packet = ArpEthIpv4Packet {
        operation: op,
        sender_mac: src.0,
        sender_ipv4: sender.octets(),
        target_mac: [0; 6],
        target_ipv4: target.octets(),
    };
    [
        &dst.0[..],
        &src.0,
        &EtherType::ARP.to_be_bytes(),
        &packet.to_bytes(),
    ]
    .concat()
}

fn echo_request(dst_mac: Mac, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(C1.0, dst_mac.0)
        .ipv4(C1_IP.octets(), dst.octets(), 64)
        .icmpv4_echo_request(7, 1);
    let mut frame = Vec::new();
    builder.write(&mut frame, payload).expect("build");
    frame
}

#[test]
fn anycast_mac_is_per_vni_local_and_unicast() {
    let a = anycast_mac(vni(100));
    assert_eq!(a, Mac([0x02, 0x76, 0x73, 0, 0, 100]));
    assert_eq!(a, anycast_mac(vni(100)), "the same on every host");
    assert_ne!(a, anycast_mac(vni(101)));
    assert_eq!(
        anycast_mac(vni(0xab_cdef)),
        Mac([0x02, 0x76, 0x73, 0xab, 0xcd, 0xef])
    );
    assert!(a.is_valid_source(), "unicast, so it can be a source");
    assert_eq!(a.0[0] & 0x02, 0x02, "locally administered");
}

#[test]
fn steers_only_frames_for_the_gateway() {
    let g = gw();
    let to_gw = echo_request(g.mac, GW_IP, b"x");
    assert!(steer(&g, g.mac, &to_gw));
    let asks_gw = arp(ArpOperation::REQUEST, C1, Mac::BROADCAST, C1_IP, GW_IP);
    assert!(steer(&g, Mac::BROADCAST, &asks_gw));
    // ARP for someone else, a reply, other broadcasts and unicast elsewhere stay with the
    // switch.
    let asks_other = arp(ArpOperation::REQUEST, C1, Mac::BROADCAST, C1_IP, C1_IP);
    assert!(!steer(&g, Mac::BROADCAST, &asks_other));
    let reply = arp(ArpOperation::REPLY, C1, Mac::BROADCAST, C1_IP, GW_IP);
    assert!(!steer(&g, Mac::BROADCAST, &reply));
    let other = echo_request(Mac::BROADCAST, GW_IP, b"x");
    assert!(!steer(&g, Mac::BROADCAST, &other));
    let elsewhere = echo_request(C1, GW_IP, b"x");
    assert!(!steer(&g, C1, &elsewhere));
    // A multicast (not broadcast) ARP request is not the gateway's.
    let mcast = Mac([0x01, 0, 0x5e, 0, 0, 1]);
    assert!(!steer(
        &g,
        mcast,
        &arp(ArpOperation::REQUEST, C1, mcast, C1_IP, GW_IP)
    ));
    // Truncated or garbage frames: no, and no panic.
    for n in 0..asks_gw.len() {
        assert!(!steer(&g, Mac::BROADCAST, &asks_gw[..n]));
    }
}

fn host() -> Host {
    Host::new(gw(), 42, Timestamp(0))
}

fn exchange(h: &mut Host, frame: &[u8], now: u64) -> Vec<Vec<u8>> {
    assert!(h.receive(frame));
    h.poll(Timestamp(now));
    std::iter::from_fn(|| h.transmit()).collect()
}

#[test]
fn answers_arp_for_its_address_with_the_anycast_mac() {
    let mut h = host();
    let out = exchange(
        &mut h,
        &arp(ArpOperation::REQUEST, C1, Mac::BROADCAST, C1_IP, GW_IP),
        1,
    );
    assert_eq!(out.len(), 1, "one reply: {out:?}");
    let reply = &out[0];
    assert_eq!(&reply[0..6], &C1.0, "to the asker");
    assert_eq!(&reply[6..12], &gw().mac.0, "from the anycast MAC");
    let answer = ArpPacketSlice::from_slice(&reply[14..])
        .expect("arp")
        .to_packet()
        .try_eth_ipv4()
        .expect("ipv4 arp");
    assert_eq!(answer.operation, ArpOperation::REPLY);
    assert_eq!(answer.sender_mac, gw().mac.0);
    assert_eq!(answer.sender_ipv4_addr(), GW_IP);
    assert_eq!(answer.target_ipv4_addr(), C1_IP);
    // Not for its address: silence.
    let other = arp(
        ArpOperation::REQUEST,
        C1,
        Mac::BROADCAST,
        C1_IP,
        Ipv4Addr::new(10, 0, 0, 9),
    );
    assert!(exchange(&mut h, &other, 2).is_empty());
}

#[test]
fn answers_ping_after_arp() {
    let mut h = host();
    exchange(
        &mut h,
        &arp(ArpOperation::REQUEST, C1, Mac::BROADCAST, C1_IP, GW_IP),
        1,
    );
    let payload: Vec<u8> = (0..56).collect();
    let out = exchange(&mut h, &echo_request(gw().mac, GW_IP, &payload), 2);
    assert_eq!(out.len(), 1, "one echo reply: {out:?}");
    let p = SlicedPacket::from_ethernet(&out[0]).expect("parse");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4: {out:?}");
    };
    assert_eq!(ip.header().source_addr(), GW_IP);
    assert_eq!(ip.header().destination_addr(), C1_IP);
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not ICMP");
    };
    let Icmpv4Type::EchoReply(echo) = icmp.icmp_type() else {
        panic!("not an echo reply: {:?}", icmp.icmp_type());
    };
    assert_eq!((echo.id, echo.seq), (7, 1));
    assert_eq!(icmp.payload(), &payload[..]);
    // An echo to another address behind the gateway MAC is not answered (no routing).
    let far = echo_request(gw().mac, Ipv4Addr::new(192, 0, 2, 1), b"x");
    assert!(exchange(&mut h, &far, 3).is_empty());
}

#[test]
fn garbage_is_dropped_and_the_queue_is_bounded() {
    let mut h = host();
    for n in 0..64 {
        let junk: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
        assert!(exchange(&mut h, &junk, 1).is_empty());
    }
    let frame = arp(ArpOperation::REQUEST, C1, Mac::BROADCAST, C1_IP, GW_IP);
    let accepted = (0..1000).filter(|_| h.receive(&frame)).count();
    assert_eq!(accepted, 256, "the receive queue holds 256 frames");
}
