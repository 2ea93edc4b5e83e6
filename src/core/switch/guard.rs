//! What a port may send: port security (its own MAC and addresses only) and storm control (a
//! rate limit on its broadcast and multicast frames). Both decide from the frame's bytes and the
//! time passed in; neither allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use crate::core::counters::DropReason;
use crate::core::sync::lock;
use crate::core::Timestamp;
use crate::wire::{EtherType, FrameInfo, Mac};

/// The identity a port was given at attach: a port with security on sends only from `mac`,
/// and (in ARP and IPv4/IPv6 headers) only from its own addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSecurity {
    pub mac: Mac,
    /// The port's IPv4 addresses. `0.0.0.0` (ARP probes, DHCP) is always allowed.
    pub ipv4: Vec<Ipv4Addr>,
    /// The port's IPv6 addresses besides link-local ones (`fe80::/10` and `::`, which the
    /// container's kernel uses on its own, are always allowed).
    pub ipv6: Vec<Ipv6Addr>,
}

impl PortSecurity {
    /// Whether `frame` (already classified as `info`) may come from this port.
    pub fn check(&self, info: &FrameInfo, frame: &[u8]) -> Result<(), DropReason> {
        if info.src != self.mac {
            return Err(DropReason::PortSecurity);
        }
        let ok = match source_address(info.ethertype, frame) {
            Source::None => true,
            Source::Malformed => false,
            Source::Arp { mac, ip } => mac == self.mac && self.allows(IpAddr::V4(ip)),
            Source::Ip(ip) => self.allows(ip),
        };
        if ok {
            Ok(())
        } else {
            Err(DropReason::PortSecurity)
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4.is_unspecified() || self.ipv4.contains(&v4),
            IpAddr::V6(v6) => {
                v6.is_unspecified()
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || self.ipv6.contains(&v6)
            }
        }
    }
}

/// The source a frame claims in its L3 (or ARP) header.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// Not ARP or IP: only the MAC is checked.
    None,
    /// ARP or IP too short to read: refused on a secured port.
    Malformed,
    Arp {
        mac: Mac,
        ip: Ipv4Addr,
    },
    Ip(IpAddr),
}

/// Reads the source address of an untagged ARP, IPv4 or IPv6 frame at fixed offsets.
fn source_address(ethertype: u16, frame: &[u8]) -> Source {
    let l3 = frame.get(14..).unwrap_or(&[]);
    let read = |range: std::ops::Range<usize>| l3.get(range);
    match ethertype {
        EtherType::ARP => match (read(8..14), read(14..18)) {
            (Some(mac), Some(ip)) => Source::Arp {
                mac: Mac(<[u8; 6]>::try_from(mac).unwrap_or_default()),
                ip: Ipv4Addr::from(<[u8; 4]>::try_from(ip).unwrap_or_default()),
            },
            _ => Source::Malformed,
        },
        EtherType::IPV4 => match read(12..16) {
            Some(ip) => Source::Ip(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(ip).unwrap_or_default(),
            ))),
            None => Source::Malformed,
        },
        EtherType::IPV6 => match read(8..24) {
            Some(ip) => Source::Ip(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(ip).unwrap_or_default(),
            ))),
            None => Source::Malformed,
        },
        _ => Source::None,
    }
}

/// A token bucket for one port's broadcast and multicast frames: `rate` per second, bursts of
/// up to `burst`. Taken only for such frames, so unicast never touches its lock.
#[derive(Debug)]
pub struct StormControl {
    rate: u32,
    burst: u32,
    state: Mutex<Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths (so a rate below 1000/s still refills between milliseconds).
    milli_tokens: u64,
    at: Timestamp,
}

impl StormControl {
    pub fn new(rate: u32, burst: u32) -> StormControl {
        StormControl {
            rate,
            burst,
            state: Mutex::new(Bucket {
                milli_tokens: u64::from(burst) * 1000,
                at: Timestamp(0),
            }),
        }
    }

