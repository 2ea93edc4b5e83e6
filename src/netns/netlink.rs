//! rtnetlink connections, in the daemon's namespace or inside another one, and the few link
//! queries the plumbing needs.
//!
//! A netlink socket talks to the namespace it was *created* in, whatever thread later uses it.
//! So [`Netlink::inside`] creates the socket on a short-lived std thread that first `setns`es
//! into the target, registers it with the caller's tokio runtime from there
//! (`Handle::enter`), and hands it back; the thread then exits and takes its namespace
//! membership with it. No tokio worker ever changes namespace.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};
use rtnetlink::Handle;
use tokio::task::JoinHandle;

use super::{sys, NetnsError, NetnsRef};

/// One rtnetlink connection; its driver task stops when this is dropped.
pub(crate) struct Netlink {
    handle: Handle,
    driver: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Netlink {
    /// A connection in the daemon's own namespace. Must be called inside a tokio runtime.
    pub(crate) fn here() -> Result<Netlink, NetnsError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| NetnsError::Io {
            op: "opening a netlink socket".into(),
            source,
        })?;
        Ok(Netlink {
            handle,
            driver: tokio::spawn(conn),
        })
    }

    /// A connection whose socket lives in `ns`. Must be called inside a tokio runtime.
    pub(crate) async fn inside(ns: &NetnsRef) -> Result<Netlink, NetnsError> {
        let io_err = |op: &str, source| NetnsError::Io {
            op: format!("{op} in network namespace {ns}"),
            source,
        };
        let fd = ns
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| io_err("duplicating the namespace descriptor", e))?;
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("vswitch-netns".into())
            .spawn(move || {
                // The receiver only goes away if the caller was cancelled; nothing to report then.
                let _ = tx.send(socket_in(fd, &runtime));
            })
            .map_err(|e| io_err("starting a thread to open a netlink socket", e))?;
        let socket = rx
            .await
            .map_err(|_| {
                io_err(
                    "opening a netlink socket",
                    io::Error::other("the helper thread ended without an answer"),
                )
            })?
            .map_err(|e| io_err("opening a netlink socket", e))?;
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        Ok(Netlink {
            handle,
            driver: tokio::spawn(conn),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The link called `name`, if there is one.
    pub(crate) async fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, io::Error> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// The link called `name` in `ns` (the namespace this handle talks to), if there is one;
    /// an error names what was looked for.
    pub(crate) async fn link_in(
        &self,
        name: &str,
        ns: &NetnsRef,
    ) -> Result<Option<LinkMessage>, NetnsError> {
        self.link_by_name(name)
            .await
            .map_err(|source| NetnsError::Netlink {
                op: format!("looking up '{name}' in network namespace {ns}"),
                source,
            })
    }

    /// The link with index `index`, if there is one.
    pub(crate) async fn link_by_index(&self, index: u32) -> Result<Option<LinkMessage>, io::Error> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Every link in the namespace.
    pub(crate) async fn links(&self) -> Result<Vec<LinkMessage>, io::Error> {
        self.handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(to_io)
    }

    pub(crate) async fn set_link(&self, msg: LinkMessage) -> Result<(), io::Error> {
        self.handle.link().set(msg).execute().await.map_err(to_io)
    }

    pub(crate) async fn del_link(&self, index: u32) -> Result<(), io::Error> {
        self.handle.link().del(index).execute().await.map_err(to_io)
    }
}

/// Runs on the helper thread: join `ns`, then create the socket there.
fn socket_in(ns: OwnedFd, runtime: &tokio::runtime::Handle) -> io::Result<TokioSocket> {
    sys::enter_netns(ns.as_fd())?;
    // Registering with the reactor needs a runtime context; this thread is not a runtime thread.
    let _context = runtime.enter();
    TokioSocket::new(NETLINK_ROUTE)
}

/// The errno of a netlink NACK.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}

/// Netlink NACKs become the `io::Error` of their errno ("File exists (os error 17)"), which
/// reads better in messages than rtnetlink's wrapper.
pub(crate) fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

pub(crate) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

pub(crate) fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(mtu) => Some(*mtu),
        _ => None,
    })
}

pub(crate) fn link_is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

pub(crate) fn link_is_loopback(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Loopback)
}

/// Whether the link is a TUN/TAP device (`IFLA_INFO_KIND` "tun").
pub(crate) fn link_is_tun(link: &LinkMessage) -> bool {
    link_kind_is(link, &InfoKind::Tun)
}

/// Whether the link's kind (`ip -d link`'s `tun`, `veth`, ...) is `kind`.
pub(crate) fn link_kind_is(link: &LinkMessage, kind: &InfoKind) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(k) if k == kind)),
        _ => false,
    })
}
