//! `scripts/install.sh` into a temporary DESTDIR: every file where it belongs (binaries, the
//! systemd unit, completions, man pages, the example config), and `--uninstall` removing exactly
//! those, keeping the config. Needs no root (DESTDIR installs leave systemd alone).

use std::path::{Path, PathBuf};
use std::process::Command;

fn install(dest: &Path, extra: &[&str]) {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_vswitch"))
        .parent()
        .expect("bin dir");
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"))
        .arg("--destdir")
        .arg(dest)
        .arg("--bin-dir")
        .arg(bin_dir)
        .args(extra)
        .output()
        .expect("run install.sh");
    assert!(
        out.status.success(),
        "install.sh {extra:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(files(&p));
        } else {
            all.push(p);
        }
    }
    all.sort();
    all
}

#[test]
fn install_puts_everything_in_place_and_uninstall_takes_it_back() {
    let dest = std::env::temp_dir().join(format!("vswitch-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dest);
    install(&dest, &[]);
    let at = |p: &str| dest.join(p.trim_start_matches('/'));
    for f in [
        "/usr/local/bin/vswitch",
        "/opt/cni/bin/vswitch-cni",
        "/etc/systemd/system/vswitch.service",
        "/etc/vswitch/vswitch.env",
        "/usr/local/share/bash-completion/completions/vswitch",
        "/usr/local/share/zsh/site-functions/_vswitch",
        "/usr/local/share/fish/vendor_completions.d/vswitch.fish",
        "/usr/local/share/man/man1/vswitch.1",
        "/usr/local/share/man/man1/vswitch-daemon.1",
        "/usr/local/share/man/man1/vswitch-network-create.1",
    ] {
        assert!(at(f).is_file(), "{f} was not installed");
    }
    let unit = std::fs::read_to_string(at("/etc/systemd/system/vswitch.service")).expect("unit");
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    assert!(
        unit.contains("\nExecStart=/usr/local/bin/vswitch daemon $VSWITCH_DAEMON_ARGS\n"),
        "{unit}"
    );
    // The bash completion script is valid bash and completes the commands.
    let bash = at("/usr/local/share/bash-completion/completions/vswitch");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .status()
        .expect("bash -n");
    assert!(syntax.success(), "the bash completion does not parse");
    let completes = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(vswitch net); COMP_CWORD=1; COMP_LINE='vswitch net'; COMP_POINT=11; _vswitch vswitch net vswitch; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        ))
        .output()
        .expect("complete");
    assert_eq!(
        String::from_utf8_lossy(&completes.stdout).trim(),
        "network",
        "{}",
        String::from_utf8_lossy(&completes.stderr)
    );

    // A second install keeps an edited config.
    std::fs::write(
        at("/etc/vswitch/vswitch.env"),
        "VSWITCH_DAEMON_ARGS=\"--peer 192.0.2.9\"\n",
    )
    .expect("edit config");
    install(&dest, &[]);
    let conf = std::fs::read_to_string(at("/etc/vswitch/vswitch.env")).expect("config");
    assert!(
        conf.contains("192.0.2.9"),
        "install overwrote the config: {conf}"
    );

    install(&dest, &["--uninstall"]);
    assert_eq!(
        files(&dest),
        vec![at("/etc/vswitch/vswitch.env")],
        "uninstall left files (or took the config)"
    );
    let _ = std::fs::remove_dir_all(&dest);
}
