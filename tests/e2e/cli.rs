//! Bad input from a user: every case exits non-zero with one `error:` line that names the
//! problem, and leaves the daemon's state exactly as it was.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Everything a bad request could have changed.
fn snapshot(h: &Host) -> (Value, Vec<String>, Value) {
    let ls = h.json(&["network", "ls"]);
    let peers = peer_addrs(&h.json(&["peer", "ls"])).into_iter().collect();
    let mut inspect = h.json(&["network", "inspect", "good"]);
    if let Some(o) = inspect.as_object_mut() {
        o.remove("traffic");
    }
    (ls, peers, inspect)
}

/// The cases clap refuses before anything runs: README's usage errors, exit status 2. Every
/// other refusal exits 1.
const USAGE_ERRORS: [&str; 9] = [
    "invalid CIDR (prefix too long)",
    "subnet smaller than /30",
    "invalid CIDR (not an address)",
    "invalid IP (gateway)",
    "invalid IP (attach --ip)",
    "invalid MAC",
    "VNI 0",
    "VNI 2^24",
    "peer add garbage",
];

/// README's exit status for case `what`: 2 for a usage error, 1 when refused or failed.
fn exit_code(what: &str) -> i32 {
    if USAGE_ERRORS.contains(&what) {
        2
    } else {
        1
    }
}

