//! Packet formats.

pub mod sealed;
