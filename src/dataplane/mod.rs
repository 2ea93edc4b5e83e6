//! The I/O loop: moves bytes between TAP ports, the underlay and the core switch.
//!
//! # Workers
//!
//! One worker thread per core (`daemon --workers`), each with its own preallocated buffers,
//! its own queue of every TAP (`IFF_MULTI_QUEUE`) and its own underlay UDP socket (all bound to
//! the same address with `SO_REUSEPORT`). Each polls its queues and its socket in one epoll set
//! and moves frames both ways:
//! - from its TAP queues: asks the switch where a frame goes, writes it to local TAPs and sends
//!   it, encapsulated, to VTEPs;
//! - from its socket: recvmmsg batches; asks the switch; writes inner frames to TAPs, on its own
//!   queue of each.
//!
//! The kernel spreads the load by flow on both sides: the container's kernel picks a TAP queue
//! per flow (the one that last delivered the flow to it), and `SO_REUSEPORT` picks a socket by
//! the outer addresses and ports, which are per flow too (see "Outer UDP source ports"). So a
//! flow's frames are handled by one worker, in order, and both directions of a flow usually
//! meet on the same one. A worker with nothing ready sleeps in `epoll_wait`.
//!
//! No worker allocates per frame. They share the switch through a read-mostly lock (taken once
//! per batch) and the port table through another; the control plane takes the write side only
//! to change configuration.
//!
//! # Offloads
//!
//! TAPs are opened with the virtio-net header and TSO/USO/checksum offloads (see `daemon`), so
//! the container's kernel hands us TCP superframes, and UDP superframes its sockets sent with
//! `UDP_SEGMENT` (Linux 6.2+), of up to 64 KiB instead of MTU-sized frames, and takes TCP
//! superframes from us. Per superframe the switch is asked once (forwarding, learning,
//! counters: one frame of the superframe's size); a local port gets the superframe as is, header
//! and all; for VTEPs it is cut into MTU-sized segments ([`crate::core::offload::segment`]), each
//! encapsulated by `Switch::encapsulate` in place, and the whole run leaves in one `sendmsg` with
//! `UDP_SEGMENT` (UDP GSO). Frames without GSO have any partial checksum completed and take the
//! batched raw-socket path below.
//!
//! On the way in, the underlay socket has `UDP_GRO`: one `recvmmsg` slot receives a run of
//! datagrams from one sender, split here by the reported segment size. Each datagram goes
//! through `Switch::datagram_from_vtep` (so the switch counts every inner frame), and
//! consecutive TCP segments for one port are coalesced into a superframe
//! ([`crate::core::offload::Coalescer`]) written with one TAP write. Segments of a run the
//! kernel handed over with a segment size are merged without re-verifying their TCP checksum:
//! such a run always had a nonzero outer UDP checksum, verified by the kernel, covering them
//! (`Coalescer::push_verified` says why that is sound).
//!
//! # Outer UDP source ports
//!
//! RFC 7348 §5 wants the outer source port to be a hash of the inner flow, so that ECMP in the
//! underlay keeps a flow on one path and spreads flows over paths. A raw socket can write any
//! source port per datagram, but cannot do UDP GSO; a UDP socket can, but has one fixed port. So
//! superframes go out through a small pool of UDP sockets bound to fixed ports in
//! 49152–65535, and the flow hash picks the socket; the raw socket (still used for single
//! frames, where its batching across flows wins) writes the same pool port the flow hash would
//! pick. One flow therefore always has one source port; the trade-off is entropy: only
//! [`SOURCE_SOCKETS`] distinct source ports instead of 16384, which is plenty to spread flows
//! over the handful of equal-cost paths an underlay has. An encrypted network uses one port for
//! all its datagrams ([`crate::core::switch::sealed_source_port`] says why).

mod overruns;
mod raw;
mod segmenter;
mod services;

pub use services::UPSTREAM_TIMEOUT;
mod stats;
pub mod sys;
pub mod tap;
mod workers;

pub use stats::DataplaneStats;
pub use tap::{Offload, Tap, TapOptions};

use stats::Counters;

