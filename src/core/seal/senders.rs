//! What a receiver remembers about each verified sender: where it is, its subkey and its
//! replay window.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use ring::aead::{Aad, LessSafeKey, Tag};

use super::key::{nonce, KeyId, KeySlot};
use super::replay::ReplayWindow;
use super::{lock, read, write, OpenDrop, SealStats};
use crate::core::Timestamp;
use crate::wire::sealed::AAD_LEN;

/// One sender under one key, remembered only once it was verified (see the parent module).
struct Sender<P> {
    /// The peer it was verified at; its datagrams from anywhere else are refused.
    peer: P,
    /// Derived on its first datagram (a sender may be verified for a key we get later).
    key: OnceLock<LessSafeKey>,
    window: Mutex<ReplayWindow>,
    /// Milliseconds of the latest datagram accepted, for least-recently-seen eviction.
    last_seen: AtomicU64,
}

/// A received datagram, parsed, on its way to authentication.
pub(crate) struct Incoming<'a> {
    pub(crate) sender_id: u64,
    pub(crate) counter: u64,
    pub(crate) aad: &'a [u8; AAD_LEN],
    pub(crate) tag: Tag,
    pub(crate) ciphertext: &'a mut [u8],
}

/// Whether an authentic datagram came from a verified sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// A verified sender, at its peer, with a counter its window had not seen: fresh.
    Verified,
    /// Authentic, but its sender is not verified (for this key): it may be a replay.
    Unverified,
}

/// The verified senders of one network, bounded: when full, the least recently seen is
/// forgotten (and must verify again).
pub(crate) struct Senders<P> {
    map: RwLock<HashMap<(u64, KeyId), Sender<P>>>,
    max: usize,
}

impl<P: Copy + Eq + Hash> Senders<P> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            max,
        }
    }

    /// Authenticate and decrypt `datagram` from `peer` in place under `slot`, and tell whether
    /// its sender is verified. A verified sender's window is checked before decrypting (replays
    /// cost no AES) and updated after; its datagrams from another peer are refused
    /// ([`OpenDrop::Unverified`]) before decrypting. An unverified sender's datagram is
    /// authenticated and decrypted but changes nothing here.
    pub(crate) fn open(
        &self,
        slot: &KeySlot,
        vni: u32,
        peer: &P,
        datagram: Incoming<'_>,
        now: Timestamp,
    ) -> Result<Freshness, OpenDrop> {
        let Incoming {
            sender_id,
            counter,
            aad,
            tag,
            ciphertext,
        } = datagram;
        let map = read(&self.map);
        let Some(sender) = map.get(&(sender_id, slot.id)) else {
            drop(map);
            decrypt(&slot.subkey(vni, sender_id), counter, aad, tag, ciphertext)?;
            return Ok(Freshness::Unverified);
        };
        if sender.peer != *peer {
            return Err(OpenDrop::Unverified);
        }
        lock(&sender.window)
            .check(counter)
            .map_err(|_| OpenDrop::Replayed)?;
        let key = sender.key.get_or_init(|| slot.subkey(vni, sender_id));
        decrypt(key, counter, aad, tag, ciphertext)?;
        lock(&sender.window)
            .update(counter)
            .map_err(|_| OpenDrop::Replayed)?;
        sender
            .last_seen
            .fetch_max(now.as_millis(), Ordering::Relaxed);
        Ok(Freshness::Verified)
    }

    /// Records `sender_id` at `peer` as verified for each `(key, floor)` it is not already
    /// verified for: its datagrams under that key are accepted from counter `floor` on. A peer
    /// has one sender at a time, so other senders verified at `peer` are forgotten (that host
    /// restarted). Returns how many keys were added.
    pub(crate) fn verify(
        &self,
        sender_id: u64,
        peer: P,
        keys: impl IntoIterator<Item = (KeyId, u64)>,
        now: Timestamp,
        stats: &SealStats,
    ) -> usize {
        let mut map = write(&self.map);
        let mut added = 0;
        for (key_id, floor) in keys {
            let id = (sender_id, key_id);
            if map.contains_key(&id) {
                continue;
            }
            if added == 0 {
                // A new (sender, key) at this peer: forget the peer's other senders, once. A
                // verified sender's announcements, which add nothing, skip the scan.
                map.retain(|&(id, _), s| id == sender_id || s.peer != peer);
            }
            if map.len() >= self.max {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen.load(Ordering::Relaxed))
                    .map(|(&id, _)| id);
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                    stats.evicted_senders.fetch_add(1, Ordering::Relaxed);
                }
            }
            map.insert(
                id,
                Sender {
                    peer,
                    key: OnceLock::new(),
                    window: Mutex::new(ReplayWindow::starting_at(floor)),
                    last_seen: AtomicU64::new(now.as_millis()),
                },
            );
            stats.new_senders.fetch_add(1, Ordering::Relaxed);
            added += 1;
        }
        added
    }

    /// Forget every sender under key `id` (the key was dropped).
    pub(crate) fn forget_key(&self, id: KeyId) {
        write(&self.map).retain(|&(_, key), _| key != id);
    }

    /// Forget every sender at `peer` (it left the network).
    pub(crate) fn forget_peer(&self, peer: &P) {
        write(&self.map).retain(|_, s| s.peer != *peer);
    }

    /// How many (sender, key) pairs are remembered.
    pub(crate) fn len(&self) -> usize {
        read(&self.map).len()
    }
}

impl<P> std::fmt::Debug for Senders<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Senders")
            .field("len", &read(&self.map).len())
            .field("max", &self.max)
            .finish()
    }
}

fn decrypt(
    key: &LessSafeKey,
    counter: u64,
    aad: &[u8; AAD_LEN],
    tag: Tag,
    ciphertext: &mut [u8],
) -> Result<(), OpenDrop> {
    key.open_in_place_separate_tag(nonce(counter), Aad::from(aad), tag, ciphertext, 0..)
        .map(|_| ())
        .map_err(|_| OpenDrop::AuthFailed)
}
