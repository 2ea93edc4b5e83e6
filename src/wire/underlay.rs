//! The outer IPv4 and UDP headers of a VXLAN datagram, written in front of it in place.
//!
//! The data path sends through a raw socket so that each datagram can carry its own flow-hashed
//! UDP source port; the kernel fills in the IPv4 checksum, identification and (when zero) the
//! source address. The UDP checksum is zero, as RFC 7348 §5 recommends for IPv4.
//!
//! [`UnderlayPacket`] is a view over `[IPv4 (20, no options)][UDP (8)][payload]`;
//! [`UnderlayRepr`] is what the shell decides (addresses, ports) and emits into it. Head-end
//! replication re-addresses one packet per VTEP with [`UnderlayPacket::set_destination`], so
//! the byte layout lives here only.
//!
//! # Panics
//!
//! Nothing panics after [`UnderlayPacket::new_checked`] succeeded; accessors on a view made
//! with `new_unchecked` over fewer than [`OUTER_LEN`] bytes do.

use std::net::{Ipv4Addr, SocketAddrV4};

/// IPv4 header (20, no options) + UDP header (8).
pub const OUTER_LEN: usize = 20 + 8;

const IPV4_VERSION_IHL: u8 = 0x45;
const IPV4_DONT_FRAGMENT: u8 = 0x40;
const TTL: u8 = 64;
const PROTOCOL_UDP: u8 = 17;

mod field {
    use core::ops::Range;

    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const FLAGS: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
    pub const SRC_PORT: Range<usize> = 20..22;
    pub const DST_PORT: Range<usize> = 22..24;
    pub const UDP_LEN: Range<usize> = 24..26;
}

/// Why bytes are not (or cannot become) an outer IPv4/UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnderlayError {
    /// Shorter than the outer headers.
    #[error("buffer shorter than the outer IPv4 and UDP headers")]
    Truncated,
    /// The payload does not fit in one IPv4 packet.
    #[error("datagram too long for one IPv4 packet")]
    TooLong,
    /// Not IPv4 without options carrying UDP.
    #[error("not an IPv4 (no options) UDP packet")]
    NotIpv4Udp,
}

/// A view of an outer IPv4 + UDP packet: headers, then the VXLAN datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderlayPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UnderlayPacket<T> {
    /// Wraps `buffer` without checks; accessors panic if it is shorter than [`OUTER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        UnderlayPacket { buffer }
    }

    /// Wraps `buffer` if it can hold the outer headers.
    pub fn new_checked(buffer: T) -> Result<Self, UnderlayError> {
        if buffer.as_ref().len() < OUTER_LEN {
            return Err(UnderlayError::Truncated);
        }
        Ok(UnderlayPacket { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.bytes()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn ip_at(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.bytes()[r];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn total_len(&self) -> u16 {
        self.u16_at(field::TOTAL_LEN)
    }

    pub fn udp_len(&self) -> u16 {
        self.u16_at(field::UDP_LEN)
    }

    pub fn source(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip_at(field::SRC_ADDR), self.u16_at(field::SRC_PORT))
    }

    pub fn destination(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip_at(field::DST_ADDR), self.u16_at(field::DST_PORT))
    }

    /// The UDP payload: the VXLAN datagram.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[OUTER_LEN..]
    }

    /// The whole packet, headers included, as handed to the raw socket.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UnderlayPacket<T> {
    /// Points the packet at another VTEP (head-end replication). Nothing else changes: the
    /// kernel computes the IPv4 checksum and the UDP checksum is zero.
    pub fn set_destination(&mut self, to: SocketAddrV4) {
        let b = self.buffer.as_mut();
        b[field::DST_ADDR].copy_from_slice(&to.ip().octets());
        b[field::DST_PORT].copy_from_slice(&to.port().to_be_bytes());
    }
}

/// The outer headers as decided by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnderlayRepr {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    /// Length of the UDP payload (the VXLAN datagram).
    pub payload_len: usize,
}

impl UnderlayRepr {
    /// Reads the headers back (checks that they are IPv4 without options carrying UDP).
    pub fn parse<T: AsRef<[u8]>>(packet: &UnderlayPacket<T>) -> Result<Self, UnderlayError> {
        let b = packet.bytes();
        if b[field::VERSION_IHL] != IPV4_VERSION_IHL || b[field::PROTOCOL] != PROTOCOL_UDP {
            return Err(UnderlayError::NotIpv4Udp);
        }
        Ok(UnderlayRepr {
            source: packet.source(),
            destination: packet.destination(),
            payload_len: usize::from(packet.udp_len()).saturating_sub(8),
        })
    }