use crate::core::sync::{read, write};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::gateway::GatewayAddr;
use crate::core::switch::{HEADROOM, TAILROOM};
use crate::core::{Forward, PortId, Switch, Timestamp};
use crate::wire::virtio_net::VnetHdr;
use crate::wire::Vni;
use sys::{Epoll, RawSender};
use workers::Worker;

/// Frames read per TAP per wakeup, and datagrams per recvmmsg/sendmmsg.
const BATCH: usize = 32;
/// Largest frame or datagram handled (jumbo frames included).
const MAX_FRAME: usize = 65_535;
const POLL: Duration = Duration::from_millis(200);
/// Most workers a data path runs (`daemon --workers`).
pub const MAX_WORKERS: usize = 16;
// Every worker gets a counter lane of its own (`core::counters`), lane 0 being the shared one.
const _: () = assert!(MAX_WORKERS < crate::core::counters::LANES);
/// Receive buffer of the underlay socket and send buffer of the pool sockets. 4 MiB overflowed
/// under a fan-in of ten TCP streams (tens of thousands of datagrams dropped, each a
/// retransmit); 16 MiB did not, at the same throughput (README, Benchmarks).
const SOCKET_BUFFER: usize = 16 << 20;
/// UDP sockets (and so outer source ports) superframes are sent from.
pub const SOURCE_SOCKETS: usize = 8;

/// Where frames for a port go.
#[derive(Debug, Clone)]
pub enum PortSink {
    /// A container's TAP.
    Tap(Arc<Tap>),
    /// The daemon itself (address conflict probes): frames are copied into a channel. Not a
    /// data-path port; it exists only for the second or so a probe lasts.
    Host(std::sync::mpsc::SyncSender<Vec<u8>>),
}

