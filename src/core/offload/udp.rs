//! UDP in the offloads: cutting a `GSO_UDP_L4` superframe into datagrams ([`segment_udp`]) and
//! coalescing datagrams into one ([`Coalescer::offer`] with `udp`).

use super::{cut, layout, Coalescer, OffloadError, Pending, Push, Segments};
use super::{MAX_UDP_SEGMENTS, PROTO_UDP, UDP_HEADER_LEN};
use crate::wire::tcpip::{L4Frame, TcpFrame};
use crate::wire::virtio_net::{self, VnetHdr};

/// [`super::segment`] for a UDP superframe (`GSO_UDP_L4`, USO): as the kernel's `__udp_gso_segment`
/// does, every datagram gets the same headers with its own IP length (and, for IPv4,
/// identification and header checksum), UDP length and full UDP checksum; the payload is cut
/// into `gso_size` pieces, the last one shorter.
pub(super) fn segment_udp(
    frame: &[u8],
    hdr: &VnetHdr,
    arena: &mut [u8],
    headroom: usize,
    tailroom: usize,
) -> Result<Segments, OffloadError> {
    let u = L4Frame::parse(frame)
        .filter(|u| u.proto == PROTO_UDP)
        .ok_or(OffloadError::Unsupported)?;
    let at = u.l4 + UDP_HEADER_LEN;
    let payload = frame.get(at..u.end).ok_or(OffloadError::Truncated)?;
    let segs = layout(at, payload.len(), hdr, arena.len(), headroom, tailroom)?;
    cut(
        frame,
        u,
        at,
        &segs,
        usize::from(hdr.gso_size),
        arena,
        |_, out, payload_sum| {
            u.with_end(out.len())
                .fill_udp_len_and_checksum_with(out, payload_sum);
        },
    );
    Ok(segs)
}

impl Coalescer {
    pub(super) fn offer_udp(&mut self, tag: u32, frame: &[u8], verify: bool) -> Push {
        let Some(u) = L4Frame::parse(frame).filter(|u| u.proto == PROTO_UDP) else {
            return Push::Unsuitable;
        };
        let at = u.l4 + UDP_HEADER_LEN;
        if !u.udp_len_ok(frame) || at == u.end || (verify && !u.udp_checksum_ok(frame)) {
            return Push::Unsuitable;
        }
        let plen = u.end - at;
        let h = virtio_net::HEADER_LEN;
        if self.is_empty() {
            return self.start(
                &frame[..u.end],
                Pending {
                    tag,
                    udp: true,
                    t: TcpFrame {
                        v6: u.v6,
                        l4: u.l4,
                        payload: at,
                        end: u.end,
                    },
                    gso_size: plen,
                    segments: 1,
                    ..Pending::default()
                },
            );
        }
        if !self.open_for(tag, true, u.v6, u.l4, plen)
            || self.pending.segments == MAX_UDP_SEGMENTS
            || !u.same_udp_flow(&self.buf[h..h + at], &frame[..at])
        {
            return Push::Busy;
        }
        let p = self.append(&frame[at..u.end]);
        p.closed = plen < p.gso_size;
        Push::Merged
    }
}
