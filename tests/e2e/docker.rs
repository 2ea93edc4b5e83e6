//! `docker network create -d vswitch` with real dockerd: one dockerd per simulated host, in the
//! host's network namespace and a mount namespace of its own, where a tmpfs over /run holds the
//! plugin directory (a bind mount of the host's temp dir, where its vswitch daemon serves the
//! plugin socket): the machine's real /run is never touched. Images come from `docker import`
//! of a busybox rootfs, so no registry is needed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const IMAGE: &str = "vswitch-busybox:1";

/// A dockerd on one lab host. Dropped: its containers removed, then it is stopped.
struct Dockerd {
    sock: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    netns: Vec<Netns>,
}

impl Dockerd {
    /// Starts dockerd in host `h`'s namespace, finding the vswitch plugin in `plugins`.
    fn start(h: &Host, plugins: &Path, rootfs: &Path) -> Dockerd {
        require_tool("dockerd", "docker.io");
        let dir = h.dir.join("docker");
        fs::create_dir_all(&dir).expect("docker dir");
        let sock = dir.join("d.sock");
        let log = dir.join("dockerd.log");
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins && \
             mount --bind {plugins} /run/docker/plugins && \
             exec dockerd --iptables=false --ip6tables=false --bridge=none \
             --storage-driver=vfs --data-root {dir}/data --exec-root {dir}/exec \
             --pidfile {dir}/dockerd.pid -H unix://{sock}",
            plugins = plugins.display(),
            dir = dir.display(),
            sock = sock.display(),
        );
        // nsenter, not `ip netns exec` (which remounts /sys and hides the cgroup mounts).
        let out = fs::File::create(&log).expect("dockerd log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", h.ns.name))
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn dockerd");
        let d = Dockerd {
            sock,
            log,
            child: Some(child),
            netns: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up in 60 s\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let import = format!(
            "tar -C {} -c . | docker -H unix://{} import - {IMAGE}",
            rootfs.display(),
            d.sock.display()
        );
        let out = run_cmd(
            Command::new("sh").args(["-c", &import]),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "docker import: {out:?}");
        d
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
        let mut c = Command::new("docker");
        c.arg("-H").arg(format!("unix://{}", self.sock.display()));
        run_cmd(c.args(args), Duration::from_secs(60))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n--- dockerd log (tail) ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log_text(), 30)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs a container on `network` (at `ip`, or where the IPAM puts it) and names its
    /// namespace `<prefix><tag>` for the helpers.
    fn run(&mut self, lab: &Lab, tag: &str, network: &str, ip: Option<&str>) -> String {
        let mut args = vec!["run", "-d", "--name", tag, "--network", network];
        if let Some(ip) = ip {
            args.extend(["--ip", ip]);
        }
        args.extend([IMAGE, "sleep", "600"]);
        self.ok(&args);
        self.named(lab, tag)
    }

    /// Names a running container's namespace `<prefix><tag>`.
    fn named(&mut self, lab: &Lab, tag: &str) -> String {
        let pid = self.ok(&["inspect", "-f", "{{.State.Pid}}", tag]);
        let name = format!("{}{tag}", lab.prefix);
        let _ = sh(&["ip", "netns", "delete", &name]);
        sh_ok(&["ip", "netns", "attach", &name, &pid]);
        self.netns.push(Netns { name: name.clone() });
        name
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.netns.clear();
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(20));
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A busybox rootfs (Debian's busybox-static) to `docker import`.
fn rootfs(lab: &Lab) -> PathBuf {
    let busybox = which("busybox").unwrap_or_else(|| {
        panic!("needs busybox (Debian package busybox-static); scripts/test.sh installs it")
    });
    let root = lab.dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).expect("rootfs");
    fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    for tool in ["sh", "sleep", "ip", "ping", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).expect("symlink");
    }
    root
}

/// Two hosts, each with a vswitch daemon serving the plugin and a dockerd using it.
fn docker_lab() -> (Lab, Vec<Dockerd>) {
    start_docker_lab(Lab::new(2), |lab, i| lab.mesh_args(i))
}

fn start_docker_lab(
    mut lab: Lab,
    args: impl Fn(&Lab, usize) -> Vec<String>,
) -> (Lab, Vec<Dockerd>) {
    let root = rootfs(&lab);
    let mut dockerds = Vec::new();
    for i in 0..2 {
        let plugins = lab.hosts[i].dir.join("plugins");
        let mut args = args(&lab, i);
        args.push("--docker-plugin".into());
        args.push(plugins.join("vswitch.sock").display().to_string());
        lab.hosts[i].start(&args);
        dockerds.push(Dockerd::start(&lab.hosts[i], &plugins, &root));
    }
    (lab, dockerds)
}

fn create(d: &Dockerd, name: &str, vni: u32, extra: &[&str]) {
    let vni = format!("vni={vni}");
    let mut args = vec![
        "network",
        "create",
        "-d",
        "vswitch",
        "--ipam-driver",
        "vswitch",
        "--subnet",
        "10.10.0.0/24",
        "-o",
        &vni,
    ];
    args.extend_from_slice(extra);
    args.push(name);
    d.ok(&args);
}

