//! Counters: traffic per port, per peer and per network, and drops by reason. All atomics, so the
//! data path counts from several workers without locks; traffic is kept per [`Lane`], so a
//! worker adds to counters no other thread writes, without a lock-prefixed instruction.
//! Snapshots are plain structs for `stats`.
//!
//! Every drop is counted once, here, under its [`DropReason`] name: the sealer and the wire
//! parsers return why they refused something (`OpenDrop`, `SealDrop`, `WireError`, converted
//! below) and count nothing themselves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// How many sets of traffic counters each [`Traffic`] keeps: lane 0, which any number of
/// threads share (an atomic read-modify-write per add), and `LANES - 1` lanes that one data-path
/// worker each claims ([`Lane::claim`]) and adds to with a plain load and store: no
/// lock-prefixed instruction and no cache line bounced between workers on the hot path. One
/// lane for each of the data path's workers (at most 16, one per CPU) and the shared one: a
/// `Traffic` is then about 1 KiB.
pub const LANES: usize = 17;

/// Which lanes (1..LANES) a [`Lane`] holds now.
static CLAIMED: [AtomicBool; LANES - 1] = [const { AtomicBool::new(false) }; LANES - 1];

/// The counters a caller adds to: the shared lane, or a lane of its own that no other thread
/// writes while this value lives (so a plain load and store is an exact add). Not `Copy`; a
/// clone is the shared lane, so a claimed lane has exactly one holder.
#[derive(Debug, Default)]
pub struct Lane(usize);

impl Lane {
    /// The lane every thread may add to at once.
    pub const fn shared() -> Lane {
        Lane(0)
    }

    /// A lane of the caller's own, or the shared lane if every other lane is held.
    pub fn claim() -> Lane {
        claim_in(&CLAIMED).map_or(Lane::shared(), |i| Lane(i + 1))
    }

    /// Whether this is a lane of the holder's own (not the shared one).
    pub fn is_own(&self) -> bool {
        self.0 != 0
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        if self.is_own() {
            // Only the holder of this lane writes this counter, so load + store loses nothing.
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Clone for Lane {
    fn clone(&self) -> Lane {
        Lane::shared()
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self.is_own() {
            release_in(&CLAIMED, self.0 - 1);
        }
    }
}

/// Held by every test that claims lanes (workers included), so that a test that claims them
/// all sees them all.
#[cfg(test)]
pub(crate) static LANE_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Marks the first free slot of `registry` held and returns it.
fn claim_in(registry: &[AtomicBool]) -> Option<usize> {
    // Acquire: see every add the slot's previous holder made before it released the slot.
    registry
        .iter()
        .position(|held| !held.swap(true, Ordering::Acquire))
}

fn release_in(registry: &[AtomicBool], slot: usize) {
    registry[slot].store(false, Ordering::Release);
}

/// One lane's traffic counters, on a cache line of their own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct LaneTraffic {
    rx_frames: AtomicU64,
    rx_bytes: AtomicU64,
    tx_frames: AtomicU64,
    tx_bytes: AtomicU64,
}

/// Frames and bytes in and out of one port, peer or network, and what was dropped there.
/// Traffic is counted per [`Lane`] and summed when read; drops, rare by comparison, are shared.
#[derive(Debug, Default)]
pub struct Traffic {
    lanes: [LaneTraffic; LANES],
    pub drops: DropCounters,
}

impl Traffic {
    pub fn rx(&self, lane: &Lane, bytes: usize) {
        let l = &self.lanes[lane.0];
        lane.add(&l.rx_frames, 1);
        lane.add(&l.rx_bytes, bytes as u64);
    }

    pub fn tx(&self, lane: &Lane, bytes: usize) {
        let l = &self.lanes[lane.0];
        lane.add(&l.tx_frames, 1);
        lane.add(&l.tx_bytes, bytes as u64);
    }

    pub fn snapshot(&self) -> TrafficSnapshot {
        let sum = |f: fn(&LaneTraffic) -> &AtomicU64| {
            self.lanes
                .iter()
                .map(|l| f(l).load(Ordering::Relaxed))
                .fold(0u64, u64::wrapping_add)
        };
        TrafficSnapshot {
            rx_frames: sum(|l| &l.rx_frames),
            rx_bytes: sum(|l| &l.rx_bytes),
            tx_frames: sum(|l| &l.tx_frames),
            tx_bytes: sum(|l| &l.tx_bytes),
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
    fn lanes_are_claimed_once_until_released() {
        let registry: [AtomicBool; 3] = Default::default();
        let claimed: Vec<_> = (0..4).map(|_| claim_in(&registry)).collect();
        assert_eq!(claimed, [Some(0), Some(1), Some(2), None]);
        release_in(&registry, 1);
        assert_eq!(claim_in(&registry), Some(1));
        assert_eq!(claim_in(&registry), None);
        // A clone never shares a claimed lane.
        let _alone = LANE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let lane = Lane::claim();
        assert!(!lane.clone().is_own());
        assert!(!Lane::default().is_own());
    }

    #[test]
    fn each_lane_has_one_holder_and_comes_back_when_dropped() {
        let _alone = LANE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        for round in 0..2 {
            let lanes: Vec<Lane> = (0..LANES).map(|_| Lane::claim()).collect();
            let own: std::collections::BTreeSet<usize> =
                lanes.iter().filter(|l| l.is_own()).map(|l| l.0).collect();
            assert_eq!(
                own,
                (1..LANES).collect(),
                "round {round}: every worker lane once"
            );
            assert_eq!(lanes[LANES - 1].0, 0, "round {round}: then the shared lane");
            // Dropped here: the next round gets every lane again.
        }
        let worker = crate::core::Forward::with_own_lane();
        assert!(worker.lane.is_own());
        assert!(!crate::core::Forward::default().lane.is_own());
    }

    #[test]
    fn traffic_from_many_threads_adds_up_exactly() {
        // Two threads with lanes of their own (or the shared lane, if other tests hold them
        // all) and two on the shared lane, at once: every add counts.
        const ADDS: u64 = 200_000;
        let _alone = LANE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let t = Traffic::default();
        std::thread::scope(|s| {
            for own in [true, true, false, false] {
                let t = &t;
                s.spawn(move || {
                    let lane = if own { Lane::claim() } else { Lane::shared() };
                    for _ in 0..ADDS {
                        t.rx(&lane, 3);
                        t.tx(&lane, 5);
                    }
                });
            }
        });
        let snap = t.snapshot();
        assert_eq!(
            (snap.rx_frames, snap.rx_bytes, snap.tx_frames, snap.tx_bytes),
            (4 * ADDS, 12 * ADDS, 4 * ADDS, 20 * ADDS)
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
