//! `vswitch daemon --metrics`: a scrape after traffic, checked by Prometheus' own `promtool`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// GET `url` from inside `ns` with `accept` (python3's urllib); returns the body.
fn scrape(ns: &str, url: &str, accept: &str) -> String {
    let script = "import sys, urllib.request as u\n\
                  r = u.Request(sys.argv[1], headers={'Accept': sys.argv[2]} if sys.argv[2] else {})\n\
                  sys.stdout.write(u.urlopen(r, timeout=10).read().decode())";
    let out = run_cmd(
        &mut py_cmd(ns, script, &[url, accept]),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "scraping {url} in {ns} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn metrics_after_traffic_pass_promtool() {
    require_tool("promtool", "prometheus");
    let mut lab = Lab::new(2);
    for i in 0..2 {
        let mut args = lab.mesh_args(i);
        if i == 0 {
            args.extend(["--metrics".to_string(), "127.0.0.1:9477".to_string()]);
        }
        lab.hosts[i].start(&args);
        lab.hosts[i].create_network("blue", 150, "10.150.0.0/24", &["--gateway", "10.150.0.254"]);
    }
    let c1 = lab.netns("c1");
    let c2 = lab.netns("c2");
    lab.hosts[0].attach(&c1, "blue", &["--ip", "10.150.0.1/24"]);
    lab.hosts[1].attach(&c2, "blue", &["--ip", "10.150.0.2/24"]);
    lab.assert_ping(&c1, "10.150.0.2");

    let host = lab.hosts[0].ns.name.clone();
    let text = scrape(&host, "http://127.0.0.1:9477/metrics", "");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let checked = promtool.wait_with_output().expect("promtool");
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}\n--- scraped ---\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert!(value("vswitch_network_rx_frames_total{network=\"blue\",vni=\"150\"}") >= 3);
    assert!(value("vswitch_peer_tx_frames_total{peer=\"192.0.2.2:4789\"}") >= 3);
    assert_eq!(value("vswitch_build_info{version=\"0.1.0\"}"), 1);
    assert_eq!(
        value("vswitch_fdb_entries{network=\"blue\",vni=\"150\"}"),
        2
    );
    assert_eq!(value("vswitch_store_connected{backend=\"file\"}"), 1);

    // Prometheus asks for OpenMetrics and gets it; other paths are 404.
    let open = scrape(
        &host,
        "http://127.0.0.1:9477/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    let missing = ns_exec(
        &host,
        &[
            python(),
            "-c",
            "import urllib.request as u; u.urlopen('http://127.0.0.1:9477/')",
        ],
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    // Host B was not asked for metrics and serves none.
    let none = ns_exec(
        &lab.hosts[1].ns.name,
        &[
            python(),
            "-c",
            "import urllib.request as u; u.urlopen('http://127.0.0.1:9477/metrics')",
        ],
    );
    assert!(!none.status.success(), "host B serves metrics unasked");
}
