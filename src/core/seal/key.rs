//! Network keys, key ids, sender ids and the per-sender subkeys derived from them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::aead::{LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{self, Prk, Salt, HKDF_SHA256};
use ring::rand::SecureRandom;
use zeroize::Zeroize;

/// Length of a network key in bytes.
pub const KEY_LEN: usize = 32;

/// HKDF-Expand info that turns a network key into its id.
const KEY_ID_INFO: &[u8] = b"vswitch key id v1";
/// HKDF-Expand info for the key's local fingerprint (never on the wire; see [`KeySlot`]).
const FINGERPRINT_INFO: &[u8] = b"vswitch key fingerprint v1";
/// HKDF-Expand info for the key's public check value (see [`NetworkKey::check_value`]).
const KEY_CHECK_INFO: &[u8] = b"vswitch key check v1";
/// HKDF-Extract salt for per-sender subkeys.
const SUBKEY_SALT: &[u8] = b"vswitch seal v1";

/// The secret shared by every host of an encrypted network: 32 random bytes.
///
/// `Debug` shows only the key id. The bytes are zeroed when the value is dropped (copies that
/// ring makes into its key schedules are not).
#[derive(Clone)]
pub struct NetworkKey([u8; KEY_LEN]);

impl NetworkKey {
    /// A key from its bytes (for example read from the state store).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A key from a slice, which must be exactly [`KEY_LEN`] bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::BadLength(bytes.len()))?;
        Ok(Self(bytes))
    }

    /// A fresh random key (the shell passes `ring::rand::SystemRandom`).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill(&mut bytes).map_err(|_| KeyError::Rng)?;
        Ok(Self(bytes))
    }

    /// The key's id: the first byte of HKDF-SHA256-Expand(key, "vswitch key id v1"). Every host
    /// computes the same id without coordination.
    pub fn id(&self) -> KeyId {
        let mut id = [0u8; 1];
        expand(&self.prk(), KEY_ID_INFO, &mut id);
        KeyId(id[0])
    }

    /// A check value for the key, 16 hex digits: HKDF-SHA256-Expand(key, "vswitch key check v1").
    /// Hosts compare it to tell whether they hold the same key; like any PRF output it says
    /// nothing about the key itself, so it may be stored where the key may not (the cluster
    /// store).
    pub fn check_value(&self) -> String {
        let mut check = [0u8; 8];
        expand(&self.prk(), KEY_CHECK_INFO, &mut check);
        check.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The secret bytes, for persisting the key. Handle with care.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn prk(&self) -> Prk {
        Prk::new_less_safe(HKDF_SHA256, &self.0)
    }
}

impl Drop for NetworkKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// A key's one-byte id, carried in every sealed datagram. Not secret and not unique: two keys
/// collide with probability 1/256, which is why a rotation refuses a new key whose id equals
/// the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u8);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}

/// A fresh random sender id. Use a new one for every [`super::Sealer`] instance.
pub fn generate_sender_id(rng: &dyn SecureRandom) -> Result<u64, KeyError> {
    let mut bytes = [0u8; 8];
    rng.fill(&mut bytes).map_err(|_| KeyError::Rng)?;
    Ok(u64::from_be_bytes(bytes))
}

/// Why a key or sender id could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed; cannot generate a key or sender id")]
    Rng,
    /// Key material of the wrong length.
    #[error("a network key is {KEY_LEN} bytes, got {0} bytes")]
    BadLength(usize),
}

/// Identifies a key locally without keeping it: 16 bytes of HKDF output.
pub(crate) type Fingerprint = [u8; 16];

/// A network key as this host holds it: its id, the HKDF PRK for deriving any sender's
/// subkey, our own sending subkey and our counter for it.
pub(crate) struct KeySlot {
    pub(crate) id: KeyId,
    pub(crate) fingerprint: Fingerprint,
    prk: Prk,
    send: LessSafeKey,
    /// The next counter to use. `u64::MAX` means exhausted: that value is never sent.
    counter: AtomicU64,
}

impl KeySlot {
    /// Hold `key` on network `vni` as sender `sender_id`, sending from counter `first_counter`.
    pub(crate) fn new(key: &NetworkKey, vni: u32, sender_id: u64, first_counter: u64) -> Self {
        let id = key.id();
        let mut fingerprint = [0u8; 16];
        expand(&key.prk(), FINGERPRINT_INFO, &mut fingerprint);
        let prk = Salt::new(HKDF_SHA256, SUBKEY_SALT).extract(key.expose_secret());
        let send = subkey(&prk, vni, sender_id, id);
        Self {
            id,
            fingerprint,
            prk,
            send,
            counter: AtomicU64::new(first_counter),
        }
    }

