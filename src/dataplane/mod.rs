//! The I/O loop: moves bytes between TAP ports, the underlay and the core switch.
//!
//! Two worker threads, one per direction, each with its own preallocated buffers:
//! - `ports`: epoll over every TAP; reads frames, asks the switch where they go, writes them to
//!   local TAPs and sends them, encapsulated, to VTEPs;
//! - `underlay`: recvmmsg batches from the UDP socket; asks the switch; writes inner frames to
//!   TAPs.
//!
//! Neither allocates per frame. They share the switch through a read-mostly lock (taken once
//! per batch) and the port table through another; the control plane takes the write side only
//! to change configuration.
//!
//! # Offloads
//!
//! TAPs are opened with the virtio-net header and TSO/checksum offloads (see `daemon`), so the
//! container's kernel hands us TCP superframes of up to 64 KiB instead of MTU-sized frames, and
//! takes superframes from us. Per superframe the switch is asked once (forwarding, learning,
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
//! ([`crate::core::offload::Coalescer`]) written with one TAP write.
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
//! over the handful of equal-cost paths an underlay has.

mod stats;
pub mod sys;
pub mod tap;

pub use stats::DataplaneStats;
pub use tap::{Offload, Tap, TapOptions};

use stats::Counters;

use crate::core::sync::{read, write};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::offload::{self, Coalescer, Push};
use crate::core::switch::{HEADROOM, TAILROOM};
use crate::core::{Forward, PortId, Switch, Timestamp};
use crate::wire::underlay::{self, OUTER_LEN};
use crate::wire::virtio_net::VnetHdr;
use sys::{Epoll, GsoSender, RawSender, RecvBatch};

