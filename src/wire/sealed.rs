//! The sealed envelope: how an encrypted network carries an Ethernet frame inside VXLAN.
//!
//! A sealed VXLAN datagram is a UDP payload laid out as follows (offsets in bytes, `N` is the
//! datagram length):
//!
//! ```text
//!  0..8      VXLAN header (RFC 7348): flags 0x08, 3 reserved bytes, VNI (24 bit), 1 reserved byte
//!  8..28     envelope header, 20 bytes:
//!              [0]      version/type = 0x02 ("sealed v2")
//!              [1]      key_id: id of the network key this datagram is sealed with
//!              [2]      accept_id: id of the newest key the sender accepts (rotation signal)
//!              [3]      flags: bit 0 CONTROL (the plaintext is a control message, not a
//!                       frame); other bits 0 on send, ignored on receive (authenticated as sent)
//!              [4..12]  sender_id: u64 big-endian, random per sender per daemon start
//!              [12..20] counter: u64 big-endian, per (sender, key), starts at 0, strictly increasing
//! 28..N-16   ciphertext of the inner Ethernet frame, or of a control message
//!            ([`crate::wire::handshake`]), same length as the plaintext
//! N-16..N    AES-256-GCM tag
//! ```
//!
//! Version 2 differs from version 1 only by the CONTROL flag, but a v2 receiver accepts data
//! only from senders it has verified with a handshake (see `crate::core::seal`), so the two do
//! not interoperate and a v1 datagram is refused by its version byte.
//!
//! The VXLAN header belongs to the caller; this module describes bytes `8..N`: the 20-byte
//! envelope header followed by the ciphertext and the tag. [`vxlan::canonical_header`] builds the
//! VXLAN header that goes into the additional authenticated data (AAD): flags 0x08, reserved
//! bytes zero and the VNI, so noise in the reserved bits on the wire never breaks
//! authentication while the VNI is authenticated. The AAD is that canonical header followed by
//! the 20 envelope header bytes exactly as sent; the nonce is four zero bytes followed by the
//! counter (big-endian). The cryptography lives in `crate::core::seal`.
//!
//! Sealing adds [`SEAL_OVERHEAD`] = 36 bytes (20 header + 16 tag) to a plain VXLAN datagram.
//!
//! # Panics
//!
//! [`EnvelopeHeader::new_checked`] and [`EnvelopeRepr::parse`] never panic: they return an
//! [`Error`] for short input or an unknown version. After `new_checked` succeeded, no getter or
//! setter panics. Only a view built with [`EnvelopeHeader::new_unchecked`] over a buffer shorter
//! than [`MIN_LEN`] panics on access; use it only on buffers whose length you have checked.

#![forbid(unsafe_code)]

use super::vxlan;

/// Length of the envelope header.
pub const HEADER_LEN: usize = 20;
/// Length of the AES-256-GCM authentication tag at the end of the datagram.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed datagram carries beyond a plain VXLAN datagram of the same frame.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The shortest valid envelope: a header and a tag around an empty frame.
pub const MIN_LEN: usize = HEADER_LEN + TAG_LEN;
/// Length of the additional authenticated data: canonical VXLAN header and envelope header.
pub const AAD_LEN: usize = vxlan::HEADER_LEN + HEADER_LEN;
/// The version/type byte of a "sealed v2" envelope.
pub const VERSION_V2: u8 = 0x02;
/// Flags bit: the plaintext is a control message ([`crate::wire::handshake`]), not a frame.
pub const FLAG_CONTROL: u8 = 0x01;

mod field {
    use core::ops::Range;

    pub const VERSION: usize = 0;
    pub const KEY_ID: usize = 1;
    pub const ACCEPT_ID: usize = 2;
    pub const FLAGS: usize = 3;
    pub const SENDER_ID: Range<usize> = 4..12;
    pub const COUNTER: Range<usize> = 12..20;
}

/// Why bytes are not a sealed envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than a header plus a tag.
    #[error("sealed envelope truncated: {len} bytes, need at least {MIN_LEN}")]
    Truncated {
        /// Length of the bytes given.
        len: usize,
    },
    /// The version/type byte is not one this build understands.
    #[error("unknown sealed envelope version {0:#04x} (this build speaks {VERSION_V2:#04x})")]
    BadVersion(u8),
}

