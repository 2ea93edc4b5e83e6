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
