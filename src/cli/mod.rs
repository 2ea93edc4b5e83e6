//! The command line: the CLI contract in one place, and how replies are shown to people.

pub mod docs;
pub mod render;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;

use crate::wire::{vxlan, Mac, Vni};

pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitch.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vswitch";

#[derive(Debug, Parser)]
#[command(
    name = "vswitch",
    version,
    about = "A pure-userspace VXLAN switch for containers"
)]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, env = "VSWITCH_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print data as JSON (also accepted after the command).
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `--json`, for the commands that print data (not `daemon` or `key`).
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct JsonFlag {
    /// Print data as JSON.
    #[arg(long = "json", global = true)]
    pub json: bool,
}

impl Cli {
    /// Whether `--json` was given, before or after the command.
    pub fn json(&self) -> bool {
        self.json
            || match &self.command {
                Command::Network { out, .. }
                | Command::Peer { out, .. }
                | Command::Attach { out, .. }
                | Command::Detach { out, .. }
                | Command::Fdb { out, .. }
                | Command::Host { out, .. }
                | Command::Stats { out } => out.json,
                Command::Daemon(_)
                | Command::Key(_)
                | Command::Completions { .. }
                | Command::Man { .. } => false,
            }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the switch daemon in the foreground.
    Daemon(DaemonArgs),
    /// Create, list, inspect and remove networks.
    Network {
        #[command(flatten)]
        out: JsonFlag,
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Give a network namespace an interface on a network.
    Attach {
        #[command(flatten)]
        out: JsonFlag,
        #[command(flatten)]
        args: AttachArgs,
    },
    /// Remove a namespace's interface from a network.
    Detach {
        #[command(flatten)]
        out: JsonFlag,
        /// A name under /run/netns, or a path such as /proc/PID/ns/net.
        netns: String,
        #[arg(long)]
        network: Option<String>,
    },
    /// Manage the VTEPs this switch replicates to.
    Peer {
        #[command(flatten)]
        out: JsonFlag,
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// List the MAC table.
    Fdb {
        #[command(flatten)]
        out: JsonFlag,
        #[arg(long)]
        network: Option<String>,
    },
    /// Show the switch's counters.
    Stats {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The hosts of the cluster (cluster mode), or this host.
    Host {
        #[command(flatten)]
        out: JsonFlag,
        #[command(subcommand)]
        command: HostCommand,
    },
    /// Key material for encrypted networks.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (vswitch.1, vswitch-network.1, …) into DIR.
    Man { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Underlay address to bind (IPv4).
    #[arg(long, default_value = "0.0.0.0")]
    pub listen: Ipv4Addr,
    /// Underlay UDP port.
    #[arg(long, default_value_t = vxlan::UDP_PORT)]
    pub port: u16,
    /// A peer VTEP, IP or IP:PORT (repeatable).
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<SocketAddr>,
    /// Where networks and peers persist.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The underlay MTU (default: detected from the underlay interface).
    #[arg(long, value_parser = clap::value_parser!(u32).range(576..=65535))]
    pub underlay_mtu: Option<u32>,
    /// Storm control: broadcast/multicast frames per second each port may send (bursts of
    /// twice as many); 0 turns it off.
    #[arg(long, default_value_t = 1000)]
    pub storm_limit: u32,
    /// Data-path worker threads, each with its own queue of every port and its own underlay
    /// socket (default: one per CPU, at most 16).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=crate::dataplane::MAX_WORKERS as i64))]
    pub workers: Option<u16>,
    /// A resolver the networks' DNS forwards other names to, IP or IP:PORT (repeatable;
    /// default: the nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream", value_name = "IP[:PORT]", value_parser = parse_dns_upstream)]
    pub dns_upstreams: Vec<SocketAddr>,
    /// Cluster mode: keep networks and the host registry in etcd, e.g.
    /// etcd://192.0.2.10:2379[,HOST:PORT...]. Needs --listen with this host's address.
    #[arg(long, value_name = "etcd://HOST:PORT[,HOST:PORT...]", value_parser = parse_store)]
    pub store: Option<StoreUrl>,
    /// The etcd key prefix every key of this cluster lives under.
    #[arg(long, default_value = "/vswitch", requires = "store", value_parser = parse_store_prefix)]
    pub store_prefix: String,
    /// TLS to etcd: the CA certificate (PEM) that signs the etcd servers' certificates.
    #[arg(long, requires = "store")]
    pub store_ca: Option<PathBuf>,
    /// TLS to etcd: this host's client certificate (PEM).
    #[arg(long, requires_all = ["store_ca", "store_key"])]
    pub store_cert: Option<PathBuf>,
    /// TLS to etcd: the client certificate's private key (PEM).
    #[arg(long, requires_all = ["store_ca", "store_cert"])]
    pub store_key: Option<PathBuf>,
    /// This host's name in the cluster (default: the kernel's hostname).
    #[arg(long, value_parser = parse_host_name)]
    pub name: Option<String>,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics (default: no metrics server).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Serve Docker's network and IPAM driver protocol (`docker network create -d vswitch`) on
    /// this socket; without a path, where dockerd looks: /run/docker/plugins/vswitch.sock.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1,
          default_missing_value = crate::docker::DEFAULT_SOCKET)]
    pub docker_plugin: Option<PathBuf>,
    /// The host-local subnet containers of non-internal networks reach the outside through,
    /// source-NATed to this host's address (needs net.ipv4.ip_forward=1 and nftables).
    #[arg(long, value_name = "CIDR", default_value = crate::daemon::rules::egress::DEFAULT_SUBNET,
          value_parser = crate::daemon::rules::egress::parse_subnet)]
    pub egress_subnet: Ipv4Net,
    /// Instead of running: remove every port a stopped daemon left (their interfaces
    /// disappear from the containers) and forget them, for a clean uninstall.
    #[arg(long, conflicts_with_all = ["listen", "port", "peers", "underlay_mtu", "storm_limit", "workers", "store", "name", "metrics"])]
    pub cleanup: bool,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List the hosts: name, VTEP, and whether each is alive.
    Ls,
}

/// The endpoints of `--store etcd://HOST:PORT[,HOST:PORT...]`, each `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl(pub Vec<String>);

pub fn parse_store(s: &str) -> Result<StoreUrl, String> {
    crate::store::etcd::layout::parse_url(s).map(StoreUrl)
}

pub fn parse_store_prefix(s: &str) -> Result<String, String> {
    crate::store::etcd::layout::parse_prefix(s)
}

/// A host name: 1-64 letters, digits, '-', '_' or '.'.
pub fn parse_host_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a valid host name (1-64 letters, digits, '-', '_' or '.')"
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create {
        name: String,
        /// VXLAN network identifier, 1..=16777215.
        #[arg(long, value_parser = parse_vni)]
        vni: Vni,
        /// The network's IPv4 subnet, e.g. 10.10.0.0/24.
        #[arg(long, value_parser = parse_cidr)]
        subnet: Ipv4Net,
        /// A gateway address inside the subnet; containers get a default route via it.
        #[arg(long, value_parser = parse_ipv4)]
        gateway: Option<Ipv4Addr>,
        /// Container MTU (default: underlay MTU minus VXLAN overhead).
        #[arg(long, value_parser = clap::value_parser!(u32).range(68..=65535))]
        mtu: Option<u32>,
        /// Seal every frame with AES-256-GCM.
        #[arg(long, requires = "key_file")]
        encrypted: bool,
        /// The network key (from `vswitch key generate`), mode 0600.
        #[arg(long, requires = "encrypted")]
        key_file: Option<PathBuf>,
        /// No egress: containers reach their network and its gateway, nothing outside.
        #[arg(long)]
        internal: bool,
    },
    /// List networks.
    Ls,
    /// Show one network, its ports and counters.
    Inspect { name: String },
    /// Remove a network (it must have no ports).
    Rm { name: String },
    /// Replace an encrypted network's key, without dropping traffic.
    RotateKey {
        name: String,
        #[arg(long)]
        key_file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// A name under /run/netns, or a path such as /proc/PID/ns/net.
    pub netns: String,
    /// The network (may be left out when the daemon has exactly one).
    #[arg(long)]
    pub network: Option<String>,
    /// The address, as CIDR or a bare IP (default: the next free address, probed for conflicts).
    #[arg(long, value_parser = parse_ip_cidr)]
    pub ip: Option<(Ipv4Addr, Option<u8>)>,
    /// The interface's MAC (default: a random locally administered one).
    #[arg(long, value_parser = parse_mac)]
    pub mac: Option<Mac>,
    /// The interface's name inside the namespace.
    #[arg(long, default_value = "eth0", value_parser = parse_ifname)]
    pub ifname: String,
    /// Let the port send from any MAC and address (for a container that bridges other
    /// stations); by default it may send only as the MAC and address it was given.
    #[arg(long)]
    pub no_port_security: bool,
    /// The container's name in the network's DNS (default: NETNS, when it is a named
    /// namespace).
    #[arg(long, value_parser = parse_dns_name)]
    pub name: Option<String>,
    /// Another name for the container in the network's DNS (repeatable; several containers
    /// may share one).
    #[arg(long = "alias", value_parser = parse_dns_name)]
    pub aliases: Vec<String>,
    /// Do not write /etc/netns/NETNS/resolv.conf (the gateway as nameserver).
    #[arg(long)]
    pub no_dns: bool,
}

fn parse_dns_name(s: &str) -> Result<String, String> {
    crate::core::dns::check_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Add a peer VTEP.
    Add {
        #[arg(value_parser = parse_peer)]
        addr: SocketAddr,
    },
    /// Remove a peer VTEP.
    Rm {
        #[arg(value_parser = parse_peer)]
        addr: SocketAddr,
    },
    /// List peers.
    Ls,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print (or write, mode 0600) a new random 256-bit network key.
    Generate {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn parse_vni(s: &str) -> Result<Vni, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a VNI (a number 1..=16777215)"))?;
    Vni::new(n).map_err(|_| format!("VNI {n} is out of range: use 1..=16777215"))
}

pub fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| format!("'{s}' is not an IPv4 CIDR (like 10.10.0.0/24)"))?;
    if net.prefix_len() > 30 {
        return Err(format!(
            "subnet {s} is too small: use a prefix of /30 or shorter"
        ));
    }
    if net != net.trunc() {
        return Err(format!(
            "'{s}' has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an IPv4 address"))
}

/// `10.0.0.5/24` or `10.0.0.5`.
pub fn parse_ip_cidr(s: &str) -> Result<(Ipv4Addr, Option<u8>), String> {
    match s.split_once('/') {
        None => Ok((parse_ipv4(s)?, None)),
        Some((ip, prefix)) => {
            let ip = parse_ipv4(ip)?;
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| format!("'{s}' has an invalid prefix length"))?;
            Ok((ip, Some(prefix)))
        }
    }
}

pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let mac: Mac = s
        .parse()
        .map_err(|e: crate::wire::ethernet::MacParseError| e.to_string())?;
    if !mac.is_valid_source() {
        return Err(format!(
            "MAC {mac} is a multicast or zero address; a station needs a unicast MAC"
        ));
    }
    Ok(mac)
}

pub fn parse_ifname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s.contains(['/', ':'])
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a valid interface name (1-15 characters, no '/', ':' or spaces)"
        ))
    }
}

/// `IP` or `IP:PORT` (IPv4; the port defaults to 4789).
fn parse_dns_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("'{s}' is not a resolver address (IP or IP:PORT)"))
}

pub fn parse_peer(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return match addr {
            SocketAddr::V4(_) if addr.port() != 0 => Ok(addr),
            SocketAddr::V4(_) => Err(format!("peer '{s}' has port 0")),
            SocketAddr::V6(_) => Err(format!("peer '{s}': IPv6 underlays are not supported yet")),
        };
    }
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Ok(SocketAddr::new(IpAddr::V4(ip), vxlan::UDP_PORT)),
        Ok(IpAddr::V6(_)) => Err(format!("peer '{s}': IPv6 underlays are not supported yet")),
        Err(_) => Err(format!("'{s}' is not a peer address (IP or IP:PORT)")),
    }
}

