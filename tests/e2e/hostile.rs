//! A hostile underlay end to end: two hosts whose VXLAN traffic passes through an impairing
//! relay that loses 5 %, duplicates 1 % and reorders 5 % of the datagrams (held back 0.5–2 ms,
//! so later ones overtake them). This kernel has no `sch_netem`, so the relay does what
//! `tc netem loss 5% duplicate 1% reorder 5% delay … 2ms` would, in a namespace of its own:
//! host A's peer is one relay address and host B's another, and the relay forwards between
//! them. A checksummed TCP transfer must complete on a plain and on a sealed network, and on
//! the sealed one the replay window must drop exactly the duplicates (`replayed`), never a
//! reordered datagram.

use std::time::Duration;

use crate::support::*;

/// The relay: datagrams to `a_side`:4789 (from host A) go on to `b`:4789 from `b_side`, and
/// the other way round. While `flag` exists it impairs them; it prints `ready`, then (when
/// `stop` appears) `forwarded dropped duplicated reordered`, counted while impairing.
const PY_RELAY: &str = r#"
import heapq, os, random, select, socket, sys, time
a_side, b_side, a, b, flag, stop = sys.argv[1:7]
random.seed(0x5eed)
sa = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sa.bind((a_side, 4789))
sb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sb.bind((b_side, 4789))
for s in (sa, sb):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setblocking(False)
route = {sa: (sb, (b, 4789)), sb: (sa, (a, 4789))}
held = []
seq = 0
n = {'forwarded': 0, 'dropped': 0, 'duplicated': 0, 'reordered': 0}
print('ready', flush=True)
last_check, impair = 0, False
while True:
    now = time.monotonic()
    if now - last_check > 0.05:
        last_check = now
        if os.path.exists(stop): break
        impair = os.path.exists(flag)
    while held and held[0][0] <= now:
        _, _, out, dst, p = heapq.heappop(held)
        out.sendto(p, dst)
    timeout = max(0.0, min(0.05, held[0][0] - now)) if held else 0.05
    ready, _, _ = select.select([sa, sb], [], [], timeout)
    for s in ready:
        for _ in range(64):
            try:
                p = s.recv(65535)
            except BlockingIOError:
                break
            out, dst = route[s]
            if not impair:
                out.sendto(p, dst)
                continue
            if random.random() < 0.05:
                n['dropped'] += 1
                continue
            copies = 1
            if random.random() < 0.01:
                n['duplicated'] += 1
                copies = 2
            for _ in range(copies):
                n['forwarded'] += 1
                if random.random() < 0.05:
                    n['reordered'] += 1
                    seq += 1
                    heapq.heappush(held, (time.monotonic() + random.uniform(0.0005, 0.002), seq, out, dst, p))
                else:
                    out.sendto(p, dst)
print(n['forwarded'], n['dropped'], n['duplicated'], n['reordered'], flush=True)
"#;

const RELAY_A_SIDE: &str = "192.0.2.101";
const RELAY_B_SIDE: &str = "192.0.2.102";

/// Two hosts whose only peer is their side of the relay, with network `net` on both (sealed
/// with `extra` when given), a container on each (10.60.0.1 on A, 10.60.0.2 on B). Returns
/// the lab, the relay, its flag and stop files, and the containers.
fn relayed_pair(
    extra: &[&str],
) -> (
    Lab,
    Bg,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
    String,
) {
    let mut lab = Lab::new(2);
    let relay_ns = lab.underlay_node("relay", RELAY_A_SIDE);
    sh_ok(&[
        "ip",
        "-n",
        &relay_ns,
        "addr",
        "add",
        &format!("{RELAY_B_SIDE}/24"),
        "dev",
        UNDERLAY_DEV,
    ]);
    let flag = lab.dir.join("impair");
    let stop = lab.dir.join("relay-stop");
    let (a_ip, b_ip) = (lab.hosts[0].ip.clone(), lab.hosts[1].ip.clone());
    let mut relay = Bg::spawn(&mut py_cmd(
        &relay_ns,
        PY_RELAY,
        &[
            RELAY_A_SIDE,
            RELAY_B_SIDE,
            &a_ip,
            &b_ip,
            flag.to_str().expect("utf-8 path"),
            stop.to_str().expect("utf-8 path"),
        ],
    ));
    relay.wait_for("ready", Duration::from_secs(15));
    for (i, via) in [(0, RELAY_A_SIDE), (1, RELAY_B_SIDE)] {
        let args: Vec<String> = ["--listen", &lab.hosts[i].ip, "--peer", via]
            .iter()
            .map(|s| s.to_string())
            .collect();
        lab.hosts[i].start(&args);
    }
    let mut net = vec!["--gateway", "10.60.0.254"];
    net.extend_from_slice(extra);
    for h in &lab.hosts {
        h.create_network("rough", 600, "10.60.0.0/24", &net);
    }
    let c1 = lab.netns("r1");
    let c2 = lab.netns("r2");
    lab.hosts[0].attach(&c1, "rough", &["--ip", "10.60.0.1/24"]);
    lab.hosts[1].attach(&c2, "rough", &["--ip", "10.60.0.2/24"]);
    lab.assert_ping(&c1, "10.60.0.2");
    (lab, relay, flag, stop, c1, c2)
}

