//! Naming a network namespace: `NAME` (as `ip netns` does) or a path such as `/proc/PID/ns/net`.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{sys, NetnsError};

/// Where `ip netns add NAME` mounts named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network namespace: holding the descriptor keeps the namespace alive and lets links be
/// moved into it by descriptor, with no race against the name being reused.
#[derive(Debug)]
pub struct NetnsRef {
    label: String,
    path: PathBuf,
    file: File,
}

impl NetnsRef {
    /// Resolves what a user typed: a bare name means `/run/netns/NAME`; anything containing a
    /// `/` is a path to a namespace file (e.g. `/proc/PID/ns/net`).
    ///
    /// The file is opened and checked to really be a network namespace.
    pub fn resolve(arg: &str) -> Result<NetnsRef, NetnsError> {
        let (label, path, by_name) = if arg.contains('/') {
            (arg.to_string(), PathBuf::from(arg), false)
        } else {
            check_name(arg)?;
            (format!("'{arg}'"), Path::new(NETNS_RUN_DIR).join(arg), true)
        };
        let by_name = by_name || path.parent() == Some(Path::new(NETNS_RUN_DIR));
        NetnsRef::open(label, &path, by_name)
    }

    fn open(label: String, path: &Path, by_name: bool) -> Result<NetnsRef, NetnsError> {
        let arg = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = path.to_owned();

        // Never blocks (a FIFO opens at once, then fails the namespace check), and a name
        // under /run/netns is not followed if it is a symlink.
        let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        if by_name {
            flags |= libc::O_NOFOLLOW;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&path)
            .map_err(|e| match e.kind() {
                _ if e.raw_os_error() == Some(libc::ELOOP) => NetnsError::NotANetns {
                    ns: label.clone(),
                    reason: "it is a symbolic link, not a namespace mount".into(),
                },
                io::ErrorKind::NotFound if by_name => NetnsError::NotFound {
                    name: arg.to_string(),
                    path: path.clone(),
                },
                io::ErrorKind::NotFound => NetnsError::PathNotFound { path: path.clone() },
                _ => NetnsError::Open {
                    ns: label.clone(),
                    source: e,
                },
            })?;

        match sys::ns_type(file.as_fd()) {
            Ok(libc::CLONE_NEWNET) => {}
            Ok(other) => {
                return Err(NetnsError::NotANetns {
                    ns: label,
                    reason: format!("it is a {} namespace", sys::ns_type_name(other)),
                })
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY) | Some(libc::EINVAL)) => {
                let reason = if by_name {
                    format!(
                        "{} exists but no namespace is mounted on it (a stale entry; \
                         `ip netns delete {arg}` removes it)",
                        path.display()
                    )
                } else {
                    "the file is not a namespace file".to_string()
                };
                return Err(NetnsError::NotANetns { ns: label, reason });
            }
            Err(e) => {
                return Err(NetnsError::Open {
                    ns: label,
                    source: e,
                })
            }
        }

