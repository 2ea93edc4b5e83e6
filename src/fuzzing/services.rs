//! Fuzz bodies for the network's services: DNS queries, and frames for a gateway host.

use hickory_proto::op::{Message, MessageType};

use crate::core::dns::{self, Answer, Names};
use crate::core::gateway::{GatewayAddr, Host};
use crate::core::Timestamp;
use crate::wire::Vni;

fn names() -> Names {
    let web = ["web".to_string(), "Alias".to_string()];
    let db = ["db".to_string(), "alias".to_string()];
    Names::new([
        (&web[..], std::net::Ipv4Addr::new(10, 0, 0, 2)),
        (&db[..], std::net::Ipv4Addr::new(10, 0, 0, 3)),
    ])
}

/// `dns_query`: any bytes as a DNS query to a network's DNS (over UDP and TCP), and as the
/// payload of a frame to a gateway host. Never panics; an answer is a response to the same
/// id that parses; a query sent upstream has a SERVFAIL to fall back on.
pub fn dns_query(data: &[u8]) {
    let n = names();
    for tcp in [false, true] {
        match dns::answer(data, &n, data.len(), tcp) {
            Answer::Reply(bytes) => {
                let m = Message::from_vec(&bytes).expect("an answer parses");
                assert_eq!(m.message_type(), MessageType::Response);
                assert_eq!(Some(&m.id().to_be_bytes()[..]), data.get(..2));
                if !tcp {
                    assert!(bytes.len() <= 512, "a UDP answer over 512 bytes");
                }
            }
            Answer::Forward => {
                let fail = dns::servfail(data).expect("a forwarded query can be failed");
                assert_eq!(fail.get(..2), data.get(..2));
            }
            Answer::Drop => {}
        }
    }
    let vni = Vni::new(7).expect("vni");
    let addr = GatewayAddr::new(vni, std::net::Ipv4Addr::new(10, 0, 0, 1), 24, 1450);
    let mut host = Host::new(addr, 1, Timestamp(0));
    host.receive(data);
    host.poll(Timestamp(1));
    while host.transmit().is_some() {}
    while let Some(up) = host.take_upstream() {
        host.upstream_answer(up.token, Some(data.to_vec()));
    }
    host.poll(Timestamp(2));
}
