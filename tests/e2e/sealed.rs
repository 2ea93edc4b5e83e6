//! Encrypted networks end to end: sealed traffic flows, the underlay carries no plaintext,
//! hosts with different keys cannot talk (and say why), replays are never delivered (not even
//! after the receiver restarts), and a key
//! rotation under a live TCP stream loses nothing.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn keygen(path: &Path) {
    let out = run_cmd(
        std::process::Command::new(VSWITCH)
            .args(["key", "generate", "--out"])
            .arg(path),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "key generate: {out:?}");
}

/// A key at `path` for rotating to from the keys at `others`: its 8-bit key id differs from
/// theirs, as a rotation needs (the daemon refuses a new key with the current key's id), so
/// the test does not fail one time in 256 on a chance collision. Generated again until so.
fn keygen_for_rotation(path: &Path, others: &[&Path]) {
    let id = |p: &Path| {
        vswitch::daemon::keys::read(p)
            .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
            .id()
    };
    let taken: Vec<_> = others.iter().map(|p| id(p)).collect();
    for _ in 0..64 {
        let _ = std::fs::remove_file(path);
        keygen(path);
        if !taken.contains(&id(path)) {
            return;
        }
    }
    panic!("64 keys in a row shared an id with {others:?}");
}

/// Two hosts, an encrypted network `sec` (VNI 300) on both with the named key files (made in
/// the lab's dir), a container on each (10.30.0.1 on A, 10.30.0.2 on B).
pub(crate) fn sealed_pair(key_a: &str, key_b: &str) -> (Lab, String, String) {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for name in [key_a, key_b] {
        if !lab.dir.join(name).exists() {
            keygen(&lab.dir.join(name));
        }
    }
    for (h, key) in [(&lab.hosts[0], key_a), (&lab.hosts[1], key_b)] {
        let path = lab.dir.join(key);
        let k = path.to_str().expect("utf-8 path");
        h.create_network(
            "sec",
            300,
            "10.30.0.0/24",
            &["--encrypted", "--key-file", k, "--gateway", "10.30.0.254"],
        );
    }
    let c1 = lab.netns("s1");
    let c2 = lab.netns("s2");
    let a1 = lab.hosts[0].attach(&c1, "sec", &["--ip", "10.30.0.1/24"]);
    lab.hosts[1].attach(&c2, "sec", &["--ip", "10.30.0.2/24"]);
    assert_eq!(a1["mtu"], 1414, "sealed MTU = 1500 - 50 - 36: {a1}");
    (lab, c1, c2)
}

fn seal_stats(h: &Host) -> Value {
    let s = h.json(&["stats"]);
    s["networks"][0]["seal"].clone()
}

/// The `stats` drop counter `reason` of host `h`. `stats` lists every reason, zeros included, so
/// an absent key fails here instead of reading as 0; `reason`, and every key present, must be a
/// real drop reason name, so a misspelt or renamed reason fails too.
pub(crate) fn drops(h: &Host, reason: &str) -> u64 {
    use vswitch::core::DropReason;
    let known = |name: &str| DropReason::ALL.iter().any(|r| r.name() == name);
    assert!(known(reason), "{reason:?} is not a drop reason name");
    let s = h.json(&["stats"]);
    let all = s["drops"]
        .as_object()
        .unwrap_or_else(|| panic!("stats has no drops object: {s}"));
    for name in all.keys() {
        assert!(
            known(name),
            "stats reports an unknown drop reason {name:?}: {s}"
        );
    }
    // Every reason is listed, zeros included: a missing name is a failure, never a 0.
    all.get(reason)
        .and_then(|n| n.as_u64())
        .unwrap_or_else(|| panic!("stats lists no count for {reason:?}: {s}"))
}

/// The drop reasons only a sealed network produces.
const SEALED_DROPS: [&str; 9] = [
    "not_sealed",
    "unexpected_seal",
    "bad_envelope",
    "unknown_key",
    "auth_failed",
    "replayed",
    "unverified",
    "key_exhausted",
    "too_big",
];

