//! The harness's cluster-mode ops: advertisements (static entries) and flood lists, mirrored
//! in the model ([`MacTable::pin`], `Harness::remote`, `Harness::floods`).

use super::*;

impl Harness {
    /// An advertisement: refused for a MAC no station has, an unknown peer or network; not
    /// installed (but the earlier one of the MAC forgotten) when a live local port has the MAC.
    pub(super) fn advertise(&mut self, v: Vni, m: Mac, a: SocketAddr) {
        let got = self
            .switch
            .set_remote_endpoint(v, m, None, Vtep(a), self.now);
        let ok = reference::may_be_learned(m.0) && self.peers.contains(&a);
        let Some(table) = self.tables.get_mut(&v).filter(|_| ok) else {
            assert!(got.is_err(), "advertise {m} on {v} at {a}: {got:?}");
            return;
        };
        if let Some(old) = self.remote.remove(&(v, m.0)) {
            if old != a {
                table.unpin(m.0, old);
            }
        }
        let installed = table.pin(m.0, a, self.now.as_millis());
        if installed {
            self.remote.insert((v, m.0), a);
        }
        assert_eq!(got, Ok(installed), "advertise {m} on {v} at {a}");
    }

    /// A withdrawn advertisement: its static entry goes (unless a local port took the MAC).
    pub(super) fn withdraw(&mut self, v: Vni, m: Mac) {
        let expected = self.networks.contains(&v).then(|| {
            let had = self.remote.remove(&(v, m.0));
            if let (Some(a), Some(table)) = (had, self.tables.get_mut(&v)) {
                table.unpin(m.0, a);
            }
            had.is_some()
        });
        assert_eq!(self.switch.remove_remote_endpoint(v, m).ok(), expected);
    }

    /// Network `v` floods to the peers whose bits are set in `mask`, or (`None`) to every peer.
    pub(super) fn flood_list(&mut self, v: Vni, mask: Option<u8>) {
        let list: Option<BTreeSet<SocketAddr>> = mask.map(|bits| {
            (0..PEERS)
                .filter(|b| bits & (1 << b) != 0)
                .map(peer)
                .collect()
        });
        let ok = self.networks.contains(&v);
        let vteps = list.as_ref().map(|l| l.iter().map(|&a| Vtep(a)).collect());
        assert_eq!(self.switch.set_flood_list(v, vteps).is_ok(), ok);
        match (ok, list) {
            (true, Some(l)) => {
                self.floods.insert(v, l);
            }
            (true, None) => {
                self.floods.remove(&v);
            }
            (false, _) => {}
        }
    }
}