        Ok(NetnsRef { label, path, file })
    }

    /// Resolves what a user asked to attach a container in: `NAME` (under `/run/netns`),
    /// `/run/netns/NAME` or `/proc/PID/ns/net`, nothing else, and never the daemon's own
    /// network namespace or the host's initial one (PID 1's).
    pub fn resolve_container(arg: &str) -> Result<NetnsRef, NetnsError> {
        if arg.contains('/') && !is_container_path(arg) {
            return Err(NetnsError::InvalidPath {
                path: PathBuf::from(arg),
            });
        }
        let ns = NetnsRef::resolve(arg)?;
        let id = ns.id().map_err(|source| NetnsError::Open {
            ns: ns.label.clone(),
            source,
        })?;
        let own = NetnsRef::current()?;
        let refuse = |what: &str| NetnsError::NotAContainer {
            ns: ns.label.clone(),
            what: what.to_owned(),
        };
        if own.id().ok() == Some(id) {
            return Err(refuse("the daemon's own network namespace"));
        }
        // Where PID 1's namespace cannot be opened (a sandbox without ptrace rights over it),
        // no path to it can be opened either, except a bind mount made by someone who could.
        let initial = NetnsRef::open("PID 1's".into(), Path::new("/proc/1/ns/net"), false);
        if initial.is_ok_and(|i| i.id().ok() == Some(id)) {
            return Err(refuse("the host's initial network namespace"));
        }
        Ok(ns)
    }

    /// The namespace the daemon itself runs in.
    pub fn current() -> Result<NetnsRef, NetnsError> {
        let mut ns = NetnsRef::resolve("/proc/self/ns/net")?;
        ns.label = "the daemon's own network namespace".to_string();
        Ok(ns)
    }

    /// The file this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether both refer to the same namespace (same nsfs inode).
    pub fn is_same(&self, other: &NetnsRef) -> io::Result<bool> {
        Ok(self.id()? == other.id()?)
    }

    /// Runs `f` on a short-lived thread that first joins this namespace (the thread ends with
    /// its membership, so no runtime thread ever changes namespace): for the few calls whose
    /// effect depends on the caller's namespace, such as opening a TAP by name.
    pub async fn run_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let fd = self.file.as_fd().try_clone_to_owned()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("vswitch-netns".into())
            .spawn(move || {
                let result = sys::enter_netns(fd.as_fd()).and_then(|()| f());
                // The receiver only goes away if the caller was cancelled.
                let _ = tx.send(result);
            })?;
        rx.await
            .map_err(|_| io::Error::other("the namespace helper thread ended without an answer"))?
    }

    /// The namespace's identity (its nsfs device and inode), comparable without the file.
    pub fn id(&self) -> io::Result<NsId> {
        let m = self.file.metadata()?;
        Ok(NsId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// Which namespace a [`NetnsRef`] refers to: equal ids, same namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

/// `/run/netns/NAME` or `/proc/PID/ns/net` (PID in digits: not `self`, which would be the
/// daemon).
fn is_container_path(arg: &str) -> bool {
    if let Some(name) = arg.strip_prefix("/run/netns/") {
        return check_name(name).is_ok() && !name.contains('/');
    }
    arg.strip_prefix("/proc/")
        .and_then(|rest| rest.strip_suffix("/ns/net"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Names like `ip netns` accepts: no `/` (that would be a path), not `.`/`..`, not empty.
fn check_name(name: &str) -> Result<(), NetnsError> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name == "." || name == ".." {
        "'.' and '..' are not namespace names"
    } else if name.contains('\0') {
        "the name contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(NetnsError::InvalidName {
        name: name.escape_debug().to_string(),
        reason: reason.to_string(),
    })
}

/// `'NAME'` for named namespaces, the path otherwise; used in every error message.
impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl AsFd for NetnsRef {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for NetnsRef {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_name_says_where_it_looked() {
        let name = format!("vswt{}-no-such-ns", std::process::id());
        let err = NetnsRef::resolve(&name).expect_err("must fail");
        assert!(matches!(err, NetnsError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("network namespace '{name}' does not exist (looked for /run/netns/{name})")
        );
    }

    #[test]
    fn missing_path() {
        let err = NetnsRef::resolve("/proc/0/ns/net").expect_err("must fail");
        assert!(matches!(err, NetnsError::PathNotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("/proc/0/ns/net"), "{err}");
    }

    #[test]
    fn bad_names() {
        for bad in ["", ".", ".."] {
            let err = NetnsRef::resolve(bad).expect_err("must fail");
            assert!(
                matches!(err, NetnsError::InvalidName { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn own_namespace_resolves_by_path() {
        let ns = NetnsRef::resolve("/proc/self/ns/net").expect("own netns");
        assert_eq!(ns.to_string(), "/proc/self/ns/net");
        let cur = NetnsRef::current().expect("current netns");
        assert!(ns.is_same(&cur).expect("fstat"));
    }

    #[test]
    fn containers_are_named_or_proc_pid_paths_and_never_the_daemon_or_the_host() {
        for bad in [
            "/tmp/x",
            "/proc/self/ns/net",
            "/proc/1/ns/uts",
            "/run/netns/a/b",
            "/proc//ns/net",
        ] {
            let err = NetnsRef::resolve_container(bad).expect_err(bad);
            assert!(
                matches!(err, NetnsError::InvalidPath { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains("/proc/PID/ns/net"), "{err}");
        }
        let own = format!("/proc/{}/ns/net", std::process::id());
        let err = NetnsRef::resolve_container(&own).expect_err("own");
        assert!(matches!(err, NetnsError::NotAContainer { .. }), "{err:?}");
        let err = NetnsRef::resolve_container("/proc/1/ns/net").expect_err("initial");
        if NetnsRef::resolve("/proc/1/ns/net").is_ok() {
            assert!(matches!(err, NetnsError::NotAContainer { .. }), "{err:?}");
        } else {
            assert!(matches!(err, NetnsError::Open { .. }), "{err:?}");
        }
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let fifo = std::env::temp_dir().join(format!("vswitch-nsref-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let started = std::time::Instant::now();
        let err = NetnsRef::resolve(fifo.to_str().expect("utf-8")).expect_err("a FIFO");
        assert!(matches!(err, NetnsError::NotANetns { .. }), "{err:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "did not block"
        );
        std::fs::remove_file(&fifo).expect("cleanup");
    }

    #[test]
    fn other_namespace_types_are_rejected() {
        let err = NetnsRef::resolve("/proc/self/ns/uts").expect_err("must fail");
        assert!(matches!(err, NetnsError::NotANetns { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "/proc/self/ns/uts is not a network namespace: it is a UTS namespace"
        );
    }

    #[test]
    fn ordinary_files_are_rejected() {
        let err = NetnsRef::resolve("/proc/self/status").expect_err("must fail");
        assert!(matches!(err, NetnsError::NotANetns { .. }), "{err:?}");
        assert!(err.to_string().contains("not a namespace file"), "{err}");
    }
}
