//! The virtio-net header (`struct virtio_net_hdr_v1`, virtio 1.x §5.1.6) that a TAP opened with
//! `IFF_VNET_HDR` puts in front of every frame it reads and expects in front of every frame
//! written to it. It describes offloads: a partial checksum the reader must complete
//! (`NEEDS_CSUM`), a checksum already verified (`DATA_VALID`), and a superframe to be cut into
//! `gso_size`-byte TCP segments (`gso_type`).
//!
//! ```text
//!  0        1          2         4          6            8             10            12
//! +--------+----------+---------+----------+------------+-------------+-------------+
//! | flags  | gso_type | hdr_len | gso_size | csum_start | csum_offset | num_buffers |
//! +--------+----------+---------+----------+------------+-------------+-------------+
//! ```
//!
//! We use the 12-byte v1 layout (`TUNSETVNETHDRSZ` 12, what `tap.rs` asks for) rather than the
//! 10-byte legacy one: it is what modern virtio devices speak, so the header can be handed
//! between virtio-style code and the TAP without re-packing; `num_buffers` is always 0 for a
//! TAP. Fields are little-endian: the kernel uses the host's byte order for a TAP that has not
//! asked for another (`TUNSETVNETLE`/`BE`), and vswitch targets little-endian hosts.
//!
//! Parsing never panics: [`VnetHdr::parse`] checks the length and returns an error.

#![forbid(unsafe_code)]

use super::WireError;

/// Length of `struct virtio_net_hdr_v1`.
pub const HEADER_LEN: usize = 12;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` holds only the
/// pseudo-header sum; the reader must complete it over `csum_start..`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the writer verified the checksums; the kernel need not.
pub const F_DATA_VALID: u8 = 2;

/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP` (UFO; obsolete, never produced by a modern kernel).
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4` (USO).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: or-ed into `gso_type` when the superframe has CWR set.
pub const GSO_ECN: u8 = 0x80;

/// A parsed virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct VnetHdr {
    pub flags: u8,
    /// One of the `GSO_*` values, possibly or-ed with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers (Ethernet + IP + TCP) of a superframe; a hint only.
    pub hdr_len: u16,
    /// Payload bytes per segment of a superframe.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
    pub num_buffers: u16,
}

impl VnetHdr {
    /// A header that says nothing: a complete frame whose checksums the kernel checks itself.
    pub const PLAIN: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
        num_buffers: 0,
    };

    /// A complete frame whose checksums were verified.
    pub const DATA_VALID: VnetHdr = VnetHdr {
        flags: F_DATA_VALID,
        ..VnetHdr::PLAIN
    };

    /// Reads the header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<VnetHdr, WireError> {
        let b: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(WireError::Truncated)?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
            num_buffers: u16_at(10),
        })
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b[10..12].copy_from_slice(&self.num_buffers.to_le_bytes());
        b
    }

    /// The segmentation type without the ECN bit.
    pub const fn gso(&self) -> u8 {
        self.gso_type & !GSO_ECN
    }

    pub const fn is_gso(&self) -> bool {
        self.gso() != GSO_NONE
    }

    pub const fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixture_tso_header() {
        // A header read from a TAP with TSO on: TCPv4 superframe, 66 bytes of headers, MSS
        // 1398, checksum partial from byte 34 (Ethernet 14 + IPv4 20), field at +16.
        let bytes = [1, 1, 66, 0, 0x76, 0x05, 34, 0, 16, 0, 0, 0];
        let h = VnetHdr::parse(&bytes).expect("12 bytes");
        assert!(h.needs_csum() && h.is_gso());
        assert_eq!((h.gso(), h.hdr_len, h.gso_size), (GSO_TCPV4, 66, 1398));
        assert_eq!((h.csum_start, h.csum_offset), (34, 16));
        assert_eq!(h.to_bytes(), bytes);
    }

    #[test]
    fn data_valid_is_plain_with_the_data_valid_flag() {
        let mut expected = VnetHdr::PLAIN.to_bytes();
        expected[0] = F_DATA_VALID;
        assert_eq!(VnetHdr::DATA_VALID.to_bytes(), expected);
        assert_eq!(VnetHdr::PLAIN.to_bytes(), [0; HEADER_LEN]);
    }

    #[test]
    fn short_buffers_are_errors() {
        for n in 0..HEADER_LEN {
            assert_eq!(VnetHdr::parse(&[0; 12][..n]), Err(WireError::Truncated));
        }
    }

    #[test]
    fn ecn_bit_is_not_a_gso_type() {
        let h = VnetHdr {
            gso_type: GSO_TCPV6 | GSO_ECN,
            ..VnetHdr::PLAIN
        };
        assert_eq!(h.gso(), GSO_TCPV6);
        assert!(!VnetHdr::PLAIN.is_gso());
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::array::uniform12(any::<u8>())) {
            let h = VnetHdr::parse(&bytes).expect("12 bytes");
            prop_assert_eq!(h.to_bytes(), bytes);
        }

        #[test]
        fn parse_reads_the_first_twelve_bytes_of_any_buffer(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            match VnetHdr::parse(&bytes) {
                Ok(h) => {
                    prop_assert!(bytes.len() >= HEADER_LEN);
                    prop_assert_eq!(&h.to_bytes()[..], &bytes[..HEADER_LEN]);
                    prop_assert_eq!(h.num_buffers, u16::from_le_bytes([bytes[10], bytes[11]]));
                }
                Err(e) => {
                    prop_assert!(bytes.len() < HEADER_LEN);
                    prop_assert_eq!(e, WireError::Truncated);
                }
            }
        }
    }
}
