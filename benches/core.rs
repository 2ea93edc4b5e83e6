//! Criterion benches of the sans-IO core: what one frame costs the switch, with no I/O in the way.
//!
//! One function per group, all registered in `criterion_group!` at the bottom:
//!
//! - `wire`: VXLAN header parse and emit; `classify` and `flow_hash` of a TCP/IPv4 frame.
//! - `encap` / `decap`: whole frames at [`FRAME_SIZES`], in bytes per second.
//! - `fdb`: learn and lookup in tables of 1k, 100k and 1M entries.
//! - `fdb_contention`: lookups from two threads, with and without a third thread learning.
//! - `forward`: the whole forwarding step, frame in → [`Forward`] out, per frame.
//!
//! - `offload`: a 64 KB TCP superframe cut into segments (transmit), and its segments coalesced
//!   back (receive), with the TCP checksums verified and without (`push_verified`, for runs
//!   whose outer UDP checksum the kernel verified), in bytes per second.
//! - `seal`: AES-256-GCM seal, open, and seal+open of one frame at [`FRAME_SIZES`], in bytes
//!   per second (open gets a freshly sealed datagram every time, as the replay window demands).
//!
//! Every bench checks once, before measuring, that the path it measures is the one it is named
//! for (a unicast bench that silently flooded would report the wrong thing).

use std::cell::OnceCell;
use std::hint::black_box;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vswitch::core::switch::{HEADROOM, TAILROOM};
use vswitch::core::{Fdb, FdbConfig, Forward, Location, PortId, Switch, SwitchConfig, Timestamp};
use vswitch::core::{Learned, Vtep};
use vswitch::wire::vxlan::{VxlanPacket, VxlanRepr};
use vswitch::wire::{classify, flow_hash, Mac, Vni};

// ---- fixtures, shared by every group ----

/// Inner frame sizes: minimum Ethernet, a mid-size packet, a full 1500-MTU-underlay frame, jumbo.
const FRAME_SIZES: [usize; 4] = [64, 512, 1400, 9000];
/// The data path's clock during a bench: constant, so nothing ages mid-measurement.
const NOW: Timestamp = Timestamp(1_000);
const VNI: Vni = match Vni::new(100) {
    Ok(v) => v,
    Err(_) => panic!("valid VNI"),
};

/// Unicast MAC number `i` (locally administered; 40 bits of `i`).
fn mac(i: u64) -> Mac {
    let b = i.to_be_bytes();
    Mac([0x02, b[3], b[4], b[5], b[6], b[7]])
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 4789))
}

/// An Ethernet + IPv4 + TCP frame of `len` bytes (at least 54) from `src` to `dst`.
fn tcp_frame(dst: Mac, src: Mac, len: usize) -> Vec<u8> {
    assert!(len >= 54, "{len} bytes cannot hold the headers");
    let ip_len = u16::try_from(len - 14).expect("frame fits an IPv4 packet");
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0]);
    f.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.resize(len, 0xa5);
    f
}

/// A frame in a buffer laid out as the data path lays it out: headroom, frame, tailroom.
struct Framed {
    buf: Vec<u8>,
    frame: Range<usize>,
}

impl Framed {
    fn new(frame: &[u8]) -> Framed {
        let mut buf = vec![0u8; HEADROOM + frame.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        Framed {
            buf,
            frame: HEADROOM..HEADROOM + frame.len(),
        }
    }
}

/// A plain VXLAN datagram (header onwards) carrying `frame` on `vni`.
fn datagram(vni: Vni, frame: &[u8]) -> Vec<u8> {
    let mut d = VxlanRepr { vni, sealed: false }.to_bytes().to_vec();
    d.extend_from_slice(frame);
    d
}

/// The forwarding benches' host: one network, three ports, two peers, and a table that knows
/// `LOCAL_A` on port 1, `LOCAL_B` on port 2 and `REMOTE` behind the first peer.
struct Host {
    switch: Switch,
    peer: SocketAddr,
}

const LOCAL_A: u64 = 0xa;
const LOCAL_B: u64 = 0xb;
const REMOTE: u64 = 0xc;

impl Host {
    fn new() -> Host {
        let mut switch = Switch::new(SwitchConfig::default());
        switch.add_network(VNI).expect("new network");
        for p in 1..=3 {
            switch.add_port(PortId(p), VNI).expect("new port");
        }
        let first = peer(2);
        switch.add_peer(Vtep(first)).expect("new peer");
        switch.add_peer(Vtep(peer(3))).expect("new peer");
        let fdb = &switch.network(VNI).expect("network exists").fdb;
        fdb.learn(mac(LOCAL_A), Location::Port(PortId(1)), NOW);
        fdb.learn(mac(LOCAL_B), Location::Port(PortId(2)), NOW);
        fdb.learn(mac(REMOTE), Location::Vtep(Vtep(first)), NOW);
        Host {
            switch,
            peer: first,
        }
    }
}

// ---- wire ----

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    let frame = tcp_frame(mac(LOCAL_B), mac(LOCAL_A), 64);
    let dgram = datagram(VNI, &frame);
    let repr = VxlanRepr {
        vni: VNI,
        sealed: false,
    };

