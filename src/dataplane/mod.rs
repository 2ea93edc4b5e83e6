//! The I/O loop's ports: TAP devices now; the underlay socket and the workers join them here.

pub mod tap;

pub use tap::{Offload, Tap, TapOptions};
