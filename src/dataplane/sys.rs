//! The syscalls the data path needs that std does not wrap: epoll, recvmmsg/sendmmsg and a
//! send-only raw IPv4 socket. Every `unsafe` block of the data path lives here or in `tap.rs`.

use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A level-triggered epoll set whose events carry a caller-chosen `u64`.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; on success it returns a fresh fd we own.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed since Linux 2.6.9).
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// Waits up to `timeout` and returns the tokens of ready fds in `tokens` (cleared first).
    pub fn wait(
        &self,
        events: &mut [libc::epoll_event],
        tokens: &mut Vec<u64>,
        timeout: Duration,
    ) -> io::Result<()> {
        tokens.clear();
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` is a valid, writable array of `max` epoll_event structs.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        tokens.extend(events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// Where a batch of received datagrams lands: `n` caller-owned buffers and their sources.
#[derive(Debug)]
pub struct RecvBatch {
    pub bufs: Vec<Box<[u8]>>,
    pub lens: Vec<usize>,
    pub from: Vec<SocketAddrV4>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs` are rebuilt before every syscall from `bufs` and
// `addrs`, which the batch owns; nothing refers to them between calls.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(n: usize, size: usize) -> RecvBatch {
        RecvBatch {
            bufs: (0..n).map(|_| vec![0u8; size].into_boxed_slice()).collect(),
            lens: vec![0; n],
            from: vec![SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); n],
            // SAFETY: sockaddr_in, iovec and mmsghdr are plain C structs for which all-zero
            // bytes are a valid value.
            addrs: vec![unsafe { zeroed() }; n],
            iovs: vec![unsafe { zeroed() }; n],
            hdrs: vec![unsafe { zeroed() }; n],
        }
    }
}

/// recvmmsg: fills `batch` and returns how many datagrams arrived (0 on timeout).
pub fn recv_batch(fd: RawFd, batch: &mut RecvBatch) -> io::Result<usize> {
    let n = batch.bufs.len();
    for i in 0..n {
        batch.iovs[i] = libc::iovec {
            iov_base: batch.bufs[i].as_mut_ptr().cast(),
            iov_len: batch.bufs[i].len(),
        };
        // SAFETY: all-zero is a valid msghdr.
        let mut h: libc::msghdr = unsafe { zeroed() };
        h.msg_name = (&mut batch.addrs[i] as *mut libc::sockaddr_in).cast();
        h.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
        h.msg_iov = &mut batch.iovs[i];
        h.msg_iovlen = 1;
        batch.hdrs[i] = libc::mmsghdr {
            msg_hdr: h,
            msg_len: 0,
        };
    }
    // SAFETY: every header points at a live iovec, buffer and sockaddr owned by `batch`, which
    // outlives the call; `n` matches the array length.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            batch.hdrs.as_mut_ptr(),
            n as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(0)
            }
            _ => Err(e),
        };
    }
    let got = r as usize;
    for i in 0..got {
        batch.lens[i] = batch.hdrs[i].msg_len as usize;
        let a = &batch.addrs[i];
        batch.from[i] = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
            u16::from_be(a.sin_port),
        );
    }
    Ok(got)
}

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
        // Never fragment: an oversize datagram is an error (EMSGSIZE), not two fragments.
        let pmtu: libc::c_int = libc::IP_PMTUDISC_PROBE;
        // SAFETY: the option value points at a live c_int of the stated size.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&pmtu as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            )
        })?;
        Ok(RawSender {
            fd,
            // SAFETY: all-zero is valid for these C structs.
            addrs: vec![unsafe { zeroed() }; batch],
            iovs: vec![unsafe { zeroed() }; batch],
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
        let mut sent = 0;
        while sent < n {
            // SAFETY: headers [sent, n) point at live packets (borrowed for this call) and at
            // sockaddrs owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.hdrs[sent..].as_mut_ptr(),
                    (n - sent) as u32,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return (sent, Some(e));
            }
            sent += r as usize;
        }
        (sent, None)
    }
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut a: libc::sockaddr_in = unsafe { zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_addr.s_addr = u32::from(ip).to_be();
    a
}

/// Makes a socket's blocking reads return after `timeout`, so workers notice shutdown.
pub fn set_recv_timeout(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: the option value points at a live timeval of the stated size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as u32,
        )
    })?;
    Ok(())
}

/// Sets SO_RCVBUF/SO_SNDBUF (best effort; the kernel caps them).
pub fn set_buffer_sizes(fd: RawFd, bytes: usize) {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: the option value points at a live c_int of the stated size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            );
        }
    }
}

/// Zeroed storage for epoll events.
pub fn epoll_events(n: usize) -> Vec<libc::epoll_event> {
    // SAFETY: all-zero is a valid epoll_event.
    (0..n)
        .map(|_| unsafe { MaybeUninit::zeroed().assume_init() })
        .collect()
}

/// Whether this process runs with root's effective uid.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
