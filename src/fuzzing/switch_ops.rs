//! `switch_ops`: a structure-aware fuzz target. The input decodes (with `arbitrary`) into a
//! sequence of [`Op`]s — frames from ports, datagrams from VTEPs, clock moves, configuration
//! changes — run against one [`Switch`] whose configuration the [`Harness`] mirrors in a model of
//! its own. After every step it checks:
//!
//! - a frame never crosses networks: every destination port belongs to `Forward::vni`'s network,
//!   which is the ingress port's network (or the VXLAN header's);
//! - a frame never goes back out of its ingress port, and no destination appears twice;
//! - nothing from the underlay goes to a VTEP (split horizon), and VTEP destinations are peers;
//! - a drop has no destinations, and every drop is counted exactly once;
//! - the decision is the one the rules call for: [`Harness`] re-derives it (drop reason, or
//!   exactly which ports and VTEPs) from an independent reference model
//!   ([`super::reference`]): its own reading of the VXLAN and Ethernet headers and its own MAC
//!   table with expiry and eviction, never the switch's parsers or `Fdb`;
//! - every MAC table equals the model's, entry for entry (MAC, location, last seen), with the
//!   same learned, moved, evicted and aged counts;
//! - an encapsulated frame is the exact VXLAN header of its network followed by its bytes;
//! - every table stays within its capacity and only points at the network's own ports and at
//!   current peers; configuration calls succeed exactly when the model says they should.
//!
//! Small alphabets (6 ports, 4 peers, 3 networks, 16 unicast MACs against an 8-entry table) make
//! collisions — the interesting cases — likely.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use super::reference::{self, Header, MacTable, Place};
use crate::core::switch::{Sends, HEADROOM};
use crate::core::{
    DropReason, FdbConfig, Forward, Location, PortId, Switch, SwitchConfig, Timestamp, Vtep,
};
use crate::wire::vxlan::{self, FLAG_I, FLAG_SEALED};
use crate::wire::{EtherType, Mac, Vni};

/// Entries per table: small, so that 16 MACs overflow it.
pub const FDB_CAPACITY: usize = 8;
/// Ageing time: short, so that [`Op::Advance`] (up to 65 s) crosses it often.
pub const AGEING: Duration = Duration::from_secs(2);
/// Ops run per input, to bound the time of one execution.
pub const MAX_OPS: usize = 256;
/// The longest raw frame or datagram an op carries (a jumbo frame and then some).
pub const MAX_RAW: usize = 9216;

const VNIS: [u32; 3] = [100, 200, 300];
/// Networks that exist when a run starts; the third can be added by an op.
const INITIAL_NETWORKS: usize = 2;
const PORTS: u8 = 6;
const PEERS: u8 = 4;
const UNICAST_MACS: u8 = 16;
const MACS: u8 = UNICAST_MACS + 3;

/// Network number `i` of the alphabet.
pub fn vni(i: u8) -> Vni {
    let v = VNIS[usize::from(i) % VNIS.len()];
    Vni::new(v).expect("alphabet VNIs are valid")
}

/// Port number `i` of the alphabet.
pub fn port(i: u8) -> PortId {
    PortId(u32::from(i % PORTS))
}

/// The underlay address of peer `i` of the alphabet.
pub fn peer(i: u8) -> SocketAddr {
    let ip = Ipv4Addr::new(192, 0, 2, 1 + i % PEERS);
    SocketAddr::new(IpAddr::V4(ip), vxlan::UDP_PORT)
}

/// MAC `i` of the alphabet: 16 unicast addresses, then broadcast, a multicast and all-zero.
pub fn mac(i: u8) -> Mac {
    match i % MACS {
        n if n < UNICAST_MACS => Mac([0x02, 0, 0, 0, 0, n + 1]),
        n if n == UNICAST_MACS => Mac::BROADCAST,
        n if n == UNICAST_MACS + 1 => Mac([0x01, 0x00, 0x5e, 0, 0, 1]),
        _ => Mac::ZERO,
    }
}

