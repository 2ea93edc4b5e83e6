//! Packet formats, in the smoltcp style: a zero-copy view over `T: AsRef<[u8]>` with a checked
//! constructor, plus an owned `Repr` with `parse`/`emit`. Every byte layout the switch reads or
//! writes lives here, once.
//!
//! - [`vxlan`] (`VxlanPacket` + `VxlanRepr`), [`sealed`] (`EnvelopeHeader` + `EnvelopeRepr`) and
//!   [`underlay`] (`UnderlayPacket` + `UnderlayRepr`): views and reprs.
//! - [`ethernet`]: deliberately not a view. The switch only ever reads an inner frame's header
//!   ([`classify`]) and never writes one; parsing is `etherparse`'s.
//! - [`handshake`]: the control message an encrypted network's hosts exchange inside sealed
//!   envelopes (a plain `Repr`: it only ever exists as decrypted plaintext).
//! - [`arp`]: builds and reads the one ARP packet the address probe needs.
//! - [`virtio_net`]: a plain header struct with `parse`/`to_bytes`; it is a fixed-size
//!   little-endian struct in front of the frame, copied in and out whole.
//! - [`tcpip`]: deliberately a parsed layout, not a view: segmentation parses one superframe's
//!   headers once and rewrites them into many segments of different lengths.
//!
//! Nothing in this module panics on untrusted input once a view has been made with
//! `new_checked`; the only calls that can panic are the `new_unchecked` + accessor paths on
//! buffers the caller has not checked, and `emit` into a buffer shorter than `HEADER_LEN` (a
//! caller bug, never network input).

#![forbid(unsafe_code)]

pub mod arp;
pub mod ethernet;
pub mod handshake;
pub mod sealed;
pub mod tcpip;
pub mod underlay;
pub mod virtio_net;
pub mod vxlan;

pub use ethernet::{classify, flow_hash, udp_source_port, EtherType, FrameInfo, Mac, MacError};
pub use vxlan::{Vni, VxlanPacket, VxlanRepr};

/// Why bytes from the network could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("buffer too short")]
    Truncated,
    #[error("VXLAN I flag (valid VNI) is clear")]
    NoVniFlag,
    #[error("VNI {0} is outside 1..=16777215")]
    InvalidVni(u32),
}
