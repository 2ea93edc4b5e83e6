//! The daemon's side of the networks' services: which names each network's DNS answers for,
//! the resolvers it forwards to, and the resolv.conf files attach writes.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::rules::services::{names_of, RESOLV_MARK};
use super::{Daemon, Inner};
use crate::control::PortInfo;
use crate::core::dns::Names;
use crate::store::StateStore;

impl<S: StateStore> Daemon<S> {
    /// Tells network `network`'s DNS its names: every host's endpoints in cluster mode (the
    /// address claims in the store), this host's ports otherwise. With the store away the
    /// names stay as they were (the next refresh catches up).
    pub(super) async fn publish_names(&self, inner: &Inner, network: &str) {
        let Some(record) = inner.state.network(network) else {
            return;
        };
        let names = if self.store.leases_addresses() {
            match self.store.held_addresses(network).await {
                Ok(held) => Names::new(
                    held.iter()
                        .map(|(ip, holder)| (holder.names.as_slice(), *ip)),
                ),
                Err(e) => {
                    tracing::debug!("names of {network} not refreshed: {e}");
                    return;
                }
            }
        } else {
            let ports: Vec<&PortInfo> = inner
                .ports
                .values()
                .map(|p| &p.info)
                .filter(|p| p.network == network)
                .collect();
            names_of(ports)
        };
        self.dataplane.set_names(record.vni, names);
    }

    /// Refreshes the names of every network (cluster mode: other hosts' endpoints come and go).
    pub(super) async fn refresh_names(&self) {
        if !self.store.leases_addresses() {
            return;
        }
        let inner = self.inner.lock().await;
        let networks: Vec<String> = inner
            .state
            .networks
            .iter()
            .map(|n| n.name.clone())
            .collect();
        for n in networks {
            self.publish_names(&inner, &n).await;
        }
    }
}

/// The resolvers of `/etc/resolv.conf` (its `nameserver` lines), on port 53.
pub(super) fn system_resolvers() -> Vec<SocketAddr> {
    let text = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    parse_resolv_conf(&text)
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Writes a namespace's resolv.conf (creating its /etc/netns dir), replacing it atomically.
pub(super) fn write_resolv_conf(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(".resolv.conf.vswitch");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Removes a resolv.conf vswitch wrote (and its directory, when that is left empty); a file
/// someone else wrote stays.
pub(super) fn remove_resolv_conf(path: &Path) {
    let ours = fs::read_to_string(path).is_ok_and(|t| t.starts_with(RESOLV_MARK));
    if !ours {
        return;
    }
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
    if let Some(dir) = path.parent() {
        // Only when empty: remove_dir refuses otherwise.
        let _ = fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_come_from_nameserver_lines() {
        let text = "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver  2001:db8::1 \nnameserver bogus\noptions ndots:1\n";
        let got = parse_resolv_conf(text);
        assert_eq!(
            got,
            [
                "192.0.2.53:53".parse::<SocketAddr>().expect("addr"),
                "[2001:db8::1]:53".parse().expect("addr"),
            ]
        );
    }

    #[test]
    fn only_our_resolv_conf_is_removed() {
        let dir = std::env::temp_dir().join(format!("vswitch-resolv-{}", std::process::id()));
        let path = dir.join("resolv.conf");
        write_resolv_conf(&path, &format!("{RESOLV_MARK}\nnameserver 10.0.0.1\n")).expect("write");
        remove_resolv_conf(&path);
        assert!(!path.exists() && !dir.exists(), "ours, and the dir with it");
        fs::create_dir_all(&dir).expect("dir");
        fs::write(&path, "nameserver 192.0.2.1\n").expect("write");
        remove_resolv_conf(&path);
        assert!(path.exists(), "someone else's stays");
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