/// The VNI field of a datagram: the three alphabet networks, then 0 (invalid) and the largest
/// VNI (valid, never configured).
pub fn vni_field(i: u8) -> u32 {
    match i % 5 {
        n @ 0..=2 => VNIS[usize::from(n)],
        3 => 0,
        _ => Vni::MAX,
    }
}

/// One step of a run.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The container on port `port` sends a frame.
    Frame {
        port: u8,
        frame: FrameSpec,
    },
    /// Peer `peer` (configured or not) sends a datagram.
    Datagram {
        peer: u8,
        datagram: DatagramSpec,
    },
    /// The clock moves on.
    Advance {
        millis: u16,
    },
    /// The switch ages its tables.
    Tick,
    Attach {
        port: u8,
        vni: u8,
    },
    Detach {
        port: u8,
    },
    AddPeer {
        peer: u8,
    },
    RemovePeer {
        peer: u8,
    },
    AddNetwork {
        vni: u8,
    },
    RemoveNetwork {
        vni: u8,
    },
}

/// An Ethernet frame: built from the alphabet, or raw bytes.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum FrameSpec {
    Built {
        dst: u8,
        src: u8,
        /// An 802.1Q tag's TCI.
        vlan: Option<u16>,
        ethertype: u16,
        payload_len: u8,
    },
    Raw(Raw),
}

/// A datagram: a VXLAN header (well-formed or not) in front of a frame, or raw bytes.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum DatagramSpec {
    Vxlan {
        flags: Flags,
        /// Through [`vni_field`].
        vni: u8,
        /// Reserved header bytes 1..4 and 7, which a receiver must ignore.
        reserved: [u8; 4],
        frame: FrameSpec,
    },
    Raw(Raw),
}

/// The flags byte of a VXLAN header.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    Plain,
    Sealed,
    Raw(u8),
}

/// Bytes chosen by the fuzzer: a length, then that many bytes (fewer when the input runs out).
/// Cheaper for a mutator than `Vec<u8>`'s continue-flag before every byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Raw(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Raw {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Raw> {
        let len = usize::from(u16::arbitrary(u)?) % (MAX_RAW + 1);
        let len = len.min(u.len());
        Ok(Raw(u.bytes(len)?.to_vec()))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (2, Some(2 + MAX_RAW))
    }
}

impl FrameSpec {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            FrameSpec::Raw(raw) => raw.0.clone(),
            &FrameSpec::Built {
                dst,
                src,
                vlan,
                ethertype,
                payload_len,
            } => {
                let mut f = Vec::with_capacity(18 + usize::from(payload_len));
                f.extend_from_slice(&mac(dst).0);
                f.extend_from_slice(&mac(src).0);
                if let Some(tci) = vlan {
                    f.extend_from_slice(&EtherType::VLAN_TAGS[0].to_be_bytes());
                    f.extend_from_slice(&tci.to_be_bytes());
                }
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend((0..payload_len).map(|i| i ^ src));
                f
            }
        }
    }
}

impl DatagramSpec {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            DatagramSpec::Raw(raw) => raw.0.clone(),
            DatagramSpec::Vxlan {
                flags,
                vni,
                reserved,
                frame,
            } => {
                let flags = match *flags {
                    Flags::Plain => FLAG_I,
                    Flags::Sealed => FLAG_I | FLAG_SEALED,
                    Flags::Raw(f) => f,
                };
                let v = vni_field(*vni).to_be_bytes();
                let [r1, r2, r3, r7] = *reserved;
                let mut d = vec![flags, r1, r2, r3, v[1], v[2], v[3], r7];
                d.extend(frame.bytes());
                d
            }
        }
    }
}

/// Decodes a fuzz input: a VLAN-policy flag, then ops until the input runs out (at most
/// [`MAX_OPS`]).
pub fn decode(data: &[u8]) -> (bool, Vec<Op>) {
    let mut u = Unstructured::new(data);
    let allow_vlan_tagged = bool::arbitrary(&mut u).unwrap_or(false);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    (allow_vlan_tagged, ops)
}

