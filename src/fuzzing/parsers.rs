//! Fuzz bodies for the parsers that came with the daemon, sealing and offloads: the sealed
//! envelope, control requests, the state file, and the virtio-net header with segmentation and
//! coalescing.

use std::net::SocketAddr;

use crate::control::Request;
use crate::core::offload::{self, Coalescer, Offer, Push};
use crate::core::seal::{handshake, NetworkKey, OpenDrop, SealConfig, Sealer};
use crate::core::switch::{HEADROOM, TAILROOM};
use crate::core::Timestamp;
use crate::wire::handshake;
use crate::wire::sealed::{self, EnvelopeHeader, EnvelopeRepr};
use crate::wire::virtio_net::VnetHdr;
use crate::wire::vxlan;

/// The fixed key the `sealed_envelope` target opens with (and its seeds are sealed with).
pub const FUZZ_KEY: [u8; 32] = [0x5e; 32];
/// The VNI of the `sealed_envelope` target's network.
pub const FUZZ_VNI: u32 = 4242;

fn fuzz_peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 4789))
}

fn fuzz_receiver_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 2], 4789))
}

fn sealer(sender_id: u64) -> Sealer<SocketAddr> {
    let key = NetworkKey::from_bytes(FUZZ_KEY);
    Sealer::new(FUZZ_VNI, &key, sender_id, SealConfig::default()).expect("default config is valid")
}

/// The `sealed_envelope` target's receiver (sender id 1) and the sender its seeds are sealed
/// by (sender id 7, at 192.0.2.1), after their handshake: the receiver accepts the sender's
/// datagrams from the first one sealed after it. Deterministic, so a seed sealed by this
/// sender opens at this receiver.
pub fn fuzz_pair() -> (Sealer<SocketAddr>, Sealer<SocketAddr>) {
    let (receiver, sender) = (sealer(1), sealer(7));
    handshake(
        (&receiver, fuzz_receiver_addr()),
        (&sender, fuzz_peer()),
        Timestamp(0),
    );
    (receiver, sender)
}

/// A receiver for the `sealed_envelope` target: it has verified the seeds' sender.
pub fn fuzz_sealer() -> Sealer<SocketAddr> {
    fuzz_pair().0
}

/// `sealed_envelope`: any bytes as a sealed VXLAN datagram, opened with a fixed key. Never
/// panics; a datagram that opens yields a frame range inside it, and the same bytes never open
/// twice (replay protection).
pub fn sealed_envelope(data: &[u8]) {
    if let Ok(view) = EnvelopeHeader::new_checked(data.get(vxlan::HEADER_LEN..).unwrap_or(&[])) {
        let repr = EnvelopeRepr::parse(&view).expect("a checked envelope parses");
        assert_eq!(repr.sender_id, view.sender_id());
    }
    let receiver = fuzz_sealer();
    let mut buf = data.to_vec();
    let first = receiver.open(&fuzz_peer(), &mut buf, Timestamp(0));
    if let Ok(range) = &first {
        assert!(range.start >= vxlan::HEADER_LEN + sealed::HEADER_LEN);
        assert!(range.end + sealed::TAG_LEN <= data.len());
        let mut again = data.to_vec();
        assert_eq!(
            receiver.open(&fuzz_peer(), &mut again, Timestamp(1)),
            Err(OpenDrop::Replayed),
            "a datagram opened twice"
        );
    }
}

/// A sealed datagram carrying `frame`, for seeding the corpus.
pub fn sealed_seed(frame: &[u8]) -> Vec<u8> {
    let sender = fuzz_pair().1;
    let mut buf = vec![0u8; vxlan::HEADER_LEN + sealed::HEADER_LEN + frame.len() + sealed::TAG_LEN];
    buf[..8].copy_from_slice(
        &crate::wire::VxlanRepr {
            vni: crate::wire::Vni::new(FUZZ_VNI).expect("valid"),
            sealed: true,
        }
        .to_bytes(),
    );
    buf[28..28 + frame.len()].copy_from_slice(frame);
    let len = sender.seal(&mut buf, frame.len()).expect("room");
    buf.truncate(len);
    buf
}

/// `handshake_message`: any bytes as the plaintext of a sealed control message (what a key
/// holder could send). Never panics; a message that parses emits bytes that parse to the same
/// message, of the length it says.
pub fn handshake_message(data: &[u8]) {
    if let Ok(message) = handshake::ControlRepr::parse(data) {
        assert_eq!(message.len(), data.len());
        let mut buf = [0u8; handshake::MAX_LEN];
        let len = message.emit(&mut buf);
        assert_eq!(handshake::ControlRepr::parse(&buf[..len]), Ok(message));
    }
}

/// `control_request`: any bytes as a control-socket request line. Never panics; a request that
/// decodes encodes to JSON that decodes to the same request.
pub fn control_request(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<Request>(data) {
        let json = serde_json::to_vec(&req).expect("a request encodes");
        let back: Request = serde_json::from_slice(&json).expect("an encoded request decodes");
        assert_eq!(back, req);
    }
}

/// `state_file`: any bytes as the state dir's file. Never panics; a state that loads saves to
/// bytes that load to the same state.
pub fn state_file(data: &[u8]) {
    if let Ok(state) = crate::store::decode(data) {
        let json = serde_json::to_vec(&state).expect("a state encodes");
        assert_eq!(crate::store::decode(&json), Ok(state));
    }
}

/// `offload`: any bytes as a virtio-net header + frame from a TAP (TCP or, with USO, UDP
/// superframes). Never panics; segmentation writes only inside its arena slots, and coalescing
/// what it produced never grows the data.
pub fn offload(data: &[u8]) {
    let Ok(hdr) = VnetHdr::parse(data) else {
        return;
    };
    let frame = &data[crate::wire::virtio_net::HEADER_LEN.min(data.len())..];
    let mut copy = frame.to_vec();
    let _ = offload::complete_checksum(&mut copy, &hdr);
    let mut arena = vec![0u8; 4 * (HEADROOM + 65_536 + TAILROOM)];
    let arena_len = arena.len();
    let Ok(segs) = offload::segment(frame, &hdr, &mut arena, HEADROOM, TAILROOM) else {
        return;
    };
    let mut coalescer = Coalescer::new();
    // TCP and UDP segments both, as for a TAP with USO.
    let how = Offer {
        verified: false,
        udp: true,
    };
    let mut total_in = 0;
    for r in segs.frames() {
        assert!(r.start >= HEADROOM && r.end + TAILROOM <= arena_len);
        let seg = &arena[r];
        total_in += seg.len();
        if let Push::Busy = coalescer.offer(1, seg, how) {
            coalescer.take();
            coalescer.offer(1, seg, how);
        }
    }
    if let Some((_, merged)) = coalescer.take() {
        assert!(merged.len() <= total_in + crate::wire::virtio_net::HEADER_LEN);
    }
}
