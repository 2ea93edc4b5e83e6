//! Superframes to VTEPs: cut into MTU-sized segments, each encapsulated in place in an arena,
//! and sent as one run with UDP GSO (see "Offloads" in the module above).

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::sys::GsoSender;
use super::workers::{count_sent, vtep_addr, Batch};
use super::{HEADROOM, TAILROOM};
use crate::core::offload;
use crate::core::Sends;
use crate::wire::virtio_net::VnetHdr;

/// Room for the segments of one superframe, each with headroom and tailroom: 64 KiB of payload
/// at an MSS down to ~100 bytes.
const SEGMENT_ARENA: usize = 512 * 1024;
/// Most segments the arena can hold (each slot has at least headroom, tailroom and headers).
const MAX_SEGMENTS: usize = SEGMENT_ARENA / (HEADROOM + TAILROOM + 54);

/// Per-worker state for sending superframes: the segment arena and where each datagram lies.
pub(super) struct Segmenter {
    arena: Box<[u8]>,
    datagrams: Vec<Range<usize>>,
    gso: GsoSender,
}

impl Segmenter {
    pub fn new() -> Segmenter {
        Segmenter {
            arena: vec![0u8; SEGMENT_ARENA].into_boxed_slice(),
            datagrams: Vec::with_capacity(MAX_SEGMENTS),
            gso: GsoSender::default(),
        }
    }

    /// Cuts `frame` into segments, encapsulates each and sends the run to every VTEP of
    /// `sends` (whose local deliveries are done: see `Forward::deliver`). A segment the
    /// switch refuses to encapsulate is counted there, by reason, and the rest of the run is
    /// not sent.
    pub fn send(&mut self, batch: &Batch<'_>, vnet: &VnetHdr, frame: &[u8], sends: &Sends<'_>) {
        let shared = batch.shared;
        let c = &shared.counters;
        let segs = match offload::segment(frame, vnet, &mut self.arena, HEADROOM, TAILROOM) {
            Ok(segs) => segs,
            Err(e) => {
                c.offload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("superframe: {e}");
                return;
            }
        };
        c.superframes_segmented.fetch_add(1, Ordering::Relaxed);
        self.datagrams.clear();
        let mut src_port = 0;
        for r in segs.frames() {
            let Ok(enc) = batch.switch.encapsulate(sends, &mut self.arena, r) else {
                return;
            };
            src_port = enc.src_port;
            self.datagrams.push(enc.datagram);
        }
        let Some(seg) = self.datagrams.first().map(|d| d.len()) else {
            return;
        };
        let sock = &shared.sources[shared.source(src_port)];
        for &v in sends.vteps() {
            let arena = &self.arena;
            let sent = self.gso.send(
                sock,
                vtep_addr(v),
                seg,
                self.datagrams.iter().map(|d| &arena[d.clone()]),
            );
            count_sent(shared, sent, self.datagrams.len());
        }
    }
}
