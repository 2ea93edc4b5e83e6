//! The gateway's DNS server: a UDP socket and a few TCP listeners on port 53 of the gateway
//! address, answering from the network's names ([`crate::core::dns`]). Queries for other names
//! wait here, by token, while the caller asks the host's resolvers ([`Upstream`]); the caller
//! hands back the answer, or `None` for SERVFAIL.

use std::collections::{BTreeMap, VecDeque};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::GatewayAddr;
use crate::core::dns::{self, Answer, Names};
use crate::core::Timestamp;

/// The DNS port.
pub const PORT: u16 = 53;
/// TCP connections served at once.
const TCP_LISTENERS: usize = 4;
/// Queries waiting for an upstream at once; more get SERVFAIL at once.
const MAX_PENDING: usize = 64;
/// How long (ms) a TCP connection may go without a byte from its client, while none of its
/// queries waits for the upstream, before the gateway closes it (RFC 7766 6.2.3: servers time
/// out idle connections; four listeners are too few to leave to clients that never close).
pub(super) const TCP_IDLE_MS: u64 = 10_000;
/// How long (ms) a connection the gateway closed may take to finish closing (a client that
/// never sends its own FIN, or never acknowledges ours) before it is reset.
pub(super) const TCP_LINGER_MS: u64 = 2_000;

/// A query for the host's resolvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub token: u64,
    pub query: Vec<u8>,
}

/// What the DNS server counted since it was last asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    pub queries: u64,
    pub forwarded: u64,
    pub servfail: u64,
    pub malformed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Udp(udp::UdpMetadata),
    /// A TCP listener's index and which connection on it.
    Tcp(usize, u64),
}

#[derive(Debug)]
struct Listener {
    handle: SocketHandle,
    /// Bytes received and not yet a whole message.
    buf: Vec<u8>,
    /// Counts connections, so a late upstream answer never reaches the next one.
    conn: u64,
    connected: bool,
    /// When the client last sent a byte or had a query waiting for the upstream.
    active_at: Timestamp,
    /// When the gateway closed its side of this connection.
    closed_at: Option<Timestamp>,
}

#[derive(Debug)]
pub(super) struct Server {
    udp: SocketHandle,
    tcp: Vec<Listener>,
    names: Names,
    turn: usize,
    next_token: u64,
    waiting: BTreeMap<u64, (Client, Vec<u8>)>,
    upstream: VecDeque<Upstream>,
    stats: DnsStats,
}

