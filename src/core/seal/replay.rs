//! The anti-replay window: a sliding bitmap over counters (RFC 6479, as in WireGuard).

/// How many counters the window remembers: the newest accepted counter and the 2047 before it.
/// Anything older is rejected, so a datagram may arrive up to 2047 positions late.
pub const REPLAY_WINDOW: u64 = 2048;

const WORD_BITS: u64 = u64::BITS as u64;
/// One word more than the window needs, so the window never shares a word with counters that
/// just slid out of it and advancing only ever clears whole words.
const WORDS: usize = (REPLAY_WINDOW / WORD_BITS) as usize + 1;

/// Why a counter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Seen before.
    Duplicate,
    /// At least [`REPLAY_WINDOW`] behind the newest counter: cannot tell, so refuse.
    TooOld,
}

/// Which counters of one (sender, key) have been accepted.
///
/// 280 bytes. `check` is the cheap test done before decryption; `update` is done after the
/// datagram authenticated and re-checks, because two workers may race on the same counter.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    /// Counters below it are refused: they were sent before the sender was verified.
    floor: u64,
    /// The newest accepted counter (`floor` before any; its bit then tells whether it was seen).
    top: u64,
    /// Bit `c % 64` of word `(c / 64) % WORDS` is set if counter `c` was accepted.
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::starting_at(0)
    }
}

impl ReplayWindow {
    /// A window that refuses every counter below `floor` (as [`Replay::TooOld`]).
    pub(crate) fn starting_at(floor: u64) -> Self {
        Self {
            floor,
            top: floor,
            bitmap: [0; WORDS],
        }
    }

    /// Would `counter` be accepted?
    pub(crate) fn check(&self, counter: u64) -> Result<(), Replay> {
        if counter < self.floor {
            return Err(Replay::TooOld);
        }
        if counter > self.top {
            return Ok(());
        }
        if self.top - counter >= REPLAY_WINDOW {
            return Err(Replay::TooOld);
        }
        let (word, bit) = position(counter);
        if self.bitmap[word] & bit != 0 {
            return Err(Replay::Duplicate);
        }
        Ok(())
    }

    /// Accept `counter` if `check` allows it, sliding the window forward if it is the newest.
    pub(crate) fn update(&mut self, counter: u64) -> Result<(), Replay> {
        self.check(counter)?;
        if counter > self.top {
            let current = self.top / WORD_BITS;
            let new = counter / WORD_BITS;
            // Clear the words between the old top and the new one; after a jump of a whole
            // window or more that is every word.
            let clear = (new - current).min(WORDS as u64);
            for i in 1..=clear {
                self.bitmap[((current + i) % WORDS as u64) as usize] = 0;
            }
            self.top = counter;
        }
        let (word, bit) = position(counter);
        self.bitmap[word] |= bit;
        Ok(())
    }
}

