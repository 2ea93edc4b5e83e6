//! systemd's `Type=notify`: the daemon sends `READY=1` to `$NOTIFY_SOCKET` once its control
//! socket serves, not before.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::support::*;

#[test]
fn the_daemon_tells_systemd_it_is_ready_once_its_socket_serves() {
    let lab = Lab::new(1);
    let host = &lab.hosts[0];
    let notify = lab.dir.join("notify.sock");
    let systemd = UnixDatagram::bind(&notify).expect("bind the notify socket");
    systemd
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let daemon = Bg::spawn(
        ns_cmd(&host.ns.name, VSWITCH)
            .env("NOTIFY_SOCKET", &notify)
            .arg("--socket")
            .arg(&host.socket)
            .args(["daemon", "--listen", &host.ip, "--state-dir"])
            .arg(&host.state),
    );
    let mut buf = [0u8; 256];
    let n = systemd
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification from the daemon within 20 s: {e}"));
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.lines().any(|l| l == "READY=1"), "{message:?}");
    // Ready means ready: the control socket answers now.
    let out = vswitch_at(&host.socket, &["network", "ls"]);
    assert!(
        out.status.success(),
        "the daemon said READY=1 but its socket does not answer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = daemon.interrupt(Duration::from_secs(10));
    assert!(done.status.success(), "{done:?}");
}
