//! Shell completions and man pages, generated from the clap definitions so they cannot drift
//! from the CLI (`vswitch completions SHELL`, `vswitch man DIR`; `scripts/install.sh` installs
//! both).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::Cli;

/// Writes `shell`'s completion script for `vswitch` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "vswitch", out);
}

/// Writes one man page per command (`vswitch.1`, `vswitch-network-create.1`, …) into `dir`,
/// creating it.
pub fn man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_the_commands_and_man_pages_cover_them() {
        let mut bash = Vec::new();
        completions(clap_complete::Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).expect("utf-8");
        for word in [
            "attach",
            "detach",
            "network",
            "rotate-key",
            "--metrics",
            "--socket",
        ] {
            assert!(bash.contains(word), "bash completion lacks {word}");
        }
        let dir = std::env::temp_dir().join(format!("vswitch-man-{}", std::process::id()));
        man_pages(&dir).expect("man pages");
        let page = std::fs::read_to_string(dir.join("vswitch-attach.1")).expect("attach page");
        assert!(page.contains(".TH vswitch-attach 1"), "{page}");
        assert!(page.contains("no\\-port\\-security"), "{page}");
        assert!(dir.join("vswitch-daemon.1").exists() && dir.join("vswitch.1").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
