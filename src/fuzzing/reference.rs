//! An independent reference model for the `switch_ops` checker: its own VXLAN and Ethernet
//! header reading and its own MAC table with expiry, written for clarity, not speed.
//!
//! It uses nothing from `crate::wire` or `crate::core::fdb`. Had the checker computed its
//! expectations with `VxlanRepr::parse`, `classify` and `Fdb::lookup` (as it once did), a bug in
//! any of them would have been copied into the expectation and gone unnoticed; here it shows as
//! a disagreement between the switch and this model.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A MAC address as six bytes.
pub type MacBytes = [u8; 6];

/// Where a MAC lives: a local port (by number) or a peer (by underlay address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Port(u32),
    Peer(SocketAddr),
}

/// What the 8-byte VXLAN header of a datagram says (RFC 7348 §5, plus vswitch's S flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// Fewer than 8 bytes.
    Truncated,
    /// The I flag (0x08 in the first byte) is clear.
    NoVniFlag,
    /// The VNI field (bytes 4, 5 and 6) is zero.
    ZeroVni,
    /// A usable header. `sealed` is the S flag (0x02 in the first byte). Every other bit of
    /// bytes 0..4 and byte 7 is reserved and ignored.
    Valid { vni: u32, sealed: bool },
}

/// Reads the VXLAN header at the start of `datagram`.
pub fn vxlan_header(datagram: &[u8]) -> Header {
    if datagram.len() < 8 {
        return Header::Truncated;
    }
    let flags = datagram[0];
    if flags & 0x08 == 0 {
        return Header::NoVniFlag;
    }
    let vni =
        u32::from(datagram[4]) * 65536 + u32::from(datagram[5]) * 256 + u32::from(datagram[6]);
    if vni == 0 {
        return Header::ZeroVni;
    }
    Header::Valid {
        vni,
        sealed: flags & 0x02 != 0,
    }
}

/// The 8 bytes vswitch must write in front of a frame of network `vni`: the I flag (and the S
/// flag when sealed), the VNI, every reserved bit zero.
pub fn vxlan_header_bytes(vni: u32, sealed: bool) -> [u8; 8] {
    let flags = if sealed { 0x0a } else { 0x08 };
    let [_, a, b, c] = vni.to_be_bytes();
    [flags, 0, 0, 0, a, b, c, 0]
}

/// What the switch reads from an Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: MacBytes,
    pub src: MacBytes,
    /// The EtherType field is a VLAN tag protocol id: 802.1Q (0x8100), 802.1ad (0x88a8) or the
    /// old QinQ value (0x9100).
    pub tagged: bool,
}

/// Reads the Ethernet header of `frame`; `None` when it is shorter than 14 bytes.
pub fn ethernet_header(frame: &[u8]) -> Option<EthernetHeader> {
    if frame.len() < 14 {
        return None;
    }
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    let ethertype = u16::from(frame[12]) * 256 + u16::from(frame[13]);
    Some(EthernetHeader {
        dst,
        src,
        tagged: ethertype == 0x8100 || ethertype == 0x88a8 || ethertype == 0x9100,
    })
}

/// A group (multicast or broadcast) address: the lowest bit of the first byte.
pub fn is_group(mac: MacBytes) -> bool {
    mac[0] % 2 == 1
}

/// Whether a station may have `mac` as its source address: not a group address, not all zero.
pub fn may_be_learned(mac: MacBytes) -> bool {
    !is_group(mac) && mac != [0; 6]
}

/// Counters of table events, as `FdbCounters` keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounters {
    pub learned: u64,
    pub moved: u64,
    pub evicted: u64,
    pub aged: u64,
}

/// One network's MAC table: every MAC with where it was last seen and when (milliseconds),
/// and whether it is static (an advertised endpoint: it never ages, is never evicted, does not
/// count against the capacity, and only a local port moves it).
#[derive(Clone, Debug)]
pub struct MacTable {
    ageing_ms: u64,
    capacity: usize,
    entries: BTreeMap<MacBytes, (Place, u64, bool)>,
    pub counters: TableCounters,
}

impl MacTable {
    pub fn new(ageing_ms: u64, capacity: usize) -> MacTable {
        MacTable {
            ageing_ms,
            capacity,
            entries: BTreeMap::new(),
            counters: TableCounters::default(),
        }
    }

