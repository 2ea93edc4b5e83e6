//! A per-test time limit for the e2e tests, which libtest does not have: every `Lab` is
//! watched from its creation, and a lab still alive after `E2E_TEST_TIMEOUT` seconds (default
//! 300) ends the whole run with its test's name and its daemons' logs, instead of hanging CI
//! until its own limit. The run is inside `unshare --net --mount`, so what the test made
//! vanishes with the process.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

struct Watched {
    test: String,
    dir: PathBuf,
    logs: Vec<PathBuf>,
    since: Instant,
}

fn watched() -> &'static Mutex<HashMap<u64, Watched>> {
    static WATCHED: OnceLock<Mutex<HashMap<u64, Watched>>> = OnceLock::new();
    WATCHED.get_or_init(|| {
        thread::spawn(watch);
        Mutex::new(HashMap::new())
    })
}

fn limit() -> Duration {
    let secs = std::env::var("E2E_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

fn watch() {
    let limit = limit();
    loop {
        thread::sleep(Duration::from_secs(1));
        let map = watched().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = map.values().find(|w| w.since.elapsed() > limit) {
            // Straight to the process's stderr: `eprintln!` would go to the test's captured
            // output, which is lost when the process exits.
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "\n=== e2e test {} is still running after {limit:?}: ending the run ===",
                w.test
            );
            for log in &w.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let _ = writeln!(err, "--- {} ---\n{text}", log.display());
            }
            end_children();
            let _ = std::fs::remove_dir_all(&w.dir);
            std::process::exit(124);
        }
    }
}

/// Kills this process's children (the daemons, helpers and tools the tests started), which
/// would otherwise outlive the run.
fn end_children() {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(me.as_str()) {
            // SAFETY: kill(2) with a PID read from /proc and a signal number; no memory involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Watches one lab while it lives.
pub struct Watch(u64);

impl Watch {
    /// Starts watching the current test (named after its thread, as libtest names them), whose
    /// lab lives in `dir` (removed if the test runs out of time).
    pub fn start(dir: PathBuf) -> Watch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let test = thread::current().name().unwrap_or("?").to_string();
        let entry = Watched {
            test,
            dir,
            logs: Vec::new(),
            since: Instant::now(),
        };
        watched()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry);
        Watch(id)
    }

    /// Adds a daemon log to print if the test runs out of time.
    pub fn log(&self, path: PathBuf) {
        if let Some(w) = watched()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.0)
        {
            w.logs.push(path);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        watched()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}
