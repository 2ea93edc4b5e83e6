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
mod tests;