    fn expiry(&self, last_seen: u64) -> u64 {
        last_seen.saturating_add(self.ageing_ms)
    }

    /// `mac` was seen at `place` at time `now`.
    ///
    /// A MAC already in the table (even one past its expiry that no tick has removed yet) is
    /// refreshed, and moves if it shows up somewhere new, except away from a local port while
    /// its entry there is still fresh: then nothing changes and `false` says the frame is
    /// refused. A new MAC in a full table first evicts the entry that expires soonest; between
    /// equals, the smallest MAC.
    ///
    /// A static entry is refreshed from its own place, refuses a peer, and becomes an ordinary
    /// entry at a local port that sends from its MAC (a move).
    pub fn learn(&mut self, mac: MacBytes, place: Place, now: u64) -> bool {
        let ageing_ms = self.ageing_ms;
        if let Some(entry) = self.entries.get_mut(&mac) {
            if entry.0 != place {
                let fresh = now < entry.1.saturating_add(ageing_ms);
                if fresh && matches!(entry.0, Place::Port(_)) {
                    return false;
                }
                if entry.2 && matches!(place, Place::Peer(_)) {
                    return false;
                }
                self.counters.moved += 1;
                if entry.2 {
                    // Taken over by a local port: learned from now on, and room is made.
                    self.entries.remove(&mac);
                    self.make_room();
                    self.entries.insert(mac, (place, now, false));
                    return true;
                }
            }
            let entry = self.entries.get_mut(&mac).expect("present");
            entry.0 = place;
            entry.1 = now;
            return true;
        }
        self.make_room();
        self.entries.insert(mac, (place, now, false));
        self.counters.learned += 1;
        true
    }

    /// A full table (of learned entries) evicts the learned entry that expires soonest.
    fn make_room(&mut self) {
        if self.learned() < self.capacity {
            return;
        }
        let soonest = self
            .entries
            .iter()
            .filter(|(_, e)| !e.2)
            .map(|(m, &(_, seen, _))| (self.expiry(seen), *m))
            .min();
        if let Some((_, victim)) = soonest {
            self.entries.remove(&victim);
            self.counters.evicted += 1;
        }
    }

    /// Makes `mac` static at `peer` (seen `now`), replacing its entry, unless it lives at a
    /// local port whose entry is fresh: then nothing changes and `false` says so.
    pub fn pin(&mut self, mac: MacBytes, peer: SocketAddr, now: u64) -> bool {
        let place = Place::Peer(peer);
        if let Some(&(at, seen, pinned)) = self.entries.get(&mac) {
            if pinned && at == place {
                return true;
            }
            if matches!(at, Place::Port(_)) && now < self.expiry(seen) {
                return false;
            }
        }
        self.entries.insert(mac, (place, now, true));
        true
    }

    /// Removes `mac`'s static entry at `peer`, if that is what it has.
    pub fn unpin(&mut self, mac: MacBytes, peer: SocketAddr) {
        if self
            .entries
            .get(&mac)
            .is_some_and(|e| e.2 && e.0 == Place::Peer(peer))
        {
            self.entries.remove(&mac);
        }
    }

    /// Where `mac` lives at time `now`: nowhere once its ageing time has passed since it was
    /// last seen, whether or not a tick has removed it yet (static entries do not age).
    pub fn lookup(&self, mac: MacBytes, now: u64) -> Option<Place> {
        let &(place, seen, pinned) = self.entries.get(&mac)?;
        (pinned || now < self.expiry(seen)).then_some(place)
    }

    /// A tick at `now`: forgets every learned entry whose ageing time has passed.
    pub fn age(&mut self, now: u64) {
        let before = self.entries.len();
        let ageing_ms = self.ageing_ms;
        self.entries
            .retain(|_, &mut (_, seen, pinned)| pinned || seen.saturating_add(ageing_ms) > now);
        self.counters.aged += (before - self.entries.len()) as u64;
    }

    /// Forgets every MAC at `place` (a port detached, a peer removed), static or not.
    pub fn forget(&mut self, place: Place) {
        self.entries.retain(|_, &mut (p, _, _)| p != place);
    }

