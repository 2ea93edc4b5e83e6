//! A TAP device owned by the daemon: one Ethernet port, with one file descriptor on
//! `/dev/net/tun` per queue.
//!
//! # Why not the `tun-tap` crate
//!
//! The design card named `tun-tap`. Its `Iface` does exactly one ioctl (`TUNSETIFF` with
//! `IFF_TUN`/`IFF_TAP` and optionally `IFF_NO_PI`), through a C shim built by a `cc` build
//! script. It has no way to ask for `IFF_VNET_HDR`, to size the virtio-net header
//! (`TUNSETVNETHDRSZ`), to enable checksum/TSO offloads (`TUNSETOFFLOAD`), to open several
//! queues (`IFF_MULTI_QUEUE`), or to refuse adopting an existing device (`IFF_TUN_EXCL`), and
//! it silently truncates names. The throughput plan (TSO/GRO superframes, one queue per worker)
//! needs all of those, so this file wraps the handful of ioctls itself with `libc`: no C
//! compiler in the build, and every `unsafe` block of the TAP port in one place.
//!
//! # Lifetime
//!
//! A new device exists as long as the [`Tap`] (its file descriptor): dropping the `Tap` removes
//! the link, also after it was moved into another network namespace. The daemon makes its
//! ports persistent ([`Tap::set_persist`]) so that they outlive it (a restart, an upgrade, a
//! crash): the container keeps its interface, shown NO-CARRIER while no descriptor is attached,
//! and a restarted daemon opens it again with [`Tap::reopen`] from inside the container's
//! namespace. Removing a port turns persistence off first, so closing deletes it.
//!
//! # Queues
//!
//! A TAP opened with [`TapOptions::queues`] above 1 is a multi-queue device
//! (`IFF_MULTI_QUEUE`): one descriptor per queue, each attached with its own `TUNSETIFF`. The
//! container's kernel picks the queue a frame leaves on by its flow (`tun_automq_select_queue`:
//! the queue that last delivered that flow to it, else a hash), so every data-path worker reads
//! its own queue and a flow stays on one worker. A device's queue mode is fixed at creation: a
//! persistent single-queue TAP (made by an older daemon) refuses a multi-queue attach
//! (`EINVAL`), so [`Tap::reopen`] then takes it back with its one queue.
//!
//! # Naming
//!
//! [`Tap::name`] is the name the kernel gave the device at creation. Attaching the port to a
//! container renames it (usually to `eth0` inside the namespace); [`Tap::current_name`] asks the
//! kernel for the name it has now.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::ops::BitOr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns::ifname::{check_ifname, IFNAME_MAX_LEN};
use crate::wire::virtio_net::{self, VnetHdr};

/// Length of the virtio-net header in front of every frame when [`TapOptions::vnet_hdr`] is on.
///
/// 12 bytes is `struct virtio_net_hdr_v1` (the legacy header plus `num_buffers`). The kernel's
/// default is the 10-byte legacy header; we ask for the v1 layout so the header can later be
/// handed between virtio-style code and the TAP without re-packing.
pub const VNET_HDR_LEN: usize = virtio_net::HEADER_LEN;

const TUN_PATH: &str = "/dev/net/tun";
/// `TUNGETDEVNETNS`, `_IO('T', 227)` (Linux 5.2+); libc does not define it.
const TUNGETDEVNETNS: libc::Ioctl = 0x54E3;

/// How to create a [`Tap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapOptions {
    vnet_hdr: bool,
    nonblocking: bool,
    /// Queues (descriptors) to attach; 0 and 1 both mean a single-queue device.
    queues: u16,
}

/// Most queues a TAP can have (the kernel's `MAX_TAP_QUEUES`).
pub const MAX_QUEUES: usize = 256;

impl TapOptions {
    /// Plain frames, blocking I/O.
    pub const fn new() -> Self {
        TapOptions {
            vnet_hdr: false,
            nonblocking: false,
            queues: 1,
        }
    }

    /// Attach `n` queues (at most [`MAX_QUEUES`]); above 1 the device is multi-queue
    /// (`IFF_MULTI_QUEUE`), see "Queues".
    pub const fn queues(mut self, n: u16) -> Self {
        self.queues = n;
        self
    }

