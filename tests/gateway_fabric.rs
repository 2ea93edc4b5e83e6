//! The anycast gateway on the simulated fabric: every host's switch answers for the gateway
//! with the same MAC, nothing to or from it crosses the underlay, and two networks with the
//! same subnet each have their own.

use std::net::Ipv4Addr;

use etherparse::{ArpEthIpv4Packet, ArpOperation, Icmpv4Type, PacketBuilder, SlicedPacket};
use etherparse::{NetSlice, TransportSlice};
use vswitch::core::gateway::{anycast_mac, GatewayAddr, Host};
use vswitch::core::{Forward, PortId, SwitchConfig};
use vswitch::sim::Fabric;
use vswitch::wire::{EtherType, Mac, Vni};

const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn vni(n: u32) -> Vni {
    Vni::new(n).expect("vni")
}

fn mac(host: u8, n: u8) -> Mac {
    Mac([2, 0, 0, 0, host, n])
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn arp_request(src: Mac, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let packet = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: src.0,
        sender_ipv4: sender.octets(),
        target_mac: [0; 6],
        target_ipv4: target.octets(),
    };
    [
        &Mac::BROADCAST.0[..],
        &src.0,
        &EtherType::ARP.to_be_bytes(),
        &packet.to_bytes(),
    ]
    .concat()
}

fn echo(src: Mac, from: Ipv4Addr, dst: Mac, to: Ipv4Addr, seq: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(from.octets(), to.octets(), 64)
        .icmpv4_echo_request(9, seq)
        .write(&mut frame, b"vswitch gateway")
        .expect("build");
    frame
}

/// Two hosts, networks 100 and 200 with the same subnet 10.0.0.0/24 and gateway 10.0.0.1 on
/// both, a container on each network on each host (port 1 on 100, port 2 on 200), and one
/// gateway host per (host, network).
struct Lab {
    fabric: Fabric,
    gateways: Vec<Vec<(Vni, Host)>>,
    fwd: Forward,
}

impl Lab {
    fn new() -> Lab {
        let mut fabric = Fabric::full_mesh(2, SwitchConfig::default());
        let mut gateways = Vec::new();
        for h in 0..2 {
            let mut mine = Vec::new();
            for (v, port) in [(100, 1), (200, 2)] {
                if h == 0 {
                    fabric.add_network_everywhere(vni(v));
                }
                fabric.attach(h, PortId(port), vni(v));
                let addr = GatewayAddr::new(vni(v), GW, 24, 1450);
                fabric.hosts[h]
                    .switch
                    .set_gateway(vni(v), Some(addr))
                    .expect("gateway");
                mine.push((vni(v), Host::new(addr, 1, fabric.now)));
            }
            gateways.push(mine);
        }
        Lab {
            fabric,
            gateways,
            fwd: Forward::default(),
        }
    }

    /// A container sends `frame`; what the switch gives the gateway goes to the gateway host,
    /// whose answers go back through the switch. Returns the frames the gateway sent, each
    /// with the ports it was delivered to.
    fn send(&mut self, host: usize, port: PortId, frame: &[u8]) -> Vec<(Vec<u8>, Vec<PortId>)> {
        let now = self.fabric.now;
        let switch = &self.fabric.hosts[host].switch;
        switch.frame_from_port(now, port, frame, &mut self.fwd);
        if !self.fwd.gateway {
            self.fabric.send(host, port, frame);
            return Vec::new();
        }
        assert!(
            self.fwd.ports.is_empty() && self.fwd.vteps.is_empty(),
            "a frame for the gateway goes nowhere else: {:?}",
            self.fwd
        );
        let v = self.fwd.vni.expect("vni");
        let (_, gw) = self.gateways[host]
            .iter_mut()
            .find(|(n, _)| *n == v)
            .expect("gateway host");
        assert!(gw.receive(frame));
        gw.poll(now);
        let mut out = Vec::new();
        while let Some(reply) = gw.transmit() {
            switch.frame_from_gateway(now, v, &reply, &mut self.fwd);
            assert!(
                self.fwd.vteps.is_empty(),
                "the gateway sent to the underlay"
            );
            out.push((reply, self.fwd.ports.clone()));
        }
        out
    }
}

