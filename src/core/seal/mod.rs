//! Sealing: AES-256-GCM for the frames of an encrypted network, sans-IO.
//!
//! A [`Sealer`] holds one network's keys. [`Sealer::seal`] turns a plain VXLAN datagram under
//! construction into a sealed one in place; [`Sealer::open`] authenticates, replay-checks and
//! decrypts a received one in place. The envelope format is described in
//! [`crate::wire::sealed`]. Nothing here reads a clock, opens a socket or spawns a thread:
//! time is a [`Timestamp`] parameter and randomness is the caller's (see [`NetworkKey::generate`]
//! and [`generate_sender_id`]), so every behaviour is reproducible in tests.
//!
//! # Keys and key ids
//!
//! A network key is 32 random bytes shared by every host of the network. Its one-byte id is the
//! first byte of HKDF-SHA256-Expand(key, info "vswitch key id v1"), so hosts agree on it
//! without coordination. The id only tells receivers which of their keys to try; it is not
//! unique (1 in 256 keys collide), which is why a rotation to a key with the current key's id
//! is refused ([`RotateError::SameKeyId`]: generate another key).
//!
//! # Per-sender subkeys: why no nonce is ever reused
//!
//! Nobody seals with the network key itself. Each sender seals with its own subkey
//!
//! ```text
//! subkey = HKDF-SHA256(salt = "vswitch seal v1", ikm = network key,
//!                      info = VNI (u32 BE) || sender_id (u64 BE) || key_id)
//! nonce  = 0u32 || counter (u64 BE)
//! ```
//!
//! where `sender_id` is 64 random bits chosen when the sender starts and `counter` starts at 0
//! for every (sender, key) and only ever grows. A (subkey, nonce) pair therefore repeats only
//! if the same sender id is drawn twice for the same network key — about 2^-64 per pair of
//! sender starts — never because two hosts, or one host before and after a restart, count
//! through the same numbers, and the 64-bit counter cannot run out the way a 32-bit one would
//! after 2^32 frames. A sender whose counter would reach 2^64 − 1 refuses to seal
//! ([`SealDrop::CounterExhausted`]) instead of wrapping; rotating to a new key starts a fresh
//! counter. If a network rotates back to a key it held before, the counter resumes where it
//! stopped. Because the VNI is part of both the subkey and the AAD, a datagram sealed for one
//! network cannot be spliced into another, and because the sender id is part of the subkey, a
//! datagram of sender A does not open as sender B.
//!
//! The one obligation on the caller: **a sender id must be fresh for every [`Sealer`]** (draw
//! it with [`generate_sender_id`] whenever a `Sealer` is built, never persist or reuse it).
//!
//! # Anti-replay
//!
//! Receivers keep, per (sender, key), a sliding bitmap of the last [`REPLAY_WINDOW`] (2048)
//! counters, as in RFC 6479 and WireGuard. A known sender's datagram is checked against the
//! window before decryption (replays cost no AES) and the window is updated only after the tag
//! verified. A datagram more than 2047 counters behind the newest one is refused as
//! [`OpenDrop::Replayed`], like a duplicate.
//!
//! Receiver state (the subkey and the window, about 300 bytes) exists only for verified
//! senders (below). At most [`SealConfig::max_senders`] (default 4096) pairs are remembered per
//! network; beyond that the least recently seen is forgotten (counted in
//! [`SealStats::evicted_senders`]) and must be verified again.
//!
//! # Freshness: receivers verify senders
//!
//! A window in memory cannot remember what a receiver accepted before it restarted (or before
//! it forgot a sender), while the live sender keeps sealing with the same subkey: a recording
//! would open once more. So a receiver accepts datagrams only from senders it has verified
//! with a handshake of sealed control messages (the envelope's CONTROL flag; the plaintext is a
//! [`crate::wire::handshake`] message instead of a frame):
//!
//! 1. An authentic datagram from a (sender, key) the receiver has not verified is dropped
//!    ([`OpenDrop::Unverified`]) and makes a **challenge** to its peer due (at most one per
//!    [`SealConfig::announce_interval`] while unanswered); [`Sealer::challenge`] makes one due
//!    when a peer joins. The challenge carries a number fresh for every challenge of this
//!    `Sealer`; the receiver's sender id, random per `Sealer`, is the other half of it.
//! 2. The peer **answers** with a control message that echoes (challenger's sender id,
//!    challenge) and lists every key it holds with the counter its next datagram under that
//!    key takes. Every control message that carries a challenge is answered, even from an
//!    unverified sender (that is how two fresh hosts meet), and an answer carries the
//!    answerer's own challenge while it has one outstanding.
//! 3. The receiver takes an answer only from the peer it challenged, only for the latest
//!    challenge it sent there, and only once. It then verifies the sender at that peer, with a
//!    window per listed key that refuses every counter below the one listed (and below the
//!    answer's own counter + 1).
//!
//! **Why this stops replays.** The answer was sealed after the receiver chose the challenge,
//! which no one could know before, so the counters it lists are no older than the challenge;
//! everything sealed before (any recording) is below them. Each challenge is answered once, so a
//! recorded answer verifies nothing later. After a restart of the receiver (new sender id, so
//! new challenges) or after it forgot a sender, the sender is verified afresh the same way.
//!
//! **Binding.** A verified sender is bound to the peer it answered from: its datagrams from
//! another peer are [`OpenDrop::Unverified`], and only datagrams that passed a bound sender's
//! window confirm a rotation for that peer, so nobody can confirm a key "as" another host.
//! Verifying a new sender at a peer forgets the others there (that host restarted).
//!
//! **New keys.** A verified sender's key announcements (below) list its counters for every key
//! it holds, so a receiver accepts the sender's new key from its first datagram, even if it
//! gets that key itself later. A sender never verified under a key is challenged like any
//! other.
//!
//! # Key rotation
//!
//! Every sealed datagram carries `key_id` (the key it is sealed with) and `accept_id` (the
//! newest key its sender accepts). A rotation on one host goes through three phases
//! ([`RotationPhase`]):
//!
//! 1. **Accepting.** [`Sealer::rotate`]`(new, peers, now)` makes the new key acceptable for
//!    receiving at once. We keep sending with the old key, but every datagram now advertises
//!    `accept_id = new`.
//! 2. **Switch.** We start sending with the new key as soon as every peer in `peers` has proved
//!    that it accepts it: an authenticated datagram from the peer either advertises
//!    `accept_id = new` or is sealed with the new key. The switch happens inside
//!    [`Sealer::open`], so the very next [`Sealer::seal`] uses the new key. Peers that stay
//!    silent (or never get the new key) are waited for at most [`SealConfig::grace`]
//!    (default 30 s) after `rotate`: the first [`Sealer::tick`] at or after that deadline
//!    switches. An empty `peers` list switches immediately.
//! 3. **Overlap.** The old key stays acceptable for [`SealConfig::overlap`] (default 60 s) after
//!    the switch, for datagrams still in flight and for peers that switch later. The first
//!    `tick` at or after the end of the overlap drops it; the network is then stable again.
//!
//! **Announcements.** A host learns that a peer accepts the new key only from the peer's
//! datagrams, and an idle network carries none. So while a rotation is in progress (accepting
//! or overlap) every host announces itself to its peers: a sealed control message with no
//! challenge and no echo, listing its keys ([`Sealer::poll_control`]), at once when it starts
//! rotating or switches, then every
//! [`SealConfig::announce_interval`] (default 250 ms). When the last host gets the new key, its
//! first announcement confirms it to every peer, their switch triggers theirs, and every host
//! sends with the new key within about two announcement rounds, traffic or not. Announcements
//! are authenticated and replay-checked like any datagram, so only holders of a network key can
//! make them.
//!
//! While a rotation is in progress (accepting or overlap) a second [`Sealer::rotate`] is refused
//! with [`RotateError::InProgress`] and changes nothing; `rotate` ticks first, so a rotation
//! whose overlap just ended does not get in the way. [`Sealer::next_deadline`] tells the shell
//! when to call `tick` next (or it can simply tick every second).
//!
//! **Guarantee.** If every host of the network gets the new key within `grace` of the first
//! host that got it, no datagram is lost: a host sends with the new key only after each peer
//! said it accepts it, or `grace` after its own `rotate`, by which time every peer has the key;
//! and every host switches at most `2 × grace` after the first rotation, while every host
//! still accepts the old key `overlap ≥ 2 × grace` after its own switch, which is no earlier
//! than the first rotation (the configuration refuses a shorter overlap). Late ticks and time
//! in flight come out of the same budget, so tick at [`Sealer::next_deadline`] and give the
//! overlap some slack if the underlay is slow. A TCP stream across the rotation sees no loss
//! (the `a_staggered_rotation_loses_nothing` test plays this out with three hosts). A host that
//! never gets the new key is cut off once its peers' grace ends; its `unknown_key` drop counter
//! shows it.
//!
//! # Threads
//!
//! `seal` and `open` take `&self` and are meant to be called from several worker threads on
//! one `Arc<Sealer>`. Sending counters are atomics; the keys are behind an `RwLock` that only
//! `rotate` and `tick` write; receiver state is a `RwLock`ed map (written only when a new sender
//! authenticates) of per-sender replay windows behind their own small `Mutex`. `rotate`, `tick`
//! and the inspection methods also take `&self`. Nothing allocates per datagram, except once
//! per new (sender, key).
//!
//! # Panics
//!
//! No method panics on any datagram or buffer: bad input is a [`SealDrop`] or [`OpenDrop`],
//! returned to the caller, which counts it (the switch, once, as a
//! [`DropReason`](crate::core::DropReason)); [`SealStats`] counts only what succeeded.