#[test]
fn sealed_network_carries_traffic_and_no_plaintext() {
    let (lab, c1, c2) = sealed_pair("k", "k");
    lab.assert_ping(&c1, "10.30.0.2");
    tcp_transfer(&c1, &c2, "10.30.0.2", 9300, 8 * 1024 * 1024);

    // Capture the underlay on host A while a marker crosses the overlay.
    let pcap = lab.dir.join("sealed.pcap");
    let hns = lab.hosts[0].ns.name.clone();
    // Stopped with SIGINT once the traffic has crossed (a fixed capture window raced the
    // work under load); the timeout only bounds a test that goes wrong.
    let mut cap = Bg::spawn(
        std::process::Command::new("ip")
            .args(["netns", "exec", &hns, "timeout", "-s", "INT", "60"])
            .args(["tcpdump", "-U", "-n", "-i", UNDERLAY_DEV, "-w"])
            .arg(&pcap)
            .args(["udp", "port", "4789"]),
    );
    cap.wait_for("listening on", Duration::from_secs(15));
    let mark = marker("plain");
    let seen = count_frames(&c2, "eth0", 3.0, Some(MARK_ETHERTYPE), Some(&mark), None);
    send_frame(&c1, "eth0", "ff:ff:ff:ff:ff:ff", MARK_ETHERTYPE, &mark);
    // The marker also goes inside ping payloads (ping -p wants hex).
    let hex: String = mark.bytes().take(16).map(|b| format!("{b:02x}")).collect();
    let ping = ns_exec(
        &c1,
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-p",
            &hex,
            "10.30.0.2",
        ],
    );
    assert!(
        ping.status.success() && String::from_utf8_lossy(&ping.stdout).contains("3 received"),
        "3 of 3 marked pings answered across the sealed overlay: {ping:?}"
    );
    assert_eq!(
        seen.result(),
        1,
        "the marker frame crossed the sealed overlay once"
    );
    // A few more flows while the capture runs, each with its own flow hash.
    for port in 9310..9314 {
        tcp_transfer(&c1, &c2, "10.30.0.2", port, 64 * 1024);
    }
    let capture = cap.interrupt(Duration::from_secs(15));
    assert!(
        capture.err.iter().any(|l| l.contains("packets captured")),
        "tcpdump stopped cleanly: {:?}",
        capture.err
    );
    let bytes = std::fs::read(&pcap).expect("capture file");
    assert!(
        bytes.len() > 1000,
        "the capture holds traffic ({} bytes)",
        bytes.len()
    );
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(mark.as_bytes()),
        "plaintext marker visible on the underlay"
    );
    // ping -p fills each echo's payload with the 16-byte pattern, repeated: twice in a row
    // occurs in the ping payload only, never in the marker frame.
    let pattern = &mark.as_bytes()[..16];
    assert!(
        !contains(&[pattern, pattern].concat()),
        "ping payload visible on the underlay"
    );
    // tshark still sees VXLAN with the network's VNI (the header is not encrypted).
    let t = sh_ok(&[
        "tshark",
        "-r",
        pcap.to_str().expect("path"),
        "-T",
        "fields",
        "-e",
        "vxlan.vni",
        "-e",
        "vxlan.flags",
        "-e",
        "ip.src",
        "-e",
        "udp.srcport",
    ]);
    // Every datagram: VNI 300, flags 0x0a (I and S). tshark prints the 16-bit flags field.
    // At least the marker, three echo requests and three replies.
    assert!(t.lines().count() >= 7, "tshark sees the datagrams: {t}");
    // Each host sends every datagram of the network, whatever its flow, from one source port
    // (so the receiver takes them from one queue, in order: README, Wire format).
    let mut ports = std::collections::BTreeMap::<&str, std::collections::BTreeSet<&str>>::new();
    for l in t.lines() {
        let mut f = l.split('\t');
        let (vni, flags) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let (src, sport) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        ports.entry(src).or_default().insert(sport);
        let flags = match flags.trim().strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => flags.trim().parse(),
        };
        assert_eq!(
            (vni.trim(), flags.map(|f| f >> 8)),
            ("300", Ok(0x0a)),
            "a datagram that is not sealed VNI 300: {l:?}\n{t}"
        );
    }
    assert_eq!(ports.len(), 2, "datagrams both ways: {t}");
    for (src, sports) in &ports {
        assert_eq!(sports.len(), 1, "{src} sent from ports {sports:?}\n{t}");
    }
    // The TCP transfer alone is thousands of datagrams each way.
    assert_sealed_all_opened(&lab, 1000, 100);
    for h in &lab.hosts {
        assert_steady_seal(h);
    }
}

