//! What a receiver remembers about each sender: its subkey and its replay window.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use ring::aead::{Aad, LessSafeKey, Tag};

use super::key::{nonce, KeyId, KeySlot};
use super::replay::ReplayWindow;
use super::{lock, read, write, OpenDrop, SealStats};
use crate::core::Timestamp;
use crate::wire::sealed::AAD_LEN;

/// One sender under one key, remembered only after one of its datagrams authenticated.
struct Sender {
    key: LessSafeKey,
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

/// The senders of one network, bounded: when full, the least recently seen is forgotten.
pub(crate) struct Senders {
    map: RwLock<HashMap<(u64, KeyId), Sender>>,
    max: usize,
}

impl Senders {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            max,
        }
    }

    /// Authenticate and decrypt `datagram` in place under `slot`, then record its counter.
    ///
    /// A known sender's window is checked before decrypting, so replays cost no AES. An
    /// unknown sender costs one subkey derivation; it is remembered only if the datagram
    /// authenticates, so forged sender ids cannot grow the table.
    pub(crate) fn open(
        &self,
        slot: &KeySlot,
        vni: u32,
        datagram: Incoming<'_>,
        now: Timestamp,
        stats: &SealStats,
    ) -> Result<(), OpenDrop> {
        let Incoming {
            sender_id,
            counter,
            aad,
            tag,
            ciphertext,
        } = datagram;
        let id = (sender_id, slot.id);
        {
            let map = read(&self.map);
            if let Some(sender) = map.get(&id) {
                lock(&sender.window)
                    .check(counter)
                    .map_err(|_| OpenDrop::Replayed)?;
                decrypt(&sender.key, counter, aad, tag, ciphertext)?;
                lock(&sender.window)
                    .update(counter)
                    .map_err(|_| OpenDrop::Replayed)?;
                sender
                    .last_seen
                    .fetch_max(now.as_millis(), Ordering::Relaxed);
                return Ok(());
            }
        }
        let key = slot.subkey(vni, sender_id);
        decrypt(&key, counter, aad, tag, ciphertext)?;

        let mut map = write(&self.map);
        if !map.contains_key(&id) && map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen.load(Ordering::Relaxed))
                .map(|(&id, _)| id);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
                stats.evicted_senders.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Another worker may have inserted this sender meanwhile; its window then decides.
        let sender = map.entry(id).or_insert_with(|| {
            stats.new_senders.fetch_add(1, Ordering::Relaxed);
            Sender {
                key,
                window: Mutex::new(ReplayWindow::default()),
                last_seen: AtomicU64::new(0),
            }
        });
        lock(&sender.window)
            .update(counter)
            .map_err(|_| OpenDrop::Replayed)?;
        sender
            .last_seen
            .fetch_max(now.as_millis(), Ordering::Relaxed);
        Ok(())
    }

    /// Forget every sender under key `id` (the key was dropped).
    pub(crate) fn forget_key(&self, id: KeyId) {
        write(&self.map).retain(|&(_, key), _| key != id);
    }

    /// How many (sender, key) pairs are remembered.
    pub(crate) fn len(&self) -> usize {
        read(&self.map).len()
    }
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Senders")
            .field("len", &self.len())
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
