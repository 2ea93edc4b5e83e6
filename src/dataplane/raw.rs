//! The send-only raw IPv4 socket the data path sends single VXLAN datagrams from.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::sys::{cvt, set_dont_fragment, sockaddr};

/// A send-only raw IPv4 socket (`IPPROTO_RAW`, so the kernel never queues received packets on
/// it). The caller writes the IPv4 and UDP headers itself: that is how every VXLAN datagram gets
/// its own, flow-hashed UDP source port (RFC 7348 §5) from a single socket.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: as for RecvBatch: the pointer arrays are rebuilt before each call.
unsafe impl Send for RawSender {}

impl RawSender {
    pub fn new(batch: usize) -> io::Result<RawSender> {
        // SAFETY: socket() takes no pointers.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        })?;
        // SAFETY: fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_dont_fragment(fd.as_raw_fd())?;
        Ok(RawSender {
            fd,
            // SAFETY: sockaddr_in is a plain C struct; all-zero bytes are a valid value.
            addrs: vec![unsafe { zeroed() }; batch],
            // SAFETY: an all-zero iovec (null base, length 0) is valid; it is rebuilt before use.
            iovs: vec![unsafe { zeroed() }; batch],
            // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is valid; it is rebuilt
            // before use.
            hdrs: vec![unsafe { zeroed() }; batch],
        })
    }

    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Sends each `(packet, dst)` (complete IPv4 packets) with one sendmmsg where possible.
    /// Returns how many were sent; the rest failed with the returned error.
    pub fn send_batch(&mut self, packets: &[(&[u8], Ipv4Addr)]) -> (usize, Option<io::Error>) {
        let n = packets.len().min(self.hdrs.len());
        for (i, (p, dst)) in packets[..n].iter().enumerate() {
            self.addrs[i] = sockaddr(*dst);
            self.iovs[i] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            // SAFETY: all-zero is a valid msghdr.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // sendmmsg stops at the first datagram that fails (and reports the error only when that
        // is the first of the call): skip just that one and send the rest of the batch.
        let (mut next, mut sent, mut error) = (0, 0, None);
        while next < n {
            // SAFETY: headers [next, n) point at live packets (borrowed for this call) and at
            // sockaddrs owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.hdrs[next..].as_mut_ptr(),
                    (n - next) as u32,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    next += 1;
                    error = Some(e);
                }
                continue;
            }
            next += r as usize;
            sent += r as usize;
        }
        (sent, error)
    }
}
