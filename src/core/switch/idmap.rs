//! A cheap hasher for the switch's own small integer keys.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes the small integer keys of the switch's own maps (VNIs, port ids) with one multiply.
/// Those keys are configuration, never inserted from the network, so flooding them is not a
/// concern; the MAC table, whose keys come from the network, keeps a randomly seeded hasher
/// (see [`crate::core::fdb`]).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the high bits, which hashbrown uses, mix every input bit.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