    assert_eq!(
        VxlanPacket::new_checked(&dgram[..]).and_then(|p| VxlanRepr::parse(&p)),
        Ok(repr)
    );
    g.bench_function("vxlan_parse", |b| {
        b.iter(|| {
            VxlanPacket::new_checked(black_box(&dgram[..])).and_then(|p| VxlanRepr::parse(&p))
        })
    });
    let mut header = [0u8; 8];
    g.bench_function("vxlan_emit", |b| {
        b.iter(|| {
            black_box(repr).emit(&mut VxlanPacket::new_unchecked(&mut header[..]));
            black_box(&header);
        })
    });
    assert!(classify(&frame).is_ok());
    g.bench_function("classify_tcp_ipv4", |b| {
        b.iter(|| classify(black_box(&frame)))
    });
    g.bench_function("flow_hash_tcp_ipv4", |b| {
        b.iter(|| flow_hash(black_box(&frame)))
    });
    g.finish();
}

// ---- encapsulation ----

fn encap_decap(c: &mut Criterion) {
    let host = Host::new();
    let mut g = c.benchmark_group("encap");
    for size in FRAME_SIZES {
        let frame = tcp_frame(mac(REMOTE), mac(LOCAL_A), size);
        let mut framed = Framed::new(&frame);
        let range = framed.frame.clone();
        let mut fwd = Forward::default();
        host.switch
            .frame_from_port(NOW, PortId(1), &frame, &mut fwd);
        let sends = fwd.deliver(&frame, |_, _| {}).expect("to the peer");
        let enc = host
            .switch
            .encapsulate(&sends, &mut framed.buf, range.clone())
            .expect("headroom is reserved");
        assert_eq!(enc.datagram, HEADROOM - 8..HEADROOM + size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &range, |b, range| {
            b.iter(|| {
                host.switch
                    .encapsulate(&sends, black_box(&mut framed.buf), range.clone())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decap");
    let mut out = Forward::with_own_lane();
    for size in FRAME_SIZES {
        let mut dgram = datagram(VNI, &tcp_frame(mac(LOCAL_A), mac(REMOTE), size));
        host.switch
            .datagram_from_vtep(NOW, host.peer, &mut dgram, &mut out);
        assert_eq!(
            (out.dropped, &out.ports[..], out.frame.clone()),
            (None, &[PortId(1)][..], 8..8 + size)
        );
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                host.switch
                    .datagram_from_vtep(NOW, host.peer, black_box(&mut dgram), &mut out);
                black_box(&out.frame);
            })
        });
    }
    g.finish();
}

// ---- the MAC table ----

/// Table sizes, with their labels.
const FDB_SIZES: [(usize, &str); 3] = [(1_000, "1k"), (100_000, "100k"), (1_000_000, "1M")];

/// The MACs `0..n` in a scattered order, so lookups do not walk memory in insertion order.
fn scattered(n: usize) -> Vec<Mac> {
    // 2654435761 is prime and shares no factor with 10^k, so i ↦ i·K mod n is a permutation.
    const K: u64 = 2_654_435_761;
    let n64 = n as u64;
    (0..n64).map(|i| mac(i.wrapping_mul(K) % n64)).collect()
}

/// A table of capacity `n`, filled with MACs `0..n` spread over 8 ports.
fn full_table(n: usize) -> Fdb {
    let fdb = Fdb::new(FdbConfig {
        ageing: Duration::from_secs(300),
        capacity: n,
    });
    for i in 0..n as u64 {
        fdb.learn(mac(i), Location::Port(PortId((i % 8) as u32)), NOW);
    }
    assert_eq!(fdb.len(), n);
    fdb
}

fn fdb(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb");
    g.throughput(Throughput::Elements(1));
    // `full_table` puts MAC i on port i % 8, which is its last byte % 8.
    let port_of = |m: Mac| Location::Port(PortId(u32::from(m.0[5]) % 8));
    for (n, label) in FDB_SIZES {
        // Built on first use, so a filtered run (`cargo bench -- forward`) skips the fill.
        let cell = OnceCell::new();
        let table = || {
            cell.get_or_init(|| {
                let (fdb, keys) = (full_table(n), scattered(n));
                assert_eq!(fdb.lookup(keys[0], NOW), Some(port_of(keys[0])));
                assert_eq!(
                    fdb.learn(keys[1], port_of(keys[1]), NOW),
                    Learned::Refreshed
                );
                (fdb, keys)
            })
        };

        let mut i = 0;
        g.bench_function(BenchmarkId::new("lookup", label), |b| {
            let (fdb, keys) = table();
            b.iter(|| {
                i = (i + 1) % n;
                fdb.lookup(black_box(keys[i]), NOW)
            })
        });

        // A MAC seen again where it was: the fast path every frame takes.
        g.bench_function(BenchmarkId::new("learn_known", label), |b| {
            let (fdb, keys) = table();
            b.iter(|| {
                i = (i + 1) % n;
                let m = keys[i];
                fdb.learn(black_box(m), port_of(m), NOW)
            })
        });

        // A new MAC in a full table: insert and evict the entry that expires soonest. The clock
        // moves so each newcomer outlives the entries already there. Runs last: it replaces the
        // table's MACs.
        let mut next = n as u64;
        g.bench_function(BenchmarkId::new("learn_new_evicting", label), |b| {
            let (fdb, _) = table();
            b.iter(|| {
                next += 1;
                let now = Timestamp(NOW.0 + next);
                fdb.learn(black_box(mac(next)), Location::Port(PortId(1)), now)
            });
            assert_eq!(fdb.len(), n);
        });
    }
    g.finish();
}

/// Lookups from two threads while (optionally) a third learns new MACs into the same table.
/// Reported as lookups per second across both readers. The machine's cores bound what this can
/// show: on two cores the learner also takes CPU time from the readers.
fn fdb_contention(c: &mut Criterion) {
    const STABLE: usize = 100_000;
    const CHURN: usize = 1_000;
    // The readers' MACs are learned late, the learner's early, so eviction (soonest expiry first)
    // only ever removes the learner's own MACs and every lookup hits.
    const STABLE_AT: Timestamp = Timestamp(1_000_000);
    let fdb = Fdb::new(FdbConfig {
        ageing: Duration::from_secs(300),
        capacity: STABLE + CHURN,
    });
    let keys = scattered(STABLE);
    for &m in &keys {
        fdb.learn(m, Location::Port(PortId(1)), STABLE_AT);
    }

    let mut g = c.benchmark_group("fdb_contention");
    g.throughput(Throughput::Elements(1));
    for (label, writer) in [("2_readers", false), ("2_readers_1_learner", true)] {
        let mut churn = 1u64 << 32;
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let (fdb, keys) = (&fdb, &keys);
                let stop = AtomicBool::new(false);
                let started = AtomicBool::new(!writer);
                let per_reader = iters.div_ceil(2);
                let elapsed = std::thread::scope(|s| {
                    let learner = writer.then(|| {
                        let (stop, started) = (&stop, &started);
                        let mut next = churn;
                        s.spawn(move || {
                            started.store(true, Ordering::Release);
                            while !stop.load(Ordering::Relaxed) {
                                next += 1;
                                fdb.learn(mac(next), Location::Port(PortId(2)), NOW);
                            }
                            next
                        })
                    });
                    while !started.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let start = Instant::now();
                    let readers: Vec<_> = (0..2)
                        .map(|t| {
                            s.spawn(move || {
                                let mut hits = 0u64;
                                let mut i = t * STABLE / 2;
                                for _ in 0..per_reader {
                                    i = (i + 1) % STABLE;
                                    hits += u64::from(fdb.lookup(keys[i], STABLE_AT).is_some());
                                }
                                hits
                            })
                        })
                        .collect();
                    for r in readers {
                        let hits = r.join().expect("reader finishes");
                        assert_eq!(hits, per_reader, "every lookup hits");
                    }
                    let elapsed = start.elapsed();
                    stop.store(true, Ordering::Relaxed);
                    if let Some(l) = learner {
                        churn = l.join().expect("learner finishes");
                    }
                    elapsed
                });
                elapsed
            })
        });
    }
    g.finish();
}