    /// The subkey `sender_id` seals with under this key on network `vni`.
    pub(crate) fn subkey(&self, vni: u32, sender_id: u64) -> LessSafeKey {
        subkey(&self.prk, vni, sender_id, self.id)
    }

    /// Our sending subkey.
    pub(crate) fn send_key(&self) -> &LessSafeKey {
        &self.send
    }

    /// Take the next counter, or `None` once the counter reached `u64::MAX` (so `u64::MAX`
    /// itself is never used). Never wraps: `fetch_add` would, after enough refused attempts,
    /// so this is a compare-exchange loop.
    pub(crate) fn next_counter(&self) -> Option<u64> {
        self.counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_add(1))
            .ok()
    }

    /// The counter the next datagram would use (`u64::MAX` when exhausted).
    pub(crate) fn peek_counter(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn set_counter(&self, value: u64) {
        self.counter.store(value, Ordering::Relaxed);
    }
}

impl fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySlot")
            .field("id", &self.id)
            .field("counter", &self.peek_counter())
            .finish_non_exhaustive()
    }
}

/// The AES-GCM nonce for `counter`: four zero bytes, then the counter big-endian.
pub(crate) fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// subkey = HKDF-SHA256(salt "vswitch seal v1", ikm key, info vni || sender_id || key_id);
/// `prk` is the extract step, done once per key.
fn subkey(prk: &Prk, vni: u32, sender_id: u64, key_id: KeyId) -> LessSafeKey {
    let vni = (vni & 0x00ff_ffff).to_be_bytes();
    let sender = sender_id.to_be_bytes();
    let info = [&vni[..], &sender[..], &[key_id.0][..]];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("HKDF-SHA256 can expand to an AES-256 key");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// Fill `out` (at most 255 * 32 bytes) from HKDF-Expand(prk, info).
fn expand(prk: &Prk, info: &[u8], out: &mut [u8]) {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    prk.expand(&[info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF-SHA256 expands to short outputs");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = NetworkKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?} {:?}", KeySlot::new(&key, 1, 2, 0));
        assert!(!shown.contains("ab, ") && !shown.contains("171"), "{shown}");
        assert!(shown.contains(&format!("{}", key.id().0)), "{shown}");
        assert_eq!(
            format!("{:?}", KeySlot::new(&key, 1, 2, 5)),
            format!("KeySlot {{ id: KeyId({}), counter: 5, .. }}", key.id().0)
        );
        // The key's own Debug: its name and id, nothing else.
        assert_eq!(
            format!("{key:?}"),
            format!("NetworkKey {{ id: KeyId({}), .. }}", key.id().0)
        );
    }

    #[test]
    fn key_id_is_deterministic_and_spreads() {
        let a = NetworkKey::from_bytes([1; KEY_LEN]);
        assert_eq!(a.id(), NetworkKey::from_bytes([1; KEY_LEN]).id());
        let ids: std::collections::HashSet<_> = (0..=255u8)
            .map(|b| NetworkKey::from_bytes([b; KEY_LEN]).id())
            .collect();
        // The 256 keys [b; 32] give 151 distinct ids: a deterministic figure, so any change to
        // the derivation (info string, byte taken, hash) shows here as well as in the known
        // answer test.
        assert_eq!(ids.len(), 151);
    }

    #[test]
    fn generation_and_lengths() {
        let rng = SystemRandom::new();
        let a = NetworkKey::generate(&rng).expect("rng");
        let b = NetworkKey::generate(&rng).expect("rng");
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(generate_sender_id(&rng), generate_sender_id(&rng));
        assert_eq!(
            NetworkKey::from_slice(&[0; 31]).err(),
            Some(KeyError::BadLength(31))
        );
        let c = NetworkKey::from_slice(&[7; 32]).expect("32 bytes");
        assert_eq!(c.expose_secret(), &[7; 32]);
    }

    #[test]
    fn counter_refuses_to_reach_max() {
        let slot = KeySlot::new(&NetworkKey::from_bytes([3; KEY_LEN]), 1, 2, u64::MAX - 2);
        assert_eq!(slot.next_counter(), Some(u64::MAX - 2));
        assert_eq!(slot.next_counter(), Some(u64::MAX - 1));
        for _ in 0..3 {
            assert_eq!(slot.next_counter(), None);
        }
        assert_eq!(slot.peek_counter(), u64::MAX);
    }
}