    /// Takes a token for one broadcast/multicast frame at `now`; `Err` when the port is over
    /// its rate.
    pub fn admit(&self, now: Timestamp) -> Result<(), DropReason> {
        let mut b = lock(&self.state);
        let elapsed = now.0.saturating_sub(b.at.0);
        let cap = u64::from(self.burst) * 1000;
        b.milli_tokens = b
            .milli_tokens
            .saturating_add(elapsed.saturating_mul(u64::from(self.rate)))
            .min(cap);
        b.at = Timestamp(b.at.0.max(now.0));
        if b.milli_tokens >= 1000 {
            b.milli_tokens -= 1000;
            Ok(())
        } else {
            Err(DropReason::StormControl)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::classify;

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const OTHER: Mac = Mac([2, 0, 0, 0, 0, 2]);

    fn secured() -> PortSecurity {
        PortSecurity {
            mac: MAC,
            ipv4: vec![Ipv4Addr::new(10, 0, 0, 1)],
            ipv6: vec![],
        }
    }

    fn frame(src: Mac, ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn ipv4(src: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&[10, 0, 0, 9]);
        h
    }

    fn arp(sha: Mac, spa: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&sha.0);
        a.extend_from_slice(&spa);
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&[10, 0, 0, 9]);
        a
    }

    fn check(f: &[u8]) -> Result<(), DropReason> {
        secured().check(&classify(f).expect("ethernet"), f)
    }

    #[test]
    fn a_secured_port_sends_only_as_itself() {
        assert_eq!(
            check(&frame(MAC, EtherType::IPV4, &ipv4([10, 0, 0, 1]))),
            Ok(())
        );
        assert_eq!(
            check(&frame(MAC, EtherType::IPV4, &ipv4([0, 0, 0, 0]))),
            Ok(()),
            "DHCP"
        );
        assert_eq!(
            check(&frame(OTHER, EtherType::IPV4, &ipv4([10, 0, 0, 1]))),
            Err(DropReason::PortSecurity),
            "another MAC"
        );
        assert_eq!(
            check(&frame(MAC, EtherType::IPV4, &ipv4([10, 0, 0, 7]))),
            Err(DropReason::PortSecurity),
            "another IPv4 source"
        );
        assert_eq!(
            check(&frame(MAC, EtherType::ARP, &arp(MAC, [10, 0, 0, 1]))),
            Ok(())
        );
        assert_eq!(
            check(&frame(MAC, EtherType::ARP, &arp(MAC, [0, 0, 0, 0]))),
            Ok(()),
            "probe"
        );
        assert_eq!(
            check(&frame(MAC, EtherType::ARP, &arp(MAC, [10, 0, 0, 7]))),
            Err(DropReason::PortSecurity),
            "ARP for someone else's address"
        );
        assert_eq!(
            check(&frame(MAC, EtherType::ARP, &arp(OTHER, [10, 0, 0, 1]))),
            Err(DropReason::PortSecurity),
            "ARP with another sender MAC"
        );
        assert_eq!(
            check(&frame(MAC, EtherType::ARP, &[0, 1, 8, 0])),
            Err(DropReason::PortSecurity),
            "truncated ARP"
        );
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 58, 255];
        v6.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
        v6.extend_from_slice(&[0; 16]);
        assert_eq!(
            check(&frame(MAC, EtherType::IPV6, &v6)),
            Ok(()),
            "link-local"
        );
        v6[8..24].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        assert_eq!(
            check(&frame(MAC, EtherType::IPV6, &v6)),
            Err(DropReason::PortSecurity),
            "a global IPv6 source it was not given"
        );
        assert_eq!(
            check(&frame(MAC, 0x88b5, b"marker")),
            Ok(()),
            "other EtherTypes: MAC only"
        );
    }

    #[test]
    fn storm_control_passes_the_rate_and_refuses_the_excess() {
        let sc = StormControl::new(100, 10);
        let t0 = Timestamp(1_000);
        let passed = (0..50).filter(|_| sc.admit(t0).is_ok()).count();
        assert_eq!(passed, 10, "a burst of 10");
        // 100/s: 5 more tokens after 50 ms.
        let t1 = Timestamp(1_050);
        let passed = (0..50).filter(|_| sc.admit(t1).is_ok()).count();
        assert_eq!(passed, 5);
        // A long pause refills to the burst, no more.
        let t2 = Timestamp(100_000);
        let passed = (0..50).filter(|_| sc.admit(t2).is_ok()).count();
        assert_eq!(passed, 10);
    }
}