/// Frames read per TAP per wakeup, and datagrams per recvmmsg/sendmmsg.
const BATCH: usize = 32;
/// Largest frame or datagram handled (jumbo frames included).
const MAX_FRAME: usize = 65_535;
const POLL: Duration = Duration::from_millis(200);
/// UDP sockets (and so outer source ports) superframes are sent from.
pub const SOURCE_SOCKETS: usize = 8;
/// Room for the segments of one superframe, each with headroom and tailroom: 64 KiB of payload
/// at an MSS down to ~100 bytes.
const SEGMENT_ARENA: usize = 512 * 1024;
/// Most segments the arena can hold (each slot has at least headroom, tailroom and headers).
const MAX_SEGMENTS: usize = SEGMENT_ARENA / (HEADROOM + TAILROOM + 54);

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
    epoll: Epoll,
    udp: UdpSocket,
    /// Where superframes are sent from; see "Outer UDP source ports".
    sources: Vec<UdpSocket>,
    source_ports: Vec<u16>,
    src_ip: Ipv4Addr,
    start: Instant,
    stop: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp(crate::core::time::duration_millis(self.start.elapsed()))
    }

    /// The pool socket, and so the source port, for a flow whose hash gave `src_port`.
    fn source(&self, src_port: u16) -> usize {
        usize::from(src_port) % self.sources.len()
    }

    fn deliver(&self, sink: Option<&PortSink>, vnet: &VnetHdr, frame: &[u8]) {
        match sink {
            Some(PortSink::Tap(tap)) => {
                if tap.write_with(vnet, frame).is_err() {
                    self.counters
                        .tap_write_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            // The daemon's own port only ever needs ARP; superframes are not for it.
            Some(PortSink::Host(_)) if vnet.is_gso() => {}
            Some(PortSink::Host(tx)) => {
                let _ = tx.try_send(frame.to_vec());
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
}

impl Dataplane {
    /// Binds the underlay (UDP `listen:port`) and starts the workers.
    pub fn start(
        switch: Arc<RwLock<Switch>>,
        listen: Ipv4Addr,
        port: u16,
        start: Instant,
    ) -> io::Result<Dataplane> {
        let udp = UdpSocket::bind(SocketAddrV4::new(listen, port)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind the underlay UDP socket {listen}:{port}: {e}"),
            )
        })?;
        sys::set_recv_timeout(udp.as_raw_fd(), POLL)?;
        sys::set_buffer_sizes(udp.as_raw_fd(), 4 << 20);
        sys::enable_udp_gro(udp.as_raw_fd())?;
        let sources = source_sockets(listen)?;
        let source_ports = sources
            .iter()
            .map(|s| s.local_addr().map(|a| a.port()))
            .collect::<io::Result<Vec<u16>>>()?;
        let sender = RawSender::new(BATCH)?;
        let shared = Arc::new(Shared {
            switch,
            ports: RwLock::new(HashMap::new()),
            epoll: Epoll::new()?,
            udp,
            sources,
            source_ports,
            src_ip: listen,
            start,
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let s1 = shared.clone();
        let s2 = shared.clone();
        let workers = vec![
            std::thread::Builder::new()
                .name("vswitch-ports".into())
                .spawn(move || ports_worker(&s1, sender))?,
            std::thread::Builder::new()
                .name("vswitch-underlay".into())
                .spawn(move || underlay_worker(&s2))?,
        ];
        Ok(Dataplane { shared, workers })
    }

    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// The underlay UDP socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.udp.local_addr()
    }

    /// Starts moving frames for `port`. The switch must already know the port.
    pub fn add_port(&self, port: PortId, sink: PortSink) -> io::Result<()> {
        if let PortSink::Tap(tap) = &sink {
            tap.set_nonblocking(true)?;
            self.shared.epoll.add(tap.as_raw_fd(), u64::from(port.0))?;
        }
        write(&self.shared.ports).insert(port, sink);
        Ok(())
    }

    /// Stops moving frames for `port`; returns its sink (dropping a TAP's last handle closes it,
    /// and the kernel deletes the interface).
    pub fn remove_port(&self, port: PortId) -> Option<PortSink> {
        let sink = write(&self.shared.ports).remove(&port);
        if let Some(PortSink::Tap(tap)) = &sink {
            let _ = self.shared.epoll.delete(tap.as_raw_fd());
        }
        sink
    }

    /// Sends `frame` into the switch as if it came from `port` (used for the daemon's own
    /// frames, e.g. address probes).
    pub fn inject(&self, port: PortId, frame: &[u8]) {
        let mut buf = vec![0u8; HEADROOM + frame.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut fwd = Forward::default();
        let Ok(mut sender) = RawSender::new(1) else {
            return;
        };
        let switch = read(&self.shared.switch);
        let ports = read(&self.shared.ports);
        switch.frame_from_port(self.shared.now(), port, frame, &mut fwd);
        let plain = VnetHdr::PLAIN;
        if let Some(p) = route(
            &self.shared,
            &switch,
            &ports,
            &mut buf,
            &plain,
            frame.len(),
            &fwd,
        ) {
            replicate(&self.shared, &mut sender, &mut buf, p, &fwd);
        }
    }

    /// Advances the switch's clocks (ageing, key rotation) and sends the key announcements
    /// that are due. Returns how soon to call it again while a key rotation is in progress.
    pub fn tick(&self) -> Option<Duration> {
        let now = self.shared.now();
        let switch = read(&self.shared.switch);
        switch.tick(now);
        let c = &self.shared.counters;
        switch.announce(now, |vtep, datagram| {
            match self.shared.udp.send_to(datagram, vtep.0) {
                Ok(_) => c.underlay_tx.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::debug!("key announcement to {}: {e}", vtep.0);
                    c.underlay_send_errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
        switch.announce_within()
    }

    pub fn stats(&self) -> DataplaneStats {
        self.shared.counters.snapshot()
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
        sys::set_buffer_sizes(sock.as_raw_fd(), 4 << 20);
        out.push(sock);
    }
    Ok(out)
}

/// Per-worker state for sending superframes: the segment arena and where each datagram lies.
struct Segmenter {
    arena: Box<[u8]>,
    datagrams: Vec<std::ops::Range<usize>>,
    gso: GsoSender,
}

impl Segmenter {
    fn new() -> Segmenter {
        Segmenter {
            arena: vec![0u8; SEGMENT_ARENA].into_boxed_slice(),
            datagrams: Vec::with_capacity(MAX_SEGMENTS),
            gso: GsoSender::default(),
        }
    }

    /// Cuts `frame` into segments, encapsulates each and sends the run to every VTEP in `fwd`.
    fn send(
        &mut self,
        shared: &Shared,
        switch: &Switch,
        vnet: &VnetHdr,
        frame: &[u8],
        fwd: &Forward,
    ) {
        let Some(vni) = fwd.vni else { return };
        if fwd.vteps.is_empty() {
            return;
        }
        let c = &shared.counters;
        let segs = match offload::segment(frame, vnet, &mut self.arena, HEADROOM, TAILROOM) {
            Ok(segs) => segs,
            Err(e) => {
                c.offload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("superframe: {e}");
                return;
            }
        };
        c.superframes_segmented.fetch_add(1, Ordering::Relaxed);
        self.datagrams.clear();
        let mut src_port = 0;
        for r in segs.frames() {
            match switch.encapsulate(vni, &mut self.arena, r) {
                Ok(enc) => {
                    src_port = enc.src_port;
                    self.datagrams.push(enc.datagram);
                }
                Err(_) => {
                    c.offload_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let Some(seg) = self.datagrams.first().map(|d| d.len()) else {
            return;
        };
        let sock = &shared.sources[shared.source(src_port)];
        for v in &fwd.vteps {
            let dst = SocketAddrV4::new(vtep_ip(*v), v.0.port());
            let arena = &self.arena;
            let sent = self.gso.send(
                sock,
                dst,
                seg,
                self.datagrams.iter().map(|d| &arena[d.clone()]),
            );
            count_sent(shared, sent, self.datagrams.len());
        }
    }
}

/// Frames from TAPs to wherever the switch says.
fn ports_worker(shared: &Shared, mut sender: RawSender) {
    let mut events = sys::epoll_events(64);
    let mut tokens = Vec::with_capacity(64);
    let mut bufs: Vec<Box<[u8]>> = (0..BATCH)
        .map(|_| vec![0u8; HEADROOM + MAX_FRAME + TAILROOM].into_boxed_slice())
        .collect();
    let mut fwd = Forward::default();
    let mut segmenter = Segmenter::new();
    // Datagrams waiting for one sendmmsg: (buffer slot, range in it, destination).
    let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
    while !shared.stop.load(Ordering::Relaxed) {
        if let Err(e) = shared.epoll.wait(&mut events, &mut tokens, POLL) {
            tracing::error!("epoll_wait: {e}");
            std::thread::sleep(POLL);
            continue;
        }
        if tokens.is_empty() {
            continue;
        }
        let switch = read(&shared.switch);
        let ports = read(&shared.ports);
        let now = shared.now();
        for &token in &tokens {
            let port = PortId(token as u32);
            let Some(PortSink::Tap(tap)) = ports.get(&port) else {
                continue;
            };
            let vnet_len = tap.vnet_hdr_len();
            for _ in 0..BATCH {
                let slot = pending.len();
                let buf = &mut bufs[slot];
                // The virtio-net header lands in the headroom, the frame at HEADROOM.
                let n = match tap.read(&mut buf[HEADROOM - vnet_len..HEADROOM + MAX_FRAME]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        shared
                            .counters
                            .tap_read_errors
                            .fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                };
                let vnet = if vnet_len == 0 {
                    VnetHdr::PLAIN
                } else {
                    VnetHdr::parse(&buf[HEADROOM - vnet_len..HEADROOM]).unwrap_or(VnetHdr::PLAIN)
                };
                let Some(len) = n.checked_sub(vnet_len) else {
                    shared
                        .counters
                        .offload_errors
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let frame = HEADROOM..HEADROOM + len;
                if vnet.is_gso() {
                    // Keep order: what is queued for sendmmsg leaves before the superframe.
                    flush(shared, &mut sender, &bufs, &mut pending);
                    let buf = &bufs[slot];
                    switch.frame_from_port(now, port, &buf[frame.clone()], &mut fwd);
                    for p in &fwd.ports {
                        shared.deliver(ports.get(p), &vnet, &buf[frame.clone()]);
                    }
                    segmenter.send(shared, &switch, &vnet, &buf[frame], &fwd);
                    continue;
                }
                if offload::complete_checksum(&mut buf[frame.clone()], &vnet).is_err() {
                    shared
                        .counters
                        .offload_errors
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                switch.frame_from_port(now, port, &buf[frame], &mut fwd);
                if let Some(p) = route(shared, &switch, &ports, buf, &VnetHdr::PLAIN, len, &fwd) {
                    if fwd.vteps.len() == 1 {
                        pending.push(Pending {
                            slot,
                            range: p.range,
                            dst: vtep_ip(fwd.vteps[0]),
                        });
                        if pending.len() == BATCH {
                            flush(shared, &mut sender, &bufs, &mut pending);
                        }
                    } else {
                        replicate(shared, &mut sender, buf, p, &fwd);
                    }
                }
            }
        }
        flush(shared, &mut sender, &bufs, &mut pending);
    }
}

struct Pending {
    slot: usize,
    range: std::ops::Range<usize>,
    dst: Ipv4Addr,
}

/// An encapsulated datagram in a buffer, outer headers included, ready for the raw socket.
struct Packet {
    range: std::ops::Range<usize>,
}

/// Delivers a frame (at `HEADROOM..HEADROOM+len` in `buf`) to local ports and, when it goes to
/// VTEPs, encapsulates it in place; returns the packet to send.
fn route(
    shared: &Shared,
    switch: &Switch,
    ports: &HashMap<PortId, PortSink>,
    buf: &mut [u8],
    vnet: &VnetHdr,
    len: usize,
    fwd: &Forward,
) -> Option<Packet> {
    let frame = HEADROOM..HEADROOM + len;
    for p in &fwd.ports {
        shared.deliver(ports.get(p), vnet, &buf[frame.clone()]);
    }
    let vni = fwd.vni?;
    if fwd.vteps.is_empty() {
        return None;
    }
    let enc = switch.encapsulate(vni, buf, frame).ok()?;
    let start = enc.datagram.start.checked_sub(OUTER_LEN)?;
    let range = start..enc.datagram.end;
    // The destination is filled in per VTEP by `set_destination`.
    let hdr: &mut [u8; OUTER_LEN] = (&mut buf[start..enc.datagram.start]).try_into().ok()?;
    // The pool socket's port, as a superframe of the same flow would get.
    let src_port = shared.source_ports[shared.source(enc.src_port)];
    underlay::emit(
        hdr,
        shared.src_ip,
        Ipv4Addr::UNSPECIFIED,
        src_port,
        0,
        enc.datagram.len(),
    )?;
    let p = Packet { range };
    set_destination(buf, &p, fwd.vteps[0]);
    Some(p)
}

fn vtep_ip(v: crate::core::Vtep) -> Ipv4Addr {
    match v.0.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// Points an encapsulated packet's outer headers at `vtep`.
fn set_destination(buf: &mut [u8], p: &Packet, vtep: crate::core::Vtep) {
    let s = p.range.start;
    buf[s + 16..s + 20].copy_from_slice(&vtep_ip(vtep).octets());
    buf[s + 22..s + 24].copy_from_slice(&vtep.0.port().to_be_bytes());
}

/// Head-end replication: the same datagram to every VTEP in `fwd`, re-addressed each time.
fn replicate(shared: &Shared, sender: &mut RawSender, buf: &mut [u8], p: Packet, fwd: &Forward) {
    for &v in &fwd.vteps {
        set_destination(buf, &p, v);
        let one = [(&buf[p.range.clone()], vtep_ip(v))];
        count_sent(shared, sender.send_batch(&one), 1);
    }
}

fn flush(shared: &Shared, sender: &mut RawSender, bufs: &[Box<[u8]>], pending: &mut Vec<Pending>) {
    if pending.is_empty() {
        return;
    }
    let mut batch: [(&[u8], Ipv4Addr); BATCH] = [(&[], Ipv4Addr::UNSPECIFIED); BATCH];
    for (i, p) in pending.iter().enumerate() {
        batch[i] = (&bufs[p.slot][p.range.clone()], p.dst);
    }
    count_sent(
        shared,
        sender.send_batch(&batch[..pending.len()]),
        pending.len(),
    );
    pending.clear();
}

fn count_sent(shared: &Shared, (sent, err): (usize, Option<io::Error>), of: usize) {
    shared
        .counters
        .underlay_tx
        .fetch_add(sent as u64, Ordering::Relaxed);
    if let Some(e) = err {
        shared
            .counters
            .underlay_send_errors
            .fetch_add((of - sent) as u64, Ordering::Relaxed);
        tracing::debug!("underlay send: {e}");
    }
}

/// Datagrams from the underlay to local ports.
fn underlay_worker(shared: &Shared) {
    let mut batch = RecvBatch::new(BATCH, MAX_FRAME);
    let mut fwd = Forward::default();
    let mut coalescer = Coalescer::new();
    let fd = shared.udp.as_raw_fd();
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match sys::recv_batch(fd, &mut batch) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                shared
                    .counters
                    .underlay_recv_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!("underlay recv: {e}");
                continue;
            }
        };
        let switch = read(&shared.switch);
        let ports = read(&shared.ports);
        let now = shared.now();
        let mut datagrams = 0u64;
        for i in 0..n {
            let from = SocketAddr::V4(batch.from[i]);
            let len = batch.lens[i];
            // A UDP_GRO buffer holds a run of datagrams of `gso_size` bytes (the last shorter).
            let size = match batch.gso_size[i] {
                0 => len.max(1),
                g => g,
            };
            for datagram in batch.bufs[i][..len].chunks_mut(size) {
                datagrams += 1;
                switch.datagram_from_vtep(now, from, datagram, &mut fwd);
                let frame = &datagram[fwd.frame.clone()];
                if let [port] = fwd.ports[..] {
                    if let Some(PortSink::Tap(tap)) = ports.get(&port) {
                        if tap.vnet_hdr_len() > 0 {
                            match coalescer.push(port.0, frame) {
                                Push::Merged => continue,
                                Push::Busy => {
                                    write_superframe(shared, &ports, &mut coalescer);
                                    if coalescer.push(port.0, frame) == Push::Merged {
                                        continue;
                                    }
                                }
                                Push::Unsuitable => {}
                            }
                        }
                    }
                }
                // Whatever is pending was received before this frame: write it first.
                write_superframe(shared, &ports, &mut coalescer);
                for p in &fwd.ports {
                    shared.deliver(ports.get(p), &VnetHdr::PLAIN, frame);
                }
            }
        }
        write_superframe(shared, &ports, &mut coalescer);
        shared
            .counters
            .underlay_rx
            .fetch_add(datagrams, Ordering::Relaxed);
    }
}

/// Writes the coalescer's pending superframe (if any) to its port.
fn write_superframe(shared: &Shared, ports: &HashMap<PortId, PortSink>, c: &mut Coalescer) {
    let Some((port, bytes)) = c.take() else {
        return;
    };
    let ok = match ports.get(&PortId(port)) {
        Some(PortSink::Tap(tap)) => tap.write(bytes).is_ok(),
        _ => false,
    };
    let c = &shared.counters;
    if !ok {
        c.tap_write_errors.fetch_add(1, Ordering::Relaxed);
    } else if VnetHdr::parse(bytes).is_ok_and(|h| h.is_gso()) {
        c.superframes_coalesced.fetch_add(1, Ordering::Relaxed);
    }
}
