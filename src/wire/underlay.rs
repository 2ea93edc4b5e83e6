//! The outer IPv4 and UDP headers of a VXLAN datagram, written in front of it in place.
//!
//! The data path sends through a raw socket so that each datagram can carry its own flow-hashed
//! UDP source port; the kernel fills in the IPv4 checksum, identification and (when zero) the
//! source address. The UDP checksum is zero, as RFC 7348 §5 recommends for IPv4.

use std::net::Ipv4Addr;

/// IPv4 header (20, no options) + UDP header (8).
pub const OUTER_LEN: usize = 20 + 8;

/// Writes IPv4+UDP headers into `hdr` for a UDP payload of `payload_len` bytes. Returns `None`
/// when the datagram would not fit in an IPv4 packet.
pub fn emit(
    hdr: &mut [u8; OUTER_LEN],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload_len: usize,
) -> Option<()> {
    let udp_len = u16::try_from(payload_len + 8).ok()?;
    let total = u16::try_from(payload_len + OUTER_LEN).ok()?;
    let t = total.to_be_bytes();
    let s = src.octets();
    let d = dst.octets();
    *hdr = [
        0x45,
        0,
        t[0],
        t[1], // version 4, IHL 5, DSCP 0, total length
        0,
        0,
        0x40,
        0, // identification (kernel fills), DF
        64,
        17,
        0,
        0, // TTL, UDP, checksum (kernel fills)
        s[0],
        s[1],
        s[2],
        s[3],
        d[0],
        d[1],
        d[2],
        d[3],
        (src_port >> 8) as u8,
        src_port as u8,
        (dst_port >> 8) as u8,
        dst_port as u8,
        (udp_len >> 8) as u8,
        udp_len as u8,
        0,
        0, // UDP length, checksum 0
    ];
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4HeaderSlice, UdpHeaderSlice};

    #[test]
    fn headers_parse_back_with_etherparse() {
        let mut h = [0u8; OUTER_LEN];
        emit(
            &mut h,
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            51000,
            4789,
            100,
        )
        .expect("fits");
        let ip = Ipv4HeaderSlice::from_slice(&h).expect("ipv4");
        assert_eq!(ip.total_len(), 128);
        assert_eq!(ip.protocol().0, 17);
        assert!(ip.dont_fragment());
        assert_eq!(ip.destination_addr(), Ipv4Addr::new(192, 0, 2, 2));
        let udp = UdpHeaderSlice::from_slice(&h[20..]).expect("udp");
        assert_eq!(
            (udp.source_port(), udp.destination_port(), udp.length()),
            (51000, 4789, 108)
        );
        assert!(emit(
            &mut h,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            1,
            2,
            70_000
        )
        .is_none());
    }
}
