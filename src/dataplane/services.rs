//! The services worker: one thread that runs every network's gateway host
//! ([`crate::core::gateway::Host`]). A data-path worker hands it the frames the switch steered to
//! a gateway (a bounded queue: when it is full the frame is dropped and counted
//! `gateway_queue_full`); the frames a gateway sends go back through
//! `Switch::frame_from_gateway` to local TAPs only. DNS queries for names that are not the
//! network's go to the host's resolvers, each from a short-lived thread with a deadline
//! ([`UPSTREAM_TIMEOUT`]), whose answer (or SERVFAIL) comes back through the same queue.
//! Nothing here is on the forwarding fast path.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use super::{Shared, POLL};
use crate::core::dns::Names;
use crate::core::gateway::{GatewayAddr, Host, Upstream};
use crate::core::Forward;
use crate::wire::virtio_net::VnetHdr;
use crate::wire::Vni;

/// Frames queued for the services worker.
pub(super) const QUEUE: usize = 1024;
/// How long the host's resolvers get to answer a forwarded query, all of them together.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What the services worker is told.
#[derive(Debug)]
pub(super) enum Message {
    /// A frame the switch steered to network `Vni`'s gateway.
    Frame(Vni, Vec<u8>),
    /// Network `Vni` has this gateway now (`None`: none), with this random seed.
    Gateway(Vni, Option<GatewayAddr>, u64),
    /// The names network `Vni`'s DNS answers for.
    Names(Vni, Names),
    /// The host's resolvers.
    Upstreams(Vec<SocketAddr>),
    /// A resolver's answer to a forwarded query (`None`: none in time).
    Answer(Vni, u64, Option<Vec<u8>>),
}

struct Worker<'a> {
    shared: &'a Shared,
    hosts: HashMap<Vni, Host>,
    /// Names that arrived before their network's gateway.
    names: HashMap<Vni, Names>,
    upstreams: Vec<SocketAddr>,
    back: SyncSender<Message>,
}

pub(super) fn services_worker(shared: &Shared, rx: Receiver<Message>) {
    let mut w = Worker {
        shared,
        hosts: HashMap::new(),
        names: HashMap::new(),
        upstreams: Vec::new(),
        back: shared.services.clone(),
    };
    let mut fwd = Forward::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.now();
        let wait = w
            .hosts
            .values_mut()
            .filter_map(|h| h.poll_at(now))
            .min()
            .map_or(POLL, |at| at.saturating_sub(now).min(POLL));
        match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(msg) => {
                w.take(msg);
                while let Ok(msg) = rx.try_recv() {
                    w.take(msg);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = shared.now();
        shared.with_batch(0, |batch| {
            for (&vni, host) in &mut w.hosts {
                host.poll(now);
                while let Some(frame) = host.transmit() {
                    batch.switch.frame_from_gateway(now, vni, &frame, &mut fwd);
                    // Never any sends: the gateway stays on this host.
                    let _ = fwd.deliver(&frame, |port, f| {
                        shared.deliver(batch.ports.get(&port), 0, &VnetHdr::PLAIN, f)
                    });
                }
                while let Some(up) = host.take_upstream() {
                    forward(&w.upstreams, vni, up, w.back.clone());
                }
                let s = host.take_dns_stats();
                let c = &shared.counters;
                c.dns_queries.fetch_add(s.queries, Ordering::Relaxed);
                c.dns_forwarded.fetch_add(s.forwarded, Ordering::Relaxed);
                c.dns_servfail.fetch_add(s.servfail, Ordering::Relaxed);
                c.dns_malformed.fetch_add(s.malformed, Ordering::Relaxed);
            }
        });
    }
}

impl Worker<'_> {
    fn take(&mut self, msg: Message) {
        match msg {
            Message::Frame(vni, frame) => {
                if !self.hosts.get_mut(&vni).is_some_and(|h| h.receive(&frame)) {
                    count_lost(self.shared);
                }
            }
            Message::Gateway(vni, None, _) => {
                self.hosts.remove(&vni);
                self.names.remove(&vni);
            }
            Message::Gateway(vni, Some(addr), seed) => {
                if self.hosts.get(&vni).map(|h| *h.addr()) != Some(addr) {
                    let mut host = Host::new(addr, seed, self.shared.now());
                    host.set_names(self.names.get(&vni).cloned().unwrap_or_default());
                    self.hosts.insert(vni, host);
                }
            }
            Message::Names(vni, names) => {
                if let Some(host) = self.hosts.get_mut(&vni) {
                    host.set_names(names.clone());
                }
                self.names.insert(vni, names);
            }
            Message::Upstreams(list) => self.upstreams = list,
            Message::Answer(vni, token, reply) => {
                if let Some(host) = self.hosts.get_mut(&vni) {
                    host.upstream_answer(token, reply);
                }
            }
        }
    }
}

/// Asks the resolvers, in order, within [`UPSTREAM_TIMEOUT`] in all, on a thread of its own;
/// the answer (or `None`) goes back to the worker.
fn forward(upstreams: &[SocketAddr], vni: Vni, up: Upstream, back: SyncSender<Message>) {
    let upstreams = upstreams.to_vec();
    let spawned = std::thread::Builder::new()
        .name("vswitch-dns-upstream".into())
        .spawn({
            let back = back.clone();
            move || {
                let reply = ask(&upstreams, &up.query);
                let _ = back.send(Message::Answer(vni, up.token, reply));
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("DNS upstream thread: {e}");
        let _ = back.try_send(Message::Answer(vni, up.token, None));
    }
}

/// The first answer with the query's id from any of `upstreams`, each asked in turn with an
/// equal share of the time left.
fn ask(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    for (i, upstream) in upstreams.iter().enumerate() {
        let left = deadline.checked_duration_since(Instant::now())?;
        let share = left / u32::try_from(upstreams.len() - i).unwrap_or(1);
        let bind: SocketAddr = match upstream {
            SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
            SocketAddr::V6(_) => ([0u16; 8], 0).into(),
        };
        let Ok(socket) = UdpSocket::bind(bind) else {
            continue;
        };
        if socket.connect(upstream).is_err() || socket.send(query).is_err() {
            continue;
        }
        let until = Instant::now() + share;
        let mut buf = vec![0u8; 65_535];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match socket.recv(&mut buf) {
                Ok(n) if buf.get(..2) == Some(id) => return Some(buf[..n].to_vec()),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    None
}

fn count_lost(shared: &Shared) {
    shared
        .counters
        .gateway_queue_full
        .fetch_add(1, Ordering::Relaxed);
}

impl Shared {
    /// Hands a frame the switch steered to network `vni`'s gateway to the services worker.
    pub(super) fn to_gateway(&self, vni: Vni, frame: &[u8]) {
        if self
            .services
            .try_send(Message::Frame(vni, frame.to_vec()))
            .is_err()
        {
            count_lost(self);
        }
    }
}
