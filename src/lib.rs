//! vswitch: a pure-userspace VXLAN switch.
//!
//! The crate is split along one line: [`wire`] and [`core`] are the sans-IO heart (packet
//! formats, the MAC table, the forwarding decision, sealing) and never touch a file descriptor;
//! everything else is the I/O shell that moves bytes between TAPs, the underlay socket and the
//! core.

pub mod cli;
pub mod cni;
pub mod control;
pub mod core;
pub mod daemon;
pub mod dataplane;
pub mod docker;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod netns;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod user;
pub mod wire;