/// The fuzz target: decode, then run every op with the invariants checked after each.
pub fn switch_ops(data: &[u8]) {
    let (allow_vlan_tagged, ops) = decode(data);
    let mut harness = Harness::new(allow_vlan_tagged);
    for op in &ops {
        harness.apply(op);
    }
}

/// What a run exercised, so that tests can tell a seed that forwards from one that only drops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub unicast_to_port: u64,
    pub unicast_to_vtep: u64,
    pub flooded: u64,
    pub decap_delivered: u64,
    pub dropped: u64,
    pub evicted: u64,
    pub aged: u64,
}

/// The forwarding decision the rules call for: the network, and the destinations (sorted) or
/// the drop reason.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    vni: Option<Vni>,
    outcome: Result<(Vec<PortId>, Vec<SocketAddr>), DropReason>,
}

impl Decision {
    fn drop(vni: Option<Vni>, reason: DropReason) -> Decision {
        Decision {
            vni,
            outcome: Err(reason),
        }
    }

    /// Asserts that the switch decided this.
    fn check(&self, out: &Forward) {
        let mut ports = out.ports.clone();
        ports.sort();
        let mut vteps: Vec<SocketAddr> = out.vteps.iter().map(|t| t.0).collect();
        vteps.sort();
        let got = Decision {
            vni: out.vni,
            outcome: match out.dropped {
                Some(reason) => Err(reason),
                None => Ok((ports, vteps)),
            },
        };
        assert_eq!(&got, self, "the switch decided otherwise than the rules");
    }
}

/// A switch plus the model of its configuration the invariants are checked against.
#[derive(Debug)]
pub struct Harness {
    pub switch: Switch,
    pub now: Timestamp,
    ports: BTreeMap<PortId, Vni>,
    networks: BTreeSet<Vni>,
    peers: BTreeSet<SocketAddr>,
    /// The reference model's MAC table of every network.
    tables: BTreeMap<Vni, MacTable>,
    drops: u64,
    /// Reused across steps, as the data path reuses it: stale state would show.
    forward: Forward,
    pub seen: Seen,
}

impl Harness {
    pub fn new(allow_vlan_tagged: bool) -> Harness {
        let mut switch = Switch::new(SwitchConfig {
            fdb: FdbConfig {
                ageing: AGEING,
                capacity: FDB_CAPACITY,
            },
            allow_vlan_tagged,
            storm_pps: 0,
        });
        let mut networks = BTreeSet::new();
        let mut tables = BTreeMap::new();
        for i in 0..INITIAL_NETWORKS {
            let v = vni(i as u8);
            switch.add_network(v).expect("fresh switch");
            networks.insert(v);
            tables.insert(v, new_table());
        }
        Harness {
            switch,
            now: Timestamp(0),
            ports: BTreeMap::new(),
            networks,
            peers: BTreeSet::new(),
            tables,
            drops: 0,
            forward: Forward::default(),
            seen: Seen::default(),
        }
    }

