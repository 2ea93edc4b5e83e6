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
    pub(super) new_senders: AtomicU64,
    pub(super) evicted_senders: AtomicU64,
}

impl SealStats {
    /// Frames sealed.
    pub fn sealed(&self) -> u64 {
        self.sealed.load(Ordering::Relaxed)
    }

    /// Datagrams opened (authenticated, fresh, decrypted).
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

    /// (sender, key) pairs that authenticated for the first time.
    pub fn new_senders(&self) -> u64 {
        self.new_senders.load(Ordering::Relaxed)
    }

    /// (sender, key) pairs forgotten because the table was full.
    pub fn evicted_senders(&self) -> u64 {
        self.evicted_senders.load(Ordering::Relaxed)
    }
}
