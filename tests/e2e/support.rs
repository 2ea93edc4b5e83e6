//! Test plumbing: namespaces, an underlay, daemons, the CLI, and small python3 packet tools.
//!
//! Everything a test creates carries the prefix `vse<pid>_<n>` and is owned by a guard whose
//! `Drop` removes it, so a failing (panicking) test cleans up after itself too. Processes are
//! only ever signalled by the PID of a `Child` this file spawned.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const VSWITCH: &str = env!("CARGO_BIN_EXE_vswitch");

/// How long a CLI call may take before the test gives up on it.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to create its control socket.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------------

/// Fails the calling test (never skips it) when we are not root or a required tool is missing.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the e2e tests must run as root (they create network namespaces, veths, bridges and TAPs); \
         euid is {euid}. Run: cargo test --test e2e --no-run && \
         sudo unshare --net --mount --propagation private -- target/debug/deps/e2e-<hash> --test-threads 2"
    );
    require_tool("ip", "iproute2");
    // The suite must not share the machine's network namespace: that is what keeps its
    // traffic off the real interfaces. The tests never create links in their own namespace
    // (only inside the ones they make), so a namespace of their own holds nothing but `lo`.
    let out = sh(&["ip", "-j", "link", "show"]);
    let here: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let foreign: Vec<&str> = here
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| *n != "lo")
        .collect();
    assert!(
        foreign.is_empty(),
        "the e2e tests must run in a network namespace of their own, but this one has {foreign:?}; \
         run the test binary under: unshare --net --mount --propagation private -- <binary> --test-threads 2"
    );
    assert!(
        Path::new(python()).exists() || which("python3").is_some(),
        "python3 is required by the e2e tests (raw-socket helpers); install python3"
    );
}

/// Fails with a clear message when `tool` is not on PATH.
pub fn require_tool(tool: &str, package: &str) {
    assert!(
        which(tool).is_some(),
        "`{tool}` is not installed but this test needs it; install the `{package}` package"
    );
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The python interpreter; the system one avoids version-manager shims (slow, and they may
/// not exec in place, which would break signalling by PID).
pub fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".to_string()
        } else {
            "python3".to_string()
        }
    })
}

/// A prefix unique to this process and call: `vse<pid>_<n>`. The first call also removes the
/// namespaces a killed earlier run left behind (named `vse<pid>_…` for a PID that is gone).
pub fn unique_prefix() -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_stale_namespaces);
    format!(
        "vse{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` to completion, capturing output; panics if it takes longer than `timeout`.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut v);
        }
        v
    })
}

/// Runs `args[0] args[1..]` with the default timeout.
pub fn sh(args: &[&str]) -> Output {
    run_cmd(Command::new(args[0]).args(&args[1..]), CLI_TIMEOUT)
}

