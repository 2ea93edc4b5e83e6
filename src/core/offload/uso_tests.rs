//! UDP segmentation (USO, `GSO_UDP_L4`). Checksums and lengths are checked with etherparse's own
//! implementation, never with ours.

use super::*;
use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, PacketBuilder, UdpHeaderSlice};
use proptest::prelude::*;

const HEADROOM: usize = 64;
const TAILROOM: usize = 16;

/// A UDP superframe as a TAP with USO hands it over: full headers, the UDP length of the whole
/// superframe, a partial checksum (the pseudo-header sum), `gso_type` UDP_L4.
fn udp_superframe(v6: bool, payload: &[u8], mss: u16) -> (Vec<u8>, VnetHdr) {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let b = if v6 {
        b.ipv6([0xfd; 16], [0xfe; 16], 64)
    } else {
        b.ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
    };
    let mut frame = Vec::new();
    b.udp(4433, 443).write(&mut frame, payload).expect("fits");
    if !v6 {
        // A nonzero identification, so the increments are visible.
        frame[18..20].copy_from_slice(&0xfffeu16.to_be_bytes());
        let ip = Ipv4HeaderSlice::from_slice(&frame[14..])
            .expect("ipv4")
            .to_header();
        let c = ip.calc_header_checksum();
        frame[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let u = L4Frame::parse(&frame).expect("udp");
    let partial = fold(u.pseudo_sum(&frame));
    frame[u.l4 + 6..u.l4 + 8].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: virtio_net::F_NEEDS_CSUM,
        gso_type: virtio_net::GSO_UDP_L4,
        hdr_len: (u.l4 + 8) as u16,
        gso_size: mss,
        csum_start: u.l4 as u16,
        csum_offset: 6,
        num_buffers: 0,
    };
    (frame, hdr)
}

/// Checks one datagram's IP and UDP lengths and checksums with etherparse; returns its IPv4
/// identification (0 for IPv6), its ports and its payload.
fn check_datagram(frame: &[u8]) -> (u16, (u16, u16), Vec<u8>) {
    let u = L4Frame::parse(frame).expect("ip");
    assert_eq!((u.proto, u.end), (17, frame.len()), "a whole UDP datagram");
    let udp = UdpHeaderSlice::from_slice(&frame[u.l4..]).expect("udp header");
    let payload = &frame[u.l4 + 8..];
    assert_eq!(usize::from(udp.length()), frame.len() - u.l4, "udp length");
    let (id, expect) = if u.v6 {
        let ip = Ipv6HeaderSlice::from_slice(&frame[14..]).expect("ipv6");
        assert_eq!(usize::from(ip.payload_length()), frame.len() - 14 - 40);
        (
            0,
            udp.to_header().calc_checksum_ipv6(&ip.to_header(), payload),
        )
    } else {
        let ip = super::tests::ipv4_checked(frame);
        (
            ip.identification(),
            udp.to_header().calc_checksum_ipv4(&ip.to_header(), payload),
        )
    };
    assert_eq!(udp.checksum(), expect.expect("fits"), "udp checksum");
    (
        id,
        (udp.source_port(), udp.destination_port()),
        payload.to_vec(),
    )
}

fn datagrams(frame: &[u8], hdr: &VnetHdr) -> Vec<Vec<u8>> {
    let mut arena = vec![0u8; 256 * 1024];
    let segs = segment(frame, hdr, &mut arena, HEADROOM, TAILROOM).expect("segments");
    for (i, r) in segs.frames().enumerate() {
        assert!(r.start >= i * segs.stride + HEADROOM, "headroom kept");
        assert!(r.end + TAILROOM <= (i + 1) * segs.stride, "tailroom kept");
    }
    segs.frames().map(|r| arena[r].to_vec()).collect()
}

#[test]
fn a_udp_superframe_is_cut_into_datagrams_like_the_kernels() {
    for v6 in [false, true] {
        let payload: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
        let (frame, hdr) = udp_superframe(v6, &payload, 1400);
        let got = datagrams(&frame, &hdr);
        assert_eq!(got.len(), 4, "v6 {v6}");
        let mut joined = Vec::new();
        for (i, d) in got.iter().enumerate() {
            let (id, ports, p) = check_datagram(d);
            assert_eq!(ports, (4433, 443));
            assert_eq!(p.len(), if i < 3 { 1400 } else { 5000 - 3 * 1400 });
            let want_id = if v6 {
                0
            } else {
                0xfffeu16.wrapping_add(i as u16)
            };
            assert_eq!(id, want_id, "ids count up from the superframe's, wrapping");
            assert_eq!(d[..14], frame[..14], "same Ethernet header");
            joined.extend(p);
        }
        assert_eq!(joined, payload, "v6 {v6}");
    }
}

#[test]
fn an_empty_or_short_udp_superframe_is_one_datagram() {
    for payload in [&[][..], &[7u8; 100][..]] {
        let (frame, hdr) = udp_superframe(false, payload, 1400);
        let got = datagrams(&frame, &hdr);
        assert_eq!(got.len(), 1);
        assert_eq!(check_datagram(&got[0]).2, payload);
    }
}

#[test]
fn a_udp_checksum_of_zero_is_sent_as_all_ones() {
    // Vary the last two payload bytes until the checksum computes to 0, which UDP must send as
    // 0xffff (0 means "no checksum"): some value in 0..=0xffff does it.
    let mut payload = vec![0x5a; 64];
    let found = (0..=u16::MAX).find_map(|x| {
        payload[62..].copy_from_slice(&x.to_be_bytes());
        let (frame, hdr) = udp_superframe(false, &payload, 1400);
        let d = datagrams(&frame, &hdr).remove(0);
        let l4 = 14 + 20;
        (d[l4 + 6..l4 + 8] == [0xff, 0xff]).then_some(d)
    });
    let d = found.expect("a payload whose checksum computes to zero");
    assert_eq!(check_datagram(&d).2, payload);
}

#[test]
fn udp_segmentation_errors() {
    let (frame, hdr) = udp_superframe(false, &[1; 3000], 1000);
    let mut arena = vec![0u8; 256 * 1024];
    let zero = VnetHdr { gso_size: 0, ..hdr };
    assert_eq!(
        segment(&frame, &zero, &mut arena, HEADROOM, TAILROOM),
        Err(OffloadError::BadGsoSize)
    );
    let mut small = vec![0u8; 3 * (HEADROOM + 42 + 1000 + TAILROOM) - 1];
    assert_eq!(
        segment(&frame, &hdr, &mut small, HEADROOM, TAILROOM),
        Err(OffloadError::NoRoom)
    );
    // A TCP frame is not UDP, whatever the header says.
    let mut tcp = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
        .tcp(1, 2, 0, 100)
        .write(&mut tcp, &[0; 3000])
        .expect("fits");
    assert_eq!(
        segment(&tcp, &hdr, &mut arena, HEADROOM, TAILROOM),
        Err(OffloadError::Unsupported)
    );
    // An IP packet that ends inside the UDP header.
    let mut cut = frame[..14 + 20 + 4].to_vec();
    cut[16..18].copy_from_slice(&24u16.to_be_bytes());
    assert_eq!(
        segment(&cut, &hdr, &mut arena, HEADROOM, TAILROOM),
        Err(OffloadError::Truncated)
    );
}

proptest! {
    #[test]
    fn any_udp_superframe_round_trips(
        v6 in any::<bool>(),
        len in 0usize..20_000,
        mss in 16u16..1500,
        seed in any::<u8>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(29) ^ seed).collect();
        let (frame, hdr) = udp_superframe(v6, &payload, mss);
        let mut arena = vec![0u8; 1 << 20];
        let segs = segment(&frame, &hdr, &mut arena, HEADROOM, TAILROOM);
        let segs = segs.expect("fits a 1 MiB arena");
        prop_assert_eq!(segs.count, len.div_ceil(usize::from(mss)).max(1));
        let mut joined = Vec::new();
        for r in segs.frames() {
            let (_, _, p) = check_datagram(&arena[r]);
            prop_assert!(p.len() <= usize::from(mss));
            joined.extend(p);
        }
        prop_assert_eq!(joined, payload);
    }
}