// ---- the forwarding step ----

fn forward(c: &mut Criterion) {
    let host = Host::new();
    let sw = &host.switch;
    // Counted in a lane of its own, as a data-path worker does.
    let mut out = Forward::with_own_lane();
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(1));

    let to_remote = tcp_frame(mac(REMOTE), mac(LOCAL_A), 64);
    sw.frame_from_port(NOW, PortId(1), &to_remote, &mut out);
    assert_eq!(
        (&out.ports[..], &out.vteps[..]),
        (&[][..], &[Vtep(host.peer)][..])
    );
    g.bench_function("unicast_port_to_vtep", |b| {
        b.iter(|| sw.frame_from_port(NOW, PortId(1), black_box(&to_remote), &mut out))
    });
    // The same on the shared lane (every counter add a locked read-modify-write), as the
    // control plane's callers count: what a lane of the worker's own saves.
    let mut shared = Forward::default();
    g.bench_function("unicast_port_to_vtep_shared_lane", |b| {
        b.iter(|| sw.frame_from_port(NOW, PortId(1), black_box(&to_remote), &mut shared))
    });

    // The same, plus writing the VXLAN header: all the core does for a frame to a peer.
    let mut framed = Framed::new(&to_remote);
    g.bench_function("unicast_port_to_vtep_encap", |b| {
        b.iter(|| {
            let frame = &framed.buf[framed.frame.clone()];
            sw.frame_from_port(NOW, PortId(1), black_box(frame), &mut out);
            let sends = out.deliver(frame, |_, _| {}).expect("forwarded");
            sw.encapsulate(&sends, &mut framed.buf, framed.frame.clone())
        })
    });

    let to_local = tcp_frame(mac(LOCAL_B), mac(LOCAL_A), 64);
    sw.frame_from_port(NOW, PortId(1), &to_local, &mut out);
    assert_eq!(
        (&out.ports[..], &out.vteps[..]),
        (&[PortId(2)][..], &[][..])
    );
    g.bench_function("unicast_port_to_port", |b| {
        b.iter(|| sw.frame_from_port(NOW, PortId(1), black_box(&to_local), &mut out))
    });

    let broadcast = tcp_frame(Mac::BROADCAST, mac(LOCAL_A), 64);
    sw.frame_from_port(NOW, PortId(1), &broadcast, &mut out);
    assert_eq!((out.ports.len(), out.vteps.len()), (2, 2));
    g.bench_function("flood_3_ports_2_peers", |b| {
        b.iter(|| sw.frame_from_port(NOW, PortId(1), black_box(&broadcast), &mut out))
    });

    let mut from_remote = datagram(VNI, &tcp_frame(mac(LOCAL_A), mac(REMOTE), 64));
    sw.datagram_from_vtep(NOW, host.peer, &mut from_remote, &mut out);
    assert_eq!(
        (&out.ports[..], &out.vteps[..]),
        (&[PortId(1)][..], &[][..])
    );
    g.bench_function("decap_vtep_to_port", |b| {
        b.iter(|| sw.datagram_from_vtep(NOW, host.peer, black_box(&mut from_remote), &mut out))
    });
    g.finish();
}

