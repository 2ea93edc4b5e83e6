//! What the switch decides for one frame ([`Forward`]) and how the caller carries it out, in
//! the one safe order: local deliveries first ([`Forward::deliver`]), then the sends to VTEPs
//! ([`Sends`], which [`Switch::encapsulate`](super::Switch::encapsulate) needs). Sealing
//! encrypts a frame where it lies, so the order is part of the API, not a convention.

use std::ops::Range;

use super::counters::{DropReason, Lane};
use super::fdb::{PortId, Vtep};
use crate::wire::Vni;

/// Where one frame goes. Caller-owned and reused from frame to frame: [`Forward::clear`] keeps
/// the vectors' capacity, so the data path does not allocate once warm.
#[derive(Debug, Default, Clone)]
pub struct Forward {
    /// The network the frame belongs to, once known.
    pub vni: Option<Vni>,
    /// Local ports to deliver the frame to.
    pub ports: Vec<PortId>,
    /// VTEPs to send the encapsulated frame to.
    pub vteps: Vec<Vtep>,
    /// Where the inner Ethernet frame lies in the buffer given to the switch.
    pub frame: Range<usize>,
    /// Set when the frame was dropped (and counted).
    pub dropped: Option<DropReason>,
    /// The frame is for the network's own gateway host (and for nothing else); see
    /// [`crate::core::gateway`].
    pub gateway: bool,
    /// Set when the switch answered the frame itself (proxy ARP): this reply, not the frame,
    /// goes to `ports` (the asking port).
    pub reply: Option<Reply>,
    /// The traffic counters the switch adds to for this caller: shared by default; a data-path
    /// worker makes its `Forward` with [`Forward::with_own_lane`].
    pub lane: Lane,
}

/// The length of an Ethernet frame carrying an IPv4-over-Ethernet ARP packet (no padding).
pub const ARP_FRAME_LEN: usize = 42;

/// A frame the switch made itself: an ARP reply. Kept inline, so answering allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply(pub(crate) [u8; ARP_FRAME_LEN]);

impl Reply {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Forward {
    /// A `Forward` whose traffic is counted in a lane of its own (see [`Lane::claim`]): for a
    /// data-path worker, which keeps it for its life.
    pub fn with_own_lane() -> Forward {
        Forward {
            lane: Lane::claim(),
            ..Forward::default()
        }
    }

    pub fn clear(&mut self) {
        self.vni = None;
        self.ports.clear();
        self.vteps.clear();
        self.frame = 0..0;
        self.dropped = None;
        self.reply = None;
        self.gateway = false;
    }

    pub(super) fn drop(&mut self, reason: DropReason) {
        self.ports.clear();
        self.vteps.clear();
        self.dropped = Some(reason);
    }

    /// Carries out the first half of the decision: hands `frame` (the bytes at
    /// [`Forward::frame`]), or the switch's own [`Forward::reply`] when there is one, to every
    /// local port, in order, then returns the second half, the sends to VTEPs, if there are
    /// any.
    ///
    /// This is the only way to get a [`Sends`], and
    /// [`Switch::encapsulate`](super::Switch::encapsulate) needs one, so a frame cannot be
    /// sealed (encrypted where it lies) before its local copies are out.
    pub fn deliver(
        &self,
        frame: &[u8],
        mut to_port: impl FnMut(PortId, &[u8]),
    ) -> Option<Sends<'_>> {
        let frame = self.reply.as_ref().map_or(frame, Reply::bytes);
        for &port in &self.ports {
            to_port(port, frame);
        }
        match (self.vni, self.vteps.is_empty()) {
            (Some(vni), false) => Some(Sends {
                vni,
                vteps: &self.vteps,
            }),
            _ => None,
        }
    }
}

/// What is left of a [`Forward`] once its local deliveries are done: the frame's network and
/// the VTEPs it goes to. Made only by [`Forward::deliver`]; needed by
/// [`Switch::encapsulate`](super::Switch::encapsulate).
#[derive(Debug, Clone, Copy)]
pub struct Sends<'a> {
    vni: Vni,
    vteps: &'a [Vtep],
}

impl<'a> Sends<'a> {
    pub fn vni(&self) -> Vni {
        self.vni
    }

    /// Never empty.
    pub fn vteps(&self) -> &'a [Vtep] {
        self.vteps
    }
}

/// An encapsulated frame, ready for the underlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    /// Where the datagram (VXLAN header onwards) lies in the buffer.
    pub datagram: Range<usize>,
    /// The outer UDP source port: a hash of the inner flow.
    pub src_port: u16,
}
