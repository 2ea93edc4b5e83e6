//! Ethernet + IPv4/IPv6 + TCP headers, as the offloads (`core::offload`) read and rewrite them:
//! where the fields are, and the RFC 1071 checksums.
//!
//! Not a `Packet<T>` view: segmentation parses one superframe's headers once and then writes
//! them into many segments of different lengths, so [`TcpFrame`] is a parsed *layout* (offsets,
//! IP version) whose accessors take the bytes they apply to. [`TcpFrame::parse`] is the checked
//! constructor: it never panics, and returns `None` for anything but an untagged Ethernet frame
//! with one well-formed TCP segment.
//!
//! # Panics
//!
//! The accessors index the bytes at the layout's offsets: they do not panic on the frame the
//! layout was parsed from, nor on any frame with the same headers that is at least
//! [`TcpFrame::payload`] bytes long (for the setters of lengths and checksums, exactly
//! [`TcpFrame::end`] bytes, see [`TcpFrame::with_end`]). Anything else is a caller bug.

use core::ops::Range;

use super::ethernet::HEADER_LEN as ETH_LEN;

pub const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
pub const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;
/// Offset of the checksum inside the TCP header.
pub const TCP_CHECKSUM_OFFSET: usize = 16;
/// Offset of the checksum inside the UDP header.
pub const UDP_CHECKSUM_OFFSET: usize = 6;
/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// The largest IP packet (IPv4 total length, IPv6 payload length + 40 both stay under this).
pub const MAX_IP_LEN: usize = 65_535;

const IPV6_HEADER_LEN: usize = 40;

mod field {
    use core::ops::Range;

    // IPv4, from the start of the IP header.
    pub const V4_TOTAL_LEN: Range<usize> = 2..4;
    pub const V4_ID: Range<usize> = 4..6;
    pub const V4_CHECKSUM: Range<usize> = 10..12;
    pub const V4_ADDRS: Range<usize> = 12..20;
    // IPv6, from the start of the IP header.
    pub const V6_PAYLOAD_LEN: Range<usize> = 4..6;
    pub const V6_ADDRS: Range<usize> = 8..40;
    // TCP, from the start of the TCP header.
    pub const SEQ: Range<usize> = 4..8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
}

/// Where the headers of an Ethernet + IPv4/IPv6 + TCP frame lie (offsets from the frame start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFrame {
    pub v6: bool,
    /// Start of the TCP header (= Ethernet + IP header length).
    pub l4: usize,
    /// Start of the TCP payload.
    pub payload: usize,
    /// End of the IP packet; bytes after it are Ethernet padding.
    pub end: usize,
}

impl TcpFrame {
    /// Finds the TCP segment in an untagged Ethernet frame. `None` for anything else: non-IP,
    /// non-TCP, IPv4 fragments, IPv6 extension headers, inconsistent lengths.
    pub fn parse(frame: &[u8]) -> Option<TcpFrame> {
        let L4Frame { v6, proto, l4, end } = L4Frame::parse(frame)?;
        if proto != PROTO_TCP {
            return None;
        }
        let doff = usize::from(*frame.get(l4 + field::DATA_OFFSET)? >> 4) * 4;
        let payload = l4 + doff;
        // (`L4Frame::parse` has checked that `end` lies within the frame.)
        if doff < 20 || payload > end {
            return None;
        }
        Some(TcpFrame {
            v6,
            l4,
            payload,
            end,
        })
    }

    pub fn payload_len(&self) -> usize {
        self.end - self.payload
    }

    /// The same headers in a frame whose IP packet ends at `end` (a segment cut from this
    /// frame, or several merged into one).
    pub fn with_end(self, end: usize) -> TcpFrame {
        TcpFrame { end, ..self }
    }

    fn tcp(&self, f: Range<usize>) -> Range<usize> {
        self.l4 + f.start..self.l4 + f.end
    }