/// Like [`sh`] but panics (with stderr) unless the command succeeds; returns stdout.
pub fn sh_ok(args: &[&str]) -> String {
    let out = sh(args);
    assert!(
        out.status.success(),
        "command failed ({}): {}\nstdout: {}\nstderr: {}",
        out.status,
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `Command` that runs `prog` inside netns `ns` (via `ip netns exec`, which execs in place so
/// the child's PID is the program's PID).
pub fn ns_cmd(ns: &str, prog: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]);
    c
}

/// Runs a command inside netns `ns`.
pub fn ns_exec(ns: &str, args: &[&str]) -> Output {
    run_cmd(ns_cmd(ns, args[0]).args(&args[1..]), CLI_TIMEOUT)
}

/// Runs a python3 snippet inside netns `ns`.
pub fn py_cmd(ns: &str, script: &str, args: &[&str]) -> Command {
    let mut c = ns_cmd(ns, python());
    c.arg("-c").arg(script).args(args);
    c
}

/// SIGTERM, then SIGKILL after `grace`; returns the exit status. Only ever used on children
/// this process spawned.
pub fn terminate(child: &mut Child, grace: Duration) -> ExitStatus {
    if let Ok(Some(s)) = child.try_wait() {
        return s;
    }
    signal(child, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().unwrap_or_else(|_| ExitStatus::from_raw(9))
}

pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with the PID of a child we spawned and have not yet reaped, so the PID
    // cannot have been recycled for an unrelated process.
    unsafe {
        libc::kill(pid, sig);
    }
}

// ---------------------------------------------------------------------------------------------
// Background processes
// ---------------------------------------------------------------------------------------------

/// A background process whose stdout/stderr lines are collected; killed on drop.
pub struct Bg {
    child: Option<Child>,
    desc: String,
    out_rx: Receiver<String>,
    err_rx: Receiver<String>,
    pub out: Vec<String>,
    pub err: Vec<String>,
}

/// What a finished background process produced.
#[derive(Debug)]
pub struct BgOutput {
    pub status: ExitStatus,
    pub out: Vec<String>,
    pub err: Vec<String>,
}

impl Bg {
    /// The process's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A placeholder with no process (for moving a `Bg` out of a struct that has `Drop`).
    fn none() -> Bg {
        let (_, out_rx) = mpsc::channel();
        let (_, err_rx) = mpsc::channel();
        Bg {
            child: None,
            desc: String::new(),
            out_rx,
            err_rx,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    pub fn spawn(cmd: &mut Command) -> Bg {
        let desc = format!("{cmd:?}");
        // SIGINT and SIGQUIT back to their defaults: a suite started in the background by a
        // non-interactive shell inherits them ignored, and `interrupt` relies on SIGINT.
        // SAFETY: signal(2) is async-signal-safe, as a pre_exec hook requires.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
        let out_rx = line_pump(child.stdout.take());
        let err_rx = line_pump(child.stderr.take());
        Bg {
            child: Some(child),
            desc,
            out_rx,
            err_rx,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// Pulls whatever lines have arrived; returns whether both streams are closed.
    fn drain(&mut self) -> bool {
        let mut closed = 0;
        loop {
            match self.out_rx.try_recv() {
                Ok(l) => self.out.push(l),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed += 1;
                    break;
                }
            }
        }
        loop {
            match self.err_rx.try_recv() {
                Ok(l) => self.err.push(l),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed += 1;
                    break;
                }
            }
        }
        closed == 2
    }

    /// Waits until a line on stdout or stderr contains `needle`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let closed = self.drain();
            if self
                .out
                .iter()
                .chain(self.err.iter())
                .any(|l| l.contains(needle))
            {
                return;
            }
            if closed || Instant::now() > deadline {
                let exited = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "{} never printed {needle:?} (waited {timeout:?}; exited: {exited:?})\nstdout: {}\nstderr: {}",
                    self.desc,
                    self.out.join("\n"),
                    self.err.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGINT (a capture's "stop now"), then waits for the process to exit.
    pub fn interrupt(self, timeout: Duration) -> BgOutput {
        if let Some(c) = &self.child {
            signal(c, libc::SIGINT);
        }
        self.finish(timeout)
    }

    /// Waits for the process to exit on its own.
    pub fn finish(mut self, timeout: Duration) -> BgOutput {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("child present");
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break s;
            }
            if Instant::now() > deadline {
                terminate(&mut child, Duration::from_secs(1));
                self.drain();
                panic!(
                    "{} did not exit within {timeout:?}\nstdout: {}\nstderr: {}",
                    self.desc,
                    self.out.join("\n"),
                    self.err.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let until = Instant::now() + Duration::from_secs(3);
        while !self.drain() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        BgOutput {
            status,
            out: std::mem::take(&mut self.out),
            err: std::mem::take(&mut self.err),
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(2));
        }
    }
}

fn line_pump<R: Read + Send + 'static>(r: Option<R>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        if let Some(r) = r {
            for line in BufReader::new(r).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    });
    rx
}

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace with `lo` up that does not forward IPv4: a new namespace copies the machine's
    /// `net.ipv4.ip_forward` (1 on a Docker host), and a daemon whose namespace forwards gives
    /// its containers egress links. A test that wants egress turns forwarding on itself.
    pub fn new(name: String) -> Netns {
        sh_ok(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        sh_ok(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns.set_forwarding(false);
        ns
    }

    /// Sets `net.ipv4.ip_forward` in this namespace (and only here).
    pub fn set_forwarding(&self, on: bool) {
        let cmd = format!("echo {} > /proc/sys/net/ipv4/ip_forward", u8::from(on));
        sh_ok(&["ip", "netns", "exec", &self.name, "sh", "-c", &cmd]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
        // What `vswitch attach` wrote for the namespace (its resolv.conf), if a failed test
        // left it.
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
    }
}

/// `ip netns del NAME`, bounded: a hung `ip` is killed after 10 s rather than hanging the
/// test's teardown.
fn delete_netns(name: &str) {
    let Ok(mut child) = Command::new("ip")
        .args(["netns", "del", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Deletes `/run/netns/vse<pid>_…` entries whose PID no longer runs: what a SIGKILLed test
/// run could not clean up. Only this suite's prefix, only dead owners.
pub fn sweep_stale_namespaces() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("vse")
            .and_then(|rest| rest.split('_').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(&name);
        }
    }
}

/// `ip -n ns -j link show` → interface names.
pub fn links(ns: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&sh_ok(&["ip", "-n", ns, "-j", "link", "show"]))
        .expect("ip -j link output is JSON");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `ip -n ns -j link show dev` → the link object.
pub fn link(ns: &str, dev: &str) -> Value {
    let v: Value =
        serde_json::from_str(&sh_ok(&["ip", "-n", ns, "-j", "link", "show", "dev", dev]))
            .expect("ip -j link output is JSON");
    v[0].clone()
}

/// IPv4 addresses (CIDR) on `dev` in `ns`.
pub fn addrs4(ns: &str, dev: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&sh_ok(&[
        "ip", "-n", ns, "-j", "-4", "addr", "show", "dev", dev,
    ]))
    .expect("ip -j addr output is JSON");
    let mut r = Vec::new();
    for l in v.as_array().into_iter().flatten() {
        for a in l["addr_info"].as_array().into_iter().flatten() {
            if let (Some(ip), Some(p)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                r.push(format!("{ip}/{p}"));
            }
        }
    }
    r
}

/// Default IPv4 routes in `ns`, as JSON objects.
pub fn default_routes(ns: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&sh_ok(&[
        "ip", "-n", ns, "-j", "-4", "route", "show", "default",
    ]))
    .unwrap_or(Value::Array(vec![]));
    v.as_array().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Hosts and the lab
// ---------------------------------------------------------------------------------------------

/// One "machine": a netns on the underlay that may run a vswitch daemon with its own control
/// socket and state dir.
pub struct Host {
    pub label: String,
    pub ns: Netns,
    /// Underlay address, no prefix length.
    pub ip: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    daemon: Option<Child>,
    daemon_args: Vec<String>,
}

impl Host {
    /// Starts `vswitch daemon` inside this host's netns and waits for the control socket.
    pub fn start(&mut self, args: &[String]) {
        assert!(
            self.daemon.is_none(),
            "daemon on host {} already running",
            self.label
        );
        self.daemon_args = args.to_vec();
        self.respawn();
    }

    /// Starts the daemon again with the arguments of the last `start`.
    pub fn respawn(&mut self) {
        fs::create_dir_all(&self.dir).expect("host dir");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let log2 = log.try_clone().expect("dup log");
        let mut cmd = ns_cmd(&self.ns.name, VSWITCH);
        cmd.env("VSWITCH_SOCKET", &self.socket)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .arg("--socket")
            .arg(&self.socket)
            .arg("daemon")
            .arg("--state-dir")
            .arg(&self.state)
            .args(&self.daemon_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let desc = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start daemon {desc}: {e}"));
        self.daemon = Some(child);
        self.wait_ready(&desc);
    }

    fn wait_ready(&mut self, desc: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(c) = self.daemon.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.daemon = None;
                    panic!(
                        "daemon on host {} exited early ({status}): {desc}\n--- daemon log ---\n{}",
                        self.label,
                        self.log_text()
                    );
                }
            }
            if self.socket.exists() && UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "daemon on host {} did not create its control socket {} within {READY_TIMEOUT:?}: {desc}\n--- daemon log ---\n{}",
                    self.label,
                    self.socket.display(),
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM the daemon and wait (≤ 15 s) for it to exit; returns its status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.take_daemon();
        let status = terminate(&mut c, Duration::from_secs(15));
        assert!(
            status.signal() != Some(libc::SIGKILL),
            "daemon on host {} ignored SIGTERM for 15 s and was killed\n--- daemon log ---\n{}",
            self.label,
            self.log_text()
        );
        status
    }

    fn take_daemon(&mut self) -> Child {
        self.daemon
            .take()
            .unwrap_or_else(|| panic!("no daemon running on host {}", self.label))
    }

    /// SIGKILL the daemon (a crash: nothing of its own shutdown runs) and reap it.
    pub fn kill(&mut self) -> ExitStatus {
        let mut c = self.take_daemon();
        signal(&c, libc::SIGKILL);
        c.wait().expect("reaping the killed daemon")
    }

    pub fn running(&self) -> bool {
        self.daemon.is_some()
    }

    /// SIGINT the daemon (Ctrl-C) and wait (≤ 15 s) for it to exit; returns its status.
    pub fn interrupt(&mut self) -> ExitStatus {
        let mut c = self.take_daemon();
        signal(&c, libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let status = terminate(&mut c, Duration::from_secs(1));
        panic!(
            "daemon on host {} ignored SIGINT for 15 s ({status})\n--- daemon log ---\n{}",
            self.label,
            self.log_text()
        );
    }

    /// The daemon's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// `vswitch daemon --cleanup` for this host's state dir, in its namespace.
    pub fn cleanup(&self) -> Output {
        run_cmd(
            ns_cmd(&self.ns.name, VSWITCH)
                .arg("--socket")
                .arg(&self.socket)
                .args(["daemon", "--cleanup", "--state-dir"])
                .arg(&self.state),
            Duration::from_secs(20),
        )
    }

    /// Runs the CLI against this host's daemon.
    pub fn vs(&self, args: &[&str]) -> Output {
        vswitch_at(&self.socket, args)
    }

    /// Runs the CLI and panics with everything useful unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.vs(args);
        if !out.status.success() {
            panic!(
                "`vswitch {}` on host {} failed ({})\nstdout: {}\nstderr: {}\n--- daemon log ---\n{}",
                args.join(" "),
                self.label,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI with `--json` appended and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "`vswitch {}` printed invalid JSON ({e}): {text}",
                a.join(" ")
            )
        })
    }

    pub fn create_network(&self, name: &str, vni: u32, subnet: &str, extra: &[&str]) {
        let vni = vni.to_string();
        let mut a = vec!["network", "create", name, "--vni", &vni, "--subnet", subnet];
        a.extend_from_slice(extra);
        self.ok(&a);
    }

    /// `vswitch attach NETNS --network NET extra… --json`.
    pub fn attach(&self, netns: &str, network: &str, extra: &[&str]) -> Value {
        let mut a = vec!["attach", netns, "--network", network];
        a.extend_from_slice(extra);
        self.json(&a)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            terminate(&mut c, Duration::from_secs(5));
        }
    }
}

/// Joins namespace `ns` to the lab's LAN bridge: a veth whose end in `ns` is the underlay
/// device with `ip`/24 and whose other end, `peer`, is a port of `br0` in `lan`. Both ends are
/// created directly in their namespaces, so the names never meet the test's own namespace and
/// cannot collide with a parallel test.
fn plug_into_lan(lan: &str, peer: &str, ns: &str, ip: &str) {
    sh_ok(&[
        "ip",
        "link",
        "add",
        "name",
        UNDERLAY_DEV,
        "netns",
        ns,
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "netns",
        lan,
    ]);
    sh_ok(&["ip", "-n", lan, "link", "set", peer, "master", "br0", "up"]);
    let cidr = format!("{ip}/24");
    sh_ok(&["ip", "-n", ns, "addr", "add", &cidr, "dev", UNDERLAY_DEV]);
    sh_ok(&["ip", "-n", ns, "link", "set", UNDERLAY_DEV, "up"]);
}

/// Runs the CLI with an explicit control socket.
pub fn vswitch_at(socket: &Path, args: &[&str]) -> Output {
    run_cmd(
        Command::new(VSWITCH)
            .env("VSWITCH_SOCKET", socket)
            .arg("--socket")
            .arg(socket)
            .args(args),
        CLI_TIMEOUT,
    )
}

/// A test's world: `n` hosts on one underlay LAN (a bridge in its own netns; host i has
/// 192.0.2.(i+1)/24 on `ul0`), plus any container namespaces the test asks for. Everything is
/// torn down on drop, daemons first; if the test is panicking, daemon logs are printed.
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    pub hosts: Vec<Host>,
    containers: Mutex<Vec<Netns>>,
    lan: Option<Netns>,
    watch: crate::watchdog::Watch,
}

