//! Unit tests of the TCP/IP header helpers.

use super::*;

/// An IPv4 TCP segment with a 4-byte payload and valid checksums.
fn segment() -> Vec<u8> {
    let mut f = vec![0u8; ETH_LEN + 20 + 20 + 4];
    f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
    f[ETH_LEN] = 0x45;
    f[ETH_LEN + 8] = 64;
    f[ETH_LEN + 9] = PROTO_TCP;
    f[ETH_LEN + 12..ETH_LEN + 20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    let l4 = ETH_LEN + 20;
    f[l4 + 12] = 5 << 4;
    f[l4 + 13] = TCP_ACK;
    f[l4 + 20..].copy_from_slice(b"data");
    let t = TcpFrame {
        v6: false,
        l4,
        payload: l4 + 20,
        end: f.len(),
    };
    t.set_ip_len(&mut f);
    t.fill_ipv4_checksum(&mut f);
    t.fill_tcp_checksum(&mut f);
    f
}

#[test]
fn fields_round_trip_and_checksums_verify() {
    let mut f = segment();
    let t = TcpFrame::parse(&f).expect("tcp");
    assert_eq!((t.v6, t.l4, t.payload, t.end), (false, 34, 54, 58));
    assert!(t.tcp_checksum_ok(&f));
    t.set_seq(&mut f, 0xdead_beef);
    assert_eq!(t.seq(&f), 0xdead_beef);
    assert!(
        !t.tcp_checksum_ok(&f),
        "the checksum covers the sequence number"
    );
    t.fill_tcp_checksum(&mut f);
    assert!(t.tcp_checksum_ok(&f));
    t.set_ipv4_id(&mut f, 7);
    assert_eq!(t.ipv4_id(&f), 7);
    t.fill_ipv4_checksum(&mut f);
    assert_eq!(fold(sum(&f[ETH_LEN..t.l4], 0)), 0xffff);
    let psh = f.clone();
    t.set_flags(&mut f, TCP_ACK | TCP_PSH);
    assert!(
        t.same_flow(&psh[..t.payload], &f[..t.payload]),
        "PSH may differ"
    );
    assert!(
        t.same_flow(&f[..t.payload], &psh[..t.payload]),
        "PSH may differ, whichever segment has it"
    );
    t.set_flags(&mut f, TCP_ACK | TCP_FIN);
    assert!(!t.same_flow(&psh[..t.payload], &f[..t.payload]));
}

#[test]
fn copy_sum_copies_and_sums_like_sum() {
    // Every length up to a few words past 64, odd ones included, over bytes that carry
    // into the high half; and a segment's worth of 0xff, the sum's largest words.
    let src: Vec<u8> = (0..1500u32).map(|i| (i * 151 + 7) as u8).collect();
    let ones = vec![0xffu8; 1448];
    let cases = (0..80).map(|n| &src[..n]).chain([&src[3..], &ones[..]]);
    for data in cases {
        let mut dst = vec![0u8; data.len()];
        let s = copy_sum(&mut dst, data);
        assert_eq!(dst, data, "copied, {} bytes", data.len());
        assert_eq!(fold(s), fold(sum(data, 0)), "sum of {} bytes", data.len());
    }
}

#[test]
fn a_checksum_from_a_payload_sum_equals_the_full_one() {
    let mut f = segment();
    let t = TcpFrame::parse(&f).expect("tcp");
    let full = f.clone();
    t.set_tcp_checksum(&mut f, 0x1234);
    t.fill_tcp_checksum_with(&mut f, sum(&full[t.payload..t.end], 0));
    assert_eq!(f, full);
    assert!(t.tcp_checksum_ok(&f));
}

#[test]
fn parse_refuses_what_it_cannot_describe() {
    let f = segment();
    for len in 0..f.len() {
        assert_eq!(TcpFrame::parse(&f[..len]), None, "len {len}");
    }
    let mut udp = f.clone();
    udp[ETH_LEN + 9] = 17;
    assert_eq!(TcpFrame::parse(&udp), None);
    let mut fragment = f.clone();
    fragment[ETH_LEN + 7] = 1;
    assert_eq!(TcpFrame::parse(&fragment), None);
    let mut arp = f.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(TcpFrame::parse(&arp), None);
    // A data offset below the header's 20 bytes, and one past the packet's end (each the
    // only thing wrong).
    let mut short = f.clone();
    short[ETH_LEN + 20 + 12] = 4 << 4;
    assert_eq!(TcpFrame::parse(&short), None);
    let mut long = f.clone();
    long[ETH_LEN + 20 + 12] = 7 << 4;
    assert_eq!(
        TcpFrame::parse(&long),
        None,
        "28-byte header in a 24-byte segment"
    );
    long[ETH_LEN + 20 + 12] = 6 << 4;
    assert!(
        TcpFrame::parse(&long).is_some(),
        "24-byte header, no payload"
    );
}

/// A frame of `proto` over IPv4 (with 4 bytes of IP options) or IPv6, with a transport
/// header of `l4_len` bytes and a 4-byte payload, that parses.
fn frame(v6: bool, proto: u8, l4_len: usize) -> (Vec<u8>, L4Frame) {
    let ip_len = if v6 { IPV6_HEADER_LEN } else { 24 };
    let mut f: Vec<u8> = (0..ETH_LEN + ip_len + l4_len + 4)
        .map(|i| i as u8 | 0x20)
        .collect();
    let ip = ETH_LEN;
    if v6 {
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6);
        f[ip] = 0x60;
        f[ip + 4..ip + 6].copy_from_slice(&((l4_len + 4) as u16).to_be_bytes());
        f[ip + 6] = proto;
    } else {
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
        f[ip] = 0x46;
        f[ip + 2..ip + 4].copy_from_slice(&((ip_len + l4_len + 4) as u16).to_be_bytes());
        f[ip + 6..ip + 8].copy_from_slice(&[0x40, 0]);
        f[ip + 9] = proto;
    }
    if proto == PROTO_TCP {
        f[ip + ip_len + field::DATA_OFFSET] = ((l4_len / 4) as u8) << 4;
    }
    let l = L4Frame::parse(&f).expect("the test frame parses");
    (f, l)
}

