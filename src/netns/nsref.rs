//! Naming a network namespace: `NAME` (as `ip netns` does) or a path such as `/proc/PID/ns/net`.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
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

        let file = File::open(&path).map_err(|e| match e.kind() {
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
