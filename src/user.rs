//! Who this process runs as: the one place that asks (the daemon, its control socket, its key
//! files and its state dir all check ownership against it).

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process runs with root's effective uid.
pub fn is_root() -> bool {
    effective_uid() == 0
}
