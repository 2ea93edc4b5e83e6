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
//! - every MAC table equals the model's, entry for entry (MAC, location, last seen, static),
//!   with the same learned, moved, evicted and aged counts, and the advertised endpoints the
//!   ones the model installed (cluster mode's advertisements: [`Op::Advertise`],
//!   [`Op::Withdraw`]; floods follow [`Op::FloodList`]);
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

use super::reference::{self, Header, MacBytes, MacTable, Place};
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
    /// Another host advertises MAC `mac` of network `vni` behind peer `peer` (cluster mode).
    Advertise {
        vni: u8,
        mac: u8,
        peer: u8,
    },
    /// That advertisement is withdrawn.
    Withdraw {
        vni: u8,
        mac: u8,
    },
    /// Network `vni` floods only to the peers whose bits (of 4) are set, or to every peer.
    FloodList {
        vni: u8,
        peers: Option<u8>,
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
    /// Advertised endpoints the switch has installed: (network, MAC) → peer.
    remote: BTreeMap<(Vni, MacBytes), SocketAddr>,
    /// Flood lists; a network without one floods to every peer.
    floods: BTreeMap<Vni, BTreeSet<SocketAddr>>,
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
            proxy_arp: false,
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
            remote: BTreeMap::new(),
            floods: BTreeMap::new(),
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
                    self.remote.retain(|_, p| *p != a);
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
                    self.remote.retain(|(w, _), _| *w != v);
                    self.floods.remove(&v);
                }
                assert_eq!(self.switch.remove_network(v).is_ok(), ok, "remove {v}");
            }
            &Op::Advertise {
                vni: v,
                mac: m,
                peer: i,
            } => self.advertise(vni(v), mac(m), peer(i)),
            &Op::Withdraw { vni: v, mac: m } => self.withdraw(vni(v), mac(m)),
            &Op::FloodList { vni: v, peers } => self.flood_list(vni(v), peers),
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
        let peers = match self.floods.get(v) {
            Some(list) => self.peers.intersection(list).count(),
            None => self.peers.len(),
        };
        others == ports && peers == vteps
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
}

/// A model table with the harness's limits.
fn new_table() -> MacTable {
    MacTable::new(AGEING.as_millis() as u64, FDB_CAPACITY)
}

fn distinct<T: Ord>(items: &[T]) -> bool {
    let set: BTreeSet<&T> = items.iter().collect();
    set.len() == items.len()
}

mod checks;
mod cluster;
mod seeds;
pub use seeds::{encode, seeds};
