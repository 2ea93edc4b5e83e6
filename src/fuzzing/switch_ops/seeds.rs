//! Handmade inputs: ops encoded the way `arbitrary` decodes them, and the seeds built from
//! them (each a scenario worth starting the fuzzer from).

use super::*;

/// Encodes ops the way [`decode`] reads them, for handmade seeds. Mirrors `arbitrary`'s derive
/// (an enum is a little-endian `u32` scaled onto its variants; integers are little-endian; an
/// `Option` is a bool byte first); `tests/fuzz_corpus.rs` checks `decode(encode(x)) == x`.
pub fn encode(allow_vlan_tagged: bool, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![u8::from(allow_vlan_tagged)];
    for op in ops {
        op.encode(&mut out);
    }
    out
}

/// The `u32` that `arbitrary`'s derive maps to variant `index` of `count`.
fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    let tag = (u64::from(index) << 32).div_ceil(u64::from(count));
    let tag = u32::try_from(tag).expect("index < count");
    out.extend_from_slice(&tag.to_le_bytes());
}

impl Op {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 13;
        match self {
            Op::Frame { port, frame } => {
                variant(out, 0, N);
                out.push(*port);
                frame.encode(out);
            }
            Op::Datagram { peer, datagram } => {
                variant(out, 1, N);
                out.push(*peer);
                datagram.encode(out);
            }
            Op::Advance { millis } => {
                variant(out, 2, N);
                out.extend_from_slice(&millis.to_le_bytes());
            }
            Op::Tick => variant(out, 3, N),
            Op::Attach { port, vni } => {
                variant(out, 4, N);
                out.extend_from_slice(&[*port, *vni]);
            }
            Op::Detach { port } => {
                variant(out, 5, N);
                out.push(*port);
            }
            Op::AddPeer { peer } => {
                variant(out, 6, N);
                out.push(*peer);
            }
            Op::RemovePeer { peer } => {
                variant(out, 7, N);
                out.push(*peer);
            }
            Op::AddNetwork { vni } => {
                variant(out, 8, N);
                out.push(*vni);
            }
            Op::RemoveNetwork { vni } => {
                variant(out, 9, N);
                out.push(*vni);
            }
            Op::Advertise { vni, mac, peer } => {
                variant(out, 10, N);
                out.extend_from_slice(&[*vni, *mac, *peer]);
            }
            Op::Withdraw { vni, mac } => {
                variant(out, 11, N);
                out.extend_from_slice(&[*vni, *mac]);
            }
            Op::FloodList { vni, peers } => {
                variant(out, 12, N);
                out.push(*vni);
                match peers {
                    None => out.push(0),
                    Some(bits) => out.extend_from_slice(&[1, *bits]),
                }
            }
        }
    }
}

impl FrameSpec {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FrameSpec::Built {
                dst,
                src,
                vlan,
                ethertype,
                payload_len,
            } => {
                variant(out, 0, 2);
                out.extend_from_slice(&[*dst, *src]);
                match vlan {
                    None => out.push(0),
                    Some(tci) => {
                        out.push(1);
                        out.extend_from_slice(&tci.to_le_bytes());
                    }
                }
                out.extend_from_slice(&ethertype.to_le_bytes());
                out.push(*payload_len);
            }
            FrameSpec::Raw(raw) => {
                variant(out, 1, 2);
                raw.encode(out);
            }
        }
    }
}

impl DatagramSpec {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            DatagramSpec::Vxlan {
                flags,
                vni,
                reserved,
                frame,
            } => {
                variant(out, 0, 2);
                match flags {
                    Flags::Plain => variant(out, 0, 3),
                    Flags::Sealed => variant(out, 1, 3),
                    Flags::Raw(f) => {
                        variant(out, 2, 3);
                        out.push(*f);
                    }
                }
                out.push(*vni);
                out.extend_from_slice(reserved);
                frame.encode(out);
            }
            DatagramSpec::Raw(raw) => {
                variant(out, 1, 2);
                raw.encode(out);
            }
        }
    }
}

impl Raw {
    fn encode(&self, out: &mut Vec<u8>) {
        let len = u16::try_from(self.0.len().min(MAX_RAW)).expect("MAX_RAW fits u16");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.0[..usize::from(len)]);
    }
}