/// README's `SEAL` fields, every one, as they read on a host of a two-host sealed network
/// that has carried traffic with one key and never rotated.
fn assert_steady_seal(h: &Host) {
    let s = seal_stats(h);
    let keys: std::collections::BTreeSet<&str> = s
        .as_object()
        .unwrap_or_else(|| panic!("SEAL is an object: {s}"))
        .keys()
        .map(String::as_str)
        .collect();
    let documented = [
        "accept_key",
        "accepted_keys",
        "announced",
        "announcements_opened",
        "answers_sent",
        "challenges_sent",
        "opened",
        "phase",
        "sealed",
        "senders",
        "sending_key",
        "verified",
        "waiting_for",
    ];
    assert_eq!(keys, documented.into(), "host {}: {s}", h.label);
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    let key = n("sending_key");
    assert_eq!(n("accept_key"), key, "host {}: {s}", h.label);
    assert_eq!(s["accepted_keys"], serde_json::json!([key]), "{s}");
    assert_eq!((n("announced"), n("announcements_opened")), (0, 0), "{s}");
    // The peer's one sender, verified by one handshake with it, under the one key.
    assert_eq!(
        (n("senders"), n("verified")),
        (1, 1),
        "host {}: {s}",
        h.label
    );
    assert!(n("challenges_sent") + n("answers_sent") >= 1, "{s}");
    assert!(n("sealed") > 0 && n("opened") > 0, "{s}");
    assert!(
        s["phase"].as_str().is_some_and(|p| !p.is_empty()),
        "phase in words: {s}"
    );
    assert_eq!(s["waiting_for"], serde_json::json!([]), "{s}");
}

