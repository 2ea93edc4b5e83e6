//! Kernel-class offloads in userspace, without I/O: TCP and UDP segmentation of the superframes
//! a TAP with TSO and USO hands us, completion of partial checksums, and the reverse —
//! coalescing consecutive TCP segments (and, for a TAP with USO, UDP datagrams) from the underlay
//! into one superframe for the TAP (userspace GRO), after [`complete_partial_checksum`] finished
//! what a checksum-offloading sender left partial.
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
//! With `TUN_F_USO4|USO6` (Linux 6.2+) the TAP also hands us UDP superframes (`gso_type`
//! UDP_L4): what a container's UDP socket sent with `UDP_SEGMENT` (QUIC stacks do). They are cut
//! the same way into `gso_size`-byte datagrams, each with its own IP length and identification,
//! UDP length and full UDP checksum, as the kernel's `__udp_gso_segment` would.
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
//! and the container's kernel drops it — unless a verified outer UDP checksum already covered
//! it ([`Coalescer::push_verified`]). Frames that are not coalescable are written as they are.
//! UDP datagrams follow the same scheme with `udp_gro_receive_segment`'s rules
//! ([`Coalescer::offer`]) into a `GSO_UDP_L4` superframe, only for a TAP that takes them.
//!
//! The header layouts (where the IP and TCP fields are, checksums) are in
//! [`crate::wire::tcpip`]; this module decides what to do with them.
//!
//! Nothing here panics on any input: frames are parsed with bounds checks, and errors are
//! returned (the shell counts them as drops).

use std::ops::Range;

use crate::wire::ethernet::HEADER_LEN as ETH_LEN;
use crate::wire::tcpip::{
    copy_sum, pseudo_sum, L4Frame, MAX_IP_LEN, PROTO_UDP, TCP_ACK, TCP_CHECKSUM_OFFSET, TCP_CWR,
    TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, UDP_CHECKSUM_OFFSET, UDP_HEADER_LEN,
};
pub use crate::wire::tcpip::{fold, sum, TcpFrame};
use crate::wire::virtio_net::{self, VnetHdr};

/// Why a frame could not be segmented or its checksum completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("frame too short for the headers it claims")]
    Truncated,
    #[error(
        "superframe is not TCP or UDP over IPv4/IPv6 (or its IP version does not match gso_type)"
    )]
    Unsupported,
    #[error("superframe with gso_size 0")]
    BadGsoSize,
    #[error("partial checksum position lies outside the frame")]
    BadChecksumOffset,
    #[error("not enough segment buffers, or a buffer too small for a segment")]
    NoRoom,
}

/// Flags a segment may carry and still be merged (Linux flushes GRO on any other).
const MERGEABLE: u8 = TCP_ACK | TCP_PSH | TCP_ECE;
/// Flags that are never merged (listed for the record; `MERGEABLE` is what is checked).
const _NEVER_MERGED: u8 = TCP_FIN | TCP_SYN | TCP_RST | TCP_URG | TCP_CWR;
const _: () = assert!(MERGEABLE | _NEVER_MERGED == 0xff && MERGEABLE & _NEVER_MERGED == 0);

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

