//! The sans-IO switch.

pub mod seal;
pub mod time;

pub use time::Timestamp;
