//! Key files: 64 hex digits (a 256-bit network key) and a newline, mode 0600.
//!
//! A key file that is missing, short, garbled, or readable by anyone but its owner is refused
//! with a message naming the file and the fix.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use ring::rand::SystemRandom;

use crate::core::seal::{NetworkKey, KEY_LEN};

/// Reads and checks a key file.
pub fn read(path: &Path) -> Result<NetworkKey, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("key file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("key file {shown} is not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {shown} is readable by group or others (mode {mode:04o}): run `chmod 600 {shown}`"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("key file {shown}: {e}"))?;
    decode(text.trim()).map_err(|why| {
        format!("key file {shown} {why}; make one with `vswitch key generate --out FILE`")
    })
}

/// Decodes 64 hex digits.
pub fn decode(hex: &str) -> Result<NetworkKey, String> {
    if hex.len() != KEY_LEN * 2 {
        return Err(format!(
            "holds {} characters, not the {} hex digits of a 256-bit key",
            hex.len(),
            KEY_LEN * 2
        ));
    }
    let mut bytes = [0u8; KEY_LEN];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
            .map_err(|_| "is not hex".to_string())?;
    }
    let key = NetworkKey::from_slice(&bytes).map_err(|e| e.to_string());
    bytes.fill(0);
    key
}

/// Hex of a key, for writing a key file.
pub fn encode(key: &NetworkKey) -> String {
    let mut s: String = key
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.push('\n');
    s
}

/// A fresh random key from the system RNG.
pub fn generate() -> Result<NetworkKey, String> {
    NetworkKey::generate(&SystemRandom::new()).map_err(|e| format!("cannot generate a key: {e}"))
}

/// Writes a new key file with mode 0600; refuses to overwrite an existing file.
pub fn write_new(path: &Path, key: &NetworkKey) -> Result<(), String> {
    let shown = path.display();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{shown} already exists; refusing to overwrite a key")
            }
            _ => format!("cannot write {shown}: {e}"),
        })?;
    f.write_all(encode(key).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("vswitch-keys-{}-{name}", std::process::id()))
    }

    #[test]
    fn generated_key_round_trips_through_a_file() {
        let p = tmp("rt");
        let _ = std::fs::remove_file(&p);
        let k = generate().expect("key");
        write_new(&p, &k).expect("write");
        assert_eq!(std::fs::metadata(&p).expect("meta").mode() & 0o777, 0o600);
        assert_eq!(read(&p).expect("read").expose_secret(), k.expose_secret());
        assert!(write_new(&p, &k)
            .expect_err("exists")
            .contains("already exists"));
        std::fs::remove_file(&p).expect("cleanup");
    }

    #[test]
    fn bad_key_files_are_refused_with_the_reason() {
        let p = tmp("bad");
        assert!(read(&p).expect_err("missing").contains("No such file"));
        for (content, mode, why) in [
            ("abcd\n", 0o600, "4 characters"),
            (&"zz".repeat(32), 0o600, "not hex"),
            (&"ab".repeat(32), 0o644, "chmod 600"),
            (&"ab".repeat(32), 0o640, "group or others"),
        ] {
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, content).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = read(&p).expect_err(why);
            assert!(e.contains(why), "{e}");
        }
        std::fs::remove_file(&p).expect("cleanup");
    }
}
