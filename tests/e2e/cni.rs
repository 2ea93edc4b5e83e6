//! The CNI plugin, run exactly as a container runtime runs it: a cleared environment with the
//! `CNI_*` variables, the network configuration on stdin, the result or the spec's error JSON
//! on stdout (CNI spec 1.1.0, "Plugin execution").

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::support::*;

/// The plugin under test.
const PLUGIN: &str = env!("CARGO_BIN_EXE_vswitch-cni");

/// One invocation: `CNI_COMMAND=command` plus `env`, `conf` on stdin.
fn cni(command: &str, env: &[(&str, &str)], conf: &Value) -> Output {
    cni_raw(command, env, &serde_json::to_vec(conf).expect("config"))
}

/// One invocation with `stdin` as it is.
fn cni_raw(command: &str, env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(PLUGIN)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", Path::new(PLUGIN).parent().expect("plugin dir"))
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vswitch-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write config");
    child.wait_with_output().expect("vswitch-cni output")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "vswitch-cni printed no JSON ({e}), status {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs a command that must succeed; returns its stdout's JSON (Null when it prints nothing).
fn ok(command: &str, env: &[(&str, &str)], conf: &Value) -> Value {
    let out = cni(command, env, conf);
    assert!(
        out.status.success(),
        "CNI {command} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        Value::Null
    } else {
        stdout_json(&out)
    }
}

/// Runs a command that must fail with the spec's error JSON carrying `code`; returns it.
fn fails(command: &str, env: &[(&str, &str)], conf: &Value, code: u64) -> Value {
    let out = cni(command, env, conf);
    let err = stdout_json(&out);
    assert_eq!(out.status.code(), Some(1), "CNI {command}: {err}");
    assert_eq!(err["code"].as_u64(), Some(code), "CNI {command}: {err}");
    assert!(
        err["msg"].as_str().is_some_and(|m| !m.is_empty()) && err["cniVersion"].is_string(),
        "CNI {command}: the error lacks msg or cniVersion: {err}"
    );
    err
}

fn conf(version: &str, name: &str, socket: &Path) -> Value {
    json!({"cniVersion": version, "name": name, "type": "vswitch-cni", "socket": socket})
}

fn env<'a>(id: &'a str, netns: &'a str, ifname: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
    ]
}

/// ADD, CHECK, DEL as a runtime calls them, two containers on two hosts pinging each other, a
/// repeated DEL, a DEL after the namespace is gone, GC of stale ports, STATUS.
#[test]
fn cni_add_check_del_gc_across_two_hosts() {
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("blue", 140, "10.140.0.0/24", &["--gateway", "10.140.0.254"]);
    }
    let (sa, sb) = (lab.hosts[0].socket.clone(), lab.hosts[1].socket.clone());
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    let (p1, p2) = (format!("/run/netns/{c1}"), format!("/run/netns/{c2}"));
    let ca = conf("1.1.0", "blue", &sa);
    let cb = conf("1.1.0", "blue", &sb);

    ok("STATUS", &[], &ca);
    let r1 = ok("ADD", &env("ctr-1", &p1, "eth0"), &ca);
    assert_eq!(r1["cniVersion"], "1.1.0", "{r1}");
    let iface = &r1["interfaces"][0];
    assert_eq!(iface["name"], "eth0", "{r1}");
    assert_eq!(iface["sandbox"], p1.as_str(), "{r1}");
    assert_eq!(
        iface["mtu"].as_u64(),
        link(&c1, "eth0")["mtu"].as_u64(),
        "{r1}"
    );
    assert_eq!(iface["mac"], link(&c1, "eth0")["address"], "{r1}");
    let ip1 = r1["ips"][0]["address"]
        .as_str()
        .expect("an address")
        .to_string();
    assert_eq!(addrs4(&c1, "eth0"), vec![ip1.clone()], "{r1}");
    assert_eq!(r1["ips"][0]["gateway"], "10.140.0.254", "{r1}");
    assert_eq!(r1["ips"][0]["interface"], 0, "{r1}");
    assert_eq!(
        r1["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.140.0.254"}]),
        "{r1}"
    );
    // The port records the container id.
    let ports = lab.hosts[0].json(&["network", "inspect", "blue"])["ports"].clone();
    assert_eq!(ports[0]["container_id"], "ctr-1", "{ports}");

    // A 1.0.0 runtime on the other host, with a different interface name.
    let r2 = ok(
        "ADD",
        &env("ctr-2", &p2, "net1"),
        &conf("1.0.0", "blue", &sb),
    );
    assert_eq!(r2["cniVersion"], "1.0.0", "{r2}");
    assert!(r2["interfaces"][0].get("mtu").is_none(), "{r2}");
    let ip2 = r2["ips"][0]["address"]
        .as_str()
        .expect("an address")
        .to_string();
    let bare = |cidr: &str| cidr.split('/').next().unwrap_or_default().to_string();
    lab.assert_ping(&c1, &bare(&ip2));
    lab.assert_ping(&c2, &bare(&ip1));

    // CHECK with ADD's result as prevResult; then again after the address was taken away.
    let mut check = ca.clone();
    check["prevResult"] = r1.clone();
    ok("CHECK", &env("ctr-1", &p1, "eth0"), &check);
    sh_ok(&["ip", "-n", &c1, "addr", "flush", "dev", "eth0"]);
    let err = fails("CHECK", &env("ctr-1", &p1, "eth0"), &check, 101);
    assert!(
        err["msg"].as_str().unwrap_or_default().contains(&ip1),
        "{err}"
    );
    fails("CHECK", &env("ctr-1", &p1, "eth0"), &ca, 7); // no prevResult

    // DEL removes the port and the interface; a second DEL succeeds and changes nothing.
    ok("DEL", &env("ctr-1", &p1, "eth0"), &ca);
    assert!(!links(&c1).iter().any(|l| l == "eth0"), "eth0 left in {c1}");
    let ports = lab.hosts[0].json(&["network", "inspect", "blue"])["ports"].clone();
    assert_eq!(ports, json!([]), "a port left after DEL");
    ok("DEL", &env("ctr-1", &p1, "eth0"), &ca);
    ok(
        "DEL",
        &[("CNI_CONTAINERID", "ctr-1"), ("CNI_IFNAME", "eth0")],
        &ca,
    );

    // DEL after the container's namespace is gone (no CNI_NETNS, as runtimes do then).
    sh_ok(&["ip", "netns", "del", &c2]);
    ok(
        "DEL",
        &[("CNI_CONTAINERID", "ctr-2"), ("CNI_IFNAME", "net1")],
        &cb,
    );
    let ports = lab.hosts[1].json(&["network", "inspect", "blue"])["ports"].clone();
    assert_eq!(ports, json!([]), "host B's port left after DEL: {ports}");

    // GC: the runtime lists what it still has; the rest of the CNI ports go, a port the CLI
    // attached stays.
    let c3 = lab.netns("c3");
    let c4 = lab.netns("c4");
    let c5 = lab.netns("c5");
    ok(
        "ADD",
        &env("ctr-3", &format!("/run/netns/{c3}"), "eth0"),
        &ca,
    );
    ok(
        "ADD",
        &env("ctr-4", &format!("/run/netns/{c4}"), "eth0"),
        &ca,
    );
    lab.hosts[0].attach(&c5, "blue", &[]);
    let mut gc = ca.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-3", "ifname": "eth0"}]);
    ok("GC", &[], &gc);
    let ports = lab.hosts[0].json(&["network", "inspect", "blue"])["ports"].clone();
    let mut left: Vec<String> = ports
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| p["netns"].as_str().unwrap_or_default().to_string())
        .collect();
    left.sort();
    let mut want = vec![format!("/run/netns/{c3}"), c5.clone()];
    want.sort();
    assert_eq!(
        left, want,
        "GC should keep ctr-3 and the CLI's port: {ports}"
    );
    assert!(
        !links(&c4).iter().any(|l| l == "eth0"),
        "GC left eth0 in {c4}"
    );
}

