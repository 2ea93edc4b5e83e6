//! A real container runtime nobody here wrote: podman with its CNI network backend runs
//! `vswitch-cni` from a CNI config, as on a host. Two simulated hosts, each a vswitch daemon;
//! a container on each (one CNI network config per host, both on the vswitch network `blue`)
//! pings the other through the overlay; `podman rm` and `run --rm` DEL their ports.
//!
//! Everything podman keeps (storage, run state, its config, the CNI configs and plugin dir) is
//! under the lab's temp dir. The two places it has no option for, libcni's result cache
//! (`/var/lib/cni`) and the image blob-info cache (`/var/lib/containers/cache`), get temp dirs
//! bind-mounted over them in a mount namespace of each podman command's own; `/run/netns`, a
//! shared mount, still carries the namespaces podman makes back to the daemons. The image is a
//! busybox rootfs (Debian's busybox-static) put in with `podman import`, no registry. podman's
//! default RLIMIT_NOFILE/NPROC (1048576) exceed this machine's hard limits, which runc may not
//! raise; the containers get 1024 instead.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const PLUGIN: &str = env!("CARGO_BIN_EXE_vswitch-cni");
const BUSYBOX: &str = "/bin/busybox";

/// The fixed paths podman (4.3) and libcni write to whatever the options say, and the temp
/// dirs mounted over them.
const FIXED: [(&str, &str); 2] = [
    ("cni-cache", "/var/lib/cni"),
    ("containers-cache", "/var/lib/containers/cache"),
];

/// podman with all of its state under `dir`; removes its containers on drop.
struct Podman {
    dir: PathBuf,
    /// Empty mount points this test had to create, removed on drop.
    made: RefCell<Vec<PathBuf>>,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        for d in ["net.d", "cni-bin", "rootfs/bin", "tmp"] {
            fs::create_dir_all(dir.join(d)).expect("podman dirs");
        }
        let p = Podman {
            dir: dir.to_owned(),
            made: RefCell::default(),
        };
        for (mine, fixed) in FIXED {
            fs::create_dir_all(dir.join(mine)).expect("cache dir");
            let mut missing = Vec::new();
            let mut at = Path::new(fixed);
            while !at.exists() {
                missing.push(at.to_owned());
                at = at.parent().expect("under /");
            }
            fs::create_dir_all(fixed).expect("mount point");
            p.made.borrow_mut().extend(missing);
        }
        fs::copy(PLUGIN, dir.join("cni-bin/vswitch-cni")).expect("install the plugin");
        fs::write(
            dir.join("containers.conf"),
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
                dir.join("cni-bin").display(),
                dir.join("net.d").display()
            ),
        )
        .expect("containers.conf");
        p
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let d = |s: &str| self.dir.join(s).display().to_string();
        let script = "mount --bind \"$1\" /var/lib/cni && \
                      mount --bind \"$2\" /var/lib/containers/cache && shift 2 && exec podman \"$@\"";
        run_cmd(
            Command::new("unshare")
                .args([
                    "--mount",
                    "--propagation",
                    "unchanged",
                    "--",
                    "sh",
                    "-c",
                    script,
                    "sh",
                ])
                .args([d("cni-cache"), d("containers-cache")])
                .env("CONTAINERS_CONF", d("containers.conf"))
                .args([
                    "--root",
                    &d("root"),
                    "--runroot",
                    &d("run"),
                    "--tmpdir",
                    &d("tmp"),
                ])
                .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
                .args(["--events-backend", "file"])
                .args(args),
            Duration::from_secs(120),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "podman {} failed ({})\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A CNI network config `name` for the vswitch network `network` on the daemon at `socket`.
    fn network(&self, name: &str, network: &str, socket: &Path) {
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [{"type": "vswitch-cni", "network": network, "socket": socket}],
        });
        fs::write(
            self.dir.join(format!("net.d/{name}.conflist")),
            conf.to_string(),
        )
        .expect("conflist");
    }

    /// `localhost/busybox`, imported from a rootfs of the static busybox.
    fn import_busybox(&self) {
        let root = self.dir.join("rootfs");
        fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        for applet in ["sh", "ping", "ip", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet");
        }
        let tar = self.dir.join("rootfs.tar");
        sh_ok(&[
            "tar",
            "-C",
            &root.display().to_string(),
            "-cf",
            &tar.display().to_string(),
            ".",
        ]);
        self.ok(&[
            "import",
            "-q",
            &tar.display().to_string(),
            "localhost/busybox:latest",
        ]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force", "--time", "0"]);
        // Deepest first; each is empty (the caches were mounted over them elsewhere).
        for dir in self.made.borrow().iter() {
            let _ = fs::remove_dir(dir);
        }
    }
}

const LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn ports(h: &Host) -> Vec<Value> {
    h.json(&["network", "inspect", "blue"])["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn podman_containers_on_two_hosts_ping_through_vswitch() {
    require_tool("podman", "podman");
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing; install the busybox-static package"
    );
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("blue", 160, "10.160.0.0/24", &["--gateway", "10.160.0.254"]);
    }
    let podman = Podman::new(&lab.dir.join("podman"));
    podman.network("blue-a", "blue", &lab.hosts[0].socket);
    podman.network("blue-b", "blue", &lab.hosts[1].socket);
    podman.import_busybox();

    let mut run = vec!["run", "-d", "--name", "c1"];
    run.extend(LIMITS);
    run.extend(["--network", "blue-a", "localhost/busybox", "sleep", "120"]);
    let id = podman.ok(&run).trim().to_string();
    let a = ports(&lab.hosts[0]);
    assert_eq!(a.len(), 1, "host A's ports: {a:?}");
    assert_eq!(a[0]["container_id"].as_str(), Some(id.as_str()), "{a:?}");
    let ip = a[0]["ip"]
        .as_str()
        .expect("an address")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();

    // A container on host B reaches c1 on host A; it also has the default route via the gateway.
    let mut run = vec!["run", "--rm"];
    run.extend(LIMITS);
    let script = format!("ip route | grep -q 'default via 10.160.0.254' && ping -c 3 -W 5 {ip}");
    run.extend([
        "--network",
        "blue-b",
        "localhost/busybox",
        "sh",
        "-c",
        &script,
    ]);
    let pinged = podman.ok(&run);
    // libcni's cache went to the temp dir; the machine's is untouched.
    assert!(
        podman.dir.join("cni-cache/results").is_dir(),
        "libcni cached elsewhere"
    );
    assert!(pinged.contains("3 packets received"), "{pinged}");
    // `run --rm` ran DEL on host B, and `podman rm` on host A.
    assert_eq!(
        ports(&lab.hosts[1]),
        Vec::<Value>::new(),
        "host B kept a port"
    );
    podman.ok(&["rm", "--force", "--time", "0", "c1"]);
    assert_eq!(
        ports(&lab.hosts[0]),
        Vec::<Value>::new(),
        "host A kept a port"
    );
}