#[derive(Debug)]
struct Shared {
    switch: Arc<RwLock<Switch>>,
    ports: RwLock<HashMap<PortId, PortSink>>,
    /// One epoll set per worker: its underlay socket and its queue of every TAP.
    epolls: Vec<Epoll>,
    /// One underlay socket per worker, all bound to the VXLAN port with `SO_REUSEPORT`; the
    /// first also sends the control datagrams.
    udp: Vec<UdpSocket>,
    /// Where superframes are sent from; see "Outer UDP source ports".
    sources: Vec<UdpSocket>,
    source_ports: Vec<u16>,
    src_ip: Ipv4Addr,
    start: Instant,
    stop: AtomicBool,
    counters: Counters,
    /// Ports whose TAP went away under us (its namespace was deleted, or its interface).
    gone: tokio::sync::mpsc::UnboundedSender<PortId>,
    /// Frames for gateways and gateway changes, to the services worker.
    services: SyncSender<services::Message>,
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp(crate::core::time::duration_millis(self.start.elapsed()))
    }

    /// The pool socket, and so the source port, for a flow whose hash gave `src_port`.
    fn source(&self, src_port: u16) -> usize {
        usize::from(src_port) % self.sources.len()
    }

    /// Starts polling every queue of `port`'s TAP, queue `q` in worker `q`'s set (wrapping
    /// around when there are fewer workers than queues).
    fn poll(&self, port: PortId, tap: &Tap) -> io::Result<()> {
        for q in 0..tap.queues() {
            let token = (q as u64) << 32 | u64::from(port.0);
            if let Err(e) = self.epolls[q % self.epolls.len()].add(tap.queue_fd(q), token) {
                self.unpoll(tap);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stops polling every queue of `tap` (one not polled is skipped).
    fn unpoll(&self, tap: &Tap) {
        for q in 0..tap.queues() {
            let _ = self.epolls[q % self.epolls.len()].delete(tap.queue_fd(q));
        }
    }

    /// Writes `frame` to `sink`, on TAP queue `queue` (the writing worker's own).
    fn deliver(&self, sink: Option<&PortSink>, queue: usize, vnet: &VnetHdr, frame: &[u8]) {
        match sink {
            Some(PortSink::Tap(tap)) => {
                if tap.write_with_on(queue, vnet, frame).is_err() {
                    self.counters
                        .tap_write_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            // The daemon's own port only ever needs ARP; superframes are not for it.
            Some(PortSink::Host(_)) if vnet.is_gso() => {}
            // A probe that has ended (or is not reading) is a port that cannot be written.
            Some(PortSink::Host(tx)) => {
                if tx.try_send(frame.to_vec()).is_err() {
                    self.counters
                        .tap_write_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.counters
                    .tap_write_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The running data path.
#[derive(Debug)]
pub struct Dataplane {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    gone: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<PortId>>>,
}

impl Dataplane {
    /// Binds the underlay (UDP `listen:port`, one socket per worker) and starts `workers`
    /// workers (1 to [`MAX_WORKERS`]).
    pub fn start(
        switch: Arc<RwLock<Switch>>,
        listen: Ipv4Addr,
        port: u16,
        workers: usize,
        start: Instant,
    ) -> io::Result<Dataplane> {
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{workers} data-path workers: choose 1 to {MAX_WORKERS}"),
            ));
        }
        let udp = bind_underlay(SocketAddrV4::new(listen, port), workers)?;
        let mut epolls = Vec::with_capacity(workers);
        for sock in &udp {
            sock.set_nonblocking(true)?;
            sys::set_buffer_sizes(sock.as_raw_fd(), SOCKET_BUFFER);
            sys::enable_udp_gro(sock.as_raw_fd())?;
            sys::enable_rxq_overflow(sock.as_raw_fd())?;
            let epoll = Epoll::new()?;
            epoll.add(sock.as_raw_fd(), workers::UNDERLAY)?;
            epolls.push(epoll);
        }
        let sources = source_sockets(listen)?;
        let source_ports = sources
            .iter()
            .map(|s| s.local_addr().map(|a| a.port()))
            .collect::<io::Result<Vec<u16>>>()?;
        let senders = (0..workers)
            .map(|_| RawSender::new(BATCH))
            .collect::<io::Result<Vec<_>>>()?;
        let (gone, gone_rx) = tokio::sync::mpsc::unbounded_channel();
        let (services, services_rx) = std::sync::mpsc::sync_channel(services::QUEUE);
        let shared = Arc::new(Shared {
            switch,
            ports: RwLock::new(HashMap::new()),
            epolls,
            udp,
            sources,
            source_ports,
            src_ip: listen,
            start,
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            gone,
            services,
        });
        let mut threads = Vec::with_capacity(workers + 1);
        for (k, sender) in senders.into_iter().enumerate() {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("vswitch-dp{k}"))
                    .spawn(move || Worker::new(&s, k, sender).run())?,
            );
        }
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("vswitch-services".into())
                .spawn(move || services::services_worker(&s, services_rx))?,
        );
        Ok(Dataplane {
            shared,
            workers: threads,
            gone: std::sync::Mutex::new(Some(gone_rx)),
        })
    }

    /// How many workers (and so TAP queues per port) this data path runs.
    pub fn workers(&self) -> usize {
        self.shared.epolls.len()
    }

    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// The ports whose TAP went away under the data path (the kernel detached it: its
    /// namespace or its interface was deleted), each reported once and no longer polled. The
    /// receiver is handed out once; `None` after that.
    pub fn gone_ports(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<PortId>> {
        crate::core::sync::lock(&self.gone).take()
    }

    /// The underlay UDP socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.udp[0].local_addr()
    }

    /// Starts moving frames for `port`. The switch must already know the port.
    pub fn add_port(&self, port: PortId, sink: PortSink) -> io::Result<()> {
        if let PortSink::Tap(tap) = &sink {
            tap.set_nonblocking(true)?;
            self.shared.poll(port, tap)?;
        }
        write(&self.shared.ports).insert(port, sink);
        Ok(())
    }

    /// Stops moving frames for `port`; returns its sink (dropping a TAP's last handle closes it,
    /// and the kernel deletes the interface).
    pub fn remove_port(&self, port: PortId) -> Option<PortSink> {
        let sink = write(&self.shared.ports).remove(&port);
        if let Some(PortSink::Tap(tap)) = &sink {
            self.shared.unpoll(tap);
        }
        sink
    }

    /// Sends `frame` into the switch as if it came from `port` (used for the daemon's own
    /// frames, e.g. address probes).
    pub fn inject(&self, port: PortId, frame: &[u8]) {
        let mut buf = vec![0u8; HEADROOM + frame.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut fwd = Forward::default();
        let frame = HEADROOM..HEADROOM + frame.len();
        self.shared.with_batch(0, |batch| {
            batch
                .switch
                .frame_from_port(batch.now, port, &buf[frame.clone()], &mut fwd);
            let Some((packet, sends)) = batch.forward(&mut buf, frame, &VnetHdr::PLAIN, &fwd)
            else {
                return;
            };
            match RawSender::new(1) {
                Ok(mut sender) => {
                    workers::replicate(&self.shared, &mut sender, &mut buf, packet, &sends)
                }
                Err(e) => {
                    tracing::debug!("raw socket for an injected frame: {e}");
                    let lost = sends.vteps().len() as u64;
                    let c = &self.shared.counters;
                    c.underlay_send_errors.fetch_add(lost, Ordering::Relaxed);
                }
            }
        });
    }

    /// Advances the switch's clocks (ageing, key rotation) and sends the control datagrams
    /// (handshakes, key announcements) that are due. Returns how soon to call it again while a key rotation is in progress.
    pub fn tick(&self) -> Option<Duration> {
        let now = self.shared.now();
        let switch = read(&self.shared.switch);
        switch.tick(now);
        self.shared.send_control(&switch, now);
        switch.announce_within()
    }

    /// Gives network `vni` its gateway host (or takes it away with `None`): in the switch,
    /// which then steers the gateway's frames to it, and in the services worker, which runs
    /// it. `seed` is the gateway host's randomness (TCP initial sequence numbers).
    pub fn set_gateway(
        &self,
        vni: Vni,
        gateway: Option<GatewayAddr>,
        seed: u64,
    ) -> Result<(), crate::core::SwitchError> {
        write(&self.shared.switch).set_gateway(vni, gateway)?;
        // The worker ends only with the dataplane; a send cannot fail before then.
        let _ = self
            .shared
            .services
            .send(services::Message::Gateway(vni, gateway, seed));
        Ok(())
    }

    /// The names network `vni`'s DNS answers for.
    pub fn set_names(&self, vni: Vni, names: crate::core::dns::Names) {
        let _ = self
            .shared
            .services
            .send(services::Message::Names(vni, names));
    }

    /// The resolvers the gateways forward other names to.
    pub fn set_dns_upstreams(&self, upstreams: Vec<SocketAddr>) {
        let _ = self
            .shared
            .services
            .send(services::Message::Upstreams(upstreams));
    }

    /// Stops running network `vni`'s gateway host (the network has left the switch).
    pub fn forget_gateway(&self, vni: Vni) {
        let _ = self
            .shared
            .services
            .send(services::Message::Gateway(vni, None, 0));
    }

    pub fn stats(&self) -> DataplaneStats {
        // Datagrams received carry their socket's overflow count (`SO_RXQ_OVFL`), but a socket
        // that overflowed and then gets no more traffic would keep an old count (the kernel
        // hashes each flow to one socket of the group): read each one's count now as well.
        let c = &self.shared.counters;
        for (i, sock) in self.shared.udp.iter().enumerate() {
            if let Ok(drops) = sys::socket_drops(sock.as_raw_fd()) {
                c.underlay_rx_overflows[i].fetch_max(u64::from(drops), Ordering::Relaxed);
            }
        }
        c.snapshot()
    }

    /// Each TAP port's queue overruns: frames its container sent that the TAP's queue had no
    /// room for, from the interface's own `tx_dropped` (read in the container's namespace on a
    /// short-lived thread). Ports whose counter cannot be read are left out.
    pub fn port_overruns(&self) -> HashMap<PortId, u64> {
        let taps = read(&self.shared.ports)
            .iter()
            .filter_map(|(id, sink)| match sink {
                PortSink::Tap(tap) => Some((*id, tap.clone())),
                PortSink::Host(_) => None,
            })
            .collect();
        overruns::tap_overruns(taps)
    }

    /// Stops the workers and closes every TAP.
    pub fn shutdown(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        write(&self.shared.ports).clear();
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// Binds the pool of UDP sockets superframes are sent from, on fixed ports spread over
/// 49152–65535 (the next free one when a port is taken).
fn source_sockets(listen: Ipv4Addr) -> io::Result<Vec<UdpSocket>> {
    const FIRST: u16 = 49152;
    const SPACING: u16 = ((65536 - FIRST as u32) / SOURCE_SOCKETS as u32) as u16;
    let mut out = Vec::with_capacity(SOURCE_SOCKETS);
    for i in 0..SOURCE_SOCKETS as u16 {
        let base = FIRST + i * SPACING;
        let sock = (0..SPACING)
            .find_map(|k| UdpSocket::bind(SocketAddrV4::new(listen, base + k)).ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("no free UDP source port in {base}..{}", base + SPACING),
                )
            })?;
        sys::set_dont_fragment(sock.as_raw_fd())?;
        sys::set_buffer_sizes(sock.as_raw_fd(), SOCKET_BUFFER);
        // Send-only: nothing sent to these ports is ever queued.
        sys::drop_all_input(sock.as_raw_fd())?;
        out.push(sock);
    }
    Ok(out)
}

/// How long a starting daemon waits for the underlay port while another process (typically
/// the previous daemon, still exiting) holds it.
const BIND_PATIENCE: Duration = Duration::from_secs(3);

/// Binds the underlay: `n` UDP sockets on `addr`, one per worker, in one `SO_REUSEPORT` group.
/// Retries for [`BIND_PATIENCE`] while the address is in use; then fails with one message that
/// says what holds it and what to do.
///
/// `SO_REUSEPORT` would let a second daemon (any process of the same user) join the group and
/// take a share of the traffic unnoticed. So the address is first bound by a socket without
/// it, which fails while anyone holds the port (another daemon's group included), and only then,
/// that socket closed, by the group. A daemon starting in the instant between is caught the same
/// way by its own probe.
fn bind_underlay(addr: SocketAddrV4, n: usize) -> io::Result<Vec<UdpSocket>> {
    let start = Instant::now();
    loop {
        let bound = UdpSocket::bind(addr)
            .and_then(|probe| probe.local_addr())
            .and_then(|at| reuseport_group(at, n));
        match bound {
            Ok(group) => return Ok(group),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && start.elapsed() < BIND_PATIENCE => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind the underlay UDP socket {addr}: it is in use (waited {} s); \
                         another vswitch daemon or a kernel vxlan device on that port holds it: \
                         stop it, or choose another --listen or --port",
                        BIND_PATIENCE.as_secs()
                    ),
                ))
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot bind the underlay UDP socket {addr}: {e}"),
                ))
            }
        }
    }
}

