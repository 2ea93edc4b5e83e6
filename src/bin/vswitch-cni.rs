//! `vswitch-cni`: the CNI plugin. A container runtime runs it with `CNI_*` in the environment
//! and the network configuration on stdin; it prints the result (or the spec's error JSON) on
//! stdout and exits 0 (or 1).

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use vswitch::cni::{self, plugin, CniError, Invocation};

fn main() -> ExitCode {
    // Stdin is read whole before anything else, so the runtime's write never fails whatever
    // the outcome (VERSION gets `{"cniVersion": …}` too); not from a terminal, where someone
    // typed `CNI_COMMAND=VERSION vswitch-cni`.
    let mut stdin = Vec::new();
    let read = if std::io::stdin().is_terminal() {
        Ok(())
    } else {
        std::io::stdin()
            .read_to_end(&mut stdin)
            .map(drop)
            .map_err(|e| {
                CniError::new(
                    cni::code::IO_FAILURE,
                    "cannot read the network configuration",
                    e.to_string(),
                )
            })
    };
    let outcome = read
        .and_then(|()| Invocation::from_env(|name| std::env::var(name).ok()))
        .and_then(|inv| plugin::run(&inv, &stdin));
    let version = cni::NetConf::parse(&stdin).ok().map(|c| c.cni_version);
    let (out, status) = match outcome {
        Ok(Some(v)) => (Some(v), ExitCode::SUCCESS),
        Ok(None) => (None, ExitCode::SUCCESS),
        Err(e) => (Some(e.to_json(version.as_deref())), ExitCode::FAILURE),
    };
    if let Some(v) = out {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{v}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    status
}