fn icmp_reply(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("parse");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not ICMP")
    };
    let Icmpv4Type::EchoReply(e) = icmp.icmp_type() else {
        panic!("not an echo reply")
    };
    (
        ip.header().source_addr(),
        ip.header().destination_addr(),
        e.seq,
    )
}

#[test]
fn every_host_answers_for_the_gateway_and_nothing_crosses_the_underlay() {
    let mut lab = Lab::new();
    for h in 0..2 {
        let me = mac(h as u8, 1);
        let my_ip = ip(10 + h as u8);
        let replies = lab.send(h, PortId(1), &arp_request(me, my_ip, GW));
        assert_eq!(replies.len(), 1, "host {h}: one ARP reply");
        let (reply, ports) = &replies[0];
        assert_eq!(ports, &[PortId(1)], "to the asker's port only");
        assert_eq!(&reply[6..12], &anycast_mac(vni(100)).0, "the anycast MAC");
        let replies = lab.send(h, PortId(1), &echo(me, my_ip, anycast_mac(vni(100)), GW, 1));
        assert_eq!(replies.len(), 1, "host {h}: one echo reply");
        assert_eq!(icmp_reply(&replies[0].0), (GW, my_ip, 1));
        assert_eq!(replies[0].1, [PortId(1)]);
    }
    let (delivered, underlay) = lab.fabric.take();
    assert!(
        underlay.is_empty(),
        "datagrams for the gateway: {underlay:?}"
    );
    assert!(
        delivered.is_empty(),
        "gateway frames flooded to containers: {delivered:?}"
    );
}

#[test]
fn same_subnet_networks_each_answer_with_their_own_gateway() {
    let mut lab = Lab::new();
    let replies = lab.send(0, PortId(2), &arp_request(mac(0, 2), ip(20), GW));
    assert_eq!(replies.len(), 1);
    assert_eq!(&replies[0].0[6..12], &anycast_mac(vni(200)).0);
    assert_eq!(replies[0].1, [PortId(2)], "network 200's container only");
    // Network 100's gateway MAC on network 200 is just another (unknown) station: flooded in
    // 200, never answered by 100's gateway.
    let replies = lab.send(
        0,
        PortId(2),
        &echo(mac(0, 2), ip(20), anycast_mac(vni(100)), GW, 1),
    );
    assert!(replies.is_empty());
    let (_, underlay) = lab.fabric.take();
    assert_eq!(underlay.len(), 1, "unknown unicast floods to the one peer");
}

#[test]
fn other_broadcasts_still_reach_everyone_and_not_the_gateway() {
    let mut lab = Lab::new();
    // An ARP request for another container is flooded as always.
    let replies = lab.send(0, PortId(1), &arp_request(mac(0, 1), ip(10), ip(11)));
    assert!(replies.is_empty());
    let (delivered, underlay) = lab.fabric.take();
    assert_eq!(underlay.len(), 1, "flooded to the peer");
    assert_eq!(delivered.len(), 1, "and to the container on the other host");
    assert_eq!((delivered[0].host, delivered[0].port), (1, PortId(1)));
}

#[test]
fn gateway_frames_to_a_remote_station_stay_home() {
    let mut lab = Lab::new();
    // Host 1's container is learned on host 0 behind the VTEP.
    lab.fabric
        .send(1, PortId(1), &arp_request(mac(1, 1), ip(11), ip(99)));
    let now = lab.fabric.now;
    let frame = echo(anycast_mac(vni(100)), GW, mac(1, 1), ip(11), 1);
    let mut fwd = Forward::default();
    lab.fabric.hosts[0]
        .switch
        .frame_from_gateway(now, vni(100), &frame, &mut fwd);
    assert!(fwd.ports.is_empty() && fwd.vteps.is_empty(), "{fwd:?}");
    // A truncated frame from the gateway is dropped and counted, not delivered.
    lab.fabric.hosts[0]
        .switch
        .frame_from_gateway(now, vni(100), &frame[..5], &mut fwd);
    assert!(fwd.dropped.is_some());
}
