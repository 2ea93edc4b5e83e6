//! The keys a network holds and how a rotation moves between them (protocol: see the parent
//! module's documentation).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::key::{Fingerprint, KeyId, KeySlot, NetworkKey};
use crate::core::Timestamp;

/// Where a network is in its key rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationPhase {
    /// One key, used for sending and receiving.
    Stable,
    /// A new key is accepted for receiving and advertised; we still send with the old key
    /// until `switched_at` (every expected peer accepts the new key) or, at the latest, the
    /// first `tick` at or after `grace_deadline`.
    Accepting {
        /// The new key.
        next: KeyId,
        /// When the last silent peers stop being waited for.
        grace_deadline: Timestamp,
        /// When every expected peer was seen accepting `next` (we send with it since then).
        switched_at: Option<Timestamp>,
    },
    /// We send with the new key; the previous one is still accepted until `drop_at`.
    Overlap {
        /// The old key.
        previous: KeyId,
        /// When the first `tick` at or after it drops `previous`.
        drop_at: Timestamp,
    },
}

impl fmt::Display for RotationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Stable => write!(f, "stable"),
            Self::Accepting {
                next,
                grace_deadline,
                switched_at: None,
            } => write!(
                f,
                "accepting new key {next}, waiting for peers until {} ms",
                grace_deadline.as_millis()
            ),
            Self::Accepting {
                next,
                switched_at: Some(at),
                ..
            } => write!(f, "sending with new key {next} since {} ms", at.as_millis()),
            Self::Overlap { previous, drop_at } => write!(
                f,
                "old key {previous} still accepted until {} ms",
                drop_at.as_millis()
            ),
        }
    }
}

/// Why a rotation was refused. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RotateError {
    /// The new key's id equals the current key's: receivers could not tell them apart.
    #[error(
        "the new key has key id {id}, the same as the current key (or it is the current key); \
         generate another key and rotate to that"
    )]
    SameKeyId {
        /// The shared id.
        id: KeyId,
    },
    /// The previous rotation has not finished (its old key is still accepted).
    #[error("a key rotation is already in progress ({phase}); rotate again once it is stable")]
    InProgress {
        /// Where the running rotation is.
        phase: RotationPhase,
    },
}

/// What a `tick` changed, for logging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// The rotation finished its switch: this key is now the current (sending) key.
    pub switched_to: Option<KeyId>,
    /// This old key is no longer accepted.
    pub dropped: Option<KeyId>,
}

const NOT_SWITCHED: u64 = u64::MAX;

/// A rotation between `rotate` and the switch.
struct Pending<P> {
    next: KeySlot,
    grace_deadline: Timestamp,
    /// Expected peers; `true` once the peer proved it accepts `next`.
    peers: HashMap<P, AtomicBool>,
    waiting: AtomicUsize,
    /// Milliseconds at which every peer had confirmed, or `NOT_SWITCHED`.
    switched_at: AtomicU64,
}

impl<P: Eq + Hash> Pending<P> {
    fn switched_at(&self) -> Option<Timestamp> {
        match self.switched_at.load(Ordering::Acquire) {
            NOT_SWITCHED => None,
            ms => Some(Timestamp(ms)),
        }
    }

