//! Tests of sealing, opening, anti-replay and key rotation on a virtual clock.

use super::*;
use crate::wire::sealed::MIN_LEN;
use proptest::prelude::*;
use ring::aead::Tag;
use std::sync::Arc;

type Peer = u32;

const VNI: u32 = 0x00ab_cdef;
const T0: Timestamp = Timestamp(1_000);
const A: Peer = 1;
const B: Peer = 2;
const C: Peer = 3;

fn key(byte: u8) -> NetworkKey {
    NetworkKey::from_bytes([byte; KEY_LEN])
}

/// A key whose id differs from both of these.
fn third_key(k1: &NetworkKey, k2: &NetworkKey) -> NetworkKey {
    (3..=255)
        .map(key)
        .find(|k| k.id() != k1.id() && k.id() != k2.id())
        .expect("third id")
}

/// Two keys with different ids.
fn two_keys() -> (NetworkKey, NetworkKey) {
    let k1 = key(1);
    let k2 = (2..=255)
        .map(key)
        .find(|k| k.id() != k1.id())
        .expect("ids differ");
    (k1, k2)
}

/// Two different keys with the same id.
fn colliding_keys() -> (NetworkKey, NetworkKey) {
    let k1 = key(1);
    let k2 = (0..=u16::MAX)
        .map(|i| {
            let mut bytes = [9u8; KEY_LEN];
            bytes[..2].copy_from_slice(&i.to_be_bytes());
            NetworkKey::from_bytes(bytes)
        })
        .find(|k| k.id() == k1.id())
        .expect("a 1-in-256 collision within 65536 keys");
    (k1, k2)
}

fn sealer(key: &NetworkKey, sender_id: u64) -> Sealer<Peer> {
    Sealer::new(VNI, key, sender_id, SealConfig::default()).expect("default config is valid")
}

/// A buffer with the VXLAN header of `vni`, headroom, `frame` and tailroom.
fn buffer(vni: u32, frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; FRAME_OFFSET + frame.len() + TAG_LEN];
    buf[..vxlan::HEADER_LEN].copy_from_slice(&vxlan::canonical_header(vni));
    buf[FRAME_OFFSET..FRAME_OFFSET + frame.len()].copy_from_slice(frame);
    buf
}

fn seal(sealer: &Sealer<Peer>, frame: &[u8]) -> Vec<u8> {
    let mut buf = buffer(sealer.vni(), frame);
    let len = sealer.seal(&mut buf, frame.len()).expect("seal");
    assert_eq!(len, buf.len());
    buf
}

fn open(
    sealer: &Sealer<Peer>,
    peer: Peer,
    datagram: &[u8],
    now: Timestamp,
) -> Result<Vec<u8>, OpenDrop> {
    let mut copy = datagram.to_vec();
    let range = sealer.open(&peer, &mut copy, now)?;
    Ok(copy[range].to_vec())
}

/// Makes `receiver` accept `sender`'s datagrams from `peer`, for every key the sender holds,
/// from counter 0: what a handshake does, for tests whose subject is something else.
fn trust<P: Copy + Eq + Hash>(receiver: &Sealer<P>, sender: &Sealer<P>, peer: P) {
    let keys: Vec<_> = read(&sender.keys).held().map(|(id, _)| (id, 0)).collect();
    receiver
        .senders
        .verify(sender.sender_id(), peer, keys, T0, &receiver.stats);
}

/// The next control datagram due at `host`: where it goes and its bytes.
fn poll(host: &Sealer<Peer>, now: Timestamp) -> Option<(ControlTarget<Peer>, Vec<u8>)> {
    let mut buf = [0u8; CONTROL_LEN];
    buf[..vxlan::HEADER_LEN].copy_from_slice(&vxlan::canonical_header(host.vni()));
    let (target, len) = host
        .poll_control(&mut buf, now)?
        .expect("a control message fits");
    Some((target, buf[..len].to_vec()))
}

fn sealed_with(datagram: &[u8]) -> KeyId {
    KeyId(datagram[vxlan::HEADER_LEN + 1])
}

fn advertised(datagram: &[u8]) -> KeyId {
    KeyId(datagram[vxlan::HEADER_LEN + 2])
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---------------------------------------------------------------------------------------------
// Sealing and opening

#[test]
fn known_answer_matches_independent_implementation() {
    // Computed with Python's `cryptography` (HKDF, AESGCM) from the format in the docs.
    let key = NetworkKey::from_bytes(std::array::from_fn(|i| i as u8));
    assert_eq!(key.id(), KeyId(0x9a));
    let sender = sealer(&key, 0x0123_4567_89ab_cdef);
    let datagram = seal(&sender, b"vswitch sealed frame known answer");
    let expected = "08000000abcdef00029a9a000123456789abcdef00000000000000006dab1d4dc21b97a0154e\
                    b3a9b71bcf93c5aa2c8d412f1f6fee8901497d78ab36e7a11cbb4effd7f8b502a98e89112bcec2";
    let hex: String = datagram.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected);
}

#[test]
fn round_trip_every_frame_size_up_to_9000() {
    let key = key(7);
    let sender = sealer(&key, 11);
    let receiver = sealer(&key, 22);
    trust(&receiver, &sender, A);
    let mut buf = vec![0u8; FRAME_OFFSET + 9000 + TAG_LEN];
    buf[..vxlan::HEADER_LEN].copy_from_slice(&vxlan::canonical_header(VNI));
    for frame_len in 0..=9000usize {
        let fill = frame_len as u8;
        buf[FRAME_OFFSET..FRAME_OFFSET + frame_len].fill(fill);
        let len = sender.seal(&mut buf, frame_len).expect("seal");
        assert_eq!(len, frame_len + vxlan::HEADER_LEN + SEAL_OVERHEAD);
        if frame_len >= 16 {
            assert_ne!(
                &buf[FRAME_OFFSET..FRAME_OFFSET + 16],
                &[fill; 16],
                "encrypted"
            );
        }
        let range = receiver.open(&A, &mut buf[..len], T0).expect("open");
        assert_eq!(range, FRAME_OFFSET..FRAME_OFFSET + frame_len);
        assert!(buf[range].iter().all(|&b| b == fill), "frame {frame_len}");
    }
    assert_eq!(sender.stats().sealed(), 9001);
    assert_eq!(receiver.stats().opened(), 9001);
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let key = key(7);
    let sender = sealer(&key, 11);
    let datagram = seal(&sender, b"sixteen byte frm");
    for bit in 0..datagram.len() * 8 {
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        let mut flipped = datagram.clone();
        flipped[byte] ^= mask;
        // A fresh receiver each time, so no flip is judged by a window another one filled.
        let receiver = sealer(&key, 22);
        trust(&receiver, &sender, A);
        let result = open(&receiver, A, &flipped, T0);
        let expected = match byte {
            // VXLAN flags and reserved bits: noise, not authenticated.
            0..=3 | 7 => continue,
            8 => Err(OpenDrop::BadVersion),
            9 => Err(OpenDrop::UnknownKey),
            // VNI, accept id, flags, sender id, counter, ciphertext, tag.
            _ => Err(OpenDrop::AuthFailed),
        };
        assert_eq!(result, expected, "bit {bit} (byte {byte})");
    }
}

