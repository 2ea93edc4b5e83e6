//! Attach plumbing: TAP ports into container network namespaces, addresses, routes, MTU — all
//! over rtnetlink, never by running `ip`.
//!
//! Everything here is async and runs on the daemon's tokio runtime. Talking to another
//! namespace never moves a runtime thread: the netlink socket for it is created on a
//! short-lived helper thread that joins the namespace first (a socket stays in the namespace it
//! was created in), then driven from the runtime like any other.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

mod egress;
pub mod ifname;
mod inspect;
mod neighbours;
mod netlink;
mod nsref;
mod port;
mod sys;
mod underlay;

pub use egress::{add_egress, egress_exists, remove_egress, EgressLink};
pub use inspect::{interface_state_in, InterfaceState};
pub use neighbours::forget_neighbours;
pub use nsref::{NetnsRef, NsId, NETNS_RUN_DIR};
pub use port::{
    attach_port, detach_port, interface_exists_in, prepare_tap, PortConfig, MAX_MTU, MIN_MTU,
    MIN_MTU_IPV6,
};
pub(crate) use sys::enter_netns;
pub use underlay::{local_addresses, underlay_mtu, DEFAULT_MTU};

/// What can go wrong attaching a port; every message names the thing to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// `NAME` was given and `/run/netns/NAME` does not exist.
    #[error("network namespace '{name}' does not exist (looked for {})", path.display())]
    NotFound { name: String, path: PathBuf },
    /// A path was given and it does not exist.
    #[error("network namespace file {} does not exist", path.display())]
    PathNotFound { path: PathBuf },
    /// A path that is neither `/run/netns/NAME` nor `/proc/PID/ns/net`.
    #[error(
        "{} is not a container's network namespace: give a name under /run/netns, \
         /run/netns/NAME or /proc/PID/ns/net",
        path.display()
    )]
    InvalidPath { path: PathBuf },
    /// The namespace is one no container port may go into.
    #[error("{ns} is {what}; attach containers only")]
    NotAContainer { ns: String, what: String },
    /// The name can never name a namespace.
    #[error("invalid network namespace name '{name}': {reason}")]
    InvalidName { name: String, reason: String },
    /// The namespace file exists but could not be opened or inspected.
    #[error("cannot open network namespace {ns}: {source}")]
    Open { ns: String, source: io::Error },
    /// The file is not a network namespace.
    #[error("{ns} is not a network namespace: {reason}")]
    NotANetns { ns: String, reason: String },
    /// The port configuration is unusable; nothing was changed.
    #[error("invalid port configuration: {0}")]
    InvalidConfig(String),
    /// The TAP to attach is not in the daemon's namespace.
    #[error("TAP device '{name}' does not exist in the daemon's network namespace")]
    TapNotFound { name: String },
    /// The interface is not a TAP, so it is not ours to move or delete.
    #[error("interface '{ifname}' in {ns} is not a TAP device; refusing to touch it")]
    NotATap { ifname: String, ns: String },
    /// The name the port should get is taken inside the namespace; nothing was changed there.
    #[error(
        "an interface named '{ifname}' already exists in network namespace {ns}; \
         choose another interface name or remove the existing one"
    )]
    InterfaceExists { ifname: String, ns: String },
    /// `underlay_mtu` was asked about an address no local interface holds.
    #[error(
        "no interface in the daemon's network namespace has the address {addr}; \
         listen on an address of this host, or on 0.0.0.0"
    )]
    AddressNotFound { addr: IpAddr },
    /// The kernel refused a netlink request.
    #[error("{op}: {source}")]
    Netlink { op: String, source: io::Error },
    /// A system call around netlink failed (socket, thread, namespace switch).
    #[error("{op}: {source}")]
    Io { op: String, source: io::Error },
}