#[test]
fn docker_containers_on_two_hosts() {
    let (lab, mut dockerds) = docker_lab();
    let key = lab.dir.join("red.key");
    let out = run_cmd(
        Command::new(VSWITCH)
            .args(["key", "generate", "--out"])
            .arg(&key),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "key generate: {out:?}");
    let enc = format!("encrypted={}", key.display());
    for d in &dockerds {
        create(d, "blue", 100, &[]);
        create(d, "red", 200, &["-o", &enc]);
    }
    // Docker's network is a vswitch network, encrypted as asked.
    let nets = lab.hosts[0].json(&["network", "ls"]);
    let enc_of = |vni: u64| {
        nets.as_array()
            .and_then(|a| a.iter().find(|n| n["vni"].as_u64() == Some(vni)))
            .map(|n| n["encrypted"].clone())
    };
    assert_eq!(enc_of(100), Some(false.into()), "{nets}");
    assert_eq!(enc_of(200), Some(true.into()), "{nets}");

    let [da, db] = &mut dockerds[..] else {
        unreachable!()
    };
    let a_blue = da.run(&lab, "ablue", "blue", Some("10.10.0.2"));
    let b_blue = db.run(&lab, "bblue", "blue", Some("10.10.0.3"));
    let a_red = da.run(&lab, "ared", "red", Some("10.10.0.2"));
    let b_red = db.run(&lab, "bred", "red", Some("10.10.0.3"));

    // Docker configured what the plugin handed it: the address, the gateway, the MTU.
    assert_eq!(addrs4(&a_blue, "eth0"), vec!["10.10.0.2/24".to_string()]);
    let routes = default_routes(&a_blue);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(
        routes[0]["gateway"].as_str(),
        Some("10.10.0.1"),
        "{routes:?}"
    );
    let port_mtu = lab.hosts[0]
        .json(&["network", "ls"])
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|n| n["vni"].as_u64() == Some(100))
                .and_then(|n| n["mtu"].as_u64())
        });
    assert_eq!(link(&a_blue, "eth0")["mtu"].as_u64(), port_mtu);

    lab.assert_ping(&a_blue, "10.10.0.3");
    lab.assert_ping(&a_red, "10.10.0.3");
    tcp_transfer(&a_blue, &b_blue, "10.10.0.3", 9300, 4 * 1024 * 1024);
    tcp_transfer(&a_red, &b_red, "10.10.0.3", 9301, 4 * 1024 * 1024);
    // The same address on both networks: each container reached its own network's peer.
    let mac = |ns: &str| {
        link(ns, "eth0")["address"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_neigh(&a_blue, "10.10.0.3", &mac(&b_blue));
    assert_neigh(&a_red, "10.10.0.3", &mac(&b_red));
    assert_ne!(mac(&b_blue), mac(&b_red));

    // A network with a container on it stays (Docker refuses before asking the driver).
    let rm = da.docker(&["network", "rm", "blue"]);
    assert!(!rm.status.success(), "network rm with a container attached");
    assert!(
        String::from_utf8_lossy(&rm.stderr).contains("active endpoints"),
        "{rm:?}"
    );
    // A user's mistake comes back with our message.
    let bad = da.docker(&[
        "network",
        "create",
        "-d",
        "vswitch",
        "--ipam-driver",
        "vswitch",
        "--subnet",
        "10.40.0.0/24",
        "green",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("needs a VNI: add -o vni=N"),
        "{bad:?}"
    );

    // Stop and start: the port goes with the container and comes back.
    da.ok(&["stop", "-t", "0", "ablue"]);
    let ports = |h: &Host| {
        h.json(&["network", "ls"]).as_array().map(|a| {
            a.iter()
                .map(|n| n["ports"].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
    };
    assert_eq!(ports(&lab.hosts[0]), Some(1), "only ared's port is left");
    da.ok(&["start", "ablue"]);
    let again = da.named(&lab, "ablue");
    lab.assert_ping(&again, "10.10.0.3");

    // Connect and disconnect: a second interface comes and goes, and its port with it.
    da.ok(&[
        "network",
        "create",
        "-d",
        "vswitch",
        "--ipam-driver",
        "vswitch",
        "--subnet",
        "10.40.0.0/24",
        "-o",
        "vni=400",
        "green",
    ]);
    da.ok(&["network", "connect", "green", "ablue"]);
    assert_eq!(addrs4(&again, "eth1"), vec!["10.40.0.2/24".to_string()]);
    assert_eq!(ports(&lab.hosts[0]), Some(3));
    da.ok(&["network", "disconnect", "green", "ablue"]);
    assert!(
        !links(&again).contains(&"eth1".to_string()),
        "{:?}",
        links(&again)
    );
    assert_eq!(ports(&lab.hosts[0]), Some(2));

    // With the containers gone, the networks go from vswitch too.
    for (d, gone) in [(&*da, ["ablue", "ared"]), (&*db, ["bblue", "bred"])] {
        d.ok(&["rm", "-f", gone[0], gone[1]]);
        d.ok(&["network", "rm", "blue", "red"]);
    }
    da.ok(&["network", "rm", "green"]);
    for h in &lab.hosts {
        assert_eq!(h.json(&["network", "ls"]), serde_json::json!([]));
    }
}

#[test]
fn docker_containers_stay_connected_across_a_vswitch_restart() {
    let (mut lab, mut dockerds) = docker_lab();
    // File-store mode: each host hands out addresses from its own range.
    for (d, range) in dockerds.iter().zip(["10.10.0.0/25", "10.10.0.128/25"]) {
        create(d, "blue", 100, &["--ip-range", range]);
    }
    let a1 = dockerds[0].run(&lab, "a1", "blue", None);
    let b1 = dockerds[1].run(&lab, "b1", "blue", None);
    assert_eq!(addrs4(&a1, "eth0"), vec!["10.10.0.2/24".to_string()]);
    assert_eq!(addrs4(&b1, "eth0"), vec!["10.10.0.129/24".to_string()]);
    lab.assert_ping(&a1, "10.10.0.129");

    // Docker moved and renamed the TAP; the daemon records where it went (inspect shows the
    // container's name for it), and a daemon killed with kill -9 is followed by one that finds
    // it there and serves it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let ifname = || {
        let nets = lab.hosts[0].json(&["network", "ls"]);
        let name = nets[0]["name"].as_str().unwrap_or_default().to_owned();
        lab.hosts[0].json(&["network", "inspect", &name])["ports"][0]["ifname"].clone()
    };
    while ifname() != "eth0" {
        assert!(
            std::time::Instant::now() < deadline,
            "never recorded: {}",
            ifname()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.hosts[0].kill();
    lab.hosts[0].respawn();
    let stats = lab.hosts[0].json(&["stats"]);
    assert_eq!(stats["restore"]["readopted"].as_u64(), Some(1), "{stats}");
    assert_eq!(stats["restore"]["dropped"].as_u64(), Some(0), "{stats}");
    lab.assert_ping(&a1, "10.10.0.129");
    lab.assert_ping(&b1, "10.10.0.2");

    // The restarted plugin serves the network Docker created before: a new container gets an
    // address no port holds, and leaving works for the port taken back.
    let a2 = dockerds[0].run(&lab, "a2", "blue", None);
    let ip = addrs4(&a2, "eth0");
    assert_eq!(
        ip,
        vec!["10.10.0.3/24".to_string()],
        "the gateway and 10.10.0.2 are held"
    );
    dockerds[0].ok(&["rm", "-f", "a1", "a2"]);
    let ports = lab.hosts[0].json(&["network", "ls"]);
    assert_eq!(ports[0]["ports"].as_u64(), Some(0), "{ports}");
}

#[test]
fn docker_networks_in_cluster_mode() {
    use crate::cluster::{Etcd, ETCD_IP, STORE};
    let lab = Lab::new(2);
    let etcd_ns = lab.underlay_node("etcd", ETCD_IP);
    let _etcd = Etcd::start(&etcd_ns, &lab.dir.join("etcd"), None);
    let (lab, mut dockerds) = start_docker_lab(lab, |lab, i| {
        let h = &lab.hosts[i];
        ["--listen", &h.ip, "--store", STORE, "--name", &h.label]
            .map(String::from)
            .to_vec()
    });
    // The same name on both hosts: one vswitch network, whichever Docker made it first.
    for d in &dockerds {
        create(d, "blue", 100, &["-o", "name=blue"]);
    }
    let a1 = dockerds[0].run(&lab, "a1", "blue", None);
    assert_eq!(addrs4(&a1, "eth0"), vec!["10.10.0.2/24".to_string()]);
    // Host B's IPAM sees host A's endpoint (from etcd) and skips its address.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.hosts[1].json(&["network", "inspect", "blue"])["endpoints"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(
            Instant::now() < deadline,
            "host B never saw host A's endpoint"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let b1 = dockerds[1].run(&lab, "b1", "blue", None);
    assert_eq!(addrs4(&b1, "eth0"), vec!["10.10.0.3/24".to_string()]);
    lab.assert_ping(&a1, "10.10.0.3");

    // With a1 gone, Docker on A has no container on blue, so it asks the driver to delete
    // it. Docker forgets its network whatever a driver answers (it only logs the answer);
    // vswitch refuses, as B's container is on the network, and B's container stays connected.
    dockerds[0].ok(&["rm", "-f", "a1"]);
    dockerds[0].ok(&["network", "rm", "blue"]);
    let log = lab.hosts[0].log_text();
    assert!(
        log.contains("DeleteNetwork: refused: vswitch: network 'blue'"),
        "{log}"
    );
    assert_eq!(
        lab.hosts[1].json(&["network", "inspect", "blue"])["name"],
        "blue"
    );
    let b2 = dockerds[1].run(&lab, "b2", "blue", None);
    lab.assert_ping(&b2, "10.10.0.3");
    dockerds[1].ok(&["rm", "-f", "b1", "b2"]);
    dockerds[1].ok(&["network", "rm", "blue"]);
    assert_eq!(lab.hosts[1].json(&["network", "ls"]), serde_json::json!([]));
}
