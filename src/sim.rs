//! An in-process fabric for tests, benches and fuzzing: several switches joined by a simulated
//! underlay, simulated containers on their ports, and a virtual clock. No root, no sockets, no
//! sleeps (the idea of quinn's test `Pair`).
//!
//! Convenience over speed: this allocates freely; the switch itself does not.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::core::switch::{HEADROOM, TAILROOM};
use crate::core::{Forward, PortId, Switch, SwitchConfig, Timestamp, Vtep};
use crate::wire::{vxlan, Mac, Vni};

/// One simulated host: an underlay address and its switch.
#[derive(Debug)]
pub struct Host {
    pub addr: SocketAddr,
    pub switch: Switch,
}

/// A frame that reached a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub host: usize,
    pub port: PortId,
    pub frame: Vec<u8>,
}

/// A datagram that crossed the underlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub src_port: u16,
    pub bytes: Vec<u8>,
}

/// Several switches on one simulated underlay.
#[derive(Debug)]
pub struct Fabric {
    pub now: Timestamp,
    pub hosts: Vec<Host>,
    in_flight: VecDeque<Datagram>,
    /// Every datagram that crossed the underlay, in order.
    pub underlay: Vec<Datagram>,
    /// Every frame delivered to a container, in order.
    pub delivered: Vec<Delivery>,
    forward: Forward,
}

/// The underlay address of simulated host `i`.
pub fn host_addr(i: usize) -> SocketAddr {
    let last = u8::try_from(i + 1).unwrap_or(u8::MAX);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), vxlan::UDP_PORT)
}

impl Fabric {
    /// `hosts` switches in a full mesh (every switch has every other as a peer).
    pub fn full_mesh(hosts: usize, config: SwitchConfig) -> Fabric {
        let mut fabric = Fabric {
            now: Timestamp(0),
            hosts: (0..hosts)
                .map(|i| Host {
                    addr: host_addr(i),
                    switch: Switch::new(config),
                })
                .collect(),
            in_flight: VecDeque::new(),
            underlay: Vec::new(),
            delivered: Vec::new(),
            forward: Forward::default(),
        };
        for i in 0..hosts {
            for j in (0..hosts).filter(|&j| j != i) {
                let peer = Vtep(fabric.hosts[j].addr);
                fabric.hosts[i]
                    .switch
                    .add_peer(peer)
                    .expect("fresh switch has no peers");
            }
        }
        fabric
    }

    /// Creates network `vni` on every host.
    pub fn add_network_everywhere(&mut self, vni: Vni) {
        for h in &mut self.hosts {
            h.switch.add_network(vni).expect("network is new");
        }
    }

    pub fn attach(&mut self, host: usize, port: PortId, vni: Vni) {
        self.hosts[host]
            .switch
            .add_port(port, vni)
            .expect("port attaches");
    }

    /// A container on `host`/`port` sends `frame`; the fabric runs until the underlay is quiet.
    pub fn send(&mut self, host: usize, port: PortId, frame: &[u8]) {
        // Whatever is due first (handshakes of a network just made encrypted).
        self.run();
        let mut buf = vec![0u8; HEADROOM + frame.len() + TAILROOM];
        let range = HEADROOM..HEADROOM + frame.len();
        buf[range.clone()].copy_from_slice(frame);
        let h = &self.hosts[host];
        h.switch
            .frame_from_port(self.now, port, frame, &mut self.forward);
        let delivered = &mut self.delivered;
        let sends = self.forward.deliver(frame, |port, frame| {
            delivered.push(Delivery {
                host,
                port,
                frame: frame.to_vec(),
            })
        });
        if let Some(sends) = sends {
            // A refused encapsulation is counted by the switch, like any drop.
            if let Ok(enc) = h.switch.encapsulate(&sends, &mut buf, range) {
                for v in sends.vteps() {
                    self.in_flight.push_back(Datagram {
                        from: h.addr,
                        to: v.0,
                        src_port: enc.src_port,
                        bytes: buf[enc.datagram.clone()].to_vec(),
                    });
                }
            }
        }
        self.run();
    }

    /// Puts raw bytes on the underlay, as if `from` sent them to host `to`.
    pub fn inject(&mut self, from: SocketAddr, to: usize, bytes: &[u8]) {
        self.in_flight.push_back(Datagram {
            from,
            to: self.hosts[to].addr,
            src_port: 49152,
            bytes: bytes.to_vec(),
        });
        self.run();
    }

    /// Delivers datagrams until none is in flight. Receivers only deliver to ports (split
    /// horizon), but if a switch ever re-sent to the underlay the loop would show it.
    fn run(&mut self) {
        loop {
            // Handshakes due go out at once, as the daemon's workers send them after a batch.
            self.collect_control();
            let Some(d) = self.in_flight.pop_front() else {
                break;
            };
            self.underlay.push(d.clone());
            let Some(host) = self.hosts.iter().position(|h| h.addr == d.to) else {
                continue;
            };
            let mut bytes = d.bytes;
            self.hosts[host].switch.datagram_from_vtep(
                self.now,
                SocketAddr::new(d.from.ip(), d.src_port),
                &mut bytes,
                &mut self.forward,
            );
            let delivered = &mut self.delivered;
            let sends = self
                .forward
                .deliver(&bytes[self.forward.frame.clone()], |port, frame| {
                    delivered.push(Delivery {
                        host,
                        port,
                        frame: frame.to_vec(),
                    })
                });
            assert!(
                sends.is_none(),
                "split horizon violated: a frame from the underlay was sent to {:?}",
                self.forward.vteps
            );
        }
    }

    /// Moves the virtual clock, lets every switch age its tables and advance its key
    /// rotations, and carries the control datagrams that are due (as the daemon's ticker does).
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
        for h in &self.hosts {
            h.switch.tick(self.now);
        }
        self.run();
    }

    /// Puts every host's due control datagrams (handshakes, key announcements) in flight.
    fn collect_control(&mut self) {
        for h in &self.hosts {
            h.switch.announce(self.now, |vtep, src_port, bytes| {
                self.in_flight.push_back(Datagram {
                    from: h.addr,
                    to: vtep.0,
                    src_port,
                    bytes: bytes.to_vec(),
                })
            });
        }
    }

    /// Takes the deliveries and underlay log recorded so far.
    pub fn take(&mut self) -> (Vec<Delivery>, Vec<Datagram>) {
        (
            std::mem::take(&mut self.delivered),
            std::mem::take(&mut self.underlay),
        )
    }
}

/// An Ethernet II frame with the given addresses, EtherType and payload.
pub fn frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}