/// Handmade seed scenarios, named; `tests/fuzz_corpus.rs` keeps `fuzz/corpus/switch_ops/seed-*`
/// equal to their encodings.
pub fn seeds() -> Vec<(&'static str, bool, Vec<Op>)> {
    let built = |dst: u8, src: u8| FrameSpec::Built {
        dst,
        src,
        vlan: None,
        ethertype: EtherType::IPV4,
        payload_len: 46,
    };
    let vxlan = |vni: u8, frame: FrameSpec| DatagramSpec::Vxlan {
        flags: Flags::Plain,
        vni,
        reserved: [0; 4],
        frame,
    };
    let frame = |port: u8, frame: FrameSpec| Op::Frame { port, frame };
    let datagram = |peer: u8, datagram: DatagramSpec| Op::Datagram { peer, datagram };
    const BCAST: u8 = UNICAST_MACS;

    // Two networks, three ports, two peers: every kind of forwarding, then ageing.
    let mut forwarding = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::Attach { port: 2, vni: 1 },
        Op::AddPeer { peer: 0 },
        Op::AddPeer { peer: 1 },
        frame(0, built(BCAST, 0)),
        frame(1, built(0, 1)),
        datagram(0, vxlan(0, built(0, 2))),
        frame(0, built(2, 0)),
        datagram(1, vxlan(1, built(BCAST, 3))),
        frame(2, built(3, 4)),
        Op::Advance { millis: 3000 },
        Op::Tick,
        frame(0, built(2, 0)),
    ];
    forwarding.push(datagram(0, vxlan(0, built(0, 2))));

    // Churn: more MACs than the table holds, moves, detach/re-attach elsewhere, peers and
    // networks coming and going.
    let mut churn = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::AddPeer { peer: 0 },
    ];
    churn.extend((0..12).map(|m| frame(m % 2, built(BCAST, m))));
    churn.extend([
        datagram(0, vxlan(0, built(1, 0))),
        Op::Detach { port: 1 },
        Op::AddNetwork { vni: 2 },
        Op::Attach { port: 1, vni: 2 },
        Op::RemoveNetwork { vni: 0 },
        Op::Detach { port: 0 },
        Op::RemoveNetwork { vni: 0 },
        Op::RemovePeer { peer: 0 },
        frame(1, built(5, 6)),
        datagram(0, vxlan(2, built(5, 6))),
    ]);

    // Malformed input: tagged frames, bad sources, sealed/unflagged/unknown-VNI datagrams,
    // truncation.
    let tagged = FrameSpec::Built {
        dst: 1,
        src: 0,
        vlan: Some(7),
        ethertype: EtherType::IPV4,
        payload_len: 46,
    };
    let bad = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::AddPeer { peer: 0 },
        frame(0, tagged),
        frame(0, built(1, BCAST)),
        frame(0, built(1, BCAST + 2)),
        frame(0, FrameSpec::Raw(Raw(vec![0x02; 13]))),
        frame(4, built(1, 0)),
        datagram(
            0,
            DatagramSpec::Vxlan {
                flags: Flags::Sealed,
                vni: 0,
                reserved: [0; 4],
                frame: built(0, 1),
            },
        ),
        datagram(
            0,
            DatagramSpec::Vxlan {
                flags: Flags::Raw(0),
                vni: 0,
                reserved: [0; 4],
                frame: built(0, 1),
            },
        ),
        datagram(
            0,
            DatagramSpec::Vxlan {
                flags: Flags::Raw(0xff),
                vni: 0,
                reserved: [0xff; 4],
                frame: built(0, 1),
            },
        ),
        datagram(0, vxlan(3, built(0, 1))),
        datagram(0, vxlan(4, built(0, 1))),
        datagram(0, DatagramSpec::Raw(Raw(vec![FLAG_I, 0, 0, 0, 0, 0]))),
        datagram(3, vxlan(0, built(0, 1))),
    ];
    // Entries past their ageing time but not yet removed by a tick: never used for forwarding
    // (flood, not unicast; no same-port or split-horizon drop), refreshed when seen again.
    let stale = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::AddPeer { peer: 0 },
        frame(1, built(BCAST, 1)),
        datagram(0, vxlan(0, built(BCAST, 2))),
        Op::Advance { millis: 1999 },
        frame(0, built(1, 0)),
        Op::Advance { millis: 1 },
        frame(0, built(1, 0)),
        frame(0, built(2, 0)),
        frame(1, built(1, 5)),
        datagram(0, vxlan(0, built(2, 3))),
        frame(1, built(BCAST, 1)),
        frame(0, built(1, 0)),
        Op::Tick,
        frame(0, built(2, 0)),
    ];
    // Cluster mode: an advertised MAC is unicast at once and outlives ageing, a peer cannot
    // take it, a flood list narrows floods, a local port takes the MAC over, and refusals (a
    // live local port's MAC, a group MAC, an unknown peer) change nothing.
    let advertised = vec![
        Op::Attach { port: 0, vni: 0 },
        Op::Attach { port: 1, vni: 0 },
        Op::AddPeer { peer: 0 },
        Op::AddPeer { peer: 1 },
        Op::AddPeer { peer: 2 },
        Op::Advertise {
            vni: 0,
            mac: 5,
            peer: 0,
        },
        frame(0, built(5, 0)),
        datagram(1, vxlan(0, built(0, 5))),
        Op::FloodList {
            vni: 0,
            peers: Some(0b0010),
        },
        frame(0, built(BCAST, 0)),
        Op::Advance { millis: 3000 },
        Op::Tick,
        frame(0, built(5, 0)),
        Op::Advertise {
            vni: 0,
            mac: 0,
            peer: 2,
        },
        frame(1, built(BCAST, 5)),
        Op::Withdraw { vni: 0, mac: 5 },
        Op::Advertise {
            vni: 0,
            mac: 7,
            peer: 2,
        },
        Op::Advertise {
            vni: 0,
            mac: 8,
            peer: 3,
        },
        Op::Advertise {
            vni: 0,
            mac: BCAST,
            peer: 0,
        },
        frame(0, built(7, 0)),
        Op::RemovePeer { peer: 2 },
        frame(0, built(7, 0)),
        Op::FloodList {
            vni: 0,
            peers: None,
        },
        frame(0, built(BCAST, 0)),
        Op::Withdraw { vni: 2, mac: 1 },
    ];
    vec![
        ("advertised", false, advertised),
        ("forwarding", false, forwarding),
        ("stale", false, stale),
        ("churn", false, churn),
        ("malformed", false, bad.clone()),
        ("malformed-vlan-allowed", true, bad),
    ]
}
