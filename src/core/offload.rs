//! Kernel-class offloads in userspace, without I/O: TCP segmentation of the superframes a TAP
//! with TSO hands us, completion of partial checksums, and the reverse — coalescing consecutive
//! TCP segments from the underlay into one superframe for the TAP (userspace GRO).
//!
//! # Transmit: [`segment`]
//!
//! A TAP opened with `IFF_VNET_HDR` and `TUN_F_TSO4|TSO6` gives us TCP superframes of up to
//! 64 KiB: one Ethernet + IP + TCP header, then many MSS worth of payload, with a
//! [`VnetHdr`] saying `gso_size` (the MSS) and a partial checksum. [`segment`] cuts one into
//! MSS-sized frames, each with its own IPv4 total length, identification and header checksum (or
//! IPv6 payload length), TCP sequence number, flags (FIN and PSH only on the last segment, CWR
//! only on the first) and a full TCP checksum — what the kernel's `tcp_gso_segment` would
//! produce. Segments go into consecutive slots of one caller-owned arena, each with `headroom`
//! in front and `tailroom` behind, so the switch can encapsulate (and seal) each in place.
//!
//! # Receive: [`Coalescer`]
//!
//! The mirror image. Segments of one TCP flow that arrive back to back are appended into one
//! superframe, which is written to the TAP with a `gso_type` TCPV4/6 header: the container's
//! kernel then takes one 64 KiB skb instead of ~45 small ones. The rules are those of Linux's
//! `tcp_gro_receive` (and wireguard-go's `tcpGRO`, which follows the kernel's GRO self-tests):
//! same Ethernet header, same IP addresses, ToS/traffic class, TTL/hop limit and DF; same ports,
//! ack number, window, flags and TCP options; contiguous sequence numbers; only ACK (and PSH,
//! ECE) set; no segment after a shorter one or after one with PSH; at most 64 KiB of IP packet.
//!
//! A coalesced superframe is marked `NEEDS_CSUM` with the pseudo-header sum in the TCP checksum
//! field, and the receiving kernel then trusts its payload. So every segment's TCP checksum is
//! verified here before it is merged; a segment that fails is left alone, written as it came,
//! and the container's kernel drops it. Frames that are not coalescable are written as they are.
//!
//! Nothing here panics on any input: frames are parsed with bounds checks, and errors are
//! returned (the shell counts them as drops).

use std::ops::Range;

use crate::wire::virtio_net::{self, VnetHdr};