    /// Prefix every frame read or written with a [`VNET_HDR_LEN`]-byte virtio-net header
    /// (`IFF_VNET_HDR`). Required for [`Tap::set_offload`].
    pub const fn vnet_hdr(mut self, on: bool) -> Self {
        self.vnet_hdr = on;
        self
    }

    /// Open the descriptor with `O_NONBLOCK` (what an event loop wants).
    pub const fn nonblocking(mut self, on: bool) -> Self {
        self.nonblocking = on;
        self
    }
}

/// Offloads the kernel may use on frames it hands us (`TUNSETOFFLOAD`, `TUN_F_*`).
///
/// Turning one on means the reader promises to handle what it implies: partial checksums
/// (`CSUM`) and frames larger than the MTU that it must segment (`TSO4`, `TSO6`, `USO4`,
/// `USO6`), all described by the virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Offload(u32);

impl Offload {
    /// No offloads: every frame is complete and at most MTU-sized.
    pub const NONE: Offload = Offload(0);
    /// Frames may carry a partial checksum (`TUN_F_CSUM`); required by all the others.
    pub const CSUM: Offload = Offload(libc::TUN_F_CSUM);
    /// TCP segmentation offload for IPv4 (`TUN_F_TSO4`).
    pub const TSO4: Offload = Offload(libc::TUN_F_TSO4);
    /// TCP segmentation offload for IPv6 (`TUN_F_TSO6`).
    pub const TSO6: Offload = Offload(libc::TUN_F_TSO6);
    /// TSO with the ECN (CWR) bit (`TUN_F_TSO_ECN`).
    pub const TSO_ECN: Offload = Offload(libc::TUN_F_TSO_ECN);
    /// UDP segmentation offload for IPv4 (`TUN_F_USO4`, Linux 6.2+).
    pub const USO4: Offload = Offload(libc::TUN_F_USO4);
    /// UDP segmentation offload for IPv6 (`TUN_F_USO6`, Linux 6.2+).
    pub const USO6: Offload = Offload(libc::TUN_F_USO6);

    /// The raw `TUN_F_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag in `other` is set in `self`.
    pub const fn contains(self, other: Offload) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Offload {
    type Output = Offload;

    fn bitor(self, rhs: Offload) -> Offload {
        Offload(self.0 | rhs.0)
    }
}

/// A TAP device: reads return frames the kernel sends out of the interface, writes inject frames
/// as if received on it.
#[derive(Debug)]
pub struct Tap {
    /// One descriptor per queue; queue 0 carries the device-wide ioctls.
    queues: Vec<File>,
    name: String,
    vnet_hdr_len: usize,
    /// The offloads last set with [`Tap::set_offload`] (`TUN_F_*` bits).
    offload: AtomicU32,
}

/// `struct ifreq` reduced to the two members the TUN ioctls use, padded to the real size so the
/// kernel's `copy_from_user`/`copy_to_user` of a whole `ifreq` stays inside it.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; IFREQ_PAD],
}

const IFREQ_PAD: usize =
    std::mem::size_of::<libc::ifreq>() - libc::IFNAMSIZ - std::mem::size_of::<libc::c_short>();
const _: () = assert!(std::mem::size_of::<IfReq>() == std::mem::size_of::<libc::ifreq>());

impl IfReq {
    fn new(name: &str, flags: libc::c_int) -> Self {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            // The flag bits all live in the low 16 bits; `ifr_flags` is a short.
            flags: flags as libc::c_short,
            _pad: [0; IFREQ_PAD],
        };
        // Callers pass names that passed `check_ifname`; the clamp only keeps the final NUL.
        let len = name.len().min(IFNAME_MAX_LEN);
        req.name[..len].copy_from_slice(&name.as_bytes()[..len]);
        req
    }

    fn name(&self) -> String {
        let len = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..len]).into_owned()
    }
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn with_context(err: io::Error, what: impl FnOnce() -> String) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", what()))
}

impl Tap {
    /// Creates a TAP device named `name` (at most [`IFNAME_MAX_LEN`] bytes; a pattern such as
    /// `vsw%d` lets the kernel pick the number).
    ///
    /// Fails if an interface with that name already exists: the daemon never adopts a device
    /// someone else created (`IFF_TUN_EXCL`).
    pub fn create(name: &str, opts: TapOptions) -> io::Result<Tap> {
        Tap::open_iff(name, libc::IFF_TUN_EXCL, opts, opts.queues > 1, "create")
    }

