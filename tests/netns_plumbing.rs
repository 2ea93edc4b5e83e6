//! TAP ports and the attach plumbing against the real kernel. Needs root (CAP_NET_ADMIN); fails,
//! never skips, without it.
//!
//! Every test runs in a network and mount namespace of its own: the test re-executes itself as
//! `unshare --net --mount --propagation private -- <this binary> --exact <test>`, so links it
//! makes never appear in the host's namespace and `ip netns add` mounts vanish with it. The
//! namespaces a test adds are called `vswt<pid><suffix>` and deleted by a guard even when it
//! fails. Traffic only flows between a test's TAP and its own namespaces.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch::dataplane::{Offload, Tap, TapOptions};
use vswitch::netns::{
    attach_port, detach_port, interface_exists_in, underlay_mtu, NetnsError, NetnsRef, PortConfig,
};

const CHILD_ENV: &str = "VSWITCH_NETNS_TEST_CHILD";
/// Far above what any test needs (well under a second each); only a hang gets here.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
const PORT_MAC: [u8; 6] = [0x02, 0x76, 0x73, 0x00, 0x00, 0x02];
const GW_MAC: [u8; 6] = [0x02, 0x76, 0x73, 0x00, 0x00, 0x01];
/// A link that is not a TAP and carries no traffic anywhere. A bridge without ports, because
/// `dummy` is a module that minimal kernels (like the one these tests were written on) lack.
const PLAIN_LINK: &str = "bridge";

/// `#[test]`s that run in their own network namespace (see the module doc).
macro_rules! netns_test {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            isolated(stringify!($name), || $body);
        }
    };
}

fn isolated(name: &str, body: impl FnOnce()) {
    require_root();
    if let Some(parent_netns) = std::env::var_os(CHILD_ENV) {
        assert_ne!(
            own_netns(),
            parent_netns,
            "refusing to run {name} in the network namespace it was started from"
        );
        body();
        return;
    }

    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, own_netns())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the test under unshare(1) (util-linux)");
    // unshare(1) execs the test binary in place, so this is the pid the child's names carry.
    let pid = child.id();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the test child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            reap(child);
            break None;
        }
        sleep(Duration::from_millis(50));
    };
    remove_stale_netns_files(pid);

    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    print!("{stdout}");
    eprint!("{stderr}");
    let Some(status) = status else {
        panic!("{name} did not finish within {CHILD_TIMEOUT:?}; killed it");
    };
    assert!(
        status.success() && stdout.contains(&format!("test {name} ... ok")),
        "{name} failed in its network namespace ({status})"
    );
}

/// Reads a child's pipe to the end on a thread, so a chatty child cannot block on it.
fn drain(pipe: Option<impl io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .expect("effective uid in /proc/self/status");
    assert!(
        euid == "0",
        "these tests create TAP devices and network namespaces and need root \
         (CAP_NET_ADMIN), but the effective uid is {euid}; run them as root, e.g. \
         `sudo cargo test --test netns_plumbing`"
    );
}

/// `net:[INODE]`: which network namespace this process is in.
fn own_netns() -> std::ffi::OsString {
    std::fs::read_link("/proc/self/ns/net")
        .expect("reading /proc/self/ns/net")
        .into_os_string()
}

