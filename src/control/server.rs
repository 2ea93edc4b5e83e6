//! The daemon's side of the control socket (tokio). Each connection may send several requests;
//! a line that is not a valid request gets an error reply and the connection stays usable.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{Reply, Request, MAX_REQUEST};

/// Something that answers requests.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<serde_json::Value, String>> + Send;
}

/// A bound control socket. Binding is separate from serving so the daemon creates the socket
/// only once everything else is ready.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` (mode 0600), replacing a stale socket file left by a dead daemon but refusing
    /// to steal one a live daemon still answers on.
    pub fn bind(path: &Path) -> std::io::Result<ControlSocket> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another daemon is serving {}", path.display()),
            ));
        }
        let _ = std::fs::remove_file(path);
        // Bind under a temporary name and rename into place once the mode is right, so nobody
        // can connect to a socket with the default mode and scripts see it only when it's ready.
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections until the future is dropped.
    pub async fn serve<H: Handler>(self, handler: Arc<H>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let h = handler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, h).await {
                            tracing::debug!("control connection: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("control socket accept: {e}"),
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn connection<H: Handler>(stream: UnixStream, handler: Arc<H>) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut rd)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let reply = if line.len() > MAX_REQUEST {
            Reply::Error(format!("request longer than {MAX_REQUEST} bytes"))
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => match handler.handle(req).await {
                    Ok(v) => Reply::Ok(v),
                    Err(e) => Reply::Error(e),
                },
                Err(e) => Reply::Error(format!("malformed request: {e}")),
            }
        };
        let mut out =
            serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"error\":\"internal\"}".to_vec());
        out.push(b'\n');
        wr.write_all(&out).await?;
        if line.len() > MAX_REQUEST {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client;
    use std::io::{BufRead, BufReader, Write};
    use std::time::Duration;

    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request) -> Result<serde_json::Value, String> {
            match request {
                Request::PeerList => Ok(serde_json::json!(["ok"])),
                other => Err(format!("refused {other:?}")),
            }
        }
    }

    fn serve_in_background(tag: &str) -> (PathBuf, std::thread::JoinHandle<()>) {
        let path =
            std::env::temp_dir().join(format!("vswitch-ctl-{tag}-{}.sock", std::process::id()));
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let sock = ControlSocket::bind(&p).expect("bind");
                tx.send(()).expect("ready");
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), sock.serve(Arc::new(Echo))).await;
            });
        });
        rx.recv().expect("server ready");
        (path, t)
    }

    #[test]
    fn garbled_requests_get_error_replies_and_the_connection_stays_usable() {
        let (path, _t) = serve_in_background("garbled");
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        for junk in [
            &b"\xff\xfe garbage\n"[..],
            b"{\"op\":\"no_such_op\"}\n",
            b"{\"op\":\"peer_add\",\"addr\":\"nope\"}\n",
        ] {
            s.write_all(junk).expect("write");
            let mut line = String::new();
            r.read_line(&mut line).expect("reply");
            let reply: Reply = serde_json::from_str(&line).expect("a reply");
            assert!(
                matches!(reply, Reply::Error(ref e) if e.contains("malformed request")),
                "{line}"
            );
        }
        s.write_all(b"{\"op\":\"peer_list\"}\n").expect("write");
        let mut line = String::new();
        r.read_line(&mut line).expect("reply");
        assert_eq!(
            serde_json::from_str::<Reply>(&line).expect("reply"),
            Reply::Ok(serde_json::json!(["ok"]))
        );
        // And the typed client sees the handler's refusal as such.
        let e = client::call(&path, &Request::Stats, Duration::from_secs(2)).expect_err("refused");
        assert!(
            matches!(e, client::ClientError::Refused(ref m) if m.contains("Stats")),
            "{e}"
        );
    }

    #[test]
    fn an_oversized_request_is_refused_and_the_connection_closed() {
        let (path, _t) = serve_in_background("big");
        let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        let big = vec![b'x'; MAX_REQUEST + 10];
        s.write_all(&big).expect("write");
        // Well under the 5 s the test server lives, whose end would close the connection too.
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut r = BufReader::new(&s);
        let mut line = String::new();
        r.read_line(&mut line).expect("reply");
        assert!(line.contains("longer than"), "{line}");
        // Then the server closes the connection: end of file, not more replies, not a hang.
        let mut rest = String::new();
        assert_eq!(r.read_line(&mut rest).expect("end of file"), 0, "{rest}");
    }

    #[test]
    fn a_missing_daemon_is_reported_with_how_to_start_it() {
        let e = client::call(
            Path::new("/nonexistent/vswitch.sock"),
            &Request::Stats,
            Duration::from_secs(1),
        )
        .expect_err("no daemon");
        assert!(e.to_string().contains("vswitch daemon"), "{e}");
    }
}
