//! Checksums are checked with etherparse's own implementation, never with ours.

use super::*;
use etherparse::{Ipv4HeaderSlice, PacketBuilder, TcpHeaderSlice};
use proptest::prelude::*;

const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const HEADROOM: usize = 64;
const TAILROOM: usize = 16;
/// The sequence number of every test superframe's first byte: close to wrapping, on purpose.
const SEQ: u32 = 0xffff_f000;

#[derive(Clone, Copy, Default)]
struct Flags {
    psh: bool,
    fin: bool,
    cwr: bool,
    ece: bool,
}

/// A TCP superframe as a TAP with TSO would hand it over: full headers, a partial checksum.
fn superframe(v6: bool, options: bool, payload: &[u8], f: Flags, mss: u16) -> (Vec<u8>, VnetHdr) {
    let b = PacketBuilder::ethernet2(SRC, DST);
    let b = if v6 {
        b.ipv6([0xfd; 16], [0xfe; 16], 64)
    } else {
        b.ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
    };
    let mut b = b.tcp(40000, 5201, SEQ, 502).ack(777);
    if options {
        // NOP NOP timestamps
        b = b
            .options_raw(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
            .expect("12 bytes of options");
    }
    if f.psh {
        b = b.psh();
    }
    if f.fin {
        b = b.fin();
    }
    if f.cwr {
        b = b.cwr();
    }
    if f.ece {
        b = b.ece();
    }
    let mut frame = Vec::new();
    b.write(&mut frame, payload).expect("fits");
    let t = TcpFrame::parse(&frame).expect("tcp");
    let partial = fold(pseudo_sum(&frame, &t, frame.len() - t.l4));
    frame[t.l4 + 16..t.l4 + 18].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: virtio_net::F_NEEDS_CSUM,
        gso_type: if v6 {
            virtio_net::GSO_TCPV6
        } else {
            virtio_net::GSO_TCPV4
        },
        hdr_len: t.payload as u16,
        gso_size: mss,
        csum_start: t.l4 as u16,
        csum_offset: 16,
        num_buffers: 0,
    };
    (frame, hdr)
}

fn arena() -> Vec<u8> {
    vec![0u8; 256 * 1024]
}

/// The IPv4 header of a whole IP packet in `frame`, its total length and header checksum checked
/// with etherparse.
pub(super) fn ipv4_checked(frame: &[u8]) -> Ipv4HeaderSlice<'_> {
    let ip = Ipv4HeaderSlice::from_slice(&frame[14..]).expect("ipv4");
    assert_eq!(usize::from(ip.total_len()), frame.len() - 14);
    assert_eq!(
        ip.header_checksum(),
        ip.to_header().calc_header_checksum(),
        "ipv4 header checksum"
    );
    ip
}

/// Checks IP and TCP checksums and lengths with etherparse; returns (seq, flags, payload).
fn check_segment(frame: &[u8]) -> (u32, u8, Vec<u8>) {
    let t = TcpFrame::parse(frame).expect("tcp segment");
    assert_eq!(t.end, frame.len());
    let tcp = TcpHeaderSlice::from_slice(&frame[t.l4..]).expect("tcp header");
    let payload = &frame[t.payload..];
    let expect = if t.v6 {
        let ip = etherparse::Ipv6HeaderSlice::from_slice(&frame[14..]).expect("ipv6");
        assert_eq!(usize::from(ip.payload_length()), frame.len() - 14 - 40);
        tcp.calc_checksum_ipv6(&ip, payload).expect("fits")
    } else {
        let ip = ipv4_checked(frame);
        tcp.calc_checksum_ipv4(&ip, payload).expect("fits")
    };
    // A computed checksum of 0 may also be written as 0xffff, its other one's-complement form:
    // the kernel's `skb_checksum_help` does so for every protocol, and so does
    // `complete_checksum`, which the tests use as the receiving kernel.
    let written = match (tcp.checksum(), expect) {
        (0xffff, 0) => 0,
        (c, _) => c,
    };
    assert_eq!(written, expect, "tcp checksum");
    (tcp.sequence_number(), frame[t.l4 + 13], payload.to_vec())
}