/// `n` UDP sockets bound to `at` with `SO_REUSEPORT`: the kernel hands each datagram to one of
/// them by a hash of its addresses and ports.
fn reuseport_group(at: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    (0..n)
        .map(|_| {
            let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            sock.set_reuse_port(true)?;
            sock.bind(&at.into())?;
            Ok(sock.into())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::SwitchConfig;

    /// The underlay socket can take a burst of [`SOCKET_BUFFER`] bytes, and every pool socket
    /// can queue as much for sending (the kernel reports twice what was set).
    #[test]
    fn sockets_get_burst_sized_buffers() {
        // Its workers claim counter lanes.
        let _alone = crate::core::counters::LANE_TESTS
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let switch = Arc::new(RwLock::new(Switch::new(SwitchConfig::default())));
        let dp = match Dataplane::start(switch, Ipv4Addr::LOCALHOST, 0, 2, Instant::now()) {
            Ok(dp) => dp,
            Err(e) => {
                // The raw socket (and the FORCE options) need root; scripts/test.sh runs this
                // as root.
                assert!(
                    !crate::user::is_root(),
                    "root could not start a data path: {e}"
                );
                return;
            }
        };
        for u in &dp.shared.udp {
            let (rcv, _) = sys::buffer_sizes(u.as_raw_fd()).expect("underlay");
            assert!(rcv >= SOCKET_BUFFER, "underlay receive buffer {rcv}");
        }
        for s in &dp.shared.sources {
            let (_, snd) = sys::buffer_sizes(s.as_raw_fd()).expect("pool socket");
            assert!(snd >= SOCKET_BUFFER, "pool socket send buffer {snd}");
        }
        dp.shutdown();
    }
}
