//! Cluster mode on the real etcd (Debian's `etcd-server`): each test starts its own `etcd`
//! process in a namespace of its own on the simulated underlay (192.0.2.200), with a data dir
//! in the lab's temp dir, and kills it by PID when done (or when the test fails).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

pub(crate) const ETCD_IP: &str = "192.0.2.200";
pub(crate) const STORE: &str = "etcd://192.0.2.200:2379";
/// How the daemons name the store in their errors.
const STORE_NAME: &str = "etcd at http://192.0.2.200:2379";

/// A running etcd, killed (by PID) on drop.
pub(crate) struct Etcd {
    bg: Option<Bg>,
    /// The namespace it runs in.
    ns: String,
}

impl Etcd {
    /// Starts etcd in namespace `ns`, serving clients on `ETCD_IP:2379` (its peer port only on
    /// the namespace's loopback); `tls` = (server cert, key, CA) turns on client-cert TLS.
    pub(crate) fn start(ns: &str, data: &Path, tls: Option<(&Path, &Path, &Path)>) -> Etcd {
        require_tool("etcd", "etcd-server");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://{ETCD_IP}:2379");
        let mut cmd = ns_cmd(ns, "etcd");
        cmd.arg("--name")
            .arg("e1")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "e1=http://127.0.0.1:2380"])
            .env_remove("ETCDCTL_API");
        if let Some((cert, key, ca)) = tls {
            cmd.arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key)
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--client-cert-auth");
        }
        let mut bg = Bg::spawn(&mut cmd);
        bg.wait_for("ready to serve client requests", Duration::from_secs(30));
        Etcd {
            bg: Some(bg),
            ns: ns.to_owned(),
        }
    }

    /// Stops etcd (SIGTERM by PID, SIGKILL after 2 s).
    fn stop(&mut self) {
        if let Some(bg) = self.bg.take() {
            drop(bg);
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cluster_args(h: &Host, name: &str) -> Vec<String> {
    ["--listen", &h.ip, "--store", STORE, "--name", name]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// One host per name, each a daemon on the lab's etcd (plain, in its own namespace on the
/// underlay) with no `--peer`. Keep the etcd handle beside the lab: it stops on drop.
fn cluster_lab(names: &[&str]) -> (Lab, Etcd) {
    cluster_lab_with(names, &[])
}

/// [`cluster_lab`], each daemon with `extra` arguments too.
pub(crate) fn cluster_lab_with(names: &[&str], extra: &[&str]) -> (Lab, Etcd) {
    let mut lab = Lab::new(names.len());
    let etcd_ns = lab.underlay_node("etcd", ETCD_IP);
    let etcd = Etcd::start(&etcd_ns, &lab.dir.join("etcd"), None);
    for (i, name) in names.iter().enumerate() {
        let mut args = cluster_args(&lab.hosts[i], name);
        args.extend(extra.iter().map(|a| a.to_string()));
        lab.hosts[i].start(&args);
    }
    (lab, etcd)
}

/// Polls `check` every 50 ms until it returns `Some`, failing with `what` after `within`.
pub(crate) fn eventually<T>(
    what: &str,
    within: Duration,
    lab: &Lab,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {within:?}\n{}", lab.logs());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `host ls --json` as (name, vtep, alive, local) tuples.
fn hosts(h: &Host) -> BTreeSet<(String, String, bool, bool)> {
    h.json(&["host", "ls"])
        .as_array()
        .unwrap_or_else(|| panic!("host ls --json is not an array"))
        .iter()
        .map(|x| {
            (
                jstr(x, "name"),
                jstr(x, "vtep"),
                x["alive"].as_bool().expect("alive is a bool"),
                x["local"].as_bool().expect("local is a bool"),
            )
        })
        .collect()
}

fn network_names(h: &Host) -> BTreeSet<String> {
    h.json(&["network", "ls"])
        .as_array()
        .expect("network ls --json is an array")
        .iter()
        .map(|n| jstr(n, "name"))
        .collect()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a second `vswitch daemon` in namespace `ns`, with its socket and state under `dir` and
/// `args` after `daemon`, expecting it to refuse to start; returns what it printed.
fn daemon_refused(ns: &str, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = run_cmd(
        ns_cmd(ns, VSWITCH)
            .arg("--socket")
            .arg(dir.join("sock"))
            .arg("daemon")
            .args(args)
            .arg("--state-dir")
            .arg(dir.join("state")),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    out
}

/// Three hosts, one etcd, no `--peer` anywhere: the registry gives every host its peers, a
/// network created on one is on all within 1 s, containers on all three ping each other, a
/// stopped host leaves the others' peers, and with etcd gone the data plane keeps working while
/// requests that need the store fail at once, naming it.
#[test]
fn three_hosts_share_networks_and_peers_through_etcd() {
    let names = ["host-a", "host-b", "host-c"];
    let (mut lab, mut etcd) = cluster_lab(&names);

    // Every host lists the three, alive, and itself as the local one.
    for (i, h) in lab.hosts.iter().enumerate() {
        let want: BTreeSet<_> = names
            .iter()
            .enumerate()
            .map(|(j, n)| {
                (
                    n.to_string(),
                    format!("192.0.2.{}:4789", j + 1),
                    true,
                    i == j,
                )
            })
            .collect();
        eventually(
            &format!("host ls on {} shows 3 live hosts", h.label),
            Duration::from_secs(3),
            &lab,
            || (hosts(h) == want).then_some(()),
        );
        // Peers come from the registry: the two others.
        let others: BTreeSet<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("192.0.2.{}:4789", j + 1))
            .collect();
        eventually(
            &format!("peers of {} from the registry", h.label),
            Duration::from_secs(3),
            &lab,
            || (peer_addrs(&h.json(&["peer", "ls"])) == others).then_some(()),
        );
    }
    let text = lab.hosts[0].ok(&["host", "ls"]);
    assert!(
        text.contains("host-a") && text.contains("(this host)") && text.contains("192.0.2.3:4789"),
        "{text}"
    );

    // A network created on host 1 is listed by hosts 2 and 3 within 1 s (polled; failing
    // after 3 s leaves room for a loaded machine).
    lab.hosts[0].create_network("blue", 100, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
    for h in &lab.hosts[1..] {
        eventually(
            &format!("network blue listed on {}", h.label),
            Duration::from_secs(3),
            &lab,
            || network_names(h).contains("blue").then_some(()),
        );
    }
    // Names and VNIs are cluster-wide: another host cannot take either.
    let dup = lab.hosts[1].vs(&[
        "network",
        "create",
        "blue",
        "--vni",
        "101",
        "--subnet",
        "10.11.0.0/24",
    ]);
    assert!(!dup.status.success());
    assert!(
        stderr_of(&dup).contains("a network named 'blue' already exists"),
        "{}",
        stderr_of(&dup)
    );
    let dup = lab.hosts[2].vs(&[
        "network",
        "create",
        "green",
        "--vni",
        "100",
        "--subnet",
        "10.11.0.0/24",
    ]);
    assert!(!dup.status.success());
    assert!(
        stderr_of(&dup).contains("VNI 100 is already used by network 'blue'"),
        "{}",
        stderr_of(&dup)
    );
    assert_eq!(
        network_names(&lab.hosts[0]),
        BTreeSet::from(["blue".to_string()])
    );

    // Containers on all three hosts reach each other.
    let mut ns = Vec::new();
    for (i, h) in lab.hosts.iter().enumerate() {
        let c = lab.netns(&format!("c{i}"));
        let ip = format!("10.10.0.{}/24", i + 1);
        let port = h.attach(&c, "blue", &["--ip", &ip]);
        assert_eq!(jstr(&port, "ip"), ip);
        ns.push(c);
    }
    lab.assert_ping(&ns[0], "10.10.0.2");
    lab.assert_ping(&ns[1], "10.10.0.3");
    lab.assert_ping(&ns[2], "10.10.0.1");

    // The store's state in stats.
    let store = &lab.hosts[0].json(&["stats"])["store"];
    assert_eq!(store["backend"], "etcd", "{store}");
    assert_eq!(store["connected"], true, "{store}");
    assert!(store["revision"].as_u64().unwrap_or(0) > 0, "{store}");
    assert!(jstr(store, "location").contains(STORE_NAME), "{store}");

    // A registry peer is not removed by hand.
    let rm = lab.hosts[0].vs(&["peer", "rm", "192.0.2.2"]);
    assert!(!rm.status.success());
    assert!(
        stderr_of(&rm).contains("host 'host-b'"),
        "{}",
        stderr_of(&rm)
    );

    // Two daemons may not share a name; a daemon needs a real --listen in cluster mode.
    let other_dir = lab.dir.join("intruder");
    let intruder = daemon_refused(
        &lab.hosts[2].ns.name,
        &other_dir,
        &[
            "--listen",
            "192.0.2.3",
            "--port",
            "4790",
            "--store",
            STORE,
            "--name",
            "host-a",
        ],
    );
    assert!(
        stderr_of(&intruder)
            .contains("host name 'host-a' is taken by a live host at 192.0.2.1:4789"),
        "{}",
        stderr_of(&intruder)
    );
    let unbound = daemon_refused(
        &lab.hosts[2].ns.name,
        &other_dir,
        &["--store", STORE, "--name", "host-x"],
    );
    assert!(
        stderr_of(&unbound).contains("pass --listen IP (not 0.0.0.0)"),
        "{}",
        stderr_of(&unbound)
    );

    // A host that stops leaves the others' peers at once (its lease is revoked), stays listed as
    // not alive, and when it comes back it finds the cluster's networks in etcd.
    lab.hosts[2].stop();
    eventually(
        "host-c shown as not alive",
        Duration::from_secs(3),
        &lab,
        || {
            hosts(&lab.hosts[0])
                .contains(&("host-c".into(), "192.0.2.3:4789".into(), false, false))
                .then_some(())
        },
    );
    eventually(
        "host-c gone from host-a's peers",
        Duration::from_secs(3),
        &lab,
        || {
            (!peer_addrs(&lab.hosts[0].json(&["peer", "ls"])).contains("192.0.2.3:4789"))
                .then_some(())
        },
    );
    lab.hosts[2].respawn();
    assert!(network_names(&lab.hosts[2]).contains("blue"));
    eventually("host-c alive again", Duration::from_secs(3), &lab, || {
        hosts(&lab.hosts[0])
            .contains(&("host-c".into(), "192.0.2.3:4789".into(), true, false))
            .then_some(())
    });

    // etcd stops: the data plane keeps forwarding; a request that needs the store fails at
    // once (the 2 s deadline; 10 s is the failure bound) with an error naming the store.
    etcd.stop();
    lab.assert_ping(&ns[0], "10.10.0.2");
    let late = lab.netns("late");
    let attach = lab.hosts[0].vs(&["attach", &late, "--network", "blue"]);
    assert!(!attach.status.success());
    let err = stderr_of(&attach);
    assert!(
        err.contains(STORE_NAME) && err.contains("unreachable"),
        "{err}"
    );
    assert!(
        !links(&late).contains(&"eth0".to_string()),
        "a refused attach changes nothing"
    );
    let t = Instant::now();
    let create = lab.hosts[0].vs(&[
        "network",
        "create",
        "red",
        "--vni",
        "200",
        "--subnet",
        "10.20.0.0/24",
    ]);
    let took = t.elapsed();
    assert!(!create.status.success());
    let err = stderr_of(&create);
    assert!(
        err.contains(STORE_NAME) && err.contains("unreachable"),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(10),
        "network create hung for {took:?} with etcd down"
    );
    assert!(
        !network_names(&lab.hosts[0]).contains("red"),
        "a refused create changes nothing"
    );
    assert_eq!(ping(&ns[1], "10.10.0.1", 3), 3, "pings stop with etcd down");
    eventually(
        "stats shows the store disconnected",
        Duration::from_secs(5),
        &lab,
        || {
            let s = lab.hosts[1].json(&["stats"])["store"].clone();
            (s["connected"] == false && s["last_error"].is_string()).then_some(())
        },
    );

    // A daemon cannot start without its store, and says which.
    let refused = daemon_refused(
        &lab.hosts[2].ns.name,
        &other_dir,
        &[
            "--listen",
            "192.0.2.3",
            "--port",
            "4790",
            "--store",
            STORE,
            "--name",
            "host-d",
        ],
    );
    let err = stderr_of(&refused);
    assert!(
        err.contains(STORE_NAME) && err.contains("unreachable"),
        "{err}"
    );
    assert!(
        !other_dir.join("sock").exists(),
        "a refused daemon serves nothing"
    );

    // etcd comes back (same data dir): no daemon is restarted, yet the store works again and
    // changes flow between hosts.
    let _etcd = Etcd::start(&etcd.ns, &lab.dir.join("etcd"), None);
    eventually(
        "host-a creates a network once etcd is back",
        Duration::from_secs(10),
        &lab,
        || {
            lab.hosts[0]
                .vs(&[
                    "network",
                    "create",
                    "red",
                    "--vni",
                    "200",
                    "--subnet",
                    "10.20.0.0/24",
                ])
                .status
                .success()
                .then_some(())
        },
    );
    eventually(
        "red listed on host-b after etcd's restart",
        Duration::from_secs(10),
        &lab,
        || network_names(&lab.hosts[1]).contains("red").then_some(()),
    );
    eventually(
        "stats shows the store connected again",
        Duration::from_secs(10),
        &lab,
        || (lab.hosts[1].json(&["stats"])["store"]["connected"] == true).then_some(()),
    );
    assert_eq!(
        hosts(&lab.hosts[2]).iter().filter(|h| h.2).count(),
        3,
        "all alive"
    );
    // And a new attach works again, its address from etcd.
    let port = lab.hosts[0].attach(&late, "blue", &[]);
    // .1, .2 and .3 are held on hosts A, B and C: host C's restarted daemon took its port
    // back, and claimed its address again.
    assert_eq!(jstr(&port, "ip"), "10.10.0.4/24", "{port}");
}

/// Concurrent creates of one name on two hosts: exactly one wins, the other is told it exists.
#[test]
fn racing_creates_of_one_network_have_one_winner() {
    let (lab, _etcd) = cluster_lab(&["race-a", "race-b"]);
    for round in 0..5u32 {
        let name = format!("n{round}");
        let vni_a = (1000 + 2 * round).to_string();
        let vni_b = (1001 + 2 * round).to_string();
        let subnet = format!("10.{}.0.0/24", 50 + round);
        let run = |h: &Host, vni: &str| {
            let mut c = Command::new(VSWITCH);
            c.arg("--socket").arg(&h.socket).args([
                "network", "create", &name, "--vni", vni, "--subnet", &subnet,
            ]);
            c
        };
        let a = Bg::spawn(&mut run(&lab.hosts[0], &vni_a));
        let b = Bg::spawn(&mut run(&lab.hosts[1], &vni_b));
        let ra = a.finish(Duration::from_secs(20));
        let rb = b.finish(Duration::from_secs(20));
        let wins = [&ra, &rb].iter().filter(|r| r.status.success()).count();
        assert_eq!(wins, 1, "round {round}: a {ra:?}, b {rb:?}");
        let loser = if ra.status.success() { &rb } else { &ra };
        assert!(
            loser
                .err
                .join("\n")
                .contains(&format!("a network named '{name}' already exists")),
            "round {round}: {loser:?}"
        );
        for h in &lab.hosts {
            eventually(
                &format!("{name} on {}", h.label),
                Duration::from_secs(3),
                &lab,
                || {
                    let v: Value = h.json(&["network", "inspect", &name]);
                    v["vni"].as_u64().map(|_| ())
                },
            );
        }
    }
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    require_tool("openssl", "openssl");
    let out = run_cmd(
        Command::new("openssl").current_dir(dir).args(args),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        stderr_of(&out)
    );
}

/// A CA, a server certificate for etcd's underlay address and a client certificate, in `dir`.
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).expect("cert dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend_from_slice(&ec);
    ca.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vswitch test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (who, ext) in [
        (
            "server",
            format!("subjectAltName=IP:{ETCD_IP}\nextendedKeyUsage=serverAuth\n"),
        ),
        ("client", "extendedKeyUsage=clientAuth\n".to_string()),
    ] {
        std::fs::write(dir.join(format!("{who}.ext")), ext).expect("ext file");
        let mut req = vec!["req"];
        req.extend_from_slice(&ec);
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let pem = format!("{who}.pem");
        let extfile = format!("{who}.ext");
        let subj = format!("/CN=vswitch test {who}");
        req.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ],
        );
    }
}

/// TLS to etcd with client certificates: with them, two hosts form a cluster; without a client
/// certificate, or without TLS, the daemon refuses to start and names the store.
#[test]
fn cluster_over_tls_with_client_certificates() {
    let mut lab = Lab::new(2);
    let certs = lab.dir.join("certs");
    make_certs(&certs);
    let etcd_ns = lab.underlay_node("etcd", ETCD_IP);
    let _etcd = Etcd::start(
        &etcd_ns,
        &lab.dir.join("etcd"),
        Some((
            &certs.join("server.pem"),
            &certs.join("server.key"),
            &certs.join("ca.pem"),
        )),
    );
    let path = |f: &str| certs.join(f).to_string_lossy().into_owned();
    for (i, name) in ["tls-a", "tls-b"].iter().enumerate() {
        let mut args = cluster_args(&lab.hosts[i], name);
        for (flag, file) in [
            ("--store-ca", "ca.pem"),
            ("--store-cert", "client.pem"),
            ("--store-key", "client.key"),
        ] {
            args.push(flag.into());
            args.push(path(file));
        }
        lab.hosts[i].start(&args);
    }
    eventually(
        "both hosts alive over TLS",
        Duration::from_secs(3),
        &lab,
        || (hosts(&lab.hosts[1]).iter().filter(|h| h.2).count() == 2).then_some(()),
    );
    lab.hosts[0].create_network("tls", 300, "10.30.0.0/24", &["--gateway", "10.30.0.254"]);
    eventually(
        "network tls on host B",
        Duration::from_secs(3),
        &lab,
        || network_names(&lab.hosts[1]).contains("tls").then_some(()),
    );
    let store = &lab.hosts[1].json(&["stats"])["store"];
    assert!(
        jstr(store, "location").contains("https://192.0.2.200:2379"),
        "{store}"
    );

    let other = lab.dir.join("other");
    let start = |extra: &[String]| {
        let mut c = ns_cmd(&lab.hosts[1].ns.name, VSWITCH);
        c.arg("--socket")
            .arg(other.join("sock"))
            .args([
                "daemon",
                "--listen",
                "192.0.2.2",
                "--port",
                "4790",
                "--store",
                STORE,
            ])
            .args(["--name", "tls-c", "--state-dir"])
            .arg(other.join("state"))
            .args(extra);
        run_cmd(&mut c, Duration::from_secs(20))
    };
    // Without TLS at all.
    let plain = start(&[]);
    assert_eq!(plain.status.code(), Some(1), "{}", stderr_of(&plain));
    assert!(
        stderr_of(&plain).contains(STORE_NAME) && stderr_of(&plain).contains("unreachable"),
        "{}",
        stderr_of(&plain)
    );
    // TLS, but no client certificate: etcd refuses the handshake.
    let anonymous = start(&["--store-ca".into(), path("ca.pem")]);
    assert_eq!(
        anonymous.status.code(),
        Some(1),
        "{}",
        stderr_of(&anonymous)
    );
    assert!(
        stderr_of(&anonymous).contains("etcd at https://192.0.2.200:2379"),
        "{}",
        stderr_of(&anonymous)
    );
    eprintln!(
        "refused without TLS: {}refused without a client certificate: {}",
        stderr_of(&plain),
        stderr_of(&anonymous)
    );
    // Half of a client identity is a usage error.
    let half = start(&[
        "--store-ca".into(),
        path("ca.pem"),
        "--store-cert".into(),
        path("client.pem"),
    ]);
    assert_eq!(half.status.code(), Some(2), "{}", stderr_of(&half));
    assert!(
        stderr_of(&half).contains("--store-key"),
        "{}",
        stderr_of(&half)
    );
}

/// Without `--store`, `host ls` lists just this host (named after the kernel's hostname by
/// default) and `stats` shows the file store.
#[test]
fn without_a_store_host_ls_is_this_host_and_stats_shows_the_state_dir() {
    let mut lab = Lab::new(1);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string();
    let want = BTreeSet::from([(hostname, "192.0.2.1:4789".to_string(), true, true)]);
    assert_eq!(hosts(&lab.hosts[0]), want);
    let store = &lab.hosts[0].json(&["stats"])["store"];
    assert_eq!(store["backend"], "file", "{store}");
    assert_eq!(store["connected"], true, "{store}");
    assert!(store["last_error"].is_null(), "{store}");
    assert!(
        jstr(store, "location").contains(&lab.hosts[0].state.to_string_lossy().into_owned()),
        "{store}"
    );
    let text = lab.hosts[0].ok(&["stats"]);
    assert!(text.contains("store: file state dir"), "{text}");
    // `inspect` lists this host's endpoints.
    lab.hosts[0].create_network("blue", 100, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
    let c = lab.netns("c");
    lab.hosts[0].attach(&c, "blue", &["--ip", "10.10.0.7/24"]);
    let detail = lab.hosts[0].json(&["network", "inspect", "blue"]);
    let e = &detail["endpoints"][0];
    assert_eq!(
        (
            jstr(e, "host"),
            jstr(e, "netns"),
            jstr(e, "ifname"),
            jstr(e, "ip")
        ),
        (
            want.first().expect("me").0.clone(),
            c.clone(),
            "eth0".into(),
            "10.10.0.7".into()
        ),
        "{detail}"
    );
    assert_eq!(
        detail["endpoints"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
}

/// Addresses come from etcd in cluster mode: ten concurrent attaches without `--ip`, spread
/// over three hosts, get ten distinct addresses; an `--ip` held on another host is refused and
/// the holder named; detach gives the address back.
#[test]
fn concurrent_attaches_on_three_hosts_get_distinct_addresses() {
    let names = ["lease-a", "lease-b", "lease-c"];
    let (lab, _etcd) = cluster_lab(&names);
    lab.hosts[0].create_network("blue", 100, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
    for h in &lab.hosts {
        eventually(
            &format!("blue on {}", h.label),
            Duration::from_secs(3),
            &lab,
            || network_names(h).contains("blue").then_some(()),
        );
    }
    let containers: Vec<(usize, String)> = (0..10)
        .map(|k| (k % 3, lab.netns(&format!("l{k}"))))
        .collect();
    let running: Vec<Bg> = containers
        .iter()
        .map(|(h, ns)| {
            let mut c = Command::new(VSWITCH);
            c.arg("--socket").arg(&lab.hosts[*h].socket).args([
                "attach",
                ns,
                "--network",
                "blue",
                "--json",
            ]);
            Bg::spawn(&mut c)
        })
        .collect();
    let mut ips = BTreeSet::new();
    let mut by_ns = Vec::new();
    for (bg, (h, ns)) in running.into_iter().zip(&containers) {
        let r = bg.finish(Duration::from_secs(60));
        assert!(
            r.status.success(),
            "attach {ns} on host {h}: {r:?}\n{}",
            lab.logs()
        );
        let port: Value = serde_json::from_str(&r.out.join("\n")).expect("attach --json");
        let ip = jstr(&port, "ip");
        assert_eq!(addrs4(ns, "eth0"), vec![ip.clone()], "{ns} has its address");
        ips.insert(ip.clone());
        by_ns.push((*h, ns.clone(), ip));
    }
    assert_eq!(ips.len(), 10, "ten attaches, ten addresses: {ips:?}");
    // Every host's `inspect` lists every endpoint of the cluster: host, netns, ifname, MAC, IP.
    for h in &lab.hosts {
        let detail = h.json(&["network", "inspect", "blue"]);
        let endpoints: BTreeSet<(String, String, String, String)> = detail["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("inspect has no endpoints: {detail}"))
            .iter()
            .map(|e| {
                assert!(jstr(e, "mac").contains(':'), "{e}");
                (
                    jstr(e, "host"),
                    jstr(e, "netns"),
                    jstr(e, "ifname"),
                    jstr(e, "ip"),
                )
            })
            .collect();
        let want: BTreeSet<_> = by_ns
            .iter()
            .map(|(i, ns, ip)| {
                let bare = ip.split('/').next().expect("ip").to_string();
                (names[*i].to_string(), ns.clone(), "eth0".to_string(), bare)
            })
            .collect();
        assert_eq!(endpoints, want, "inspect on {}", h.label);
        assert_eq!(
            detail["ports"].as_array().map(Vec::len),
            Some(
                by_ns
                    .iter()
                    .filter(|x| lab.hosts[x.0].label == h.label)
                    .count()
            )
        );
    }
    assert!(!ips.contains("10.10.0.254/24"), "never the gateway");

    // Containers on different hosts, with addresses handed out by etcd, reach each other.
    let (_, ns_a, _) = by_ns
        .iter()
        .find(|x| x.0 == 0)
        .expect("one on host A")
        .clone();
    let (_, _, ip_b) = by_ns
        .iter()
        .find(|x| x.0 == 1)
        .expect("one on host B")
        .clone();
    lab.assert_ping(&ns_a, ip_b.split('/').next().expect("ip"));

    // An address held on host A cannot be taken on host C; after detach it can.
    let (_, held_ns, held_ip) = by_ns.iter().find(|x| x.0 == 0).expect("on A").clone();
    let bare = held_ip.split('/').next().expect("ip").to_string();
    let extra = lab.netns("lx");
    let refused = lab.hosts[2].vs(&["attach", &extra, "--network", "blue", "--ip", &bare]);
    assert!(!refused.status.success());
    let err = stderr_of(&refused);
    assert!(
        err.contains(&format!(
            "{bare} is already taken on network 'blue' by netns {held_ns} on host lease-a"
        )),
        "{err}"
    );
    lab.hosts[0].ok(&["detach", &held_ns]);
    let port = lab.hosts[2].attach(&extra, "blue", &["--ip", &bare]);
    assert_eq!(jstr(&port, "ip"), held_ip);

    // `network rm` is refused while any host has ports on it, and names them. Host A's own
    // ports are detached first, so only the other hosts' remain.
    for (h, ns, _) in &by_ns {
        if *h == 0 && *ns != held_ns {
            lab.hosts[0].ok(&["detach", ns]);
        }
    }
    let rm = lab.hosts[0].vs(&["network", "rm", "blue"]);
    assert!(!rm.status.success());
    let err = stderr_of(&rm);
    let (_, ns_b, _) = by_ns.iter().find(|x| x.0 == 1).expect("on B");
    assert!(
        err.contains("network 'blue' still has ports")
            && err.contains(&format!("{ns_b} (host lease-b)"))
            && err.contains(&format!("{extra} (host lease-c)")),
        "{err}"
    );
    assert!(
        network_names(&lab.hosts[1]).contains("blue"),
        "a refused rm changes nothing"
    );
}

/// A host that dies without a word (SIGKILL) leaves the others' peers and host list once its
/// lease runs out (TTL 10 s), and its addresses are free again.
#[test]
fn a_killed_host_is_gone_after_its_lease_expires() {
    let (lab, _etcd) = cluster_lab(&["ttl-a", "ttl-b"]);
    lab.hosts[0].create_network("blue", 100, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
    eventually("blue on host B", Duration::from_secs(3), &lab, || {
        network_names(&lab.hosts[1]).contains("blue").then_some(())
    });
    let cb = lab.netns("cb");
    let port = lab.hosts[1].attach(&cb, "blue", &[]);
    assert_eq!(jstr(&port, "ip"), "10.10.0.1/24");
    eventually(
        "host B is host A's peer",
        Duration::from_secs(3),
        &lab,
        || {
            peer_addrs(&lab.hosts[0].json(&["peer", "ls"]))
                .contains("192.0.2.2:4789")
                .then_some(())
        },
    );
    // Host A has host B's endpoint as a static entry, and floods blue to host B only.
    let mac_b = jstr(&port, "mac");
    wait_static(&lab, 0, &mac_b, 1, Duration::from_secs(3));
    assert_eq!(flood_of(&lab.hosts[0], "blue"), BTreeSet::from([vtep(1)]));
    let pid = lab.hosts[1].pid().expect("host B's daemon runs") as libc::pid_t;
    // SAFETY: kill(2) on the PID of the daemon this test started and has not reaped.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let t = Instant::now();
    eventually(
        "host B gone from host A's peers after the TTL",
        Duration::from_secs(20),
        &lab,
        || {
            (!peer_addrs(&lab.hosts[0].json(&["peer", "ls"])).contains("192.0.2.2:4789"))
                .then_some(())
        },
    );
    assert!(
        t.elapsed() >= Duration::from_secs(5),
        "host B left after {:?}: before its lease could expire?",
        t.elapsed()
    );
    assert!(hosts(&lab.hosts[0]).contains(&(
        "ttl-b".into(),
        "192.0.2.2:4789".into(),
        false,
        false
    )));
    // ... and from its FDB, its flood lists and the store's endpoint count.
    assert_eq!(fdb_of(&lab.hosts[0], "blue", &mac_b), []);
    assert_eq!(flood_of(&lab.hosts[0], "blue"), BTreeSet::new());
    assert_eq!(lab.hosts[0].json(&["stats"])["store"]["endpoints"], 0);
    // Its address expired with its lease.
    let ca = lab.netns("ca");
    let port = lab.hosts[0].attach(&ca, "blue", &[]);
    assert_eq!(
        jstr(&port, "ip"),
        "10.10.0.1/24",
        "host B's address is free again"
    );
}

/// Encrypted networks in cluster mode: the key never goes to etcd, so a host without it shows
/// the network but refuses to attach, naming the fix; the same `network create` with the key
/// installs it there, and sealed traffic flows.
#[test]
fn an_encrypted_network_needs_its_key_on_each_host() {
    let (lab, etcd) = cluster_lab(&["sec-a", "sec-b"]);
    let key = lab.dir.join("net.key");
    let key_s = key.to_string_lossy().into_owned();
    lab.hosts[0].ok(&["key", "generate", "--out", &key_s]);
    let create = [
        "network",
        "create",
        "sec",
        "--vni",
        "300",
        "--subnet",
        "10.30.0.0/24",
        "--encrypted",
        "--key-file",
        &key_s,
        "--gateway",
        "10.30.0.254",
    ];
    lab.hosts[0].ok(&create);
    eventually("sec listed on host B", Duration::from_secs(3), &lab, || {
        network_names(&lab.hosts[1]).contains("sec").then_some(())
    });
    // The key is in neither the network record nor anywhere under the prefix.
    require_tool("etcdctl", "etcd-client");
    let key_hex = std::fs::read_to_string(&key)
        .expect("key")
        .trim()
        .to_string();
    let dump = run_cmd(
        ns_cmd(&etcd.ns, "etcdctl").env("ETCDCTL_API", "3").args([
            "--endpoints",
            "http://192.0.2.200:2379",
            "get",
            "--prefix",
            "/vswitch/",
        ]),
        Duration::from_secs(20),
    );
    assert!(dump.status.success(), "etcdctl: {}", stderr_of(&dump));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("/vswitch/networks/sec"), "{dump}");
    assert!(!dump.contains(&key_hex), "the key is in etcd: {dump}");

    let cb = lab.netns("cb");
    let refused = lab.hosts[1].vs(&["attach", &cb, "--network", "sec"]);
    assert!(!refused.status.success());
    let err = stderr_of(&refused);
    assert!(
        err.contains("network 'sec' is encrypted and this host has no key for it")
            && err.contains("--key-file"),
        "{err}"
    );
    // A different definition is refused as existing; the same one installs the key.
    let mut wrong = create.to_vec();
    wrong[4] = "301";
    let out = lab.hosts[1].vs(&wrong);
    assert!(
        stderr_of(&out).contains("a network named 'sec' already exists"),
        "{}",
        stderr_of(&out)
    );
    // Another key is refused: its check value is not the network's.
    let other = lab.dir.join("other.key");
    let other_s = other.to_string_lossy().into_owned();
    lab.hosts[1].ok(&["key", "generate", "--out", &other_s]);
    let mut with_other = create.to_vec();
    with_other[9] = &other_s;
    let out = lab.hosts[1].vs(&with_other);
    assert!(
        !out.status.success() && stderr_of(&out).contains("is not the network's key"),
        "{}",
        stderr_of(&out)
    );
    lab.hosts[1].ok(&create);

    let ca = lab.netns("ca");
    lab.hosts[0].attach(&ca, "sec", &["--ip", "10.30.0.1/24"]);
    lab.hosts[1].attach(&cb, "sec", &["--ip", "10.30.0.2/24"]);
    lab.assert_ping(&ca, "10.30.0.2");
    let sealed = lab.hosts[1].json(&["stats"])["networks"][0]["seal"]["opened"]
        .as_u64()
        .unwrap_or(0);
    assert!(sealed > 0, "host B opened no sealed datagram");
}

// ---- endpoint advertisements --------------------------------------------------------------

/// Counts VXLAN datagrams on `ifname` (both directions) whose inner frame is ARP, until the
/// stop file appears; prints `ready`, then the count.
const PY_VXLAN_ARP: &str = r#"
import os, socket, sys, time
ifname, stop = sys.argv[1:3]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 3))
s.settimeout(0.05)
print('ready', flush=True)
end = time.time() + 120
n = 0
while time.time() < end and not os.path.exists(stop):
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if len(data) < 64 or data[12:14] != b'\x08\x00' or data[23] != 17: continue
    udp = 14 + (data[14] & 0x0f) * 4
    if int.from_bytes(data[udp + 2:udp + 4], 'big') != 4789: continue
    inner = udp + 16
    if data[inner + 12:inner + 14] == b'\x08\x06': n += 1
print(n, flush=True)
"#;

/// A running count of VXLAN-carried ARP on one host's underlay interface.
struct ArpOnUnderlay {
    bg: Bg,
    stop: std::path::PathBuf,
}

impl ArpOnUnderlay {
    fn start(h: &Host) -> ArpOnUnderlay {
        let stop = std::env::temp_dir().join(format!("{}.arpstop", unique_prefix()));
        let stop_s = stop.to_string_lossy().into_owned();
        let mut bg = Bg::spawn(&mut py_cmd(
            &h.ns.name,
            PY_VXLAN_ARP,
            &[UNDERLAY_DEV, &stop_s],
        ));
        bg.wait_for("ready", Duration::from_secs(15));
        ArpOnUnderlay { bg, stop }
    }

    fn count(self) -> u64 {
        thread::sleep(Duration::from_millis(300));
        std::fs::write(&self.stop, b"").expect("stop file");
        let r = self.bg.finish(Duration::from_secs(30));
        let _ = std::fs::remove_file(&self.stop);
        r.out
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("ARP counter printed no count: {:?} {:?}", r.out, r.err))
    }
}

/// `fdb --json` rows of network `net` for `mac`: (kind, vtep, static).
fn fdb_of(h: &Host, net: &str, mac: &str) -> Vec<(String, Option<String>, bool)> {
    h.json(&["fdb", "--network", net])
        .as_array()
        .expect("fdb --json is an array")
        .iter()
        .filter(|r| jstr(r, "mac") == mac)
        .map(|r| {
            (
                jstr(r, "kind"),
                r["vtep"].as_str().map(str::to_string),
                r["static"].as_bool().expect("static is a bool"),
            )
        })
        .collect()
}

/// Where host `h` floods network `net`, from `network inspect --json`.
fn flood_of(h: &Host, net: &str) -> BTreeSet<String> {
    h.json(&["network", "inspect", net])["flood"]
        .as_array()
        .expect("inspect --json has a flood list")
        .iter()
        .map(|v| v.as_str().expect("a VTEP").to_string())
        .collect()
}

fn vtep(i: usize) -> String {
    format!("192.0.2.{}:4789", i + 1)
}

/// Waits until host `h` has `mac` as a static entry at host `at`'s VTEP.
fn wait_static(lab: &Lab, h: usize, mac: &str, at: usize, within: Duration) {
    let want = vec![("vtep".to_string(), Some(vtep(at)), true)];
    eventually(
        &format!(
            "host {} has {mac} static at {}",
            lab.hosts[h].label,
            vtep(at)
        ),
        within,
        lab,
        || (fdb_of(&lab.hosts[h], "blue", mac) == want).then_some(()),
    );
}

/// Three hosts, network blue, container `c<i>` with 10.10.0.(i+1) on host i; returns the
/// namespaces and the containers' MACs once every host has every other's endpoint.
fn advertised_lab(names: &[&str]) -> (Lab, Etcd, Vec<String>, Vec<String>) {
    let (lab, etcd) = cluster_lab(names);
    lab.hosts[0].create_network("blue", 100, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
    let mut ns = Vec::new();
    let mut macs = Vec::new();
    for (i, h) in lab.hosts.iter().enumerate() {
        eventually(
            &format!("blue on {}", h.label),
            Duration::from_secs(3),
            &lab,
            || network_names(h).contains("blue").then_some(()),
        );
        let c = lab.netns(&format!("c{i}"));
        let port = h.attach(&c, "blue", &["--ip", &format!("10.10.0.{}/24", i + 1)]);
        macs.push(jstr(&port, "mac"));
        ns.push(c);
    }
    for h in 0..names.len() {
        for (at, mac) in macs.iter().enumerate().filter(|(at, _)| *at != h) {
            wait_static(&lab, h, mac, at, Duration::from_secs(3));
        }
    }
    (lab, etcd, ns, macs)
}

/// After warm-up (every host has the others' endpoints), a ping between containers on two
/// hosts puts no ARP on the underlay (the switches answer it), and the first unicast frame
/// to a container on another host goes to that host alone, although a third host has an
/// endpoint on the network too. An ARP for an address nobody advertises still crosses (the
/// counter sees VXLAN-carried ARP, so its zeros mean something).
#[test]
fn advertised_endpoints_keep_arp_and_unicast_floods_off_the_underlay() {
    let (lab, _etcd, ns, macs) = advertised_lab(&["adv-a", "adv-b", "adv-c"]);
    for h in 0..3 {
        let others: BTreeSet<String> = (0..3).filter(|&j| j != h).map(vtep).collect();
        assert_eq!(flood_of(&lab.hosts[h], "blue"), others);
    }
    let counters: Vec<ArpOnUnderlay> = lab.hosts.iter().map(ArpOnUnderlay::start).collect();
    for c in &ns[..2] {
        sh_ok(&["ip", "-n", c, "neigh", "flush", "all"]);
    }
    assert_eq!(ping(&ns[0], "10.10.0.2", 3), 3, "c0 -> c1\n{}", lab.logs());
    assert_eq!(ping(&ns[1], "10.10.0.1", 3), 3, "c1 -> c0\n{}", lab.logs());
    assert_eq!(neigh_mac(&ns[0], "10.10.0.2").as_deref(), Some(&*macs[1]));
    let arps: Vec<u64> = counters.into_iter().map(ArpOnUnderlay::count).collect();
    assert_eq!(
        arps,
        [0, 0, 0],
        "VXLAN-carried ARP on the underlay of A, B, C"
    );
    let answered = |h: &Host| h.json(&["network", "inspect", "blue"])["arp_answered"].as_u64();
    assert!(
        answered(&lab.hosts[0]).unwrap_or(0) >= 1,
        "A answered c0's ARP"
    );
    assert!(
        answered(&lab.hosts[1]).unwrap_or(0) >= 1,
        "B answered c1's ARP"
    );

    // The first frame to c2's MAC (never sent to before): to C alone, B sees no copy.
    let mark = marker("first-unicast");
    let on_b = count_frames(
        &lab.hosts[1].ns.name,
        UNDERLAY_DEV,
        10.0,
        None,
        Some(&mark),
        None,
    );
    let on_c = count_frames(
        &lab.hosts[2].ns.name,
        UNDERLAY_DEV,
        10.0,
        None,
        Some(&mark),
        None,
    );
    send_frame(&ns[0], "eth0", &macs[2], 0x88b5, &mark);
    assert_eq!(
        on_b.stop_after(Duration::from_millis(500)),
        0,
        "B got a copy"
    );
    assert_eq!(
        on_c.stop_after(Duration::from_millis(100)),
        1,
        "C got it once"
    );

    // A static peer (`peer add`, e.g. a kernel VTEP) advertises nothing: it gets every flood.
    lab.hosts[0].ok(&["peer", "add", "192.0.2.77"]);
    assert_eq!(
        flood_of(&lab.hosts[0], "blue"),
        BTreeSet::from([vtep(1), vtep(2), "192.0.2.77:4789".to_string()])
    );
    lab.hosts[0].ok(&["peer", "rm", "192.0.2.77"]);
    assert_eq!(
        flood_of(&lab.hosts[0], "blue"),
        BTreeSet::from([vtep(1), vtep(2)])
    );

    // The control: an address nobody advertises is asked for across the underlay.
    let counter = ArpOnUnderlay::start(&lab.hosts[1]);
    assert_eq!(ping(&ns[0], "10.10.0.99", 1), 0);
    assert!(counter.count() > 0, "the counter sees VXLAN-carried ARP");
}

/// Sends an ICMP echo every 50 ms for `secs` seconds; prints `reply UNIX_TIME` per reply.
const PY_PING_STREAM: &str = r#"
import os, socket, struct, sys, time
dst, secs = sys.argv[1], float(sys.argv[2])
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
ident = (os.getpid() * 7919) & 0xffff
end = time.time() + secs
seq = 0
next_send = 0
while time.time() < end:
    if time.time() >= next_send:
        payload = b'vse-move' + bytes(48)
        hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq & 0xffff)
        try:
            s.sendto(struct.pack('!BBHHH', 8, 0, csum(hdr + payload), ident, seq & 0xffff) + payload, (dst, 0))
        except OSError:
            pass
        seq += 1
        next_send = time.time() + 0.05
    try:
        data, addr = s.recvfrom(4096)
    except BlockingIOError:
        time.sleep(0.005)
        continue
    ihl = (data[0] & 0xf) * 4
    if addr[0] == dst and len(data) >= ihl + 8:
        t, c, _, i, q = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and i == ident:
            print('reply %.6f' % time.time(), flush=True)
print('done', flush=True)
"#;

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A container detached on host B and attached on host C with the same MAC and address:
/// every host's FDB follows within 1 s, and a ping stream from host A resumes within 1 s of
/// the attach (no ARP needed: the address keeps its MAC).
#[test]
fn a_container_moved_to_another_host_is_reached_within_a_second() {
    let (lab, _etcd, ns, macs) = advertised_lab(&["mv-a", "mv-b", "mv-c"]);
    lab.assert_ping(&ns[0], "10.10.0.2");
    let stream = Bg::spawn(&mut py_cmd(&ns[0], PY_PING_STREAM, &["10.10.0.2", "6"]));
    thread::sleep(Duration::from_millis(700));
    lab.hosts[1].ok(&["detach", &ns[1], "--network", "blue"]);
    let moved = lab.netns("moved");
    lab.hosts[2].attach(&moved, "blue", &["--ip", "10.10.0.2/24", "--mac", &macs[1]]);
    let attached = unix_now();
    let t = Instant::now();
    wait_static(&lab, 0, &macs[1], 2, Duration::from_secs(1));
    wait_static(
        &lab,
        1,
        &macs[1],
        2,
        Duration::from_secs(1).saturating_sub(t.elapsed()),
    );
    let r = stream.finish(Duration::from_secs(20));
    let replies: Vec<f64> = r
        .out
        .iter()
        .filter_map(|l| l.strip_prefix("reply ")?.parse().ok())
        .collect();
    assert!(
        replies.iter().any(|&t| t < attached),
        "the stream worked before the move: {:?}",
        r.out
    );
    let resumed = replies
        .iter()
        .find(|&&t| t > attached)
        .unwrap_or_else(|| panic!("no reply after the move: {:?}\n{}", r.out, lab.logs()));
    eprintln!(
        "moved container: first reply {:.3} s after the attach returned",
        resumed - attached
    );
    assert!(
        resumed - attached <= 1.0,
        "traffic resumed {:.3} s after the attach",
        resumed - attached
    );
    // The ARP answer follows too: c0 asks again and gets the same MAC, from host A.
    sh_ok(&["ip", "-n", &ns[0], "neigh", "flush", "all"]);
    assert_eq!(ping(&ns[0], "10.10.0.2", 1), 1);
    assert_eq!(neigh_mac(&ns[0], "10.10.0.2").as_deref(), Some(&*macs[1]));
    assert_eq!(flood_of(&lab.hosts[0], "blue"), BTreeSet::from([vtep(2)]));
}

/// Live restore in cluster mode: a host killed and restarted takes its container's port back
/// and claims its address again under its new lease (one claim, not two), so the address stays
/// taken after the old lease expires and traffic between hosts flows again.
#[test]
fn a_restarted_host_takes_its_ports_and_their_addresses_back() {
    let (mut lab, _etcd) = cluster_lab(&["rs-a", "rs-b"]);
    lab.hosts[0].create_network("blue", 100, "10.10.0.0/24", &["--gateway", "10.10.0.254"]);
    eventually("blue on host B", Duration::from_secs(3), &lab, || {
        network_names(&lab.hosts[1]).contains("blue").then_some(())
    });
    let ca = lab.netns("ca");
    let cb = lab.netns("cb");
    assert_eq!(
        jstr(&lab.hosts[0].attach(&ca, "blue", &[]), "ip"),
        "10.10.0.1/24"
    );
    assert_eq!(
        jstr(&lab.hosts[1].attach(&cb, "blue", &[]), "ip"),
        "10.10.0.2/24"
    );
    lab.assert_ping(&cb, "10.10.0.1");

    lab.hosts[0].kill();
    lab.hosts[0].respawn();
    let stats = lab.hosts[0].json(&["stats"]);
    assert_eq!(stats["restore"]["readopted"].as_u64(), Some(1), "{stats}");
    lab.assert_ping(&cb, "10.10.0.1");
    // Past the killed run's lease (TTL 10 s): the claim lives under the new one.
    std::thread::sleep(Duration::from_secs(11));
    let claims = |h: &Host| -> Vec<(String, String)> {
        let detail = h.json(&["network", "inspect", "blue"]);
        detail["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("inspect has no endpoints: {detail}"))
            .iter()
            .map(|e| (jstr(e, "host"), jstr(e, "ip")))
            .collect()
    };
    assert_eq!(
        claims(&lab.hosts[1]),
        vec![
            ("rs-a".to_string(), "10.10.0.1".to_string()),
            ("rs-b".to_string(), "10.10.0.2".to_string())
        ]
    );
    let cc = lab.netns("cc");
    assert_eq!(
        jstr(&lab.hosts[1].attach(&cc, "blue", &[]), "ip"),
        "10.10.0.3/24",
        "the taken-back port's address stays taken"
    );
    lab.assert_ping(&cb, "10.10.0.1");
}