#[test]
fn segments_ipv4_with_options_and_flags() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let f = Flags {
        psh: true,
        fin: true,
        cwr: true,
        ece: false,
    };
    let (frame, hdr) = superframe(false, true, &payload, f, 1398);
    let mut arena = arena();
    let segs = segment(&frame, &hdr, &mut arena, HEADROOM, TAILROOM).expect("segments");
    assert_eq!(segs.count, 4);
    let mut got = Vec::new();
    let mut ids = Vec::new();
    for (i, r) in segs.frames().enumerate() {
        assert!(r.start >= i * segs.stride + HEADROOM);
        assert!(r.end + TAILROOM <= (i + 1) * segs.stride, "tailroom kept");
        let seg = &arena[r];
        let (seq, flags, p) = check_segment(seg);
        assert_eq!(seq, SEQ.wrapping_add(1398 * i as u32), "seq wraps");
        assert_eq!(flags & TCP_FIN != 0, i == 3, "FIN only on the last");
        assert_eq!(flags & TCP_PSH != 0, i == 3, "PSH only on the last");
        assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR only on the first");
        assert!(flags & TCP_ACK != 0);
        assert_eq!(p.len(), if i < 3 { 1398 } else { 5000 - 3 * 1398 });
        ids.push(u16::from_be_bytes([seg[18], seg[19]]));
        got.extend(p);
    }
    assert_eq!(got, payload);
    assert!(ids.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
}

#[test]
fn segments_ipv6_with_a_tiny_last_segment() {
    let payload = vec![0xab; 2 * 1428 + 1];
    let (frame, hdr) = superframe(true, false, &payload, Flags::default(), 1428);
    let mut arena = arena();
    let segs = segment(&frame, &hdr, &mut arena, HEADROOM, TAILROOM).expect("segments");
    assert_eq!(segs.count, 3);
    assert_eq!(segs.frame(2).len(), 14 + 40 + 20 + 1);
    for r in segs.frames() {
        check_segment(&arena[r]);
    }
}

#[test]
fn segmentation_errors() {
    let (frame, hdr) = superframe(false, false, &[1; 3000], Flags::default(), 1000);
    let mut small = vec![0u8; 3 * (HEADROOM + 54 + 1000 + TAILROOM) - 1];
    assert_eq!(
        segment(&frame, &hdr, &mut small, HEADROOM, TAILROOM),
        Err(OffloadError::NoRoom),
        "arena too small for 3 slots"
    );
    // Exactly 3 slots (each rounded up to 16 bytes) is enough.
    let stride = (HEADROOM + 54 + 1000 + TAILROOM).next_multiple_of(16);
    let mut exact = vec![0u8; 3 * stride];
    let segs = segment(&frame, &hdr, &mut exact, HEADROOM, TAILROOM).expect("3 slots fit");
    assert_eq!((segs.count, segs.stride), (3, stride));
    let mut short = vec![0u8; 3 * stride - 1];
    assert_eq!(
        segment(&frame, &hdr, &mut short, HEADROOM, TAILROOM),
        Err(OffloadError::NoRoom)
    );
    let mut arena = arena();
    let v6 = VnetHdr {
        gso_type: virtio_net::GSO_TCPV6,
        ..hdr
    };
    assert_eq!(
        segment(&frame, &v6, &mut arena, HEADROOM, TAILROOM),
        Err(OffloadError::Unsupported)
    );
    let zero = VnetHdr { gso_size: 0, ..hdr };
    assert_eq!(
        segment(&frame, &zero, &mut arena, HEADROOM, TAILROOM),
        Err(OffloadError::BadGsoSize)
    );
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
        .udp(1, 2)
        .write(&mut udp, &[0; 3000])
        .expect("fits");
    assert_eq!(
        segment(&udp, &hdr, &mut arena, HEADROOM, TAILROOM),
        Err(OffloadError::Unsupported)
    );
}

#[test]
fn empty_superframe_is_one_segment() {
    let (frame, hdr) = superframe(false, true, &[], Flags::default(), 1398);
    let mut arena = arena();
    let segs = segment(&frame, &hdr, &mut arena, HEADROOM, TAILROOM).expect("one");
    assert_eq!(segs.count, 1);
    check_segment(&arena[segs.frame(0)]);
}