/// Completes, in place, the TCP or UDP checksum of a frame from the underlay that a sender with
/// checksum offload left partial: the field holds only the pseudo-header sum
/// (`CHECKSUM_PARTIAL`), as the kernel's vxlan device sends it when the underlay device (a veth)
/// never computes it. A kernel receiver trusts such a frame because the skb says so; the bytes
/// we hand to a TAP carry no such flag, so the container would drop it as corrupt. Returns
/// whether the frame was completed.
///
/// **Why this cannot bless corruption.** Only a frame whose checksum field equals the
/// pseudo-header sum *and* fails verification is touched; everything else is left for the
/// receiver to judge. A frame that left its sender with a full checksum and was damaged on
/// the way reaches this test only if the damage turned the field into exactly the pseudo-header
/// sum of the (possibly also damaged) addresses and length: one value in 65 536, the same odds
/// as damage that the 16-bit checksum itself fails to notice. A frame whose sender never
/// computed a checksum had no end-to-end check to fail; completing it gives it the protection
/// from here on that it would have had from a NIC, and no less than the kernel's own receiver
/// (which trusts the partial checksum) would give it.
pub fn complete_partial_checksum(frame: &mut [u8]) -> bool {
    let Some(l4) = L4Frame::parse(frame) else {
        return false;
    };
    let Some(field) = l4.checksum_field() else {
        return false;
    };
    let pseudo = l4.pseudo_sum(frame);
    let value = u16::from_be_bytes([frame[field.start], frame[field.start + 1]]);
    if value != fold(pseudo) {
        return false;
    }
    let segment = &frame[l4.l4..l4.end];
    if fold(sum(segment, pseudo)) == 0xffff {
        // A full checksum that happens to equal the pseudo-header sum: valid as it is.
        return false;
    }
    // The field already holds the pseudo-header sum, so the sum over the segment is the
    // whole checksum (RFC 1071; what a NIC does from `csum_start`). 0 is sent as 0xffff: UDP
    // reserves 0 for "no checksum", and in one's complement both mean zero.
    let c = match !fold(sum(segment, 0)) {
        0 => 0xffff,
        c => c,
    };
    frame[field].copy_from_slice(&c.to_be_bytes());
    true
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

/// Cuts the TCP (or, for `GSO_UDP_L4`, UDP) superframe `frame` described by `hdr` into
/// segments of at most `gso_size` payload bytes, written into consecutive slots of `arena`:
/// each slot is `headroom` bytes,
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
    if hdr.gso() == virtio_net::GSO_UDP_L4 {
        return udp::segment_udp(frame, hdr, arena, headroom, tailroom);
    }
    let t = TcpFrame::parse(frame).ok_or(OffloadError::Unsupported)?;
    match (hdr.gso(), t.v6) {
        (virtio_net::GSO_TCPV4, false) | (virtio_net::GSO_TCPV6, true) => {}
        _ => return Err(OffloadError::Unsupported),
    }
    let segs = layout(
        t.payload,
        t.payload_len(),
        hdr,
        arena.len(),
        headroom,
        tailroom,
    )?;
    let mss = usize::from(hdr.gso_size);
    let seq0 = t.seq(frame);
    cut(
        frame,
        t.ip_layer(),
        t.payload,
        &segs,
        mss,
        arena,
        |i, out, payload_sum| {
            let seg = t.with_end(out.len());
            seg.set_seq(out, seq0.wrapping_add((i * mss) as u32));
            let mut flags = seg.flags(out);
            if i + 1 < segs.count {
                flags &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                flags &= !TCP_CWR;
            }
            seg.set_flags(out, flags);
            seg.fill_tcp_checksum_with(out, payload_sum);
        },
    );
    Ok(segs)
}

/// Writes every segment of `segs` into `arena`: the headers `frame[..at]`, its `mss`-byte piece
/// of the payload `frame[at..ip.end]` (summed while it is copied), its IP length and, for IPv4,
/// its identification (counting up from the superframe's) and header checksum; then `finish(i,
/// segment, payload_sum)` completes the transport header. `ip` is `frame`'s parsed layout.
fn cut(
    frame: &[u8],
    ip: L4Frame,
    at: usize,
    segs: &Segments,
    mss: usize,
    arena: &mut [u8],
    mut finish: impl FnMut(usize, &mut [u8], u64),
) {
    let payload = &frame[at..ip.end];
    let id0 = ip.ipv4_id(frame);
    for i in 0..segs.count {
        let chunk = payload
            .get(i * mss..payload.len().min((i + 1) * mss))
            .unwrap_or(&[]);
        let out = &mut arena[segs.frame(i)];
        out[..at].copy_from_slice(&frame[..at]);
        let payload_sum = copy_sum(&mut out[at..], chunk);
        let seg = ip.with_end(out.len());
        seg.set_ip_len(out);
        seg.set_ipv4_id(out, id0.wrapping_add(i as u16));
        seg.fill_ipv4_checksum(out);
        finish(i, out, payload_sum);
    }
}