/// A zero-copy view of a sealed envelope: header, ciphertext and tag (datagram bytes `8..N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EnvelopeHeader<T> {
    /// Wrap `buffer` without checks. Accessors panic if it is shorter than [`MIN_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer`, checking its length and version: the only constructor for untrusted bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let envelope = Self::new_unchecked(buffer);
        envelope.check()?;
        Ok(envelope)
    }

    /// Check that the buffer is long enough for header and tag and speaks version 2.
    pub fn check(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        if data.len() < MIN_LEN {
            return Err(Error::Truncated { len: data.len() });
        }
        match data[field::VERSION] {
            VERSION_V2 => Ok(()),
            other => Err(Error::BadVersion(other)),
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version/type byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Id of the key the datagram is sealed with.
    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[field::KEY_ID]
    }

    /// Id of the newest key the sender accepts.
    pub fn accept_id(&self) -> u8 {
        self.buffer.as_ref()[field::ACCEPT_ID]
    }

    /// The flags byte ([`FLAG_CONTROL`]; other bits are zero from conforming senders).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The sender's random id.
    pub fn sender_id(&self) -> u64 {
        u64::from_be_bytes(self.array(field::SENDER_ID.start))
    }

    /// The sender's counter for this key, also the nonce.
    pub fn counter(&self) -> u64 {
        u64::from_be_bytes(self.array(field::COUNTER.start))
    }

    /// The 20 header bytes exactly as they are (they go into the AAD).
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        self.array_ref()
    }

    /// The encrypted frame.
    pub fn ciphertext(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[HEADER_LEN..data.len() - TAG_LEN]
    }

    /// The authentication tag.
    pub fn tag(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[data.len() - TAG_LEN..]
    }

    fn array(&self, start: usize) -> [u8; 8] {
        let mut out = [0; 8];
        out.copy_from_slice(&self.buffer.as_ref()[start..start + 8]);
        out
    }

    fn array_ref(&self) -> &[u8; HEADER_LEN] {
        match self.buffer.as_ref().first_chunk() {
            Some(header) => header,
            None => panic!("envelope view shorter than its header (built unchecked)"),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EnvelopeHeader<T> {
    /// Set the version/type byte.
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    /// Set the id of the sealing key.
    pub fn set_key_id(&mut self, value: u8) {
        self.buffer.as_mut()[field::KEY_ID] = value;
    }

    /// Set the id of the newest accepted key.
    pub fn set_accept_id(&mut self, value: u8) {
        self.buffer.as_mut()[field::ACCEPT_ID] = value;
    }

    /// Set the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Set the sender id.
    pub fn set_sender_id(&mut self, value: u64) {
        self.buffer.as_mut()[field::SENDER_ID].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the counter.
    pub fn set_counter(&mut self, value: u64) {
        self.buffer.as_mut()[field::COUNTER].copy_from_slice(&value.to_be_bytes());
    }

    /// The encrypted frame, mutable (decryption happens in place).
    pub fn ciphertext_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let end = data.len() - TAG_LEN;
        &mut data[HEADER_LEN..end]
    }

    /// The authentication tag, mutable.
    pub fn tag_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let start = data.len() - TAG_LEN;
        &mut data[start..]
    }
}

/// The envelope header's fields, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvelopeRepr {
    /// Id of the key the datagram is sealed with.
    pub key_id: u8,
    /// Id of the newest key the sender accepts.
    pub accept_id: u8,
    /// The sender's random id.
    pub sender_id: u64,
    /// The sender's counter for this key.
    pub counter: u64,
    /// The plaintext is a control message, not a frame.
    pub control: bool,
}

impl EnvelopeRepr {
    /// Read the header fields. Never panics: re-checks length and version.
    pub fn parse<T: AsRef<[u8]>>(envelope: &EnvelopeHeader<T>) -> Result<Self, Error> {
        envelope.check()?;
        Ok(Self {
            key_id: envelope.key_id(),
            accept_id: envelope.accept_id(),
            sender_id: envelope.sender_id(),
            counter: envelope.counter(),
            control: envelope.flags() & FLAG_CONTROL != 0,
        })
    }

    /// Length of the envelope (header, ciphertext, tag) around a frame of `frame_len` bytes.
    pub const fn envelope_len(frame_len: usize) -> usize {
        frame_len + SEAL_OVERHEAD
    }