#[test]
fn completes_partial_udp_and_tcp_checksums() {
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
        .udp(1000, 53)
        .write(&mut udp, b"some payload of odd length")
        .expect("fits");
    let expect = [udp[40], udp[41]];
    // pseudo-header sum: addresses, protocol, UDP length
    let pseudo = fold(sum(&udp[26..34], 17 + (udp.len() - 34) as u64));
    udp[40..42].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VnetHdr {
        flags: virtio_net::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..VnetHdr::PLAIN
    };
    complete_checksum(&mut udp, &hdr).expect("in bounds");
    assert_eq!([udp[40], udp[41]], expect);

    let (mut tcp, mut hdr) = superframe(true, true, &[5; 999], Flags::default(), 0);
    hdr.gso_type = virtio_net::GSO_NONE;
    complete_checksum(&mut tcp, &hdr).expect("in bounds");
    check_segment(&tcp);

    let far = VnetHdr {
        csum_start: 60000,
        ..hdr
    };
    assert_eq!(
        complete_checksum(&mut tcp, &far),
        Err(OffloadError::BadChecksumOffset)
    );
    let before = tcp.clone();
    complete_checksum(&mut tcp, &VnetHdr::PLAIN).expect("no-op");
    assert_eq!(tcp, before);
    // The field may be the frame's last two bytes, not one byte further.
    let mut tail = vec![0x11; 20];
    let at_end = VnetHdr {
        csum_start: 10,
        csum_offset: 8,
        ..hdr
    };
    complete_checksum(&mut tail, &at_end).expect("the last two bytes");
    // The field held the pseudo-header sum (0x1111 here), which the checksum covers.
    assert_eq!(fold(sum(&tail[10..], 0x1111)), 0xffff, "{tail:02x?}");
    let past = VnetHdr {
        csum_offset: 9,
        ..at_end
    };
    assert_eq!(
        complete_checksum(&mut tail, &past),
        Err(OffloadError::BadChecksumOffset)
    );
}