/// What a runtime gets back when something is wrong: the spec's error JSON with its code.
#[test]
fn cni_errors_have_the_specs_codes() {
    let mut lab = Lab::new(1);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    lab.hosts[0].create_network("blue", 141, "10.141.0.0/24", &[]);
    let socket = lab.hosts[0].socket.clone();
    let c = conf("1.1.0", "blue", &socket);
    let ns = lab.netns("c1");
    let path = format!("/run/netns/{ns}");

    let v = ok("VERSION", &[], &json!({"cniVersion": "1.1.0"}));
    assert_eq!(
        v,
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})
    );
    // Bad configs: not JSON (6), missing fields (7), an old version (1), an unknown network (7).
    let out = cni_raw("ADD", &env("x", &path, "eth0"), b"{not json");
    assert_eq!(stdout_json(&out)["code"], 6, "{}", stdout_json(&out));
    fails(
        "ADD",
        &env("x", &path, "eth0"),
        &json!({"cniVersion": "1.1.0", "type": "vswitch-cni"}),
        7,
    );
    let e = fails(
        "ADD",
        &env("x", &path, "eth0"),
        &conf("0.3.1", "blue", &socket),
        1,
    );
    assert!(
        e["details"].as_str().unwrap_or_default().contains("1.1.0"),
        "{e}"
    );
    let e = fails(
        "ADD",
        &env("x", &path, "eth0"),
        &conf("1.1.0", "nosuch", &socket),
        7,
    );
    assert!(
        e["msg"].as_str().unwrap_or_default().contains("nosuch"),
        "{e}"
    );
    // STATUS and GC are 1.1.0 only.
    fails("STATUS", &[], &conf("1.0.0", "blue", &socket), 1);
    // Missing environment (4), a missing namespace (3).
    fails(
        "ADD",
        &[("CNI_CONTAINERID", "x"), ("CNI_IFNAME", "eth0")],
        &c,
        4,
    );
    let gone = format!("/run/netns/{ns}-no-such");
    fails("ADD", &env("x", &gone, "eth0"), &c, 3);
    // An invalid interface name: the daemon refuses, nothing changes.
    fails("ADD", &env("x", &path, "a/b"), &c, 100);
    let ports = lab.hosts[0].json(&["network", "inspect", "blue"])["ports"].clone();
    assert_eq!(ports, json!([]), "a refused ADD left a port");
    // A 0.4.0 result carries the address's version.
    let r = ok(
        "ADD",
        &env("x", &path, "eth0"),
        &conf("0.4.0", "blue", &socket),
    );
    assert_eq!(r["ips"][0]["version"], "4", "{r}");
    ok(
        "DEL",
        &env("x", &path, "eth0"),
        &conf("0.4.0", "blue", &socket),
    );

    // The daemon not running: try again later (11); STATUS says not available (50).
    lab.hosts[0].stop();
    fails("ADD", &env("y", &path, "eth0"), &c, 11);
    fails("DEL", &env("y", &path, "eth0"), &c, 11);
    fails("STATUS", &[], &c, 50);
    assert!(
        !links(&ns).iter().any(|l| l == "eth0"),
        "eth0 in {ns} after a failed ADD"
    );
}
