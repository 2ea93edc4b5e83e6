//! The inner Ethernet II frame: addresses, EtherType, 802.1Q detection, and the flow hash that
//! picks the outer UDP source port.
//!
//! Header slicing is done by `etherparse`; nothing here panics on any input.

use core::fmt;
use core::str::FromStr;

use etherparse::Ethernet2HeaderSlice;

use super::WireError;

/// Length of an Ethernet II header without a VLAN tag.
pub const HEADER_LEN: usize = 14;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

/// One `u64` per address instead of the array's length prefix and six single bytes: the MAC
/// table hashes two addresses per frame. The packing is injective, so equal hashes still
/// follow from equal addresses only.
impl core::hash::Hash for Mac {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // Read as the 4 + 2 bytes a copy of a `Mac` is usually stored as: a read across
        // those two stores could not be forwarded from them and would wait for both.
        let [a, b, c, d, e, f] = self.0;
        let low = u32::from_le_bytes([a, b, c, d]);
        let high = u16::from_le_bytes([e, f]);
        state.write_u64(u64::from(low) | u64::from(high) << 32);
    }
}

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// Group address (multicast or broadcast): the I/G bit of the first octet.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// Whether this address may be learned as a station's source address.
    pub fn is_valid_source(self) -> bool {
        self.check_station().is_ok()
    }

    /// Checks that this address can belong to one station: a frame's source, a port's own
    /// address. Group addresses (multicast, broadcast) and all-zero are not.
    pub fn check_station(self) -> Result<(), MacError> {
        if self.is_zero() {
            Err(MacError::Zero)
        } else if self.is_multicast() {
            Err(MacError::Multicast(self))
        } else {
            Ok(())
        }
    }

    /// A locally administered unicast address (the U/L bit set, the I/G bit clear).
    pub const fn local(bytes: [u8; 6]) -> Mac {
        let mut b = bytes;
        b[0] = (b[0] & 0xfc) | 0x02;
        Mac(b)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why an address cannot be a station's own (see [`Mac::check_station`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("MAC address 00:00:00:00:00:00 is not usable")]
    Zero,
    #[error("MAC address {0} is a multicast address; the first octet must be even")]
    Multicast(Mac),
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a MAC address (expected six hex octets like 02:42:ac:11:00:02)")]
pub struct MacParseError(pub String);

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Mac, MacParseError> {
        let err = || MacParseError(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// EtherType values vswitch looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherType;

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q C-tag, 802.1ad S-tag and the old QinQ value.
    pub const VLAN_TAGS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
}

/// What the switch needs to know about a frame: its addresses, its EtherType, and whether it
/// carries a VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub dst: Mac,
    pub src: Mac,
    /// The outer EtherType (the TPID when tagged).
    pub ethertype: u16,
    /// The VLAN id of the first tag, when the frame is 802.1Q/802.1ad tagged.
    pub vlan: Option<u16>,
}

/// Reads the Ethernet II header of a frame.
pub fn classify(frame: &[u8]) -> Result<FrameInfo, WireError> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| WireError::Truncated)?;
    let ethertype = eth.ether_type().0;
    let vlan = if EtherType::VLAN_TAGS.contains(&ethertype) {
        // A tag is 4 bytes: TPID (already read as the EtherType) then TCI, whose low 12 bits are
        // the VLAN id. A tagged frame too short to hold its TCI is still a tagged frame.
        Some(match frame.get(14..16) {
            Some(tci) => u16::from_be_bytes([tci[0], tci[1]]) & 0x0fff,
            None => 0,
        })
    } else {
        None
    };
    Ok(FrameInfo {
        dst: Mac(eth.destination()),
        src: Mac(eth.source()),
        ethertype,
        vlan,
    })
}

/// A hash of a frame's flow: MACs and EtherType, IP addresses and protocol, TCP/UDP ports.
/// Every frame of one flow hashes alike, so it keeps one outer UDP source port and one path
/// through an ECMP underlay. Not keyed: it spreads flows, it is not a defence.
///
/// It runs for every frame sent to a VTEP, so it reads the few header fields it needs at fixed
/// offsets instead of slicing the whole packet (etherparse's `LaxSlicedPacket` cost ~75 ns here;
/// this costs ~10). IPv6 extension headers are not walked: such flows hash on addresses alone,
/// which still keeps each flow on one port.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let mut h = Fold::default();
    let Some(eth) = frame.get(..HEADER_LEN) else {
        return h.finish();
    };
    h.bytes(eth);
    let ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    let l4 = match ethertype {
        EtherType::IPV4 => frame.get(HEADER_LEN..HEADER_LEN + 20).and_then(|ip| {
            h.bytes(&ip[12..20]);
            h.word(u64::from(ip[9]));
            let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            (first_fragment && matches!(ip[9], 6 | 17)).then_some(HEADER_LEN + ihl)
        }),
        EtherType::IPV6 => frame.get(HEADER_LEN..HEADER_LEN + 40).and_then(|ip| {
            h.bytes(&ip[8..40]);
            h.word(u64::from(ip[6]));
            matches!(ip[6], 6 | 17).then_some(HEADER_LEN + 40)
        }),
        _ => None,
    };
    if let Some(ports) = l4.and_then(|at| frame.get(at..at + 4)) {
        h.word(u64::from(u32::from_be_bytes([
            ports[0], ports[1], ports[2], ports[3],
        ])));
    }
    h.finish()
}

/// The outer UDP source port for a flow hash: 49152..=65535 (RFC 7348 §5, the dynamic range).
pub const fn udp_source_port(hash: u32) -> u16 {
    // 16384 ports: take the hash's top bits, which mix best.
    49152 + (hash >> 18) as u16
}

