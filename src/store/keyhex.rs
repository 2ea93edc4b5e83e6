//! The text form of a network key: 64 hex digits and a newline (key files, the state dir).

use zeroize::Zeroizing;

use crate::core::seal::{NetworkKey, KEY_LEN};

/// Why text is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    #[error("holds {0} characters, not the 64 hex digits of a 256-bit key")]
    Length(usize),
    #[error("is not hex")]
    NotHex,
}

/// Decodes 64 hex digits (surrounding whitespace is ignored).
pub fn decode(text: &str) -> Result<NetworkKey, KeyTextError> {
    let hex = text.trim();
    if hex.len() != KEY_LEN * 2 {
        return Err(KeyTextError::Length(hex.len()));
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    for (i, b) in bytes.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or(KeyTextError::NotHex)?;
        *b = u8::from_str_radix(pair, 16).map_err(|_| KeyTextError::NotHex)?;
    }
    Ok(NetworkKey::from_bytes(*bytes))
}

/// Hex of a key and a newline, zeroed when dropped.
pub fn encode(key: &NetworkKey) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(KEY_LEN * 2 + 1));
    for b in key.expose_secret() {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_bad_text() {
        let key = NetworkKey::from_bytes([0xa5; KEY_LEN]);
        let text = encode(&key);
        assert_eq!(text.as_str(), format!("{}\n", "a5".repeat(32)));
        assert_eq!(decode(&text).expect("decodes").expose_secret(), &[0xa5; 32]);
        assert_eq!(decode("abcd").err(), Some(KeyTextError::Length(4)));
        assert_eq!(decode(&"zz".repeat(32)).err(), Some(KeyTextError::NotHex));
        // A multi-byte character must not panic the slicing.
        let odd = format!("é{}", "a".repeat(62));
        assert_eq!(decode(&odd).err(), Some(KeyTextError::NotHex));
    }
}