/// If a child died before its guards ran, the empty mount-point files `ip netns add` created
/// would still be listed by `ip netns list` on the host.
fn remove_stale_netns_files(pid: u32) {
    let prefix = format!("vswt{pid}");
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A namespace made with `ip netns add`, deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn add(suffix: &str) -> TestNetns {
        let name = format!("vswt{}{suffix}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = TestNetns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn resolve(&self) -> NetnsRef {
        NetnsRef::resolve(&self.name).expect("resolving the test namespace")
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    fn ip_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-j", "-n", &self.name];
        all.extend_from_slice(args);
        serde_json::from_str(&ip(&all)).expect("ip -j output")
    }

    fn link_names(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .expect("link list")
            .iter()
            .map(|l| l["ifname"].as_str().expect("ifname").to_string())
            .collect()
    }

    fn exec(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(cmd);
        c
    }
}

impl Drop for TestNetns {
    /// `ip netns del`, bounded: a hung `ip` is killed after 10 s rather than hanging the
    /// test's teardown.
    fn drop(&mut self) {
        let Ok(mut child) = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs `ip ARGS` and returns its stdout; panics with its stderr on failure.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip_json(args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    serde_json::from_str(&ip(&all)).expect("ip -j output")
}

/// Whether `name` exists in this process's namespace. Not via /sys: the private mount
/// namespace still shows the sysfs of the namespace it was copied from.
fn link_exists_here(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running ip")
        .success()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The plumbing must also work when the runtime has no worker threads of its own.
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn tap_pattern() -> String {
    format!("vswt{}t%d", std::process::id())
}

fn mac_str(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn port_config(addr: &str, prefix: u8, gw: Option<&str>) -> PortConfig {
    PortConfig {
        address: Some((addr.parse().expect("address"), prefix)),
        gateway: gw.map(|g| g.parse().expect("gateway")),
        ..PortConfig::new(PORT_MAC, 1400)
    }
}

/// Reads frames until `want` accepts one or `timeout` passes. The TAP must be non-blocking.
fn read_until(tap: &Tap, timeout: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match tap.read(&mut buf) {
            Ok(n) if want(&buf[..n]) => return Some(buf[..n].to_vec()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sleep(Duration::from_millis(5)),
            Err(e) => panic!("reading from the TAP: {e}"),
        }
    }
    None
}

fn is_arp(frame: &[u8]) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x06]
}

fn is_icmp_echo_request(frame: &[u8]) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x00] && frame[23] == 1 && frame[34] == 8
}

fn arp_reply(from_mac: [u8; 6], from_ip: [u8; 4], to_mac: [u8; 6], to_ip: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&from_mac);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 2]); // Ethernet/IPv4, reply
    f.extend_from_slice(&from_mac);
    f.extend_from_slice(&from_ip);
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&to_ip);
    f
}

/// Kills a still-running child we started (by its pid) and reaps it.
fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    cond()
}

netns_test! {
    fn tap_lives_as_long_as_its_descriptor() {
        let tap = Tap::create(&tap_pattern(), TapOptions::new().nonblocking(true))
            .expect("creating a TAP");
        let name = tap.name().to_string();
        assert!(name.starts_with(&format!("vswt{}t", std::process::id())), "{name}");
        assert_eq!(tap.current_name().expect("TUNGETIFF"), name);
        assert_eq!(tap.vnet_hdr_len(), 0);

        let link = &ip_json(&["-d", "link", "show", "dev", &name])[0];
        assert_eq!(link["linkinfo"]["info_kind"], "tun");
        assert_eq!(link["linkinfo"]["info_data"]["type"], "tap");
        assert_eq!(link["linkinfo"]["info_data"]["pi"], false);
        assert_eq!(link["linkinfo"]["info_data"]["persist"], false);

        // Nothing to read on a fresh, down TAP.
        let mut buf = [0u8; 64];
        let err = tap.read(&mut buf).expect_err("nothing queued");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        tap.set_nonblocking(false).expect("blocking");
        tap.set_nonblocking(true).expect("non-blocking");

        let again = Tap::create(&name, TapOptions::new()).expect_err("name taken");
        assert!(again.to_string().contains("already exists"), "{again}");
        let err = tap.set_offload(Offload::CSUM).expect_err("offload needs vnet_hdr");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        drop(tap);
        assert!(!link_exists_here(&name), "{name} outlived its descriptor");
    }
}

netns_test! {
    fn vnet_hdr_and_offloads() {
        let tap = Tap::create(&tap_pattern(), TapOptions::new().vnet_hdr(true))
            .expect("creating a TAP with IFF_VNET_HDR");
        assert_eq!(tap.vnet_hdr_len(), 12);
        let link = &ip_json(&["-d", "link", "show", "dev", tap.name()])[0];
        assert_eq!(link["linkinfo"]["info_data"]["vnet_hdr"], true);
        tap.set_offload(Offload::CSUM | Offload::TSO4 | Offload::TSO6 | Offload::TSO_ECN)
            .expect("TUNSETOFFLOAD");
        tap.set_offload(Offload::NONE).expect("offloads off");
    }
}

