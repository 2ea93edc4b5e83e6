//! Opening datagrams, and the control messages that verify senders and announce keys (see the
//! parent module's documentation, "Freshness").

use std::hash::Hash;
use std::iter;
use std::ops::Range;
use std::sync::atomic::Ordering;

use ring::aead::Tag;

use super::senders::{Freshness, Incoming};
use super::{aad, read, KeyId, OpenDrop, SealDrop, Sealer, CONTROL_LEN, FRAME_OFFSET, TAG_LEN};
use crate::core::Timestamp;
use crate::wire::handshake::{ControlRepr, Echo, KeyCounter};
use crate::wire::sealed::{EnvelopeHeader, EnvelopeRepr, Error as EnvelopeError};
use crate::wire::vxlan::{self, VxlanPacket};

/// Where a control datagram from [`Sealer::poll_control`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlTarget<P> {
    /// Every peer of the network (a key announcement).
    Everyone,
    /// One peer (a challenge and/or an answer to its challenge).
    Peer(P),
}

impl<P: Copy + Eq + Hash> Sealer<P> {
    /// Asks `peer` to prove its sender is fresh, so that its datagrams are accepted from the
    /// first one: call it when a peer joins an encrypted network (the challenge goes out with
    /// the next [`Sealer::poll_control`]). A peer that stays silent is not asked again until
    /// one of its datagrams arrives unverified.
    pub fn challenge(&self, peer: P) {
        self.handshakes
            .challenge(peer, None, self.config.announce_interval);
    }

    /// Forgets everything about `peer` (it left the network): its verified senders and any
    /// challenge or answer due to it.
    pub fn forget_peer(&self, peer: &P) {
        self.senders.forget_peer(peer);
        self.handshakes.forget(peer);
    }

    /// True if a handshake message is due: the data path polls [`Sealer::poll_control`] when
    /// it is, so a sender is verified within a round trip.
    pub fn control_due(&self) -> bool {
        self.handshakes.is_due()
    }

