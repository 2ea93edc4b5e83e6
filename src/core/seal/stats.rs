//! What a [`Sealer`](super::Sealer) did, for `vswitch stats`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one [`Sealer`](super::Sealer). Read them any time; `seal` and `open` keep them. What is *not*
/// sealed or opened is not counted here: the sealer returns a [`SealDrop`](super::SealDrop) or
/// [`OpenDrop`](super::OpenDrop) and the switch counts it once, by reason
/// ([`DropReason`](crate::core::DropReason)).
#[derive(Debug, Default)]
pub struct SealStats {
    pub(super) sealed: AtomicU64,
    pub(super) opened: AtomicU64,
    pub(super) announced: AtomicU64,
    pub(super) announcements_opened: AtomicU64,
    pub(super) challenges_sent: AtomicU64,
    pub(super) answers_sent: AtomicU64,
    pub(super) verified: AtomicU64,
    pub(super) handshakes_opened: AtomicU64,
    pub(super) new_senders: AtomicU64,
    pub(super) evicted_senders: AtomicU64,
}

impl SealStats {
    /// Frames and key announcements sealed (handshake messages are counted apart).
    pub fn sealed(&self) -> u64 {
        self.sealed.load(Ordering::Relaxed)
    }

    /// Frames and key announcements opened (authenticated, fresh, decrypted); handshake
    /// messages are counted apart.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Key announcements sealed (each goes to every peer).
    pub fn announced(&self) -> u64 {
        self.announced.load(Ordering::Relaxed)
    }

    /// Key announcements received and opened (also counted in [`SealStats::opened`]).
    pub fn announcements_opened(&self) -> u64 {
        self.announcements_opened.load(Ordering::Relaxed)
    }

    /// Handshake messages sent that challenge a peer (some also answer its challenge).
    pub fn challenges_sent(&self) -> u64 {
        self.challenges_sent.load(Ordering::Relaxed)
    }

    /// Handshake messages sent that only answer a peer's challenge.
    pub fn answers_sent(&self) -> u64 {
        self.answers_sent.load(Ordering::Relaxed)
    }

    /// Handshake messages (challenges, answers) received and taken in.
    pub fn handshakes_opened(&self) -> u64 {
        self.handshakes_opened.load(Ordering::Relaxed)
    }

    /// Senders verified by answering our challenge.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// (sender, key) pairs verified (by a handshake, or by a verified sender's own word about
    /// its other keys).
    pub fn new_senders(&self) -> u64 {
        self.new_senders.load(Ordering::Relaxed)
    }

    /// (sender, key) pairs forgotten because the table was full (the sender verifies again).
    pub fn evicted_senders(&self) -> u64 {
        self.evicted_senders.load(Ordering::Relaxed)
    }
}