#![forbid(unsafe_code)]

mod control;
mod handshake;
mod key;
mod replay;
mod rotation;
mod senders;
mod stats;
#[cfg(test)]
mod tests;

use crate::core::sync::{lock, read, write};
use std::fmt;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::RwLock;
use std::time::Duration;

use ring::aead::Aad;

#[cfg(any(test, feature = "sim"))]
pub use control::handshake;
pub use control::ControlTarget;
pub use key::{generate_sender_id, KeyError, KeyId, NetworkKey, KEY_LEN};
pub use replay::REPLAY_WINDOW;
pub use rotation::{RotateError, RotationPhase, TickOutcome};
pub use stats::SealStats;

use crate::core::Timestamp;
pub use crate::wire::sealed::SEAL_OVERHEAD;
use crate::wire::sealed::{EnvelopeHeader, EnvelopeRepr, AAD_LEN, HEADER_LEN, TAG_LEN};
use crate::wire::vxlan;
use handshake::Handshakes;
use key::KeySlot;
use rotation::Keys;
use senders::Senders;

/// Where the plaintext frame starts in a datagram buffer: after the VXLAN header (8) and the
/// envelope header (20).
pub const FRAME_OFFSET: usize = vxlan::HEADER_LEN + HEADER_LEN;

/// The longest control datagram (handshake or key announcement) [`Sealer::poll_control`] makes.
pub const CONTROL_LEN: usize = FRAME_OFFSET + crate::wire::handshake::MAX_LEN + TAG_LEN;

