//! The services worker: one thread that runs every network's gateway host
//! ([`crate::core::gateway::Host`]). The ports worker hands it the frames the switch steered to
//! a gateway (a bounded queue: when it is full the frame is dropped and counted
//! `gateway_queue_full`); the frames a gateway sends go back through
//! `Switch::frame_from_gateway` to local TAPs only. Nothing here is on the forwarding fast path.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::{Shared, POLL};
use crate::core::gateway::{GatewayAddr, Host};
use crate::core::Forward;
use crate::wire::virtio_net::VnetHdr;
use crate::wire::Vni;

/// Frames queued for the services worker.
pub(super) const QUEUE: usize = 1024;

/// What the services worker is told.
#[derive(Debug)]
pub(super) enum Message {
    /// A frame the switch steered to network `Vni`'s gateway.
    Frame(Vni, Vec<u8>),
    /// Network `Vni` has this gateway now (`None`: none).
    Gateway(Vni, Option<GatewayAddr>, u64),
}

pub(super) fn services_worker(shared: &Shared, rx: Receiver<Message>) {
    let mut hosts: HashMap<Vni, Host> = HashMap::new();
    let mut fwd = Forward::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.now();
        let wait = hosts
            .values_mut()
            .filter_map(|h| h.poll_at(now))
            .min()
            .map_or(POLL, |at| at.saturating_sub(now).min(POLL));
        match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(msg) => {
                take(shared, &mut hosts, msg);
                while let Ok(msg) = rx.try_recv() {
                    take(shared, &mut hosts, msg);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = shared.now();
        shared.with_batch(|batch| {
            for (&vni, host) in &mut hosts {
                host.poll(now);
                while let Some(frame) = host.transmit() {
                    batch.switch.frame_from_gateway(now, vni, &frame, &mut fwd);
                    // Never any sends: the gateway stays on this host.
                    let _ = fwd.deliver(&frame, |port, f| {
                        shared.deliver(batch.ports.get(&port), &VnetHdr::PLAIN, f)
                    });
                }
            }
        });
    }
}

fn take(shared: &Shared, hosts: &mut HashMap<Vni, Host>, msg: Message) {
    match msg {
        Message::Frame(vni, frame) => {
            if !hosts.get_mut(&vni).is_some_and(|h| h.receive(&frame)) {
                count_lost(shared);
            }
        }
        Message::Gateway(vni, None, _) => {
            hosts.remove(&vni);
        }
        Message::Gateway(vni, Some(addr), seed) => {
            if hosts.get(&vni).map(|h| *h.addr()) != Some(addr) {
                hosts.insert(vni, Host::new(addr, seed, shared.now()));
            }
        }
    }
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