netns_test! {
    /// One descriptor per data-path worker: a multi-queue TAP's queues all carry frames, and a
    /// persistent one is taken back in whichever queue mode it was made (an older daemon's
    /// single-queue ports included).
    fn multi_queue_taps_and_reopening_across_queue_modes() {
        let opts = TapOptions::new().nonblocking(true);
        let tap = Tap::create(&tap_pattern(), opts.queues(3)).expect("a 3-queue TAP");
        let name = tap.name().to_string();
        assert_eq!(tap.queues(), 3);
        let link = &ip_json(&["-d", "link", "show", "dev", &name])[0];
        assert_eq!(link["linkinfo"]["info_data"]["multi_queue"], true, "{link}");
        // sysfs shows the namespace that mounted it: mount this one's (in the test's private
        // mount namespace) to see the TAP's queues.
        let mounted = Command::new("mount")
            .args(["-t", "sysfs", "sysfs", "/sys"])
            .status()
            .expect("running mount");
        assert!(mounted.success(), "mounting this namespace's sysfs");
        let txq = |name: &str| {
            let dir = format!("/sys/class/net/{name}/queues");
            std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("tx-"))
                .count()
        };
        assert_eq!(txq(&name), 3, "the kernel sends on as many queues as are attached");

        // Every queue injects frames into the interface, and what the kernel sends out of it
        // (its own IPv6 router solicitations and DAD probes) is read from the queues.
        let rx = |name: &str| -> u64 {
            let path = format!("/sys/class/net/{name}/statistics/rx_packets");
            std::fs::read_to_string(&path).expect(&path).trim().parse().expect("a count")
        };
        ip(&["link", "set", "dev", &name, "up"]);
        let before = rx(&name);
        let frame = arp_reply([2, 0, 0, 0, 0, 9], [10, 9, 9, 9], [0xff; 6], [10, 9, 9, 1]);
        for q in 0..3 {
            assert_eq!(tap.write_on(q, &frame).expect("write on a queue"), frame.len());
        }
        assert_eq!(rx(&name) - before, 3, "one frame per queue arrived");
        let mut buf = [0u8; 2048];
        let got = wait_for(Duration::from_secs(5), || {
            (0..3).any(|q| tap.read_on(q, &mut buf).is_ok())
        });
        assert!(got, "no frame the kernel sent came out of any queue");

        // Persistent: taken back with as many queues as asked, or with one.
        tap.set_persist(true).expect("persist");
        drop(tap);
        let again = Tap::reopen(&name, opts.queues(2)).expect("reopen with 2 queues");
        assert_eq!(again.queues(), 2);
        assert_eq!(txq(&name), 2);
        drop(again);
        let one = Tap::reopen(&name, opts).expect("a multi-queue TAP reopened with one queue");
        assert_eq!(one.queues(), 1);
        one.set_persist(false).expect("persistence off");
        drop(one);
        assert!(!link_exists_here(&name), "{name} outlived its descriptors");

        // An older daemon's single-queue port: taken back with its one queue.
        let single = Tap::create(&tap_pattern(), opts).expect("a single-queue TAP");
        let name = single.name().to_string();
        single.set_persist(true).expect("persist");
        drop(single);
        let back = Tap::reopen(&name, opts.queues(2)).expect("single-queue TAP, asked for 2");
        assert_eq!(back.queues(), 1);
        let link = &ip_json(&["-d", "link", "show", "dev", &name])[0];
        assert_eq!(link["linkinfo"]["info_data"]["multi_queue"], false, "{link}");
        back.set_persist(false).expect("persistence off");
        drop(back);
        assert!(!link_exists_here(&name));

        let err = Tap::create(&tap_pattern(), opts.queues(257)).expect_err("too many queues");
        assert!(err.to_string().contains("at most 256"), "{err}");
    }
}

