//! A hostile underlay on the in-process fabric: datagrams lost (5 %), duplicated (1 %) and
//! reordered (5 %, by up to 64 places, what 2 ms of jitter does to a busy link), from a seeded
//! generator. On a sealed network the replay window must never drop a legitimately reordered
//! datagram (`replayed` stays 0 without duplicates) and must drop every duplicate, counted as
//! `replayed`; a plain network carries whatever arrives. No root, no sockets, no sleeps.
//!
//! The end-to-end version (a checksummed 50 MB TCP transfer through an impairing relay, since
//! this kernel has no `sch_netem`) is `tests/e2e/hostile.rs`.

use std::collections::BTreeSet;

use vswitch::core::seal::{NetworkKey, SealConfig, Sealer};
use vswitch::core::switch::{HEADROOM, TAILROOM};
use vswitch::core::{Forward, PortId, SwitchConfig};
use vswitch::sim::{frame, host_addr, Fabric};
use vswitch::wire::{EtherType, Mac, Vni};

const NET: Vni = match Vni::new(700) {
    Ok(v) => v,
    Err(_) => panic!(),
};
const FRAMES: u32 = 20_000;

/// xorshift64*: a small deterministic generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Two hosts with `NET`, sealed when `sealed`; one container on each.
fn fabric(sealed: bool) -> Fabric {
    let mut f = Fabric::full_mesh(
        2,
        SwitchConfig {
            storm_pps: 0,
            ..SwitchConfig::default()
        },
    );
    f.add_network_everywhere(NET);
    for h in 0..2 {
        if sealed {
            let key = NetworkKey::from_bytes([9; 32]);
            let sealer = Sealer::new(NET.get(), &key, 0x700 + h as u64, SealConfig::default())
                .expect("config");
            f.hosts[h]
                .switch
                .set_sealer(NET, Some(sealer))
                .expect("network");
        }
        f.attach(h, PortId(1), NET);
    }
    // The hosts verify each other (sealed networks accept datagrams only from verified
    // senders, sealed after the handshake); then the logs start empty.
    f.advance(std::time::Duration::ZERO);
    f.take();
    f
}

/// Host 0's container sends `FRAMES` numbered frames; returns the datagrams host 0 puts on the
/// underlay for them, in order, without anyone receiving them yet.
fn datagrams(f: &Fabric) -> Vec<Vec<u8>> {
    let sw = &f.hosts[0].switch;
    let mut fwd = Forward::default();
    (0..FRAMES)
        .map(|i| {
            let sent = frame(
                Mac([2, 0, 0, 0, 0, 2]),
                Mac([2, 0, 0, 0, 0, 1]),
                EtherType::IPV4,
                &[&i.to_be_bytes()[..], &[0u8; 60]].concat(),
            );
            sw.frame_from_port(f.now, PortId(1), &sent, &mut fwd);
            let sends = fwd.deliver(&sent, |_, _| {}).expect("to the peer");
            let mut buf = vec![0u8; HEADROOM + sent.len() + TAILROOM];
            buf[HEADROOM..HEADROOM + sent.len()].copy_from_slice(&sent);
            let enc = sw
                .encapsulate(&sends, &mut buf, HEADROOM..HEADROOM + sent.len())
                .expect("room reserved");
            buf[enc.datagram].to_vec()
        })
        .collect()
}

/// What the underlay did to the datagrams.
struct Impaired {
    arriving: Vec<Vec<u8>>,
    lost: usize,
    duplicated: usize,
    reordered: usize,
}

/// Loses, duplicates and reorders (each in `percent` of datagrams, `dup` for duplicates).
fn impair(datagrams: Vec<Vec<u8>>, seed: u64, dup: u64) -> Impaired {
    let mut rng = Rng(seed);
    let mut out = Impaired {
        arriving: Vec::new(),
        lost: 0,
        duplicated: 0,
        reordered: 0,
    };
    // Held back: (release after this many more arrivals, datagram).
    let mut held: Vec<(u64, Vec<u8>)> = Vec::new();
    for d in datagrams {
        if rng.chance(5) {
            out.lost += 1;
            continue;
        }
        let copies = if rng.chance(dup) {
            out.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if rng.chance(5) {
                out.reordered += 1;
                held.push((1 + rng.next() % 64, d.clone()));
            } else {
                out.arriving.push(d.clone());
                for h in &mut held {
                    h.0 -= 1;
                }
                let (due, kept): (Vec<_>, Vec<_>) = held.drain(..).partition(|h| h.0 == 0);
                held = kept;
                out.arriving.extend(due.into_iter().map(|h| h.1));
            }
        }
    }
    out.arriving.extend(held.into_iter().map(|h| h.1));
    out
}

/// Runs the impaired stream into host 1; returns the frame numbers its container received
/// (with repeats) and host 1's `replayed` count.
fn receive(f: &mut Fabric, arriving: &[Vec<u8>]) -> (Vec<u32>, u64) {
    for d in arriving {
        f.inject(host_addr(0), 1, d);
    }
    let (delivered, _) = f.take();
    let numbers = delivered
        .iter()
        .map(|d| {
            assert_eq!(d.host, 1);
            u32::from_be_bytes([d.frame[14], d.frame[15], d.frame[16], d.frame[17]])
        })
        .collect();
    let drops = f.hosts[1].switch.drops.snapshot_all();
    (numbers, drops["replayed"])
}

#[test]
fn a_sealed_network_never_drops_a_reordered_datagram_as_replayed() {
    let mut f = fabric(true);
    let all = datagrams(&f);
    let net = impair(all, 0x5eed_0001, 0);
    assert!(
        net.reordered > 500 && net.lost > 500,
        "the underlay did its worst"
    );
    let (got, replayed) = receive(&mut f, &net.arriving);
    assert_eq!(replayed, 0, "a reordered datagram was taken for a replay");
    assert_eq!(
        got.len(),
        FRAMES as usize - net.lost,
        "every datagram that arrived"
    );
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), got.len());
    assert_eq!(f.hosts[1].switch.drops.total(), 0);
}

#[test]
fn a_sealed_network_delivers_each_frame_once_and_counts_every_duplicate() {
    let mut f = fabric(true);
    let all = datagrams(&f);
    let net = impair(all, 0x5eed_0002, 1);
    assert!(net.duplicated > 100, "{} duplicates", net.duplicated);
    let (got, replayed) = receive(&mut f, &net.arriving);
    assert_eq!(got.len(), FRAMES as usize - net.lost, "each frame once");
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), got.len());
    assert_eq!(
        replayed, net.duplicated as u64,
        "every duplicate dropped and counted"
    );
}

#[test]
fn a_plain_network_carries_whatever_arrives() {
    let mut f = fabric(false);
    let all = datagrams(&f);
    let net = impair(all, 0x5eed_0003, 1);
    let (got, replayed) = receive(&mut f, &net.arriving);
    assert_eq!(got.len(), FRAMES as usize - net.lost + net.duplicated);
    assert_eq!(replayed, 0);
}
