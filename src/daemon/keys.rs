//! Key files: 64 hex digits (a 256-bit network key) and a newline, mode 0600.
//!
//! A key file that is missing, short, garbled, or readable by anyone but its owner is refused
//! with a message naming the file and the fix.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;

use crate::core::seal::NetworkKey;
use crate::store::keyhex::{self, KeyTextError};

/// Why a key file was refused, or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("key file {} is a symbolic link; give the path of the file itself", path.display())]
    Symlink { path: PathBuf },
    #[error(
        "key file {} is owned by uid {uid}, not by root; `chown root {}` if it is yours",
        path.display(),
        path.display()
    )]
    Owner { path: PathBuf, uid: u32 },
    #[error(
        "key file {} is larger than a key file ({MAX_KEY_FILE} bytes at most); is it the right file?",
        path.display()
    )]
    TooLarge { path: PathBuf },
    #[error(
        "key file {} is readable by group or others (mode {mode:04o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error(
        "key file {} {source}; make one with `vswitch key generate --out FILE`",
        path.display()
    )]
    Text { path: PathBuf, source: KeyTextError },
    #[error("{} already exists; refusing to overwrite a key", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a key: {0}")]
    Generate(crate::core::seal::KeyError),
}

/// The largest key file read: 64 hex digits, a newline, and room for a CRLF or spaces.
pub const MAX_KEY_FILE: u64 = 128;

/// Reads and checks a key file.
///
/// The file is opened once, without following a symlink and without blocking (a FIFO cannot
/// hang the daemon), and every check is made on that open file: a regular file, owned by root
/// (or by the user running vswitch), not readable by group or others, at most
/// [`MAX_KEY_FILE`] bytes. Every copy of its text is zeroed.
pub fn read(path: &Path) -> Result<NetworkKey, KeyFileError> {
    use std::io::Read;
    let open = |source| KeyFileError::Open {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => KeyFileError::Symlink {
                path: path.to_owned(),
            },
            _ => open(e),
        })?;
    let meta = file.metadata().map_err(open)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotRegular {
            path: path.to_owned(),
        });
    }
    if meta.uid() != 0 && meta.uid() != crate::user::effective_uid() {
        return Err(KeyFileError::Owner {
            path: path.to_owned(),
            uid: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = zeroize::Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE as usize + 1));
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut text)
        .map_err(open)?;
    if meta.len() > MAX_KEY_FILE || text.len() as u64 > MAX_KEY_FILE {
        return Err(KeyFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = std::str::from_utf8(&text).map_err(|_| KeyFileError::Text {
        path: path.to_owned(),
        source: KeyTextError::NotHex,
    })?;
    keyhex::decode(text).map_err(|source| KeyFileError::Text {
        path: path.to_owned(),
        source,
    })
}

/// A fresh random key from the system RNG.
pub fn generate() -> Result<NetworkKey, KeyFileError> {
    NetworkKey::generate(&SystemRandom::new()).map_err(KeyFileError::Generate)
}

/// Writes a new key file with mode 0600; refuses to overwrite an existing file.
pub fn write_new(path: &Path, key: &NetworkKey) -> Result<(), KeyFileError> {
    let write = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists {
                path: path.to_owned(),
            },
            _ => write(e),
        })?;
    f.write_all(keyhex::encode(key).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(write)
}

/// Hex of a key, for printing.
pub fn encode(key: &NetworkKey) -> zeroize::Zeroizing<String> {
    keyhex::encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_dropped_network_key_leaves_zeros_where_its_bytes_were() {
        use crate::core::seal::{NetworkKey, KEY_LEN};
        // Here, not in core::seal (which has no unsafe code): the key's storage is read after
        // its drop. NetworkKey is its 32 bytes and nothing else, so they are its whole storage.
        assert_eq!(std::mem::size_of::<NetworkKey>(), KEY_LEN);
        let mut slot = std::mem::MaybeUninit::new(NetworkKey::from_bytes([0xab; KEY_LEN]));
        // SAFETY: the key is initialised and dropped exactly once, in place; MaybeUninit never
        // drops it again and its storage stays this test's. Its drop wrote every byte (zeros),
        // so reading them as a byte array reads initialised memory.
        let left = unsafe {
            std::ptr::drop_in_place(slot.as_mut_ptr());
            slot.as_ptr().cast::<[u8; KEY_LEN]>().read()
        };
        assert_eq!(left, [0; KEY_LEN]);
    }

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
        let e = write_new(&p, &k).expect_err("exists");
        assert!(matches!(e, KeyFileError::Exists { .. }), "{e}");
        assert!(e.to_string().contains("already exists"), "{e}");
        std::fs::remove_file(&p).expect("cleanup");
    }

    #[test]
    fn bad_key_files_are_refused_with_the_reason() {
        let p = tmp("bad");
        let _ = std::fs::remove_file(&p);
        assert!(read(&p)
            .expect_err("missing")
            .to_string()
            .contains("No such file"));
        for (content, mode, why) in [
            ("abcd\n", 0o600, "4 characters"),
            (&"zz".repeat(32), 0o600, "not hex"),
            (&"ab".repeat(32), 0o644, "chmod 600"),
            (&"ab".repeat(32), 0o640, "group or others"),
        ] {
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, content).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = read(&p).expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
            assert!(e.contains(&p.display().to_string()), "names the file: {e}");
        }
        std::fs::remove_file(&p).expect("cleanup");
        let dir = std::env::temp_dir();
        assert!(matches!(read(&dir), Err(KeyFileError::NotRegular { .. })));
    }

    /// A good key file behind a symlink, a FIFO (which would block a plain open), a huge
    /// file, and one owned by someone else: each refused on the open file itself.
    #[test]
    fn symlinks_fifos_huge_and_foreign_key_files_are_refused() {
        let good = tmp("good");
        let _ = std::fs::remove_file(&good);
        write_new(&good, &generate().expect("key")).expect("write");

        let link = tmp("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&good, &link).expect("symlink");
        let e = read(&link).expect_err("symlink");
        assert!(matches!(e, KeyFileError::Symlink { .. }), "{e}");

        let fifo = tmp("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let started = std::time::Instant::now();
        let e = read(&fifo).expect_err("fifo");
        assert!(matches!(e, KeyFileError::NotRegular { .. }), "{e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "did not block"
        );

        let huge = tmp("huge");
        let _ = std::fs::remove_file(&huge);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&huge)
            .expect("create");
        f.set_len(200 << 20).expect("sparse 200 MB");
        let e = read(&huge).expect_err("huge");
        assert!(matches!(e, KeyFileError::TooLarge { .. }), "{e}");

        if crate::user::is_root() {
            let foreign = tmp("foreign");
            let _ = std::fs::remove_file(&foreign);
            std::fs::copy(&good, &foreign).expect("copy");
            std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
            std::os::unix::fs::chown(&foreign, Some(65534), None).expect("chown as root");
            let e = read(&foreign).expect_err("owned by nobody");
            assert!(matches!(e, KeyFileError::Owner { uid: 65534, .. }), "{e}");
            std::fs::remove_file(&foreign).expect("cleanup");
        }
        for p in [good, link, fifo, huge] {
            std::fs::remove_file(&p).expect("cleanup");
        }
    }
}