impl Server {
    pub(super) fn new(addr: &GatewayAddr, sockets: &mut SocketSet<'static>) -> Server {
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(addr.ip)),
            port: PORT,
        };
        let buffer =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0u8; 64 * 1024]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        // A fresh socket on a valid address and a non-zero port: binding cannot fail.
        let _ = socket.bind(endpoint);
        let udp = sockets.add(socket);
        let tcp = (0..TCP_LISTENERS)
            .map(|_| {
                let socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0u8; 4096]),
                    tcp::SocketBuffer::new(vec![0u8; 16 * 1024]),
                );
                Listener {
                    handle: sockets.add(socket),
                    buf: Vec::new(),
                    conn: 0,
                    connected: false,
                    active_at: Timestamp(0),
                    closed_at: None,
                }
            })
            .collect();
        Server {
            udp,
            tcp,
            names: Names::default(),
            turn: 0,
            next_token: 0,
            waiting: BTreeMap::new(),
            upstream: VecDeque::new(),
            stats: DnsStats::default(),
        }
    }

    pub(super) fn set_names(&mut self, names: Names) {
        self.names = names;
    }

    pub(super) fn take_upstream(&mut self) -> Option<Upstream> {
        self.upstream.pop_front()
    }

    pub(super) fn take_stats(&mut self) -> DnsStats {
        std::mem::take(&mut self.stats)
    }

    /// Answers what the sockets received, and closes the TCP connections that are due.
    pub(super) fn serve(&mut self, sockets: &mut SocketSet<'static>, now: Timestamp) {
        loop {
            let socket = sockets.get_mut::<udp::Socket>(self.udp);
            let Ok((query, meta)) = socket.recv() else {
                break;
            };
            let query = query.to_vec();
            self.handle(sockets, Client::Udp(meta), &query);
        }
        for i in 0..self.tcp.len() {
            self.serve_tcp(sockets, i, now);
        }
    }

    /// When a TCP connection is next due to be closed or reset, if any is open.
    pub(super) fn poll_at(&self) -> Option<Timestamp> {
        self.tcp
            .iter()
            .filter(|l| l.connected)
            .map(|l| match l.closed_at {
                Some(at) => at.0.saturating_add(TCP_LINGER_MS),
                None => l.active_at.0.saturating_add(TCP_IDLE_MS),
            })
            .min()
            .map(Timestamp)
    }

    fn serve_tcp(&mut self, sockets: &mut SocketSet<'static>, i: usize, now: Timestamp) {
        let l = &mut self.tcp[i];
        let socket = sockets.get_mut::<tcp::Socket>(l.handle);
        if !socket.is_open() {
            l.buf.clear();
            l.connected = false;
            l.closed_at = None;
            // Listening on a closed socket with a non-zero port cannot fail.
            let _ = socket.listen(PORT);
            return;
        }
        if socket.is_active() && !l.connected {
            l.connected = true;
            l.conn += 1;
            l.active_at = now;
        }
        // Whole messages are taken out as they arrive, so what stays in `buf` is the start of
        // one message: at most 2 + 65 535 bytes, however much a client pipelines.
        let mut messages = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n @ 1..) = socket.recv_slice(&mut chunk) {
            l.active_at = now;
            l.buf.extend_from_slice(&chunk[..n]);
            while let [hi, lo, rest @ ..] = &l.buf[..] {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                if rest.len() < len {
                    break;
                }
                messages.push(rest[..len].to_vec());
                l.buf.drain(..2 + len);
            }
        }
        let client = Client::Tcp(i, l.conn);
        for m in messages {
            self.handle(sockets, client, &m);
        }
        let waiting = self.waiting.values().any(|(c, _)| *c == client);
        let l = &mut self.tcp[i];
        let socket = sockets.get_mut::<tcp::Socket>(l.handle);
        if waiting {
            l.active_at = now;
        }
        if let Some(at) = l.closed_at {
            if now.0 >= at.0.saturating_add(TCP_LINGER_MS) {
                socket.abort();
            }
            return;
        }
        // The client is done sending (it may still be reading): once every query it sent has
        // its answer queued, close our side too. A message it left unfinished never will.
        let done = socket.state() == tcp::State::CloseWait && !waiting;
        let idle = l.connected && now.0 >= l.active_at.0.saturating_add(TCP_IDLE_MS);
        if done || idle {
            socket.close();
            l.closed_at = Some(now);
        }
    }

    fn handle(&mut self, sockets: &mut SocketSet<'static>, client: Client, query: &[u8]) {
        self.stats.queries += 1;
        let tcp = matches!(client, Client::Tcp(..));
        match dns::answer(query, &self.names, self.turn, tcp) {
            Answer::Reply(bytes) => {
                self.turn = self.turn.wrapping_add(1);
                self.send(sockets, client, &bytes);
            }
            Answer::Drop => self.stats.malformed += 1,
            Answer::Forward if self.waiting.len() >= MAX_PENDING => {
                self.fail(sockets, client, query)
            }
            Answer::Forward => {
                self.stats.forwarded += 1;
                let token = self.next_token;
                self.next_token += 1;
                self.waiting.insert(token, (client, query.to_vec()));
                self.upstream.push_back(Upstream {
                    token,
                    query: query.to_vec(),
                });
            }
        }
    }

    /// The upstream's answer to query `token`, or `None`: SERVFAIL.
    pub(super) fn answered(
        &mut self,
        sockets: &mut SocketSet<'static>,
        token: u64,
        reply: Option<Vec<u8>>,
    ) {
        let Some((client, query)) = self.waiting.remove(&token) else {
            return;
        };
        match reply {
            Some(bytes) => self.send(sockets, client, &bytes),
            None => self.fail(sockets, client, &query),
        }
    }

    fn fail(&mut self, sockets: &mut SocketSet<'static>, client: Client, query: &[u8]) {
        self.stats.servfail += 1;
        if let Some(bytes) = dns::servfail(query) {
            self.send(sockets, client, &bytes);
        }
    }

    fn send(&mut self, sockets: &mut SocketSet<'static>, client: Client, bytes: &[u8]) {
        match client {
            Client::Udp(meta) => {
                // A full transmit buffer loses the answer; the client asks again.
                let _ = sockets
                    .get_mut::<udp::Socket>(self.udp)
                    .send_slice(bytes, meta);
            }
            Client::Tcp(i, conn) => {
                let l = &self.tcp[i];
                let socket = sockets.get_mut::<tcp::Socket>(l.handle);
                let Ok(len) = u16::try_from(bytes.len()) else {
                    return;
                };
                if l.conn != conn
                    || !socket.may_send()
                    || socket.send_capacity() - socket.send_queue() < bytes.len() + 2
                {
                    return;
                }
                let _ = socket.send_slice(&len.to_be_bytes());
                let _ = socket.send_slice(bytes);
            }
        }
    }
}
