//! Persistent state: the networks and peers a daemon was told about, so a restarted daemon has
//! them again. One JSON file in the state dir, replaced atomically (write a temporary file,
//! fsync it, rename it over the old one, fsync the directory): a crash leaves the old state or
//! the new one, never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::control::NetworkSpec;

/// The file format's version; a newer file is refused rather than misread.
pub const VERSION: u32 = 1;
const FILE: &str = "state.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    pub networks: Vec<NetworkSpec>,
    pub peers: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {reason}; move it aside to start empty")]
    Corrupt { path: PathBuf, reason: String },
}

/// The state dir.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) the state dir, mode 0700.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The saved state, or an empty one when there is none yet.
    pub fn load(&self) -> Result<State, StoreError> {
        let path = self.dir.join(FILE);
        match fs::read(&path) {
            Ok(bytes) => decode(&bytes).map_err(|reason| StoreError::Corrupt { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                version: VERSION,
                ..State::default()
            }),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: self.dir.join(FILE),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        self.write_atomic(FILE, &bytes, 0o600)
    }

    /// Reads `name` from the state dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Removes `name` from the state dir (absent is fine).
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                path: self.dir.join(name),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Writes `name` in the state dir atomically with the given mode.
    pub fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

/// Parses a state file's bytes (also the fuzz target's entry point).
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let state: State = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if state.version != VERSION {
        return Err(format!(
            "version {} (this vswitch reads version {VERSION})",
            state.version
        ));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vswitch-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tmpdir("rt");
        let store = Store::open(&dir).expect("open");
        assert_eq!(store.load().expect("empty").networks.len(), 0);
        let state = State {
            version: VERSION,
            networks: vec![NetworkSpec {
                name: "blue".into(),
                vni: crate::wire::Vni::new(100).expect("vni"),
                subnet: "10.0.0.0/24".parse().expect("cidr"),
                gateway: Some("10.0.0.1".parse().expect("ip")),
                mtu: None,
                encrypted: false,
                key_file: None,
            }],
            peers: vec!["192.0.2.2:4789".parse().expect("addr")],
        };
        store.save(&state).expect("save");
        assert_eq!(store.load().expect("load"), state);
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn corrupt_or_future_files_are_refused_with_a_reason() {
        assert!(decode(b"{").is_err());
        assert!(decode(br#"{"version":2,"networks":[],"peers":[]}"#)
            .expect_err("future")
            .contains("version 2"));
        assert!(decode(
            br#"{"version":1,"networks":[{"name":"x","vni":0,"subnet":"10.0.0.0/24"}],"peers":[]}"#
        )
        .is_err());
    }
}
