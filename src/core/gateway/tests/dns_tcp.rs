//! DNS over TCP (RFC 7766): a second smoltcp interface plays the container, wired to the
//! gateway host through two queues.

use std::collections::VecDeque;

use hickory_proto::op::{Message, MessageType};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use super::dns::{host_with_names, query};
use super::*;
use crate::core::gateway::dns::{TCP_IDLE_MS, TCP_LINGER_MS};

/// Frames to the container (`0`) and from it (`1`).
struct Wire(VecDeque<Vec<u8>>, VecDeque<Vec<u8>>);
struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);
impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}
impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}
impl Device for Wire {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;
    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let f = self.0.pop_front()?;
        Some((Rx(f), Tx(&mut self.1)))
    }
    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.1))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// The gateway host (names: `web` is 10.0.0.7) and a container with TCP clients, on one clock.
struct Bench {
    h: Host,
    wire: Wire,
    iface: Interface,
    sockets: SocketSet<'static>,
    ms: u64,
}

impl Bench {
    fn new() -> Bench {
        let mut wire = Wire(VecDeque::new(), VecDeque::new());
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(EthernetAddress(C1.0))),
            &mut wire,
            Instant::from_millis(0),
        );
        iface.update_ip_addrs(|ips| {
            let _ = ips.push(IpCidr::new(IpAddress::Ipv4(C1_IP), 24));
        });
        Bench {
            h: host_with_names(),
            wire,
            iface,
            sockets: SocketSet::new(Vec::new()),
            ms: 10,
        }
    }

    fn socket(&mut self, c: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(c)
    }

    /// Both sides, 10 ms at a time, until `done` (true) or 3 s have passed (false).
    fn run_until(&mut self, done: impl FnMut(&mut Bench) -> bool) -> bool {
        self.run_within(3_000, done)
    }

    /// Both sides, 10 ms at a time, until `done` (true) or `ms` have passed (false).
    fn run_within(&mut self, ms: u64, mut done: impl FnMut(&mut Bench) -> bool) -> bool {
        for _ in 0..ms / 10 {
            self.ms += 10;
            let now = Instant::from_millis(self.ms as i64);
            self.iface.poll(now, &mut self.wire, &mut self.sockets);
            while let Some(f) = self.wire.1.pop_front() {
                self.h.receive(&f);
            }
            self.h.poll(Timestamp(self.ms));
            while let Some(f) = self.h.transmit() {
                self.wire.0.push_back(f);
            }
            if done(self) {
                return true;
            }
        }
        false
    }

    /// A client from `port` that has sent its SYN to the gateway's port 53.
    fn dial(&mut self, port: u16) -> SocketHandle {
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 4096]),
            tcp::SocketBuffer::new(vec![0; 4096]),
        );
        let c = self.sockets.add(socket);
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(c)
            .connect(cx, (IpAddress::Ipv4(GW_IP), 53), port)
            .expect("connect");
        c
    }

    /// A client connected to the gateway's port 53 from `port`.
    fn connect(&mut self, port: u16) -> SocketHandle {
        let c = self.dial(port);
        assert!(
            self.run_until(|b| b.socket(c).may_send()),
            "port {port}: not connected"
        );
        c
    }

    /// A new client from `port` asks for `web.` with id `id` and gets the answer: a listener is
    /// free.
    fn serves(&mut self, port: u16, id: u16) {
        let c = self.connect(port);
        self.send(c, &[query("web.", id)]);
        assert_eq!(ids(&self.receive(c, 1)), [id], "port {port}");
    }

    /// Sends `messages`, each behind its 2-byte length, in one write.
    fn send(&mut self, c: SocketHandle, messages: &[Vec<u8>]) {
        let mut bytes = Vec::new();
        for m in messages {
            bytes.extend_from_slice(&u16::try_from(m.len()).expect("small").to_be_bytes());
            bytes.extend_from_slice(m);
        }
        assert_eq!(self.socket(c).send_slice(&bytes), Ok(bytes.len()));
    }

    /// Runs until client `c` has received `n` whole messages (or 3 s); returns what it got.
    fn receive(&mut self, c: SocketHandle, n: usize) -> Vec<Message> {
        let mut got = Vec::new();
        let mut messages = Vec::new();
        self.run_until(|b| {
            let mut buf = [0u8; 1024];
            while let Ok(k @ 1..) = b.socket(c).recv_slice(&mut buf) {
                got.extend_from_slice(&buf[..k]);
            }
            while let [hi, lo, rest @ ..] = &got[..] {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                if rest.len() < len {
                    break;
                }
                messages.push(Message::from_vec(&rest[..len]).expect("a DNS message"));
                got.drain(..2 + len);
            }
            messages.len() >= n
        });
        messages
    }

    /// The forwarded query waiting for the upstream, which runs until there is one.
    fn upstream(&mut self) -> Upstream {
        let mut up = None;
        assert!(
            self.run_until(|b| {
                up = b.h.take_upstream();
                up.is_some()
            }),
            "nothing forwarded"
        );
        up.expect("forwarded")
    }

    /// Whether the gateway has closed its side of `c`'s connection.
    fn closed_by_gateway(&mut self, c: SocketHandle) -> bool {
        use tcp::State::*;
        self.run_until(|b| {
            matches!(
                b.socket(c).state(),
                Closing | TimeWait | Closed | CloseWait | LastAck
            )
        })
    }
}