/// Asserts the failure shape, including README's exit status for `what` (see [`exit_code`]).
/// `needles`: every group must have at least one member in the message (case-insensitive).
fn assert_user_error(what: &str, args: &[&str], out: &Output, needles: &[&[&str]]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!(
        "case {what:?}: `vswitch {}` → status {}\nstdout: {}\nstderr: {stderr}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!out.status.success(), "should fail: {ctx}");
    assert!(out.status.code().is_some(), "killed by a signal: {ctx}");
    assert_eq!(
        out.status.code(),
        Some(exit_code(what)),
        "exit status (README: 1 refused or failed, 2 usage): {ctx}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {ctx}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected exactly one `error:` line: {ctx}");
    eprintln!("{what}: {}", errors[0]);
    let msg = stderr.to_lowercase();
    for group in needles {
        assert!(
            group.iter().any(|n| msg.contains(&n.to_lowercase())),
            "the error should name the problem (one of {group:?}): {ctx}"
        );
    }
}

/// (what, arguments, needle groups for the message)
type Case<'a> = (&'a str, Vec<&'a str>, Vec<&'a [&'a str]>);

#[test]
fn cli_bad_input() {
    let mut lab = Lab::new(2);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let a = &lab.hosts[0];
    a.create_network("good", 10, "10.40.0.0/24", &["--gateway", "10.40.0.1"]);
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    a.attach(&c1, "good", &["--ip", "10.40.0.5/24"]);
    let missing_ns = format!("{}nope", lab.prefix);
    let before = snapshot(a);
    let missing_g = [missing_ns.as_str()];
    let c1_g = [c1.as_str()];

    let cases: Vec<Case> = vec![
        (
            "invalid CIDR (prefix too long)",
            vec![
                "network",
                "create",
                "bad1",
                "--vni",
                "11",
                "--subnet",
                "10.41.0.0/33",
            ],
            vec![&["10.41.0.0/33", "cidr", "subnet", "prefix"]],
        ),
        (
            "subnet smaller than /30",
            vec![
                "network",
                "create",
                "bad5",
                "--vni",
                "14",
                "--subnet",
                "10.46.0.0/31",
            ],
            vec![&["10.46.0.0/31"], &["/30"]],
        ),
        (
            "gateway outside the subnet",
            vec![
                "network",
                "create",
                "bad6",
                "--vni",
                "15",
                "--subnet",
                "10.47.0.0/24",
                "--gateway",
                "10.47.1.1",
            ],
            vec![&["10.47.1.1"], &["outside"]],
        ),
        (
            "--mtu larger than the underlay allows",
            vec![
                "network",
                "create",
                "bad7",
                "--vni",
                "16",
                "--subnet",
                "10.48.0.0/24",
                "--mtu",
                "1451",
            ],
            vec![&["1451"], &["1450"]],
        ),
        (
            "invalid CIDR (not an address)",
            vec![
                "network", "create", "bad1", "--vni", "11", "--subnet", "banana",
            ],
            vec![&["banana"]],
        ),
        (
            "invalid IP (gateway)",
            vec![
                "network",
                "create",
                "bad2",
                "--vni",
                "12",
                "--subnet",
                "10.42.0.0/24",
                "--gateway",
                "10.42.0.999",
            ],
            vec![&["10.42.0.999"]],
        ),
        (
            "invalid IP (attach --ip)",
            vec!["attach", &c2, "--network", "good", "--ip", "10.40.0.300/24"],
            vec![&["10.40.0.300"]],
        ),
        (
            "invalid MAC",
            vec![
                "attach",
                &c2,
                "--network",
                "good",
                "--mac",
                "02:00:00:zz:00:01",
            ],
            vec![&["02:00:00:zz:00:01"]],
        ),
        (
            "VNI 0",
            vec![
                "network",
                "create",
                "bad3",
                "--vni",
                "0",
                "--subnet",
                "10.43.0.0/24",
            ],
            vec![&["vni"]],
        ),
        (
            "VNI 2^24",
            vec![
                "network",
                "create",
                "bad4",
                "--vni",
                "16777216",
                "--subnet",
                "10.43.0.0/24",
            ],
            vec![&["vni", "16777216"]],
        ),
        (
            "duplicate network name",
            vec![
                "network",
                "create",
                "good",
                "--vni",
                "13",
                "--subnet",
                "10.44.0.0/24",
            ],
            vec![
                &["good"],
                &["exist", "already", "duplicate", "taken", "in use", "used"],
            ],
        ),
        (
            "duplicate VNI",
            vec![
                "network",
                "create",
                "other",
                "--vni",
                "10",
                "--subnet",
                "10.45.0.0/24",
            ],
            vec![
                &["vni"],
                &[
                    "good",
                    "exist",
                    "already",
                    "duplicate",
                    "taken",
                    "in use",
                    "used",
                ],
            ],
        ),
        (
            "--ip outside the subnet",
            vec!["attach", &c2, "--network", "good", "--ip", "10.99.0.5/24"],
            vec![&["10.99.0.5"]],
        ),
        (
            "--ip already taken",
            vec!["attach", &c2, "--network", "good", "--ip", "10.40.0.5/24"],
            vec![
                &["10.40.0.5"],
                &["taken", "in use", "already", "used", "exist"],
            ],
        ),
        (
            "namespace does not exist",
            vec!["attach", &missing_ns, "--network", "good"],
            vec![&missing_g],
        ),
        (
            "network does not exist",
            vec!["attach", &c2, "--network", "nosuchnet"],
            vec![&["nosuchnet"]],
        ),
        (
            "same namespace attached twice",
            vec!["attach", &c1, "--network", "good", "--ip", "10.40.0.6/24"],
            vec![&c1_g, &["already", "attached"]],
        ),
        (
            "network rm with ports",
            vec!["network", "rm", "good"],
            vec![&c1_g],
        ),
        (
            "peer add garbage",
            vec!["peer", "add", "not-an-ip"],
            vec![&["not-an-ip"]],
        ),
    ];

    for usage in USAGE_ERRORS {
        assert!(
            cases.iter().any(|c| c.0 == usage),
            "USAGE_ERRORS names {usage:?}, which is no case"
        );
    }
    for (what, args, needles) in &cases {
        let out = a.vs(args);
        assert_user_error(what, args, &out, needles);
        let after = snapshot(a);
        assert_eq!(after, before, "case {what:?} changed the daemon's state");
        assert_eq!(
            links(&c2),
            vec!["lo".to_string()],
            "case {what:?} left a link in {c2}"
        );
    }

    // Daemon not running: say how to start it.
    let nowhere = lab.dir.join("no-daemon.sock");
    let args = ["network", "ls"];
    let out = vswitch_at(&nowhere, &args);
    assert_user_error("daemon not running", &args, &out, &[&["vswitch daemon"]]);

    // Not root: say so. The binary is run as `nobody`.
    let (runner, runner_args): (&str, Vec<&str>) = if which("runuser").is_some() {
        ("runuser", vec!["-u", "nobody", "--"])
    } else {
        require_tool("setpriv", "util-linux");
        (
            "setpriv",
            vec!["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"],
        )
    };
    let sock = a.socket.to_string_lossy().into_owned();
    let out = run_cmd(
        Command::new(runner)
            .args(&runner_args)
            .arg(VSWITCH)
            .args(["--socket", &sock, "network", "ls"])
            .env("VSWITCH_SOCKET", &sock),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("failed to execute") && !stderr.contains("cannot execute"),
        "`nobody` cannot execute {VSWITCH}; make the target dir world-readable: {stderr}"
    );
    assert_user_error("not root", &args, &out, &[&["root"]]);
    assert_eq!(
        snapshot(a),
        before,
        "the non-root call changed the daemon's state"
    );

    // Junk on the control socket: an error reply, and the daemon keeps serving. Binary junk,
    // JSON that is no request, and one line far larger than any request (no newline at all).
    let huge = vec![b'A'; 4 * 1024 * 1024];
    let junks: [(&str, &[u8]); 4] = [
        (
            "binary junk",
            b"\x00\x01\x02\xffgarbage{{{ not a request }}}\xfe\n",
        ),
        (
            "JSON, not a request",
            b"{\"op\":\"format_disk\",\"args\":[1,2,3]}\n",
        ),
        ("unterminated JSON", b"{\"NetworkCreate\":{\"name\":"),
        ("4 MiB line", &huge),
    ];
    for (what, junk) in junks {
        let mut s = UnixStream::connect(&a.socket).expect("connect to the control socket");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // The daemon may answer and hang up before reading all of an oversized line.
        let _ = s.write_all(junk);
        let _ = s.shutdown(Shutdown::Write);
        let mut reply = Vec::new();
        let r = s.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.to_lowercase().contains("error"),
            "{what} on the control socket should get an error reply; got {reply:?} ({r:?})\n{}",
            a.log_text()
        );
        eprintln!("{what} on the control socket: {}", reply.trim());
        assert_eq!(
            snapshot(a),
            before,
            "{what} on the control socket changed the daemon's state"
        );
    }
    a.ok(&["network", "inspect", "good"]);
}