// ---- offloads: segmenting and coalescing ----

fn offload(c: &mut Criterion) {
    use vswitch::core::offload::{segment, Coalescer, Push};
    use vswitch::wire::virtio_net::{self, VnetHdr};
    const MSS: usize = 1448;
    const HEADERS: usize = 54;
    let superframe = tcp_frame(mac(REMOTE), mac(LOCAL_A), HEADERS + 45 * MSS);
    let hdr = VnetHdr {
        flags: virtio_net::F_NEEDS_CSUM,
        gso_type: virtio_net::GSO_TCPV4,
        hdr_len: HEADERS as u16,
        gso_size: MSS as u16,
        csum_start: 34,
        csum_offset: 16,
        num_buffers: 0,
    };
    let mut arena = vec![0u8; 512 * 1024];
    let segs = segment(&superframe, &hdr, &mut arena, HEADROOM, TAILROOM).expect("segments");
    assert_eq!(segs.count, 45);
    let frames: Vec<Vec<u8>> = segs.frames().map(|r| arena[r].to_vec()).collect();
    let mut g = c.benchmark_group("offload");
    g.throughput(Throughput::Bytes((45 * MSS) as u64));
    g.bench_function("segment_64k", |b| {
        b.iter(|| segment(black_box(&superframe), &hdr, &mut arena, HEADROOM, TAILROOM))
    });
    let mut coalescer = Coalescer::new();
    for verified in [false, true] {
        let push = |c: &mut Coalescer, f: &[u8]| {
            if verified {
                c.push_verified(1, f)
            } else {
                c.push(1, f)
            }
        };
        for f in &frames {
            assert_eq!(push(&mut coalescer, f), Push::Merged, "one superframe");
        }
        assert_eq!(
            coalescer.take().map(|(_, b)| b.len()),
            Some(virtio_net::HEADER_LEN + superframe.len())
        );
        let name = if verified {
            "coalesce_64k_verified"
        } else {
            "coalesce_64k_checked"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                for f in &frames {
                    push(&mut coalescer, black_box(f));
                }
                coalescer.take().map(|(_, b)| b.len())
            })
        });
    }
    g.finish();
}

