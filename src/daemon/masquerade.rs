//! The egress subnet's firewall in the daemon's network namespace: one nftables table of the
//! daemon's own, `ip vswitch`, installed while any container has an egress link and deleted
//! with the last one (and by `daemon --cleanup`). Nothing else in the namespace's firewall is
//! read or changed.
//!
//! - `postrouting` (nat): what the egress subnet sends outside it is masqueraded to the
//!   address of the interface it leaves by (the host's), as Docker's overlay does.
//! - `forward` (filter): containers do not reach each other through egress (their own networks
//!   are for that), a container cannot send from an address it was not given, and nothing
//!   reaches a container's egress link unless it answers the container's own connections.
//!
//! The rules go to the kernel through `nft -j -f -` (libnftables' JSON API, one atomic
//! transaction per change), built here as plain JSON so that [`ruleset`] is tested without root.

use std::io::Write;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::rules::egress::Egress;

/// The daemon's table (family `ip`).
pub const TABLE: &str = "vswitch";

/// Every egress link's end in the daemon's namespace is called this plus the port id.
pub const HOST_PREFIX: &str = "vseg";

/// Why the rules could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum MasqueradeError {
    #[error(
        "cannot run `nft` ({0}): egress needs nftables; install it (Debian: apt-get install \
         nftables), or create the network with --internal"
    )]
    NoNft(std::io::Error),
    #[error("nft refused the egress rules ({status}): {stderr}")]
    Refused { status: String, stderr: String },
}

/// The table as it should be for egress subnet `subnet`: replaces whatever the table held (an
/// `add` of an existing table or chain is no error; the flush empties it), in one transaction.
pub fn ruleset(subnet: Ipv4Net) -> Value {
    let ours = format!("{HOST_PREFIX}*");
    let from_subnet = |op: &str, field: &str| {
        json!({"match": {"op": op,
            "left": {"payload": {"protocol": "ip", "field": field}},
            "right": {"prefix": {"addr": subnet.network().to_string(), "len": subnet.prefix_len()}}}})
    };
    let ifname =
        |key: &str| json!({"match": {"op": "==", "left": {"meta": {"key": key}}, "right": ours}});
    let rule = |chain: &str, expr: Vec<Value>| json!({"add": {"rule": {"family": "ip", "table": TABLE, "chain": chain, "expr": expr}}});
    let chain = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": "ip", "table": TABLE, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    let drop = json!({"drop": null});
    json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": TABLE}}},
        {"flush": {"table": {"family": "ip", "name": TABLE}}},
        chain("forward", "filter", "forward", 0),
        chain("postrouting", "nat", "postrouting", 100),
        rule("forward", vec![ifname("iifname"), ifname("oifname"), drop.clone()]),
        rule("forward", vec![ifname("iifname"), from_subnet("!=", "saddr"), drop.clone()]),
        rule("forward", vec![ifname("oifname"),
            json!({"match": {"op": "in", "left": {"ct": {"key": "state"}},
                "right": ["established", "related"]}}),
            json!({"accept": null})]),
        rule("forward", vec![ifname("oifname"), drop]),
        rule("postrouting", vec![from_subnet("==", "saddr"), from_subnet("!=", "daddr"),
            json!({"masquerade": null})]),
    ]})
}

/// Deletes the table; no error if there is none (the `add` first makes it exist).
pub fn removal() -> Value {
    json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": TABLE}}},
        {"delete": {"table": {"family": "ip", "name": TABLE}}},
    ]})
}

/// Installs (or replaces) the rules for `subnet`.
pub async fn install(subnet: Ipv4Net) -> Result<(), MasqueradeError> {
    run(ruleset(subnet)).await
}

/// Deletes the daemon's table.
pub async fn remove() -> Result<(), MasqueradeError> {
    run(removal()).await
}

/// This host's egress at startup: `--egress-subnet`, refused if it holds one of this host's
/// addresses (`own`), and whether the namespace forwards.
pub(super) fn startup(
    subnet: Ipv4Net,
    own: &[std::net::IpAddr],
) -> Result<Egress, super::DaemonError> {
    let egress = Egress {
        subnet,
        forwarding: ip_forwarding(),
    };
    super::rules::egress::check_host(&egress, own)
        .map_err(|addr| super::DaemonError::EgressSubnet { subnet, addr })?;
    Ok(egress)
}