    /// Seals the next control datagram due at `now` into `buf` (at least [`CONTROL_LEN`]
    /// bytes, the first 8 being the VXLAN header, written by the caller) and returns where it
    /// goes and its length; `None` when nothing is due. Call it until `None`.
    ///
    /// Due are: handshake messages to single peers (challenges, and answers to theirs), then,
    /// while a key rotation is in progress, a key announcement to everyone at once when it
    /// starts or switches and then every [`super::SealConfig::announce_interval`]. Every
    /// control message lists the keys we hold and our next counter under each.
    pub fn poll_control(
        &self,
        buf: &mut [u8],
        now: Timestamp,
    ) -> Option<Result<(ControlTarget<P>, usize), SealDrop>> {
        let keys = read(&self.keys);
        let (target, mut message) = if let Some(due) = self.handshakes.poll(now) {
            (
                ControlTarget::Peer(due.peer),
                ControlRepr::new(due.challenge, due.echo),
            )
        } else if keys.poll_announce(now, self.config.announce_interval) {
            (ControlTarget::Everyone, ControlRepr::new(0, None))
        } else {
            return None;
        };
        for (key_id, next_counter) in keys.held() {
            message.push_key(KeyCounter {
                key_id: key_id.0,
                next_counter,
            });
        }
        drop(keys);
        let Some(plain) = buf.get_mut(FRAME_OFFSET..CONTROL_LEN) else {
            return Some(Err(SealDrop::BufferTooSmall));
        };
        let len = message.emit(plain);
        let sealed = self.seal_inner(buf, len, true);
        if sealed.is_ok() {
            // Announcements count as sealed datagrams (every peer opens them); handshake
            // messages apart (a challenge to a peer that is down is never opened).
            if target == ControlTarget::Everyone {
                self.stats.sealed.fetch_add(1, Ordering::Relaxed);
            }
            let counter = match target {
                ControlTarget::Everyone => &self.stats.announced,
                ControlTarget::Peer(_) if message.challenge != 0 => &self.stats.challenges_sent,
                ControlTarget::Peer(_) => &self.stats.answers_sent,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Some(sealed.map(|len| (target, len)))
    }

    /// Open a received datagram (UDP payload, starting with the VXLAN header) from `peer` in
    /// place, and return where the plaintext frame now is inside `datagram`: an empty range for
    /// a control message, which the sealer has taken in (nothing to deliver).
    ///
    /// The AAD is built from the VNI in the datagram's VXLAN header; its flag and reserved
    /// bits are ignored. On any error the datagram's contents are unspecified. An
    /// [`OpenDrop::Unverified`] datagram makes a challenge to `peer` due
    /// ([`Sealer::poll_control`]).
    pub fn open(
        &self,
        peer: &P,
        datagram: &mut [u8],
        now: Timestamp,
    ) -> Result<Range<usize>, OpenDrop> {
        let len = datagram.len();
        let Some((header, envelope)) = datagram.split_first_chunk_mut::<{ vxlan::HEADER_LEN }>()
        else {
            return Err(OpenDrop::Truncated);
        };
        let vni = VxlanPacket::new_unchecked(&header[..]).vni_field();
        let mut envelope = EnvelopeHeader::new_checked(envelope).map_err(|e| match e {
            EnvelopeError::Truncated { .. } => OpenDrop::Truncated,
            EnvelopeError::BadVersion(_) => OpenDrop::BadVersion,
        })?;
        let repr = EnvelopeRepr::parse(&envelope).map_err(|_| OpenDrop::BadVersion)?;
        let aad = aad(vni, envelope.header());
        let tag = Tag::try_from(envelope.tag()).map_err(|_| OpenDrop::Truncated)?;
        let keys = read(&self.keys);
        let key_id = KeyId(repr.key_id);
        let slot = keys.find(key_id).ok_or(OpenDrop::UnknownKey)?;
        let incoming = Incoming {
            sender_id: repr.sender_id,
            counter: repr.counter,
            aad: &aad,
            tag,
            ciphertext: envelope.ciphertext_mut(),
        };
        let freshness = self.senders.open(slot, self.vni, peer, incoming, now)?;
        let plain = FRAME_OFFSET..len - TAG_LEN;
        if !repr.control {
            if freshness == Freshness::Unverified {
                self.handshakes
                    .challenge(*peer, Some(now), self.config.announce_interval);
                return Err(OpenDrop::Unverified);
            }
            keys.observe(peer, key_id, KeyId(repr.accept_id), now);
            self.stats.opened.fetch_add(1, Ordering::Relaxed);
            return Ok(plain);
        }
        let message =
            ControlRepr::parse(&datagram[plain.clone()]).map_err(|_| OpenDrop::BadControl)?;
        // Fresh: from a verified sender (its window took the counter), or an answer to the
        // challenge we sent this peer, which no one could have sealed before we sent it. An
        // answer spends its challenge either way.
        let answer = message.echo.is_some_and(|echo| {
            echo.sender_id == self.sender_id && self.handshakes.answered(peer, echo.challenge)
        });
        let verified = freshness == Freshness::Verified || answer;
        if verified {
            // Nothing left to prove at this peer: a challenge still outstanding there would
            // only be repeated in every answer we send it.
            self.handshakes.settle(peer);
            // Whatever the sender sealed before this message is refused from now on; this
            // message's own counter is spent.
            let spent = (key_id, repr.counter.saturating_add(1));
            let floors = message.keys().iter().map(|k| {
                let id = KeyId(k.key_id);
                let floor = if id == key_id {
                    k.next_counter.max(spent.1)
                } else {
                    k.next_counter
                };
                (id, floor)
            });
            self.senders.verify(
                repr.sender_id,
                *peer,
                floors.chain(iter::once(spent)),
                now,
                &self.stats,
            );
            if freshness == Freshness::Unverified {
                self.stats.verified.fetch_add(1, Ordering::Relaxed);
            }
            keys.observe(peer, key_id, KeyId(repr.accept_id), now);
        } else {
            self.handshakes
                .challenge(*peer, Some(now), self.config.announce_interval);
        }
        if message.challenge != 0 {
            self.handshakes.owe(
                *peer,
                Echo {
                    sender_id: repr.sender_id,
                    challenge: message.challenge,
                },
            );
        } else if !verified {
            return Err(OpenDrop::Unverified);
        }
        if message.challenge == 0 && message.echo.is_none() {
            // A key announcement (from a verified sender): counted like a frame.
            self.stats.opened.fetch_add(1, Ordering::Relaxed);
            self.stats
                .announcements_opened
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.handshakes_opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(FRAME_OFFSET..FRAME_OFFSET)
    }
}

/// Runs the handshake between two sealers of one network, each given with the address the
/// other knows it by, until neither has anything due: afterwards each accepts the other's
/// datagrams. For tests and the simulated fabric; the daemon's handshakes go over UDP.
#[cfg(any(test, feature = "sim"))]
pub fn handshake<P: Copy + Eq + Hash>(a: (&Sealer<P>, P), b: (&Sealer<P>, P), now: Timestamp) {
    a.0.challenge(b.1);
    b.0.challenge(a.1);
    let header = vxlan::canonical_header(a.0.vni());
    let mut buf = [0u8; CONTROL_LEN];
    let mut moved = true;
    let mut rounds = 0;
    while moved {
        rounds += 1;
        assert!(rounds < 16, "the handshake did not settle: a message loop");
        moved = false;
        for ((from, from_addr), (to, to_addr)) in [(a, b), (b, a)] {
            buf[..vxlan::HEADER_LEN].copy_from_slice(&header);
            while let Some(Ok((target, len))) = from.poll_control(&mut buf, now) {
                if target == ControlTarget::Peer(to_addr) || target == ControlTarget::Everyone {
                    // What `open` says does not matter here: only what it leaves behind.
                    let _ = to.open(&from_addr, &mut buf[..len], now);
                }
                buf[..vxlan::HEADER_LEN].copy_from_slice(&header);
                moved = true;
            }
        }
    }
}