#[test]
fn vxlan_reserved_bits_do_not_break_authentication() {
    let key = key(7);
    let sender = sealer(&key, 11);
    let mut datagram = seal(&sender, b"frame");
    for i in [0usize, 1, 2, 3, 7] {
        datagram[i] ^= 0xff;
    }
    let receiver = sealer(&key, 22);
    trust(&receiver, &sender, A);
    assert_eq!(
        open(&receiver, A, &datagram, T0).as_deref(),
        Ok(&b"frame"[..])
    );
}

#[test]
fn the_flags_byte_is_authenticated_as_sent() {
    let key = key(7);
    let sender = sealer(&key, 11);
    let receiver = sealer(&key, 22);
    trust(&receiver, &sender, A);
    let datagram = seal(&sender, b"frame");
    assert_eq!(datagram[vxlan::HEADER_LEN + 3], 0);
    // Neither the control flag nor any other bit can be set on the way.
    for flags in [1, 2, 0x80] {
        let mut changed = datagram.clone();
        changed[vxlan::HEADER_LEN + 3] = flags;
        assert_eq!(open(&receiver, A, &changed, T0), Err(OpenDrop::AuthFailed));
    }
    assert!(open(&receiver, A, &datagram, T0).is_ok());
}

#[test]
fn another_network_cannot_open() {
    let key = key(7);
    let datagram = seal(&sealer(&key, 11), b"frame");
    let other = Sealer::<Peer>::new(VNI + 1, &key, 22, SealConfig::default()).expect("config");
    assert_eq!(open(&other, A, &datagram, T0), Err(OpenDrop::AuthFailed));
}

#[test]
fn senders_with_one_key_never_share_a_keystream() {
    let key = key(7);
    let (a, b) = (sealer(&key, 0xaaaa), sealer(&key, 0xbbbb));
    let frame = [0x42u8; 64];
    let (from_a, from_b) = (seal(&a, &frame), seal(&b, &frame));
    // Same key id, counter and plaintext: only the subkey differs.
    assert_eq!(
        from_a[vxlan::HEADER_LEN + 12..FRAME_OFFSET],
        0u64.to_be_bytes()
    );
    assert_eq!(
        from_b[vxlan::HEADER_LEN + 12..FRAME_OFFSET],
        0u64.to_be_bytes()
    );
    assert_ne!(from_a[FRAME_OFFSET..], from_b[FRAME_OFFSET..]);

    // A's datagram relabelled as B's fails, and so does decrypting it with B's subkey under
    // A's own header (the sender id is bound by the subkey, not only by the AAD).
    let mut relabelled = from_a.clone();
    relabelled[vxlan::HEADER_LEN + 4..vxlan::HEADER_LEN + 12]
        .copy_from_slice(&0xbbbbu64.to_be_bytes());
    let receiver = sealer(&key, 0xcccc);
    trust(&receiver, &a, A);
    assert_eq!(
        open(&receiver, A, &relabelled, T0),
        Err(OpenDrop::AuthFailed)
    );

    let slot = KeySlot::new(&key, VNI, 0xcccc, 0);
    let mut copy = from_a.clone();
    let header: [u8; HEADER_LEN] = copy[vxlan::HEADER_LEN..FRAME_OFFSET]
        .try_into()
        .expect("20");
    let aad = aad(VNI, &header);
    let (body, tag) = copy[FRAME_OFFSET..].split_at_mut(frame.len());
    let tag = Tag::try_from(&tag[..]).expect("16 bytes");
    let as_b = slot.subkey(VNI, 0xbbbb);
    assert!(as_b
        .open_in_place_separate_tag(key::nonce(0), Aad::from(&aad), tag, body, 0..)
        .is_err());
    let as_a = slot.subkey(VNI, 0xaaaa);
    let mut copy = from_a.clone();
    let (body, _) = copy[FRAME_OFFSET..].split_at_mut(frame.len());
    assert!(as_a
        .open_in_place_separate_tag(key::nonce(0), Aad::from(&aad), tag, body, 0..)
        .is_ok());
    assert_eq!(open(&receiver, A, &from_a, T0).as_deref(), Ok(&frame[..]));
}

#[test]
fn wrong_key_is_rejected() {
    let (k1, k2) = two_keys();
    let datagram = seal(&sealer(&k1, 11), b"frame");
    assert_eq!(
        open(&sealer(&k2, 22), A, &datagram, T0),
        Err(OpenDrop::UnknownKey)
    );

    let (k1, same_id) = colliding_keys();
    let datagram = seal(&sealer(&k1, 11), b"frame");
    let receiver = sealer(&same_id, 22);
    assert_eq!(open(&receiver, A, &datagram, T0), Err(OpenDrop::AuthFailed));
    assert_eq!(receiver.stats().opened(), 0);
    assert_eq!(
        receiver.known_senders(),
        0,
        "no state for a sender that did not authenticate"
    );
}

#[test]
fn plain_and_short_datagrams_are_dropped() {
    let receiver = sealer(&key(7), 22);
    for len in 0..FRAME_OFFSET + TAG_LEN {
        let mut bytes = vec![0x01u8; len];
        assert_eq!(
            receiver.open(&A, &mut bytes, T0),
            Err(OpenDrop::Truncated),
            "len {len}"
        );
    }
    // A plain VXLAN datagram carrying a broadcast frame.
    let mut plain = buffer(VNI, &[0xff; 60]);
    assert_eq!(receiver.open(&A, &mut plain, T0), Err(OpenDrop::BadVersion));
    assert_eq!(receiver.stats().opened(), 0);
    assert_eq!(MIN_LEN + vxlan::HEADER_LEN, FRAME_OFFSET + TAG_LEN);
}

#[test]
fn seal_refuses_small_buffers_and_huge_frames() {
    let sender = sealer(&key(7), 11);
    let mut buf = vec![0u8; FRAME_OFFSET + 100 + TAG_LEN];
    assert_eq!(sender.seal(&mut buf, 101), Err(SealDrop::BufferTooSmall));
    assert_eq!(
        sender.seal(&mut buf[..10], 0),
        Err(SealDrop::BufferTooSmall)
    );
    assert_eq!(
        sender.seal(&mut buf, MAX_FRAME_LEN + 1),
        Err(SealDrop::FrameTooLong)
    );
    assert_eq!(
        sender.seal(&mut buf, usize::MAX),
        Err(SealDrop::FrameTooLong)
    );
    assert_eq!(sender.seal(&mut buf, 100), Ok(buf.len()));
    assert_eq!(sender.stats().sealed(), 1);
    assert_eq!(FRAME_OFFSET + MAX_FRAME_LEN + TAG_LEN, 65_535);
    // The largest frame itself is sealed: into a datagram of exactly 65,535 bytes.
    let mut big = vec![0u8; 65_535];
    assert_eq!(sender.seal(&mut big, MAX_FRAME_LEN), Ok(65_535));
    assert_eq!(sender.stats().sealed(), 2);
}