/// The relay's counts: (forwarded, dropped, duplicated, reordered).
fn stop_relay(relay: Bg, stop: &std::path::Path) -> (u64, u64, u64, u64) {
    std::fs::write(stop, b"").expect("stop file");
    let r = relay.finish(Duration::from_secs(30));
    let n: Vec<u64> = r
        .out
        .last()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(n.len(), 4, "relay output: {:?} {:?}", r.out, r.err);
    (n[0], n[1], n[2], n[3])
}

fn replayed(h: &Host) -> u64 {
    h.json(&["stats"])["drops"]["replayed"]
        .as_u64()
        .expect("stats lists replayed")
}

/// The issue's 50 MB: about 50,000 impaired datagrams each run.
const SIZE: usize = 50 * 1024 * 1024;

#[test]
fn tcp_crosses_a_lossy_duplicating_reordering_underlay_plain() {
    let (lab, relay, flag, stop, c1, c2) = relayed_pair(&[]);
    std::fs::write(&flag, b"").expect("flag");
    std::thread::sleep(Duration::from_millis(100));
    tcp_transfer(&c1, &c2, "10.60.0.2", 9601, SIZE);
    let _ = std::fs::remove_file(&flag);
    let (forwarded, dropped, duplicated, reordered) = stop_relay(relay, &stop);
    eprintln!("relay: {forwarded} forwarded, {dropped} dropped, {duplicated} duplicated, {reordered} reordered");
    assert!(
        dropped > 100 && duplicated > 10 && reordered > 100,
        "the underlay did its worst: {dropped} {duplicated} {reordered}"
    );
    for h in &lab.hosts {
        assert_eq!(replayed(h), 0, "a plain network has no replay window");
    }
}

#[test]
fn tcp_crosses_a_lossy_duplicating_reordering_underlay_sealed_and_only_duplicates_are_replays() {
    let dir = std::env::temp_dir().join(unique_prefix());
    std::fs::create_dir_all(&dir).expect("key dir");
    let key = dir.join("k");
    let out = run_cmd(
        std::process::Command::new(VSWITCH)
            .args(["key", "generate", "--out"])
            .arg(&key),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "key generate: {out:?}");
    let k = key.to_str().expect("utf-8 path").to_string();
    let (lab, relay, flag, stop, c1, c2) = relayed_pair(&["--encrypted", "--key-file", &k]);
    let _ = std::fs::remove_dir_all(&dir);
    let before: u64 = lab.hosts.iter().map(replayed).sum();
    std::fs::write(&flag, b"").expect("flag");
    std::thread::sleep(Duration::from_millis(100));
    tcp_transfer(&c1, &c2, "10.60.0.2", 9602, SIZE);
    let _ = std::fs::remove_file(&flag);
    // Let held-back datagrams land before counting.
    std::thread::sleep(Duration::from_millis(200));
    let (forwarded, dropped, duplicated, reordered) = stop_relay(relay, &stop);
    eprintln!("relay: {forwarded} forwarded, {dropped} dropped, {duplicated} duplicated, {reordered} reordered");
    assert!(
        dropped > 100 && duplicated > 10 && reordered > 100,
        "the underlay did its worst: {dropped} {duplicated} {reordered}"
    );
    let after: u64 = lab.hosts.iter().map(replayed).sum();
    assert_eq!(
        after - before,
        duplicated,
        "every duplicate, and nothing else (no reordered datagram), dropped as a replay"
    );
    for h in &lab.hosts {
        let st = h.json(&["stats"]);
        for reason in ["auth_failed", "unknown_key", "unverified", "bad_envelope"] {
            assert_eq!(
                st["drops"][reason].as_u64(),
                Some(0),
                "{reason} on {}: {st}",
                h.label
            );
        }
    }
}