pub const UNDERLAY_DEV: &str = "ul0";

impl Lab {
    pub fn new(n: usize) -> Lab {
        require_root();
        let prefix = unique_prefix();
        let dir = std::env::temp_dir().join(&prefix);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("lab tempdir");
        let mut lab = Lab {
            prefix: prefix.clone(),
            dir: dir.clone(),
            hosts: Vec::new(),
            containers: Mutex::new(Vec::new()),
            lan: None,
            watch: crate::watchdog::Watch::start(dir.clone()),
        };
        let lan = Netns::new(format!("{prefix}lan"));
        sh_ok(&[
            "ip", "-n", &lan.name, "link", "add", "br0", "type", "bridge",
        ]);
        sh_ok(&["ip", "-n", &lan.name, "link", "set", "br0", "up"]);
        let lan_name = lan.name.clone();
        lab.lan = Some(lan);
        for i in 0..n {
            let label = ((b'A' + i as u8) as char).to_string();
            let ns = Netns::new(format!("{prefix}h{label}"));
            let ip = format!("192.0.2.{}", i + 1);
            plug_into_lan(&lan_name, &format!("p{i}"), &ns.name, &ip);
            let hdir = dir.join(&label);
            fs::create_dir_all(&hdir).expect("host dir");
            lab.watch.log(hdir.join("daemon.log"));
            lab.hosts.push(Host {
                label,
                ns,
                ip,
                socket: hdir.join("vswitch.sock"),
                state: hdir.join("state"),
                log: hdir.join("daemon.log"),
                dir: hdir,
                daemon: None,
                daemon_args: Vec::new(),
            });
        }
        lab
    }