    /// Write the header: version 2, the flags and the fields. Leaves ciphertext and tag alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, envelope: &mut EnvelopeHeader<T>) {
        envelope.set_version(VERSION_V2);
        envelope.set_key_id(self.key_id);
        envelope.set_accept_id(self.accept_id);
        envelope.set_flags(if self.control { FLAG_CONTROL } else { 0 });
        envelope.set_sender_id(self.sender_id);
        envelope.set_counter(self.counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Header of a v2 envelope: key 0x5a, accepting 0xc3, sender 0x0102030405060708,
    /// counter 0x1122334455667788, then an empty frame's (dummy) tag.
    const FIXTURE: [u8; MIN_LEN] = [
        0x02, 0x5a, 0xc3, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x11, 0x22, 0x33,
        0x44, 0x55, 0x66, 0x77, 0x88, 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9,
        0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
    ];

    fn fixture_repr() -> EnvelopeRepr {
        EnvelopeRepr {
            key_id: 0x5a,
            accept_id: 0xc3,
            sender_id: 0x0102_0304_0506_0708,
            counter: 0x1122_3344_5566_7788,
            control: false,
        }
    }

    #[test]
    fn parses_fixture() {
        let envelope = EnvelopeHeader::new_checked(&FIXTURE[..]).expect("valid fixture");
        assert_eq!(EnvelopeRepr::parse(&envelope), Ok(fixture_repr()));
        assert_eq!(envelope.flags(), 0);
        assert_eq!(envelope.version(), VERSION_V2);
        assert!(envelope.ciphertext().is_empty());
        assert_eq!(envelope.tag(), &FIXTURE[HEADER_LEN..]);
        assert_eq!(&envelope.header()[..], &FIXTURE[..HEADER_LEN]);
    }

    #[test]
    fn emits_fixture() {
        let mut buf = [0xffu8; MIN_LEN];
        buf[HEADER_LEN..].copy_from_slice(&FIXTURE[HEADER_LEN..]);
        fixture_repr().emit(&mut EnvelopeHeader::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FIXTURE);
    }

    #[test]
    fn rejects_short_and_unknown_versions() {
        for len in 0..MIN_LEN {
            assert_eq!(
                EnvelopeHeader::new_checked(&FIXTURE[..len]).err(),
                Some(Error::Truncated { len })
            );
        }
        let mut bytes = FIXTURE;
        for version in (0..=u8::MAX).filter(|&v| v != VERSION_V2) {
            bytes[0] = version;
            assert_eq!(
                EnvelopeHeader::new_checked(&bytes[..]).err(),
                Some(Error::BadVersion(version))
            );
            assert_eq!(
                EnvelopeRepr::parse(&EnvelopeHeader::new_unchecked(&bytes[..])),
                Err(Error::BadVersion(version))
            );
            // The getter reads the byte as it is, whatever it says.
            assert_eq!(EnvelopeHeader::new_unchecked(&bytes[..]).version(), version);
        }
        // parse re-checks, so even an unchecked short view cannot make it panic.
        assert_eq!(
            EnvelopeRepr::parse(&EnvelopeHeader::new_unchecked(&FIXTURE[..3])),
            Err(Error::Truncated { len: 3 })
        );
    }

    #[test]
    fn control_flag_is_read_and_other_flags_ignored() {
        let mut bytes = FIXTURE;
        bytes[3] = 0xa4;
        let envelope = EnvelopeHeader::new_checked(&bytes[..]).expect("unknown flags ignored");
        assert_eq!(EnvelopeRepr::parse(&envelope), Ok(fixture_repr()));
        assert_eq!(envelope.flags(), 0xa4);
        bytes[3] = 0xa5;
        let envelope = EnvelopeHeader::new_checked(&bytes[..]).expect("control");
        let control = EnvelopeRepr {
            control: true,
            ..fixture_repr()
        };
        assert_eq!(EnvelopeRepr::parse(&envelope), Ok(control));
        let mut buf = [0u8; MIN_LEN];
        control.emit(&mut EnvelopeHeader::new_unchecked(&mut buf[..]));
        assert_eq!(buf[3], FLAG_CONTROL);
    }

    #[test]
    fn mutable_payload_views() {
        let mut buf = [0u8; MIN_LEN + 3];
        let mut envelope = EnvelopeHeader::new_unchecked(&mut buf[..]);
        envelope.ciphertext_mut().copy_from_slice(&[1, 2, 3]);
        envelope.tag_mut().fill(9);
        assert_eq!(&buf[HEADER_LEN..HEADER_LEN + 3], &[1, 2, 3]);
        assert!(buf[HEADER_LEN + 3..].iter().all(|&b| b == 9));
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(
            key_id: u8, accept_id: u8, sender_id: u64, counter: u64, control: bool,
            frame_len in 0usize..64,
        ) {
            let repr = EnvelopeRepr { key_id, accept_id, sender_id, counter, control };
            let mut buf = vec![0u8; EnvelopeRepr::envelope_len(frame_len)];
            repr.emit(&mut EnvelopeHeader::new_unchecked(&mut buf[..]));
            let envelope = EnvelopeHeader::new_checked(&buf[..]).expect("emitted is valid");
            prop_assert_eq!(EnvelopeRepr::parse(&envelope), Ok(repr));
            prop_assert_eq!(envelope.ciphertext().len(), frame_len);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(envelope) = EnvelopeHeader::new_checked(&bytes[..]) {
                let repr = EnvelopeRepr::parse(&envelope).expect("checked view parses");
                prop_assert_eq!(repr.sender_id, envelope.sender_id());
                prop_assert_eq!(
                    envelope.header().len() + envelope.ciphertext().len() + envelope.tag().len(),
                    bytes.len()
                );
                let _ = envelope.flags();
            } else {
                prop_assert!(bytes.len() < MIN_LEN || bytes[0] != VERSION_V2);
            }
            let _ = EnvelopeRepr::parse(&EnvelopeHeader::new_unchecked(&bytes[..]));
        }
    }
}
