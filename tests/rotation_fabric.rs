//! Key rotation on the in-process fabric: three idle hosts of an encrypted network get a new key
//! at different times and all switch to it through key announcements alone, without a frame
//! of container traffic. No root, no sockets, a virtual clock.

use std::time::Duration;

use vswitch::core::seal::{NetworkKey, RotationPhase, SealConfig, Sealer, KEY_LEN};
use vswitch::core::{PortId, SwitchConfig, Timestamp};
use vswitch::sim::{frame, Fabric};
use vswitch::wire::{EtherType, Mac, Vni};

const SEC: Vni = match Vni::new(300) {
    Ok(v) => v,
    Err(_) => panic!(),
};

fn key(byte: u8) -> NetworkKey {
    NetworkKey::from_bytes([byte; KEY_LEN])
}

fn sealer_of(f: &Fabric, host: usize) -> &Sealer {
    f.hosts[host]
        .switch
        .network(SEC)
        .and_then(|n| n.sealer())
        .expect("encrypted network")
}

/// Three hosts with the encrypted network `SEC` on key `k1`, one container each.
fn sealed_fabric(k1: &NetworkKey) -> Fabric {
    let mut f = Fabric::full_mesh(3, SwitchConfig::default());
    f.add_network_everywhere(SEC);
    for h in 0..3 {
        let sealer = Sealer::new(SEC.get(), k1, 100 + h as u64, SealConfig::default())
            .expect("default config");
        f.hosts[h]
            .switch
            .set_sealer(SEC, Some(sealer))
            .expect("network exists");
        f.attach(h, PortId(h as u32), SEC);
    }
    f
}

fn rotate(f: &Fabric, host: usize, k2: &NetworkKey) {
    let peers: Vec<_> = f.hosts[host].switch.peers().map(|v| v.0).collect();
    sealer_of(f, host)
        .rotate(k2, &peers, f.now)
        .expect("rotation starts");
}

#[test]
fn idle_hosts_all_switch_within_a_second_of_the_last_one_getting_the_key() {
    let k1 = key(1);
    let k2 = (2..=255)
        .map(key)
        .find(|k| k.id() != k1.id())
        .expect("ids differ");
    let mut f = sealed_fabric(&k1);
    let step = Duration::from_millis(100);
    let rotate_at = [
        Timestamp::from_secs(1),
        Timestamp::from_secs(3),
        Timestamp::from_secs(6),
    ];
    let mut all_switched = None;
    while f.now < Timestamp::from_secs(8) {
        f.advance(step);
        for (h, at) in rotate_at.iter().enumerate() {
            if f.now == *at {
                rotate(&f, h, &k2);
            }
        }
        let sending: Vec<_> = (0..3).map(|h| sealer_of(&f, h).status().sending).collect();
        if f.now < rotate_at[2] {
            assert!(
                sending.iter().all(|&k| k == k1.id()),
                "nobody may switch before every host holds the key ({:?}): {sending:?}",
                f.now
            );
        }
        if all_switched.is_none() && sending.iter().all(|&k| k == k2.id()) {
            all_switched = Some(f.now);
        }
    }
    let at = all_switched.expect("every host switched to the new key with no traffic at all");
    assert!(
        at <= rotate_at[2].saturating_add(Duration::from_secs(1)),
        "switched at {at:?}, the last host got the key at {:?}",
        rotate_at[2]
    );
    let (delivered, underlay) = f.take();
    assert!(delivered.is_empty(), "announcements reach no container");
    assert!(!underlay.is_empty(), "the hosts announced themselves");
    for h in 0..3 {
        assert_eq!(
            f.hosts[h].switch.drops.total(),
            0,
            "host {h} dropped something"
        );
        assert!(sealer_of(&f, h).stats().announcements_opened() > 0);
    }

    // The new key carries traffic both ways, and once the overlap is over nobody announces.
    let (a, b) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
    f.send(0, PortId(0), &frame(b, a, EtherType::IPV4, &[0xaa; 46]));
    f.send(1, PortId(1), &frame(a, b, EtherType::IPV4, &[0xbb; 46]));
    let (delivered, _) = f.take();
    assert_eq!(
        delivered.len(),
        3,
        "broadcast to 2 hosts, then unicast back: {delivered:?}"
    );
    f.advance(Duration::from_secs(61));
    f.take();
    f.advance(Duration::from_secs(1));
    f.advance(Duration::from_secs(1));
    let (_, underlay) = f.take();
    assert!(underlay.is_empty(), "stable again: silent: {underlay:?}");
    for h in 0..3 {
        assert_eq!(sealer_of(&f, h).status().phase, RotationPhase::Stable);
    }
}
