//! Embedded DNS: the answers a network's gateway gives for container names.
//!
//! Pure: a query's bytes and the network's [`Names`] in, an [`Answer`] out. DNS messages are
//! read and written by hickory-proto, never by hand. The rules:
//! - a name of the network (a container's `--name` or `--alias`, case-insensitive, with or
//!   without a trailing dot) gets its A records, every address of the name, rotated by `turn`
//!   so successive queries start with a different one (Docker's DNS round robin); other types
//!   for it get an empty answer (NODATA);
//! - a PTR query for a container's address gets the container's first name;
//! - any other single-label name is NXDOMAIN: names of other networks are not visible here;
//! - any other name is for the host's resolvers ([`Answer::Forward`]); the caller forwards it
//!   and answers SERVFAIL ([`servfail`]) when no upstream answers in time;
//! - a malformed query, or a message that is not a query, is dropped ([`Answer::Drop`]).
//!
//! # Panics
//!
//! None on any input: hickory-proto returns errors for what it cannot read.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Seconds a client may cache an answer: short, so a container that leaves is soon forgotten.
pub const TTL: u32 = 5;
/// The largest UDP answer for a client that did not say it takes more (RFC 1035 §4.2.1).
const UDP_MAX: usize = 512;

/// The names of one network: each name's addresses, and each address's first name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    forward: BTreeMap<String, Vec<Ipv4Addr>>,
    reverse: BTreeMap<Ipv4Addr, String>,
}

impl Names {
    /// A table from `(names, address)` pairs: a container's name and aliases, and its
    /// address. Names are compared without case and without a trailing dot.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a [String], Ipv4Addr)>) -> Names {
        let mut names = Names::default();
        for (list, ip) in entries {
            for name in list {
                let key = key(name);
                if key.is_empty() {
                    continue;
                }
                names.reverse.entry(ip).or_insert_with(|| key.clone());
                let ips = names.forward.entry(key).or_default();
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        for ips in names.forward.values_mut() {
            ips.sort();
        }
        names
    }

    /// The addresses of `name`, in order.
    pub fn lookup(&self, name: &str) -> &[Ipv4Addr] {
        self.forward.get(&key(name)).map_or(&[], Vec::as_slice)
    }
}

/// Why a container name cannot be a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a DNS name: use letters, digits and '-' (not first or last) in labels of at \
     most 63 characters, separated by dots, 253 characters in all"
)]
pub struct NameError(pub String);

/// Checks that `name` is a host name DNS can carry (RFC 1123 labels).
pub fn check_name(name: &str) -> Result<(), NameError> {
    let bad = || NameError(name.to_owned());
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(bad());
    }
    for label in trimmed.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Not a name of the network: ask the host's resolvers.
    Forward,
    /// Malformed, or not a query: drop it (and count it).
    Drop,
}

/// Answers the DNS message `query` from the network's `names`. `turn` picks where the
/// round robin of a name with several addresses starts; `tcp` lifts the 512-byte limit.
pub fn answer(query: &[u8], names: &Names, turn: usize, tcp: bool) -> Answer {
    let Ok(msg) = Message::from_vec(query) else {
        return Answer::Drop;
    };
    if msg.message_type() != MessageType::Query {
        return Answer::Drop;
    }
    let mut reply = Message::new();
    reply.set_header(Header::response_from_request(msg.header()));
    reply.set_recursion_available(true);
    let [q] = msg.queries() else {
        return respond(reply, ResponseCode::FormErr, tcp);
    };
    reply.add_query(q.clone());
    if msg.op_code() != OpCode::Query {
        return respond(reply, ResponseCode::NotImp, tcp);
    }
    if q.query_class() != DNSClass::IN {
        return Answer::Forward;
    }
    let name = q.name();
    if q.query_type() == RecordType::PTR {
        return match reverse(name).and_then(|ip| names.reverse.get(&ip)) {
            Some(found) => match Name::from_ascii(format!("{found}.")) {
                Ok(target) => {
                    reply.set_authoritative(true);
                    reply.add_answer(Record::from_rdata(
                        name.clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    ));
                    respond(reply, ResponseCode::NoError, tcp)
                }
                Err(_) => Answer::Forward,
            },
            None => Answer::Forward,
        };
    }
    let text = name.to_ascii();
    let ips = names.lookup(&text);
    if ips.is_empty() {
        if key(&text).contains('.') {
            return Answer::Forward;
        }
        reply.set_authoritative(true);
        return respond(reply, ResponseCode::NXDomain, tcp);
    }
    reply.set_authoritative(true);
    if q.query_type() == RecordType::A {
        let start = turn % ips.len();
        for ip in ips[start..].iter().chain(&ips[..start]) {
            reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::A(A(*ip))));
        }
    }
    respond(reply, ResponseCode::NoError, tcp)
}

/// A SERVFAIL answer to `query` (no upstream answered), if it can be read at all.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    let mut reply = Message::new();
    reply.set_header(Header::response_from_request(msg.header()));
    reply.set_recursion_available(true);
    reply.add_queries(msg.queries().iter().cloned());
    reply.set_response_code(ResponseCode::ServFail);
    reply.to_vec().ok()
}

fn respond(mut reply: Message, code: ResponseCode, tcp: bool) -> Answer {
    reply.set_response_code(code);
    let Ok(bytes) = reply.to_vec() else {
        return Answer::Drop;
    };
    if tcp || bytes.len() <= UDP_MAX {
        return Answer::Reply(bytes);
    }
    // Too big for UDP: the answers go, the truncation bit tells the client to ask over TCP.
    reply.take_answers();
    reply.set_truncated(true);
    reply.to_vec().map_or(Answer::Drop, Answer::Reply)
}

/// The IPv4 address of an `in-addr.arpa` name with all four labels.
fn reverse(name: &Name) -> Option<Ipv4Addr> {
    let net = name.parse_arpa_name().ok()?;
    match (net.addr(), net.prefix_len()) {
        (IpAddr::V4(ip), 32) => Some(ip),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
