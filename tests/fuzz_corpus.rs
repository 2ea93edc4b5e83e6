//! Replays the fuzz corpora in the normal test run: every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same check a fuzz target runs
//! (`vswitch::fuzzing`), so a crash once found stays fixed without nightly or cargo-fuzz.

use std::fs;
use std::path::{Path, PathBuf};

use vswitch::fuzzing::{self, switch_ops};

/// The input files of one target: its corpus and its regressions (missing directories are empty).
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory").path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `check` on every input of `target`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no corpus for {target}: expected files in fuzz/corpus/{target}/"
    );
    for path in &files {
        let data = fs::read(path).expect("readable corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn vxlan_header_corpus() {
    replay("vxlan_header", fuzzing::vxlan_header);
}

#[test]
fn inner_frame_corpus() {
    replay("inner_frame", fuzzing::inner_frame);
}

#[test]
fn switch_ops_corpus() {
    replay("switch_ops", switch_ops::switch_ops);
}

/// The handmade `switch_ops` seeds are the encodings of `switch_ops::seeds()`, and decode back to
/// them. Set `VSWITCH_WRITE_SEEDS=1` to (re)write the files after changing the scenarios or `Op`.
#[test]
fn switch_ops_seeds_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/switch_ops");
    let write = std::env::var_os("VSWITCH_WRITE_SEEDS").is_some();
    for (name, vlan, ops) in switch_ops::seeds() {
        let bytes = switch_ops::encode(vlan, &ops);
        assert_eq!(
            switch_ops::decode(&bytes),
            (vlan, ops),
            "seed {name}: encode no longer mirrors arbitrary's decoding"
        );
        let path = dir.join(format!("seed-{name}"));
        if write {
            fs::create_dir_all(&dir).expect("corpus directory");
            fs::write(&path, &bytes).expect("write seed");
        }
        let on_disk = fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{} is stale; rerun with VSWITCH_WRITE_SEEDS=1",
            path.display()
        );
    }
}

/// The forwarding seed really forwards every way, and the churn seed overflows and ages tables:
/// seeds that only hit drops would teach the fuzzer little.
#[test]
fn switch_ops_seeds_exercise_the_switch() {
    let seeds = switch_ops::seeds();
    let run = |name: &str| {
        let (_, vlan, ops) = seeds
            .iter()
            .find(|s| s.0 == name)
            .expect("seed exists")
            .clone();
        let mut harness = switch_ops::Harness::new(vlan);
        for op in &ops {
            harness.apply(op);
        }
        harness.seen
    };
    let seen = run("advertised");
    assert!(seen.unicast_to_vtep >= 2, "{seen:?}");
    assert!(seen.flooded >= 2, "{seen:?}");
    assert!(seen.dropped > 0, "{seen:?}");
    let seen = run("forwarding");
    assert!(seen.unicast_to_port > 0, "{seen:?}");
    assert!(seen.unicast_to_vtep > 0, "{seen:?}");
    assert!(seen.flooded > 0, "{seen:?}");
    assert!(seen.decap_delivered > 0, "{seen:?}");
    assert!(seen.aged > 0, "{seen:?}");
    let seen = run("stale");
    assert!(seen.flooded >= 5, "{seen:?}");
    assert!(seen.unicast_to_port >= 2, "{seen:?}");
    let seen = run("churn");
    assert!(seen.evicted > 0, "{seen:?}");
    let seen = run("malformed");
    assert!(seen.dropped >= 10, "{seen:?}");
}

#[test]
fn sealed_envelope_corpus() {
    replay("sealed_envelope", fuzzing::parsers::sealed_envelope);
}

#[test]
fn control_request_corpus() {
    replay("control_request", fuzzing::parsers::control_request);
}

#[test]
fn state_file_corpus() {
    replay("state_file", fuzzing::parsers::state_file);
}

#[test]
fn handshake_message_corpus() {
    replay("handshake_message", fuzzing::parsers::handshake_message);
}

#[test]
fn offload_corpus() {
    replay("offload", fuzzing::parsers::offload);
}

#[test]
fn dns_query_corpus() {
    replay("dns_query", fuzzing::services::dns_query);
}

/// The sealed seeds really open (so the fuzzer starts from datagrams that pass
/// authentication and the handshake, and mutates from there). Set `VSWITCH_WRITE_SEEDS=1` to
/// (re)write them after a change to the envelope or the handshake.
#[test]
fn sealed_seeds_open_with_the_fuzz_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sealed_envelope");
    if std::env::var_os("VSWITCH_WRITE_SEEDS").is_some() {
        let frame = |ethertype: [u8; 2], payload: &[u8]| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&ethertype);
            f.extend_from_slice(payload);
            f
        };
        let seeds = [
            ("arp_request", frame([0x08, 0x06], &[0; 28])),
            ("ipv6_icmp", frame([0x86, 0xdd], &[0x60; 48])),
            ("tcp_syn", frame([0x08, 0x00], &[0x45; 40])),
        ];
        for (name, frame) in seeds {
            fs::write(dir.join(name), fuzzing::parsers::sealed_seed(&frame)).expect("write seed");
        }
    }
    let files = inputs("sealed_envelope");
    let mut opened = 0;
    for path in &files {
        let mut data = fs::read(path).expect("seed");
        if fuzzing::parsers::fuzz_sealer()
            .open(
                &"192.0.2.1:4789".parse().expect("addr"),
                &mut data,
                vswitch::core::Timestamp(0),
            )
            .is_ok()
        {
            opened += 1;
        }
    }
    assert!(opened >= 3, "{opened} of {} sealed seeds open", files.len());
}

/// The TSO seed is a real superframe: it segments, so the fuzzer starts inside `segment`.
#[test]
fn offload_seed_segments() {
    use vswitch::core::switch::{HEADROOM, TAILROOM};
    // The TCP seed and the UDP (USO) seed are superframes the fuzzer starts from.
    for (seed, count, what) in [
        ("tso4", 3, "4096 bytes at MSS 1398"),
        ("uso4", 3, "3000 bytes of UDP at 1000"),
    ] {
        let data = fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus/offload")
                .join(seed),
        )
        .expect("seed");
        let hdr = vswitch::wire::virtio_net::VnetHdr::parse(&data).expect("header");
        let mut arena = vec![0u8; 8 * (HEADROOM + 2048 + TAILROOM)];
        let segs = vswitch::core::offload::segment(
            &data[vswitch::wire::virtio_net::HEADER_LEN..],
            &hdr,
            &mut arena,
            HEADROOM,
            TAILROOM,
        )
        .expect("segments");
        assert_eq!(segs.frames().count(), count, "{seed}: {what}");
    }
}