/// The largest frame [`Sealer::seal`] accepts: a sealed datagram must fit in one UDP datagram.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize - FRAME_OFFSET - TAG_LEN;

/// Tunables of a [`Sealer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealConfig {
    /// How long after `rotate` we wait for peers that have not confirmed the new key before
    /// sending with it anyway.
    pub grace: Duration,
    /// How long after switching to the new key we still accept the old one. At least
    /// `2 × grace`.
    pub overlap: Duration,
    /// How many (sender, key) pairs a receiver remembers; the least recently seen is forgotten
    /// beyond that. About 1 KiB each.
    pub max_senders: usize,
    /// While a rotation is in progress, how often we announce our keys to idle peers; also
    /// how long an unanswered challenge waits before it may be repeated.
    pub announce_interval: Duration,
}

impl Default for SealConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            overlap: Duration::from_secs(60),
            max_senders: 4096,
            announce_interval: Duration::from_millis(250),
        }
    }
}

/// Why a [`SealConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The overlap cannot cover the senders that switch last.
    #[error(
        "key overlap ({overlap:?}) must be at least twice the grace period ({grace:?}), or a \
         rotation can lose traffic; lengthen the overlap or shorten the grace period"
    )]
    OverlapTooShort {
        /// The configured overlap.
        overlap: Duration,
        /// The configured grace period.
        grace: Duration,
    },
    /// A receiver must remember at least one sender.
    #[error("max_senders must be at least 1")]
    NoSenders,
}

impl SealConfig {
    /// Check the invariants the rotation guarantee relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.overlap < self.grace.saturating_mul(2) {
            return Err(ConfigError::OverlapTooShort {
                overlap: self.overlap,
                grace: self.grace,
            });
        }
        if self.max_senders == 0 {
            return Err(ConfigError::NoSenders);
        }
        Ok(())
    }
}

