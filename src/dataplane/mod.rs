//! The I/O loop: moves bytes between TAP ports, the underlay and the core switch.
//!
//! Two worker threads, one per direction, each with its own preallocated buffers:
//! - `ports`: epoll over every TAP; reads frames, asks the switch where they go, writes them to
//!   local TAPs and sends them, encapsulated, to VTEPs (sendmmsg batches of up to 32);
//! - `underlay`: recvmmsg batches from the UDP socket; asks the switch; writes inner frames to
//!   TAPs.
//!
//! Neither allocates per frame. They share the switch through a read-mostly lock (taken once
//! per batch) and the port table through another; the control plane takes the write side only
//! to change configuration.

pub mod sys;
pub mod tap;

pub use tap::{Offload, Tap, TapOptions};

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::DataplaneStats;
use crate::core::switch::{HEADROOM, TAILROOM};
use crate::core::{Forward, PortId, Switch, Timestamp};
use crate::wire::underlay::{self, OUTER_LEN};
use sys::{Epoll, RawSender, RecvBatch};

/// Frames read per TAP per wakeup, and datagrams per recvmmsg/sendmmsg.
const BATCH: usize = 32;
/// Largest frame or datagram handled (jumbo frames included).
const MAX_FRAME: usize = 65_535;
const POLL: Duration = Duration::from_millis(200);

/// Where frames for a port go.
#[derive(Debug, Clone)]
pub enum PortSink {
    /// A container's TAP.
    Tap(Arc<Tap>),
    /// The daemon itself (address conflict probes): frames are copied into a channel. Not a
    /// data-path port; it exists only for the second or so a probe lasts.
    Host(std::sync::mpsc::SyncSender<Vec<u8>>),
}

#[derive(Debug, Default)]
struct Counters {
    tap_read_errors: AtomicU64,
    tap_write_errors: AtomicU64,
    underlay_rx: AtomicU64,
    underlay_tx: AtomicU64,
    underlay_send_errors: AtomicU64,
    underlay_recv_errors: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    switch: Arc<RwLock<Switch>>,
    ports: RwLock<HashMap<PortId, PortSink>>,
    epoll: Epoll,
    udp: UdpSocket,
    src_ip: Ipv4Addr,
    start: Instant,
    stop: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp(crate::core::time::duration_millis(self.start.elapsed()))
    }

    fn deliver(&self, sink: Option<&PortSink>, frame: &[u8]) {
        match sink {
            Some(PortSink::Tap(tap)) => {
                if tap.write(frame).is_err() {
                    self.counters
                        .tap_write_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
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
        let sender = RawSender::new(BATCH)?;
        let shared = Arc::new(Shared {
            switch,
            ports: RwLock::new(HashMap::new()),
            epoll: Epoll::new()?,
            udp,
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
        if let Some(p) = route(&self.shared, &switch, &ports, &mut buf, frame.len(), &fwd) {
            replicate(&self.shared, &mut sender, &mut buf, p, &fwd);
        }
    }

    pub fn stats(&self) -> DataplaneStats {
        let c = &self.shared.counters;
        DataplaneStats {
            tap_read_errors: c.tap_read_errors.load(Ordering::Relaxed),
            tap_write_errors: c.tap_write_errors.load(Ordering::Relaxed),
            underlay_rx_datagrams: c.underlay_rx.load(Ordering::Relaxed),
            underlay_tx_datagrams: c.underlay_tx.load(Ordering::Relaxed),
            underlay_send_errors: c.underlay_send_errors.load(Ordering::Relaxed),
            underlay_recv_errors: c.underlay_recv_errors.load(Ordering::Relaxed),
        }
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

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned lock means a worker panicked; the data is plain configuration, still valid.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Frames from TAPs to wherever the switch says.
fn ports_worker(shared: &Shared, mut sender: RawSender) {
    let mut events = sys::epoll_events(64);
    let mut tokens = Vec::with_capacity(64);
    let mut bufs: Vec<Box<[u8]>> = (0..BATCH)
        .map(|_| vec![0u8; HEADROOM + MAX_FRAME + TAILROOM].into_boxed_slice())
        .collect();
    let mut fwd = Forward::default();
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
            for _ in 0..BATCH {
                let slot = pending.len();
                let buf = &mut bufs[slot];
                let len = match tap.read(&mut buf[HEADROOM..HEADROOM + MAX_FRAME]) {
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
                switch.frame_from_port(now, port, &buf[HEADROOM..HEADROOM + len], &mut fwd);
                if let Some(p) = route(shared, &switch, &ports, buf, len, &fwd) {
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
    src_port: u16,
}

/// Delivers a frame (at `HEADROOM..HEADROOM+len` in `buf`) to local ports and, when it goes to
/// VTEPs, encapsulates it in place; returns the packet to send.
fn route(
    shared: &Shared,
    switch: &Switch,
    ports: &HashMap<PortId, PortSink>,
    buf: &mut [u8],
    len: usize,
    fwd: &Forward,
) -> Option<Packet> {
    let frame = HEADROOM..HEADROOM + len;
    for p in &fwd.ports {
        shared.deliver(ports.get(p), &buf[frame.clone()]);
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
    underlay::emit(
        hdr,
        shared.src_ip,
        Ipv4Addr::UNSPECIFIED,
        enc.src_port,
        0,
        enc.datagram.len(),
    )?;
    let p = Packet {
        range,
        src_port: enc.src_port,
    };
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
    let _ = p.src_port;
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
        shared
            .counters
            .underlay_rx
            .fetch_add(n as u64, Ordering::Relaxed);
        let switch = read(&shared.switch);
        let ports = read(&shared.ports);
        let now = shared.now();
        for i in 0..n {
            let from = SocketAddr::V4(batch.from[i]);
            let len = batch.lens[i];
            let datagram = &mut batch.bufs[i][..len];
            switch.datagram_from_vtep(now, from, datagram, &mut fwd);
            for p in &fwd.ports {
                shared.deliver(ports.get(p), &datagram[fwd.frame.clone()]);
            }
        }
    }
}
