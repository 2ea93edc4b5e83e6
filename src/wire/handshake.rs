//! The control message of an encrypted network: what a sealed envelope with the CONTROL flag
//! ([`crate::wire::sealed::FLAG_CONTROL`]) carries instead of an Ethernet frame. It is sealed,
//! authenticated and counted like a frame; only the plaintext differs. `crate::core::seal`
//! uses it for its freshness handshake and for key announcements during a rotation.
//!
//! ```text
//!  0        type = 0x01 ("hello")
//!  1        flags: 0 on send, ignored on receive
//!  2..10    challenge: u64 BE. Non-zero asks the receiver to reply with an echo of
//!           (this message's sender id, challenge). Zero: no reply wanted.
//! 10..18    echo sender: u64 BE, the sender id of the host whose challenge this answers
//! 18..26    echo challenge: u64 BE, that host's challenge; zero means this is no answer
//! 26        n: how many key counters follow, 0..=3
//! 27..27+9n n × { key_id: u8, next_counter: u64 BE }: for every key the sender holds, the
//!           counter its next datagram under that key will carry at least
//! ```
//!
//! A message is exactly `27 + 9n` bytes. [`ControlRepr::parse`] refuses anything else (and
//! never panics); [`ControlRepr::emit`] writes into a buffer of [`ControlRepr::len`] bytes.

#![forbid(unsafe_code)]

/// The type byte of a hello.
pub const TYPE_HELLO: u8 = 0x01;
/// The most key counters a message carries: a sender holds at most three keys (its current
/// one and, during a rotation, the next or the previous one).
pub const MAX_KEYS: usize = 3;
/// Length of a message without key counters.
pub const MIN_LEN: usize = 27;
/// Length of a message with [`MAX_KEYS`] key counters.
pub const MAX_LEN: usize = MIN_LEN + 9 * MAX_KEYS;

/// Why bytes are not a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the fixed part, or not as long as its key count says.
    #[error("control message of {len} bytes, expected {expected}")]
    BadLength {
        /// Length of the bytes given.
        len: usize,
        /// Length the message should have.
        expected: usize,
    },
    /// A type this build does not know.
    #[error("unknown control message type {0:#04x}")]
    BadType(u8),
    /// More key counters than a sender can hold.
    #[error("control message lists {0} keys, at most {MAX_KEYS}")]
    TooManyKeys(u8),
}

/// An answer to a challenge: whose challenge, and which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Echo {
    /// The challenger's sender id.
    pub sender_id: u64,
    /// The challenge (never zero).
    pub challenge: u64,
}

/// Where a sender's counter for one key stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeyCounter {
    /// The key.
    pub key_id: u8,
    /// The counter of the sender's next datagram under that key, at least.
    pub next_counter: u64,
}

/// A control message, owned. No allocation: the key counters live in a fixed array.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ControlRepr {
    /// Non-zero: the sender wants a reply echoing it.
    pub challenge: u64,
    /// The challenge this message answers, if any.
    pub echo: Option<Echo>,
    keys: [KeyCounter; MAX_KEYS],
    key_count: u8,
}

impl ControlRepr {
    /// A message with no key counters.
    pub fn new(challenge: u64, echo: Option<Echo>) -> Self {
        Self {
            challenge,
            echo,
            ..Self::default()
        }
    }

    /// Adds a key counter; false (and nothing changes) when [`MAX_KEYS`] are already listed.
    pub fn push_key(&mut self, key: KeyCounter) -> bool {
        let Some(slot) = self.keys.get_mut(usize::from(self.key_count)) else {
            return false;
        };
        *slot = key;
        self.key_count += 1;
        true
    }

    /// The key counters listed.
    pub fn keys(&self) -> &[KeyCounter] {
        &self.keys[..usize::from(self.key_count)]
    }