    fn mark_switched(&self, now: Timestamp) {
        let ms = now.as_millis().min(NOT_SWITCHED - 1);
        // Only the first confirmation sets the time.
        let _ = self.switched_at.compare_exchange(
            NOT_SWITCHED,
            ms,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Records that `peer` accepts `next`; true when that was the last confirmation missing
    /// (we have just switched).
    fn confirm(&self, peer: &P, now: Timestamp) -> bool {
        let Some(confirmed) = self.peers.get(peer) else {
            return false;
        };
        let last = !confirmed.load(Ordering::Relaxed)
            && !confirmed.swap(true, Ordering::AcqRel)
            && self.waiting.fetch_sub(1, Ordering::AcqRel) == 1;
        if last {
            self.mark_switched(now);
        }
        last
    }
}

enum Phase<P> {
    Stable,
    Pending(Pending<P>),
    Overlap {
        previous: KeySlot,
        drop_at: Timestamp,
    },
}

/// The keys of one network. Read-locked on the data path, write-locked by `rotate`/`tick`.
pub(crate) struct Keys<P> {
    /// The key we send with, except during `Pending` after the switch (then `next`).
    current: KeySlot,
    phase: Phase<P>,
    /// Where our counter stood for keys we held before, so rotating back to one never
    /// reuses a nonce.
    retired: HashMap<Fingerprint, u64>,
    /// Milliseconds at which our next key announcement is due (only while rotating).
    announce_at: AtomicU64,
}

impl<P: Copy + Eq + Hash> Keys<P> {
    pub(crate) fn new(current: KeySlot) -> Self {
        Self {
            current,
            phase: Phase::Stable,
            retired: HashMap::new(),
            announce_at: AtomicU64::new(0),
        }
    }

    /// The key to seal with now.
    pub(crate) fn sending(&self) -> &KeySlot {
        match &self.phase {
            Phase::Pending(p) if p.switched_at().is_some() => &p.next,
            _ => &self.current,
        }
    }

    /// Every key we hold with the counter our next datagram under it takes: the current key,
    /// and the next or previous one during a rotation.
    pub(crate) fn held(&self) -> impl Iterator<Item = (KeyId, u64)> + '_ {
        let other = match &self.phase {
            Phase::Stable => None,
            Phase::Pending(p) => Some(&p.next),
            Phase::Overlap { previous, .. } => Some(previous),
        };
        std::iter::once(&self.current)
            .chain(other)
            .map(|slot| (slot.id, slot.peek_counter()))
    }

    /// The newest key we accept, advertised in every datagram we send.
    pub(crate) fn accept_id(&self) -> KeyId {
        match &self.phase {
            Phase::Pending(p) => p.next.id,
            _ => self.current.id,
        }
    }

    /// The held key with id `id`, if we accept it.
    pub(crate) fn find(&self, id: KeyId) -> Option<&KeySlot> {
        if self.current.id == id {
            return Some(&self.current);
        }
        match &self.phase {
            Phase::Pending(p) if p.next.id == id => Some(&p.next),
            Phase::Overlap { previous, .. } if previous.id == id => Some(previous),
            _ => None,
        }
    }

    /// An authenticated datagram from `peer`, sealed with `key_id`, advertised `accept_id`.
    pub(crate) fn observe(&self, peer: &P, key_id: KeyId, accept_id: KeyId, now: Timestamp) {
        if let Phase::Pending(p) = &self.phase {
            if (key_id == p.next.id || accept_id == p.next.id) && p.confirm(peer, now) {
                // We send with the new key from now on: tell the peers still waiting for us.
                self.announce_soon(now);
            }
        }
    }

    /// Makes an announcement due at `now`.
    fn announce_soon(&self, now: Timestamp) {
        self.announce_at
            .fetch_min(now.as_millis(), Ordering::AcqRel);
    }

    /// True when a key announcement is due at `now` (a rotation is in progress and the last
    /// one went out at least `interval` ago, or our state changed since); the next one is then
    /// due `interval` later. Only one caller gets `true` per announcement.
    pub(crate) fn poll_announce(&self, now: Timestamp, interval: Duration) -> bool {
        if matches!(self.phase, Phase::Stable) {
            return false;
        }
        let due = self.announce_at.load(Ordering::Acquire);
        now.as_millis() >= due
            && self
                .announce_at
                .compare_exchange(
                    due,
                    now.saturating_add(interval).as_millis(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// When the next key announcement is due, if a rotation is in progress.
    pub(crate) fn next_announcement(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Stable => None,
            _ => Some(Timestamp(self.announce_at.load(Ordering::Acquire))),
        }
    }

    /// Start rotating to `key`, expecting confirmations from `peers` (see module docs).
    pub(crate) fn rotate(
        &mut self,
        key: &NetworkKey,
        vni: u32,
        sender_id: u64,
        peers: &[P],
        grace: Duration,
        now: Timestamp,
    ) -> Result<(), RotateError> {
        let id = key.id();
        if id == self.current.id {
            return Err(RotateError::SameKeyId { id });
        }
        if !matches!(self.phase, Phase::Stable) {
            return Err(RotateError::InProgress {
                phase: self.phase(),
            });
        }
        let first_counter = {
            let probe = KeySlot::new(key, vni, sender_id, 0);
            self.retired.get(&probe.fingerprint).copied().unwrap_or(0)
        };
        let peers: HashMap<P, AtomicBool> =
            peers.iter().map(|&p| (p, AtomicBool::new(false))).collect();
        let pending = Pending {
            next: KeySlot::new(key, vni, sender_id, first_counter),
            grace_deadline: now.saturating_add(grace),
            waiting: AtomicUsize::new(peers.len()),
            peers,
            switched_at: AtomicU64::new(NOT_SWITCHED),
        };
        if pending.peers.is_empty() {
            pending.mark_switched(now);
        }
        self.phase = Phase::Pending(pending);
        self.announce_at.store(now.as_millis(), Ordering::Release);
        Ok(())
    }

    /// Advance time-based transitions: finish a switch that is due (all peers confirmed, or
    /// the grace period is over), then drop an old key whose overlap is over.
    pub(crate) fn tick(&mut self, now: Timestamp, overlap: Duration) -> TickOutcome {
        let mut outcome = TickOutcome::default();
        self.phase = match std::mem::replace(&mut self.phase, Phase::Stable) {
            Phase::Pending(p) if p.switched_at().is_some() || now >= p.grace_deadline => {
                let switched = p.switched_at().unwrap_or_else(|| {
                    // The grace period ran out: peers still waiting for us must hear it.
                    self.announce_soon(now);
                    now
                });
                let previous = std::mem::replace(&mut self.current, p.next);
                outcome.switched_to = Some(self.current.id);
                Phase::Overlap {
                    previous,
                    drop_at: switched.saturating_add(overlap),
                }
            }
            other => other,
        };
        self.phase = match std::mem::replace(&mut self.phase, Phase::Stable) {
            Phase::Overlap { previous, drop_at } if now >= drop_at => {
                self.retired
                    .insert(previous.fingerprint, previous.peek_counter());
                outcome.dropped = Some(previous.id);
                Phase::Stable
            }
            other => other,
        };
        outcome
    }

    /// When `tick` next has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Stable => None,
            Phase::Pending(p) => Some(p.switched_at().unwrap_or(p.grace_deadline)),
            Phase::Overlap { drop_at, .. } => Some(*drop_at),
        }
    }

    pub(crate) fn phase(&self) -> RotationPhase {
        match &self.phase {
            Phase::Stable => RotationPhase::Stable,
            Phase::Pending(p) => RotationPhase::Accepting {
                next: p.next.id,
                grace_deadline: p.grace_deadline,
                switched_at: p.switched_at(),
            },
            Phase::Overlap { previous, drop_at } => RotationPhase::Overlap {
                previous: previous.id,
                drop_at: *drop_at,
            },
        }
    }

    /// Every key id we accept, newest last.
    pub(crate) fn accepted(&self) -> Vec<KeyId> {
        match &self.phase {
            Phase::Stable => vec![self.current.id],
            Phase::Pending(p) => vec![self.current.id, p.next.id],
            Phase::Overlap { previous, .. } => vec![previous.id, self.current.id],
        }
    }

    /// Expected peers that have not yet shown they accept the next key.
    pub(crate) fn waiting_for(&self) -> Vec<P> {
        match &self.phase {
            Phase::Pending(p) => p
                .peers
                .iter()
                .filter(|(_, confirmed)| !confirmed.load(Ordering::Relaxed))
                .map(|(&peer, _)| peer)
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl<P> fmt::Debug for Keys<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &self.phase {
            Phase::Stable => "stable",
            Phase::Pending(_) => "pending",
            Phase::Overlap { .. } => "overlap",
        };
        f.debug_struct("Keys")
            .field("current", &self.current)
            .field("phase", &phase)
            .finish_non_exhaustive()
    }
}