/// A frame as the kernel's vxlan device sends it over a veth: a full frame whose TCP or UDP
/// checksum field holds only the pseudo-header sum (`CHECKSUM_PARTIAL`). Returns the frame and
/// the full checksum it should have had.
fn partial_from_kernel(v6: bool, udp: bool, payload: &[u8]) -> (Vec<u8>, [u8; 2]) {
    let b = PacketBuilder::ethernet2(SRC, DST);
    let b = if v6 {
        b.ipv6([0xfd; 16], [0xfe; 16], 64)
    } else {
        b.ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
    };
    let mut frame = Vec::new();
    if udp {
        b.udp(40000, 53).write(&mut frame, payload).expect("fits");
    } else {
        b.tcp(40000, 5201, SEQ, 502)
            .ack(1)
            .write(&mut frame, payload)
            .expect("fits");
    }
    let l4 = if v6 { 54 } else { 34 };
    let at = l4 + if udp { 6 } else { 16 };
    let full = [frame[at], frame[at + 1]];
    let addrs = if v6 { 22..54 } else { 26..34 };
    let proto = if udp { 17 } else { 6 };
    let pseudo = fold(sum(&frame[addrs], proto + (frame.len() - l4) as u64));
    frame[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
    (frame, full)
}

#[test]
fn completes_what_a_checksum_offloading_sender_left_partial() {
    for (v6, udp) in [(false, false), (false, true), (true, false), (true, true)] {
        let (mut frame, full) = partial_from_kernel(v6, udp, b"partial, odd length");
        let at = if v6 { 54 } else { 34 } + if udp { 6 } else { 16 };
        assert_ne!([frame[at], frame[at + 1]], full, "v6 {v6} udp {udp}");
        assert!(complete_partial_checksum(&mut frame), "v6 {v6} udp {udp}");
        assert_eq!([frame[at], frame[at + 1]], full, "v6 {v6} udp {udp}");
        if !udp {
            check_segment(&frame);
        }
        let before = frame.clone();
        assert!(
            !complete_partial_checksum(&mut frame),
            "a full checksum is left alone"
        );
        assert_eq!(frame, before);
    }
}

#[test]
fn completion_never_makes_a_corrupt_frame_valid() {
    // A frame with a full checksum, damaged on the way: left as it is, and still invalid.
    let (mut partial, full) = partial_from_kernel(false, false, &[7; 300]);
    partial[50..52].copy_from_slice(&full);
    let mut damaged = partial.clone();
    damaged[100] ^= 0x10;
    let before = damaged.clone();
    assert!(!complete_partial_checksum(&mut damaged));
    assert_eq!(damaged, before);
    let t = TcpFrame::parse(&damaged).expect("tcp");
    assert!(!t.tcp_checksum_ok(&damaged));

    // A partial frame whose addresses were damaged: the field no longer matches the
    // pseudo-header sum, so it is not completed (the container's kernel drops it).
    let (mut partial, _) = partial_from_kernel(false, true, &[7; 300]);
    partial[29] ^= 0x01;
    let before = partial.clone();
    assert!(!complete_partial_checksum(&mut partial));
    assert_eq!(partial, before);

    // A UDP frame without a checksum (0) stays without one; a fragment is not touched.
    let (mut none, _) = partial_from_kernel(false, true, &[1; 10]);
    none[40..42].copy_from_slice(&[0, 0]);
    let before = none.clone();
    assert!(!complete_partial_checksum(&mut none));
    assert_eq!(none, before);
    let (mut fragment, _) = partial_from_kernel(false, true, &[1; 10]);
    fragment[20] = 0x20; // more fragments
    assert!(!complete_partial_checksum(&mut fragment));
}

#[test]
fn a_completed_segment_is_coalesced() {
    let mut frames: Vec<Vec<u8>> = (0..3u32)
        .map(|i| {
            let (mut f, _) = partial_from_kernel(false, false, &[i as u8; 1000]);
            let t = TcpFrame::parse(&f).expect("tcp");
            t.set_seq(&mut f, SEQ.wrapping_add(1000 * i));
            // The field is the pseudo-header sum, which the sequence number does not enter.
            f
        })
        .collect();
    let mut c = Coalescer::new();
    assert_eq!(
        c.push(1, &frames[0]),
        Push::Unsuitable,
        "a partial checksum"
    );
    for f in &mut frames {
        assert!(complete_partial_checksum(f));
    }
    let written = coalesce(&frames, 1);
    assert_eq!(written.len(), 1, "one superframe");
    let expect: Vec<u8> = (0..3u8).flat_map(|i| [i; 1000]).collect();
    assert_eq!(receive(&written), expect);
}

/// What the container's kernel would make of frames written to the TAP: checksums completed
/// per the header and checked by etherparse, each frame starting at the sequence number where
/// the previous one ended (the stream starts at [`SEQ`]); returns the TCP payload stream.
fn receive(written: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = Vec::new();
    for w in written {
        let hdr = VnetHdr::parse(w).expect("header");
        let mut frame = w[virtio_net::HEADER_LEN..].to_vec();
        complete_checksum(&mut frame, &hdr).expect("valid offsets");
        if hdr.is_gso() {
            let t = TcpFrame::parse(&frame).expect("tcp");
            assert_eq!(usize::from(hdr.hdr_len), t.payload);
            assert_eq!(usize::from(hdr.csum_start), t.l4);
            assert!(hdr.gso_size > 0);
            assert_eq!(hdr.gso() == virtio_net::GSO_TCPV6, t.v6);
        }
        let (seq, _, p) = check_segment(&frame);
        assert_eq!(
            seq,
            SEQ.wrapping_add(stream.len() as u32),
            "a frame at stream offset {} starts elsewhere",
            stream.len()
        );
        stream.extend(p);
    }
    stream
}

/// Feeds frames to a coalescer the way a worker does with what its underlay socket received; returns what it writes.
fn coalesce(frames: &[Vec<u8>], tag: u32) -> Vec<Vec<u8>> {
    let mut c = Coalescer::new();
    let mut out = Vec::new();
    let plain = |f: &[u8]| [&VnetHdr::PLAIN.to_bytes()[..], f].concat();
    for f in frames {
        match c.push(tag, f) {
            Push::Merged => {}
            Push::Busy => {
                out.extend(c.take().map(|(_, b)| b.to_vec()));
                assert_eq!(c.push(tag, f), Push::Merged, "an empty coalescer takes it");
            }
            Push::Unsuitable => {
                out.extend(c.take().map(|(_, b)| b.to_vec()));
                out.push(plain(f));
            }
        }
    }
    out.extend(c.take().map(|(_, b)| b.to_vec()));
    out
}

fn segments(frame: &[u8], hdr: &VnetHdr) -> Vec<Vec<u8>> {
    let mut arena = arena();
    let segs = segment(frame, hdr, &mut arena, HEADROOM, TAILROOM).expect("segments");
    segs.frames().map(|r| arena[r].to_vec()).collect()
}

#[test]
fn segment_then_coalesce_round_trip() {
    let payload: Vec<u8> = (0..60000u32).map(|i| (i % 251) as u8).collect();
    let f = Flags {
        psh: true,
        ..Flags::default()
    };
    let (frame, hdr) = superframe(false, true, &payload, f, 1398);
    let segs = segments(&frame, &hdr);
    let written = coalesce(&segs, 7);
    assert_eq!(written.len(), 1, "one superframe");
    let out = VnetHdr::parse(&written[0]).expect("header");
    assert_eq!(out.gso(), virtio_net::GSO_TCPV4);
    assert_eq!(out.gso_size, 1398);
    assert!(out.needs_csum());
    let t = TcpFrame::parse(&written[0][12..]).expect("tcp");
    assert!(
        written[0][12 + t.l4 + 13] & TCP_PSH != 0,
        "PSH of the last kept"
    );
    assert_eq!(receive(&written), payload);
}

#[test]
fn fin_is_written_on_its_own_after_the_run() {
    let payload = vec![9u8; 5000];
    let f = Flags {
        fin: true,
        ..Flags::default()
    };
    let (frame, hdr) = superframe(true, false, &payload, f, 1000);
    let written = coalesce(&segments(&frame, &hdr), 1);
    assert_eq!(written.len(), 2, "4 merged, then the FIN segment alone");
    assert_eq!(VnetHdr::parse(&written[1]), Ok(VnetHdr::PLAIN));
    assert_eq!(receive(&written), payload);
}

#[test]
fn a_corrupt_segment_is_not_merged() {
    let (frame, hdr) = superframe(false, false, &[3; 4000], Flags::default(), 1000);
    let mut segs = segments(&frame, &hdr);
    let last = segs[2].len() - 1;
    segs[2][last] ^= 1;
    let mut c = Coalescer::new();
    assert_eq!(c.push(0, &segs[0]), Push::Merged);
    assert_eq!(c.push(0, &segs[1]), Push::Merged);
    assert_eq!(c.push(0, &segs[2]), Push::Unsuitable);
}

/// A frame whose integrity the outer UDP checksum already vouched for is merged without its
/// TCP checksum being checked again; the rules of coalescing still apply in full.
#[test]
fn a_verified_segment_is_merged_without_its_checksum_being_checked() {
    let (frame, hdr) = superframe(false, false, &[3; 4000], Flags::default(), 1000);
    let mut segs = segments(&frame, &hdr);
    let t = TcpFrame::parse(&segs[1]).expect("tcp");
    segs[1][t.l4 + 16] ^= 0xff; // the TCP checksum field only
    let mut c = Coalescer::new();
    assert_eq!(c.push(0, &segs[0]), Push::Merged);
    assert_eq!(c.push(0, &segs[1]), Push::Unsuitable, "checked: refused");
    assert_eq!(
        c.push_verified(0, &segs[1]),
        Push::Merged,
        "verified: merged"
    );
    assert_eq!(c.push_verified(1, &segs[2]), Push::Busy, "other port");
    assert_eq!(c.push_verified(0, &segs[3]), Push::Busy, "gap in sequence");
    assert_eq!(c.push_verified(0, &segs[2]), Push::Merged);
    let (_, bytes) = c.take().expect("pending");
    assert_eq!(receive(&[bytes.to_vec()]), vec![3; 3000]);
}

#[test]
fn different_flows_and_tags_do_not_merge() {
    let (frame, hdr) = superframe(false, false, &[3; 4000], Flags::default(), 1000);
    let segs = segments(&frame, &hdr);
    let mut c = Coalescer::new();
    assert_eq!(c.push(0, &segs[0]), Push::Merged);
    assert_eq!(c.push(1, &segs[1]), Push::Busy, "other port");
    assert_eq!(c.push(0, &segs[2]), Push::Busy, "gap in sequence");
    let mut other = segs[1].clone();
    other[14 + 20 + 1] ^= 1; // source port
    let t = TcpFrame::parse(&other).expect("tcp");
    other[t.l4 + 16..t.l4 + 18].copy_from_slice(&[0, 0]);
    let acc = pseudo_sum(&other, &t, other.len() - t.l4);
    let c2 = !fold(sum(&other[t.l4..], acc));
    other[t.l4 + 16..t.l4 + 18].copy_from_slice(&c2.to_be_bytes());
    assert_eq!(c.push(0, &other), Push::Busy, "other flow");
    assert_eq!(c.push(0, &segs[1]), Push::Merged);
    let (tag, bytes) = c.take().expect("pending");
    assert_eq!(tag, 0);
    assert_eq!(receive(&[bytes.to_vec()]), vec![3; 2000]);
    assert!(c.take().is_none());
}

#[test]
fn a_single_segment_is_written_data_valid() {
    let (frame, hdr) = superframe(false, false, &[3; 100], Flags::default(), 1000);
    let segs = segments(&frame, &hdr);
    let written = coalesce(&segs, 0);
    assert_eq!(VnetHdr::parse(&written[0]), Ok(VnetHdr::DATA_VALID));
    assert_eq!(&written[0][12..], &segs[0][..]);
}

/// TCP frames whose integrity an outer checksum vouched for: their own is not checked, so a
/// test may change their headers.
const VERIFIED: Offer = Offer {
    verified: true,
    udp: false,
};

/// `segment` with its TCP flags set to `flags(old)`.
fn with_flags(mut segment: Vec<u8>, flags: impl Fn(u8) -> u8) -> Vec<u8> {
    let t = TcpFrame::parse(&segment).expect("a TCP segment");
    let new = flags(t.flags(&segment));
    t.set_flags(&mut segment, new);
    segment
}

#[test]
fn a_segment_without_ack_is_not_merged() {
    let (frame, hdr) = superframe(false, false, &[3; 2000], Flags::default(), 1000);
    let segs = segments(&frame, &hdr);
    for i in 0..2 {
        let mut c = Coalescer::new();
        let mut no_ack = segs.clone();
        no_ack[i] = with_flags(segs[i].clone(), |f| f & !TCP_ACK);
        assert_eq!(
            c.offer(0, &no_ack[0], VERIFIED),
            [Push::Unsuitable, Push::Merged][i]
        );
        let second = c.offer(0, &no_ack[1], VERIFIED);
        assert_eq!(
            second,
            [Push::Merged, Push::Unsuitable][i],
            "segment {i} without ACK"
        );
    }
}

/// `segment` with its TCP sequence number moved by `by`.
fn with_seq_moved(mut segment: Vec<u8>, by: u32) -> Vec<u8> {
    let t = TcpFrame::parse(&segment).expect("a TCP segment");
    let seq = t.seq(&segment).wrapping_add(by);
    t.set_seq(&mut segment, seq);
    segment
}

#[test]
fn a_run_closes_after_psh_or_a_short_segment() {
    let (frame, hdr) = superframe(false, false, &[4; 3000], Flags::default(), 1000);
    let segs = segments(&frame, &hdr);
    let offers = |frames: &[&Vec<u8>]| {
        let mut c = Coalescer::new();
        frames
            .iter()
            .map(|f| c.offer(0, f, VERIFIED))
            .collect::<Vec<_>>()
    };
    let all = [Push::Merged; 3];
    assert_eq!(offers(&[&segs[0], &segs[1], &segs[2]]), all);
    // PSH on a full segment ends the run.
    let psh = with_flags(segs[1].clone(), |f| f | TCP_PSH);
    let busy = [Push::Merged, Push::Merged, Push::Busy];
    assert_eq!(offers(&[&segs[0], &psh, &segs[2]]), busy);
    // So does a segment shorter than the first, without PSH: 500 bytes, then one that
    // follows it in sequence.
    let mut short = segs[1][..14 + 40 + 500].to_vec();
    short[16..18].copy_from_slice(&540u16.to_be_bytes());
    let next = with_seq_moved(segs[2].clone(), 0u32.wrapping_sub(500));
    assert_eq!(offers(&[&segs[0], &short, &next]), busy);
}

#[test]
fn a_run_stops_at_the_largest_ip_packet() {
    // 5 segments of 13 099 bytes: an IP packet of 65 535 bytes, exactly the largest.
    let (frame, hdr) = superframe(false, false, &[7; 5 * 13_099], Flags::default(), 13_099);
    let mut c = Coalescer::new();
    for s in segments(&frame, &hdr) {
        assert_eq!(c.offer(0, &s, VERIFIED), Push::Merged);
    }
    let (_, bytes) = c.take().expect("one superframe");
    assert_eq!(bytes.len(), virtio_net::HEADER_LEN + 14 + 65_535);
    // Segments of 13 100 bytes: a fifth would make it 65 540.
    let (frame, hdr) = superframe(false, false, &[7; 4 * 13_100], Flags::default(), 13_100);
    let segs = segments(&frame, &hdr);
    let mut c = Coalescer::new();
    for s in &segs {
        assert_eq!(c.offer(0, s, VERIFIED), Push::Merged);
    }
    let fifth = with_seq_moved(segs[3].clone(), 13_100);
    assert_eq!(c.offer(0, &fifth, VERIFIED), Push::Busy);
}

#[test]
fn non_tcp_is_unsuitable() {
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
        .udp(1, 2)
        .write(&mut udp, &[0; 30])
        .expect("fits");
    assert_eq!(Coalescer::new().push(0, &udp), Push::Unsuitable);
    assert_eq!(Coalescer::new().push(0, &[0; 10]), Push::Unsuitable);
}

proptest! {
    #[test]
    fn round_trip_any_shape(
        v6 in any::<bool>(),
        options in any::<bool>(),
        len in 0usize..20_000,
        mss in 536u16..1500,
        psh in any::<bool>(),
        fin in any::<bool>(),
        cwr in any::<bool>(),
        seed in any::<u8>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let f = Flags { psh, fin, cwr, ece: false };
        let (frame, hdr) = superframe(v6, options, &payload, f, mss);
        let segs = segments(&frame, &hdr);
        prop_assert_eq!(segs.len(), len.div_ceil(usize::from(mss)).max(1));
        for (i, s) in segs.iter().enumerate() {
            let (seq, _, p) = check_segment(s);
            prop_assert_eq!(seq, SEQ.wrapping_add(u32::from(mss) * i as u32));
            prop_assert_eq!(p.len(), usize::from(mss).min(len - usize::from(mss) * i));
        }
        let written = coalesce(&segs, 3);
        prop_assert_eq!(receive(&written), payload);
    }

    #[test]
    fn never_panics_on_arbitrary_input(
        mut frame in proptest::collection::vec(any::<u8>(), 0..3000),
        raw in proptest::array::uniform12(any::<u8>()),
        headroom in 0usize..100,
    ) {
        let hdr = VnetHdr::parse(&raw).expect("12 bytes");
        let mut arena = vec![0u8; 8000];
        let _ = segment(&frame, &hdr, &mut arena, headroom, 16);
        let mut c = Coalescer::new();
        let _ = c.push(0, &frame);
        let _ = c.push(0, &frame);
        let _ = c.take();
        let _ = complete_checksum(&mut frame, &hdr);
        let _ = complete_partial_checksum(&mut frame);
    }

    #[test]
    fn arbitrary_tcp_headers_never_panic(
        v6 in any::<bool>(),
        garbage in proptest::collection::vec(any::<u8>(), 60),
        len in 0usize..3000,
        mss in 1u16..2000,
    ) {
        // A well-formed frame whose TCP/IP header bytes are then overwritten at random.
        let (mut frame, mut hdr) = superframe(v6, true, &vec![1; len], Flags::default(), mss);
        let n = garbage.len().min(frame.len() - 14);
        frame[14..14 + n].copy_from_slice(&garbage[..n]);
        hdr.gso_type = if v6 { virtio_net::GSO_TCPV6 } else { virtio_net::GSO_TCPV4 };
        let mut arena = vec![0u8; 20_000];
        let _ = segment(&frame, &hdr, &mut arena, 64, 16);
        let mut c = Coalescer::new();
        let _ = c.push(0, &frame);
        let _ = c.take();
        let _ = complete_partial_checksum(&mut frame);
    }
}