    /// Runs one op and checks every invariant.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Frame { port: p, frame } => self.frame(port(*p), &frame.bytes()),
            Op::Datagram { peer: i, datagram } => self.datagram(peer(*i), datagram.bytes()),
            Op::Advance { millis } => {
                self.now = self
                    .now
                    .saturating_add(Duration::from_millis(u64::from(*millis)))
            }
            Op::Tick => {
                self.switch.tick(self.now);
                for table in self.tables.values_mut() {
                    table.age(self.now.as_millis());
                }
            }
            Op::Attach { port: p, vni: v } => {
                let (p, v) = (port(*p), vni(*v));
                let ok = !self.ports.contains_key(&p) && self.networks.contains(&v);
                assert_eq!(
                    self.switch.add_port(p, v).is_ok(),
                    ok,
                    "attach {p:?} to {v}"
                );
                if ok {
                    self.ports.insert(p, v);
                }
            }
            Op::Detach { port: p } => {
                let p = port(*p);
                let removed = self.ports.remove(&p);
                if let Some(table) = removed.and_then(|v| self.tables.get_mut(&v)) {
                    table.forget(Place::Port(p.0));
                }
                let ok = removed.is_some();
                assert_eq!(self.switch.remove_port(p).is_ok(), ok, "detach {p:?}");
            }
            Op::AddPeer { peer: i } => {
                let a = peer(*i);
                let ok = self.peers.insert(a);
                assert_eq!(self.switch.add_peer(Vtep(a)).is_ok(), ok, "add peer {a}");
            }
            Op::RemovePeer { peer: i } => {
                let a = peer(*i);
                let expected = self.peers.remove(&a).then_some(Vtep(a));
                if expected.is_some() {
                    for table in self.tables.values_mut() {
                        table.forget(Place::Peer(a));
                    }
                }
                assert_eq!(self.switch.remove_peer(a.ip()).ok(), expected);
            }
            Op::AddNetwork { vni: v } => {
                let v = vni(*v);
                let ok = self.networks.insert(v);
                if ok {
                    self.tables.insert(v, new_table());
                }
                assert_eq!(self.switch.add_network(v).is_ok(), ok, "add network {v}");
            }
            Op::RemoveNetwork { vni: v } => {
                let v = vni(*v);
                let ok = self.networks.contains(&v) && !self.ports.values().any(|&w| w == v);
                if ok {
                    self.networks.remove(&v);
                    self.tables.remove(&v);
                }
                assert_eq!(self.switch.remove_network(v).is_ok(), ok, "remove {v}");
            }
        }
        self.check_tables();
    }

    fn frame(&mut self, ingress: PortId, frame: &[u8]) {
        self.switch
            .frame_from_port(self.now, ingress, frame, &mut self.forward);
        self.check_forward();
        let out = &self.forward;
        assert_eq!(out.frame, 0..frame.len());
        match self.ports.get(&ingress) {
            None => {
                assert_eq!(out.dropped, Some(DropReason::UnknownPort));
                assert_eq!(out.vni, None);
            }
            Some(&v) => assert_eq!(out.vni, Some(v), "a frame stays in its port's network"),
        }
        assert!(
            !out.ports.contains(&ingress),
            "back out of its ingress port"
        );
        for v in &out.vteps {
            assert!(self.peers.contains(&v.0), "sent to {v:?}, not a peer");
        }
        let expected = match self.ports.get(&ingress).copied() {
            None => Decision::drop(None, DropReason::UnknownPort),
            Some(v) => self.decide(v, frame, Place::Port(ingress.0)),
        };
        let out = &self.forward;
        expected.check(out);
        if out.dropped.is_some() {
            return;
        }
        match (out.ports.len(), out.vteps.len()) {
            (1, 0) if !self.flood_would_be(ingress, 1, 0) => self.seen.unicast_to_port += 1,
            (0, 1) if !self.flood_would_be(ingress, 0, 1) => self.seen.unicast_to_vtep += 1,
            _ => self.seen.flooded += 1,
        }
        if let Some(sends) = out.deliver(frame, |_, _| {}) {
            self.encapsulate(&sends, frame);
        }
    }

    /// Whether a flood from `ingress` would reach exactly this many ports and VTEPs (so a
    /// one-destination result is ambiguous for [`Seen`]).
    fn flood_would_be(&self, ingress: PortId, ports: usize, vteps: usize) -> bool {
        let Some(v) = self.ports.get(&ingress) else {
            return false;
        };
        let others = self
            .ports
            .iter()
            .filter(|&(&q, w)| q != ingress && w == v)
            .count();
        others == ports && self.peers.len() == vteps
    }

    fn encapsulate(&self, sends: &Sends<'_>, frame: &[u8]) {
        let v = sends.vni();
        let mut buf = vec![0u8; HEADROOM + frame.len()];
        buf[HEADROOM..].copy_from_slice(frame);
        let enc = self
            .switch
            .encapsulate(sends, &mut buf, HEADROOM..HEADROOM + frame.len())
            .expect("headroom is reserved");
        assert!(enc.src_port >= 49152);
        let datagram = &buf[enc.datagram];
        assert_eq!(
            datagram.get(..vxlan::HEADER_LEN),
            Some(&reference::vxlan_header_bytes(v.get(), false)[..]),
            "the VXLAN header of network {v}"
        );
        assert_eq!(&datagram[vxlan::HEADER_LEN..], frame);
    }

    fn datagram(&mut self, from: SocketAddr, mut datagram: Vec<u8>) {
        let original = datagram.clone();
        self.switch
            .datagram_from_vtep(self.now, from, &mut datagram, &mut self.forward);
        self.check_forward();
        assert_eq!(datagram, original, "the switch only reads a plain datagram");
        assert!(
            self.forward.vteps.is_empty(),
            "split horizon: underlay to {:?}",
            self.forward.vteps
        );
        let expected = self.expected_from_underlay(from, &datagram);
        let out = &self.forward;
        expected.check(out);
        if let Some(v) = out.vni {
            assert!(self.networks.contains(&v));
            assert!(
                matches!(reference::vxlan_header(&datagram), Header::Valid { vni, .. } if vni == v.get()),
                "a frame stays in its header's network"
            );
        }
        if out.dropped.is_none() {
            assert_eq!(out.frame, vxlan::HEADER_LEN..datagram.len());
            assert!(out.vni.is_some());
            if !out.ports.is_empty() {
                self.seen.decap_delivered += 1;
            }
        }
    }

    /// What the rules (module doc of `core::switch`) say about a datagram from `from`, read with
    /// the reference model's own header parsing. No network of the harness is sealed.
    fn expected_from_underlay(&mut self, from: SocketAddr, datagram: &[u8]) -> Decision {
        if !self.peers.contains(&from) {
            return Decision::drop(None, DropReason::UnknownVtep);
        }
        let (vni, sealed) = match reference::vxlan_header(datagram) {
            Header::Truncated => return Decision::drop(None, DropReason::Truncated),
            Header::NoVniFlag => return Decision::drop(None, DropReason::NoVniFlag),
            Header::ZeroVni => return Decision::drop(None, DropReason::InvalidVni),
            Header::Valid { vni, sealed } => (vni, sealed),
        };
        let Some(v) = self.networks.iter().copied().find(|v| v.get() == vni) else {
            return Decision::drop(None, DropReason::UnknownVni);
        };
        if sealed {
            return Decision::drop(Some(v), DropReason::UnexpectedSeal);
        }
        self.decide(v, &datagram[8..], Place::Peer(from))
    }

    /// What the rules say about a frame entering network `v` at `at`, by the reference model,
    /// whose table learns the source first, as the switch's does.
    fn decide(&mut self, v: Vni, frame: &[u8], at: Place) -> Decision {
        let drop = |reason| Decision::drop(Some(v), reason);
        let Some(eth) = reference::ethernet_header(frame) else {
            return drop(DropReason::Truncated);
        };
        if eth.tagged && !self.switch.config().allow_vlan_tagged {
            return drop(DropReason::VlanTagged);
        }
        if !reference::may_be_learned(eth.src) {
            return drop(DropReason::BadSourceMac);
        }
        let now = self.now.as_millis();
        let table = self.tables.get_mut(&v).expect("the model has the network");
        // A MAC that lives at a live local port is not moved away by a frame from elsewhere:
        // the table is left as it was and the frame is dropped.
        if !table.learn(eth.src, at, now) {
            return drop(DropReason::MacConflict);
        }
        let from_port = match at {
            Place::Port(p) => Some(p),
            Place::Peer(_) => None,
        };
        let known = match reference::is_group(eth.dst) {
            true => None,
            false => table.lookup(eth.dst, now),
        };
        let (ports, vteps) = match (known, from_port) {
            (Some(Place::Port(q)), Some(p)) if q == p => return drop(DropReason::SamePort),
            (Some(Place::Port(q)), _) => (vec![PortId(q)], vec![]),
            (Some(Place::Peer(_)), None) => return drop(DropReason::SplitHorizon),
            (Some(Place::Peer(t)), Some(_)) => (vec![], vec![t]),
            // Flood: every other port of the network; every peer, unless it came from one.
            (None, _) => {
                let ports = self
                    .ports
                    .iter()
                    .filter(|&(&q, &w)| w == v && Some(q.0) != from_port)
                    .map(|(&q, _)| q)
                    .collect();
                let vteps = match from_port {
                    Some(_) => self.peers.iter().copied().collect(),
                    None => vec![],
                };
                (ports, vteps)
            }
        };
        Decision {
            vni: Some(v),
            outcome: Ok((ports, vteps)),
        }
    }

    /// Checks that hold for any forwarding result.
    fn check_forward(&mut self) {
        let out = &self.forward;
        if out.dropped.is_some() {
            assert!(out.ports.is_empty() && out.vteps.is_empty(), "{out:?}");
            self.drops += 1;
            self.seen.dropped += 1;
        }
        assert_eq!(
            self.switch.drops.total(),
            self.drops,
            "each drop counted once"
        );
        for q in &out.ports {
            assert_eq!(
                self.ports.get(q),
                out.vni.as_ref(),
                "{q:?} is not in network {:?}",
                out.vni
            );
        }
        assert!(distinct(&out.ports), "a port twice: {:?}", out.ports);
        assert!(distinct(&out.vteps), "a VTEP twice: {:?}", out.vteps);
    }

    /// The switch's configuration and tables agree with the model.
    fn check_tables(&mut self) {
        let networks: BTreeSet<Vni> = self.switch.networks().map(|n| n.vni).collect();
        assert_eq!(networks, self.networks);
        let peers: BTreeSet<SocketAddr> = self.switch.peers().map(|v| v.0).collect();
        assert_eq!(peers, self.peers);
        let (mut evicted, mut aged) = (0, 0);
        for network in self.switch.networks() {
            let v = network.vni;
            let mut ports = network.ports().to_vec();
            ports.sort();
            let expected: Vec<PortId> = self
                .ports
                .iter()
                .filter(|&(_, w)| *w == v)
                .map(|(&p, _)| p)
                .collect();
            assert_eq!(ports, expected, "ports of network {v}");
            assert!(network.fdb.len() <= FDB_CAPACITY, "table of {v} overflows");
            let table = self.tables.get(&v).expect("the model has the network");
            let rows: Vec<_> = network
                .fdb
                .entries()
                .iter()
                .map(|e| {
                    let place = match e.location {
                        Location::Port(p) => Place::Port(p.0),
                        Location::Vtep(t) => Place::Peer(t.0),
                    };
                    (e.mac.0, place, e.last_seen.as_millis())
                })
                .collect();
            assert_eq!(
                rows,
                table.rows(),
                "the table of {v} differs from the model's"
            );
            let c = &network.fdb.counters;
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let counters = reference::TableCounters {
                learned: load(&c.learned),
                moved: load(&c.moved),
                evicted: load(&c.evicted),
                aged: load(&c.aged),
            };
            assert_eq!(counters, table.counters, "table counters of {v}");
            for e in network.fdb.entries() {
                assert!(e.mac.is_valid_source(), "{} learned", e.mac);
                match e.location {
                    Location::Port(p) => assert_eq!(self.ports.get(&p), Some(&v), "{e:?}"),
                    Location::Vtep(t) => assert!(self.peers.contains(&t.0), "{e:?}"),
                }
            }
            let c = &network.fdb.counters;
            evicted += c.evicted.load(std::sync::atomic::Ordering::Relaxed);
            aged += c.aged.load(std::sync::atomic::Ordering::Relaxed);
        }
        // Counters of removed networks are gone; keep the high-water mark.
        self.seen.evicted = self.seen.evicted.max(evicted);
        self.seen.aged = self.seen.aged.max(aged);
    }
}

