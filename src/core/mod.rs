//! The sans-IO switch: the MAC table, the forwarding decision, counters. No syscalls, no
//! threads, no clocks: time is a [`Timestamp`] the caller passes in.

#![forbid(unsafe_code)]

pub mod counters;
pub mod dns;
pub mod fdb;
pub mod forward;
pub mod gateway;
pub mod ipam;
pub mod offload;
pub mod seal;
pub mod switch;
pub mod sync;
pub mod time;

pub use counters::{DropReason, Lane, Traffic, TrafficSnapshot};
pub use fdb::{Fdb, FdbConfig, FdbEntry, Learned, Location, PortId, Vtep};
pub use switch::{Encapsulated, Forward, PortSecurity, Sends, Switch, SwitchConfig, SwitchError};
pub use time::Timestamp;
