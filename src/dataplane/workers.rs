//! The worker loop and the glue between it and the switch: every frame goes through
//! [`Batch::deliver`] (local ports first, via `Forward::deliver`) and only then is encapsulated
//! for VTEPs, so a frame is never sealed before its local copies are out.
//!
//! Each worker owns one queue of every TAP and one of the underlay sockets, and moves frames
//! both ways: what its queues read goes to the switch and on to ports and VTEPs; what its socket
//! receives goes to ports, written on its own queue of each. The container's kernel answers a
//! flow on the queue that delivered it, so both directions of a flow meet on one worker.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use super::segmenter::Segmenter;
use super::sys::{self, RawSender, RecvBatch};
use super::{Offload, PortSink, Shared, BATCH, HEADROOM, MAX_FRAME, POLL, TAILROOM};
use crate::core::offload::{self, Coalescer, Offer, Push};
use crate::core::sync::read;
use crate::core::{DropReason, Forward, PortId, Sends, Switch, Timestamp, Vtep};
use crate::wire::underlay::{UnderlayPacket, UnderlayRepr, OUTER_LEN};
use crate::wire::virtio_net::VnetHdr;

/// What a worker holds while it handles one batch: the switch and the port table, read-locked
/// once per batch, and the time.
pub(super) struct Batch<'a> {
    pub shared: &'a Shared,
    pub switch: &'a Switch,
    pub ports: &'a HashMap<PortId, PortSink>,
    pub now: Timestamp,
    /// The TAP queue this batch writes on: the worker's own.
    pub queue: usize,
}