/// A model table with the harness's limits.
fn new_table() -> MacTable {
    MacTable::new(AGEING.as_millis() as u64, FDB_CAPACITY)
}

fn distinct<T: Ord>(items: &[T]) -> bool {
    let set: BTreeSet<&T> = items.iter().collect();
    set.len() == items.len()
}

/// Encodes ops the way [`decode`] reads them, for handmade seeds. Mirrors `arbitrary`'s derive
/// (an enum is a little-endian `u32` scaled onto its variants; integers are little-endian; an
/// `Option` is a bool byte first); `tests/fuzz_corpus.rs` checks `decode(encode(x)) == x`.
pub fn encode(allow_vlan_tagged: bool, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![u8::from(allow_vlan_tagged)];
    for op in ops {
        op.encode(&mut out);
    }
    out
}

/// The `u32` that `arbitrary`'s derive maps to variant `index` of `count`.
fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    let tag = (u64::from(index) << 32).div_ceil(u64::from(count));
    let tag = u32::try_from(tag).expect("index < count");
    out.extend_from_slice(&tag.to_le_bytes());
}

impl Op {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 10;
        match self {
            Op::Frame { port, frame } => {
                variant(out, 0, N);
                out.push(*port);
                frame.encode(out);
            }
            Op::Datagram { peer, datagram } => {
                variant(out, 1, N);
                out.push(*peer);
                datagram.encode(out);
            }
            Op::Advance { millis } => {
                variant(out, 2, N);
                out.extend_from_slice(&millis.to_le_bytes());
            }
            Op::Tick => variant(out, 3, N),
            Op::Attach { port, vni } => {
                variant(out, 4, N);
                out.extend_from_slice(&[*port, *vni]);
            }
            Op::Detach { port } => {
                variant(out, 5, N);
                out.push(*port);
            }
            Op::AddPeer { peer } => {
                variant(out, 6, N);
                out.push(*peer);
            }
            Op::RemovePeer { peer } => {
                variant(out, 7, N);
                out.push(*peer);
            }
            Op::AddNetwork { vni } => {
                variant(out, 8, N);
                out.push(*vni);
            }
            Op::RemoveNetwork { vni } => {
                variant(out, 9, N);
                out.push(*vni);
            }
        }
    }
}

