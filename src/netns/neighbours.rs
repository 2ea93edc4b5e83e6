//! The container's neighbour table (ARP, NDP) on a port's interface.

use super::netlink::{to_io, Netlink};
use super::{NetnsError, NetnsRef};

/// Deletes the dynamic neighbour entries (ARP, NDP) of `ifname` in `ns`; returns how many.
///
/// For a port taken back after a restart: while no daemon ran, the container's kernel kept
/// trying to resolve its neighbours over a link without carrier, and an entry left mid-way
/// (INCOMPLETE, FAILED) would hold its traffic until the next retransmission, up to a second
/// later. Without the entries, the next packet asks at once. Permanent entries are kept.
pub async fn forget_neighbours(ns: &NetnsRef, ifname: &str) -> Result<usize, NetnsError> {
    use futures::TryStreamExt;
    use rtnetlink::packet_route::neighbour::NeighbourState;
    let nl = Netlink::inside(ns).await?;
    let failed = |op: String| move |source| NetnsError::Netlink { op, source };
    let Some(link) = nl.link_in(ifname, ns).await? else {
        return Ok(0);
    };
    let entries: Vec<_> = nl
        .handle()
        .neighbours()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| failed(format!("listing neighbours in network namespace {ns}"))(to_io(e)))?;
    let mut deleted = 0;
    for entry in entries.into_iter().filter(|m| {
        m.header.ifindex == link.header.index
            && !matches!(
                m.header.state,
                NeighbourState::Permanent | NeighbourState::Noarp
            )
    }) {
        // One that went away meanwhile is as good as deleted.
        if nl.handle().neighbours().del(entry).execute().await.is_ok() {
            deleted += 1;
        }
    }
    Ok(deleted)
}