/// Every header byte flipped in every way: the flow is the same exactly when only a field
/// that changes from segment to segment differs. `may_differ(offset from the IP header or
/// the transport header, mask)`.
fn check_same_flow(
    v6: bool,
    proto: u8,
    l4_len: usize,
    same: impl Fn(&[u8], &[u8], &[u8]) -> bool,
    l4_may_differ: impl Fn(usize, u8) -> bool,
) {
    let (a, l) = frame(v6, proto, l4_len);
    let ip_may_differ = |i: usize, mask: u8| match (v6, i) {
        (true, 4 | 5) => true,
        // total length, id, checksum; the fragment offset (zero in any frame that
        // parses: fragments are refused)
        (false, 2..=5 | 10 | 11 | 7) => true,
        (false, 6) => mask & 0xe0 == 0,
        _ => false,
    };
    let headers = l.l4 + l4_len;
    for i in 0..headers {
        for mask in [0x01, 0x08, 0x10, 0x80, 0xff] {
            let mut b = a.clone();
            b[i] ^= mask;
            let expected = match i {
                i if i < ETH_LEN => false,
                i if i < l.l4 => ip_may_differ(i - ETH_LEN, mask),
                i => l4_may_differ(i - l.l4, mask),
            };
            assert_eq!(
                same(&a, &a[..headers], &b[..headers]),
                expected,
                "v6 {v6}, proto {proto}: header byte {i} ^ {mask:#04x}"
            );
        }
    }
}

#[test]
fn same_flow_ignores_only_the_fields_that_change_per_segment() {
    // sequence number, checksum, PSH
    let tcp =
        |i: usize, mask: u8| matches!(i, 4..=7 | 16 | 17) || (i == field::FLAGS && mask == TCP_PSH);
    for v6 in [false, true] {
        // With 4 bytes of TCP options (and of IP options for IPv4).
        let same = |f: &[u8], a: &[u8], b: &[u8]| {
            let t = TcpFrame::parse(f).expect("parses");
            assert_eq!((t.v6, t.payload), (v6, a.len()));
            t.same_flow(a, b)
        };
        check_same_flow(v6, PROTO_TCP, 24, same, tcp);
    }
}

#[test]
fn same_udp_flow_ignores_only_length_and_checksums() {
    for v6 in [false, true] {
        let same = |f: &[u8], a: &[u8], b: &[u8]| {
            let l = L4Frame::parse(f).expect("parses");
            assert_eq!((l.v6, l.proto), (v6, PROTO_UDP));
            l.same_udp_flow(a, b)
        };
        check_same_flow(v6, PROTO_UDP, UDP_HEADER_LEN, same, |i, _| {
            matches!(i, 4..=7)
        });
    }
}

#[test]
fn l4_parse_refuses_each_bad_header_alone() {
    for v6 in [false, true] {
        let (f, l) = frame(v6, PROTO_UDP, UDP_HEADER_LEN);
        assert_eq!((l.v6, l.proto, l.end), (v6, PROTO_UDP, f.len()));
        let mut version = f.clone();
        version[ETH_LEN] ^= 0x30;
        assert_eq!(L4Frame::parse(&version), None, "v6 {v6}: version");
    }
    // IPv4: options (IHL 6) parse; IHL 4 does not; a total length shorter than the header.
    let (f, l) = frame(false, PROTO_UDP, UDP_HEADER_LEN);
    assert_eq!(l.l4, ETH_LEN + 24);
    let mut ihl = f.clone();
    ihl[ETH_LEN] = 0x44;
    assert_eq!(L4Frame::parse(&ihl), None, "IHL 4");
    let mut short = f.clone();
    short[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&20u16.to_be_bytes());
    assert_eq!(L4Frame::parse(&short), None, "total length 20 < IHL 24");
    // IPv6: an extension header as next header.
    let (f, _) = frame(true, PROTO_UDP, UDP_HEADER_LEN);
    let mut ext = f.clone();
    ext[ETH_LEN + 6] = 0; // hop-by-hop options
    assert_eq!(L4Frame::parse(&ext), None, "extension header");
}