// ---- coalescing UDP (GRO towards a TAP with USO) ----

const UDP: Offer = Offer {
    verified: false,
    udp: true,
};

/// Offers every frame, taking the pending superframe whenever the coalescer is busy; returns
/// the written superframes' virtio-net headers and frames.
fn coalesce_udp(frames: &[Vec<u8>], how: Offer) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut c = Coalescer::new();
    let mut out = Vec::new();
    let take = |c: &mut Coalescer, out: &mut Vec<(VnetHdr, Vec<u8>)>| {
        if let Some((_, bytes)) = c.take() {
            let (h, f) = bytes.split_at(virtio_net::HEADER_LEN);
            out.push((VnetHdr::parse(h).expect("header"), f.to_vec()));
        }
    };
    for f in frames {
        match c.offer(7, f, how) {
            Push::Merged => {}
            Push::Busy => {
                take(&mut c, &mut out);
                assert_eq!(c.offer(7, f, how), Push::Merged, "merges after a take");
            }
            Push::Unsuitable => {
                take(&mut c, &mut out);
                out.push((VnetHdr::PLAIN, f.clone()));
            }
        }
    }
    take(&mut c, &mut out);
    out
}

#[test]
fn consecutive_datagrams_coalesce_into_a_udp_superframe_that_cuts_back_to_them() {
    for v6 in [false, true] {
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        let (frame, hdr) = udp_superframe(v6, &payload, 1400);
        let sent = datagrams(&frame, &hdr);
        let written = coalesce_udp(&sent, UDP);
        assert_eq!(written.len(), 1, "one superframe (v6 {v6})");
        let (vnet, mut superframe) = written[0].clone();
        assert_eq!(
            (vnet.gso_type, vnet.gso_size, vnet.flags),
            (virtio_net::GSO_UDP_L4, 1400, virtio_net::F_NEEDS_CSUM)
        );
        assert_eq!(usize::from(vnet.hdr_len), superframe.len() - 20_000);
        // What the container's kernel does with it: cut it back into the same datagrams.
        assert_eq!(datagrams(&superframe, &vnet), sent, "v6 {v6}");
        // And the partial checksum, completed, is the whole superframe's UDP checksum.
        complete_checksum(&mut superframe, &vnet).expect("in range");
        let (_, _, p) = check_datagram(&superframe);
        assert_eq!(p, payload);
    }
}