impl FrameSpec {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FrameSpec::Built {
                dst,
                src,
                vlan,
                ethertype,
                payload_len,
            } => {
                variant(out, 0, 2);
                out.extend_from_slice(&[*dst, *src]);
                match vlan {
                    None => out.push(0),
                    Some(tci) => {
                        out.push(1);
                        out.extend_from_slice(&tci.to_le_bytes());
                    }
                }
                out.extend_from_slice(&ethertype.to_le_bytes());
                out.push(*payload_len);
            }
            FrameSpec::Raw(raw) => {
                variant(out, 1, 2);
                raw.encode(out);
            }
        }
    }
}

impl DatagramSpec {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            DatagramSpec::Vxlan {
                flags,
                vni,
                reserved,
                frame,
            } => {
                variant(out, 0, 2);
                match flags {
                    Flags::Plain => variant(out, 0, 3),
                    Flags::Sealed => variant(out, 1, 3),
                    Flags::Raw(f) => {
                        variant(out, 2, 3);
                        out.push(*f);
                    }
                }
                out.push(*vni);
                out.extend_from_slice(reserved);
                frame.encode(out);
            }
            DatagramSpec::Raw(raw) => {
                variant(out, 1, 2);
                raw.encode(out);
            }
        }
    }
}

impl Raw {
    fn encode(&self, out: &mut Vec<u8>) {
        let len = u16::try_from(self.0.len().min(MAX_RAW)).expect("MAX_RAW fits u16");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.0[..usize::from(len)]);
    }
}