fn position(counter: u64) -> (usize, u64) {
    let word = ((counter / WORD_BITS) % WORDS as u64) as usize;
    (word, 1 << (counter % WORD_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn accept_all(window: &mut ReplayWindow, counters: impl IntoIterator<Item = u64>) {
        for c in counters {
            assert_eq!(window.update(c), Ok(()), "counter {c}");
        }
    }

    #[test]
    fn starts_empty_and_accepts_zero_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(0), Ok(()));
        assert_eq!(w.update(0), Ok(()));
        assert_eq!(w.check(0), Err(Replay::Duplicate));
        assert_eq!(w.update(0), Err(Replay::Duplicate));
        assert_eq!(w.update(1), Ok(()));
    }

    #[test]
    fn a_floor_refuses_what_came_before_it_and_nothing_after() {
        let mut w = ReplayWindow::starting_at(5000);
        for c in [0, 1, 4000, 4999] {
            assert_eq!(w.check(c), Err(Replay::TooOld), "{c}");
        }
        // Out of order above the floor, each once.
        accept_all(&mut w, [5003, 5000, 5002, 5001]);
        for c in 5000..5004 {
            assert_eq!(w.update(c), Err(Replay::Duplicate));
        }
        assert_eq!(w.update(4999), Err(Replay::TooOld));
    }

    #[test]
    fn duplicate_is_refused() {
        let mut w = ReplayWindow::default();
        accept_all(&mut w, 0..100);
        for c in 0..100 {
            assert_eq!(w.update(c), Err(Replay::Duplicate));
        }
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::default();
        let top = 10_000;
        w.update(top).expect("newest");
        // Just inside the window: the oldest counter still remembered.
        assert_eq!(w.check(top - (REPLAY_WINDOW - 1)), Ok(()));
        assert_eq!(w.update(top - (REPLAY_WINDOW - 1)), Ok(()));
        assert_eq!(w.update(top - (REPLAY_WINDOW - 1)), Err(Replay::Duplicate));
        // Just outside: too old, even though never seen.
        assert_eq!(w.check(top - REPLAY_WINDOW), Err(Replay::TooOld));
        assert_eq!(w.update(top - REPLAY_WINDOW), Err(Replay::TooOld));
    }

    #[test]
    fn out_of_order_within_window_accepted_once() {
        let mut w = ReplayWindow::default();
        let top = 5000;
        w.update(top).expect("newest");
        // Every counter of the window below the top, in a scrambled order.
        let inside: Vec<u64> = (1..REPLAY_WINDOW)
            .map(|i| top - (i * 769 % REPLAY_WINDOW))
            .collect();
        accept_all(&mut w, inside.iter().copied());
        for c in inside.iter().copied().chain([top]) {
            assert_eq!(w.update(c), Err(Replay::Duplicate), "counter {c}");
        }
        for c in top - REPLAY_WINDOW - 100..=top - REPLAY_WINDOW {
            assert_eq!(w.update(c), Err(Replay::TooOld), "counter {c}");
        }
    }

    #[test]
    fn jump_far_ahead_forgets_everything_behind() {
        let mut w = ReplayWindow::default();
        accept_all(&mut w, 0..64 * 40);
        let far = 1 << 40;
        w.update(far).expect("jump");
        assert_eq!(w.update(far), Err(Replay::Duplicate));
        // The whole new window below the jump is fresh, the old counters are too old.
        accept_all(&mut w, (far - REPLAY_WINDOW + 1..far).step_by(7));
        assert_eq!(w.update(64 * 40 - 1), Err(Replay::TooOld));
        // A jump of exactly one word boundary keeps the bits of the shared words.
        w.update(far + 64).expect("small jump");
        assert_eq!(w.update(far), Err(Replay::Duplicate));
    }

    #[test]
    fn sliding_into_a_new_word_keeps_the_oldest_counters_of_the_window() {
        // After the top moves to the first counter of a word, the window's oldest counter sits
        // in the word 32 words back: the bitmap must not share storage between the two.
        for word in [32u64, 50, 1000] {
            let mut w = ReplayWindow::default();
            let oldest = (word - 32) * WORD_BITS + 1;
            w.update(word * WORD_BITS - 1)
                .expect("top, last counter of a word");
            w.update(oldest).expect("inside");
            w.update(word * WORD_BITS)
                .expect("top moves into a new word");
            assert_eq!(word * WORD_BITS - oldest, REPLAY_WINDOW - 1, "still inside");
            assert_eq!(w.update(oldest), Err(Replay::Duplicate), "word {word}");
        }
    }

    #[test]
    fn counters_near_u64_max() {
        let mut w = ReplayWindow::default();
        w.update(u64::MAX - 1)
            .expect("largest counter a sender uses");
        assert_eq!(w.update(u64::MAX - 1), Err(Replay::Duplicate));
        assert_eq!(w.update(u64::MAX - REPLAY_WINDOW), Ok(()));
        assert_eq!(w.update(u64::MAX - REPLAY_WINDOW - 1), Err(Replay::TooOld));
        assert_eq!(w.update(0), Err(Replay::TooOld));
        w.update(u64::MAX)
            .expect("window itself handles the top value");
        assert_eq!(w.update(u64::MAX), Err(Replay::Duplicate));
    }

    proptest! {
        /// The bitmap agrees with a model that remembers every counter.
        #[test]
        fn matches_model(steps in proptest::collection::vec((any::<bool>(), 0u64..6000), 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            let mut base = 0u64;
            for (jump, delta) in steps {
                // Mostly moves around the top, sometimes a jump forward.
                let c = if jump { base + delta } else { top.saturating_sub(delta % 2500) };
                base = base.max(c);
                let expected = if c > top || (top - c < REPLAY_WINDOW && !seen.contains(&c)) {
                    Ok(())
                } else if top - c >= REPLAY_WINDOW {
                    Err(Replay::TooOld)
                } else {
                    Err(Replay::Duplicate)
                };
                prop_assert_eq!(w.update(c), expected, "counter {} top {}", c, top);
                if expected.is_ok() {
                    seen.insert(c);
                    top = top.max(c);
                }
            }
        }
    }
}