proptest! {
    #[test]
    fn open_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let receiver = sealer(&key(7), 22);
        let mut copy = bytes.clone();
        prop_assert!(receiver.open(&A, &mut copy, T0).is_err());
    }

    #[test]
    fn open_never_panics_on_mangled_datagrams(
        frame in proptest::collection::vec(any::<u8>(), 0..100),
        edits in proptest::collection::vec((any::<bool>(), any::<usize>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let key = key(7);
        let sender = sealer(&key, 11);
        let original = seal(&sender, &frame);
        let mut datagram = original.clone();
        // Half the edits land on the unauthenticated bytes, so that intact datagrams (which
        // must open to the original frame) are common, not a 1-in-1000 case.
        for (noise, at, value) in edits {
            let at = match noise {
                true => [0, 1, 2, 3, 7][at % 5],
                false => at % datagram.len(),
            };
            datagram[at] = value;
        }
        if let Some(cut) = cut {
            datagram.truncate(cut % (datagram.len() + 1));
        }
        // Only the VXLAN flags and reserved bytes (0..=3, 7) are not authenticated.
        let intact = datagram.len() == original.len()
            && (0..datagram.len()).all(|i| datagram[i] == original[i] || matches!(i, 0..=3 | 7));
        let receiver = sealer(&key, 22);
        trust(&receiver, &sender, A);
        match receiver.open(&A, &mut datagram, T0) {
            Ok(range) => {
                prop_assert!(intact, "a changed datagram opened");
                prop_assert_eq!(&datagram[range], &frame[..]);
            }
            Err(e) => prop_assert!(!intact, "an intact datagram was refused: {:?}", e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Anti-replay through the full open path

#[test]
fn duplicates_are_replays() {
    let key = key(7);
    let (sender, receiver) = (sealer(&key, 11), sealer(&key, 22));
    trust(&receiver, &sender, A);
    let datagram = seal(&sender, b"once");
    assert!(open(&receiver, A, &datagram, T0).is_ok());
    assert_eq!(open(&receiver, A, &datagram, T0), Err(OpenDrop::Replayed));
    assert_eq!(receiver.stats().opened(), 1);
}

#[test]
fn replays_are_refused_before_decryption() {
    let key = key(7);
    let (sender, receiver) = (sealer(&key, 11), sealer(&key, 22));
    trust(&receiver, &sender, A);
    let datagram = seal(&sender, b"once");
    assert!(open(&receiver, A, &datagram, T0).is_ok());
    // Had the tag been checked first, this would be `AuthFailed`.
    let mut corrupted = datagram.clone();
    corrupted[FRAME_OFFSET] ^= 1;
    assert_eq!(open(&receiver, A, &corrupted, T0), Err(OpenDrop::Replayed));
}

#[test]
fn window_edges_on_the_wire() {
    let key = key(7);
    let sender = sealer(&key, 11);
    let receiver = sealer(&key, 22);
    trust(&receiver, &sender, A);
    let at = |counter: u64| {
        sender.set_send_counter(counter);
        seal(&sender, b"frame")
    };
    let top = 100_000;
    let (newest, inside, outside) = (
        at(top),
        at(top - (REPLAY_WINDOW - 1)),
        at(top - REPLAY_WINDOW),
    );
    let (mid_a, mid_b) = (at(top - 10), at(top - 20));
    assert!(open(&receiver, A, &newest, T0).is_ok());
    assert_eq!(
        open(&receiver, A, &outside, T0),
        Err(OpenDrop::Replayed),
        "too old"
    );
    // Out of order within the window: accepted, once.
    for datagram in [&mid_b, &inside, &mid_a] {
        assert!(open(&receiver, A, datagram, T0).is_ok());
        assert_eq!(open(&receiver, A, datagram, T0), Err(OpenDrop::Replayed));
    }
    // A jump far ahead moves the window: what was inside is now too old.
    let far = at(top + 1_000_000);
    assert!(open(&receiver, A, &far, T0).is_ok());
    let before_jump = at(top + 1);
    assert_eq!(
        open(&receiver, A, &before_jump, T0),
        Err(OpenDrop::Replayed)
    );
}

#[test]
fn counter_never_wraps() {
    let key = key(7);
    let sender = sealer(&key, 11);
    let receiver = sealer(&key, 22);
    trust(&receiver, &sender, A);
    sender.set_send_counter(u64::MAX - 2);
    let last_two = [seal(&sender, b"a"), seal(&sender, b"b")];
    let mut buf = buffer(VNI, b"c");
    for _ in 0..3 {
        assert_eq!(sender.seal(&mut buf, 1), Err(SealDrop::CounterExhausted));
    }
    assert_eq!(
        sender.stats().sealed(),
        2,
        "a refused seal is not counted as sealed"
    );
    for datagram in &last_two {
        assert!(open(&receiver, A, datagram, T0).is_ok());
    }
    let counter = |d: &Vec<u8>| {
        u64::from_be_bytes(
            d[vxlan::HEADER_LEN + 12..FRAME_OFFSET]
                .try_into()
                .expect("8"),
        )
    };
    assert_eq!(counter(&last_two[1]), u64::MAX - 1);
    // A rotation gives a fresh counter.
    let (_, k2) = two_keys();
    sender.rotate(&k2, &[], T0).expect("rotate");
    assert_eq!(sender.seal(&mut buf, 1).map(|_| counter(&buf)), Ok(0));
}

#[test]
fn forged_senders_do_not_grow_state_and_the_table_is_bounded() {
    let key = key(7);
    let config = SealConfig {
        max_senders: 4,
        ..SealConfig::default()
    };
    let receiver = Sealer::<Peer>::new(VNI, &key, 1, config).expect("config");
    let genuine = seal(&sealer(&key, 2), b"frame");
    for forged_id in 100..200u64 {
        let mut forged = genuine.clone();
        forged[vxlan::HEADER_LEN + 4..vxlan::HEADER_LEN + 12]
            .copy_from_slice(&forged_id.to_be_bytes());
        assert_eq!(open(&receiver, A, &forged, T0), Err(OpenDrop::AuthFailed));
    }
    assert_eq!(receiver.known_senders(), 0);
    assert!(!receiver.control_due(), "forgeries are not even challenged");

    // Senders 10..=15, each on its own host, verify and talk once, at increasing times: the
    // two oldest are forgotten.
    let senders: Vec<_> = (10..16).map(|id| sealer(&key, id)).collect();
    let mut first = Vec::new();
    for (i, sender) in senders.iter().enumerate() {
        let (now, peer) = (Timestamp(i as u64), 10 + i as Peer);
        handshake((&receiver, 1), (sender, peer), now);
        let datagram = seal(sender, b"first");
        assert!(open(&receiver, peer, &datagram, now).is_ok());
        first.push(datagram);
    }
    assert_eq!(receiver.known_senders(), 4);
    assert_eq!(receiver.stats().new_senders(), 6);
    assert_eq!(receiver.stats().evicted_senders(), 2);
    // A remembered sender's replay is caught; so is a forgotten one's: it is not verified any
    // more, so it is challenged, not believed.
    assert_eq!(open(&receiver, 15, &first[5], T0), Err(OpenDrop::Replayed));
    assert_eq!(
        open(&receiver, 10, &first[0], T0),
        Err(OpenDrop::Unverified)
    );
    assert!(receiver.control_due(), "the forgotten sender is challenged");
    // It answers, and only what it sends from then on is accepted.
    handshake((&receiver, 1), (&senders[0], 10), Timestamp(9));
    assert_eq!(open(&receiver, 10, &first[0], T0), Err(OpenDrop::Replayed));
    assert!(open(&receiver, 10, &seal(&senders[0], b"new"), T0).is_ok());
}

#[test]
fn workers_share_one_sealer() {
    let key = key(7);
    let sender = Arc::new(sealer(&key, 11));
    let receiver = Arc::new(sealer(&key, 22));
    trust(&receiver, &sender, A);
    let handles: Vec<_> = (0..4u8)
        .map(|worker| {
            let (sender, receiver) = (Arc::clone(&sender), Arc::clone(&receiver));
            std::thread::spawn(move || {
                let mut datagrams = Vec::new();
                for i in 0..250u8 {
                    datagrams.push(seal(&sender, &[worker, i]));
                }
                // Open in reverse: the window must absorb the reordering.
                datagrams
                    .iter()
                    .rev()
                    .filter(|d| open(&receiver, A, d, T0).is_ok())
                    .count()
            })
        })
        .collect();
    let opened: usize = handles.into_iter().map(|h| h.join().expect("worker")).sum();
    assert_eq!(opened, 1000);
    assert_eq!(sender.stats().sealed(), 1000);
    assert_eq!(receiver.stats().opened(), 1000);
}

// ---------------------------------------------------------------------------------------------
// Freshness: the handshake

/// Delivers every control datagram due at `from` (known to the other side as `from_addr`) to
/// `to`; returns what `open` said of each.
fn deliver_control(
    from: &Sealer<Peer>,
    from_addr: Peer,
    to: &Sealer<Peer>,
    now: Timestamp,
) -> Vec<Result<Vec<u8>, OpenDrop>> {
    std::iter::from_fn(|| poll(from, now))
        .map(|(_, datagram)| open(to, from_addr, &datagram, now))
        .collect()
}

#[test]
fn a_restarted_receiver_refuses_what_it_accepted_before() {
    let key = key(7);
    let sender = sealer(&key, 0x5e);
    let receiver = sealer(&key, 0x01);
    handshake((&receiver, A), (&sender, B), T0);
    let recorded: Vec<_> = (0..10u8).map(|i| seal(&sender, &[i; 60])).collect();
    for d in &recorded {
        assert!(open(&receiver, B, d, T0).is_ok());
    }
    // The receiver restarts: a new sealer, a new sender id, an empty table. The sender keeps
    // running. Someone replays what was recorded, from the sender's address.
    let restarted = sealer(&key, 0x02);
    for d in &recorded {
        assert_eq!(open(&restarted, B, d, T0), Err(OpenDrop::Unverified));
    }
    assert_eq!(restarted.stats().opened(), 0, "nothing delivered");
    // The first unverified datagram made a challenge due (one: the rest wait for an answer).
    let challenges: Vec<_> = std::iter::from_fn(|| poll(&restarted, T0)).collect();
    assert_eq!(challenges.len(), 1);
    assert_eq!(challenges[0].0, ControlTarget::Peer(B));
    // The sender answers; from then on the recording is too old and new datagrams open.
    assert_eq!(
        open(&sender, A, &challenges[0].1, T0),
        Ok(vec![]),
        "a challenge is answered even from an unverified sender"
    );
    let answers = deliver_control(&sender, B, &restarted, T0);
    assert_eq!(answers, vec![Ok(vec![])]);
    assert_eq!(restarted.stats().verified(), 1);
    for d in &recorded {
        assert_eq!(open(&restarted, B, d, T0), Err(OpenDrop::Replayed));
    }
    let fresh = seal(&sender, b"after the answer");
    assert_eq!(
        open(&restarted, B, &fresh, T0).as_deref(),
        Ok(&b"after the answer"[..])
    );
    // The answer carried the sender's own challenge: the restarted host answers it, and the
    // sender verifies the restarted host and forgets its old self.
    assert_eq!(
        deliver_control(&restarted, A, &sender, T0),
        vec![Ok(vec![])]
    );
    assert_eq!(sender.known_senders(), 1);
    assert!(open(&sender, A, &seal(&restarted, b"hi"), T0).is_ok());
    assert!(!sender.control_due() && !restarted.control_due(), "settled");
}

/// The message counts of one handshake between two fresh hosts: A challenges, B answers with
/// its own challenge, A answers that. Handshake messages are counted apart from frames.
#[test]
fn a_handshake_is_three_messages_counted_apart_from_frames() {
    let key = key(7);
    let (a, b) = (sealer(&key, 1), sealer(&key, 2));
    a.challenge(B);
    let (to, first) = poll(&a, T0).expect("A's challenge");
    assert_eq!(to, ControlTarget::Peer(B));
    assert_eq!(poll(&a, T0), None);
    assert_eq!(open(&b, A, &first, T0), Ok(vec![]));
    let (_, second) = poll(&b, T0).expect("B's answer and challenge");
    assert_eq!(open(&a, B, &second, T0), Ok(vec![]));
    let (_, third) = poll(&a, T0).expect("A's answer");
    assert_eq!(open(&b, A, &third, T0), Ok(vec![]));
    assert_eq!((poll(&a, T0), poll(&b, T0)), (None, None), "settled");
    let counts = |s: &Sealer<Peer>| {
        let st = s.stats();
        (
            st.challenges_sent(),
            st.answers_sent(),
            st.verified(),
            st.handshakes_opened(),
            st.sealed(),
            st.opened(),
        )
    };
    assert_eq!(
        counts(&a),
        (1, 1, 1, 1, 0, 0),
        "A: challenged, answered, verified B"
    );
    assert_eq!(
        counts(&b),
        (1, 0, 1, 2, 0, 0),
        "B: answered with a challenge, verified A"
    );
}

#[test]
fn an_answer_is_good_once_and_only_for_its_challenge() {
    let key = key(7);
    let (receiver, sender) = (sealer(&key, 1), sealer(&key, 2));
    receiver.challenge(B);
    let (_, challenge) = poll(&receiver, T0).expect("due");
    assert_eq!(open(&sender, A, &challenge, T0), Ok(vec![]));
    let (_, answer) = poll(&sender, T0).expect("the answer");
    assert_eq!(open(&receiver, B, &answer, T0), Ok(vec![]));
    assert_eq!(receiver.stats().verified(), 1);
    // The sender is forgotten (it left and came back); a recorded answer verifies nothing,
    // and neither does the same answer from another address. (The answer also carries the
    // sender's own challenge, so it is taken in as one: that costs an answer, nothing more.)
    receiver.forget_peer(&B);
    assert_eq!(open(&receiver, B, &answer, T0), Ok(vec![]));
    assert_eq!(open(&receiver, C, &answer, T0), Ok(vec![]));
    assert_eq!(receiver.stats().verified(), 1);
    assert_eq!(receiver.known_senders(), 0);
    assert_eq!(
        open(&receiver, B, &seal(&sender, b"x"), T0),
        Err(OpenDrop::Unverified)
    );
    // An answer to another host's challenge does not verify either.
    let other = sealer(&key, 3);
    other.challenge(B);
    let (_, theirs) = poll(&other, T0).expect("due");
    assert_eq!(open(&sender, C, &theirs, T0), Ok(vec![]));
    let (_, answer_to_other) = poll(&sender, T0).expect("the answer");
    let _ = open(&receiver, B, &answer_to_other, T0);
    assert_eq!(receiver.stats().verified(), 1);
    assert_eq!(receiver.known_senders(), 0);
    // A new challenge, a new answer: verified again.
    handshake((&receiver, A), (&sender, B), T0);
    assert!(open(&receiver, B, &seal(&sender, b"y"), T0).is_ok());
}

#[test]
fn unverified_senders_are_challenged_at_most_once_per_interval() {
    let key = key(7);
    let (receiver, sender) = (sealer(&key, 1), sealer(&key, 2));
    let interval = SealConfig::default().announce_interval;
    for _ in 0..100 {
        assert_eq!(
            open(&receiver, B, &seal(&sender, b"x"), T0),
            Err(OpenDrop::Unverified)
        );
    }
    assert_eq!(std::iter::from_fn(|| poll(&receiver, T0)).count(), 1);
    let soon = Timestamp(T0.0 + interval.as_millis() as u64 - 1);
    let _ = open(&receiver, B, &seal(&sender, b"x"), soon);
    assert_eq!(
        poll(&receiver, soon),
        None,
        "the answer may still be on its way"
    );
    let later = T0.saturating_add(interval);
    let _ = open(&receiver, B, &seal(&sender, b"x"), later);
    assert!(poll(&receiver, later).is_some(), "lost: asked again");
    assert_eq!(receiver.stats().challenges_sent(), 2);
}

#[test]
fn an_authentic_but_malformed_control_message_is_refused() {
    let key = key(7);
    let (receiver, sender) = (sealer(&key, 1), sealer(&key, 2));
    handshake((&receiver, A), (&sender, B), T0);
    let mut buf = buffer(VNI, &[0x07; 30]);
    let len = sender.seal_inner(&mut buf, 30, true).expect("sealed");
    assert_eq!(
        open(&receiver, B, &buf[..len], T0),
        Err(OpenDrop::BadControl)
    );
    assert!(open(&receiver, B, &seal(&sender, b"still fine"), T0).is_ok());
}

#[test]
fn a_sender_verified_once_is_accepted_under_the_keys_it_announces() {
    let (k1, k2) = two_keys();
    let (host, b) = (sealer(&k1, 1), sealer(&k1, 2));
    handshake((&host, A), (&b, B), T0);
    // B gets k2 before the host does and announces it; the host learns B's counter for k2
    // although it cannot open k2 yet.
    b.rotate(&k2, &[A], T0).expect("rotate b");
    assert_eq!(deliver_control(&b, B, &host, T0), vec![Ok(vec![])]);
    host.rotate(&k2, &[B], T0).expect("rotate host");
    b.tick(T0.saturating_add(secs(30)));
    let d = seal(&b, b"new key");
    assert_eq!(sealed_with(&d), k2.id());
    assert_eq!(open(&host, B, &d, T0).as_deref(), Ok(&b"new key"[..]));
}

#[derive(Debug, Clone)]
enum Life {
    /// The sender seals the next frame (each frame is unique) and someone records it.
    Send,
    /// A recorded datagram (by index, modulo how many) arrives at the receiver.
    Arrive(usize),
    /// The receiver's daemon restarts: a new sealer.
    RestartReceiver,
    /// The sender's daemon restarts: a new sealer (a new sender id, so new subkeys).
    RestartSender,
    /// The receiver forgets the sender (it left, or the table was full).
    Forget,
    /// Their control messages cross.
    Handshake,
}

fn life() -> impl Strategy<Value = Life> {
    prop_oneof![
        4 => Just(Life::Send),
        6 => any::<usize>().prop_map(Life::Arrive),
        1 => Just(Life::RestartReceiver),
        1 => Just(Life::RestartSender),
        1 => Just(Life::Forget),
        2 => Just(Life::Handshake),
    ]
}

proptest! {
    /// Whatever happens to either host, in any order, with any recording replayed at any time:
    /// no frame is ever delivered twice, and after a handshake a new frame is delivered.
    #[test]
    fn no_frame_is_delivered_twice_across_restarts(ops in proptest::collection::vec(life(), 1..80)) {
        let key = key(7);
        let mut ids = 100u64..;
        let mut next_id = || ids.next().expect("endless");
        let mut receiver = sealer(&key, next_id());
        let mut sender = sealer(&key, next_id());
        let mut recorded: Vec<Vec<u8>> = Vec::new();
        let mut delivered = std::collections::HashSet::new();
        let mut t = T0;
        for op in ops {
            t = t.saturating_add(Duration::from_millis(100));
            match op {
                Life::Send => {
                    let frame = (recorded.len() as u64).to_be_bytes();
                    recorded.push(seal(&sender, &frame));
                }
                Life::Arrive(i) if !recorded.is_empty() => {
                    let d = &recorded[i % recorded.len()];
                    if let Ok(frame) = open(&receiver, B, d, t) {
                        prop_assert!(delivered.insert(frame.clone()), "delivered twice: {:?}", frame);
                    }
                }
                Life::Arrive(_) => {}
                Life::RestartReceiver => receiver = sealer(&key, next_id()),
                Life::RestartSender => sender = sealer(&key, next_id()),
                Life::Forget => receiver.forget_peer(&B),
                Life::Handshake => {
                    handshake((&receiver, A), (&sender, B), t);
                    let probe = seal(&sender, b"probe");
                    prop_assert_eq!(open(&receiver, B, &probe, t), Ok(b"probe".to_vec()));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Key rotation

#[test]
fn config_is_validated() {
    let short = SealConfig {
        grace: secs(30),
        overlap: secs(59),
        ..SealConfig::default()
    };
    assert!(matches!(
        Sealer::<Peer>::new(VNI, &key(1), 1, short),
        Err(ConfigError::OverlapTooShort { .. })
    ));
    let none = SealConfig {
        max_senders: 0,
        ..SealConfig::default()
    };
    assert_eq!(none.validate(), Err(ConfigError::NoSenders));
    assert_eq!(SealConfig::default().validate(), Ok(()));
}

#[test]
fn same_key_id_rotation_is_refused() {
    let (k1, same_id) = colliding_keys();
    let host = sealer(&k1, 1);
    let before = host.status();
    assert_eq!(
        host.rotate(&k1, &[B], T0),
        Err(RotateError::SameKeyId { id: k1.id() })
    );
    assert_eq!(
        host.rotate(&same_id, &[B], T0),
        Err(RotateError::SameKeyId { id: k1.id() })
    );
    assert_eq!(host.status(), before);
    assert_eq!(host.next_deadline(), None);
    let message = host
        .rotate(&same_id, &[B], T0)
        .expect_err("refused")
        .to_string();
    assert!(message.contains("generate another key"), "{message}");
}

#[test]
fn switches_when_every_expected_peer_advertises_the_new_key() {
    let (k1, k2) = two_keys();
    let host = sealer(&k1, 1);
    let (b, c) = (sealer(&k1, 2), sealer(&k1, 3));
    host.rotate(&k2, &[B, C], T0).expect("rotate");
    let d = seal(&host, b"x");
    assert_eq!(
        (sealed_with(&d), advertised(&d)),
        (k1.id(), k2.id()),
        "still old key, new advertised"
    );
    assert_eq!(host.status().accepted, vec![k1.id(), k2.id()]);

    trust(&host, &b, B);
    trust(&host, &c, C);
    // B learns the key and says so in an old-key datagram.
    b.rotate(&k2, &[A, C], T0).expect("rotate b");
    assert!(open(&host, B, &seal(&b, b"hi"), T0).is_ok());
    assert_eq!(
        sealed_with(&seal(&host, b"x")),
        k1.id(),
        "C has not confirmed"
    );
    assert_eq!(host.status().waiting_for, vec![C]);
    // B's datagram arriving from anywhere else is refused and confirms nothing (on an
    // underlay where source addresses can be forged, this is what binds a confirmation to
    // its host).
    assert_eq!(
        open(&host, C, &seal(&b, b"hi"), T0),
        Err(OpenDrop::Unverified)
    );
    assert_eq!(host.status().waiting_for, vec![C]);
    assert_eq!(sealed_with(&seal(&host, b"x")), k1.id());

    c.rotate(&k2, &[A, B], T0).expect("rotate c");
    let t = T0.saturating_add(secs(2));
    assert!(open(&host, C, &seal(&c, b"hi"), t).is_ok());
    let d = seal(&host, b"x");
    assert_eq!(
        (sealed_with(&d), advertised(&d)),
        (k2.id(), k2.id()),
        "switched at once"
    );
    assert_eq!(
        host.status().phase,
        RotationPhase::Accepting {
            next: k2.id(),
            grace_deadline: T0.saturating_add(secs(30)),
            switched_at: Some(t)
        }
    );
    // The overlap counts from the switch, not from the (late) tick that records it.
    assert_eq!(host.next_deadline(), Some(t));
    assert_eq!(
        host.tick(t.saturating_add(secs(5))),
        TickOutcome {
            switched_to: Some(k2.id()),
            dropped: None
        }
    );
    assert_eq!(host.next_deadline(), Some(t.saturating_add(secs(60))));
}

#[test]
fn a_datagram_sealed_with_the_new_key_proves_acceptance() {
    let (k1, k2) = two_keys();
    let k3 = third_key(&k1, &k2);
    let host = sealer(&k1, 1);
    host.rotate(&k2, &[B], T0).expect("rotate");
    // B is already on k2 and rotating on to k3: it seals with k2 but advertises k3.
    let b = sealer(&k2, 2);
    b.rotate(&k3, &[A], T0).expect("rotate b");
    trust(&host, &b, B);
    let from_b = seal(&b, b"hi");
    assert_eq!(
        (sealed_with(&from_b), advertised(&from_b)),
        (k2.id(), k3.id())
    );
    assert!(open(&host, B, &from_b, T0).is_ok());
    assert_eq!(sealed_with(&seal(&host, b"x")), k2.id());
}

#[test]
fn silent_peers_are_waited_for_until_the_grace_period_ends() {
    let (k1, k2) = two_keys();
    let host = sealer(&k1, 1);
    host.rotate(&k2, &[B], T0).expect("rotate");
    let deadline = T0.saturating_add(secs(30));
    assert_eq!(host.next_deadline(), Some(deadline));
    assert_eq!(host.tick(Timestamp(deadline.0 - 1)), TickOutcome::default());
    assert_eq!(sealed_with(&seal(&host, b"x")), k1.id());
    assert_eq!(
        host.tick(deadline),
        TickOutcome {
            switched_to: Some(k2.id()),
            dropped: None
        }
    );
    assert_eq!(sealed_with(&seal(&host, b"x")), k2.id());
    assert_eq!(
        host.status().phase,
        RotationPhase::Overlap {
            previous: k1.id(),
            drop_at: deadline.saturating_add(secs(60))
        }
    );
}

#[test]
fn old_and_new_keys_are_accepted_during_the_overlap_then_the_old_is_dropped() {
    let (k1, k2) = two_keys();
    let host = sealer(&k1, 1);
    let old_peer = sealer(&k1, 2);
    let new_peer = sealer(&k2, 3);
    trust(&host, &old_peer, B);
    trust(&host, &new_peer, C);
    assert_eq!(
        open(&host, C, &seal(&new_peer, b"n"), T0),
        Err(OpenDrop::UnknownKey)
    );
    host.rotate(&k2, &[], T0).expect("rotate");
    assert_eq!(
        sealed_with(&seal(&host, b"x")),
        k2.id(),
        "no peers to wait for"
    );
    assert_eq!(host.tick(T0).switched_to, Some(k2.id()));
    let drop_at = T0.saturating_add(secs(60));
    for t in [T0, Timestamp(drop_at.0 - 1)] {
        assert_eq!(host.tick(t).dropped, None);
        assert!(
            open(&host, B, &seal(&old_peer, b"o"), t).is_ok(),
            "old key at {t:?}"
        );
        assert!(
            open(&host, C, &seal(&new_peer, b"n"), t).is_ok(),
            "new key at {t:?}"
        );
    }
    assert_eq!(host.known_senders(), 2);
    assert_eq!(
        host.tick(drop_at),
        TickOutcome {
            switched_to: None,
            dropped: Some(k1.id())
        }
    );
    assert_eq!(
        open(&host, B, &seal(&old_peer, b"o"), drop_at),
        Err(OpenDrop::UnknownKey)
    );
    assert!(open(&host, C, &seal(&new_peer, b"n"), drop_at).is_ok());
    assert_eq!(
        host.known_senders(),
        1,
        "state of the dropped key is forgotten"
    );
    assert_eq!(host.status().phase, RotationPhase::Stable);
    assert_eq!(host.status().accepted, vec![k2.id()]);
    assert_eq!(host.next_deadline(), None);
}

/// A key nobody here holds is unknown in every phase of a rotation: never tried with the next
/// or the previous key (and then refused as a forgery, `auth_failed`).
#[test]
fn a_third_key_is_unknown_while_rotating_and_during_the_overlap() {
    let (k1, k2) = two_keys();
    let k3 = third_key(&k1, &k2);
    let host = sealer(&k1, 1);
    let stranger = sealer(&k3, 4);
    trust(&host, &stranger, 4);
    let unknown = |t| open(&host, 4, &seal(&stranger, b"s"), t);
    assert_eq!(unknown(T0), Err(OpenDrop::UnknownKey), "stable");
    host.rotate(&k2, &[B], T0).expect("rotate");
    assert!(matches!(
        host.status().phase,
        RotationPhase::Accepting { .. }
    ));
    assert_eq!(unknown(T0), Err(OpenDrop::UnknownKey), "accepting");
    let switched = T0.saturating_add(secs(30));
    host.tick(switched);
    assert!(matches!(host.status().phase, RotationPhase::Overlap { .. }));
    assert_eq!(unknown(switched), Err(OpenDrop::UnknownKey), "overlap");
}

#[test]
fn rotating_during_a_rotation_is_refused_until_it_completes() {
    let (k1, k2) = two_keys();
    let k3 = third_key(&k1, &k2);
    let host = sealer(&k1, 1);
    host.rotate(&k2, &[B], T0).expect("rotate");
    let err = host.rotate(&k3, &[B], T0).expect_err("accepting");
    assert!(matches!(
        err,
        RotateError::InProgress {
            phase: RotationPhase::Accepting { .. }
        }
    ));
    // What the user reads: the phase, with the times it waits for.
    assert_eq!(
        err.to_string(),
        format!(
            "a key rotation is already in progress (accepting new key {}, waiting for peers \
             until {} ms); rotate again once it is stable",
            k2.id(),
            T0.saturating_add(secs(30)).as_millis()
        )
    );
    let switched = T0.saturating_add(secs(30));
    host.tick(switched);
    let err = host.rotate(&k3, &[B], switched).expect_err("overlap");
    assert_eq!(
        err.to_string(),
        format!(
            "a key rotation is already in progress (old key {} still accepted until {} ms); \
             rotate again once it is stable",
            k1.id(),
            switched.saturating_add(secs(60)).as_millis()
        )
    );
    // rotate ticks first: once the overlap is over no explicit tick is needed.
    host.rotate(&k3, &[B], switched.saturating_add(secs(60)))
        .expect("stable again");
    assert_eq!(advertised(&seal(&host, b"x")), k3.id());
}

#[test]
fn rotating_back_to_a_previous_key_never_reuses_a_nonce() {
    let (k1, k2) = two_keys();
    let host = sealer(&k1, 1);
    let receiver = sealer(&k1, 2);
    trust(&receiver, &host, A);
    for _ in 0..5 {
        assert!(open(&receiver, A, &seal(&host, b"x"), T0).is_ok());
    }
    let mut t = T0;
    for next in [&k2, &k1] {
        host.rotate(next, &[], t).expect("rotate");
        t = t.saturating_add(secs(60));
        host.tick(t);
    }
    let d = seal(&host, b"x");
    assert_eq!(sealed_with(&d), k1.id());
    assert_eq!(
        d[vxlan::HEADER_LEN + 12..FRAME_OFFSET],
        5u64.to_be_bytes(),
        "counter resumed"
    );
    assert!(open(&receiver, A, &d, t).is_ok());
}

/// Each pair of `hosts` (known to each other as `ids`) runs the handshake.
fn meet_all(hosts: &[Sealer<Peer>], ids: &[Peer], now: Timestamp) {
    for i in 0..hosts.len() {
        for j in i + 1..hosts.len() {
            handshake((&hosts[i], ids[i]), (&hosts[j], ids[j]), now);
        }
    }
}

/// Three hosts exchange a datagram every 10 ms each way, with 40 ms in flight, while they get
/// the new key at different times within the grace period: nothing may be lost. Their key
/// announcements travel the same way (that is how a receiver learns to accept a sender's new
/// key before the sender uses it).
#[test]
fn a_staggered_rotation_loses_nothing() {
    let (k1, k2) = two_keys();
    let ids = [A, B, C];
    let hosts: Vec<Sealer<Peer>> = ids.iter().map(|&id| sealer(&k1, u64::from(id))).collect();
    meet_all(&hosts, &ids, T0);
    let rotate_at = [
        Timestamp::from_secs(5),
        Timestamp::from_secs(20),
        Timestamp::from_secs(34),
    ];
    let mut in_flight: std::collections::VecDeque<(Timestamp, usize, usize, Vec<u8>)> =
        Default::default();
    let mut delivered = 0u64;
    let mut control = 0u64;
    for ms in (0..200_000u64).step_by(10) {
        let now = Timestamp(ms);
        for (i, host) in hosts.iter().enumerate() {
            if now == rotate_at[i] {
                let peers: Vec<Peer> = ids.iter().copied().filter(|&p| p != ids[i]).collect();
                host.rotate(&k2, &peers, now).expect("rotate");
            }
            if ms % 100 == 0 {
                host.tick(now);
            }
            while let Some((target, datagram)) = poll(host, now) {
                assert_eq!(target, ControlTarget::Everyone, "only announcements");
                for j in (0..hosts.len()).filter(|&j| j != i) {
                    let at = now.saturating_add(Duration::from_millis(40));
                    in_flight.push_back((at, i, j, datagram.clone()));
                }
            }
            for j in (0..hosts.len()).filter(|&j| j != i) {
                in_flight.push_back((
                    now.saturating_add(Duration::from_millis(40)),
                    i,
                    j,
                    seal(host, &[i as u8, j as u8]),
                ));
            }
        }
        while in_flight.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((at, from, to, datagram)) = in_flight.pop_front() else {
                break;
            };
            let frame = open(&hosts[to], ids[from], &datagram, at);
            if frame == Ok(vec![]) {
                control += 1;
                continue;
            }
            assert_eq!(
                frame,
                Ok(vec![from as u8, to as u8]),
                "{from} -> {to} at {at:?}"
            );
            delivered += 1;
        }
    }
    assert!(delivered > 100_000);
    assert!(control > 0, "announcements were carried");
    for host in &hosts {
        let status = host.status();
        assert_eq!(
            (status.phase, status.accepted),
            (RotationPhase::Stable, vec![k2.id()])
        );
    }
    let opened: u64 = hosts.iter().map(|h| h.stats().opened()).sum();
    assert_eq!(opened, delivered + control, "every datagram opened");
}

#[test]
fn debug_output_has_no_secrets() {
    let key = NetworkKey::from_bytes([0x5c; KEY_LEN]);
    let shown = format!("{:?}", sealer(&key, 1));
    assert!(
        !shown.contains("92,") && !shown.contains("5c, 5c"),
        "{shown}"
    );
    // What it does show: the network, the sender id and the key's id.
    assert!(
        shown.starts_with("Sealer { vni: 11259375, sender_id: 0x0000000000000001, ")
            && shown.contains(&format!("KeyId({})", key.id().0)),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Announcements: rotations finish on idle networks

/// Runs idle hosts on a virtual clock the way the daemon's ticker does: every 125 ms each
/// host ticks and sends the announcement that is due, if any, to every other host (1 ms in
/// flight). `rotations[i]` is when host `i` gets `k2`. Returns the time at which every host
/// sent with `k2`, if that happened before `until`.
fn run_idle(
    hosts: &[Sealer<Peer>],
    ids: &[Peer],
    k2: &NetworkKey,
    rotations: &[Timestamp],
    until: Timestamp,
) -> Option<Timestamp> {
    let mut all_switched = None;
    for ms in (0..=until.as_millis()).step_by(125) {
        let now = Timestamp(ms);
        for (i, host) in hosts.iter().enumerate() {
            if now == rotations[i] {
                let peers: Vec<Peer> = ids.iter().copied().filter(|&p| p != ids[i]).collect();
                host.rotate(k2, &peers, now).expect("rotate");
            }
            host.tick(now);
            while let Some((target, datagram)) = poll(host, now) {
                assert_eq!(target, ControlTarget::Everyone);
                for (j, other) in hosts.iter().enumerate().filter(|&(j, _)| j != i) {
                    let frame = open(other, ids[i], &datagram, Timestamp(ms + 1));
                    assert_eq!(frame, Ok(vec![]), "announcement {i} -> {j} at {ms} ms");
                }
            }
        }
        let switched = hosts.iter().all(|h| h.status().sending == k2.id());
        if switched && all_switched.is_none() {
            all_switched = Some(now);
        }
    }
    all_switched
}

#[test]
fn idle_hosts_switch_within_a_second_of_the_last_one_getting_the_key() {
    let (k1, k2) = two_keys();
    let ids = [A, B, C];
    let hosts: Vec<Sealer<Peer>> = ids.iter().map(|&id| sealer(&k1, u64::from(id))).collect();
    meet_all(&hosts, &ids, T0);
    let rotations = [
        Timestamp::from_secs(2),
        Timestamp::from_secs(5),
        Timestamp::from_secs(9),
    ];
    let switched = run_idle(&hosts, &ids, &k2, &rotations, Timestamp::from_secs(12))
        .expect("every host switched without any traffic");
    assert!(
        switched > rotations[2] && switched <= rotations[2].saturating_add(secs(1)),
        "switched at {switched:?}, the last host rotated at {:?}",
        rotations[2]
    );
    for host in &hosts {
        let st = host.stats();
        assert!(st.announced() > 0 && st.announcements_opened() > 0);
        assert_eq!(
            st.opened(),
            st.announcements_opened(),
            "every datagram was an announcement, and each opened (handshakes are apart)"
        );
        assert_eq!(
            st.verified(),
            2,
            "each host verified both peers by a handshake"
        );
        assert!(st.handshakes_opened() >= 2);
    }
}

#[test]
fn announcements_are_only_sent_while_rotating_and_stop_when_stable() {
    let (k1, k2) = two_keys();
    let host = sealer(&k1, 1);
    assert_eq!(poll(&host, T0), None, "stable: nothing to say");
    assert_eq!(host.next_announcement(), None);
    host.rotate(&k2, &[B], T0).expect("rotate");
    assert_eq!(host.next_announcement(), Some(T0), "due at once");
    let (target, first) = poll(&host, T0).expect("due");
    assert_eq!(target, ControlTarget::Everyone);
    assert_eq!(
        (sealed_with(&first), advertised(&first)),
        (k1.id(), k2.id()),
        "old key, new key advertised"
    );
    // Two keys held, each listed with its next counter.
    assert_eq!(
        first.len(),
        FRAME_OFFSET + crate::wire::handshake::MIN_LEN + 2 * 9 + TAG_LEN
    );
    assert_eq!(poll(&host, T0), None, "only one caller gets it");
    let interval = SealConfig::default().announce_interval;
    let later = T0.saturating_add(interval);
    assert_eq!(host.next_announcement(), Some(later));
    assert_eq!(
        poll(&host, Timestamp(later.0 - 1)),
        None,
        "not before the interval"
    );
    // Every interval while the peer stays silent (30 s of grace: 120 in all).
    let deadline = T0.saturating_add(secs(30));
    let mut t = later;
    while t < deadline {
        assert!(poll(&host, t).is_some(), "due at {t:?}");
        t = t.saturating_add(interval);
    }
    assert_eq!(host.stats().announced(), 120);
    // The grace period ends: the switch is announced at once, then the overlap runs out.
    assert_eq!(poll(&host, Timestamp(deadline.0 - 1)), None);
    host.tick(deadline);
    assert_eq!(host.next_announcement(), Some(deadline));
    let (_, switched) = poll(&host, deadline).expect("due");
    assert_eq!(sealed_with(&switched), k2.id());
    let end = deadline.saturating_add(secs(60));
    host.tick(end);
    assert_eq!(host.status().phase, RotationPhase::Stable);
    assert_eq!(poll(&host, end), None);
    assert_eq!(host.next_announcement(), None);
    assert_eq!(host.stats().announced(), 121);
}

#[test]
fn a_switch_inside_open_makes_an_announcement_due_at_once() {
    let (k1, k2) = two_keys();
    let (host, b) = (sealer(&k1, 1), sealer(&k1, 2));
    handshake((&host, A), (&b, B), T0);
    host.rotate(&k2, &[B], T0).expect("rotate");
    poll(&host, T0).expect("due");
    let t = T0.saturating_add(Duration::from_millis(10));
    assert_eq!(poll(&host, t), None, "next one is 250 ms away");
    b.rotate(&k2, &[A], T0).expect("rotate b");
    let (_, from_b) = poll(&b, T0).expect("due");
    assert_eq!(open(&host, B, &from_b, t), Ok(vec![]));
    assert_eq!(host.status().sending, k2.id(), "B confirmed: switched");
    assert_eq!(
        host.next_announcement(),
        Some(t),
        "the switch is announced at once"
    );
    let (_, switched) = poll(&host, t).expect("due");
    assert_eq!(sealed_with(&switched), k2.id());
}

#[test]
fn an_announcement_cannot_be_replayed_or_forged() {
    let (k1, k2) = two_keys();
    let (host, b) = (sealer(&k1, 1), sealer(&k1, 2));
    handshake((&host, A), (&b, B), T0);
    host.rotate(&k2, &[B], T0).expect("rotate");
    b.rotate(&k2, &[A], T0).expect("rotate b");
    let (_, from_b) = poll(&b, T0).expect("due");
    let mut forged = from_b.clone();
    forged[vxlan::HEADER_LEN + 2] ^= 0xff; // a different accept_id
    assert_eq!(open(&host, B, &forged, T0), Err(OpenDrop::AuthFailed));
    assert_eq!(host.status().sending, k1.id(), "a forgery confirms nothing");
    assert_eq!(open(&host, B, &from_b, T0), Ok(vec![]));
    assert_eq!(open(&host, B, &from_b, T0), Err(OpenDrop::Replayed));
    assert_eq!(host.stats().announcements_opened(), 1);
}

#[test]
fn an_exhausted_counter_is_counted_as_key_exhausted_by_the_switch() {
    use crate::core::switch::{HEADROOM, TAILROOM};
    use crate::core::{DropReason, Forward, PortId, Switch, SwitchConfig, Vtep};
    use crate::wire::Vni;
    let vni = Vni::new(VNI).expect("vni");
    let peer: SocketAddr = "192.0.2.9:4789".parse().expect("addr");
    let mut switch = Switch::new(SwitchConfig::default());
    switch.add_network(vni).expect("network");
    switch.add_port(PortId(1), vni).expect("port");
    switch.add_peer(Vtep(peer)).expect("peer");
    let sealer = Sealer::<SocketAddr>::new(VNI, &key(7), 11, SealConfig::default()).expect("ok");
    switch
        .set_sealer(vni, Some(sealer))
        .expect("network exists");
    let sealer = switch
        .network(vni)
        .and_then(|n| n.sealer())
        .expect("sealed")
        .clone();
    sealer.set_send_counter(u64::MAX - 1);
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    frame.resize(60, 0x42);
    let encapsulate = || {
        let mut out = Forward::default();
        switch.frame_from_port(T0, PortId(1), &frame, &mut out);
        let sends = out.deliver(&frame, |_, _| {}).expect("to the peer");
        let mut buf = vec![0u8; HEADROOM + frame.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(&frame);
        switch
            .encapsulate(&sends, &mut buf, HEADROOM..HEADROOM + frame.len())
            .map(|e| buf[e.datagram].to_vec())
    };
    let last = encapsulate().expect("the last counter still seals");
    let receiver = sealer_for_addr(&key(7), 22);
    trust(&receiver, &sealer, peer);
    let mut copy = last.clone();
    let range = receiver.open(&peer, &mut copy, T0).expect("opens");
    assert_eq!(copy[range], frame[..]);
    for _ in 0..2 {
        assert_eq!(encapsulate(), Err(DropReason::KeyExhausted));
    }
    assert_eq!(switch.drops.get(DropReason::KeyExhausted), 2);
    assert_eq!(
        switch.drops.total(),
        2,
        "each refusal counted once, nothing else dropped"
    );
    assert_eq!(
        switch
            .network_traffic(vni)
            .expect("network")
            .drops
            .get("key_exhausted"),
        Some(&2)
    );
    assert_eq!(sealer.stats().sealed(), 1);
}

fn sealer_for_addr(key: &NetworkKey, sender_id: u64) -> Sealer<SocketAddr> {
    Sealer::new(VNI, key, sender_id, SealConfig::default()).expect("default config is valid")
}

/// The switch time is kept even at the clock's very end: `u64::MAX` ms stands for "not yet
/// switched", so the last millisecond is recorded as the one before it, never as no switch.
#[test]
fn a_switch_at_the_end_of_the_clock_is_still_a_switch() {
    let (k1, k2) = two_keys();
    let host = sealer(&k1, 1);
    let end = Timestamp(u64::MAX);
    host.rotate(&k2, &[], end).expect("rotate");
    assert_eq!(
        host.status().phase,
        RotationPhase::Accepting {
            next: k2.id(),
            grace_deadline: end,
            switched_at: Some(Timestamp(u64::MAX - 1))
        }
    );
}
