//! The state dir: one JSON state file and one key file per encrypted network, each replaced
//! atomically (write a temporary file, fsync it, rename it over the old one, fsync the
//! directory): a crash leaves the old version or the new one, never half of either. Only this
//! daemon writes here, so the revision is a counter kept in memory; file work runs off the
//! async runtime's thread.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{keyhex, records, PortEntry, Revision, Snapshot, State, StateStore, StoreError};
use crate::core::seal::NetworkKey;

const FILE: &str = "state.json";
/// This host's ports (see [`super::PortEntry`]).
const PORTS_FILE: &str = "ports.json";
/// More than a key's text (64 hex digits and a newline) is never read.
const KEY_TEXT_MAX: u64 = 128;

/// The state dir.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: Arc<PathBuf>,
    revision: Arc<AtomicU64>,
}

impl FileStore {
    /// Opens (creating) the state dir, mode 0700. A dir that is a symlink, is owned by another
    /// user, or is writable by group or others is refused: whoever can write it could plant
    /// links that make the daemon write a network key somewhere else.
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let meta = fs::symlink_metadata(dir).map_err(io)?;
        let me = crate::user::effective_uid();
        let refuse = |why: String| StoreError::UnsafeDir {
            path: dir.to_owned(),
            why,
        };
        if !meta.is_dir() {
            return Err(refuse("it is not a directory (a symlink?)".into()));
        }
        if meta.uid() != me {
            return Err(refuse(format!(
                "it is owned by uid {}, not by uid {me}",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "it is writable by group or others (mode {:04o})",
                meta.mode() & 0o7777
            )));
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(FileStore {
            dir: Arc::new(dir.to_owned()),
            revision: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key_file(network: &str) -> String {
        format!("key-{network}.hex")
    }

    /// Runs blocking file work on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || f(&dir))
            .await
            .map_err(|e| StoreError::Io {
                path: self.dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

fn load(dir: &Path) -> Result<State, StoreError> {
    let path = dir.join(FILE);
    match fs::read(&path) {
        Ok(bytes) => records::decode(&bytes).map_err(|source| StoreError::Corrupt { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::empty()),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

fn remove(dir: &Path, name: &str) -> Result<(), StoreError> {
    match fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            path: dir.join(name),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Writes `name` in `dir` atomically with the given mode. The temporary file is created anew
/// (`O_EXCL`, `O_NOFOLLOW`): a link planted in its place makes the write fail instead of
/// sending the bytes elsewhere.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    // A crash may have left one behind; unlink removes a link itself, never its target.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

impl StateStore for FileStore {
    fn describe(&self) -> String {
        format!("state dir {}", self.dir.display())
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let state = self.blocking(load).await?;
        Ok(Snapshot {
            state,
            revision: Revision(self.revision.load(Ordering::Acquire)),
        })
    }

    async fn save(&self, expected: Revision, state: &State) -> Result<Revision, StoreError> {
        let found = self.revision.load(Ordering::Acquire);
        if found != expected.0 {
            return Err(StoreError::Conflict {
                expected: expected.0,
                found,
            });
        }
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: self.dir.join(FILE),
            source: records::DecodeError::Json(e.to_string()),
        })?;
        bytes.push(b'\n');
        self.blocking(move |dir| write_atomic(dir, FILE, &bytes, 0o600))
            .await?;
        Ok(Revision(self.revision.fetch_add(1, Ordering::AcqRel) + 1))
    }

    async fn ports(&self) -> Result<Vec<PortEntry>, StoreError> {
        self.blocking(|dir| {
            let path = dir.join(PORTS_FILE);
            match fs::read(&path) {
                Ok(bytes) => records::decode_ports(&bytes)
                    .map_err(|source| StoreError::Corrupt { path, source }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(source) => Err(StoreError::Io { path, source }),
            }
        })
        .await
    }

    async fn save_ports(&self, ports: &[PortEntry]) -> Result<(), StoreError> {
        let file = records::PortsFile {
            version: records::VERSION,
            ports: ports.to_vec(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Corrupt {
            path: self.dir.join(PORTS_FILE),
            source: records::DecodeError::Json(e.to_string()),
        })?;
        bytes.push(b'\n');
        self.blocking(move |dir| write_atomic(dir, PORTS_FILE, &bytes, 0o600))
            .await
    }

    async fn put_key(&self, network: &str, key: &NetworkKey) -> Result<(), StoreError> {
        let name = Self::key_file(network);
        let text = keyhex::encode(key);
        self.blocking(move |dir| write_atomic(dir, &name, text.as_bytes(), 0o600))
            .await
    }

    async fn key(&self, network: &str) -> Result<Option<NetworkKey>, StoreError> {
        let name = Self::key_file(network);
        let network = network.to_owned();
        self.blocking(move |dir| {
            let path = dir.join(&name);
            let mut text = zeroize::Zeroizing::new(String::new());
            let read = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
                .and_then(|f| {
                    use std::io::Read;
                    f.take(KEY_TEXT_MAX).read_to_string(&mut text)
                });
            match read {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(StoreError::Io { path, source }),
            }
            keyhex::decode(&text)
                .map(Some)
                .map_err(|e| StoreError::BadKey {
                    network,
                    reason: format!("{} {e}", path.display()),
                })
        })
        .await
    }

    async fn remove_key(&self, network: &str) -> Result<(), StoreError> {
        let name = Self::key_file(network);
        self.blocking(move |dir| remove(dir, &name)).await
    }

    fn watch(&self) -> Option<tokio::sync::mpsc::Receiver<Snapshot>> {
        None
    }

    fn health(&self) -> super::StoreHealth {
        super::StoreHealth {
            backend: "file",
            location: self.describe(),
            connected: true,
            revision: self.revision.load(Ordering::Acquire),
            last_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::seal::KEY_LEN;
    use crate::store::NetworkRecord;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vswitch-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tmpdir("rt");
        let store = FileStore::open(&dir).expect("open");
        let empty = block(store.load()).expect("empty");
        assert_eq!(empty.state.networks.len(), 0);
        let state = State {
            cluster: None,
            version: records::VERSION,
            networks: vec![NetworkRecord {
                name: "blue".into(),
                vni: crate::wire::Vni::new(100).expect("vni"),
                subnet: "10.0.0.0/24".parse().expect("cidr"),
                gateway: Some("10.0.0.1".parse().expect("ip")),
                mtu: None,
                encrypted: false,
                key_file: None,
                key_check: None,
                internal: false,
            }],
            peers: vec!["192.0.2.2:4789".parse().expect("addr")],
        };
        let r = block(store.save(empty.revision, &state)).expect("save");
        assert_eq!(r, Revision(1));
        assert!(matches!(
            block(store.save(empty.revision, &state)),
            Err(StoreError::Conflict { .. })
        ));
        let loaded = block(store.load()).expect("load");
        assert_eq!((loaded.state, loaded.revision), (state, r));
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn keys_are_stored_0600_and_a_garbled_one_is_named() {
        use std::os::unix::fs::MetadataExt;
        let dir = tmpdir("keys");
        let store = FileStore::open(&dir).expect("open");
        assert!(block(store.key("sec")).expect("none").is_none());
        block(store.put_key("sec", &NetworkKey::from_bytes([9; KEY_LEN]))).expect("put");
        let path = dir.join("key-sec.hex");
        assert_eq!(fs::metadata(&path).expect("key file").mode() & 0o777, 0o600);
        let k = block(store.key("sec")).expect("read").expect("present");
        assert_eq!(k.expose_secret(), &[9; KEY_LEN]);
        fs::write(&path, "nonsense").expect("garble");
        let e = block(store.key("sec")).expect_err("garbled");
        assert!(e.to_string().contains("network 'sec'"), "{e}");
        block(store.remove_key("sec")).expect("remove");
        block(store.remove_key("sec")).expect("absent is fine");
        assert!(!path.exists());
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn an_unsafe_state_dir_is_refused_and_planted_links_are_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmpdir("unsafe");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = FileStore::open(&dir).expect_err("world-writable");
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        let link = tmpdir("unsafe-link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let e = FileStore::open(&link).expect_err("a symlink");
        assert!(e.to_string().contains("not a directory"), "{e}");
        fs::remove_file(&link).expect("cleanup link");
        if crate::user::is_root() {
            std::os::unix::fs::chown(&dir, Some(65534), None).expect("chown as root");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
            let e = FileStore::open(&dir).expect_err("foreign owner");
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
            std::os::unix::fs::chown(&dir, Some(0), None).expect("chown back");
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        let store = FileStore::open(&dir).expect("safe now");
        // A link planted where the temporary key file goes: the write fails, the target
        // stays untouched.
        let target = tmpdir("unsafe-target");
        fs::write(&target, "untouched").expect("target");
        std::os::unix::fs::symlink(&target, dir.join(".key-sec.hex.tmp")).expect("plant");
        block(store.put_key("sec", &NetworkKey::from_bytes([5; KEY_LEN]))).expect("put");
        assert_eq!(fs::read_to_string(&target).expect("target"), "untouched");
        let key = block(store.key("sec")).expect("read").expect("stored");
        assert_eq!(key.expose_secret(), &[5; KEY_LEN]);
        // The key file itself replaced by a link: not followed.
        fs::remove_file(dir.join("key-sec.hex")).expect("rm");
        std::os::unix::fs::symlink(&target, dir.join("key-sec.hex")).expect("plant");
        assert!(
            block(store.key("sec")).is_err(),
            "a linked key file is not read"
        );
        fs::remove_dir_all(&dir).expect("cleanup");
        fs::remove_file(&target).expect("cleanup");
    }
}