/// Where the segments of a superframe with `headers` bytes of headers and `payload_len` bytes
/// of payload go in an arena of `arena_len` bytes, `hdr.gso_size` payload bytes each.
fn layout(
    headers: usize,
    payload_len: usize,
    hdr: &VnetHdr,
    arena_len: usize,
    headroom: usize,
    tailroom: usize,
) -> Result<Segments, OffloadError> {
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(OffloadError::BadGsoSize);
    }
    let count = payload_len.div_ceil(mss).max(1);
    // Slots start 16-byte aligned relative to the arena, which keeps the copies fast.
    let stride = (headroom + headers + mss + tailroom).next_multiple_of(16);
    if count.saturating_mul(stride) > arena_len {
        return Err(OffloadError::NoRoom);
    }
    Ok(Segments {
        count,
        stride,
        headroom,
        full_len: headers + mss,
        last_len: headers + (payload_len - (count - 1) * mss),
    })
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

/// How [`Coalescer::offer`] may treat a frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offer {
    /// The frame's bytes are known to be the ones its sender checksummed: its transport
    /// checksum is not verified again (see [`Coalescer::push_verified`]).
    pub verified: bool,
    /// UDP datagrams may be coalesced too, into a `GSO_UDP_L4` superframe: only for a TAP with
    /// USO (`TUN_F_USO4|USO6`, Linux 6.2+), whose kernel takes such superframes.
    pub udp: bool,
}

/// Most datagrams in one UDP superframe (the kernel's `UDP_GRO_CNT_MAX`).
const MAX_UDP_SEGMENTS: usize = 64;

