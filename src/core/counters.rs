//! Counters: traffic per port, per peer and per network, and drops by reason. All atomics, so the
//! data path counts from several workers without locks; snapshots are plain structs for `stats`.
//!
//! Every drop is counted once, here, under its [`DropReason`] name: the sealer and the wire
//! parsers return why they refused something (`OpenDrop`, `SealDrop`, `WireError`, converted
//! below) and count nothing themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use super::seal::{OpenDrop, SealDrop};
use crate::wire::WireError;

/// Why the switch dropped a frame or datagram. Each is a counter in `vswitch stats`, under its
/// [`name`](DropReason::name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Too short to hold an Ethernet header (from a port) or a VXLAN header (from the underlay).
    Truncated,
    /// A VXLAN header whose I flag is clear.
    NoVniFlag,
    /// A VXLAN header with VNI 0.
    InvalidVni,
    /// A datagram for a VNI this switch has no network for.
    UnknownVni,
    /// A datagram from an address that is not a configured peer.
    UnknownVtep,
    /// A frame from a port the switch does not know (detached mid-flight).
    UnknownPort,
    /// An 802.1Q/802.1ad tagged inner frame (RFC 7348 §6.1).
    VlanTagged,
    /// A multicast, broadcast or all-zero source MAC.
    BadSourceMac,
    /// A unicast frame whose destination lives on the port it came from.
    SamePort,
    /// A frame from the underlay for a MAC that lives at another VTEP (split horizon).
    SplitHorizon,
    /// A plain datagram for a sealed network.
    NotSealed,
    /// A sealed datagram for a plain network.
    UnexpectedSeal,
    /// A sealed datagram whose envelope is malformed or has an unknown version.
    BadEnvelope,
    /// A sealed datagram under a key id this host does not hold.
    UnknownKey,
    /// A sealed datagram that failed authentication (forged, corrupted, or another key).
    AuthFailed,
    /// A sealed datagram already received, or older than the replay window or than its
    /// sender's verification.
    Replayed,
    /// An authentic sealed datagram from a sender not verified yet by a handshake (it could be
    /// a replay); the sender is challenged and accepted once it answered.
    Unverified,
    /// The send counter is exhausted; the network needs a new key.
    KeyExhausted,
    /// A frame too large to encapsulate without fragmenting the underlay.
    TooBig,
    /// A frame from a port with port security whose source MAC, or ARP/IP source address, is
    /// not the port's own.
    PortSecurity,
    /// A broadcast or multicast frame over its port's rate limit (storm control).
    StormControl,
    /// A frame whose source MAC lives at a local port elsewhere (a MAC is not moved away from
    /// a live local port by a frame from somewhere else).
    MacConflict,
}

