//! The syscalls the data path needs that std does not wrap: epoll, recvmmsg/sendmmsg and a
//! send-only raw IPv4 socket (`raw.rs`). Every `unsafe` block of the data path lives here, in
//! `raw.rs` or in `tap.rs`.

use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use super::raw::RawSender;

pub(super) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
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
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
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
    /// For a buffer that holds several datagrams coalesced by `UDP_GRO`: the size of each (the
    /// last may be shorter). 0 when the buffer holds one datagram.
    pub gso_size: Vec<usize>,
    addrs: Vec<libc::sockaddr_in>,
    /// Ancillary data (the `UDP_GRO` segment size), 8-byte aligned as cmsghdr requires.
    ctrl: Vec<[u64; 8]>,
    /// The kernel had more bytes for this slot than the buffer held (`MSG_TRUNC`).
    pub truncated: Vec<bool>,
    /// The socket's count of datagrams dropped because its receive queue was full
    /// (`SO_RXQ_OVFL`), as the newest datagram of the last batch reported it; the count is
    /// cumulative over the socket's life and reported only once it is nonzero.
    pub overflows: Option<u32>,
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
            gso_size: vec![0; n],
            ctrl: vec![[0; 8]; n],
            truncated: vec![false; n],
            overflows: None,
            // SAFETY: sockaddr_in is a plain C struct; all-zero bytes are a valid value.
            addrs: vec![unsafe { zeroed() }; n],
            // SAFETY: an all-zero iovec (null base, length 0) is valid; it is rebuilt before use.
            iovs: vec![unsafe { zeroed() }; n],
            // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is valid; it is rebuilt
            // before use.
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
        h.msg_control = batch.ctrl[i].as_mut_ptr().cast();
        h.msg_controllen = size_of::<[u64; 8]>();
        batch.hdrs[i] = libc::mmsghdr {
            msg_hdr: h,
            msg_len: 0,
        };
    }
    // SAFETY: every header points at a live iovec, buffer, sockaddr and control buffer owned by
    // `batch`, which outlives the call; `n` matches the array length.
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
        batch.truncated[i] = batch.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        batch.lens[i] = batch.hdrs[i].msg_len as usize;
        let (gso_size, overflows) = ancillary(&batch.hdrs[i].msg_hdr);
        batch.gso_size[i] = gso_size;
        if overflows.is_some() {
            batch.overflows = overflows;
        }
        let a = &batch.addrs[i];
        batch.from[i] = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
            u16::from_be(a.sin_port),
        );
    }
    Ok(got)
}

/// The `UDP_GRO` segment size (or 0) and the `SO_RXQ_OVFL` drop count in a received
/// message's ancillary data.
fn ancillary(h: &libc::msghdr) -> (usize, Option<u32>) {
    let (mut gso, mut drops) = (0, None);
    // SAFETY: `h` was filled in by recvmmsg: msg_control/msg_controllen describe the control
    // buffer it points at (owned by the RecvBatch, alive here), and the CMSG_* helpers stay
    // inside msg_controllen; each value is read only after its cmsg_len was checked to hold it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let fits = |n: usize| (*c).cmsg_len as usize >= libc::CMSG_LEN(n as u32) as usize;
            if (*c).cmsg_level == libc::SOL_UDP
                && (*c).cmsg_type == libc::UDP_GRO
                && fits(size_of::<libc::c_int>())
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                gso = usize::try_from(v).unwrap_or(0);
            } else if (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SO_RXQ_OVFL
                && fits(size_of::<u32>())
            {
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    (gso, drops)
}

/// Asks the kernel to report, with each received datagram, how many the socket dropped
/// because its receive queue was full (`SO_RXQ_OVFL`); see [`RecvBatch::overflows`].
pub fn enable_rxq_overflow(fd: RawFd) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
}

/// `setsockopt` with an `int` value.
fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int of the stated size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        )
    })?;
    Ok(())
}

