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