/// Where the daemon's namespace says whether it forwards IPv4.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Whether the daemon's namespace forwards IPv4 (`net.ipv4.ip_forward`, a setting of each
/// network namespace). The daemon never turns it on itself: on a real host that is a host-wide
/// decision (every interface forwards), left to the administrator.
pub fn ip_forwarding() -> bool {
    std::fs::read_to_string(IP_FORWARD).is_ok_and(|s| s.trim() == "1")
}

async fn run(batch: Value) -> Result<(), MasqueradeError> {
    tokio::task::spawn_blocking(move || nft(&batch))
        .await
        .map_err(|e| MasqueradeError::NoNft(std::io::Error::other(e.to_string())))?
}

fn nft(batch: &Value) -> Result<(), MasqueradeError> {
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(MasqueradeError::NoNft)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.to_string().as_bytes())
            .map_err(MasqueradeError::NoNft)?;
    }
    let out = child.wait_with_output().map_err(MasqueradeError::NoNft)?;
    if out.status.success() {
        return Ok(());
    }
    Err(MasqueradeError::Refused {
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nft commands of a batch, as `verb kind` plus the rule's expression keys.
    fn steps(v: &Value) -> Vec<String> {
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|cmd| {
                let (verb, obj) = cmd.as_object().unwrap().iter().next().unwrap();
                let (kind, body) = obj.as_object().unwrap().iter().next().unwrap();
                format!(
                    "{verb} {kind} {}",
                    body.get("chain").map_or("", |c| c.as_str().unwrap())
                )
            })
            .collect()
    }

    #[test]
    fn the_ruleset_replaces_the_table_in_one_batch() {
        let v = ruleset("172.31.0.0/16".parse().unwrap());
        let s = steps(&v);
        assert_eq!(&s[..2], ["add table ", "flush table "]);
        assert_eq!(
            s.iter()
                .filter(|s| s.starts_with("add rule forward"))
                .count(),
            4
        );
        assert_eq!(s.iter().filter(|s| *s == "add rule postrouting").count(), 1);
        for cmd in v["nftables"].as_array().unwrap() {
            let obj = cmd.as_object().unwrap().values().next().unwrap();
            let body = obj.as_object().unwrap().values().next().unwrap();
            assert_eq!(body["family"], "ip");
            let table = body.get("table").or_else(|| body.get("name")).unwrap();
            assert_eq!(table, TABLE, "{cmd}");
        }
    }

    #[test]
    fn masquerade_covers_the_egress_subnet_leaving_it() {
        let v = ruleset("10.200.0.0/20".parse().unwrap());
        let nat = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["add"]["rule"]["chain"] == "postrouting")
            .unwrap();
        let expr = nat["add"]["rule"]["expr"].as_array().unwrap();
        let prefix = json!({"prefix": {"addr": "10.200.0.0", "len": 20}});
        assert_eq!(expr[0]["match"]["op"], "==");
        assert_eq!(expr[0]["match"]["left"]["payload"]["field"], "saddr");
        assert_eq!(expr[0]["match"]["right"], prefix);
        assert_eq!(expr[1]["match"]["op"], "!=");
        assert_eq!(expr[1]["match"]["left"]["payload"]["field"], "daddr");
        assert_eq!(expr[1]["match"]["right"], prefix);
        assert_eq!(expr[2], json!({"masquerade": null}));
    }

    #[test]
    fn forward_rules_only_match_egress_links() {
        let v = ruleset("172.31.0.0/16".parse().unwrap());
        for cmd in v["nftables"].as_array().unwrap() {
            if cmd["add"]["rule"]["chain"] != "forward" {
                continue;
            }
            let expr = cmd["add"]["rule"]["expr"].as_array().unwrap();
            assert_eq!(expr[0]["match"]["right"], "vseg*", "{cmd}");
            let last = expr.last().unwrap();
            assert!(last.get("drop").is_some() || last.get("accept").is_some());
        }
    }

    #[test]
    fn removal_never_fails_on_a_missing_table() {
        assert_eq!(steps(&removal()), ["add table ", "delete table "]);
    }
}