/// The datagrams the kernel has dropped for this socket because its receive queue was full:
/// the count `SO_RXQ_OVFL` stamps on later datagrams, read directly (`SO_MEMINFO`'s
/// `SK_MEMINFO_DROPS`), so it is seen even when no datagram follows on this socket.
pub fn socket_drops(fd: RawFd) -> io::Result<u32> {
    // SK_MEMINFO_VARS since Linux 4.x; DROPS is the last.
    let mut info = [0u32; 9];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: the option value points at a live, writable buffer of `len` bytes, and `len` at
    // a live socklen_t; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    Ok(info[8])
}

/// Asks the kernel to hand this UDP socket runs of same-sized datagrams from one sender as one
/// buffer (`UDP_GRO`); [`recv_batch`] reports the segment size in [`RecvBatch::gso_size`].
pub fn enable_udp_gro(fd: RawFd) -> io::Result<()> {
    set_int_option(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Most datagrams one `UDP_SEGMENT` send may carry (the kernel's `UDP_MAX_SEGMENTS` is 64 on
/// older kernels, 128 since 6.x).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes one UDP send may carry over IPv4.
const UDP_MAX_PAYLOAD: usize = 65_535 - 20 - 8;

/// Sends runs of equal-sized datagrams with one `sendmsg` each, the kernel (or the NIC) cutting
/// them apart (`UDP_SEGMENT`, "UDP GSO").
#[derive(Debug)]
pub struct GsoSender {
    iovs: Vec<libc::iovec>,
}

// SAFETY: `iovs` only holds pointers during a call; they are rebuilt every time.
unsafe impl Send for GsoSender {}

impl Default for GsoSender {
    fn default() -> Self {
        GsoSender {
            iovs: Vec::with_capacity(GSO_MAX_SEGMENTS),
        }
    }
}

impl GsoSender {
    /// Sends `datagrams` (all `seg` bytes long but the last, which may be shorter) from `sock` to
    /// `dst`, as few sendmsg calls as the kernel's limits allow. Returns how many were sent, and
    /// the error that stopped the rest.
    pub fn send<'a>(
        &mut self,
        sock: &std::net::UdpSocket,
        dst: SocketAddrV4,
        seg: usize,
        datagrams: impl Iterator<Item = &'a [u8]>,
    ) -> (usize, Option<io::Error>) {
        let mut sent = 0;
        let mut bytes = 0;
        self.iovs.clear();
        for d in datagrams {
            if self.iovs.len() == GSO_MAX_SEGMENTS || bytes + d.len() > UDP_MAX_PAYLOAD {
                match self.flush(sock, dst, seg) {
                    Ok(n) => sent += n,
                    Err(e) => return (sent, Some(e)),
                }
                bytes = 0;
            }
            bytes += d.len();
            self.iovs.push(libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            });
        }
        match self.flush(sock, dst, seg) {
            Ok(n) => (sent + n, None),
            Err(e) => (sent, Some(e)),
        }
    }

    fn flush(
        &mut self,
        sock: &std::net::UdpSocket,
        dst: SocketAddrV4,
        seg: usize,
    ) -> io::Result<usize> {
        let n = self.iovs.len();
        if n == 0 {
            return Ok(0);
        }
        let mut addr = sockaddr(*dst.ip());
        addr.sin_port = dst.port().to_be();
        let mut ctrl = [0u64; 4];
        // SAFETY: all-zero is a valid msghdr.
        let mut h: libc::msghdr = unsafe { zeroed() };
        h.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
        h.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
        h.msg_iov = self.iovs.as_mut_ptr();
        h.msg_iovlen = n;
        if n > 1 {
            let seg16 =
                u16::try_from(seg).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            h.msg_control = ctrl.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is pure arithmetic.
            h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
            // SAFETY: msg_control points at `ctrl` (32 bytes, 8-aligned), larger than
            // CMSG_SPACE(2); CMSG_FIRSTHDR/CMSG_DATA stay inside it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&h);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg16);
            }
        }
        let r = loop {
            // SAFETY: `h` points at live iovecs (borrowing the caller's datagrams for this
            // call), a live sockaddr and control buffer.
            let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &h, 0) };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break r;
        };
        self.iovs.clear();
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n)
    }
}

