//! The CLI's side of the control socket: one blocking request/reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Request, Response, WireReply};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the vswitch daemon at {path} (is it running? start it with `vswitch daemon` as root, or point --socket / VSWITCH_SOCKET at its socket)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the daemon at {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the daemon sent a reply this CLI does not understand: {0}")]
    BadReply(String),
    /// The daemon refused the request; the message is the daemon's.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request and waits for its reply. `timeout` bounds the whole exchange (attach may
/// take a second or two while it probes the overlay for address conflicts).
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: path.clone(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::BadReply(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(io)?;
    match serde_json::from_str::<WireReply>(&reply) {
        Ok(WireReply::Ok(body)) => Response::decode(request, body)
            .map_err(|e| ClientError::BadReply(format!("{e}: {reply:?}"))),
        Ok(WireReply::Error(e)) => Err(ClientError::Refused(e)),
        Err(e) => Err(ClientError::BadReply(format!("{e}: {reply:?}"))),
    }
}