/// A clap error as rendered, cut to one message line and one usage line: multi-line messages
/// (a list of missing arguments) are joined with `, `; clap's tips are left out.
pub fn usage_error_lines(rendered: &str) -> (String, String) {
    let mut message = Vec::new();
    let mut usage = String::from("`vswitch --help` and `vswitch COMMAND --help` list the options");
    let mut lines = rendered.lines();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        message.push(
            line.strip_prefix("error:")
                .unwrap_or(line)
                .trim()
                .to_owned(),
        );
    }
    for line in lines {
        if let Some(u) = line.trim().strip_prefix("Usage:") {
            usage = format!("usage: {} (--help explains each option)", u.trim());
            break;
        }
        if let Some(tip) = line.trim().strip_prefix("tip:") {
            message.push(format!("({})", tip.trim()));
        }
    }
    let mut text = message.remove(0);
    if !message.is_empty() {
        text = format!("{} {}", text.trim_end_matches(':'), message.join(", "));
    }
    (text, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers_name_the_bad_input() {
        assert!(parse_vni("0").unwrap_err().contains("out of range"));
        assert!(parse_vni("16777216").unwrap_err().contains("out of range"));
        assert!(parse_vni("x").unwrap_err().contains("'x'"));
        assert!(parse_cidr("10.0.0.0/33")
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert!(parse_cidr("10.0.0.1/24")
            .unwrap_err()
            .contains("10.0.0.0/24"));
        assert!(parse_ipv4("10.0.0").unwrap_err().contains("'10.0.0'"));
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert_eq!(
            parse_peer("192.0.2.1").expect("ip"),
            "192.0.2.1:4789".parse().expect("addr")
        );
        assert_eq!(parse_peer("192.0.2.1:5000").expect("ip").port(), 5000);
        assert!(parse_peer("nope").is_err());
        assert_eq!(
            parse_ip_cidr("10.0.0.5").expect("ip"),
            ("10.0.0.5".parse().expect("ip"), None)
        );
        assert!(parse_ip_cidr("10.0.0.5/40").is_err());
        assert!(parse_ifname("a/b").is_err());
        assert!(parse_ifname("abcdefghijklmnop").is_err());
        assert!(parse_host_name("a/b").unwrap_err().contains("'a/b'"));
        assert_eq!(parse_host_name("node-1.lab").expect("ok"), "node-1.lab");
    }

    #[test]
    fn cluster_flags_need_store_and_tls_flags_go_together() {
        let parse = |args: &[&str]| {
            let mut v = vec!["vswitch", "daemon"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v)
        };
        let Command::Daemon(a) = parse(&["--store", "etcd://192.0.2.10:2379,h2"])
            .expect("ok")
            .command
        else {
            panic!("not daemon")
        };
        assert_eq!(
            a.store,
            Some(StoreUrl(vec![
                "192.0.2.10:2379".to_string(),
                "h2:2379".to_string()
            ]))
        );
        assert_eq!(a.store_prefix, "/vswitch");
        assert!(parse(&["--store-prefix", "/x"]).is_err(), "needs --store");
        assert!(parse(&["--store", "etcd://h:1", "--store-cert", "c"]).is_err());
        assert!(parse(&[
            "--store",
            "etcd://h:1",
            "--store-ca",
            "a",
            "--store-cert",
            "c",
            "--store-key",
            "k"
        ])
        .is_ok());
        assert!(parse(&["--store", "http://h:1"]).is_err());
        assert!(parse(&["--store", "etcd://h:1", "--store-prefix", "rel"]).is_err());
    }

    #[test]
    fn usage_errors_become_one_line_and_a_hint() {
        let e = Cli::try_parse_from(["vswitch", "network", "create", "x"]).expect_err("missing");
        let (msg, hint) = usage_error_lines(&e.render().to_string());
        assert!(!msg.contains('\n') && !hint.contains('\n'));
        assert!(
            msg.contains("--vni <VNI>") && msg.contains("--subnet <SUBNET>"),
            "{msg}"
        );
        assert!(hint.starts_with("usage: vswitch network create"), "{hint}");
        let e = Cli::try_parse_from([
            "vswitch",
            "network",
            "create",
            "x",
            "--vni",
            "0",
            "--subnet",
            "10.0.0.0/24",
        ])
        .expect_err("bad vni");
        let (msg, _) = usage_error_lines(&e.render().to_string());
        assert_eq!(
            msg,
            "invalid value '0' for '--vni <VNI>': VNI 0 is out of range: use 1..=16777215"
        );
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn json_goes_before_or_after_data_commands_and_never_on_the_daemon() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.json());
        assert_eq!(parse(&["vswitch", "--json", "stats"]).ok(), Some(true));
        assert_eq!(parse(&["vswitch", "stats", "--json"]).ok(), Some(true));
        assert_eq!(
            parse(&["vswitch", "network", "ls", "--json"]).ok(),
            Some(true)
        );
        assert_eq!(
            parse(&["vswitch", "network", "--json", "ls"]).ok(),
            Some(true)
        );
        assert_eq!(parse(&["vswitch", "peer", "ls"]).ok(), Some(false));
        assert!(parse(&["vswitch", "daemon", "--json"]).is_err());
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("daemon")
            .expect("daemon")
            .render_long_help()
            .to_string();
        assert!(!help.contains("--json"), "{help}");
        assert!(help.contains("--listen"), "{help}");
    }
}
