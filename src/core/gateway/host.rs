//! One network's gateway host: a smoltcp interface over two frame queues. The caller pushes the
//! frames [`super::steer`] picked ([`Host::receive`]), calls [`Host::poll`] with the time, and
//! takes the frames the host sends ([`Host::transmit`]). smoltcp answers ARP for the gateway
//! address and ICMP echo sent to it by itself; the DNS server ([`super::dns`]) answers on
//! port 53, UDP and TCP.
//!
//! # Panics
//!
//! None on input from the network: smoltcp parses every frame with checked views and drops
//! what it cannot read.

use std::collections::VecDeque;

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use super::dns::{DnsStats, Server, Upstream};
use super::GatewayAddr;
use crate::core::dns::Names;
use crate::core::Timestamp;

/// Frames waiting for the host: a bound, so a container cannot make it hoard memory.
const RX_QUEUE: usize = 256;
/// Frames the host may have sent but the caller not yet taken.
const TX_QUEUE: usize = 256;

/// A network's gateway host.
pub struct Host {
    addr: GatewayAddr,
    iface: Interface,
    device: Queues,
    sockets: SocketSet<'static>,
    dns: Server,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("addr", &self.addr).finish()
    }
}

impl Host {
    /// A gateway host for `addr`; `seed` feeds smoltcp's choices (TCP initial sequence numbers,
    /// ephemeral ports) and comes from the caller, as randomness does everywhere in the core.
    pub fn new(addr: GatewayAddr, seed: u64, now: Timestamp) -> Host {
        let mut device = Queues {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            mtu: addr.mtu as usize + 14,
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(addr.mac.0)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, instant(now));
        iface.update_ip_addrs(|ips| {
            // One address: the vector has room for it.
            let _ = ips.push(IpCidr::new(IpAddress::Ipv4(addr.ip), addr.prefix));
        });
        let mut sockets = SocketSet::new(Vec::new());
        let dns = Server::new(&addr, &mut sockets);
        Host {
            addr,
            iface,
            device,
            sockets,
            dns,
        }
    }

    pub fn addr(&self) -> &GatewayAddr {
        &self.addr
    }

    /// Queues a frame for the host. `false`: the queue is full and the frame was dropped.
    pub fn receive(&mut self, frame: &[u8]) -> bool {
        if self.device.rx.len() >= RX_QUEUE {
            return false;
        }
        self.device.rx.push_back(frame.to_vec());
        true
    }

    /// Lets the host handle what it received and what is due by `now`: frames, DNS queries,
    /// and the answers they produce.
    pub fn poll(&mut self, now: Timestamp) {
        self.iface
            .poll(instant(now), &mut self.device, &mut self.sockets);
        self.dns.serve(&mut self.sockets, now);
        self.iface
            .poll(instant(now), &mut self.device, &mut self.sockets);
    }

    /// The names the DNS server answers for.
    pub fn set_names(&mut self, names: Names) {
        self.dns.set_names(names);
    }

    /// The next query the host's resolvers should answer (see [`Host::upstream_answer`]).
    pub fn take_upstream(&mut self) -> Option<Upstream> {
        self.dns.take_upstream()
    }

    /// The host's resolvers' answer to query `token`, or `None` (no answer in time): the
    /// client gets it, or SERVFAIL, at the next [`Host::poll`].
    pub fn upstream_answer(&mut self, token: u64, reply: Option<Vec<u8>>) {
        self.dns.answered(&mut self.sockets, token, reply);
    }

    /// What the DNS server counted since the last call.
    pub fn take_dns_stats(&mut self) -> DnsStats {
        self.dns.take_stats()
    }

    /// The next frame the host sent, oldest first.
    pub fn transmit(&mut self) -> Option<Vec<u8>> {
        self.device.tx.pop_front()
    }

    /// When the host next needs a [`Host::poll`] without new frames (TCP timers, an idle DNS
    /// connection to close), if ever.
    pub fn poll_at(&mut self, now: Timestamp) -> Option<Timestamp> {
        let smoltcp = self
            .iface
            .poll_delay(instant(now), &self.sockets)
            .map(|d| Timestamp(now.0.saturating_add(d.total_millis())));
        [smoltcp, self.dns.poll_at()].into_iter().flatten().min()
    }
}

fn instant(t: Timestamp) -> Instant {
    Instant::from_millis(i64::try_from(t.0).unwrap_or(i64::MAX))
}

/// The host's "wire": frames in, frames out.
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        (self.tx.len() < TX_QUEUE).then_some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

struct Rx(Vec<u8>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}
