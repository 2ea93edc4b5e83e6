//! UDP segmentation offload (USO) end to end: a container's UDP socket sends 12,000-byte
//! superframes with `UDP_SEGMENT`; its TAP hands them to the switch whole (TUN_F_USO4/6), and the
//! switch cuts each into 1,200-byte datagrams once for the far host (whose switch coalesces them
//! back into one superframe for its TAP), or delivers it whole to a local port. Either way the
//! receiving kernel cuts what it gets, and the receiver must see every datagram, each one
//! segment long with the bytes that were sent.

use std::time::Duration;

use crate::support::*;

const SUPERFRAMES: u32 = 100;
const PER: u32 = 10;
const SEG: u32 = 1200;

/// Sends `n` superframes of `PER` segments of `SEG` bytes with `UDP_SEGMENT`; segment k holds
/// k as 4 big-endian bytes, repeated.
const PY_GSO_SEND: &str = r#"
import socket, sys, time
dst, port, n, per, seg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, seg)  # UDP_SEGMENT
for i in range(n):
    s.sendto(b''.join((i * per + j).to_bytes(4, 'big') * (seg // 4) for j in range(per)), (dst, port))
    time.sleep(0.002)
print('sent', n * per, flush=True)
"#;

/// Receives until `expect` distinct segments arrived (or the timeout); prints how many, and how
/// many datagrams were not exactly one well-formed segment.
const PY_RECV: &str = r#"
import socket, sys
port, expect, seg, tmo = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
s.bind(('0.0.0.0', port)); s.settimeout(tmo)
print('ready', flush=True)
seen, bad = set(), 0
try:
    while len(seen) < expect:
        d = s.recv(65536)
        k = int.from_bytes(d[:4], 'big')
        if len(d) == seg and d == k.to_bytes(4, 'big') * (seg // 4):
            seen.add(k)
        else:
            bad += 1
except socket.timeout:
    pass
print(len(seen), bad, flush=True)
"#;

/// Runs the sender in `from` against a receiver in `to` at `to_ip:port`; asserts every segment
/// arrived as exactly one datagram.
fn udp_gso(from: &str, to: &str, to_ip: &str, port: u16) {
    let total = SUPERFRAMES * PER;
    let port_s = port.to_string();
    let mut recv = Bg::spawn(&mut py_cmd(
        to,
        PY_RECV,
        &[&port_s, &total.to_string(), &SEG.to_string(), "10"],
    ));
    recv.wait_for("ready", Duration::from_secs(15));
    let send = run_cmd(
        &mut py_cmd(
            from,
            PY_GSO_SEND,
            &[
                to_ip,
                &port_s,
                &SUPERFRAMES.to_string(),
                &PER.to_string(),
                &SEG.to_string(),
            ],
        ),
        Duration::from_secs(60),
    );
    assert!(
        send.status.success(),
        "UDP GSO sender in {from}: {}\n{}",
        String::from_utf8_lossy(&send.stdout),
        String::from_utf8_lossy(&send.stderr)
    );
    let r = recv.finish(Duration::from_secs(30));
    let last = r.out.last().cloned().unwrap_or_default();
    assert_eq!(
        last,
        format!("{total} 0"),
        "{from} -> {to_ip}: segments received whole, datagrams not one segment ({:?})",
        r.err
    );
}

fn dataplane(h: &Host, key: &str) -> u64 {
    let s = h.json(&["stats"]);
    s["dataplane"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats.dataplane.{key}: {s}"))
}

#[test]
fn udp_superframes_are_cut_once_and_arrive_whole() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("uso", 110, "10.110.0.0/24", &["--gateway", "10.110.0.254"]);
    }
    let a1 = lab.netns("u1");
    let a2 = lab.netns("u2");
    let b1 = lab.netns("u3");
    lab.hosts[0].attach(&a1, "uso", &["--ip", "10.110.0.1/24"]);
    lab.hosts[0].attach(&a2, "uso", &["--ip", "10.110.0.3/24"]);
    lab.hosts[1].attach(&b1, "uso", &["--ip", "10.110.0.2/24"]);
    lab.assert_ping(&a1, "10.110.0.2");
    lab.assert_ping(&a1, "10.110.0.3");
    let a = &lab.hosts[0];

    // To the far host: the switch cuts every superframe itself, and the far switch coalesces
    // each run of datagrams back into one UDP superframe for its TAP.
    let b = &lab.hosts[1];
    let before = dataplane(a, "superframes_segmented");
    let coalesced_before = dataplane(b, "superframes_coalesced");
    udp_gso(&a1, &b1, "10.110.0.2", 9700);
    let cut = dataplane(a, "superframes_segmented") - before;
    assert!(
        cut >= u64::from(SUPERFRAMES),
        "host A cut {cut} superframes for {SUPERFRAMES} sent: the TAP did not hand them over whole"
    );
    // Each superframe leaves A as one GSO run and arrives as one; half of them is a margin for
    // runs the receiving worker happened to read in two batches.
    let coalesced = dataplane(b, "superframes_coalesced") - coalesced_before;
    assert!(
        coalesced >= u64::from(SUPERFRAMES / 2),
        "host B wrote {coalesced} coalesced superframes for {SUPERFRAMES} UDP runs"
    );
    assert_eq!(
        dataplane(b, "tap_write_errors"),
        0,
        "tap_write_errors on host B"
    );

    // To a local port: written to its TAP whole, cut by the receiving container's kernel.
    udp_gso(&a1, &a2, "10.110.0.3", 9701);
    for key in ["offload_errors", "tap_write_errors"] {
        assert_eq!(dataplane(a, key), 0, "{key} on host A");
    }
}

#[test]
fn udp_superframes_cross_a_sealed_network_whole() {
    // Each datagram is sealed on its own after the cut, and opened before it is coalesced.
    let (lab, c1, c2) = crate::sealed::sealed_pair("k", "k");
    lab.assert_ping(&c1, "10.30.0.2");
    let before = dataplane(&lab.hosts[0], "superframes_segmented");
    udp_gso(&c1, &c2, "10.30.0.2", 9702);
    let cut = dataplane(&lab.hosts[0], "superframes_segmented") - before;
    assert!(
        cut >= u64::from(SUPERFRAMES),
        "host A cut {cut} superframes for {SUPERFRAMES} sent"
    );
    // B sealed at least the ping's reply.
    crate::sealed::assert_sealed_all_opened(&lab, u64::from(SUPERFRAMES * PER), 1);
}