impl Shared {
    /// Runs `f` over one batch, with the switch and the port table read-locked.
    /// Sends the switch's control datagrams due at `now` (see `Switch::announce`) from the
    /// pool socket of the source port the switch chose: the one its network's data leaves
    /// from, so that the receiver takes both from one queue, in order.
    pub(super) fn send_control(&self, switch: &Switch, now: Timestamp) {
        let c = &self.counters;
        switch.announce(now, |vtep, src_port, datagram| {
            match self.sources[self.source(src_port)].send_to(datagram, vtep.0) {
                Ok(_) => c.underlay_tx.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::debug!("control datagram to {}: {e}", vtep.0);
                    c.underlay_send_errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
    }

    pub(super) fn with_batch<R>(&self, queue: usize, f: impl FnOnce(&Batch<'_>) -> R) -> R {
        let switch = read(&self.switch);
        let ports = read(&self.ports);
        f(&Batch {
            shared: self,
            switch: &switch,
            ports: &ports,
            now: self.now(),
            queue,
        })
    }
}

/// An encapsulated datagram in a buffer, outer headers included, ready for the raw socket.
pub(super) struct Packet {
    range: Range<usize>,
}

struct Pending {
    slot: usize,
    range: Range<usize>,
    dst: Ipv4Addr,
}

impl Batch<'_> {
    /// The first half of carrying out `fwd`: `frame` to every local port. Returns the sends to
    /// VTEPs that are left, if any.
    pub fn deliver<'f>(&self, fwd: &'f Forward, frame: &[u8], vnet: &VnetHdr) -> Option<Sends<'f>> {
        // The gateway takes single frames (a container's TCP to it is segmented to its MSS); a
        // superframe for it is refused and counted.
        match (fwd.gateway, fwd.vni, vnet.is_gso()) {
            (true, Some(vni), false) => self.shared.to_gateway(vni, frame),
            (true, _, true) => {
                let c = &self.shared.counters;
                c.offload_errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        fwd.deliver(frame, |port, frame| {
            self.shared
                .deliver(self.ports.get(&port), self.queue, vnet, frame)
        })
    }

    /// Carries out `fwd` for a frame without GSO at `frame` in `buf`: local deliveries, then
    /// encapsulation in place. Returns the packet to send and where to.
    pub fn forward<'f>(
        &self,
        buf: &mut [u8],
        frame: Range<usize>,
        vnet: &VnetHdr,
        fwd: &'f Forward,
    ) -> Option<(Packet, Sends<'f>)> {
        let sends = self.deliver(fwd, &buf[frame.clone()], vnet)?;
        let packet = self.encapsulate(buf, frame, &sends)?;
        Some((packet, sends))
    }

    /// Encapsulates the frame in place and writes the outer headers, addressed to the first
    /// VTEP. Every refusal is counted by the switch under its drop reason.
    fn encapsulate(
        &self,
        buf: &mut [u8],
        frame: Range<usize>,
        sends: &Sends<'_>,
    ) -> Option<Packet> {
        let enc = self.switch.encapsulate(sends, buf, frame).ok()?;
        // The pool socket's port, as a superframe of the same flow would get.
        let src_port = self.shared.source_ports[self.shared.source(enc.src_port)];
        let repr = UnderlayRepr {
            source: SocketAddrV4::new(self.shared.src_ip, src_port),
            destination: vtep_addr(sends.vteps()[0]),
            payload_len: enc.datagram.len(),
        };
        let range = enc.datagram.start.saturating_sub(OUTER_LEN)..enc.datagram.end;
        let written = UnderlayPacket::new_checked(&mut buf[range.clone()])
            .and_then(|mut packet| repr.emit(&mut packet));
        match written {
            Ok(()) => Some(Packet { range }),
            Err(e) => {
                tracing::debug!("outer headers: {e}");
                self.switch.count_drop(sends.vni(), DropReason::TooBig);
                None
            }
        }
    }
}

/// The underlay address of a VTEP. Peers are IPv4 (the daemon refuses others); an IPv6 one
/// would get the unspecified address, which the kernel refuses to send to (counted as a send
/// error).
pub(super) fn vtep_addr(v: Vtep) -> SocketAddrV4 {
    let ip = match v.0.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    SocketAddrV4::new(ip, v.0.port())
}

/// Head-end replication: the same datagram to every VTEP of `sends`, re-addressed each time.
pub(super) fn replicate(
    shared: &Shared,
    sender: &mut RawSender,
    buf: &mut [u8],
    p: Packet,
    sends: &Sends<'_>,
) {
    for &v in sends.vteps() {
        let to = vtep_addr(v);
        UnderlayPacket::new_unchecked(&mut buf[p.range.clone()]).set_destination(to);
        let one = [(&buf[p.range.clone()], *to.ip())];
        count_sent(shared, sender.send_batch(&one), 1);
    }
}

/// A worker's own state: its buffers, its lane of the traffic counters, its raw sender, its
/// segment arena and its coalescer. Nothing here is shared, so nothing is locked per frame.
pub(super) struct Worker<'s> {
    shared: &'s Shared,
    /// This worker's index: its epoll set, its underlay socket and its queue of every TAP.
    index: usize,
    sender: RawSender,
    bufs: Vec<Box<[u8]>>,
    /// This worker's own traffic counters: no lock-prefixed add per frame.
    fwd: Forward,
    segmenter: Segmenter,
    /// Datagrams waiting for one sendmmsg.
    pending: Vec<Pending>,
    recv: RecvBatch,
    coalescer: Coalescer,
}

/// The epoll token of a worker's underlay socket; a TAP queue's token is its port's id.
pub(super) const UNDERLAY: u64 = u64::MAX;

impl<'s> Worker<'s> {
    pub fn new(shared: &'s Shared, index: usize, sender: RawSender) -> Self {
        Worker {
            shared,
            index,
            sender,
            bufs: (0..BATCH)
                .map(|_| vec![0u8; HEADROOM + MAX_FRAME + TAILROOM].into_boxed_slice())
                .collect(),
            fwd: Forward::with_own_lane(),
            segmenter: Segmenter::new(),
            pending: Vec::with_capacity(BATCH),
            recv: RecvBatch::new(BATCH, MAX_FRAME),
            coalescer: Coalescer::new(),
        }
    }

