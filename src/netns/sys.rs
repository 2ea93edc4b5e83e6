//! The two namespace syscalls the netns plumbing needs. All of this module's `unsafe` is here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The `CLONE_NEW*` type of the namespace `fd` refers to (`ioctl(NS_GET_NSTYPE)`, Linux 4.11+).
///
/// Fails with `ENOTTY` (or `EINVAL`) when `fd` is not a namespace file.
pub(crate) fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor's inode; `fd` is a
    // valid borrowed descriptor for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Moves the *calling thread* into the network namespace `fd` (`setns(fd, CLONE_NEWNET)`).
///
/// Only for threads that exist for this purpose and end afterwards; never call it on a tokio
/// worker or the main thread, whose sockets would then silently land in the container.
pub(crate) fn enter_netns(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns only changes the calling thread's namespace membership; `fd` is a valid
    // borrowed descriptor, and CLONE_NEWNET makes the kernel check that it is a network
    // namespace.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A readable name for a `CLONE_NEW*` namespace type, for error messages.
pub(crate) fn ns_type_name(nstype: libc::c_int) -> &'static str {
    match nstype {
        libc::CLONE_NEWNET => "network",
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWUTS => "UTS",
        libc::CLONE_NEWIPC => "IPC",
        libc::CLONE_NEWPID => "PID",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWCGROUP => "cgroup",
        // CLONE_NEWTIME is not in every libc target's constants.
        0x80 => "time",
        _ => "unknown",
    }
}