/// Why a frame was not sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SealDrop {
    /// The buffer has no room for envelope header, frame and tag (a caller bug).
    #[error("buffer too small for the sealed datagram")]
    BufferTooSmall,
    /// The frame exceeds [`MAX_FRAME_LEN`].
    #[error("frame too long to seal into one UDP datagram")]
    FrameTooLong,
    /// Our counter for the sending key is used up; rotate the key.
    #[error("send counter exhausted for this key; rotate the network key")]
    CounterExhausted,
}

impl SealDrop {
    /// Every reason, in a stable order.
    pub const ALL: [SealDrop; 3] = [
        SealDrop::BufferTooSmall,
        SealDrop::FrameTooLong,
        SealDrop::CounterExhausted,
    ];
}

/// Why a received datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum OpenDrop {
    /// Too short to hold VXLAN header, envelope header and tag.
    #[error("datagram too short to be sealed")]
    Truncated,
    /// Not a sealed v2 envelope (for example a plain VXLAN datagram on an encrypted network).
    #[error("not a sealed v2 datagram")]
    BadVersion,
    /// Sealed with a key id we do not hold.
    #[error("sealed with a key this host does not hold")]
    UnknownKey,
    /// The tag did not verify: wrong key, wrong network, or the bytes were changed.
    #[error("authentication failed")]
    AuthFailed,
    /// Seen before, older than its sender's verification, or too far behind the newest
    /// datagram of its sender to tell.
    #[error("replayed or too old")]
    Replayed,
    /// Authentic, but from a sender this host has not verified (at this peer): it could be a
    /// replay. The sender is challenged; its datagrams are accepted once it answered.
    #[error("from a sender not verified yet")]
    Unverified,
    /// An authentic control message that does not parse.
    #[error("malformed control message")]
    BadControl,
}

impl OpenDrop {
    /// Every reason, in a stable order.
    pub const ALL: [OpenDrop; 7] = [
        OpenDrop::Truncated,
        OpenDrop::BadVersion,
        OpenDrop::UnknownKey,
        OpenDrop::AuthFailed,
        OpenDrop::Replayed,
        OpenDrop::Unverified,
        OpenDrop::BadControl,
    ];
}

/// Where one network's key rotation stands, for `vswitch` status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationStatus<P> {
    /// The key new datagrams are sealed with.
    pub sending: KeyId,
    /// The key advertised as the newest we accept.
    pub accept_id: KeyId,
    /// Every key id we open, oldest first.
    pub accepted: Vec<KeyId>,
    /// The rotation phase.
    pub phase: RotationPhase,
    /// Expected peers that have not shown they accept the new key, in no particular order
    /// (empty unless accepting).
    pub waiting_for: Vec<P>,
}

/// The sealing state of one encrypted network: its keys, our sending counters, what we know
/// of every sender, and counters. See the module documentation.
///
/// `P` identifies a peer host for the rotation protocol (by default its underlay address).
pub struct Sealer<P = SocketAddr> {
    vni: u32,
    sender_id: u64,
    config: SealConfig,
    keys: RwLock<Keys<P>>,
    senders: Senders<P>,
    handshakes: Handshakes<P>,
    stats: SealStats,
}

impl<P: Copy + Eq + Hash> Sealer<P> {
    /// Seal and open network `vni` (low 24 bits) with `key`, sending as `sender_id` (fresh for
    /// every `Sealer`: use [`generate_sender_id`]).
    pub fn new(
        vni: u32,
        key: &NetworkKey,
        sender_id: u64,
        config: SealConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let vni = vni & 0x00ff_ffff;
        Ok(Self {
            vni,
            sender_id,
            config,
            keys: RwLock::new(Keys::new(KeySlot::new(key, vni, sender_id, 0))),
            senders: Senders::new(config.max_senders),
            handshakes: Handshakes::new(config.max_senders),
            stats: SealStats::default(),
        })
    }

    /// The network.
    pub fn vni(&self) -> u32 {
        self.vni
    }

    /// Our sender id.
    pub fn sender_id(&self) -> u64 {
        self.sender_id
    }

    /// The configuration.
    pub fn config(&self) -> &SealConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &SealStats {
        &self.stats
    }

