//! What the daemon takes from its process and the kernel before it starts: the host's name,
//! and the limit on open files.
//!
//! Every port holds a TAP file descriptor (and every network, peer and control connection one
//! more), so a shell's usual soft limit of 1,024 open files would stop attaches at about a
//! thousand ports with `EMFILE`. The daemon raises its soft limit to the hard one at start, as
//! Go's runtime and most network daemons do; the systemd unit sets both (`LimitNOFILE`).

use std::io;

use super::DaemonError;

const HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// `--name`, or the kernel's hostname.
pub(super) fn host_name(given: Option<&str>) -> Result<String, DaemonError> {
    if let Some(n) = given {
        return Ok(n.to_owned());
    }
    let text = std::fs::read_to_string(HOSTNAME).map_err(|source| DaemonError::Hostname {
        path: HOSTNAME,
        source,
    })?;
    crate::cli::parse_host_name(text.trim())
        .map_err(|_| DaemonError::BadHostname(text.trim().into()))
}

/// The soft and hard limits on open files, after raising the soft one to the hard one.
pub(super) fn raise_open_files() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the valid struct it is given; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> (u64, u64) {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        (lim.rlim_cur, lim.rlim_max)
    }

    #[test]
    fn the_soft_limit_on_open_files_is_raised_to_the_hard_one() {
        // In a child process: lowering this process's limit would starve the tests running
        // beside this one. The child only calls getrlimit/setrlimit (async-signal-safe, as a
        // child of a threaded process must) and exits with what it found.
        // SAFETY: see above; the child never returns into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let (_, hard) = limits();
            let low = 256.min(hard);
            let lowered = libc::rlimit {
                rlim_cur: low,
                rlim_max: hard,
            };
            // SAFETY: as above.
            let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) } == 0
                && limits() == (low, hard)
                && matches!(raise_open_files(), Ok(l) if l == (hard, hard))
                && limits() == (hard, hard);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above, writing its status into a valid int.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's soft limit was not raised to its hard limit (status {status:#x})"
        );
    }
}
