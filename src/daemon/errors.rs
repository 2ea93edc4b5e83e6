//! Why the daemon refused a request. Every message names the problem and, where there is one,
//! the fix; a refused request changed nothing.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;

use super::keys::KeyFileError;
use crate::core::ipam::IpamError;
use crate::core::seal::RotateError;
use crate::netns::NetnsError;
use crate::store::StoreError;
use crate::wire::{Mac, Vni};

/// A refused (or failed and undone) request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("'{0}' is not a valid network name (1-64 letters, digits, '-', '_' or '.')")]
    InvalidName(String),
    #[error("a network named '{0}' already exists")]
    NetworkExists(String),
    #[error("VNI {vni} is already used by network '{network}'")]
    VniInUse { vni: Vni, network: String },
    #[error("gateway: {0}")]
    Gateway(IpamError),
    #[error("{0}")]
    DnsName(crate::core::dns::NameError),
    #[error("--encrypted and --key-file go together")]
    KeyWithoutEncryption,
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(
        "MTU {mtu} does not fit: the underlay MTU {underlay_mtu} leaves at most {max} for containers"
    )]
    MtuTooBig {
        mtu: u32,
        underlay_mtu: u32,
        max: u32,
    },
    #[error("MTU {0} is below the IPv4 minimum of 68")]
    MtuTooSmall(u32),
    #[error("no network named '{name}' (networks: {existing})")]
    NoSuchNetwork { name: String, existing: String },
    #[error(
        "network '{name}' still has ports: {users}; detach them first (vswitch detach NETNS --network {name})"
    )]
    NetworkHasPorts { name: String, users: String },
    #[error("network '{0}' is not encrypted, so it has no key to rotate")]
    NotEncrypted(String),
    #[error("cannot rotate the key of '{network}': {source}")]
    Rotate {
        network: String,
        source: RotateError,
    },
    /// The running rotation, as `network inspect` words it (times from now, not the daemon's
    /// clock).
    #[error(
        "cannot rotate the key of '{network}': a key rotation is already in progress ({phase}); \
         rotate again once it is stable (vswitch network inspect {network} shows it)"
    )]
    RotationInProgress { network: String, phase: String },
    #[error("there are no networks yet: create one with `vswitch network create`")]
    NoNetworks,
    #[error("several networks exist ({0}): say which with --network")]
    WhichNetwork(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("namespace '{netns}' is already attached to network '{network}' (as {ifname})")]
    AlreadyAttached {
        netns: String,
        network: String,
        ifname: String,
    },
    #[error(
        "namespace '{netns}' already has an interface named '{ifname}'; pick another with --ifname"
    )]
    InterfaceExists { netns: String, ifname: String },
    #[error(transparent)]
    Address(#[from] IpamError),
    #[error("{ip}/{prefix} does not match the network's subnet {subnet}: use /{}", subnet.prefix_len())]
    PrefixMismatch {
        ip: Ipv4Addr,
        prefix: u8,
        subnet: Ipv4Net,
    },
    #[error("{ip} is already taken on network '{network}'")]
    AddressTaken { ip: Ipv4Addr, network: String },
    #[error("{ip} is already in use on the overlay (by {owner})")]
    AddressInUse { ip: Ipv4Addr, owner: String },
    #[error(
        "{claims} addresses in a row on network '{network}' were answered for (the last, {last}, \
         by {owner}); a station may be answering ARP for every address: find it, or give --ip"
    )]
    TooManyClaims {
        network: String,
        claims: u32,
        last: Ipv4Addr,
        owner: String,
    },
    #[error(
        "network '{network}' ({subnet}) overlaps this host's egress subnet {egress}, through \
         which containers reach the outside: choose another --subnet, create the network with \
         --internal (no egress), or start the daemon with another --egress-subnet"
    )]
    EgressOverlap {
        network: String,
        subnet: Ipv4Net,
        egress: Ipv4Net,
    },
    #[error(
        "the egress subnet {subnet} has no free address left: start the daemon with a larger \
         --egress-subnet, or attach to an --internal network"
    )]
    NoFreeEgressAddress { subnet: Ipv4Net },
    #[error(transparent)]
    Masquerade(#[from] super::masquerade::MasqueradeError),
    #[error("network '{network}' has no free address left in {subnet}")]
    NoFreeAddress { network: String, subnet: Ipv4Net },
    #[error("cannot check {ip} for conflicts on the overlay: {source}; nothing was changed")]
    ProbeFailed {
        ip: Ipv4Addr,
        source: super::probe::ProbeError,
    },
    #[error("MAC {mac} is already used on network '{network}'")]
    MacInUse { mac: Mac, network: String },
    #[error("namespace '{netns}' is not attached to network '{network}'")]
    NotAttachedTo { netns: String, network: String },
    #[error("namespace '{0}' is not attached to any network")]
    NotAttached(String),
    #[error("namespace '{0}' is attached to several networks: say which with --network")]
    AttachedToSeveral(String),
    #[error("peer {ip} already exists (as {existing})")]
    PeerExists {
        ip: std::net::IpAddr,
        existing: SocketAddr,
    },
    #[error("no peer {addr} (peers: {existing})")]
    NoSuchPeer { addr: SocketAddr, existing: String },
    #[error(
        "peer {0}: IPv6 underlays are not supported yet; give the peer's IPv4 address (IP or IP:PORT)"
    )]
    PeerNotIpv4(SocketAddr),
    #[error("peer {0} has port 0; give the peer's VXLAN port (default 4789)")]
    PeerPortZero(SocketAddr),
    #[error(
        "peer {0} is one of this host's own addresses: a switch cannot be its own peer; give \
         another host's underlay address"
    )]
    PeerIsSelf(SocketAddr),
    #[error(
        "peer {0} is not one host's address (0.0.0.0, broadcast or multicast); give another \
         host's underlay address"
    )]
    PeerNotUnicast(SocketAddr),
    #[error("cannot create TAP {name}: {source}")]
    Tap {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot start the port: {0}")]
    StartPort(std::io::Error),
    #[error(
        "network '{0}' is encrypted and this host has no key for it (keys are never stored in \
         etcd): install it here by running the same `vswitch network create {0} … --encrypted \
         --key-file FILE` as on the host that created it, with the same key"
    )]
    NoKeyHere(String),
    #[error(
        "this host's key for network '{0}' is not the network's key (its check value differs \
         from the one the network was created with): copy the key file from a host of the \
         network and run the same `vswitch network create {0} … --encrypted --key-file FILE` here"
    )]
    KeyMismatch(String),
    #[error("{why}")]
    NetworkUnusable { name: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A state the rules should have ruled out; the message says which.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `a, b, c`, or `none`.
pub(crate) fn list_or_none<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why the daemon could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot detect the underlay MTU ({0}); pass --underlay-mtu")]
    UnderlayMtu(NetnsError),
    #[error("the stored state cannot be restored: {0}")]
    Restore(RequestError),
    #[error(
        "{0}; check that etcd runs at that address and, with TLS, that --store-ca, --store-cert \
         and --store-key match its certificates"
    )]
    Cluster(StoreError),
    #[error(
        "cluster mode needs this host's own underlay address: pass --listen IP (not 0.0.0.0), \
         the address other hosts reach this one at"
    )]
    ClusterListen,
    #[error("cannot read this host's name from {path} ({source}); pass --name")]
    Hostname {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("the hostname '{0}' cannot be a host name in the cluster; pass --name")]
    BadHostname(String),
    #[error(
        "a daemon is running on {}: it owns the ports; stop it first, then run the cleanup",
        .0.display()
    )]
    Running(PathBuf),
    #[error("cannot remove the port in network namespace {0}: {1}")]
    Cleanup(String, std::io::Error),
    #[error(
        "the egress subnet {subnet} holds {addr}, an address of this host: start the daemon \
         with an --egress-subnet this host does not use"
    )]
    EgressSubnet { subnet: Ipv4Net, addr: Ipv4Addr },
    #[error("cannot remove an egress link: {0}")]
    CleanupEgress(NetnsError),
    #[error("cannot remove the egress rules: {0}")]
    CleanupRules(super::masquerade::MasqueradeError),
}