    /// Every entry, by MAC: (MAC, place, last seen, static).
    pub fn rows(&self) -> Vec<(MacBytes, Place, u64, bool)> {
        self.entries
            .iter()
            .map(|(&mac, &(place, seen, pinned))| (mac, place, seen, pinned))
            .collect()
    }

    /// How many entries are learned (not static): what the capacity bounds.
    pub fn learned(&self) -> usize {
        self.entries.values().filter(|e| !e.2).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: Place = Place::Port(1);
    const P2: Place = Place::Port(2);

    fn m(n: u8) -> MacBytes {
        [2, 0, 0, 0, 0, n]
    }

    #[test]
    fn headers_read_by_hand() {
        assert_eq!(vxlan_header(&[0x08; 7]), Header::Truncated);
        assert_eq!(
            vxlan_header(&[0xf7, 0, 0, 0, 0, 0, 1, 0]),
            Header::NoVniFlag
        );
        assert_eq!(vxlan_header(&[0x08, 9, 9, 9, 0, 0, 0, 9]), Header::ZeroVni);
        assert_eq!(
            vxlan_header(&[0xff, 1, 2, 3, 0xab, 0xcd, 0xef, 4]),
            Header::Valid {
                vni: 0xab_cdef,
                sealed: true
            }
        );
        assert_eq!(
            vxlan_header_bytes(0x01_0203, false),
            [0x08, 0, 0, 0, 1, 2, 3, 0]
        );
        let mut f = vec![0xff; 12];
        f.extend([0x88, 0xa8]);
        let h = ethernet_header(&f).expect("14 bytes");
        assert!(h.tagged && is_group(h.dst) && !may_be_learned(h.src));
        assert_eq!(ethernet_header(&f[..13]), None);
        assert!(!may_be_learned([0; 6]) && may_be_learned(m(1)));
    }

    #[test]
    fn the_table_expires_moves_and_evicts_the_soonest() {
        let mut t = MacTable::new(100, 2);
        t.learn(m(1), P1, 0);
        t.learn(m(2), P1, 10);
        assert_eq!(t.lookup(m(1), 99), Some(P1));
        assert_eq!(t.lookup(m(1), 100), None);
        // A MAC at a live local port does not move; past its expiry it does.
        assert!(!t.learn(m(2), P2, 20), "m(2) is fresh at port 1");
        assert_eq!(t.lookup(m(2), 20), Some(P1));
        assert!(t.learn(m(1), P2, 100), "m(1) expired at port 1");
        assert_eq!(t.counters.moved, 1);
        t.learn(m(3), P1, 105);
        assert_eq!(
            t.rows().iter().map(|r| r.0).collect::<Vec<_>>(),
            [m(1), m(3)],
            "m(2), expiring soonest, was evicted"
        );
        t.age(201);
        assert_eq!(t.rows().len(), 1);
        assert_eq!(
            t.counters,
            TableCounters {
                learned: 3,
                moved: 1,
                evicted: 1,
                aged: 1
            }
        );
        t.forget(P1);
        assert!(t.rows().is_empty());
    }

    #[test]
    fn static_entries_stay_put_but_for_a_local_port() {
        let peer: SocketAddr = "192.0.2.2:4789".parse().expect("addr");
        let other: SocketAddr = "192.0.2.3:4789".parse().expect("addr");
        let mut t = MacTable::new(100, 1);
        assert!(t.pin(m(1), peer, 0));
        assert!(t.learn(m(2), P1, 0));
        assert!(t.learn(m(3), P1, 0), "evicts m(2), not the static m(1)");
        assert_eq!(
            t.lookup(m(1), 10_000),
            Some(Place::Peer(peer)),
            "never ages"
        );
        assert!(!t.learn(m(1), Place::Peer(other), 1), "not moved by a peer");
        assert!(!t.pin(m(3), other, 1), "m(3) is fresh at port 1");
        t.age(10_000);
        assert_eq!(t.rows(), [(m(1), Place::Peer(peer), 0, true)]);
        assert!(t.learn(m(1), P2, 10_001), "a local port takes it over");
        assert_eq!(t.rows(), [(m(1), P2, 10_001, false)]);
        t.unpin(m(1), peer);
        assert_eq!(t.rows().len(), 1, "not static any more: stays");
    }
}