#[test]
fn checksum_field_and_udp_length() {
    let (f, l) = frame(false, PROTO_UDP, UDP_HEADER_LEN);
    assert_eq!(l.checksum_field(), Some(l.l4 + 6..l.l4 + 8));
    let mut good = f.clone();
    good[l.l4 + 4..l.l4 + 6].copy_from_slice(&12u16.to_be_bytes());
    assert!(l.udp_len_ok(&good));
    good[l.l4 + 5] = 13;
    assert!(!l.udp_len_ok(&good));
    // A packet that ends inside the UDP header, whose length field says so.
    good[l.l4 + 4..l.l4 + 6].copy_from_slice(&6u16.to_be_bytes());
    assert!(
        !l.with_end(l.l4 + 6).udp_len_ok(&good),
        "6 bytes of UDP header"
    );
    let (_, t) = frame(true, PROTO_TCP, 20);
    assert_eq!(t.checksum_field(), Some(t.l4 + 16..t.l4 + 18));
    // A header too short to hold its checksum; a protocol without one here.
    assert_eq!(t.with_end(t.l4 + 17).checksum_field(), None);
    assert_eq!(L4Frame { proto: 1, ..t }.checksum_field(), None);
}

#[test]
fn ethernet_padding_is_not_payload() {
    let f = segment();
    let mut padded = f.clone();
    padded.extend_from_slice(&[0; 6]);
    let t = TcpFrame::parse(&padded).expect("a padded segment parses");
    assert_eq!((t.end, t.payload_len()), (f.len(), 4));
    assert_eq!(TcpFrame::parse(&f).map(|t| t.end), Some(f.len()));
}

#[test]
fn udp_checksum_ok_needs_a_nonzero_correct_checksum() {
    for v6 in [false, true] {
        let (mut f, l) = frame(v6, PROTO_UDP, UDP_HEADER_LEN);
        let payload = l.l4 + UDP_HEADER_LEN..l.end;
        let payload_sum = sum(&f[payload], 0);
        l.fill_udp_len_and_checksum_with(&mut f, payload_sum);
        assert!(l.udp_checksum_ok(&f), "v6 {v6}: a filled checksum verifies");
        let mut wrong = f.clone();
        wrong[l.end - 1] ^= 0x01;
        assert!(
            !l.udp_checksum_ok(&wrong),
            "v6 {v6}: a changed payload byte"
        );
        let mut none = f.clone();
        none[l.l4 + UDP_CHECKSUM_OFFSET..l.l4 + UDP_HEADER_LEN].copy_from_slice(&[0, 0]);
        assert!(!l.udp_checksum_ok(&none), "v6 {v6}: checksum 0 is none");
        // A datagram whose checksum computes to 0 is sent as 0xffff (RFC 768); the same
        // datagram with 0 in the field has no checksum, although its sum adds up.
        let mut zero = none.clone();
        let w = l.l4 + UDP_HEADER_LEN;
        let folded = fold(sum(&zero[l.l4..l.end], l.pseudo_sum(&zero)));
        let word = u64::from(u16::from_be_bytes([zero[w], zero[w + 1]]));
        let adjusted = fold(word + u64::from(0xffff - folded));
        zero[w..w + 2].copy_from_slice(&adjusted.to_be_bytes());
        assert_eq!(fold(sum(&zero[l.l4..l.end], l.pseudo_sum(&zero))), 0xffff);
        assert!(
            !l.udp_checksum_ok(&zero),
            "v6 {v6}: 0 means none, sum or not"
        );
        let mut ones = zero.clone();
        l.fill_udp_len_and_checksum_with(&mut ones, sum(&zero[w..l.end], 0));
        assert_eq!(ones[l.l4 + UDP_CHECKSUM_OFFSET..w], [0xff, 0xff]);
        assert!(
            l.udp_checksum_ok(&ones),
            "v6 {v6}: 0xffff is a checksum of 0"
        );
        // A frame cut inside its checksum field.
        let cut = &f[..l.l4 + UDP_CHECKSUM_OFFSET + 1];
        assert!(!l.with_end(cut.len()).udp_checksum_ok(cut), "v6 {v6}: cut");
    }
}