/// Why a frame could not be segmented or its checksum completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("frame too short for the headers it claims")]
    Truncated,
    #[error("superframe is not TCP over IPv4/IPv6 (or its IP version does not match gso_type)")]
    Unsupported,
    #[error("superframe with gso_size 0")]
    BadGsoSize,
    #[error("partial checksum position lies outside the frame")]
    BadChecksumOffset,
    #[error("not enough segment buffers, or a buffer too small for a segment")]
    NoRoom,
}

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const PROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_URG: u8 = 0x20;
const TCP_ECE: u8 = 0x40;
const TCP_CWR: u8 = 0x80;
/// Flags a segment may carry and still be merged (Linux flushes GRO on any other).
const MERGEABLE: u8 = TCP_ACK | TCP_PSH | TCP_ECE;
/// Flags that are never merged (listed for the record; `MERGEABLE` is what is checked).
const _NEVER_MERGED: u8 = TCP_FIN | TCP_SYN | TCP_RST | TCP_URG | TCP_CWR;
const _: () = assert!(MERGEABLE | _NEVER_MERGED == 0xff && MERGEABLE & _NEVER_MERGED == 0);
/// Offset of the checksum inside the TCP header.
const TCP_CSUM_OFFSET: usize = 16;
/// The largest IP packet (IPv4 total length, IPv6 payload length + 40 both stay under this).
const MAX_IP_LEN: usize = 65_535;

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
        let ethertype = frame.get(12..14)?;
        let ip = frame.get(ETH_LEN..)?;
        let (v6, ip_hl, ip_len) = if ethertype == ETHERTYPE_IPV4 {
            let h = ip.get(..20)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            if h[0] >> 4 != 4 || ihl < 20 || h[9] != PROTO_TCP || fragment {
                return None;
            }
            (false, ihl, usize::from(u16::from_be_bytes([h[2], h[3]])))
        } else if ethertype == ETHERTYPE_IPV6 {
            let h = ip.get(..40)?;
            if h[0] >> 4 != 6 || h[6] != PROTO_TCP {
                return None;
            }
            (true, 40, 40 + usize::from(u16::from_be_bytes([h[4], h[5]])))
        } else {
            return None;
        };
        let l4 = ETH_LEN + ip_hl;
        let end = ETH_LEN + ip_len;
        let doff = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
        let payload = l4 + doff;
        if doff < 20 || payload > end || end > frame.len() {
            return None;
        }
        Some(TcpFrame {
            v6,
            l4,
            payload,
            end,
        })
    }

    fn payload_len(&self) -> usize {
        self.end - self.payload
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

/// Folds a sum from [`sum`] to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The TCP pseudo-header sum for a TCP segment of `tcp_len` bytes in `frame`.
fn pseudo_sum(frame: &[u8], t: &TcpFrame, tcp_len: usize) -> u64 {
    let (addrs, next_header) = if t.v6 {
        (&frame[ETH_LEN + 8..ETH_LEN + 40], u64::from(PROTO_TCP))
    } else {
        (&frame[ETH_LEN + 12..ETH_LEN + 20], u64::from(PROTO_TCP))
    };
    sum(addrs, next_header + tcp_len as u64)
}

/// Writes the IPv4 header checksum of the header at `ip`.
fn set_ipv4_checksum(ip: &mut [u8]) {
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = !fold(sum(ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Whether the TCP checksum of the segment in `frame` is correct.
fn tcp_checksum_ok(frame: &[u8], t: &TcpFrame) -> bool {
    let acc = pseudo_sum(frame, t, t.end - t.l4);
    fold(sum(&frame[t.l4..t.end], acc)) == 0xffff
}

/// Completes a partial checksum (`NEEDS_CSUM`) in place, as `skb_checksum_help` does: the
/// field at `csum_start + csum_offset` holds the pseudo-header sum; the checksum covers
/// `csum_start..` to the end of the frame. A header without `NEEDS_CSUM` leaves the frame
/// untouched.
pub fn complete_checksum(frame: &mut [u8], hdr: &VnetHdr) -> Result<(), OffloadError> {
    if !hdr.needs_csum() {
        return Ok(());
    }
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > frame.len() {
        return Err(OffloadError::BadChecksumOffset);
    }
    let c = match !fold(sum(&frame[start..], 0)) {
        0 => 0xffff,
        c => c,
    };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Where [`segment`] put its segments in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub count: usize,
    /// Distance between the starts of consecutive segment slots.
    pub stride: usize,
    headroom: usize,
    full_len: usize,
    last_len: usize,
}

impl Segments {
    /// Where segment `i` (an Ethernet frame) lies in the arena; `headroom` bytes free before it
    /// and at least the requested tailroom after it belong to its slot.
    pub fn frame(&self, i: usize) -> Range<usize> {
        let start = i * self.stride + self.headroom;
        let len = if i + 1 == self.count {
            self.last_len
        } else {
            self.full_len
        };
        start..start + len
    }

    /// Every segment's range, in order.
    pub fn frames(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.count).map(|i| self.frame(i))
    }
}

/// Cuts the TCP superframe `frame` described by `hdr` into segments of at most `gso_size`
/// payload bytes, written into consecutive slots of `arena`: each slot is `headroom` bytes,
/// the segment, then at least `tailroom` bytes, so the switch can encapsulate (and seal) every
/// segment in place. [`Segments::frame`] says where each one lies.
///
/// A superframe with no payload (a bare ACK or FIN that happened to be marked GSO) yields one
/// segment. Checksums are computed in full; the partial checksum in `frame` is ignored.
pub fn segment(
    frame: &[u8],
    hdr: &VnetHdr,
    arena: &mut [u8],
    headroom: usize,
    tailroom: usize,
) -> Result<Segments, OffloadError> {
    let t = TcpFrame::parse(frame).ok_or(OffloadError::Unsupported)?;
    match (hdr.gso(), t.v6) {
        (virtio_net::GSO_TCPV4, false) | (virtio_net::GSO_TCPV6, true) => {}
        _ => return Err(OffloadError::Unsupported),
    }
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(OffloadError::BadGsoSize);
    }
    let payload = &frame[t.payload..t.end];
    let count = payload.len().div_ceil(mss).max(1);
    // Slots start 16-byte aligned relative to the arena, which keeps the copies fast.
    let stride = (headroom + t.payload + mss + tailroom).next_multiple_of(16);
    if count.saturating_mul(stride) > arena.len() {
        return Err(OffloadError::NoRoom);
    }
    let segs = Segments {
        count,
        stride,
        headroom,
        full_len: t.payload + mss,
        last_len: t.payload + (payload.len() - (count - 1) * mss),
    };
    let headers = &frame[..t.payload];
    let seq0 = u32::from_be_bytes([
        frame[t.l4 + 4],
        frame[t.l4 + 5],
        frame[t.l4 + 6],
        frame[t.l4 + 7],
    ]);
    let id0 = u16::from_be_bytes([frame[ETH_LEN + 4], frame[ETH_LEN + 5]]);
    for i in 0..count {
        let chunk = payload
            .get(i * mss..payload.len().min((i + 1) * mss))
            .unwrap_or(&[]);
        let out = &mut arena[segs.frame(i)];
        let seg_len = out.len();
        out[..t.payload].copy_from_slice(headers);
        out[t.payload..].copy_from_slice(chunk);
        let ip_len = seg_len - ETH_LEN;
        if t.v6 {
            out[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
        } else {
            out[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            out[ETH_LEN + 4..ETH_LEN + 6]
                .copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            set_ipv4_checksum(&mut out[ETH_LEN..t.l4]);
        }
        let tcp = t.l4;
        let seq = seq0.wrapping_add((i * mss) as u32);
        out[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        if i + 1 < count {
            out[tcp + 13] &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            out[tcp + 13] &= !TCP_CWR;
        }
        let field = tcp + TCP_CSUM_OFFSET;
        out[field..field + 2].copy_from_slice(&[0, 0]);
        let acc = pseudo_sum(out, &t, seg_len - tcp);
        let c = !fold(sum(&out[tcp..], acc));
        out[field..field + 2].copy_from_slice(&c.to_be_bytes());
    }
    Ok(segs)
}

/// What [`Coalescer::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame is now part of the pending superframe.
    Merged,
    /// The frame is coalescable but does not continue the pending superframe: take that one
    /// first, then push again.
    Busy,
    /// Not a TCP data segment that may be coalesced (or its checksum is wrong): write it as it is.
    Unsuitable,
}

/// The flow of the pending superframe.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    tag: u32,
    t: TcpFrame,
    gso_size: usize,
    segments: usize,
    next_seq: u32,
    /// A segment shorter than `gso_size`, or one with PSH, ended the run.
    closed: bool,
    psh: bool,
}

/// Builds one superframe at a time from consecutive TCP segments (userspace GRO).
///
/// Owns one buffer of [`Coalescer::CAPACITY`] bytes, allocated once. `tag` names where the
/// superframe goes (a port); only frames with the same tag are merged.
#[derive(Debug)]
pub struct Coalescer {
    /// The virtio-net header, then the superframe.
    buf: Box<[u8]>,
    /// Bytes of superframe in `buf` after the header; 0 when nothing is pending.
    len: usize,
    pending: Pending,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer::new()
    }
}

impl Coalescer {
    /// Room for the virtio-net header and the largest superframe.
    pub const CAPACITY: usize = virtio_net::HEADER_LEN + ETH_LEN + MAX_IP_LEN;

    pub fn new() -> Coalescer {
        Coalescer {
            buf: vec![0u8; Self::CAPACITY].into_boxed_slice(),
            len: 0,
            pending: Pending::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tag of the pending superframe, if any.
    pub fn pending_tag(&self) -> Option<u32> {
        (!self.is_empty()).then_some(self.pending.tag)
    }

    /// Offers one Ethernet frame bound for `tag`.
    pub fn push(&mut self, tag: u32, frame: &[u8]) -> Push {
        let Some(t) = TcpFrame::parse(frame) else {
            return Push::Unsuitable;
        };
        let flags = frame[t.l4 + 13];
        let plen = t.payload_len();
        if flags & TCP_ACK == 0
            || flags & !MERGEABLE != 0
            || plen == 0
            || !tcp_checksum_ok(frame, &t)
        {
            return Push::Unsuitable;
        }
        let seq = u32::from_be_bytes([
            frame[t.l4 + 4],
            frame[t.l4 + 5],
            frame[t.l4 + 6],
            frame[t.l4 + 7],
        ]);
        let psh = flags & TCP_PSH != 0;
        let h = virtio_net::HEADER_LEN;
        if self.is_empty() {
            self.buf[h..h + t.end].copy_from_slice(&frame[..t.end]);
            self.len = t.end;
            self.pending = Pending {
                tag,
                t,
                gso_size: plen,
                segments: 1,
                next_seq: seq.wrapping_add(plen as u32),
                closed: psh,
                psh,
            };
            return Push::Merged;
        }
        let p = &self.pending;
        let head = &self.buf[h..h + p.t.payload];
        if p.tag != tag
            || p.closed
            || p.t.v6 != t.v6
            || p.t.l4 != t.l4
            || p.t.payload != t.payload
            || seq != p.next_seq
            || plen > p.gso_size
            || self.len + plen - ETH_LEN > MAX_IP_LEN
            || !same_flow(head, &frame[..t.payload], &t)
        {
            return Push::Busy;
        }
        self.buf[h + self.len..h + self.len + plen].copy_from_slice(&frame[t.payload..t.end]);
        self.len += plen;
        let p = &mut self.pending;
        p.segments += 1;
        p.next_seq = seq.wrapping_add(plen as u32);
        p.psh |= psh;
        p.closed = psh || plen < p.gso_size;
        Push::Merged
    }

    /// Finishes the pending superframe and returns its tag and bytes (virtio-net header
    /// included), ready for a TAP write. `None` when nothing is pending.
    pub fn take(&mut self) -> Option<(u32, &[u8])> {
        if self.is_empty() {
            return None;
        }
        let p = self.pending;
        let len = std::mem::take(&mut self.len);
        let h = virtio_net::HEADER_LEN;
        let vnet = if p.segments == 1 {
            // One segment, untouched and verified.
            VnetHdr::DATA_VALID
        } else {
            let frame = &mut self.buf[h..h + len];
            let ip_len = len - ETH_LEN;
            if p.t.v6 {
                frame[ETH_LEN + 4..ETH_LEN + 6]
                    .copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
            } else {
                frame[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
                set_ipv4_checksum(&mut frame[ETH_LEN..p.t.l4]);
            }
            if p.psh {
                frame[p.t.l4 + 13] |= TCP_PSH;
            }
            let partial = fold(pseudo_sum(frame, &p.t, len - p.t.l4));
            let field = p.t.l4 + TCP_CSUM_OFFSET;
            frame[field..field + 2].copy_from_slice(&partial.to_be_bytes());
            VnetHdr {
                flags: virtio_net::F_NEEDS_CSUM,
                gso_type: if p.t.v6 {
                    virtio_net::GSO_TCPV6
                } else {
                    virtio_net::GSO_TCPV4
                },
                hdr_len: p.t.payload as u16,
                gso_size: p.gso_size as u16,
                csum_start: p.t.l4 as u16,
                csum_offset: TCP_CSUM_OFFSET as u16,
                num_buffers: 0,
            }
        };
        self.buf[..h].copy_from_slice(&vnet.to_bytes());
        Some((p.tag, &self.buf[..h + len]))
    }
}

/// Whether the headers `b` (of a segment that continues `a` in sequence) belong to the same run:
/// everything equal except the fields that legitimately change from segment to segment (IP
/// length, id and checksum; TCP sequence number, checksum and PSH).
fn same_flow(a: &[u8], b: &[u8], t: &TcpFrame) -> bool {
    let ip = ETH_LEN;
    let same = |r: Range<usize>| a.get(r.clone()) == b.get(r);
    let ip_ok = if t.v6 {
        // version, traffic class, flow label; next header, hop limit; addresses
        same(ip..ip + 4) && same(ip + 6..ip + 40)
    } else {
        // version/IHL, ToS; DF; TTL, protocol; addresses; options
        same(ip..ip + 2)
            && a[ip + 6] & 0xe0 == b[ip + 6] & 0xe0
            && same(ip + 8..ip + 10)
            && same(ip + 12..t.l4)
    };
    let l4 = t.l4;
    ip_ok
        && same(0..ETH_LEN)
        // ports; ack number
        && same(l4..l4 + 4)
        && same(l4 + 8..l4 + 12)
        // data offset; flags but PSH; window; urgent pointer; options
        && a[l4 + 12] == b[l4 + 12]
        && a[l4 + 13] | TCP_PSH == b[l4 + 13] | TCP_PSH
        && same(l4 + 14..l4 + 16)
        && same(l4 + 18..t.payload)
}

#[cfg(test)]
mod tests;