    fn ip(f: Range<usize>) -> Range<usize> {
        ETH_LEN + f.start..ETH_LEN + f.end
    }

    pub fn seq(&self, frame: &[u8]) -> u32 {
        let b = &frame[self.tcp(field::SEQ)];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn set_seq(&self, frame: &mut [u8], seq: u32) {
        frame[self.tcp(field::SEQ)].copy_from_slice(&seq.to_be_bytes());
    }

    pub fn flags(&self, frame: &[u8]) -> u8 {
        frame[self.l4 + field::FLAGS]
    }

    pub fn set_flags(&self, frame: &mut [u8], flags: u8) {
        frame[self.l4 + field::FLAGS] = flags;
    }

    /// The IP layer of this layout (the IP helpers live there, shared with UDP).
    pub fn ip_layer(&self) -> L4Frame {
        L4Frame {
            v6: self.v6,
            proto: PROTO_TCP,
            l4: self.l4,
            end: self.end,
        }
    }

    /// The IPv4 identification (0 for IPv6, which has none outside fragments).
    pub fn ipv4_id(&self, frame: &[u8]) -> u16 {
        self.ip_layer().ipv4_id(frame)
    }

    pub fn set_ipv4_id(&self, frame: &mut [u8], id: u16) {
        self.ip_layer().set_ipv4_id(frame, id);
    }

    /// Writes the IP length fields for an IP packet ending at [`TcpFrame::end`]: IPv4 total
    /// length, or IPv6 payload length.
    pub fn set_ip_len(&self, frame: &mut [u8]) {
        self.ip_layer().set_ip_len(frame);
    }

    /// Computes the IPv4 header checksum in place (nothing for IPv6, which has none).
    pub fn fill_ipv4_checksum(&self, frame: &mut [u8]) {
        self.ip_layer().fill_ipv4_checksum(frame);
    }

    /// Writes `value` into the TCP checksum field.
    pub fn set_tcp_checksum(&self, frame: &mut [u8], value: u16) {
        let at = self.l4 + TCP_CHECKSUM_OFFSET;
        frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes the full TCP checksum of the segment `l4..end` in place.
    pub fn fill_tcp_checksum(&self, frame: &mut [u8]) {
        let payload_sum = sum(&frame[self.payload..self.end], 0);
        self.fill_tcp_checksum_with(frame, payload_sum);
    }

    /// Computes the full TCP checksum in place from the headers and `payload_sum`, a sum
    /// (congruent to [`sum`]) of the payload `payload..end` computed elsewhere, e.g. by
    /// [`copy_sum`] while the payload was copied in: the payload is not read again.
    pub fn fill_tcp_checksum_with(&self, frame: &mut [u8], payload_sum: u64) {
        self.set_tcp_checksum(frame, 0);
        let acc = pseudo_sum(frame, self, self.end - self.l4) + payload_sum;
        // The TCP header's length is a multiple of 4, so the payload starts at an even offset
        // of the segment and its sum adds to the header's without realignment.
        let c = !fold(sum(&frame[self.l4..self.payload], acc));
        self.set_tcp_checksum(frame, c);
    }

    /// Whether the TCP checksum of the segment is correct.
    pub fn tcp_checksum_ok(&self, frame: &[u8]) -> bool {
        let acc = pseudo_sum(frame, self, self.end - self.l4);
        fold(sum(&frame[self.l4..self.end], acc)) == 0xffff
    }

    /// Whether the headers `b` (of a segment that continues `a` in sequence) are those of the
    /// same flow: everything equal except the fields that legitimately change from segment to
    /// segment (IP length, id and checksum; TCP sequence number, checksum and PSH). Both are
    /// header bytes (`..payload`) with this layout.
    pub fn same_flow(&self, a: &[u8], b: &[u8]) -> bool {
        let same = |r: Range<usize>| a.get(r.clone()) == b.get(r);
        let byte = |i: usize| (a.get(i).copied(), b.get(i).copied());
        let ip_ok = same_ip_headers(self.v6, self.l4, a, b);
        let l4 = self.l4;
        let (fa, fb) = byte(l4 + field::FLAGS);
        ip_ok
            // ports; ack number
            && same(l4..l4 + 4)
            && same(l4 + 8..l4 + 12)
            // data offset; flags but PSH; window; urgent pointer; options
            && byte(l4 + field::DATA_OFFSET).0 == byte(l4 + field::DATA_OFFSET).1
            && fa.map(|f| f | TCP_PSH) == fb.map(|f| f | TCP_PSH)
            && same(l4 + 14..l4 + 16)
            && same(l4 + 18..self.payload)
    }
}

/// Whether the Ethernet and IP headers (up to `l4`) of `a` and `b` are those of one flow: equal
/// except the fields that change from segment to segment (IP length, id and checksum).
fn same_ip_headers(v6: bool, l4: usize, a: &[u8], b: &[u8]) -> bool {
    let ip = ETH_LEN;
    let same = |r: Range<usize>| a.get(r.clone()) == b.get(r);
    let ip_ok = if v6 {
        // version, traffic class, flow label; next header, hop limit; addresses
        same(ip..ip + 4) && same(ip + 6..ip + IPV6_HEADER_LEN)
    } else {
        // version/IHL, ToS; DF; TTL, protocol; addresses; options
        let flags = |f: &[u8]| f.get(ip + 6).map(|f| f & 0xe0);
        same(ip..ip + 2) && flags(a) == flags(b) && same(ip + 8..ip + 10) && same(ip + 12..l4)
    };
    ip_ok && same(0..ETH_LEN)
}

/// Where the transport header of an untagged Ethernet + IPv4/IPv6 frame lies, whatever the
/// transport: the part of the parse that TCP and UDP share (offsets from the frame start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Frame {
    pub v6: bool,
    /// The IP protocol (IPv4) or next header (IPv6).
    pub proto: u8,
    /// Start of the transport header.
    pub l4: usize,
    /// End of the IP packet; bytes after it are Ethernet padding.
    pub end: usize,
}

impl L4Frame {
    /// `None` for non-IP frames, IPv4 fragments (the transport header is in the first one
    /// only, and its checksum covers all of them), IPv6 extension headers (then `proto` would
    /// not be the transport) and lengths that do not fit the frame.
    pub fn parse(frame: &[u8]) -> Option<L4Frame> {
        let ethertype = frame.get(12..14)?;
        let ip = frame.get(ETH_LEN..)?;
        let (v6, proto, ip_hl, ip_len) = if ethertype == ETHERTYPE_IPV4 {
            let h = ip.get(..20)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            if h[0] >> 4 != 4 || ihl < 20 || fragment {
                return None;
            }
            (
                false,
                h[9],
                ihl,
                usize::from(u16::from_be_bytes([h[2], h[3]])),
            )
        } else if ethertype == ETHERTYPE_IPV6 {
            let h = ip.get(..IPV6_HEADER_LEN)?;
            if h[0] >> 4 != 6 || !matches!(h[6], PROTO_TCP | PROTO_UDP) {
                return None;
            }
            let len = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
            (true, h[6], IPV6_HEADER_LEN, len)
        } else {
            return None;
        };
        let l4 = ETH_LEN + ip_hl;
        let end = ETH_LEN + ip_len;
        (l4 <= end && end <= frame.len()).then_some(L4Frame { v6, proto, l4, end })
    }

