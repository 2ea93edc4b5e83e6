//! What runs beside the requests: this host's registration under a lease, the lease kept
//! alive (and the registration renewed when it was lost), and the watch that turns every
//! change under the prefix into a fresh snapshot.

use super::*;

impl Shared {
    /// Registers this host: `hosts/NAME` and `alive/NAME` under a fresh lease. A name held by
    /// another live host is refused; our own earlier registration (same VTEP, e.g. before a
    /// restart) is taken over.
    pub(super) async fn register(&self) -> Result<i64, StoreError> {
        let mut c = self.client.clone();
        let lease = self
            .call("a lease grant", c.lease_grant(LEASE_TTL, None))
            .await?
            .id();
        let host = self.keys.host(&self.me.name);
        let alive = self.keys.alive(&self.me.name);
        let record = serde_json::to_vec(&self.me).unwrap_or_default();
        let puts = vec![
            TxnOp::put(host.clone(), record, None),
            TxnOp::put(
                alive.clone(),
                Vec::new(),
                Some(PutOptions::new().with_lease(lease)),
            ),
        ];
        let first = Txn::new()
            .when(vec![Compare::version(alive, CompareOp::Equal, 0)])
            .and_then(puts.clone());
        let resp = self.call("the host registration", c.txn(first)).await?;
        if !resp.succeeded() {
            let current = self
                .call("a host lookup", c.get(host.clone(), None))
                .await?;
            let holder = current
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice::<HostRecord>(kv.value()).ok());
            if let Some(h) = holder.filter(|h| h.vtep != self.me.vtep) {
                let _ = self.call("a lease revoke", c.lease_revoke(lease)).await;
                return Err(StoreError::NameTaken {
                    name: self.me.name.clone(),
                    vtep: h.vtep,
                });
            }
            self.call("the host registration", c.txn(Txn::new().and_then(puts)))
                .await?;
        }
        // The addresses this host's endpoints hold live under its lease: put them under the
        // new one (after etcd was away longer than the TTL, they had expired).
        let claims: Vec<TxnOp> = lock(&self.claims)
            .iter()
            .map(|((network, ip), holder)| {
                TxnOp::put(
                    self.keys.address(network, *ip),
                    serde_json::to_vec(holder).unwrap_or_default(),
                    Some(PutOptions::new().with_lease(lease)),
                )
            })
            .collect();
        if !claims.is_empty() {
            self.call("re-asserting addresses", c.txn(Txn::new().and_then(claims)))
                .await?;
        }
        *lock(&self.lease) = Some(lease);
        tracing::info!(
            "registered as host {} (VTEP {}) in {} under {}",
            self.me.name,
            self.me.vtep,
            self.backend(),
            self.prefix
        );
        Ok(lease)
    }

    /// Addresses held by this host's name from before a restart: its endpoints are gone (a
    /// restart drops them), so are their addresses.
    pub(super) async fn drop_orphans(&self) -> Result<(), StoreError> {
        let mut c = self.client.clone();
        let resp = self
            .call(
                "a listing of addresses",
                c.get(
                    self.keys.all_addresses(),
                    Some(GetOptions::new().with_prefix()),
                ),
            )
            .await?;
        let mine: Vec<TxnOp> = resp
            .kvs()
            .iter()
            .filter(|kv| {
                serde_json::from_slice::<AddressHolder>(kv.value())
                    .is_ok_and(|h| h.host == self.me.name)
            })
            .map(|kv| TxnOp::delete(kv.key().to_vec(), None))
            .collect();
        if !mine.is_empty() {
            tracing::info!(
                "releasing {} addresses held by this host before it restarted",
                mine.len()
            );
            self.call("releasing addresses", c.txn(Txn::new().and_then(mine)))
                .await?;
        }
        Ok(())
    }
}

/// Keeps this host's lease alive; registers again when it was lost.
pub(super) async fn keep_alive(shared: Arc<Shared>) {
    let mut keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    loop {
        tokio::time::sleep(KEEPALIVE_EVERY).await;
        let lease = *lock(&shared.lease);
        let Some(id) = lease else {
            if let Err(e) = shared.register().await {
                tracing::warn!("cannot register this host again: {e}");
            }
            continue;
        };
        let Some((k, stream)) = keeper.as_mut() else {
            let mut c = shared.client.clone();
            match tokio::time::timeout(OP_TIMEOUT, c.lease_keep_alive(id)).await {
                // Opening the stream refreshed the lease once already.
                Ok(Ok(pair)) => {
                    keeper = Some(pair);
                    shared.worked(0);
                }
                Ok(Err(e)) if error_text(&e).contains("not found") => {
                    tracing::warn!(
                        "this host's lease ran out while etcd was away; registering again"
                    );
                    *lock(&shared.lease) = None;
                }
                Ok(Err(e)) => shared.failed(&format!("lease keep-alive: {}", error_text(&e))),
                Err(_) => shared.failed("no answer to a lease keep-alive within 2 s"),
            }
            continue;
        };
        let refreshed = tokio::time::timeout(OP_TIMEOUT, async {
            k.keep_alive().await?;
            stream.message().await
        })
        .await;
        match refreshed {
            Ok(Ok(Some(r))) if r.ttl() > 0 => shared.worked(0),
            Ok(Ok(Some(_))) => {
                tracing::warn!("this host's lease ran out; registering again");
                *lock(&shared.lease) = None;
                keeper = None;
            }
            Ok(Ok(None)) => {
                shared.failed("the lease keep-alive stream ended");
                keeper = None;
            }
            Ok(Err(e)) => {
                shared.failed(&format!("lease keep-alive: {}", error_text(&e)));
                keeper = None;
            }
            Err(_) => {
                shared.failed("no answer to a lease keep-alive within 2 s");
                keeper = None;
            }
        }
    }
}

/// Sends a listing now and after every change under the prefix, until the receiver is gone.
pub(super) async fn watch(shared: Arc<Shared>, tx: mpsc::Sender<Snapshot>) {
    loop {
        if let Ok((listing, revision)) = shared.list(None).await {
            if tx.send(shared.snapshot(&listing, revision)).await.is_err() {
                return;
            }
            let mut c = shared.client.clone();
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1);
            match tokio::time::timeout(OP_TIMEOUT, c.watch(shared.keys.root(), Some(options))).await
            {
                Ok(Ok(mut stream)) => loop {
                    match stream.message().await {
                        Ok(Some(resp)) if resp.canceled() || resp.compact_revision() > 0 => {
                            tracing::info!(
                                "etcd watch cancelled ({}); listing again",
                                resp.cancel_reason()
                            );
                            break;
                        }
                        Ok(Some(resp)) if resp.events().is_empty() => {}
                        Ok(Some(_)) => match shared.list(None).await {
                            Ok((listing, revision)) => {
                                if tx.send(shared.snapshot(&listing, revision)).await.is_err() {
                                    return;
                                }
                            }
                            Err(_) => break,
                        },
                        Ok(None) => {
                            shared.failed("the watch stream ended");
                            break;
                        }
                        Err(e) => {
                            shared.failed(&format!("watch: {}", error_text(&e)));
                            break;
                        }
                    }
                },
                Ok(Err(e)) => shared.failed(&format!("watch: {}", error_text(&e))),
                Err(_) => shared.failed("no answer to a watch within 2 s"),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