pub(super) fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut a: libc::sockaddr_in = unsafe { zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_addr.s_addr = u32::from(ip).to_be();
    a
}

/// Never fragment: DF on every datagram, and an oversize one is an error (EMSGSIZE), not two
/// fragments (`IP_PMTUDISC_PROBE`: ignore learned path MTUs, the underlay MTU is configured).
pub fn set_dont_fragment(fd: RawFd) -> io::Result<()> {
    set_int_option(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_PROBE,
    )
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

/// The socket's receive and send buffer sizes as the kernel reports them (`SO_RCVBUF`,
/// `SO_SNDBUF`: twice what was set, the kernel's bookkeeping included).
#[cfg(test)]
pub fn buffer_sizes(fd: RawFd) -> io::Result<(usize, usize)> {
    let get = |opt| -> io::Result<usize> {
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the value and length point at a live c_int and socklen_t of the stated size.
        cvt(unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        })?;
        Ok(usize::try_from(v).unwrap_or(0))
    };
    Ok((get(libc::SO_RCVBUF)?, get(libc::SO_SNDBUF)?))
}

/// Zeroed storage for epoll events.
pub fn epoll_events(n: usize) -> Vec<libc::epoll_event> {
    // SAFETY: all-zero is a valid epoll_event.
    (0..n)
        .map(|_| unsafe { MaybeUninit::zeroed().assume_init() })
        .collect()
}

/// Makes a send-only UDP socket drop everything sent to it, before it is queued: a classic BPF
/// program that accepts nothing, and the smallest receive buffer. The pool sockets that
/// superframes leave from are never read; without this, anyone could fill their queues and pin
/// kernel memory.
pub fn drop_all_input(fd: RawFd) -> io::Result<()> {
    let mut reject = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0, // accept 0 bytes: drop
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: reject.as_mut_ptr(),
    };
    // SAFETY: the option value points at a live sock_fprog whose filter points at a live
    // one-instruction program; the kernel copies both during the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })?;
    let one: libc::c_int = 1;
    // SAFETY: the option value points at a live c_int of the stated size; the kernel rounds
    // it up to its minimum.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::underlay::{UnderlayPacket, UnderlayRepr, OUTER_LEN};
    use std::net::UdpSocket;

    fn packet(to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; OUTER_LEN + payload.len()];
        UnderlayRepr {
            source: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000),
            destination: to,
            payload_len: payload.len(),
        }
        .emit(&mut UnderlayPacket::new_checked(&mut p[..]).expect("room"))
        .expect("headers");
        p[OUTER_LEN..].copy_from_slice(payload);
        p
    }

    /// One datagram of a batch that the kernel refuses costs that datagram only: the ones
    /// after it are still sent.
    #[test]
    fn a_failing_datagram_does_not_abort_the_rest_of_its_batch() {
        let Ok(mut sender) = RawSender::new(4) else {
            // Raw sockets need root; scripts/test.sh runs this as root.
            assert!(!crate::user::is_root(), "root could not open a raw socket");
            return;
        };
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let to = match rx.local_addr().expect("addr") {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other}"),
        };
        let first = packet(to, b"first");
        let too_big = vec![0u8; 70_000];
        let third = packet(to, b"third");
        let (sent, error) =
            sender.send_batch(&[(&first, *to.ip()), (&too_big, *to.ip()), (&third, *to.ip())]);
        assert_eq!(sent, 2, "{error:?}");
        assert!(error.is_some(), "the refused one is reported");
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        for _ in 0..2 {
            let n = rx.recv(&mut buf).expect("a datagram");
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, [b"first".to_vec(), b"third".to_vec()]);
    }
}