    /// Where the transport checksum lies, for TCP and UDP (whose headers are long enough to
    /// hold it); `None` for other protocols.
    pub fn checksum_field(&self) -> Option<Range<usize>> {
        let at = match self.proto {
            PROTO_TCP => self.l4 + TCP_CHECKSUM_OFFSET,
            PROTO_UDP => self.l4 + UDP_CHECKSUM_OFFSET,
            _ => return None,
        };
        (at + 2 <= self.end).then_some(at..at + 2)
    }

    /// The pseudo-header sum (addresses, protocol, transport length) of this frame's segment.
    pub fn pseudo_sum(&self, frame: &[u8]) -> u64 {
        addresses_sum(frame, self.v6, self.proto, self.end - self.l4)
    }

    /// The same headers in a frame whose IP packet ends at `end` (a segment cut from this one).
    pub fn with_end(self, end: usize) -> L4Frame {
        L4Frame { end, ..self }
    }

    /// The IPv4 identification (0 for IPv6, which has none outside fragments).
    pub fn ipv4_id(&self, frame: &[u8]) -> u16 {
        if self.v6 {
            return 0;
        }
        let b = &frame[TcpFrame::ip(field::V4_ID)];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn set_ipv4_id(&self, frame: &mut [u8], id: u16) {
        if !self.v6 {
            frame[TcpFrame::ip(field::V4_ID)].copy_from_slice(&id.to_be_bytes());
        }
    }

    /// Writes the IP length fields for an IP packet ending at [`L4Frame::end`]: IPv4 total
    /// length, or IPv6 payload length.
    pub fn set_ip_len(&self, frame: &mut [u8]) {
        let ip_len = self.end - ETH_LEN;
        if self.v6 {
            let len = (ip_len - IPV6_HEADER_LEN) as u16;
            frame[TcpFrame::ip(field::V6_PAYLOAD_LEN)].copy_from_slice(&len.to_be_bytes());
        } else {
            frame[TcpFrame::ip(field::V4_TOTAL_LEN)]
                .copy_from_slice(&(ip_len as u16).to_be_bytes());
        }
    }

    /// Computes the IPv4 header checksum in place (nothing for IPv6, which has none).
    pub fn fill_ipv4_checksum(&self, frame: &mut [u8]) {
        if self.v6 {
            return;
        }
        let ip = &mut frame[ETH_LEN..self.l4];
        ip[field::V4_CHECKSUM].copy_from_slice(&[0, 0]);
        let c = !fold(sum(ip, 0));
        ip[field::V4_CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    /// For a UDP datagram: whether its UDP length field matches the IP packet's (so `l4 +
    /// UDP_HEADER_LEN..end` is exactly its payload).
    pub fn udp_len_ok(&self, frame: &[u8]) -> bool {
        let at = self.l4 + 4;
        self.l4 + UDP_HEADER_LEN <= self.end
            && frame.get(at..at + 2) == Some(&((self.end - self.l4) as u16).to_be_bytes()[..])
    }

    /// For a UDP datagram: whether it carries a checksum (nonzero) and it is correct.
    pub fn udp_checksum_ok(&self, frame: &[u8]) -> bool {
        let at = self.l4 + UDP_CHECKSUM_OFFSET;
        frame.get(at..at + 2).is_some_and(|c| c != [0, 0])
            && fold(sum(&frame[self.l4..self.end], self.pseudo_sum(frame))) == 0xffff
    }

    /// Whether the headers `b` (of a datagram after `a`) are those of the same UDP flow: the
    /// same Ethernet and IP headers (but for length, id and checksum) and the same ports.
    pub fn same_udp_flow(&self, a: &[u8], b: &[u8]) -> bool {
        let ports = self.l4..self.l4 + 4;
        same_ip_headers(self.v6, self.l4, a, b) && a.get(ports.clone()) == b.get(ports)
    }

    /// For a UDP superframe ending at [`L4Frame::end`]: writes its UDP length, and the
    /// pseudo-header sum into its checksum field, as a partial checksum (`NEEDS_CSUM`) wants.
    pub fn set_udp_len_and_partial_checksum(&self, frame: &mut [u8]) {
        let at = self.l4 + 4;
        frame[at..at + 2].copy_from_slice(&((self.end - self.l4) as u16).to_be_bytes());
        let partial = fold(self.pseudo_sum(frame));
        let at = self.l4 + UDP_CHECKSUM_OFFSET;
        frame[at..at + 2].copy_from_slice(&partial.to_be_bytes());
    }

    /// For a UDP datagram ending at [`L4Frame::end`]: writes its UDP length, then its full
    /// checksum from the header and `payload_sum`, a sum (congruent to [`sum`]) of the payload
    /// `l4 + UDP_HEADER_LEN..end` computed elsewhere (by [`copy_sum`] while it was copied in).
    /// A checksum that comes out 0 is sent as 0xffff: 0 means "none" in UDP (RFC 768), and IPv6
    /// requires one (RFC 8200 §8.1).
    pub fn fill_udp_len_and_checksum_with(&self, frame: &mut [u8], payload_sum: u64) {
        let udp = self.l4..self.l4 + UDP_HEADER_LEN;
        let len = (self.end - self.l4) as u16;
        frame[udp.start + 4..udp.start + 6].copy_from_slice(&len.to_be_bytes());
        frame[udp.start + UDP_CHECKSUM_OFFSET..udp.end].copy_from_slice(&[0, 0]);
        // The UDP header is 8 bytes, so the payload's sum adds to the header's as it is.
        let acc = self.pseudo_sum(frame) + payload_sum;
        let c = match !fold(sum(&frame[udp.clone()], acc)) {
            0 => 0xffff,
            c => c,
        };
        frame[udp.start + UDP_CHECKSUM_OFFSET..udp.end].copy_from_slice(&c.to_be_bytes());
    }
}

// ---- checksums (RFC 1071) ----

/// Adds `data` to a one's-complement sum kept in a `u64` (fold with [`fold`]). Big-endian
/// 32-bit words summed into 64 bits cannot overflow for any frame and vectorise well; the end
/// result is congruent to the 16-bit sum.
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

/// Copies `src` into `dst` (of the same length) and returns the sum of the bytes, congruent to
/// `sum(src, 0)`: one pass over the data instead of a copy and then a [`sum`], as the kernel's
/// `csum_partial_copy` does. Words are added in native byte order, which needs no byte swap in
/// the loop; the one's complement sum does not depend on byte order except for a swap of the
/// folded result (RFC 1071 §2 B), done once at the end.
///
/// # Panics
///
/// If the lengths differ (a caller bug).
pub fn copy_sum(dst: &mut [u8], src: &[u8]) -> u64 {
    assert_eq!(
        dst.len(),
        src.len(),
        "copy_sum of slices of different lengths"
    );
    let mut acc = 0u64;
    let mut to = dst.chunks_exact_mut(4);
    let mut from = src.chunks_exact(4);
    for (d, s) in (&mut to).zip(&mut from) {
        let w = [s[0], s[1], s[2], s[3]];
        d.copy_from_slice(&w);
        acc += u64::from(u32::from_ne_bytes(w));
    }
    let rest = from.remainder();
    to.into_remainder().copy_from_slice(rest);
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_ne_bytes(tail));
    let folded = fold(acc);
    u64::from(if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    })
}

/// Folds a sum from [`sum`] to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The TCP pseudo-header sum for a TCP segment of `tcp_len` bytes in `frame`.
pub fn pseudo_sum(frame: &[u8], t: &TcpFrame, tcp_len: usize) -> u64 {
    addresses_sum(frame, t.v6, PROTO_TCP, tcp_len)
}

fn addresses_sum(frame: &[u8], v6: bool, proto: u8, l4_len: usize) -> u64 {
    let addrs = if v6 {
        &frame[TcpFrame::ip(field::V6_ADDRS)]
    } else {
        &frame[TcpFrame::ip(field::V4_ADDRS)]
    };
    sum(addrs, u64::from(proto) + l4_len as u64)
}

#[cfg(test)]
mod tests {
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
        let tcp = |i: usize, mask: u8| {
            matches!(i, 4..=7 | 16 | 17) || (i == field::FLAGS && mask == TCP_PSH)
        };
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
}