/// Every datagram one host of `lab` sealed, the other opened, none refused: no sealed drop
/// reason counts anything on either host. Traffic has stopped, but datagrams in flight get a
/// moment to land. A sealed at least `min_a` datagrams, B at least `min_b`.
pub(crate) fn assert_sealed_all_opened(lab: &Lab, min_a: u64, min_b: u64) {
    let counts = |h: &Host| {
        let s = seal_stats(h);
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
        (n("sealed"), n("opened"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ((a_sealed, a_opened), (b_sealed, b_opened)) =
            (counts(&lab.hosts[0]), counts(&lab.hosts[1]));
        if (a_sealed, b_sealed) == (b_opened, a_opened) {
            assert!(
                a_sealed >= min_a && b_sealed >= min_b,
                "A sealed {a_sealed} (expected >= {min_a}), B sealed {b_sealed} (>= {min_b})"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sealed vs opened: A {a_sealed}/{a_opened}, B {b_sealed}/{b_opened}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for h in &lab.hosts {
        for reason in SEALED_DROPS {
            assert_eq!(drops(h, reason), 0, "{reason} on {}", h.label);
        }
    }
}

#[test]
fn hosts_with_different_keys_cannot_talk_and_count_why() {
    let (lab, c1, c2) = sealed_pair("k1", "k2");
    assert_eq!(
        ping(&c1, "10.30.0.2", 3),
        0,
        "different keys must not connect"
    );
    assert_eq!(
        ping(&c2, "10.30.0.1", 3),
        0,
        "different keys must not connect"
    );
    for h in &lab.hosts {
        let failures = drops(h, "auth_failed") + drops(h, "unknown_key");
        assert!(
            failures > 0,
            "host {} counts authentication failures: {}",
            h.label,
            h.json(&["stats"])
        );
    }
}

#[test]
fn a_replayed_sealed_datagram_is_never_delivered_again() {
    let (lab, c1, c2) = sealed_pair("k", "k");
    lab.assert_ping(&c1, "10.30.0.2");
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let mark = marker("replay");
    let seen = count_frames(&c2, "eth0", 10.0, Some(MARK_ETHERTYPE), Some(&mark), None);
    let recording = lab.dir.join("recording.hex");
    let recorded = record(a, b, &recording, || {
        send_frame(&c1, "eth0", "ff:ff:ff:ff:ff:ff", MARK_ETHERTYPE, &mark)
    });
    assert!(recorded >= 1, "captured the sealed marker datagram");
    resend(a, b, &recording, 100);
    assert_eq!(
        seen.result(),
        1,
        "the marker arrived once, and none of its 100 replays did"
    );
    // Every copy of every captured datagram (each already delivered once) is a replay.
    assert_eq!(
        drops(b, "replayed"),
        100 * recorded,
        "replays counted on B: {}",
        b.json(&["stats"])
    );
}

/// Sniffs the datagrams host `src` sends to `dst` on the underlay for `secs` and writes each
/// UDP payload, in hex, one per line, to `file`. Prints how many it kept.
const PY_CAPTURE: &str = r#"
import socket, sys, time
ifname, src, dst, secs, path = sys.argv[1:6]
# ETH_P_ALL: only "all protocols" taps see outgoing packets.
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 3))
s.settimeout(0.05)
print('ready', flush=True)
got = []
end = time.time() + float(secs)
while time.time() < end:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if data[12:14] != b'\x08\x00': continue
    ip = data[14:]
    if len(ip) < 28 or ip[9] != 17: continue
    ihl = (ip[0] & 15) * 4
    if socket.inet_ntoa(ip[12:16]) != src or socket.inet_ntoa(ip[16:20]) != dst: continue
    if int.from_bytes(ip[ihl+2:ihl+4], 'big') != 4789: continue
    got.append(ip[ihl+8:].hex())
open(path, 'w').write('\n'.join(got))
print(len(got), flush=True)
"#;

/// Sends every datagram in `file` (as `PY_CAPTURE` wrote it) `times` times from `src` to
/// `dst`:4789 (a replay by someone on the path). Prints how many datagrams it read.
const PY_RESEND: &str = r#"
import socket, sys
src, dst, path, times = sys.argv[1:5]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((src, 0))
lines = [l for l in open(path).read().split('\n') if l]
for l in lines:
    for _ in range(int(times)):
        u.sendto(bytes.fromhex(l), (dst, 4789))
print(len(lines), flush=True)
"#;

/// Sends every datagram in `file` (as `PY_CAPTURE` wrote it) once as a forged IPv4/UDP packet
/// from `src`:4789 to `dst`:4789, built by hand and put on `ifname` addressed to `dst_mac`:
/// someone on the underlay who is not `src` replays what `src` sent.
const PY_SPOOF: &str = r#"
import socket, struct, sys
ifname, src, dst, dst_mac, path = sys.argv[1:6]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
own_mac = s.getsockname()[4]
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
lines = [l for l in open(path).read().split('\n') if l]
for l in lines:
    payload = bytes.fromhex(l)
    udp = struct.pack('!HHHH', 4789, 4789, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    eth = bytes.fromhex(dst_mac.replace(':', '')) + own_mac + b'\x08\x00'
    s.send(eth + ip + udp)
print(len(lines), flush=True)
"#;

/// Records in `file` the datagrams host `from` sends `to` on the underlay while `during` runs
/// (and 4 s in all); returns how many.
fn record(from: &Host, to: &Host, file: &Path, during: impl FnOnce()) -> u64 {
    let path = file.to_str().expect("utf-8 path");
    let mut capture = Bg::spawn(&mut py_cmd(
        &from.ns.name,
        PY_CAPTURE,
        &[UNDERLAY_DEV, &from.ip, &to.ip, "4", path],
    ));
    capture.wait_for("ready", Duration::from_secs(15));
    during();
    let r = capture.finish(Duration::from_secs(30));
    r.out
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("capture printed no count: {:?} {:?}", r.out, r.err))
}

/// The sender ids (16 hex digits) of the sealed datagrams `record` put in `file`.
fn sender_ids(file: &Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(file).expect("recording");
    text.lines()
        .filter(|l| l.len() >= 40)
        // VXLAN header (8 bytes), then the envelope: version, key, accept, flags, sender id.
        .map(|l| l[24..40].to_string())
        .collect()
}

/// Sends what `record` put in `file` `times` over, from `from`'s address to `to`.
fn resend(from: &Host, to: &Host, file: &Path, times: u32) {
    let path = file.to_str().expect("utf-8 path");
    let out = run_cmd(
        &mut py_cmd(
            &from.ns.name,
            PY_RESEND,
            &[&from.ip, &to.ip, path, &times.to_string()],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "resend: {out:?}");
}

/// The security review's attack: record what B sends A, restart A's daemon (B keeps running,
/// with the same sender id and keys), and replay the recording from a third namespace on the
/// underlay that forges B's address. The
/// restarted daemon has verified B afresh, so every recorded datagram is older than what B
/// proved it sends now: none is delivered, each is counted as `replayed`.
#[test]
fn a_recording_replayed_after_the_receiver_restarts_is_never_delivered() {
    let (mut lab, c1, c2) = sealed_pair("k", "k");
    lab.assert_ping(&c1, "10.30.0.2");
    let a_before = lab.dir.join("a-before.hex");
    record(&lab.hosts[0], &lab.hosts[1], &a_before, || {
        assert_eq!(ping(&c1, "10.30.0.2", 2), 2);
    });
    let recording = lab.dir.join("recording.hex");
    let mark = marker("restart-replay");
    let seen = count_frames(&c1, "eth0", 8.0, Some(MARK_ETHERTYPE), Some(&mark), None);
    let recorded = record(&lab.hosts[1], &lab.hosts[0], &recording, || {
        for _ in 0..10 {
            send_frame(&c2, "eth0", "ff:ff:ff:ff:ff:ff", MARK_ETHERTYPE, &mark);
        }
    });
    assert!(recorded >= 10, "recorded the 10 sealed markers B sent A");
    assert_eq!(
        seen.stop_after(Duration::from_millis(300)),
        10,
        "delivered once before"
    );

    // A's daemon restarts (its container is detached first and attached again after, so the
    // test does not depend on what a restart does to ports). B runs on.
    lab.hosts[0].ok(&["detach", &c1]);
    lab.hosts[0].stop();
    lab.hosts[0].respawn();
    lab.hosts[0].attach(&c1, "sec", &["--ip", "10.30.0.1/24"]);
    lab.assert_ping(&c1, "10.30.0.2");
    // The restarted daemon seals as a new sender (so under new subkeys: no nonce is reused).
    let a_after = lab.dir.join("a-after.hex");
    record(&lab.hosts[0], &lab.hosts[1], &a_after, || {
        assert_eq!(ping(&c1, "10.30.0.2", 2), 2);
    });
    let (before, after) = (sender_ids(&a_before), sender_ids(&a_after));
    assert_eq!(before.len(), 1, "one sender id per run: {before:?}");
    assert_eq!(after.len(), 1, "one sender id per run: {after:?}");
    assert_ne!(before, after, "a restarted daemon draws a fresh sender id");
    let a = &lab.hosts[0];
    let seal = seal_stats(a);
    assert!(
        seal["verified"].as_u64() >= Some(1),
        "the restarted daemon verified B by a handshake: {seal}"
    );
    let replayed_before = drops(a, "replayed");

    // The replay comes from a third namespace on the underlay, forging B's address.
    let attacker = lab.underlay_node("mallory", "192.0.2.66");
    let a_mac = link(&a.ns.name, UNDERLAY_DEV)["address"]
        .as_str()
        .expect("A's underlay MAC")
        .to_owned();
    let seen = count_frames(&c1, "eth0", 6.0, Some(MARK_ETHERTYPE), Some(&mark), None);
    let out = run_cmd(
        &mut py_cmd(
            &attacker,
            PY_SPOOF,
            &[
                UNDERLAY_DEV,
                &lab.hosts[1].ip,
                &a.ip,
                &a_mac,
                recording.to_str().expect("utf-8 path"),
            ],
        ),
        Duration::from_secs(15),
    );
    assert!(out.status.success(), "spoofed replay: {out:?}");
    assert_eq!(
        seen.stop_after(Duration::from_millis(500)),
        0,
        "a recorded marker was delivered again after the receiver restarted"
    );
    assert_eq!(
        drops(a, "replayed") - replayed_before,
        recorded,
        "every recorded datagram counted as a replay: {}",
        a.json(&["stats"])
    );
    assert_eq!(
        drops(a, "unverified"),
        0,
        "B was verified before the replay"
    );
    // B's new traffic still flows.
    lab.assert_ping(&c2, "10.30.0.1");
}

/// Waits until host `receiver` has opened `n` more sealed datagrams than when called, while
/// `transfer` is still running: proof that the stream is live at this point. Fails after 15 s,
/// or if the transfer ended first. (The receiver may take a while to start under load.)
fn await_stream<T>(receiver: &Host, n: u64, transfer: &std::thread::ScopedJoinHandle<'_, T>) {
    let opened = || seal_stats(receiver)["opened"].as_u64().expect("opened");
    let base = opened();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            !transfer.is_finished(),
            "the stream ended before {n} more datagrams reached host {}",
            receiver.label
        );
        if opened() >= base + n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "15 s without {n} more datagrams opened on host {}: {}",
            receiver.label,
            seal_stats(receiver)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn key_rotation_under_a_live_tcp_stream_loses_nothing() {
    let (lab, c1, c2) = sealed_pair("k1", "k1");
    let k2 = lab.dir.join("k2");
    keygen_for_rotation(&k2, &[&lab.dir.join("k1")]);
    lab.assert_ping(&c1, "10.30.0.2");
    let before = seal_stats(&lab.hosts[0])["sending_key"].clone();
    let k = k2.to_str().expect("path");
    // 8 MiB spread over 6 s: the stream is live before, between and after both rotations.
    let switched_after = std::thread::scope(|s| {
        let (c1, c2) = (c1.clone(), c2.clone());
        let transfer = s.spawn(move || {
            tcp_transfer_paced(
                &c1,
                &c2,
                "10.30.0.2",
                9301,
                8 * 1024 * 1024,
                Duration::from_secs(6),
            )
        });
        // Each rotation waits until the stream has moved 100 more datagrams A -> B: it is
        // live before, between and after them (checked, not assumed from sleeps).
        await_stream(&lab.hosts[1], 100, &transfer);
        lab.hosts[0].ok(&["network", "rotate-key", "sec", "--key-file", k]);
        await_stream(&lab.hosts[1], 100, &transfer);
        lab.hosts[1].ok(&["network", "rotate-key", "sec", "--key-file", k]);
        let rotated = std::time::Instant::now();
        // Key announcements make both hosts switch on their own, well within the 30 s grace.
        let deadline = rotated + Duration::from_secs(3);
        let switched_after = loop {
            let keys: Vec<Value> = lab
                .hosts
                .iter()
                .map(|h| seal_stats(h)["sending_key"].clone())
                .collect();
            if keys.iter().all(|k| *k != before) {
                break rotated.elapsed();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "3 s after the last rotate-key, not every host sends with the new key: A {}, B {}",
                seal_stats(&lab.hosts[0]),
                seal_stats(&lab.hosts[1])
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        await_stream(&lab.hosts[1], 100, &transfer);
        transfer
            .join()
            .expect("the checksummed transfer across the rotation succeeded");
        switched_after
    });
    eprintln!("both hosts sent with the new key {switched_after:?} after the last rotate-key");
    // Both hosts now send with the new key, and nothing failed to open along the way.
    for h in &lab.hosts {
        let st = seal_stats(h);
        assert_ne!(
            st["sending_key"], before,
            "host {} switched keys: {st}",
            h.label
        );
        assert_eq!(
            st["sending_key"], st["accept_key"],
            "host {}: {st}",
            h.label
        );
        assert!(
            st["announcements_opened"].as_u64().is_some_and(|n| n > 0),
            "host {} heard its peer's key announcements: {st}",
            h.label
        );
        for reason in ["auth_failed", "unknown_key", "replayed", "not_sealed"] {
            assert_eq!(
                drops(h, reason),
                0,
                "host {} dropped {reason}: {}",
                h.label,
                h.json(&["stats"])
            );
        }
    }
    lab.assert_ping(&c2, "10.30.0.1");

    // A third key during the overlap is refused, in words a user can act on (how long the old
    // key stays accepted, not the daemon's clock), and changes nothing.
    let k3 = lab.dir.join("k3");
    keygen_for_rotation(&k3, &[&lab.dir.join("k1"), &k2]);
    let sending = seal_stats(&lab.hosts[0])["sending_key"].clone();
    let out = lab.hosts[0].vs(&[
        "network",
        "rotate-key",
        "sec",
        "--key-file",
        k3.to_str().expect("path"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused: {err}");
    let prefix = "error: cannot rotate the key of 'sec': a key rotation is already in progress \
                  (sending with the new key; old key ";
    assert!(
        err.starts_with(prefix)
            && err.contains(" still accepted for ")
            && err.contains(" s); rotate again once it is stable (vswitch network inspect sec"),
        "{err}"
    );
    assert_eq!(seal_stats(&lab.hosts[0])["sending_key"], sending);
    lab.assert_ping(&c1, "10.30.0.2");
}

/// `key generate` needs no root, and the daemon keeps its own copy of a network key, mode 0600,
/// in its state dir, so a restart does not depend on the user's file.
#[test]
fn anyone_can_generate_a_key_and_the_daemon_keeps_its_copy_0600() {
    use std::os::unix::fs::PermissionsExt;
    // A copy nobody can reach, whatever the build directory's permissions.
    let dir = std::env::temp_dir().join(format!("{}-keygen", unique_prefix()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.join("vswitch");
    std::fs::copy(VSWITCH, &bin).expect("copy the binary");
    let out = run_cmd(
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin)
            .args(["key", "generate"]),
        Duration::from_secs(10),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "key generate as nobody: {out:?}");
    let hex = text.trim();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "64 hex digits: {text:?}"
    );
    let (lab, _c1, _c2) = sealed_pair("k", "k");
    for h in &lab.hosts {
        let copy = h.state.join("key-sec.hex");
        let mode = std::fs::metadata(&copy)
            .unwrap_or_else(|e| panic!("{}: {e}", copy.display()))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", copy.display());
        assert_eq!(
            std::fs::read_to_string(&copy).expect("copy"),
            std::fs::read_to_string(lab.dir.join("k")).expect("user's file"),
            "the daemon's copy is the key it was given"
        );
    }
}