/// A small multiply-xorshift fold; plenty to spread flows, and a few ns a frame.
#[derive(Default)]
struct Fold(u64);

impl Fold {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(Self::K).rotate_left(29);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w) ^ (rest.len() as u64) << 56);
        }
    }

    fn finish(&self) -> u32 {
        let x = self.0 ^ (self.0 >> 32);
        (x.wrapping_mul(Self::K) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::{classify, Mac, MacParseError};
    use std::hash::{Hash, Hasher};

    /// Records what a `Hash` impl writes, so the test sees the key, not a hash of it.
    #[derive(Default)]
    struct Written(Vec<u64>);

    impl Hasher for Written {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend(bytes.iter().map(|&b| u64::from(b)));
        }
        fn write_u64(&mut self, n: u64) {
            self.0.push(n);
        }
        fn finish(&self) -> u64 {
            0
        }
    }

    fn written(mac: Mac) -> Vec<u64> {
        let mut h = Written::default();
        mac.hash(&mut h);
        h.0
    }

    #[test]
    fn a_mac_hashes_as_one_word_holding_every_byte() {
        let mac = Mac([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        assert_eq!(written(mac), [0x0200_11ac_4202]);
        // Any one byte changed changes the word: no two addresses share a key.
        for i in 0..6 {
            for bit in 0..8 {
                let mut other = mac;
                other.0[i] ^= 1 << bit;
                assert_ne!(written(other), written(mac), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn local_sets_the_local_bit_and_clears_the_group_bit_only() {
        assert_eq!(Mac::local([0; 6]), Mac([2, 0, 0, 0, 0, 0]));
        assert_eq!(
            Mac::local([0xff; 6]),
            Mac([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff])
        );
        assert_eq!(
            Mac::local([0x55, 1, 2, 3, 4, 5]),
            Mac([0x56, 1, 2, 3, 4, 5])
        );
    }

    #[test]
    fn debug_prints_the_address() {
        let mac = Mac([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        assert_eq!(format!("{mac:?}"), "02:42:ac:11:00:02");
    }

    #[test]
    fn octets_of_one_or_two_hex_digits_parse_and_nothing_else() {
        assert_eq!(
            "2:42:ac:11:0:2".parse::<Mac>(),
            Ok(Mac([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]))
        );
        assert_eq!(
            "02-42-AC-11-00-02".parse::<Mac>(),
            Ok(Mac([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]))
        );
        for bad in [
            "0ff:00:00:00:00:01",
            "02::ac:11:00:02",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:g2",
            "",
        ] {
            assert_eq!(
                bad.parse::<Mac>(),
                Err(MacParseError(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_vlan_id_is_the_tcis_low_twelve_bits() {
        let mut frame = vec![0u8; 18];
        frame[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        // PCP 7, DEI 0, VID 5.
        frame[14..16].copy_from_slice(&0xe005u16.to_be_bytes());
        let info = classify(&frame).expect("a header");
        assert_eq!((info.ethertype, info.vlan), (0x8100, Some(5)));
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(classify(&frame).expect("a header").vlan, None);
    }

    /// An IPv4 (or IPv6) frame from `src` with a TCP header on `sport`/`dport`.
    fn ip_frame(v6: bool, src: u8, sport: u16, dport: u16) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let b = if v6 {
            let mut a = [0xfd; 16];
            a[15] = src;
            b.ipv6(a, [0xfe; 16], 64)
        } else {
            b.ipv4([10, 0, 0, src], [10, 0, 0, 99], 64)
        };
        let mut f = Vec::new();
        b.tcp(sport, dport, 1, 1000)
            .write(&mut f, &[0; 10])
            .expect("fits");
        f
    }

    #[test]
    fn flow_hash_covers_addresses_and_ports_of_ipv4_and_ipv6() {
        use super::flow_hash;
        for v6 in [false, true] {
            let a = flow_hash(&ip_frame(v6, 1, 1000, 80));
            assert_eq!(a, flow_hash(&ip_frame(v6, 1, 1000, 80)), "v6 {v6}");
            assert_ne!(
                a,
                flow_hash(&ip_frame(v6, 2, 1000, 80)),
                "source address, v6 {v6}"
            );
            assert_ne!(
                a,
                flow_hash(&ip_frame(v6, 1, 1001, 80)),
                "source port, v6 {v6}"
            );
            assert_ne!(
                a,
                flow_hash(&ip_frame(v6, 1, 1000, 81)),
                "destination port, v6 {v6}"
            );
        }
    }

    #[test]
    fn flow_hash_reads_ports_only_where_they_are() {
        use super::flow_hash;
        // A first fragment (offset 0, more fragments) holds the ports; a later one does not, so
        // the bytes where ports would be are payload.
        let mut first = ip_frame(false, 1, 1000, 80);
        first[14 + 6] = 0x20; // MF
        let mut other_port = first.clone();
        other_port[34..36].copy_from_slice(&1001u16.to_be_bytes());
        assert_ne!(flow_hash(&first), flow_hash(&other_port), "first fragment");
        let mut later = first.clone();
        later[14 + 7] = 0x10; // offset 16 * 8 bytes
        let mut later_other = later.clone();
        later_other[34..36].copy_from_slice(&1001u16.to_be_bytes());
        assert_eq!(flow_hash(&later), flow_hash(&later_other), "later fragment");
        // Not IP: the Ethernet header alone.
        let mut arp = first.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let mut arp_other = arp.clone();
        arp_other[26..30].copy_from_slice(&[10, 0, 0, 7]);
        assert_eq!(flow_hash(&arp), flow_hash(&arp_other), "not IP");
        assert_ne!(flow_hash(&arp), flow_hash(&first));
    }
}
