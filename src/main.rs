//! The `vswitch` command: parse the command line, call the library, map errors to exit codes
//! (0 ok, 1 refused or failed, 2 usage).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use vswitch::cli::{
    AttachArgs, Cli, Command, HostCommand, KeyCommand, NetworkCommand, PeerCommand,
};
use vswitch::control::{self, client, Request};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let needs_root = !matches!(
        cli.command,
        Command::Key(_) | Command::Completions { .. } | Command::Man { .. }
    );
    if needs_root && !vswitch::user::is_root() {
        anyhow::bail!(
            "vswitch needs root (CAP_NET_ADMIN, and the control socket is root's): run it with sudo"
        );
    }
    let json = cli.json();
    let request = match cli.command {
        Command::Daemon(a) if a.cleanup => {
            let done = vswitch::daemon::cleanup(&a.state_dir, &cli.socket)?;
            println!(
                "removed {} ports ({} were already gone)",
                done.removed, done.gone
            );
            return Ok(());
        }
        Command::Daemon(a) => {
            init_tracing();
            let cluster = a.store.map(|url| vswitch::daemon::ClusterConfig {
                endpoints: url.0,
                prefix: a.store_prefix,
                tls: a.store_ca.map(|ca| vswitch::store::TlsFiles {
                    ca,
                    identity: a.store_cert.zip(a.store_key),
                }),
            });
            return Ok(vswitch::daemon::run(vswitch::daemon::DaemonConfig {
                listen: a.listen,
                port: a.port,
                peers: a.peers,
                state_dir: a.state_dir,
                underlay_mtu: a.underlay_mtu,
                storm_limit: a.storm_limit,
                workers: a.workers,
                dns_upstreams: a.dns_upstreams,
                socket: cli.socket,
                name: a.name,
                cluster,
                metrics: a.metrics,
                docker_plugin: a.docker_plugin,
                egress_subnet: a.egress_subnet,
            })?);
        }
        Command::Key(KeyCommand::Generate { out }) => return key_generate(out.as_deref()),
        Command::Completions { shell } => {
            vswitch::cli::docs::completions(shell, &mut std::io::stdout());
            return Ok(());
        }
        Command::Man { dir } => return Ok(vswitch::cli::docs::man_pages(&dir)?),
        Command::Network { command, .. } => match command {
            NetworkCommand::Create {
                name,
                vni,
                subnet,
                gateway,
                mtu,
                encrypted,
                key_file,
                internal,
            } => Request::NetworkCreate(control::NetworkSpec {
                name,
                vni,
                subnet,
                gateway,
                mtu,
                encrypted,
                key_file: key_file.map(absolute).transpose()?,
                internal,
            }),
            NetworkCommand::Ls => Request::NetworkList,
            NetworkCommand::Inspect { name } => Request::NetworkInspect { name },
            NetworkCommand::Rm { name } => Request::NetworkRemove { name },
            NetworkCommand::RotateKey { name, key_file } => Request::NetworkRotateKey {
                name,
                key_file: absolute(key_file)?,
            },
        },
        Command::Attach {
            args:
                AttachArgs {
                    netns,
                    network,
                    ip,
                    mac,
                    ifname,
                    no_port_security,
                    name,
                    aliases,
                    no_dns,
                },
            ..
        } => Request::Attach(control::AttachRequest {
            netns,
            network,
            ip: ip.map(|(ip, _)| ip),
            prefix: ip.and_then(|(_, p)| p),
            mac,
            ifname: Some(ifname),
            no_port_security,
            name,
            aliases,
            no_dns,
            container_id: None,
            handoff: false,
        }),
        Command::Detach { netns, network, .. } => Request::Detach { netns, network },
        Command::Peer { command, .. } => match command {
            PeerCommand::Add { addr } => Request::PeerAdd { addr },
            PeerCommand::Rm { addr } => Request::PeerRemove { addr },
            PeerCommand::Ls => Request::PeerList,
        },
        Command::Fdb { network, .. } => Request::Fdb { network },
        Command::Stats { .. } => Request::Stats,
        Command::Host {
            command: HostCommand::Ls,
            ..
        } => Request::HostList,
    };
    let reply = client::call(&cli.socket, &request, Duration::from_secs(30))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reply)?)?;
    } else {
        vswitch::cli::render::human(&request, &reply, &mut out)?;
    }
    Ok(())
}

/// Help and version go to stdout as clap writes them; a usage error is one `error:` line and a
/// hint, exit status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            },
        );
    }
    let rendered = e.render().to_string();
    let (message, usage) = vswitch::cli::usage_error_lines(&rendered);
    eprintln!("error: {message}");
    eprintln!("hint: {usage}");
    ExitCode::from(2)
}

fn absolute(p: std::path::PathBuf) -> anyhow::Result<std::path::PathBuf> {
    Ok(std::path::absolute(&p)?)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never in a log file or a journal.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn key_generate(out: Option<&std::path::Path>) -> anyhow::Result<()> {
    use vswitch::daemon::keys;
    let key = keys::generate()?;
    match out {
        Some(path) => {
            keys::write_new(path, &key)?;
            eprintln!(
                "wrote a new 256-bit key to {} (mode 0600); copy it to every host of the network",
                path.display()
            );
        }
        None => print!("{}", keys::encode(&key).as_str()),
    }
    Ok(())
}
