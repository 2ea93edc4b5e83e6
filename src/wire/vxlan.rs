//! The VXLAN header (RFC 7348 §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|S|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! On send, the I flag is set and every reserved bit is zero. On receive, reserved bits are
//! ignored (RFC 7348: "MUST be ignored on receipt") and a header whose I flag is clear is refused.
//! vswitch gives one reserved flag bit a meaning of its own: `S` (0x02) marks a sealed
//! (encrypted) datagram, so that a receiver never mistakes ciphertext for a plain frame or the
//! other way round. The kernel's vxlan device drops datagrams with unknown flags set, so a
//! sealed datagram can never leak into a kernel VTEP as a garbled frame.

use core::fmt;

use super::WireError;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI field is valid.
pub const FLAG_I: u8 = 0x08;
/// vswitch's S flag: the payload is a sealed envelope, not an Ethernet frame.
pub const FLAG_SEALED: u8 = 0x02;
/// Bytes added in front of an inner frame on an IPv4 underlay: outer IPv4 (20) + UDP (8) + VXLAN (8)
/// + the inner Ethernet header (14), which the inner MTU does not count.
pub const IPV4_OVERHEAD: usize = 20 + 8 + HEADER_LEN + 14;
/// The IANA-assigned VXLAN UDP port.
pub const UDP_PORT: u16 = 4789;

/// The header sealing authenticates for `vni` (see [`super::sealed`]): the I flag, reserved
/// bits zero, the VNI. Only the low 24 bits of `vni` are used (a VNI has 24 bits).
pub fn canonical_header(vni: u32) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    VxlanPacket::new_unchecked(&mut b[..]).set_header(FLAG_I, vni);
    b
}

/// A VXLAN network identifier: 24 bits, and never 0 (1..=16 777 215 name networks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vni(u32);

impl Vni {
    pub const MAX: u32 = 0x00ff_ffff;

    /// A VNI for a network; 0 and values over 24 bits are refused.
    pub const fn new(value: u32) -> Result<Vni, WireError> {
        if value == 0 || value > Self::MAX {
            Err(WireError::InvalidVni(value))
        } else {
            Ok(Vni(value))
        }
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for Vni {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Vni {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Vni, D::Error> {
        let v = u32::deserialize(d)?;
        Vni::new(v).map_err(serde::de::Error::custom)
    }
}

/// A zero-copy view of a VXLAN header and what follows it.
#[derive(Debug, Clone)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Wraps a buffer without checking its length; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> VxlanPacket<T> {
        VxlanPacket { buffer }
    }

    /// Wraps a buffer, refusing one too short to hold the header.
    pub fn new_checked(buffer: T) -> Result<VxlanPacket<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The 24-bit VNI field as sent (may be 0 or anything else a peer put there).
    pub fn vni_field(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }

    pub fn has_vni(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    pub fn is_sealed(&self) -> bool {
        self.flags() & FLAG_SEALED != 0
    }

    /// What follows the header: the inner Ethernet frame, or a sealed envelope.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Writes a complete header: the given flags, zero reserved bits, the VNI.
    pub fn set_header(&mut self, flags: u8, vni: u32) {
        let b = self.buffer.as_mut();
        let v = vni.to_be_bytes();
        b[..HEADER_LEN].copy_from_slice(&[flags, 0, 0, 0, v[1], v[2], v[3], 0]);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The meaning of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    pub vni: Vni,
    /// The payload is a sealed envelope (vswitch's S flag).
    pub sealed: bool,
}

impl VxlanRepr {
    /// Reads a header: refuses a clear I flag and an invalid VNI; ignores reserved bits.
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> Result<VxlanRepr, WireError> {
        packet.check_len()?;
        if !packet.has_vni() {
            return Err(WireError::NoVniFlag);
        }
        Ok(VxlanRepr {
            vni: Vni::new(packet.vni_field())?,
            sealed: packet.is_sealed(),
        })
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes (panics on a shorter buffer).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        let flags = if self.sealed {
            FLAG_I | FLAG_SEALED
        } else {
            FLAG_I
        };
        packet.set_header(flags, self.vni.get());
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.emit(&mut VxlanPacket::new_unchecked(&mut b[..]));
        b
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_header_layout() {
        assert_eq!(
            canonical_header(0x00ab_cdef),
            [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]
        );
        assert_eq!(canonical_header(0xff00_0001), canonical_header(1));
    }
}
