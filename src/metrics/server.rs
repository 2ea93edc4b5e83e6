//! `/metrics` over HTTP/1.1: one route, GET only, one response per connection. Written here
//! rather than pulling in an HTTP server crate for it: the request head is read bounded (8 KiB,
//! 5 s), anything else gets 404 or 405, and each scrape asks the daemon for `stats` through the
//! same `Handler` the control socket uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{render, Format};
use crate::control::server::Handler;
use crate::control::{Request, Response};

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` (an error names it) and serves `/metrics` from `handler` until aborted; with no
/// address, serves nothing.
pub async fn start<H: Handler>(
    addr: Option<SocketAddr>,
    handler: Arc<H>,
) -> std::io::Result<Option<JoinHandle<()>>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot serve metrics on {addr} (--metrics): {e}"),
        )
    })?;
    tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
    Ok(Some(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_TIMEOUT * 2, answer(stream, h)).await;
            });
        }
    })))
}

async fn answer<H: Handler>(mut stream: TcpStream, handler: Arc<H>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, ctype, body) = match (method, path) {
        (b"GET", b"/metrics") => match handler.handle(Request::Stats).await {
            Ok(Response::Stats(stats)) => {
                let format = if wants_openmetrics(&head) {
                    Format::OpenMetrics
                } else {
                    Format::Text004
                };
                ("200 OK", format.content_type(), render(&stats, format))
            }
            Ok(_) => (
                "500 Internal Server Error",
                "text/plain",
                "unexpected reply\n".into(),
            ),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        },
        (b"GET", _) => (
            "404 Not Found",
            "text/plain",
            "only /metrics is here\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// Whether the request's `Accept` header names OpenMetrics (as Prometheus' scrapes do).
fn wants_openmetrics(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("accept:") && l.contains("application/openmetrics-text")
    })
}