    /// Daemon arguments for host `i` in a full mesh: `--listen <own> --peer <each other>`.
    pub fn mesh_args(&self, i: usize) -> Vec<String> {
        let mut a = vec!["--listen".to_string(), self.hosts[i].ip.clone()];
        for (j, h) in self.hosts.iter().enumerate() {
            if j != i {
                a.push("--peer".to_string());
                a.push(h.ip.clone());
            }
        }
        a
    }

    /// Starts a daemon on every host, fully meshed.
    pub fn start_mesh(&mut self) {
        for i in 0..self.hosts.len() {
            let args = self.mesh_args(i);
            self.hosts[i].start(&args);
        }
    }

    /// Puts a new namespace `<prefix><tag>` on the underlay LAN with address `ip`/24 (a
    /// service the hosts reach over the underlay, e.g. etcd); returns its name. Removed with
    /// the lab.
    pub fn underlay_node(&self, tag: &str, ip: &str) -> String {
        let ns = Netns::new(format!("{}{}", self.prefix, tag));
        let lan = &self.lan.as_ref().expect("the lab's LAN").name;
        plug_into_lan(lan, &format!("x{tag}"), &ns.name, ip);
        let name = ns.name.clone();
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ns);
        name
    }

    /// Creates a container namespace `<prefix><tag>`; returns its name.
    pub fn netns(&self, tag: &str) -> String {
        let ns = Netns::new(format!("{}{}", self.prefix, tag));
        let name = ns.name.clone();
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ns);
        name
    }

    /// Waits until TCP/ICMP from `from` reaches `dst` (ARP may need a moment), then requires
    /// three clean replies in a row.
    pub fn assert_ping(&self, from: &str, dst: &str) {
        assert_ping(from, dst, self);
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for h in &self.hosts {
            if h.log.exists() {
                s.push_str(&format!(
                    "--- daemon log, host {} ---\n{}\n",
                    h.label,
                    h.log_text()
                ));
            }
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            if let Some(mut c) = h.daemon.take() {
                terminate(&mut c, Duration::from_secs(5));
            }
        }
        if thread::panicking() {
            eprintln!(
                "=== e2e lab {} failed; daemon logs follow ===\n{}",
                self.prefix,
                self.logs()
            );
        }
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.hosts.clear();
        self.lan.take();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic helpers (python3, raw sockets)
// ---------------------------------------------------------------------------------------------

/// ICMP echo with a raw socket: `dst count timeout_per_echo`; prints `ok/count`, exit 0 iff all
/// echoes were answered. (The image has no `ping` binary; this is the same ICMP on the wire.)
/// The ICMP checksum, for the Python helpers that build echoes (`concat!` it in front).
#[macro_export]
macro_rules! py_icmp_csum {
    () => {
        r#"
import os, select, socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
"#
    };
}

const PY_PING: &str = concat!(
    py_icmp_csum!(),
    r#"
dst, count, tmo = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = (os.getpid() * 7919) & 0xffff
ok = 0
for seq in range(count):
    payload = b'vse-ping' + bytes(48)
    hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
    pkt = struct.pack('!BBHHH', 8, 0, csum(hdr + payload), ident, seq) + payload
    try:
        s.sendto(pkt, (dst, 0))
    except OSError as e:
        print('send error', e); time.sleep(tmo); continue
    end = time.time() + tmo
    while True:
        left = end - time.time()
        if left <= 0: break
        s.settimeout(left)
        try:
            data, addr = s.recvfrom(4096)
        except socket.timeout:
            break
        ihl = (data[0] & 0xf) * 4
        icmp = data[ihl:ihl + 8]
        if addr[0] == dst and len(icmp) == 8:
            t, c, _, i, q = struct.unpack('!BBHHH', icmp)
            if t == 0 and i == ident and q == seq:
                ok += 1
                break
print('%d/%d' % (ok, count))
sys.exit(0 if ok == count else 1)
"#
);

/// Sends `count` ICMP echoes from netns `ns` to `dst`; returns how many were answered. Panics
/// when the helper itself fails (no `answered/count` line, or an exit status that does not match
/// it), so that a broken helper never passes for "no replies".
pub fn ping(ns: &str, dst: &str, count: u32) -> u32 {
    let out = run_cmd(
        &mut py_cmd(ns, PY_PING, &[dst, &count.to_string(), "1.0"]),
        Duration::from_secs(10 + 2 * count as u64),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let tally = text
        .lines()
        .last()
        .and_then(|l| l.trim().split_once('/'))
        .and_then(|(ok, total)| Some((ok.parse::<u32>().ok()?, total.parse::<u32>().ok()?)));
    match tally {
        Some((ok, total))
            if total == count
                && ok <= count
                && out.status.code() == Some(if ok == count { 0 } else { 1 }) =>
        {
            ok
        }
        _ => panic!(
            "ping helper failed in {ns} (to {dst}, {count} echoes): {}\nstdout: {text}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Retries single pings for up to 15 s (ARP, learning), then requires 3/3.
pub fn assert_ping(from: &str, dst: &str, lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while ping(from, dst, 1) != 1 {
        if Instant::now() > deadline {
            panic!(
                "no ping reply from {dst} in netns {from} within 15 s\n{}\n{}",
                diag(from),
                lab.logs()
            );
        }
    }
    let n = ping(from, dst, 3);
    assert_eq!(
        n, 3,
        "ping {from} -> {dst}: only {n}/3 replies after the first one succeeded"
    );
}

/// The MAC `ns` has resolved `ip` to (after a ping), if any.
pub fn neigh_mac(ns: &str, ip: &str) -> Option<String> {
    let v: Value =
        serde_json::from_str(&sh_ok(&["ip", "-n", ns, "-j", "neigh", "show", ip])).ok()?;
    v.as_array()?
        .iter()
        .find_map(|n| n["lladdr"].as_str().map(str::to_string))
}

/// Asserts that `ip`, as seen from `ns`, is the container with `mac` (not a namesake on
/// another network).
pub fn assert_neigh(ns: &str, ip: &str, mac: &str) {
    let got = neigh_mac(ns, ip);
    assert_eq!(
        got.as_deref(),
        Some(mac),
        "{ns} resolved {ip} to {got:?}, but that address belongs to {mac} on its network"
    );
}

/// A few lines of state from a namespace, for failure messages.
pub fn diag(ns: &str) -> String {
    let mut s = format!("--- netns {ns} ---\n");
    for args in [&["addr"][..], &["route"][..], &["neigh"][..]] {
        let mut a = vec!["ip", "-n", ns];
        a.extend_from_slice(args);
        let o = sh(&a);
        s.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    s
}

const PY_TCP_RECV: &str = r#"
import hashlib, socket, sys
port, tmo = int(sys.argv[1]), float(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('0.0.0.0', port)); srv.listen(1); srv.settimeout(tmo)
print('ready', flush=True)
c, _ = srv.accept(); c.settimeout(tmo)
h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
c.close()
print(n, h.hexdigest(), flush=True)
"#;

const PY_TCP_SEND: &str = r#"
import hashlib, os, socket, sys, time
dst, port, size, tmo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = os.urandom(size)
end = time.time() + tmo
while True:
    try:
        c = socket.create_connection((dst, port), timeout=3); break
    except OSError:
        if time.time() > end: raise
        time.sleep(0.2)
c.settimeout(tmo)
t0 = time.time()
# Paced: spread the data evenly over `pace` seconds (0: as fast as possible).
pace = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
chunks = max(1, int(pace * 50))
step = -(-size // chunks)
for i in range(chunks):
    c.sendall(data[i * step:(i + 1) * step])
    if pace:
        time.sleep(max(0.0, t0 + (i + 1) * pace / chunks - time.time()))
c.shutdown(socket.SHUT_WR)
while c.recv(1 << 16): pass
c.close()
print(size, hashlib.sha256(data).hexdigest(), '%.2f' % (time.time() - t0), flush=True)
"#;

/// Sends `size` random bytes over TCP from netns `from` to `to_ip:port` (a listener in netns
/// `to`) and asserts the SHA-256 seen by the receiver equals the sender's.
pub fn tcp_transfer(from: &str, to: &str, to_ip: &str, port: u16, size: usize) {
    tcp_transfer_paced(from, to, to_ip, port, size, Duration::ZERO);
}

/// [`tcp_transfer`], with the bytes spread evenly over `pace` (so the stream is live for that
/// long whatever the link's speed).
pub fn tcp_transfer_paced(
    from: &str,
    to: &str,
    to_ip: &str,
    port: u16,
    size: usize,
    pace: Duration,
) {
    let port_s = port.to_string();
    let mut recv = Bg::spawn(&mut py_cmd(to, PY_TCP_RECV, &[&port_s, "30"]));
    recv.wait_for("ready", Duration::from_secs(15));
    let pace_s = format!("{:.3}", pace.as_secs_f64());
    let send = run_cmd(
        &mut py_cmd(
            from,
            PY_TCP_SEND,
            &[to_ip, &port_s, &size.to_string(), "30", &pace_s],
        ),
        Duration::from_secs(120),
    );
    let send_out = String::from_utf8_lossy(&send.stdout).into_owned();
    assert!(
        send.status.success(),
        "TCP sender {from} -> {to_ip}:{port} failed: {}\n{send_out}\n{}",
        send.status,
        String::from_utf8_lossy(&send.stderr)
    );
    let r = recv.finish(Duration::from_secs(30));
    let got = r.out.last().cloned().unwrap_or_default();
    let sent: Vec<&str> = send_out.split_whitespace().collect();
    let rcvd: Vec<&str> = got.split_whitespace().collect();
    assert!(
        sent.len() >= 2 && rcvd.len() >= 2,
        "unexpected transfer output: sender {send_out:?}, receiver {got:?} / {:?}",
        r.err
    );
    assert_eq!(
        rcvd[0],
        size.to_string(),
        "receiver in {to} got {} of {size} bytes",
        rcvd[0]
    );
    assert_eq!(
        rcvd[1], sent[1],
        "SHA-256 differs between sender ({from}) and receiver ({to})"
    );
    eprintln!(
        "tcp {from} -> {to}: {size} bytes in {}s, sha256 {}",
        sent.get(2).unwrap_or(&"?"),
        sent[1]
    );
}

/// Counts received (not outgoing) frames on an interface for `secs` seconds, or until the
/// stop file appears. Filters, each `-` for "any": EtherType (hex), a marker substring of the
/// frame, a source MAC. Prints `ready` once the socket is bound, then the count.
const PY_COUNT: &str = r#"
import os, socket, sys, time
ifname, secs, etype, marker, srcmac, stop = sys.argv[1:7]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 3))
s.settimeout(0.05)
et = None if etype == '-' else int(etype, 16)
mk = None if marker == '-' else marker.encode()
sm = None if srcmac == '-' else bytes.fromhex(srcmac.replace(':', ''))
print('ready', flush=True)
end = time.time() + float(secs)
n = 0
while time.time() < end and not os.path.exists(stop):
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 14: continue
    if et is not None and int.from_bytes(data[12:14], 'big') != et: continue
    if mk is not None and mk not in data: continue
    if sm is not None and data[6:12] != sm: continue
    n += 1
print(n, flush=True)
"#;

/// A running frame counter (see [`count_frames`]).
pub struct Counter {
    bg: Bg,
    what: String,
    stop: PathBuf,
}

/// Starts counting frames on `ifname` in `ns` for at most `secs` seconds; returns once it
/// listens. End the window with [`Counter::result`] (waits it out) or [`Counter::stop_after`].
pub fn count_frames(
    ns: &str,
    ifname: &str,
    secs: f64,
    ethertype: Option<u16>,
    marker: Option<&str>,
    src_mac: Option<&str>,
) -> Counter {
    let et = ethertype
        .map(|e| format!("{e:04x}"))
        .unwrap_or_else(|| "-".into());
    let stop = std::env::temp_dir().join(format!("{}.stop", unique_prefix()));
    let stop_s = stop.to_string_lossy().into_owned();
    let args = [
        ifname,
        &secs.to_string(),
        &et,
        marker.unwrap_or("-"),
        src_mac.unwrap_or("-"),
        &stop_s,
    ];
    let mut bg = Bg::spawn(&mut py_cmd(ns, PY_COUNT, &args));
    bg.wait_for("ready", Duration::from_secs(15));
    Counter {
        bg,
        what: format!(
            "frames on {ns}/{ifname} (ethertype {et}, marker {marker:?}, src {src_mac:?})"
        ),
        stop,
    }
}

impl Counter {
    /// Waits for the counting window to end; returns the count.
    pub fn result(mut self) -> u64 {
        let what = std::mem::take(&mut self.what);
        let bg = std::mem::replace(&mut self.bg, Bg::none());
        let r = bg.finish(Duration::from_secs(60));
        r.out
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "counter for {what} printed no count: {:?} {:?}",
                    r.out, r.err
                )
            })
    }

    /// Lets late frames (duplicates, stragglers) arrive for `settle`, then ends the window.
    /// Timing starts here, after the test sent its traffic, so a slow start cannot shorten it.
    pub fn stop_after(self, settle: Duration) -> u64 {
        thread::sleep(settle);
        let _ = File::create(&self.stop);
        self.result()
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.stop);
    }
}

const PY_SEND: &str = r#"
import socket, sys
ifname, dst, etype, marker = sys.argv[1:5]
src = open('/sys/class/net/%s/address' % ifname).read().strip()
mac = lambda m: bytes.fromhex(m.replace(':', ''))
frame = mac(dst) + mac(src) + int(etype, 16).to_bytes(2, 'big') + marker.encode()
frame = frame.ljust(60, b'\0')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
s.send(frame)
print('sent', len(frame), flush=True)
"#;

/// Sends exactly one raw Ethernet frame from `ns`/`ifname`.
pub fn send_frame(ns: &str, ifname: &str, dst_mac: &str, ethertype: u16, marker: &str) {
    let et = format!("{ethertype:04x}");
    let out = run_cmd(
        &mut py_cmd(ns, PY_SEND, &[ifname, dst_mac, &et, marker]),
        Duration::from_secs(15),
    );
    assert!(
        out.status.success(),
        "sending a raw frame from {ns}/{ifname} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `tries` ARP requests (who-has `target` tell `my_ip`) from `ns`/`ifname`, 0.5 s apart,
/// and counts ARP replies whose sender IP is `target`.
/// `ethtool -K DEV tx off` without ethtool (SIOCETHTOOL / ETHTOOL_STXCSUM).
const PY_TX_CSUM_OFF: &str = r#"
import array, fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ev = array.array('I', [0x17, 0])
fcntl.ioctl(s.fileno(), 0x8946, struct.pack('16sP', sys.argv[1].encode(), ev.buffer_info()[0]))
ev = array.array('I', [0x16, 1])
fcntl.ioctl(s.fileno(), 0x8946, struct.pack('16sP', sys.argv[1].encode(), ev.buffer_info()[0]))
sys.exit(0 if ev[1] == 0 else 1)
"#;

/// Makes `dev` in `ns` compute checksums in software on transmit, like a real NIC would.
pub fn disable_tx_checksum(ns: &str, dev: &str) {
    let out = run_cmd(
        &mut py_cmd(ns, PY_TX_CSUM_OFF, &[dev]),
        Duration::from_secs(15),
    );
    assert!(
        out.status.success(),
        "could not turn off tx checksum offload on {ns}/{dev}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const PY_ARP: &str = r#"
import socket, struct, sys, time
ifname, my_ip, target, tries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
m = bytes.fromhex(open('/sys/class/net/%s/address' % ifname).read().strip().replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0x0806))
s.settimeout(0.05)
req = (b'\xff' * 6 + m + b'\x08\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1)
       + m + socket.inet_aton(my_ip) + bytes(6) + socket.inet_aton(target))
want = socket.inet_aton(target)
n = 0
for _ in range(tries):
    s.send(req.ljust(60, b'\0'))
    end = time.time() + 0.5
    while time.time() < end:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING or len(data) < 42: continue
        if data[12:14] == b'\x08\x06' and data[20:22] == b'\x00\x02' and data[28:32] == want:
            n += 1
print(n, flush=True)
"#;

/// Number of ARP replies for `target` seen by `ns` after `tries` requests.
pub fn arp_replies(ns: &str, ifname: &str, my_ip: &str, target: &str, tries: u32) -> u64 {
    let out = run_cmd(
        &mut py_cmd(ns, PY_ARP, &[ifname, my_ip, target, &tries.to_string()]),
        Duration::from_secs(10 + tries as u64),
    );
    assert!(
        out.status.success(),
        "ARP helper failed in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ARP helper prints a count")
}

// ---------------------------------------------------------------------------------------------
// Small JSON/text helpers
// ---------------------------------------------------------------------------------------------

/// `v[key]` as a string, or a panic naming the key and the document.
pub fn jstr(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("expected string field {key:?} in {v}"))
        .to_string()
}

/// Sorted `addr` fields of `peer ls --json`.
pub fn peer_addrs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("peer ls --json is not an array: {v}"))
        .iter()
        .map(|p| jstr(p, "addr"))
        .collect()
}

/// Parses "a.b.c.d/len" into (u32 address, len).
pub fn parse_cidr(s: &str) -> (u32, u32) {
    let (ip, len) = s
        .split_once('/')
        .unwrap_or_else(|| panic!("{s:?} is not CIDR"));
    let ip: std::net::Ipv4Addr = ip.parse().unwrap_or_else(|_| panic!("{s:?}: bad address"));
    (
        u32::from(ip),
        len.parse().unwrap_or_else(|_| panic!("{s:?}: bad prefix")),
    )
}

/// Opens `path` for reading (helper for log snippets).
pub fn read_file(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// An EtherType from the IEEE "local experimental" range, so nothing else uses it.
pub const MARK_ETHERTYPE: u16 = 0x88b5;

/// A marker string unique to this test process and moment, to find one's own frames.
pub fn marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("vse-{tag}-{}-{nanos}", std::process::id())
}