impl DropReason {
    pub const ALL: [DropReason; 22] = [
        DropReason::Truncated,
        DropReason::NoVniFlag,
        DropReason::InvalidVni,
        DropReason::UnknownVni,
        DropReason::UnknownVtep,
        DropReason::UnknownPort,
        DropReason::VlanTagged,
        DropReason::BadSourceMac,
        DropReason::SamePort,
        DropReason::SplitHorizon,
        DropReason::NotSealed,
        DropReason::UnexpectedSeal,
        DropReason::BadEnvelope,
        DropReason::UnknownKey,
        DropReason::AuthFailed,
        DropReason::Replayed,
        DropReason::Unverified,
        DropReason::KeyExhausted,
        DropReason::TooBig,
        DropReason::PortSecurity,
        DropReason::StormControl,
        DropReason::MacConflict,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The stable name used in `vswitch stats` and its JSON.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::NoVniFlag => "no_vni_flag",
            DropReason::InvalidVni => "invalid_vni",
            DropReason::UnknownVni => "unknown_vni",
            DropReason::UnknownVtep => "unknown_vtep",
            DropReason::UnknownPort => "unknown_port",
            DropReason::VlanTagged => "vlan_tagged",
            DropReason::BadSourceMac => "bad_source_mac",
            DropReason::SamePort => "same_port",
            DropReason::SplitHorizon => "split_horizon",
            DropReason::NotSealed => "not_sealed",
            DropReason::UnexpectedSeal => "unexpected_seal",
            DropReason::BadEnvelope => "bad_envelope",
            DropReason::UnknownKey => "unknown_key",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replayed => "replayed",
            DropReason::Unverified => "unverified",
            DropReason::KeyExhausted => "key_exhausted",
            DropReason::TooBig => "too_big",
            DropReason::PortSecurity => "port_security",
            DropReason::StormControl => "storm_control",
            DropReason::MacConflict => "mac_conflict",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl From<OpenDrop> for DropReason {
    fn from(e: OpenDrop) -> DropReason {
        match e {
            OpenDrop::Truncated | OpenDrop::BadVersion | OpenDrop::BadControl => {
                DropReason::BadEnvelope
            }
            OpenDrop::UnknownKey => DropReason::UnknownKey,
            OpenDrop::AuthFailed => DropReason::AuthFailed,
            OpenDrop::Replayed => DropReason::Replayed,
            OpenDrop::Unverified => DropReason::Unverified,
        }
    }
}

impl From<SealDrop> for DropReason {
    fn from(e: SealDrop) -> DropReason {
        match e {
            SealDrop::CounterExhausted => DropReason::KeyExhausted,
            SealDrop::BufferTooSmall | SealDrop::FrameTooLong => DropReason::TooBig,
        }
    }
}

impl From<WireError> for DropReason {
    fn from(e: WireError) -> DropReason {
        match e {
            WireError::Truncated => DropReason::Truncated,
            WireError::NoVniFlag => DropReason::NoVniFlag,
            WireError::InvalidVni(_) => DropReason::InvalidVni,
        }
    }
}

/// Drops by reason.
#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; DropReason::COUNT]);

impl DropCounters {
    pub fn add(&self, reason: DropReason) {
        self.0[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()].load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The non-zero counters, by name.
    /// Every reason by name, zeros included (so a reader can tell a misspelt name from 0).
    pub fn snapshot_all(&self) -> std::collections::BTreeMap<String, u64> {
        DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), self.get(*r)))
            .collect()
    }

    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), self.get(*r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Frames and bytes in and out of one port, peer or network, and what was dropped there.
#[derive(Debug, Default)]
pub struct Traffic {
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub drops: DropCounters,
}

impl Traffic {
    pub fn rx(&self, bytes: usize) {
        self.rx_frames.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn tx(&self, bytes: usize) {
        self.tx_frames.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            rx_frames: self.rx_frames.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            tx_frames: self.tx_frames.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            drops: self.drops.snapshot(),
        }
    }
}

/// A point-in-time copy of [`Traffic`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrafficSnapshot {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Non-zero drop counters by reason name.
    pub drops: std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_in_order() {
        let names: std::collections::BTreeSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{}", r.name());
        }
    }

    #[test]
    fn sealer_and_parser_errors_map_to_reasons() {
        let open: Vec<_> = OpenDrop::ALL
            .iter()
            .map(|&e| DropReason::from(e).name())
            .collect();
        assert_eq!(
            open,
            [
                "bad_envelope",
                "bad_envelope",
                "unknown_key",
                "auth_failed",
                "replayed",
                "unverified",
                "bad_envelope"
            ]
        );
        let seal: Vec<_> = SealDrop::ALL
            .iter()
            .map(|&e| DropReason::from(e).name())
            .collect();
        assert_eq!(seal, ["too_big", "too_big", "key_exhausted"]);
        assert_eq!(
            DropReason::from(WireError::InvalidVni(0)),
            DropReason::InvalidVni
        );
    }

    #[test]
    fn a_drop_counts_once_under_its_name() {
        let c = DropCounters::default();
        c.add(DropReason::AuthFailed);
        assert_eq!(c.total(), 1);
        assert_eq!(
            c.snapshot().into_iter().collect::<Vec<_>>(),
            [("auth_failed".to_owned(), 1)]
        );
    }
}