    /// Polls this worker's TAP queues and underlay socket until the data path stops. It reads
    /// what is ready and goes: it never waits to fill a batch, and sleeps in `epoll_wait` when
    /// nothing is (no spinning: measured, it made ping slower here, see README's Benchmarks).
    pub fn run(mut self) {
        let shared = self.shared;
        let epoll = &shared.epolls[self.index];
        let mut events = sys::epoll_events(64);
        let mut tokens = Vec::with_capacity(64);
        while !shared.stop.load(Ordering::Relaxed) {
            if let Err(e) = epoll.wait(&mut events, &mut tokens, POLL) {
                tracing::error!("epoll_wait: {e}");
                std::thread::sleep(POLL);
                continue;
            }
            for &token in &tokens {
                if token == UNDERLAY {
                    self.underlay_datagrams();
                } else {
                    self.tap_frames(PortId(token as u32), (token >> 32) as usize);
                }
            }
        }
    }

    /// Frames from TAP queue `q` of `port` to wherever the switch says: up to [`BATCH`] of
    /// them, then the next ready descriptor gets its turn.
    fn tap_frames(&mut self, port: PortId, q: usize) {
        let shared = self.shared;
        let Worker {
            sender,
            bufs,
            fwd,
            segmenter,
            pending,
            ..
        } = self;
        shared.with_batch(self.index, |batch| {
            let c = &shared.counters;
            let Some(PortSink::Tap(tap)) = batch.ports.get(&port) else {
                return;
            };
            let vnet_len = tap.vnet_hdr_len();
            for _ in 0..BATCH {
                let slot = pending.len();
                let buf = &mut bufs[slot];
                // The virtio-net header lands in the headroom, the frame at HEADROOM.
                let n = match tap.read_on(q, &mut buf[HEADROOM - vnet_len..HEADROOM + MAX_FRAME]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        c.tap_read_errors.fetch_add(1, Ordering::Relaxed);
                        // EBADFD: the kernel detached the TAP (its interface or its namespace
                        // was deleted). It would poll ready forever: stop polling it and tell
                        // the daemon, which reaps the port (once, however many queues say so).
                        if e.raw_os_error() == Some(libc::EBADFD) {
                            shared.unpoll(tap);
                            let _ = shared.gone.send(port);
                        }
                        break;
                    }
                };
                let vnet = if vnet_len == 0 {
                    VnetHdr::PLAIN
                } else {
                    VnetHdr::parse(&buf[HEADROOM - vnet_len..HEADROOM]).unwrap_or(VnetHdr::PLAIN)
                };
                let Some(len) = n.checked_sub(vnet_len) else {
                    c.offload_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let frame = HEADROOM..HEADROOM + len;
                if vnet.is_gso() {
                    // Keep order: what is queued for sendmmsg leaves before the superframe.
                    flush(shared, sender, bufs, pending);
                    let superframe = &bufs[slot][frame];
                    batch
                        .switch
                        .frame_from_port(batch.now, port, superframe, fwd);
                    if let Some(sends) = batch.deliver(fwd, superframe, &vnet) {
                        segmenter.send(batch, &vnet, superframe, &sends);
                    }
                    continue;
                }
                if !batch.switch.admit_len(port, len) {
                    continue;
                }
                if offload::complete_checksum(&mut buf[frame.clone()], &vnet).is_err() {
                    c.offload_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                batch
                    .switch
                    .frame_from_port(batch.now, port, &buf[frame.clone()], fwd);
                let Some((packet, sends)) = batch.forward(buf, frame, &VnetHdr::PLAIN, fwd) else {
                    continue;
                };
                if let [only] = sends.vteps() {
                    pending.push(Pending {
                        slot,
                        range: packet.range,
                        dst: *vtep_addr(*only).ip(),
                    });
                    if pending.len() == BATCH {
                        flush(shared, sender, bufs, pending);
                    }
                } else {
                    replicate(shared, sender, buf, packet, &sends);
                }
            }
            flush(shared, sender, bufs, pending);
        });
    }

    /// One `recvmmsg` batch from this worker's underlay socket to local ports.
    fn underlay_datagrams(&mut self) {
        let shared = self.shared;
        let index = self.index;
        let Worker {
            fwd,
            recv,
            coalescer,
            ..
        } = self;
        let n = match sys::recv_batch(shared.udp[index].as_raw_fd(), recv) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                shared
                    .counters
                    .underlay_recv_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!("underlay recv: {e}");
                return;
            }
        };
        if let Some(drops) = recv.overflows {
            // Both readings are of one growing kernel counter: keep the newest (the largest).
            shared.counters.underlay_rx_overflows[index]
                .fetch_max(u64::from(drops), Ordering::Relaxed);
        }
        shared.with_batch(index, |batch| {
            let mut datagrams = 0u64;
            for i in 0..n {
                let from = SocketAddr::V4(recv.from[i]);
                let mut len = recv.lens[i];
                // A UDP_GRO buffer holds a run of datagrams of `gso_size` bytes (the last shorter).
                let size = match recv.gso_size[i] {
                    0 => len.max(1),
                    g => g,
                };
                let verified = recv.gso_size[i] > 0;
                if recv.truncated[i] {
                    // More than the buffer held: the last datagram is cut. Keep the whole ones.
                    shared
                        .counters
                        .underlay_recv_errors
                        .fetch_add(1, Ordering::Relaxed);
                    len = match recv.gso_size[i] {
                        0 => 0,
                        g => len - len % g,
                    };
                }
                for datagram in recv.bufs[i][..len].chunks_mut(size) {
                    datagrams += 1;
                    batch
                        .switch
                        .datagram_from_vtep(batch.now, from, datagram, fwd);
                    if !fwd.ports.is_empty()
                        && offload::complete_partial_checksum(&mut datagram[fwd.frame.clone()])
                    {
                        shared
                            .counters
                            .checksums_completed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let frame = &datagram[fwd.frame.clone()];
                    if let [port] = fwd.ports[..] {
                        if let Some(PortSink::Tap(tap)) = batch.ports.get(&port) {
                            if tap.vnet_hdr_len() > 0 {
                                // A run the kernel coalesced (or a GSO run) had a verified
                                // outer UDP checksum: see `Coalescer::push_verified`. UDP is
                                // coalesced only for a TAP that takes UDP superframes.
                                let how = Offer {
                                    verified,
                                    udp: tap.offload().contains(Offload::USO4 | Offload::USO6),
                                };
                                let push = |c: &mut Coalescer| c.offer(port.0, frame, how);
                                match push(coalescer) {
                                    Push::Merged => continue,
                                    Push::Busy => {
                                        write_superframe(batch, coalescer);
                                        if push(coalescer) == Push::Merged {
                                            continue;
                                        }
                                    }
                                    Push::Unsuitable => {}
                                }
                            }
                        }
                    }
                    // Whatever is pending was received before this frame: write it first.
                    write_superframe(batch, coalescer);
                    // Split horizon: a frame from the underlay never has sends left.
                    let _no_sends = batch.deliver(fwd, frame, &VnetHdr::PLAIN);
                }
            }
            write_superframe(batch, coalescer);
            shared
                .counters
                .underlay_rx
                .fetch_add(datagrams, Ordering::Relaxed);
            // A handshake answers within the round trip, not at the next tick.
            if batch.switch.control_due() {
                shared.send_control(batch.switch, batch.now);
            }
        });
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

pub(super) fn count_sent(shared: &Shared, (sent, err): (usize, Option<io::Error>), of: usize) {
    let c = &shared.counters;
    c.underlay_tx.fetch_add(sent as u64, Ordering::Relaxed);
    if let Some(e) = err {
        c.underlay_send_errors
            .fetch_add((of - sent) as u64, Ordering::Relaxed);
        tracing::debug!("underlay send: {e}");
    }
}

/// Writes the coalescer's pending superframe (if any) to its port.
fn write_superframe(batch: &Batch<'_>, c: &mut Coalescer) {
    let Some((port, bytes)) = c.take() else {
        return;
    };
    let ok = match batch.ports.get(&PortId(port)) {
        Some(PortSink::Tap(tap)) => tap.write_on(batch.queue, bytes).is_ok(),
        _ => false,
    };
    let c = &batch.shared.counters;
    if !ok {
        c.tap_write_errors.fetch_add(1, Ordering::Relaxed);
    } else if VnetHdr::parse(bytes).is_ok_and(|h| h.is_gso()) {
        c.superframes_coalesced.fetch_add(1, Ordering::Relaxed);
    }
}