#[test]
fn udp_is_coalesced_only_for_a_tap_that_takes_it() {
    let (frame, hdr) = udp_superframe(false, &[3; 3000], 1000);
    let sent = datagrams(&frame, &hdr);
    let tcp_only = Offer {
        verified: false,
        udp: false,
    };
    let written = coalesce_udp(&sent, tcp_only);
    assert_eq!(written.len(), 3);
    assert!(written.iter().all(|(h, _)| *h == VnetHdr::PLAIN));
    let one = coalesce_udp(&sent[..1], UDP);
    assert_eq!(
        one,
        [(VnetHdr::DATA_VALID, sent[0].clone())],
        "a lone datagram"
    );
}

#[test]
fn a_udp_run_ends_where_the_kernels_would() {
    let (frame, hdr) = udp_superframe(false, &[5; 3500], 1000);
    let mut sent = datagrams(&frame, &hdr);
    // 1000, 1000, 1000, 500: the short one closes the run; another 1000 starts a new one.
    sent.push(sent[0].clone());
    let written = coalesce_udp(&sent, UDP);
    let sizes: Vec<usize> = written.iter().map(|(_, f)| f.len() - 42).collect();
    assert_eq!(sizes, [3500, 1000]);
    let mut co = Coalescer::new();
    assert_eq!(co.offer(7, &sent[0], UDP), Push::Merged);
    // A longer datagram than the first does not join.
    let (long, hdr) = udp_superframe(false, &[5; 1200], 1400);
    let long = datagrams(&long, &hdr).remove(0);
    assert_eq!(co.offer(7, &long, UDP), Push::Busy, "longer than the first");
    // Another flow (other source port; its checksum is then wrong, so offered as verified).
    let mut other = sent[1].clone();
    other[34..36].copy_from_slice(&4434u16.to_be_bytes());
    let verified = Offer {
        verified: true,
        udp: true,
    };
    assert_eq!(co.offer(7, &other, verified), Push::Busy, "another flow");
    assert_eq!(co.offer(8, &sent[1], UDP), Push::Busy, "another port");
    assert_eq!(
        co.offer(7, &sent[1], UDP),
        Push::Merged,
        "and the flow's next one joins"
    );
    // At most 64 datagrams in one superframe, however small.
    let (frame, hdr) = udp_superframe(false, &[9; 70 * 16], 16);
    let small = datagrams(&frame, &hdr);
    let written = coalesce_udp(&small, UDP);
    let counts: Vec<usize> = written.iter().map(|(_, f)| (f.len() - 42) / 16).collect();
    assert_eq!(counts, [64, 6]);
}

#[test]
fn unverifiable_or_malformed_datagrams_are_not_coalesced() {
    let (frame, hdr) = udp_superframe(false, &[1; 2000], 1000);
    let sent = datagrams(&frame, &hdr);
    let mut bad = sent[1].clone();
    *bad.last_mut().expect("payload") ^= 1;
    let mut c = Coalescer::new();
    assert_eq!(c.offer(7, &sent[0], UDP), Push::Merged);
    assert_eq!(c.offer(7, &bad, UDP), Push::Unsuitable, "wrong checksum");
    let verified = Offer {
        verified: true,
        udp: true,
    };
    assert_eq!(
        c.offer(7, &bad, verified),
        Push::Merged,
        "covered by the outer checksum"
    );
    // No checksum (0): nothing to verify it with.
    let mut none = sent[1].clone();
    none[40..42].copy_from_slice(&[0, 0]);
    assert_eq!(Coalescer::new().offer(7, &none, UDP), Push::Unsuitable);
    assert_eq!(Coalescer::new().offer(7, &none, verified), Push::Merged);
    // A UDP length that disagrees with the IP length.
    let mut short = sent[1].clone();
    short[38..40].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(
        Coalescer::new().offer(7, &short, verified),
        Push::Unsuitable
    );
    // TCP pending, then UDP (and the other way round): busy, never mixed.
    let mut tcp = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
        .tcp(1, 2, 0, 100)
        .ack(1)
        .write(&mut tcp, &[0; 1000])
        .expect("fits");
    let mut c = Coalescer::new();
    assert_eq!(c.offer(7, &tcp, UDP), Push::Merged);
    assert_eq!(c.offer(7, &sent[0], UDP), Push::Busy);
    let mut c = Coalescer::new();
    assert_eq!(c.offer(7, &sent[0], UDP), Push::Merged);
    assert_eq!(c.offer(7, &tcp, UDP), Push::Busy);
}
