//! The harness's checks: what the reference model expects of each decision, and the
//! invariants every decision and table must keep.

use super::*;

impl Harness {
    /// What the rules (module doc of `core::switch`) say about a datagram from `from`, read with
    /// the reference model's own header parsing. No network of the harness is sealed.
    pub(super) fn expected_from_underlay(&mut self, from: SocketAddr, datagram: &[u8]) -> Decision {
        if !self.peers.contains(&from) {
            return Decision::drop(None, DropReason::UnknownVtep);
        }
        let (vni, sealed) = match reference::vxlan_header(datagram) {
            Header::Truncated => return Decision::drop(None, DropReason::Truncated),
            Header::NoVniFlag => return Decision::drop(None, DropReason::NoVniFlag),
            Header::ZeroVni => return Decision::drop(None, DropReason::InvalidVni),
            Header::Valid { vni, sealed } => (vni, sealed),
        };
        let Some(v) = self.networks.iter().copied().find(|v| v.get() == vni) else {
            return Decision::drop(None, DropReason::UnknownVni);
        };
        if sealed {
            return Decision::drop(Some(v), DropReason::UnexpectedSeal);
        }
        self.decide(v, &datagram[8..], Place::Peer(from))
    }

    /// What the rules say about a frame entering network `v` at `at`, by the reference model,
    /// whose table learns the source first, as the switch's does.
    pub(super) fn decide(&mut self, v: Vni, frame: &[u8], at: Place) -> Decision {
        let drop = |reason| Decision::drop(Some(v), reason);
        let Some(eth) = reference::ethernet_header(frame) else {
            return drop(DropReason::Truncated);
        };
        if eth.tagged && !self.switch.config().allow_vlan_tagged {
            return drop(DropReason::VlanTagged);
        }
        if !reference::may_be_learned(eth.src) {
            return drop(DropReason::BadSourceMac);
        }
        let now = self.now.as_millis();
        let table = self.tables.get_mut(&v).expect("the model has the network");
        // A MAC that lives at a live local port is not moved away by a frame from elsewhere:
        // the table is left as it was and the frame is dropped.
        if !table.learn(eth.src, at, now) {
            return drop(DropReason::MacConflict);
        }
        let from_port = match at {
            Place::Port(p) => Some(p),
            Place::Peer(_) => None,
        };
        let known = match reference::is_group(eth.dst) {
            true => None,
            false => table.lookup(eth.dst, now),
        };
        let (ports, vteps) = match (known, from_port) {
            (Some(Place::Port(q)), Some(p)) if q == p => return drop(DropReason::SamePort),
            (Some(Place::Port(q)), _) => (vec![PortId(q)], vec![]),
            (Some(Place::Peer(_)), None) => return drop(DropReason::SplitHorizon),
            (Some(Place::Peer(t)), Some(_)) => (vec![], vec![t]),
            // Flood: every other port of the network; every peer, unless it came from one.
            (None, _) => {
                let ports = self
                    .ports
                    .iter()
                    .filter(|&(&q, &w)| w == v && Some(q.0) != from_port)
                    .map(|(&q, _)| q)
                    .collect();
                // A flood list (cluster mode) narrows the peers; without one, every peer.
                let vteps = match (from_port, self.floods.get(&v)) {
                    (Some(_), None) => self.peers.iter().copied().collect(),
                    (Some(_), Some(list)) => self.peers.intersection(list).copied().collect(),
                    (None, _) => vec![],
                };
                (ports, vteps)
            }
        };
        Decision {
            vni: Some(v),
            outcome: Ok((ports, vteps)),
        }
    }

    /// Checks that hold for any forwarding result.
    pub(super) fn check_forward(&mut self) {
        let out = &self.forward;
        if out.dropped.is_some() {
            assert!(out.ports.is_empty() && out.vteps.is_empty(), "{out:?}");
            self.drops += 1;
            self.seen.dropped += 1;
        }
        assert_eq!(
            self.switch.drops.total(),
            self.drops,
            "each drop counted once"
        );
        for q in &out.ports {
            assert_eq!(
                self.ports.get(q),
                out.vni.as_ref(),
                "{q:?} is not in network {:?}",
                out.vni
            );
        }
        assert!(distinct(&out.ports), "a port twice: {:?}", out.ports);
        assert!(distinct(&out.vteps), "a VTEP twice: {:?}", out.vteps);
    }

    /// The switch's configuration and tables agree with the model.
    pub(super) fn check_tables(&mut self) {
        let networks: BTreeSet<Vni> = self.switch.networks().map(|n| n.vni).collect();
        assert_eq!(networks, self.networks);
        let peers: BTreeSet<SocketAddr> = self.switch.peers().map(|v| v.0).collect();
        assert_eq!(peers, self.peers);
        let (mut evicted, mut aged) = (0, 0);
        for network in self.switch.networks() {
            let v = network.vni;
            let mut ports = network.ports().to_vec();
            ports.sort();
            let expected: Vec<PortId> = self
                .ports
                .iter()
                .filter(|&(_, w)| *w == v)
                .map(|(&p, _)| p)
                .collect();
            assert_eq!(ports, expected, "ports of network {v}");
            let pinned = self.remote.iter().filter(|((w, _), _)| *w == v).count();
            assert!(
                network.fdb.len() - network.fdb.pinned() <= FDB_CAPACITY,
                "learned entries of {v} overflow"
            );
            assert!(
                network.fdb.pinned() <= pinned,
                "a static entry nobody advertised"
            );
            let mut remote: Vec<(MacBytes, SocketAddr)> = self
                .remote
                .iter()
                .filter(|((w, _), _)| *w == v)
                .map(|((_, m), &a)| (*m, a))
                .collect();
            remote.sort();
            let switch_remote: Vec<(MacBytes, SocketAddr)> = self
                .switch
                .remote_endpoints(v)
                .iter()
                .map(|e| (e.mac.0, e.vtep.0))
                .collect();
            assert_eq!(switch_remote, remote, "advertised endpoints of {v}");
            let table = self.tables.get(&v).expect("the model has the network");
            assert_eq!(
                network.fdb.pinned(),
                table.rows().iter().filter(|r| r.3).count()
            );
            let rows: Vec<_> = network
                .fdb
                .entries()
                .iter()
                .map(|e| {
                    let place = match e.location {
                        Location::Port(p) => Place::Port(p.0),
                        Location::Vtep(t) => Place::Peer(t.0),
                    };
                    (e.mac.0, place, e.last_seen.as_millis(), e.pinned)
                })
                .collect();
            assert_eq!(
                rows,
                table.rows(),
                "the table of {v} differs from the model's"
            );
            let c = &network.fdb.counters;
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let counters = reference::TableCounters {
                learned: load(&c.learned),
                moved: load(&c.moved),
                evicted: load(&c.evicted),
                aged: load(&c.aged),
            };
            assert_eq!(counters, table.counters, "table counters of {v}");
            for e in network.fdb.entries() {
                assert!(e.mac.is_valid_source(), "{} learned", e.mac);
                match e.location {
                    Location::Port(p) => assert_eq!(self.ports.get(&p), Some(&v), "{e:?}"),
                    Location::Vtep(t) => assert!(self.peers.contains(&t.0), "{e:?}"),
                }
            }
            let c = &network.fdb.counters;
            evicted += c.evicted.load(std::sync::atomic::Ordering::Relaxed);
            aged += c.aged.load(std::sync::atomic::Ordering::Relaxed);
        }
        // Counters of removed networks are gone; keep the high-water mark.
        self.seen.evicted = self.seen.evicted.max(evicted);
        self.seen.aged = self.seen.aged.max(aged);
    }
}