/// The upstream's answer to `up`: its query, as a response.
fn response(up: &Upstream) -> Vec<u8> {
    let mut m = Message::from_vec(&up.query).expect("the forwarded query");
    m.set_message_type(MessageType::Response);
    m.to_vec().expect("encode")
}

fn ids(messages: &[Message]) -> Vec<u16> {
    messages.iter().map(Message::id).collect()
}

#[test]
fn answers_names_over_tcp_in_the_order_asked() {
    let mut b = Bench::new();
    let c = b.connect(40001);
    b.send(c, &[query("web.", 9)]);
    let got = b.receive(c, 1);
    assert_eq!(ids(&got), [9]);
    assert_eq!(got[0].answers().len(), 1);
    // Pipelined: two queries in one segment, two answers in order, on the same connection.
    b.send(c, &[query("web.", 10), query("WEB", 11)]);
    assert_eq!(ids(&b.receive(c, 2)), [10, 11]);
    assert_eq!(b.h.take_dns_stats().queries, 3);
}

#[test]
fn a_forwarded_answer_reaches_a_client_that_has_finished_sending() {
    let mut b = Bench::new();
    let c = b.connect(40002);
    b.send(c, &[query("example.org.", 3)]);
    // The client shuts its sending side at once (it may still read), as RFC 7766 allows.
    b.socket(c).close();
    let up = b.upstream();
    assert!(
        !b.run_until(|b| !b.socket(c).may_recv()),
        "closed before the answer"
    );
    b.h.upstream_answer(up.token, Some(response(&up)));
    assert_eq!(ids(&b.receive(c, 1)), [3]);
    // Everything asked is answered: the gateway closes its side.
    assert!(b.closed_by_gateway(c), "{}", b.socket(c).state());
}

#[test]
fn a_late_upstream_answer_never_reaches_the_next_connection() {
    let mut b = Bench::new();
    let first = b.connect(40003);
    b.send(first, &[query("example.org.", 4)]);
    let up = b.upstream();
    // The first client goes away (reset); the next connects to the listener it freed.
    b.socket(first).abort();
    b.run_until(|_| false);
    let next = b.connect(40004);
    b.h.upstream_answer(up.token, Some(response(&up)));
    b.send(next, &[query("web.", 5)]);
    assert_eq!(ids(&b.receive(next, 2)), [5], "only its own answer");
}

