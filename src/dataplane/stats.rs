//! The I/O shell's own counters: TAP and underlay I/O errors, datagrams moved, offload work.
//! Drops the switch decides are counted by reason in the core, not here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counters of the I/O shell itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneStats {
    pub tap_read_errors: u64,
    /// Frames that could not be written to a port (a TAP, or the daemon's own probe port).
    pub tap_write_errors: u64,
    pub underlay_rx_datagrams: u64,
    pub underlay_tx_datagrams: u64,
    pub underlay_send_errors: u64,
    pub underlay_recv_errors: u64,
    /// TCP superframes read from TAPs (TSO) and cut into segments.
    #[serde(default)]
    pub superframes_segmented: u64,
    /// Superframes written to TAPs, coalesced from segments off the underlay (userspace GRO).
    #[serde(default)]
    pub superframes_coalesced: u64,
    /// Frames from TAPs dropped because their offload request could not be honoured (a
    /// malformed virtio-net header, a non-TCP superframe, a bad checksum offset).
    #[serde(default)]
    pub offload_errors: u64,
    /// Frames from the underlay whose TCP/UDP checksum a checksum-offloading sender left
    /// partial (the pseudo-header sum only), completed before they went to a TAP.
    #[serde(default)]
    pub checksums_completed: u64,
    /// Frames for a network's gateway (ARP, ping, DNS) dropped because the services worker's
    /// queue, or the gateway's own, was full.
    #[serde(default)]
    pub gateway_queue_full: u64,
    /// DNS queries the gateways received, forwarded to the host's resolvers, answered
    /// SERVFAIL (no resolver answered in time), and dropped as malformed.
    #[serde(default)]
    pub dns_queries: u64,
    #[serde(default)]
    pub dns_forwarded: u64,
    #[serde(default)]
    pub dns_servfail: u64,
    #[serde(default)]
    pub dns_malformed: u64,
    /// Datagrams the kernel dropped because the underlay socket's receive queue was full
    /// (`SO_RXQ_OVFL`): the switch did not read fast enough.
    #[serde(default)]
    pub underlay_rx_overflows: u64,
    /// Frames the containers sent that their TAP's queue had no room for (the interfaces' own
    /// `tx_dropped`, summed over the current ports; see each port's `overruns`).
    #[serde(default)]
    pub tap_queue_overruns: u64,
}

/// The live counters behind [`DataplaneStats`], shared by the workers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub tap_read_errors: AtomicU64,
    pub tap_write_errors: AtomicU64,
    pub underlay_rx: AtomicU64,
    pub underlay_tx: AtomicU64,
    pub underlay_send_errors: AtomicU64,
    pub underlay_recv_errors: AtomicU64,
    pub superframes_segmented: AtomicU64,
    pub superframes_coalesced: AtomicU64,
    pub offload_errors: AtomicU64,
    pub checksums_completed: AtomicU64,
    pub gateway_queue_full: AtomicU64,
    pub dns_queries: AtomicU64,
    pub dns_forwarded: AtomicU64,
    pub dns_servfail: AtomicU64,
    pub dns_malformed: AtomicU64,
    /// Each worker's underlay socket's `SO_RXQ_OVFL` count: cumulative, so stored, not added.
    pub underlay_rx_overflows: [AtomicU64; super::MAX_WORKERS],
}

impl Counters {
    pub fn snapshot(&self) -> DataplaneStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DataplaneStats {
            tap_read_errors: get(&self.tap_read_errors),
            tap_write_errors: get(&self.tap_write_errors),
            underlay_rx_datagrams: get(&self.underlay_rx),
            underlay_tx_datagrams: get(&self.underlay_tx),
            underlay_send_errors: get(&self.underlay_send_errors),
            underlay_recv_errors: get(&self.underlay_recv_errors),
            superframes_segmented: get(&self.superframes_segmented),
            superframes_coalesced: get(&self.superframes_coalesced),
            offload_errors: get(&self.offload_errors),
            checksums_completed: get(&self.checksums_completed),
            gateway_queue_full: get(&self.gateway_queue_full),
            dns_queries: get(&self.dns_queries),
            dns_forwarded: get(&self.dns_forwarded),
            dns_servfail: get(&self.dns_servfail),
            dns_malformed: get(&self.dns_malformed),
            underlay_rx_overflows: self.underlay_rx_overflows.iter().map(get).sum(),
            // Read from the interfaces by `Dataplane::port_overruns`, not counted here.
            tap_queue_overruns: 0,
        }
    }
}