    /// Opens the existing persistent TAP `name` of the calling thread's network namespace (the
    /// kernel looks the name up there): how a restarted daemon takes its ports back. Only a
    /// persistent TAP is adopted; where none exists, the device the open would have created is
    /// closed (and so deleted) again and the error is `NotFound`.
    ///
    /// A device's queue mode cannot change: a single-queue TAP asked for with several queues
    /// (one an older daemon made) is taken back with its one queue, and a multi-queue TAP asked
    /// for with one queue gets one queue attached.
    pub fn reopen(name: &str, opts: TapOptions) -> io::Result<Tap> {
        // EINVAL (kind `InvalidInput`; the wrapper with the message keeps the kind, not the
        // errno) is the kernel refusing the other queue mode. A bad name or queue count fails
        // the same way again on the retry.
        let multi = opts.queues > 1;
        let tap = match Tap::open_iff(name, 0, opts, multi, "open") {
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                // The other mode: a single-queue TAP, or a multi-queue one taken back (or
                // deleted) with one queue.
                Tap::open_iff(name, 0, opts.queues(1), !multi, "open")?
            }
            other => other?,
        };
        let mut req = IfReq::new("", 0);
        // SAFETY: TUNGETIFF writes one `struct ifreq` into the pointed-to buffer; `req` is a live,
        // exclusively borrowed value of exactly that size.
        let rc = unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNGETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::c_int::from(req.flags) & libc::IFF_PERSIST == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no persistent TAP named '{name}' here"),
            ));
        }
        Ok(tap)
    }

    /// Makes the device outlive its descriptors (`TUNSETPERSIST`), or not: a device that is
    /// not persistent is deleted when its last descriptor closes.
    pub fn set_persist(&self, on: bool) -> io::Result<()> {
        // SAFETY: TUNSETPERSIST takes its argument by value (0 or 1) and touches no memory of
        // ours.
        let rc = unsafe {
            libc::ioctl(
                self.as_raw_fd(),
                libc::TUNSETPERSIST,
                libc::c_ulong::from(on),
            )
        };
        if rc < 0 {
            // The bare errno: EBADFD means the kernel has detached the device already.
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The device's MAC address (`SIOCGIFHWADDR` on the TAP's descriptor).
    pub fn mac(&self) -> io::Result<[u8; 6]> {
        let mut req = IfReq::new(&self.name, 0);
        // SAFETY: SIOCGIFHWADDR on a TUN descriptor writes one `struct ifreq` (its `ifr_hwaddr`
        // member) into the pointed-to buffer; `req` is a live, exclusively borrowed value of
        // exactly that size.
        let rc = unsafe {
            libc::ioctl(
                self.as_raw_fd(),
                libc::SIOCGIFHWADDR,
                &mut req as *mut IfReq,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // `ifr_hwaddr` is a `struct sockaddr` over the flags: 2 bytes of family, then the data.
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&req._pad[..6]);
        Ok(mac)
    }

    /// `TUNSETIFF` on fresh `/dev/net/tun` descriptors, one per queue, with `extra` flags on
    /// the first, in multi-queue mode if `multi`; `verb` says what was attempted, for errors.
    fn open_iff(
        name: &str,
        extra: libc::c_int,
        opts: TapOptions,
        multi: bool,
        verb: &str,
    ) -> io::Result<Tap> {
        check_ifname(name).map_err(|why| invalid_input(format!("invalid TAP name: {why}")))?;
        let queues = usize::from(opts.queues.max(1));
        if queues > MAX_QUEUES {
            return Err(invalid_input(format!(
                "cannot {verb} TAP '{name}' with {queues} queues: at most {MAX_QUEUES}"
            )));
        }
        let mut iff = libc::IFF_TAP | libc::IFF_NO_PI;
        if opts.vnet_hdr {
            iff |= libc::IFF_VNET_HDR;
        }
        if multi {
            iff |= libc::IFF_MULTI_QUEUE;
        }
        let (first, name) = attach_queue(name, iff | extra, opts, verb)?;
        let mut files = Vec::with_capacity(queues);
        files.push(first);
        // The other queues attach to the device by the name the kernel gave it (a pattern such
        // as `vsw%d` is resolved by now). Dropping `files` on an error detaches them again.
        for _ in 1..queues {
            files.push(attach_queue(&name, iff, opts, verb)?.0);
        }
        let mut tap = Tap {
            queues: files,
            name,
            vnet_hdr_len: 0,
            offload: AtomicU32::new(0),
        };
        if opts.vnet_hdr {
            tap.set_vnet_hdr_len(VNET_HDR_LEN)?;
        }
        Ok(tap)
    }

    /// The name the kernel gave the device when it was created.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's name now, asked from the kernel (`TUNGETIFF`); differs from [`Tap::name`]
    /// once the port has been attached to a container under another name.
    pub fn current_name(&self) -> io::Result<String> {
        let mut req = IfReq::new("", 0);
        // SAFETY: TUNGETIFF writes one `struct ifreq` into the pointed-to buffer; `req` is a live,
        // exclusively borrowed value of exactly that size.
        let rc = unsafe { libc::ioctl(self.as_raw_fd(), libc::TUNGETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(req.name())
    }

    /// The network namespace the device is in now (`TUNGETDEVNETNS`), as a new descriptor: a
    /// caller that moved the port itself (Docker) told the daemon neither where nor when.
    pub fn netns(&self) -> io::Result<OwnedFd> {
        // _IO('T', 227) in <linux/if_tun.h>; not in the libc crate.
        // SAFETY: TUNGETDEVNETNS takes no argument and returns a new descriptor or -1.
        let fd = unsafe { libc::ioctl(self.as_raw_fd(), TUNGETDEVNETNS) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Length of the virtio-net header in front of each frame: 0 without
    /// [`TapOptions::vnet_hdr`], else [`VNET_HDR_LEN`].
    pub fn vnet_hdr_len(&self) -> usize {
        self.vnet_hdr_len
    }

    /// The offloads the kernel accepted last ([`Tap::set_offload`]); none before.
    pub fn offload(&self) -> Offload {
        Offload(self.offload.load(Ordering::Relaxed))
    }

    fn set_vnet_hdr_len(&mut self, len: usize) -> io::Result<()> {
        let len_c = libc::c_int::try_from(len)
            .map_err(|_| invalid_input(format!("virtio-net header length {len} is too large")))?;
        // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer; `len_c` is a live local.
        let rc = unsafe {
            libc::ioctl(
                self.as_raw_fd(),
                libc::TUNSETVNETHDRSZ,
                &len_c as *const libc::c_int,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(with_context(err, || {
                format!("cannot set the virtio-net header length of {}", self.name)
            }));
        }
        self.vnet_hdr_len = len;
        Ok(())
    }

    /// Tells the kernel which offloads it may use on frames it gives us (`TUNSETOFFLOAD`).
    ///
    /// Anything but [`Offload::NONE`] needs the virtio-net header ([`TapOptions::vnet_hdr`]):
    /// without it there is nowhere to describe a partial checksum or a superframe.
    pub fn set_offload(&self, offload: Offload) -> io::Result<()> {
        if offload != Offload::NONE && self.vnet_hdr_len == 0 {
            return Err(invalid_input(format!(
                "cannot enable offloads on {}: it was created without the virtio-net header",
                self.name
            )));
        }
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of TUN_F_* bits)
        // and touches no memory of ours.
        let rc = unsafe {
            libc::ioctl(
                self.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(offload.bits()),
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(with_context(err, || {
                format!("cannot set offloads {:#x} on {}", offload.bits(), self.name)
            }));
        }
        self.offload.store(offload.bits(), Ordering::Relaxed);
        Ok(())
    }

    /// Switches `O_NONBLOCK` on or off, on every queue.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        for q in &self.queues {
            let fd = q.as_raw_fd();
            // SAFETY: F_GETFL on a descriptor we own; no pointers involved.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                return Err(io::Error::last_os_error());
            }
            let new = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            if new != flags {
                // SAFETY: F_SETFL with an integer argument on a descriptor we own; no pointers.
                let rc = unsafe { libc::fcntl(fd, libc::F_SETFL, new) };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }

    /// Reads one frame (preceded by the virtio-net header if enabled). A buffer shorter than the
    /// frame gets the frame truncated, as with any packet descriptor.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_on(0, buf)
    }

    /// Writes one frame (preceded by the virtio-net header if enabled).
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        self.write_on(0, frame)
    }

    /// How many queues (descriptors) this TAP has attached.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Queue `q`'s descriptor (for polling). Panics if `q` is not below [`Tap::queues`].
    pub fn queue_fd(&self, q: usize) -> RawFd {
        self.queues[q].as_raw_fd()
    }

    /// [`Tap::read`] from queue `q` (any index: it wraps around the queues there are).
    pub fn read_on(&self, q: usize, buf: &mut [u8]) -> io::Result<usize> {
        self.queue(q).read(buf)
    }

    /// [`Tap::write`] on queue `q` (any index: it wraps around the queues there are). The
    /// kernel then sends that flow's answers on the same queue.
    pub fn write_on(&self, q: usize, frame: &[u8]) -> io::Result<usize> {
        self.queue(q).write(frame)
    }

    fn queue(&self, q: usize) -> &File {
        &self.queues[q % self.queues.len()]
    }

    /// Writes `frame` with the virtio-net header `vnet` in front of it (one `writev`, no copy).
    /// On a TAP without the header, `vnet` is left out; a frame whose header asks for an
    /// offload cannot be written there and is refused.
    pub fn write_with(&self, vnet: &VnetHdr, frame: &[u8]) -> io::Result<usize> {
        self.write_with_on(0, vnet, frame)
    }

    /// [`Tap::write_with`] on queue `q` (any index: it wraps around the queues there are).
    pub fn write_with_on(&self, q: usize, vnet: &VnetHdr, frame: &[u8]) -> io::Result<usize> {
        if self.vnet_hdr_len == 0 {
            if vnet.is_gso() || vnet.needs_csum() {
                return Err(invalid_input(format!(
                    "{} has no virtio-net header: cannot write a frame that needs offloads",
                    self.name
                )));
            }
            return self.write_on(q, frame);
        }
        let hdr = vnet.to_bytes();
        self.queue(q)
            .write_vectored(&[IoSlice::new(&hdr[..self.vnet_hdr_len]), IoSlice::new(frame)])
    }
}

/// One `TUNSETIFF` on a fresh `/dev/net/tun` descriptor: creates the device `name`, or
/// attaches another queue to it. Returns the descriptor and the device's name.
fn attach_queue(
    name: &str,
    iff: libc::c_int,
    opts: TapOptions,
    verb: &str,
) -> io::Result<(File, String)> {
    let mut flags = libc::O_CLOEXEC;
    if opts.nonblocking {
        flags |= libc::O_NONBLOCK;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(TUN_PATH)
        .map_err(|e| {
            with_context(e, || {
                format!("cannot open {TUN_PATH} (is the tun module available?)")
            })
        })?;
    let mut req = IfReq::new(name, iff);
    // SAFETY: `file` is an open /dev/net/tun descriptor; TUNSETIFF reads and writes back one
    // `struct ifreq`, and `req` is a live, exclusively borrowed buffer of exactly that size
    // (checked at compile time above) with a NUL-terminated name.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        let why = match err.raw_os_error() {
            Some(libc::EBUSY) | Some(libc::EEXIST) => {
                format!("cannot {verb} TAP '{name}': an interface with that name already exists or is in use")
            }
            Some(libc::EPERM) => {
                format!("cannot {verb} TAP '{name}': permission denied (needs CAP_NET_ADMIN)")
            }
            Some(libc::EINVAL) => format!(
                "cannot {verb} TAP '{name}': the kernel rejected it (the name may belong to an \
                 interface that is not a TAP, or to a TAP of another queue mode)"
            ),
            _ => format!("cannot {verb} TAP '{name}'"),
        };
        return Err(with_context(err, || why));
    }
    Ok((file, req.name()))
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.queues[0].as_raw_fd()
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queues[0].as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_rejected_before_any_syscall() {
        let err = Tap::create("much-too-long-name", TapOptions::new()).expect_err("must fail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("at most 15"), "{err}");
    }

    #[test]
    fn ifreq_round_trips_the_name() {
        let req = IfReq::new("vsw%d", libc::IFF_TAP);
        assert_eq!(req.name(), "vsw%d");
        assert_eq!(req.flags, libc::IFF_TAP as libc::c_short);
        let full = IfReq::new("a23456789012345", 0);
        assert_eq!(full.name(), "a23456789012345");
    }

    #[test]
    fn offload_bits() {
        let o = Offload::CSUM | Offload::TSO4 | Offload::TSO6;
        assert_eq!(o.bits(), 0x7);
        assert!(o.contains(Offload::TSO4));
        assert!(!o.contains(Offload::USO4));
        assert_eq!(Offload::default(), Offload::NONE);
    }
}