/// Handmade seed scenarios, named; `tests/fuzz_corpus.rs` keeps `fuzz/corpus/switch_ops/seed-*`
/// equal to their encodings.
pub fn seeds() -> Vec<(&'static str, bool, Vec<Op>)> {
    let built = |dst: u8, src: u8| FrameSpec::Built {
        dst,
        src,
        vlan: None,
        ethertype: EtherType::IPV4,
        payload_len: 46,
    };
    let vxlan = |vni: u8, frame: FrameSpec| DatagramSpec::Vxlan {
        flags: Flags::Plain,
        vni,
        reserved: [0; 4],
        frame,
    };
    let frame = |port: u8, frame: FrameSpec| Op::Frame { port, frame };
    let datagram = |peer: u8, datagram: DatagramSpec| Op::Datagram { peer, datagram };
    const BCAST: u8 = UNICAST_MACS;

    // Two networks, three ports, two peers: every kind of forwarding, then ageing.
    let mut forwarding = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::Attach { port: 2, vni: 1 },
        Op::AddPeer { peer: 0 },
        Op::AddPeer { peer: 1 },
        frame(0, built(BCAST, 0)),
        frame(1, built(0, 1)),
        datagram(0, vxlan(0, built(0, 2))),
        frame(0, built(2, 0)),
        datagram(1, vxlan(1, built(BCAST, 3))),
        frame(2, built(3, 4)),
        Op::Advance { millis: 3000 },
        Op::Tick,
        frame(0, built(2, 0)),
    ];
    forwarding.push(datagram(0, vxlan(0, built(0, 2))));

    // Churn: more MACs than the table holds, moves, detach/re-attach elsewhere, peers and
    // networks coming and going.
    let mut churn = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::AddPeer { peer: 0 },
    ];
    churn.extend((0..12).map(|m| frame(m % 2, built(BCAST, m))));
    churn.extend([
        datagram(0, vxlan(0, built(1, 0))),
        Op::Detach { port: 1 },
        Op::AddNetwork { vni: 2 },
        Op::Attach { port: 1, vni: 2 },
        Op::RemoveNetwork { vni: 0 },
        Op::Detach { port: 0 },
        Op::RemoveNetwork { vni: 0 },
        Op::RemovePeer { peer: 0 },
        frame(1, built(5, 6)),
        datagram(0, vxlan(2, built(5, 6))),
    ]);

    // Malformed input: tagged frames, bad sources, sealed/unflagged/unknown-VNI datagrams,
    // truncation.
    let tagged = FrameSpec::Built {
        dst: 1,
        src: 0,
        vlan: Some(7),
        ethertype: EtherType::IPV4,
        payload_len: 46,
    };
    let bad = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::AddPeer { peer: 0 },
        frame(0, tagged),
        frame(0, built(1, BCAST)),
        frame(0, built(1, BCAST + 2)),
        frame(0, FrameSpec::Raw(Raw(vec![0x02; 13]))),
        frame(4, built(1, 0)),
        datagram(
            0,
            DatagramSpec::Vxlan {
                flags: Flags::Sealed,
                vni: 0,
                reserved: [0; 4],
                frame: built(0, 1),
            },
        ),
        datagram(
            0,
            DatagramSpec::Vxlan {
                flags: Flags::Raw(0),
                vni: 0,
                reserved: [0; 4],
                frame: built(0, 1),
            },
        ),
        datagram(
            0,
            DatagramSpec::Vxlan {
                flags: Flags::Raw(0xff),
                vni: 0,
                reserved: [0xff; 4],
                frame: built(0, 1),
            },
        ),
        datagram(0, vxlan(3, built(0, 1))),
        datagram(0, vxlan(4, built(0, 1))),
        datagram(0, DatagramSpec::Raw(Raw(vec![FLAG_I, 0, 0, 0, 0, 0]))),
        datagram(3, vxlan(0, built(0, 1))),
    ];
    // Entries past their ageing time but not yet removed by a tick: never used for forwarding
    // (flood, not unicast; no same-port or split-horizon drop), refreshed when seen again.
    let stale = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::AddPeer { peer: 0 },
        frame(1, built(BCAST, 1)),
        datagram(0, vxlan(0, built(BCAST, 2))),
        Op::Advance { millis: 1999 },
        frame(0, built(1, 0)),
        Op::Advance { millis: 1 },
        frame(0, built(1, 0)),
        frame(0, built(2, 0)),
        frame(1, built(1, 5)),
        datagram(0, vxlan(0, built(2, 3))),
        frame(1, built(BCAST, 1)),
        frame(0, built(1, 0)),
        Op::Tick,
        frame(0, built(2, 0)),
    ];
    vec![
        ("forwarding", false, forwarding),
        ("stale", false, stale),
        ("churn", false, churn),
        ("malformed", false, bad.clone()),
        ("malformed-vlan-allowed", true, bad),
    ]
}