    /// Writes the headers into the first [`OUTER_LEN`] bytes of `packet`. Refused (nothing
    /// written) when the payload would not fit in one IPv4 packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UnderlayPacket<T>,
    ) -> Result<(), UnderlayError> {
        let udp_len = u16::try_from(self.payload_len + 8).map_err(|_| UnderlayError::TooLong)?;
        let total =
            u16::try_from(self.payload_len + OUTER_LEN).map_err(|_| UnderlayError::TooLong)?;
        let b = &mut packet.buffer.as_mut()[..OUTER_LEN];
        // Identification and checksum zero: the kernel fills them in.
        b.fill(0);
        b[field::VERSION_IHL] = IPV4_VERSION_IHL;
        b[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
        b[field::FLAGS] = IPV4_DONT_FRAGMENT;
        b[field::TTL] = TTL;
        b[field::PROTOCOL] = PROTOCOL_UDP;
        b[field::SRC_ADDR].copy_from_slice(&self.source.ip().octets());
        b[field::SRC_PORT].copy_from_slice(&self.source.port().to_be_bytes());
        b[field::UDP_LEN].copy_from_slice(&udp_len.to_be_bytes());
        packet.set_destination(self.destination);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4HeaderSlice, UdpHeaderSlice};

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, last), port)
    }

    fn emitted(payload_len: usize) -> Vec<u8> {
        let mut buf = vec![0xaa; OUTER_LEN + payload_len];
        let repr = UnderlayRepr {
            source: addr(1, 51000),
            destination: addr(2, 4789),
            payload_len,
        };
        let mut packet = UnderlayPacket::new_checked(&mut buf[..]).expect("room");
        repr.emit(&mut packet).expect("fits");
        assert_eq!(UnderlayRepr::parse(&packet), Ok(repr));
        buf
    }

    #[test]
    fn headers_parse_back_with_etherparse() {
        let h = emitted(100);
        let ip = Ipv4HeaderSlice::from_slice(&h).expect("ipv4");
        assert_eq!(ip.total_len(), 128);
        assert_eq!(ip.protocol().0, 17);
        assert_eq!(ip.ttl(), 64);
        assert!(ip.dont_fragment());
        assert_eq!(ip.identification(), 0);
        assert_eq!(ip.source_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(ip.destination_addr(), Ipv4Addr::new(192, 0, 2, 2));
        let udp = UdpHeaderSlice::from_slice(&h[20..]).expect("udp");
        assert_eq!(
            (udp.source_port(), udp.destination_port(), udp.length()),
            (51000, 4789, 108)
        );
        assert_eq!(udp.checksum(), 0);
        assert!(
            h[OUTER_LEN..].iter().all(|&b| b == 0xaa),
            "payload untouched"
        );
    }

    #[test]
    fn set_destination_rewrites_only_the_destination() {
        let mut h = emitted(100);
        let before = h.clone();
        let mut packet = UnderlayPacket::new_checked(&mut h[..]).expect("room");
        packet.set_destination(addr(9, 8472));
        assert_eq!(packet.destination(), addr(9, 8472));
        assert_eq!(packet.source(), addr(1, 51000));
        let ip = Ipv4HeaderSlice::from_slice(&h).expect("ipv4");
        assert_eq!(ip.destination_addr(), Ipv4Addr::new(192, 0, 2, 9));
        let udp = UdpHeaderSlice::from_slice(&h[20..]).expect("udp");
        assert_eq!(udp.destination_port(), 8472);
        let changed: Vec<usize> = (0..h.len()).filter(|&i| h[i] != before[i]).collect();
        assert!(
            changed
                .iter()
                .all(|i| (16..20).contains(i) || (22..24).contains(i)),
            "only destination bytes change: {changed:?}"
        );
    }

    #[test]
    fn getters_read_the_emitted_packet() {
        let h = emitted(100);
        let packet = UnderlayPacket::new_checked(&h[..]).expect("room");
        assert_eq!((packet.total_len(), packet.udp_len()), (128, 108));
        assert_eq!(packet.payload(), &h[OUTER_LEN..]);
        assert_eq!(packet.payload().len(), 100);
        assert_eq!(packet.as_bytes(), &h[..]);
    }

    /// Each of parse's two conditions refuses on its own: an IPv4 header with options, and a
    /// protocol other than UDP.
    #[test]
    fn parse_refuses_options_and_other_protocols() {
        let mut options = emitted(10);
        options[0] = 0x46;
        let mut tcp = emitted(10);
        tcp[9] = 6;
        for h in [options, tcp] {
            assert_eq!(
                UnderlayRepr::parse(&UnderlayPacket::new_checked(&h[..]).expect("room")),
                Err(UnderlayError::NotIpv4Udp),
                "{:02x?}",
                &h[..OUTER_LEN]
            );
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(
            UnderlayPacket::new_checked(&[0u8; OUTER_LEN - 1][..]),
            Err(UnderlayError::Truncated)
        );
        let mut buf = [0u8; OUTER_LEN];
        let mut packet = UnderlayPacket::new_checked(&mut buf[..]).expect("room");
        let repr = UnderlayRepr {
            source: addr(1, 1),
            destination: addr(2, 2),
            payload_len: 70_000,
        };
        assert_eq!(repr.emit(&mut packet), Err(UnderlayError::TooLong));
        assert_eq!(buf, [0u8; OUTER_LEN], "nothing written");
        assert_eq!(
            UnderlayRepr::parse(&UnderlayPacket::new_unchecked(&buf[..])),
            Err(UnderlayError::NotIpv4Udp)
        );
        let largest = UnderlayRepr {
            payload_len: usize::from(u16::MAX) - OUTER_LEN,
            ..repr
        };
        let mut buf = [0u8; OUTER_LEN];
        assert_eq!(
            largest.emit(&mut UnderlayPacket::new_unchecked(&mut buf[..])),
            Ok(())
        );
    }
}
