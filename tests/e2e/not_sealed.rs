//! The security promise of sealed networks, end to end: plain VXLAN sent from a peer's own
//! underlay address into a sealed network is never delivered nor learned from, and is counted
//! as `not_sealed`; the same datagram for a plain network next to it is delivered (so the
//! injection itself works).

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Sends the datagram (hex) `count` times from `src` to `dst`:4789.
const PY_UDP: &str = r#"
import socket, sys
src, dst, payload, count = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((src, 0))
for _ in range(count):
    u.sendto(payload, (dst, 4789))
print('sent', count, flush=True)
"#;

const INJECTED_MAC: &str = "02:00:00:00:ee:01";

/// A plain VXLAN datagram of `vni`: a broadcast frame from [`INJECTED_MAC`] carrying `mark`.
fn plain_datagram(vni: u32, mark: &str) -> String {
    let mut d = vec![0x08, 0, 0, 0];
    d.extend_from_slice(&vni.to_be_bytes()[1..]);
    d.push(0);
    d.extend([0xff; 6]);
    d.extend(
        INJECTED_MAC
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).expect("hex")),
    );
    d.extend(MARK_ETHERTYPE.to_be_bytes());
    let mut payload = mark.as_bytes().to_vec();
    payload.resize(payload.len().max(46), 0);
    d.extend(payload);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn count_of(v: &Value, reason: &str) -> u64 {
    v["drops"][reason].as_u64().unwrap_or(0)
}

#[test]
fn plain_vxlan_from_a_peer_is_never_delivered_on_a_sealed_network() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    let key = lab.dir.join("k");
    let out = run_cmd(
        std::process::Command::new(VSWITCH)
            .args(["key", "generate", "--out"])
            .arg(&key),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "key generate: {out:?}");
    let k = key.to_str().expect("utf-8 path");
    for h in &lab.hosts {
        h.create_network(
            "sec",
            300,
            "10.30.0.0/24",
            &["--encrypted", "--key-file", k],
        );
        h.create_network("open", 301, "10.31.0.0/24", &[]);
    }
    let sealed_c = lab.netns("s2");
    let open_c = lab.netns("o2");
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    b.attach(&sealed_c, "sec", &["--ip", "10.30.0.2/24"]);
    b.attach(&open_c, "open", &["--ip", "10.31.0.2/24"]);

    let (mark_sealed, mark_open) = (marker("inject-sealed"), marker("inject-open"));
    let in_sealed = count_frames(
        &sealed_c,
        "eth0",
        4.0,
        Some(MARK_ETHERTYPE),
        Some(&mark_sealed),
        None,
    );
    let in_open = count_frames(
        &open_c,
        "eth0",
        4.0,
        Some(MARK_ETHERTYPE),
        Some(&mark_open),
        None,
    );
    // From host A's own underlay address, as a compromised or misconfigured peer would.
    for (vni, mark, count) in [(300, &mark_sealed, "5"), (301, &mark_open, "1")] {
        let out = run_cmd(
            &mut py_cmd(
                &a.ns.name,
                PY_UDP,
                &[&a.ip, &b.ip, &plain_datagram(vni, mark), count],
            ),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "inject: {out:?}");
    }
    assert_eq!(
        in_open.result(),
        1,
        "the control: plain VXLAN on the plain network"
    );
    assert_eq!(
        in_sealed.result(),
        0,
        "plain VXLAN was delivered on the sealed network"
    );

    let stats = b.json(&["stats"]);
    assert_eq!(count_of(&stats, "not_sealed"), 5, "stats: {stats}");
    let sec = stats["networks"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "sec"))
        .unwrap_or_else(|| panic!("network sec in {stats}"));
    assert_eq!(count_of(&sec["traffic"], "not_sealed"), 5, "sec: {sec}");
    let peers = b.json(&["peer", "ls"]);
    let from_a = peers
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["addr"] == format!("{}:4789", a.ip).as_str())
        })
        .unwrap_or_else(|| panic!("peer {} in {peers}", a.ip));
    assert_eq!(count_of(&from_a["traffic"], "not_sealed"), 5, "{from_a}");
    // Learned in the plain network, never in the sealed one.
    let fdb = b.json(&["fdb"]);
    let learned_in = |net: &str| {
        fdb.as_array()
            .unwrap_or_else(|| panic!("fdb --json is not an array: {fdb}"))
            .iter()
            .any(|e| e["network"] == net && e["mac"] == INJECTED_MAC)
    };
    assert!(
        learned_in("open"),
        "control: learned in the plain network: {fdb}"
    );
    assert!(
        !learned_in("sec"),
        "learned from an unsealed datagram: {fdb}"
    );
}