fn seal(c: &mut Criterion) {
    use vswitch::core::seal::{NetworkKey, SealConfig, Sealer};
    use vswitch::wire::sealed::{HEADER_LEN, TAG_LEN};
    use vswitch::wire::vxlan;
    let key = NetworkKey::from_bytes([7; 32]);
    let peer: SocketAddr = "192.0.2.1:4789".parse().expect("addr");
    let header = VxlanRepr {
        vni: VNI,
        sealed: true,
    }
    .to_bytes();
    let start = vxlan::HEADER_LEN + HEADER_LEN;
    let fresh = |frame: &[u8]| {
        let mut buf = vec![0u8; start + frame.len() + TAG_LEN];
        buf[..vxlan::HEADER_LEN].copy_from_slice(&header);
        buf[start..start + frame.len()].copy_from_slice(frame);
        buf
    };
    let mut g = c.benchmark_group("seal");
    for size in FRAME_SIZES {
        let frame = tcp_frame(mac(REMOTE), mac(LOCAL_A), size);
        let sender =
            Sealer::<SocketAddr>::new(VNI.get(), &key, 1, SealConfig::default()).expect("sealer");
        let receiver =
            Sealer::<SocketAddr>::new(VNI.get(), &key, 2, SealConfig::default()).expect("sealer");
        // The receiver accepts data only from a sender verified by the handshake.
        let receiver_addr: SocketAddr = "192.0.2.2:4789".parse().expect("addr");
        vswitch::core::seal::handshake((&sender, peer), (&receiver, receiver_addr), NOW);
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = fresh(&frame);
        // Once, unmeasured: the round trip gives the frame back.
        let len = sender.seal(&mut buf, size).expect("seal");
        let range = receiver.open(&peer, &mut buf[..len], NOW).expect("open");
        assert_eq!(&buf[range], &frame[..]);
        g.bench_function(BenchmarkId::new("seal", size), |b| {
            let mut buf = fresh(&frame);
            b.iter(|| black_box(sender.seal(black_box(&mut buf), size)))
        });
        g.bench_function(BenchmarkId::new("open", size), |b| {
            b.iter_batched_ref(
                || {
                    let mut buf = fresh(&frame);
                    let len = sender.seal(&mut buf, size).expect("seal");
                    buf.truncate(len);
                    buf
                },
                |buf| {
                    black_box(
                        receiver
                            .open(&peer, buf, NOW)
                            .expect("fresh datagram opens"),
                    )
                },
                criterion::BatchSize::SmallInput,
            )
        });
        g.bench_function(BenchmarkId::new("seal_open", size), |b| {
            let mut buf = fresh(&frame);
            b.iter(|| {
                let len = sender.seal(&mut buf, size).expect("seal");
                black_box(receiver.open(&peer, &mut buf[..len], NOW).expect("open"))
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    wire,
    encap_decap,
    seal,
    fdb,
    fdb_contention,
    forward,
    offload
);
criterion_main!(benches);
