//! The handshake's bookkeeping: which peers we have challenged and not heard back from, and
//! which challenges we owe an answer (protocol: see the parent module's documentation).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::lock;
use crate::core::Timestamp;
use crate::wire::handshake::Echo;

/// A challenge we sent (or are about to send) to one peer.
#[derive(Debug, Clone, Copy)]
struct Challenge {
    /// Never zero; every challenge of one `Sealer` has its own.
    seq: u64,
    /// When it last went out; `None` while it is due.
    sent_at: Option<Timestamp>,
}

#[derive(Debug)]
struct State<P> {
    next_seq: u64,
    challenges: HashMap<P, Challenge>,
    replies: HashMap<P, Echo>,
}

/// What one peer is owed: the message [`Handshakes::poll`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due<P> {
    pub(crate) peer: P,
    /// Our challenge to repeat (non-zero) or none (0).
    pub(crate) challenge: u64,
    pub(crate) echo: Option<Echo>,
}

/// Outstanding challenges and owed replies of one network, per peer. Bounded: at most `max`
/// peers each; beyond that new peers wait until one is answered.
#[derive(Debug)]
pub(crate) struct Handshakes<P> {
    state: Mutex<State<P>>,
    /// Something is due: a cheap check for the data path.
    due: AtomicBool,
    max: usize,
}

impl<P: Copy + Eq + Hash> Handshakes<P> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(State {
                next_seq: 1,
                challenges: HashMap::new(),
                replies: HashMap::new(),
            }),
            due: AtomicBool::new(false),
            max,
        }
    }

    /// Challenge `peer`: at once if nothing is outstanding, again if the last challenge went
    /// out at least `retry` ago and was not answered (`now = None`: the caller has no clock,
    /// so only a new challenge is made due). True if a challenge is now due.
    pub(crate) fn challenge(&self, peer: P, now: Option<Timestamp>, retry: Duration) -> bool {
        let mut state = lock(&self.state);
        let full = state.challenges.len() >= self.max;
        let due = match state.challenges.get_mut(&peer) {
            Some(c) => match (c.sent_at, now) {
                (None, _) => true,
                (Some(sent), Some(now)) if now >= sent.saturating_add(retry) => {
                    c.sent_at = None;
                    true
                }
                _ => false,
            },
            None if full => false,
            None => {
                let seq = state.next_seq;
                state.next_seq = seq.wrapping_add(1).max(1);
                state
                    .challenges
                    .insert(peer, Challenge { seq, sent_at: None });
                true
            }
        };
        if due {
            self.due.store(true, Ordering::Release);
        }
        due
    }

    /// `peer` answered challenge `seq`: true (and the challenge is spent) if that is the one
    /// outstanding for it and it has gone out. Each challenge is answered once.
    pub(crate) fn answered(&self, peer: &P, seq: u64) -> bool {
        let mut state = lock(&self.state);
        match state.challenges.get(peer) {
            Some(c) if c.seq == seq && c.sent_at.is_some() => {
                state.challenges.remove(peer);
                true
            }
            _ => false,
        }
    }

    /// `peer`'s sender is verified: no challenge to it is outstanding any more.
    pub(crate) fn settle(&self, peer: &P) {
        lock(&self.state).challenges.remove(peer);
    }

    /// We owe `peer` an answer to `echo` (the latest challenge wins).
    pub(crate) fn owe(&self, peer: P, echo: Echo) {
        let mut state = lock(&self.state);
        if state.replies.len() >= self.max && !state.replies.contains_key(&peer) {
            return;
        }
        state.replies.insert(peer, echo);
        self.due.store(true, Ordering::Release);
    }

    /// True if [`Handshakes::poll`] has something.
    pub(crate) fn is_due(&self) -> bool {
        self.due.load(Ordering::Acquire)
    }

    /// The next message due, if any: to a peer we challenge (repeating the challenge) and/or
    /// owe an answer. A challenge handed out counts as sent at `now`.
    pub(crate) fn poll(&self, now: Timestamp) -> Option<Due<P>> {
        if !self.is_due() {
            return None;
        }
        let mut state = lock(&self.state);
        let peer = state.replies.keys().next().copied().or_else(|| {
            state
                .challenges
                .iter()
                .find(|(_, c)| c.sent_at.is_none())
                .map(|(&p, _)| p)
        });
        let Some(peer) = peer else {
            self.due.store(false, Ordering::Release);
            return None;
        };
        let echo = state.replies.remove(&peer);
        // An answer also carries our own challenge to that peer while it is unanswered.
        let challenge = match state.challenges.get_mut(&peer) {
            Some(c) => {
                c.sent_at = Some(now);
                c.seq
            }
            None => 0,
        };
        Some(Due {
            peer,
            challenge,
            echo,
        })
    }

    /// Forget `peer` (it left the network).
    pub(crate) fn forget(&self, peer: &P) {
        let mut state = lock(&self.state);
        state.challenges.remove(peer);
        state.replies.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_millis(250);

    fn drain(h: &Handshakes<u32>, now: Timestamp) -> Vec<Due<u32>> {
        std::iter::from_fn(|| h.poll(now)).collect()
    }

    #[test]
    fn a_challenge_goes_out_once_until_retry_and_is_answered_once() {
        let h = Handshakes::new(8);
        assert!(!h.is_due());
        assert!(h.challenge(7, Some(Timestamp(0)), RETRY));
        let sent = drain(&h, Timestamp(0));
        assert_eq!(sent.len(), 1);
        let seq = sent[0].challenge;
        assert_ne!(seq, 0);
        assert!(!h.is_due());
        // Not again before the retry interval, then the same challenge again.
        assert!(!h.challenge(7, Some(Timestamp(100)), RETRY));
        assert!(h.challenge(7, Some(Timestamp(250)), RETRY));
        assert_eq!(drain(&h, Timestamp(250))[0].challenge, seq);
        // Answered by the wrong peer or with the wrong number: no.
        assert!(!h.answered(&8, seq));
        assert!(!h.answered(&7, seq + 1));
        assert!(h.answered(&7, seq));
        assert!(!h.answered(&7, seq), "a challenge is answered once");
        // The next challenge has a new number.
        assert!(h.challenge(7, None, RETRY));
        assert_ne!(drain(&h, Timestamp(300))[0].challenge, seq);
    }

    #[test]
    fn a_challenge_not_yet_sent_cannot_be_answered() {
        let h = Handshakes::new(8);
        h.challenge(1, None, RETRY);
        assert!(!h.answered(&1, 1));
    }

    #[test]
    fn replies_carry_our_own_challenge() {
        let h = Handshakes::new(8);
        let echo = Echo {
            sender_id: 5,
            challenge: 9,
        };
        h.owe(3, echo);
        h.challenge(3, None, RETRY);
        let sent = drain(&h, Timestamp(0));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].echo, Some(echo));
        assert_ne!(sent[0].challenge, 0);
        // A reply alone carries no challenge.
        h.owe(4, echo);
        assert_eq!(
            drain(&h, Timestamp(0)),
            vec![Due {
                peer: 4,
                challenge: 0,
                echo: Some(echo)
            }]
        );
    }

    #[test]
    fn bounded_per_peer() {
        let h = Handshakes::new(2);
        assert!(h.challenge(1, None, RETRY));
        assert!(h.challenge(2, None, RETRY));
        assert!(!h.challenge(3, None, RETRY));
        assert_eq!(drain(&h, Timestamp(0)).len(), 2);
        h.forget(&1);
        assert!(h.challenge(3, None, RETRY));
    }
}