netns_test! {
    fn attach_configures_the_port_and_frames_flow() {
        let ns = TestNetns::add("a");
        let tap = Tap::create(&tap_pattern(), TapOptions::new().nonblocking(true))
            .expect("creating a TAP");
        let tap_name = tap.name().to_string();
        let netns = ns.resolve();
        let cfg = port_config("10.77.0.2", 24, Some("10.77.0.1"));

        runtime()
            .block_on(attach_port(&tap_name, &netns, &cfg))
            .expect("attaching the port");

        // Gone from here, there under its new name.
        assert!(!link_exists_here(&tap_name));
        assert_eq!(tap.current_name().expect("TUNGETIFF"), "eth0");
        let link = &ns.ip_json(&["-d", "link", "show", "dev", "eth0"])[0];
        assert_eq!(link["address"], mac_str(PORT_MAC));
        assert_eq!(link["mtu"], 1400);
        assert_eq!(link["linkinfo"]["info_kind"], "tun");
        let flags: Vec<&str> = link["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(flags.contains(&"UP"), "{flags:?}");
        assert!(flags.contains(&"LOWER_UP"), "carrier follows the open descriptor: {flags:?}");

        let addr = &ns.ip_json(&["-4", "addr", "show", "dev", "eth0"])[0]["addr_info"];
        assert_eq!(addr[0]["local"], "10.77.0.2");
        assert_eq!(addr[0]["prefixlen"], 24);
        let routes = ns.ip_json(&["route", "show", "default"]);
        assert_eq!(routes[0]["gateway"], "10.77.0.1");
        assert_eq!(routes[0]["dev"], "eth0");
        let lo = &ns.ip_json(&["link", "show", "dev", "lo"])[0];
        assert!(lo["flags"].as_array().expect("flags").iter().any(|f| f == "UP"));

        // The container's kernel resolves its gateway: the ARP request comes out of our fd.
        let ping = ns
            .exec(&["ping", "-c1", "-W3", "10.77.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ping in the namespace");
        let request = read_until(&tap, Duration::from_secs(5), is_arp);
        let Some(request) = request else {
            reap(ping);
            panic!("no ARP request came out of the TAP");
        };
        assert_eq!(request[0..6], [0xff; 6], "broadcast");
        assert_eq!(request[6..12], PORT_MAC, "source MAC");
        assert_eq!(request[20..22], [0, 1], "who-has");
        assert_eq!(request[22..28], PORT_MAC, "sender MAC");
        assert_eq!(request[28..32], [10, 77, 0, 2], "sender IP");
        assert_eq!(request[38..42], [10, 77, 0, 1], "target IP");

        // And what we write is received: answer it, and the queued echo request follows.
        let reply = arp_reply(GW_MAC, [10, 77, 0, 1], PORT_MAC, [10, 77, 0, 2]);
        assert_eq!(tap.write(&reply).expect("writing the ARP reply"), reply.len());
        let echo = read_until(&tap, Duration::from_secs(5), is_icmp_echo_request);
        reap(ping);
        let echo = echo.expect("the echo request after the ARP reply");
        assert_eq!(echo[0..6], GW_MAC);
        assert_eq!(echo[30..34], [10, 77, 0, 1]);
        let neigh = ns.ip_json(&["neigh", "show", "10.77.0.1", "dev", "eth0"]);
        assert_eq!(neigh[0]["lladdr"], mac_str(GW_MAC));

        // Closing the descriptor removes the port from the container too.
        drop(tap);
        assert!(
            wait_for(Duration::from_secs(2), || !ns.link_names().contains(&"eth0".into())),
            "eth0 outlived the TAP descriptor: {:?}",
            ns.link_names()
        );
        drop(netns);
    }
}

netns_test! {
    fn missing_namespace_is_named_in_the_error() {
        let name = format!("vswt{}nope", std::process::id());
        let err = NetnsRef::resolve(&name).expect_err("no such namespace");
        assert!(matches!(err, NetnsError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("network namespace '{name}' does not exist (looked for /run/netns/{name})")
        );

        // A leftover mount point whose namespace is gone is not a namespace either.
        std::fs::create_dir_all("/run/netns").expect("/run/netns");
        let stale = Path::new("/run/netns").join(&name);
        std::fs::write(&stale, b"").expect("stale entry");
        let err = NetnsRef::resolve(&name).expect_err("stale entry");
        let _ = std::fs::remove_file(&stale);
        assert!(matches!(err, NetnsError::NotANetns { .. }), "{err:?}");
        assert!(err.to_string().contains("no namespace is mounted"), "{err}");
    }
}

netns_test! {
    fn duplicate_ifname_changes_nothing() {
        let ns = TestNetns::add("d");
        ns.ip(&["link", "add", "eth0", "type", PLAIN_LINK]);
        let tap = Tap::create(&tap_pattern(), TapOptions::new()).expect("creating a TAP");
        let before = ip_json(&["link", "show", "dev", tap.name()]);

        let netns = ns.resolve();
        let cfg = port_config("10.77.0.2", 24, Some("10.77.0.1"));
        let err = runtime()
            .block_on(attach_port(tap.name(), &netns, &cfg))
            .expect_err("eth0 is taken");
        assert!(matches!(err, NetnsError::InterfaceExists { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "an interface named 'eth0' already exists in network namespace '{}'; \
                 choose another interface name or remove the existing one",
                ns.name
            )
        );

        // The TAP is untouched, still here; the namespace holds what it held.
        assert_eq!(ip_json(&["link", "show", "dev", tap.name()]), before);
        assert_eq!(ns.link_names(), ["lo", "eth0"]);
        let eth0 = &ns.ip_json(&["-d", "addr", "show", "dev", "eth0"])[0];
        assert_eq!(eth0["linkinfo"]["info_kind"], PLAIN_LINK);
        assert_eq!(eth0["addr_info"].as_array().map(Vec::len), Some(0));
    }
}

netns_test! {
    fn failure_inside_the_namespace_is_undone() {
        let ns = TestNetns::add("f");
        // IPv6 off in the namespace: adding the IPv6 address is refused after the move.
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]).status().expect("sysctl");
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
            .status()
            .expect("sysctl");
        let tap = Tap::create(&tap_pattern(), TapOptions::new()).expect("creating a TAP");
        let tap_name = tap.name().to_string();
        let netns = ns.resolve();
        let cfg = PortConfig {
            address: Some(("fd77::2".parse().expect("v6"), 64)),
            ..PortConfig::new(PORT_MAC, 1400)
        };

        let err = runtime()
            .block_on(attach_port(&tap_name, &netns, &cfg))
            .expect_err("IPv6 is disabled there");
        assert!(matches!(err, NetnsError::Netlink { .. }), "{err:?}");
        assert!(err.to_string().starts_with("adding address fd77::2/64 to 'eth0'"), "{err}");

        assert_eq!(ns.link_names(), ["lo"], "the half-configured port was removed");
        assert!(!link_exists_here(&tap_name), "deleted, not moved back");
        assert!(tap.current_name().is_err(), "the descriptor has no device any more");
    }
}

netns_test! {
    fn only_taps_are_attached_or_detached() {
        let plain = format!("vswt{}x", std::process::id());
        ip(&["link", "add", &plain, "type", PLAIN_LINK]);
        let ns = TestNetns::add("o");
        let netns = ns.resolve();
        let rt = current_thread_runtime();
        let cfg = PortConfig::new(PORT_MAC, 1400);

        let err = rt.block_on(attach_port(&plain, &netns, &cfg)).expect_err("not a TAP");
        assert!(matches!(err, NetnsError::NotATap { .. }), "{err:?}");
        assert!(link_exists_here(&plain), "the bridge stays where it was");

        let missing = format!("vswt{}gone", std::process::id());
        let err = rt.block_on(attach_port(&missing, &netns, &cfg)).expect_err("no such TAP");
        assert_eq!(
            err.to_string(),
            format!("TAP device '{missing}' does not exist in the daemon's network namespace")
        );

        let tap = Tap::create(&tap_pattern(), TapOptions::new()).expect("creating a TAP");
        rt.block_on(attach_port(tap.name(), &netns, &cfg)).expect("attaching");
        assert!(rt.block_on(interface_exists_in(&netns, "eth0")).expect("lookup"));
        assert!(rt.block_on(detach_port(&netns, "eth0")).expect("detaching"));
        assert!(!rt.block_on(interface_exists_in(&netns, "eth0")).expect("lookup"));
        assert!(!rt.block_on(detach_port(&netns, "eth0")).expect("detaching again"));

        ns.ip(&["link", "add", "br0", "type", PLAIN_LINK]);
        let err = rt.block_on(detach_port(&netns, "br0")).expect_err("not a TAP");
        assert!(matches!(err, NetnsError::NotATap { .. }), "{err:?}");
        assert_eq!(ns.link_names(), ["lo", "br0"]);
    }
}

netns_test! {
    fn underlay_mtu_follows_addresses_and_routes() {
        let rt = runtime();
        let mtu = |addr: &str| rt.block_on(underlay_mtu(addr.parse::<IpAddr>().expect("addr")));
        let pid = std::process::id();
        let (a, b, c) = (format!("vswt{pid}a"), format!("vswt{pid}b"), format!("vswt{pid}c"));

        // A fresh namespace: only lo, and it is down.
        assert_eq!(mtu("0.0.0.0").expect("no interfaces"), 1500);
        ip(&["link", "set", "lo", "up"]);
        assert_eq!(mtu("127.0.0.1").expect("loopback"), 65536);
        assert_eq!(mtu("0.0.0.0").expect("only loopback"), 1500);

        for (name, link_mtu, up) in [(&a, "1450", true), (&b, "9000", true), (&c, "1300", false)] {
            ip(&["link", "add", name, "mtu", link_mtu, "type", PLAIN_LINK]);
            if up {
                ip(&["link", "set", name, "up"]);
            }
        }
        ip(&["addr", "add", "10.99.0.1/24", "dev", &a]);
        assert_eq!(mtu("10.99.0.1").expect("address on a"), 1450);
        assert_eq!(mtu("0.0.0.0").expect("smallest up interface"), 1450);
        assert_eq!(mtu("::").expect("smallest up interface"), 1450);
        let err = mtu("10.99.9.9").expect_err("nobody holds it");
        assert!(matches!(err, NetnsError::AddressNotFound { .. }), "{err:?}");

        // A default route inside this throwaway namespace, into a bridge without ports: it
        // leads nowhere.
        ip(&["route", "add", "default", "dev", &b]);
        assert_eq!(mtu("0.0.0.0").expect("default route"), 9000);
        assert_eq!(mtu("::").expect("IPv4 default route for ::"), 9000);
        ip(&["route", "replace", "default", "dev", &b, "mtu", "1400"]);
        assert_eq!(mtu("0.0.0.0").expect("route mtu"), 1400);
    }
}

netns_test! {
    fn tap_name_taken_in_the_namespace_is_no_obstacle() {
        let ns = TestNetns::add("n");
        let tap = Tap::create(&tap_pattern(), TapOptions::new()).expect("creating a TAP");
        // The container happens to have a link called like our TAP: the move renames in one go.
        ns.ip(&["link", "add", tap.name(), "type", PLAIN_LINK]);
        let netns = ns.resolve();
        let cfg = port_config("10.77.0.2", 24, None);
        runtime()
            .block_on(attach_port(tap.name(), &netns, &cfg))
            .expect("attaching");
        assert_eq!(ns.link_names(), ["lo", tap.name(), "eth0"]);
        let eth0 = &ns.ip_json(&["-d", "link", "show", "dev", "eth0"])[0];
        assert_eq!(eth0["linkinfo"]["info_kind"], "tun");
        let other = &ns.ip_json(&["-d", "link", "show", "dev", tap.name()])[0];
        assert_eq!(other["linkinfo"]["info_kind"], PLAIN_LINK);
    }
}

netns_test! {
    fn attach_ipv6_port() {
        let ns = TestNetns::add("6");
        let tap = Tap::create(&tap_pattern(), TapOptions::new()).expect("creating a TAP");
        let netns = ns.resolve();
        let mut cfg = port_config("fd77::2", 64, Some("fe80::1"));
        cfg.ifname = "net1".into();
        cfg.mtu = 1280;
        runtime()
            .block_on(attach_port(tap.name(), &netns, &cfg))
            .expect("attaching");

        let link = &ns.ip_json(&["link", "show", "dev", "net1"])[0];
        assert_eq!(link["mtu"], 1280);
        let addrs = &ns.ip_json(&["-6", "addr", "show", "dev", "net1", "scope", "global"])[0];
        let addr = &addrs["addr_info"][0];
        assert_eq!(addr["local"], "fd77::2");
        assert_eq!(addr["prefixlen"], 64);
        assert!(addr.get("tentative").is_none(), "usable at once (no DAD): {addr}");
        let routes = ns.ip_json(&["-6", "route", "show", "default"]);
        assert_eq!(routes[0]["gateway"], "fe80::1");
        assert_eq!(routes[0]["dev"], "net1");
    }
}
