//! Other hosts' endpoint advertisements, carried out: the rules (`rules::adverts`) say what
//! the switch should have; this applies the difference, one change at a time.

use super::{Daemon, Inner};
use crate::daemon::rules;
use crate::store::StateStore;

impl<S: StateStore> Daemon<S> {
    /// Brings the switch's advertised endpoints and flood lists to what the state asks for
    /// (see `rules::adverts`). Each change is applied on its own; one that fails is logged.
    pub(super) async fn sync_adverts(&self, inner: &mut Inner) {
        let desired = rules::adverts::desired(&inner.state, |n| !inner.unusable.contains_key(n));
        if let Some(d) = &desired {
            if d.ignored.len() != inner.adverts.ignored {
                for why in &d.ignored {
                    tracing::warn!("ignored an endpoint advertisement: {why}");
                }
            }
            inner.adverts.ignored = d.ignored.len();
        }
        for effect in rules::adverts::changes(&inner.adverts, desired.as_ref()) {
            if let Err(e) = self.apply(inner, vec![effect], None).await {
                tracing::warn!("cannot apply an endpoint advertisement: {e}");
            }
        }
    }
}