/// The flow of the pending superframe.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    tag: u32,
    /// A UDP superframe (`t.payload` is then the end of the UDP header).
    udp: bool,
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

    /// Offers one Ethernet frame bound for `tag`. Its TCP checksum is verified first: a frame
    /// that fails is [`Push::Unsuitable`].
    pub fn push(&mut self, tag: u32, frame: &[u8]) -> Push {
        self.offer(tag, frame, Offer::default())
    }

    /// Offers one Ethernet frame bound for `tag` whose bytes are known to be the ones its
    /// sender checksummed, so its TCP checksum is not verified again (one pass over the
    /// payload less).
    ///
    /// **When that is sound.** Only for a frame that arrived inside a datagram the kernel
    /// delivered with a UDP GRO/GSO segment size: the kernel coalesces (`udp_gro_receive_segment`)
    /// only datagrams with a nonzero UDP checksum it has validated, and a UDP GSO run is only
    /// ever built by a UDP socket that checksums (the raw socket's zero-checksum datagrams
    /// never arrive that way). That outer checksum covers the whole inner frame, so any
    /// damage on the way is caught there. The inner TCP checksum of such a frame was computed
    /// by the sending switch itself, from its own copy, when it cut the superframe
    /// ([`segment`]); checking it again could only catch damage inside the sender's memory.
    /// A checksum is no authentication: a hostile sender can make either one right.
    pub fn push_verified(&mut self, tag: u32, frame: &[u8]) -> Push {
        let how = Offer {
            verified: true,
            udp: false,
        };
        self.offer(tag, frame, how)
    }

    /// Offers one Ethernet frame bound for `tag`, as [`Coalescer::push`] (or
    /// [`Coalescer::push_verified`]) does, and with `how.udp` UDP datagrams too: consecutive
    /// datagrams of one flow (same headers but for IP length, id and checksums) whose payloads
    /// are as long as the first one's, the last one possibly shorter, become one `GSO_UDP_L4`
    /// superframe of at most 64 datagrams and 64 KiB, the rules of the kernel's
    /// `udp_gro_receive_segment`. A datagram without a checksum (0, IPv4 only) is coalesced
    /// only when verified (its bytes are then covered by the outer checksum).
    pub fn offer(&mut self, tag: u32, frame: &[u8], how: Offer) -> Push {
        let verify = !how.verified;
        let Some(t) = TcpFrame::parse(frame) else {
            return match how.udp {
                true => self.offer_udp(tag, frame, verify),
                false => Push::Unsuitable,
            };
        };
        let flags = t.flags(frame);
        let plen = t.payload_len();
        if flags & TCP_ACK == 0
            || flags & !MERGEABLE != 0
            || plen == 0
            || (verify && !t.tcp_checksum_ok(frame))
        {
            return Push::Unsuitable;
        }
        let seq = t.seq(frame);
        let psh = flags & TCP_PSH != 0;
        let h = virtio_net::HEADER_LEN;
        if self.is_empty() {
            return self.start(
                &frame[..t.end],
                Pending {
                    tag,
                    udp: false,
                    t,
                    gso_size: plen,
                    segments: 1,
                    next_seq: seq.wrapping_add(plen as u32),
                    closed: psh,
                    psh,
                },
            );
        }
        let p = &self.pending;
        let head = &self.buf[h..h + p.t.payload];
        if !self.open_for(tag, false, t.v6, t.l4, plen)
            || p.t.payload != t.payload
            || seq != p.next_seq
            || !t.same_flow(head, &frame[..t.payload])
        {
            return Push::Busy;
        }
        let p = self.append(&frame[t.payload..t.end]);
        p.next_seq = seq.wrapping_add(plen as u32);
        p.psh |= psh;
        p.closed = psh || plen < p.gso_size;
        Push::Merged
    }

    /// Whether the pending run, for port `tag`, of UDP (`udp`) or TCP, with its IP header of
    /// that family (`v6`) and length (`l4`), is still open and has room for `plen` more bytes of
    /// payload no longer than its segments. Each protocol adds its own checks.
    fn open_for(&self, tag: u32, udp: bool, v6: bool, l4: usize, plen: usize) -> bool {
        let p = &self.pending;
        p.tag == tag
            && !p.closed
            && p.udp == udp
            && p.t.v6 == v6
            && p.t.l4 == l4
            && plen <= p.gso_size
            && self.len + plen - ETH_LEN <= MAX_IP_LEN
    }

    /// Starts a run: `frame` (headers and payload) becomes the superframe, described by
    /// `pending`.
    fn start(&mut self, frame: &[u8], pending: Pending) -> Push {
        let h = virtio_net::HEADER_LEN;
        self.buf[h..h + frame.len()].copy_from_slice(frame);
        self.len = frame.len();
        self.pending = pending;
        Push::Merged
    }

    /// Appends a segment's `payload` to the run; returns the run, one segment longer, for the
    /// caller's own bookkeeping.
    fn append(&mut self, payload: &[u8]) -> &mut Pending {
        let h = virtio_net::HEADER_LEN;
        self.buf[h + self.len..h + self.len + payload.len()].copy_from_slice(payload);
        self.len += payload.len();
        let p = &mut self.pending;
        p.segments += 1;
        p
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
        } else if p.udp {
            let frame = &mut self.buf[h..h + len];
            let u = L4Frame {
                v6: p.t.v6,
                proto: PROTO_UDP,
                l4: p.t.l4,
                end: len,
            };
            u.set_ip_len(frame);
            u.fill_ipv4_checksum(frame);
            u.set_udp_len_and_partial_checksum(frame);
            VnetHdr {
                flags: virtio_net::F_NEEDS_CSUM,
                gso_type: virtio_net::GSO_UDP_L4,
                hdr_len: p.t.payload as u16,
                gso_size: p.gso_size as u16,
                csum_start: p.t.l4 as u16,
                csum_offset: UDP_CHECKSUM_OFFSET as u16,
                num_buffers: 0,
            }
        } else {
            let frame = &mut self.buf[h..h + len];
            let t = p.t.with_end(len);
            t.set_ip_len(frame);
            if !t.v6 {
                t.fill_ipv4_checksum(frame);
            }
            if p.psh {
                t.set_flags(frame, t.flags(frame) | TCP_PSH);
            }
            let partial = fold(pseudo_sum(frame, &t, len - t.l4));
            t.set_tcp_checksum(frame, partial);
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
                csum_offset: TCP_CHECKSUM_OFFSET as u16,
                num_buffers: 0,
            }
        };
        self.buf[..h].copy_from_slice(&vnet.to_bytes());
        Some((p.tag, &self.buf[..h + len]))
    }
}

mod udp;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod uso_tests;