    /// Seal a frame in place and return the datagram length.
    ///
    /// `buf` is laid out as `[VXLAN header (8, written by the caller)][20 bytes headroom]
    /// [frame: frame_len bytes][at least 16 bytes tailroom]`; the frame starts at
    /// [`FRAME_OFFSET`]. The envelope header goes into the headroom, the frame is encrypted
    /// where it is and the tag follows it; the sealed datagram is `buf[..returned]`. The
    /// VXLAN header bytes are not read: the AAD carries the canonical header of this network.
    pub fn seal(&self, buf: &mut [u8], frame_len: usize) -> Result<usize, SealDrop> {
        let result = self.seal_inner(buf, frame_len, false);
        if result.is_ok() {
            self.stats.sealed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn seal_inner(
        &self,
        buf: &mut [u8],
        frame_len: usize,
        control: bool,
    ) -> Result<usize, SealDrop> {
        if frame_len > MAX_FRAME_LEN {
            return Err(SealDrop::FrameTooLong);
        }
        let len = FRAME_OFFSET + frame_len + TAG_LEN;
        let buf = buf
            .get_mut(vxlan::HEADER_LEN..len)
            .ok_or(SealDrop::BufferTooSmall)?;
        let keys = read(&self.keys);
        let slot = keys.sending();
        let counter = slot.next_counter().ok_or(SealDrop::CounterExhausted)?;
        let repr = EnvelopeRepr {
            key_id: slot.id.0,
            accept_id: keys.accept_id().0,
            sender_id: self.sender_id,
            counter,
            control,
        };
        let mut envelope = EnvelopeHeader::new_unchecked(buf);
        repr.emit(&mut envelope);
        let aad = aad(self.vni, envelope.header());
        let tag = slot
            .send_key()
            .seal_in_place_separate_tag(
                key::nonce(counter),
                Aad::from(&aad),
                envelope.ciphertext_mut(),
            )
            .map_err(|_| SealDrop::FrameTooLong)?;
        envelope.tag_mut().copy_from_slice(tag.as_ref());
        Ok(len)
    }

    /// When the next key announcement is due, while a rotation is in progress. May be in the
    /// past (the shell polls [`Sealer::poll_control`] no later than then).
    pub fn next_announcement(&self) -> Option<Timestamp> {
        read(&self.keys).next_announcement()
    }

    /// Start rotating to `new_key`, expecting `peers` (every host we exchange traffic with on
    /// this network) to confirm it. Ticks first. Refused, changing nothing, if `new_key` has
    /// the current key's id or another rotation is still in progress.
    pub fn rotate(
        &self,
        new_key: &NetworkKey,
        peers: &[P],
        now: Timestamp,
    ) -> Result<(), RotateError> {
        let mut keys = write(&self.keys);
        self.tick_locked(&mut keys, now);
        keys.rotate(
            new_key,
            self.vni,
            self.sender_id,
            peers,
            self.config.grace,
            now,
        )
    }

    /// Advance the rotation: switch to the new key when due, drop the old key after the
    /// overlap. Call it at [`Sealer::next_deadline`] (or periodically).
    pub fn tick(&self, now: Timestamp) -> TickOutcome {
        self.tick_locked(&mut write(&self.keys), now)
    }

    fn tick_locked(&self, keys: &mut Keys<P>, now: Timestamp) -> TickOutcome {
        let outcome = keys.tick(now, self.config.overlap);
        if let Some(dropped) = outcome.dropped {
            self.senders.forget_key(dropped);
        }
        outcome
    }

    /// When [`Sealer::tick`] next has work, if a rotation is in progress. May be in the past.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        read(&self.keys).next_deadline()
    }

    /// Where the rotation stands.
    pub fn status(&self) -> RotationStatus<P> {
        let keys = read(&self.keys);
        RotationStatus {
            sending: keys.sending().id,
            accept_id: keys.accept_id(),
            accepted: keys.accepted(),
            phase: keys.phase(),
            waiting_for: keys.waiting_for(),
        }
    }

    /// How many (sender, key) pairs are remembered.
    pub fn known_senders(&self) -> usize {
        self.senders.len()
    }

    #[cfg(test)]
    fn set_send_counter(&self, value: u64) {
        read(&self.keys).sending().set_counter(value);
    }
}

impl<P> fmt::Debug for Sealer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("vni", &self.vni)
            .field("sender_id", &format_args!("{:#018x}", self.sender_id))
            .field("config", &self.config)
            .field("keys", &*read(&self.keys))
            .field("senders", &self.senders)
            .finish_non_exhaustive()
    }
}

/// AAD: the canonical VXLAN header of `vni`, then the envelope header as sent.
fn aad(vni: u32, header: &[u8; HEADER_LEN]) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    aad[..vxlan::HEADER_LEN].copy_from_slice(&vxlan::canonical_header(vni));
    aad[vxlan::HEADER_LEN..].copy_from_slice(header);
    aad
}