    /// The encoded length.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        MIN_LEN + 9 * usize::from(self.key_count)
    }

    /// Reads a message. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let Some((fixed, rest)) = bytes.split_first_chunk::<MIN_LEN>() else {
            return Err(Error::BadLength {
                len: bytes.len(),
                expected: MIN_LEN,
            });
        };
        if fixed[0] != TYPE_HELLO {
            return Err(Error::BadType(fixed[0]));
        }
        let n = fixed[26];
        if usize::from(n) > MAX_KEYS {
            return Err(Error::TooManyKeys(n));
        }
        let expected = MIN_LEN + 9 * usize::from(n);
        if bytes.len() != expected {
            return Err(Error::BadLength {
                len: bytes.len(),
                expected,
            });
        }
        let u64_at = |b: &[u8], at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(v)
        };
        let echo = Echo {
            sender_id: u64_at(fixed, 10),
            challenge: u64_at(fixed, 18),
        };
        let mut repr = Self::new(u64_at(fixed, 2), (echo.challenge != 0).then_some(echo));
        for key in rest.chunks_exact(9) {
            repr.push_key(KeyCounter {
                key_id: key[0],
                next_counter: u64_at(key, 1),
            });
        }
        Ok(repr)
    }

    /// Writes the message into `buf[..self.len()]` and returns that length. Panics if `buf` is
    /// shorter (a caller bug: size it with [`MAX_LEN`]).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.len();
        let out = &mut buf[..len];
        out[0] = TYPE_HELLO;
        out[1] = 0;
        out[2..10].copy_from_slice(&self.challenge.to_be_bytes());
        let echo = self.echo.unwrap_or(Echo {
            sender_id: 0,
            challenge: 0,
        });
        out[10..18].copy_from_slice(&echo.sender_id.to_be_bytes());
        out[18..26].copy_from_slice(&echo.challenge.to_be_bytes());
        out[26] = self.key_count;
        for (key, chunk) in self.keys().iter().zip(out[MIN_LEN..].chunks_exact_mut(9)) {
            chunk[0] = key.key_id;
            chunk[1..].copy_from_slice(&key.next_counter.to_be_bytes());
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A challenge 0x0a0b, answering (0x11.., 0x22..), one key 0x5a at counter 0x0102.
    const FIXTURE: [u8; 36] = [
        0x01, 0x00, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x01, 0x5a, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
    ];

    fn fixture() -> ControlRepr {
        let mut repr = ControlRepr::new(
            0x0a0b,
            Some(Echo {
                sender_id: 0x1111_1111_1111_1111,
                challenge: 0x2222_2222_2222_2222,
            }),
        );
        assert!(repr.push_key(KeyCounter {
            key_id: 0x5a,
            next_counter: 0x0102,
        }));
        repr
    }

    #[test]
    fn parses_and_emits_the_fixture() {
        assert_eq!(ControlRepr::parse(&FIXTURE), Ok(fixture()));
        let mut buf = [0xffu8; MAX_LEN];
        assert_eq!(fixture().emit(&mut buf), FIXTURE.len());
        assert_eq!(&buf[..FIXTURE.len()], &FIXTURE[..]);
    }

    #[test]
    fn a_zero_echo_challenge_is_no_echo() {
        let mut bytes = FIXTURE;
        bytes[18..26].fill(0);
        assert_eq!(ControlRepr::parse(&bytes).expect("valid").echo, None);
    }

    #[test]
    fn refuses_bad_lengths_types_and_counts() {
        for len in 0..FIXTURE.len() {
            assert!(
                matches!(
                    ControlRepr::parse(&FIXTURE[..len]),
                    Err(Error::BadLength { .. })
                ),
                "{len}"
            );
        }
        let mut long = FIXTURE.to_vec();
        long.push(0);
        assert_eq!(
            ControlRepr::parse(&long),
            Err(Error::BadLength {
                len: 37,
                expected: 36
            })
        );
        let mut bytes = FIXTURE;
        bytes[0] = 0x02;
        assert_eq!(ControlRepr::parse(&bytes), Err(Error::BadType(0x02)));
        let mut bytes = FIXTURE;
        bytes[26] = 4;
        assert_eq!(ControlRepr::parse(&bytes), Err(Error::TooManyKeys(4)));
    }

    #[test]
    fn holds_at_most_three_keys() {
        let mut repr = ControlRepr::new(1, None);
        for id in 0..3 {
            assert!(repr.push_key(KeyCounter {
                key_id: id,
                next_counter: 9,
            }));
        }
        assert!(!repr.push_key(KeyCounter::default()));
        assert_eq!(repr.keys().len(), 3);
        assert_eq!(repr.len(), MAX_LEN);
    }

    proptest! {
        #[test]
        fn round_trip(challenge: u64, echo: Option<(u64, u64)>, keys in proptest::collection::vec(any::<(u8, u64)>(), 0..=3)) {
            let echo = echo.filter(|&(_, c)| c != 0).map(|(sender_id, challenge)| Echo { sender_id, challenge });
            let mut repr = ControlRepr::new(challenge, echo);
            for (key_id, next_counter) in keys {
                let pushed = repr.push_key(KeyCounter { key_id, next_counter });
                prop_assert!(pushed);
            }
            let mut buf = [0u8; MAX_LEN];
            let len = repr.emit(&mut buf);
            prop_assert_eq!(ControlRepr::parse(&buf[..len]), Ok(repr));
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..70)) {
            if let Ok(repr) = ControlRepr::parse(&bytes) {
                prop_assert_eq!(repr.len(), bytes.len());
            }
        }
    }
}
