//! The sans-IO switch.

pub mod time;

pub use time::Timestamp;