#[test]
fn a_client_that_stops_inside_a_message_is_closed() {
    let mut b = Bench::new();
    let c = b.connect(40005);
    // A length of 100 and 3 bytes of it, then the client's FIN: it can never be answered.
    assert_eq!(b.socket(c).send_slice(&[0, 100, 1, 2, 3]), Ok(5));
    b.socket(c).close();
    assert!(b.closed_by_gateway(c), "{}", b.socket(c).state());
    // The listener serves again.
    b.serves(40006, 6);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let mut b = Bench::new();
    let c = b.connect(40007);
    let connected = b.ms;
    // The host asks to be polled when the connection falls due, so the daemon needs no traffic
    // to close it.
    let due = b.h.poll_at(Timestamp(b.ms)).expect("a deadline");
    assert!(
        due.0 <= connected + TCP_IDLE_MS,
        "{due:?}, connected at {connected}"
    );
    // A query and its answer restart the clock.
    b.run_within(TCP_IDLE_MS / 2, |_| false);
    b.send(c, &[query("web.", 7)]);
    assert_eq!(ids(&b.receive(c, 1)), [7]);
    let asked = b.ms;
    assert!(
        !b.run_within(TCP_IDLE_MS - 200, |b| b.socket(c).state()
            != tcp::State::Established),
        "closed {} ms after the last query: {}",
        b.ms - asked,
        b.socket(c).state()
    );
    assert!(b.closed_by_gateway(c), "{}", b.socket(c).state());
    assert!(
        b.ms - asked >= TCP_IDLE_MS - 100,
        "closed early: {} ms",
        b.ms - asked
    );
}

#[test]
fn a_client_that_never_finishes_closing_is_reset() {
    let mut b = Bench::new();
    let c = b.connect(40008);
    // The gateway's FIN after the idle timeout: the client acknowledges it and never closes.
    assert!(b.run_within(TCP_IDLE_MS + 1_000, |b| b.socket(c).state()
        == tcp::State::CloseWait));
    let fin = b.ms;
    assert!(
        b.run_within(TCP_LINGER_MS + 1_000, |b| b.socket(c).state()
            == tcp::State::Closed),
        "{}",
        b.socket(c).state()
    );
    assert!(
        b.ms - fin >= TCP_LINGER_MS - 100,
        "reset early: {} ms",
        b.ms - fin
    );
    // The listener serves again.
    b.serves(40009, 8);
}

#[test]
fn idle_clients_hold_every_listener_only_until_the_timeout() {
    let mut b = Bench::new();
    let idle: Vec<_> = (0..4).map(|i| b.connect(40010 + i)).collect();
    // Every listener is taken: a fifth client is refused.
    let fifth = b.dial(40020);
    assert!(b.run_until(|b| b.socket(fifth).state() == tcp::State::Closed));
    // The idle ones are closed and, as they never close their side, reset.
    for &c in &idle {
        assert!(
            b.run_within(TCP_IDLE_MS + TCP_LINGER_MS, |b| b.socket(c).state()
                == tcp::State::Closed),
            "{}",
            b.socket(c).state()
        );
    }
    b.serves(40021, 9);
}

#[test]
fn a_query_waiting_for_the_upstream_is_not_idle() {
    let mut b = Bench::new();
    let c = b.connect(40022);
    b.send(c, &[query("example.org.", 10)]);
    let up = b.upstream();
    assert!(
        !b.run_within(TCP_IDLE_MS + 2_000, |b| b.socket(c).state()
            != tcp::State::Established),
        "closed while its query waited: {}",
        b.socket(c).state()
    );
    b.h.upstream_answer(up.token, Some(response(&up)));
    assert_eq!(ids(&b.receive(c, 1)), [10]);
    // Answered, the connection is idle from then on.
    assert!(b.run_within(TCP_IDLE_MS + 1_000, |b| b.socket(c).state()
        == tcp::State::CloseWait));
}
