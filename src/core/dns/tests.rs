use std::str::FromStr;

use hickory_proto::op::Query;

use super::*;

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn names() -> Names {
    let web1 = ["web1".to_string(), "web".to_string()];
    let web2 = ["Web2".to_string(), "WEB".to_string()];
    let db = ["db".to_string()];
    Names::new([(&web1[..], ip(3)), (&web2[..], ip(2)), (&db[..], ip(9))])
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(0x4242);
    m.set_recursion_desired(true);
    m.add_query(Query::query(Name::from_str(name).expect("name"), rtype));
    m.to_vec().expect("encode")
}

fn reply(a: Answer) -> Message {
    match a {
        Answer::Reply(bytes) => Message::from_vec(&bytes).expect("a valid reply"),
        other => panic!("not a reply: {other:?}"),
    }
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[test]
fn names_resolve_case_insensitively_with_or_without_the_root() {
    for q in ["web1", "WEB1", "Web1.", "db"] {
        let m = reply(answer(&query(q, RecordType::A), &names(), 0, false));
        assert_eq!(m.id(), 0x4242);
        assert_eq!(m.message_type(), MessageType::Response);
        assert_eq!(m.response_code(), ResponseCode::NoError, "{q}");
        assert!(m.authoritative());
        assert_eq!(m.queries().len(), 1, "the question is echoed");
        let want = if q == "db" { ip(9) } else { ip(3) };
        assert_eq!(a_records(&m), [want], "{q}");
        assert!(m.answers().iter().all(|r| r.ttl() == TTL));
    }
}

#[test]
fn an_alias_of_several_containers_gives_every_address_in_rotation() {
    let n = names();
    let orders: Vec<Vec<Ipv4Addr>> = (0..3)
        .map(|turn| {
            a_records(&reply(answer(
                &query("web", RecordType::A),
                &n,
                turn,
                false,
            )))
        })
        .collect();
    assert_eq!(orders[0], [ip(2), ip(3)]);
    assert_eq!(orders[1], [ip(3), ip(2)]);
    assert_eq!(orders[2], orders[0]);
}

#[test]
fn unknown_single_labels_are_nxdomain_and_other_names_go_upstream() {
    let n = names();
    let m = reply(answer(&query("cache", RecordType::A), &n, 0, false));
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(m.answers().is_empty());
    assert_eq!(
        answer(&query("example.org.", RecordType::A), &n, 0, false),
        Answer::Forward
    );
    assert_eq!(
        answer(&query("web.example.org.", RecordType::A), &n, 0, false),
        Answer::Forward
    );
    // Another type for a known name: no data, not an error.
    let m = reply(answer(&query("web1", RecordType::AAAA), &n, 0, false));
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
}

#[test]
fn ptr_names_the_container_and_other_addresses_go_upstream() {
    let n = names();
    let m = reply(answer(
        &query("3.0.0.10.in-addr.arpa.", RecordType::PTR),
        &n,
        0,
        false,
    ));
    let ptrs: Vec<String> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(ptrs, ["web1."], "the first name of 10.0.0.3");
    assert_eq!(
        answer(
            &query("8.8.8.8.in-addr.arpa.", RecordType::PTR),
            &n,
            0,
            false
        ),
        Answer::Forward
    );
}

#[test]
fn malformed_messages_are_dropped_and_never_panic() {
    let n = names();
    assert_eq!(answer(b"", &n, 0, false), Answer::Drop);
    assert_eq!(answer(&[0xff; 40], &n, 0, false), Answer::Drop);
    let q = query("web1", RecordType::A);
    for len in 0..q.len() {
        // A prefix never panics; most do not parse at all.
        let _ = answer(&q[..len], &n, 0, false);
    }
    // A response is not a query.
    let Answer::Reply(r) = answer(&q, &n, 0, false) else {
        panic!("reply")
    };
    assert_eq!(answer(&r, &n, 0, false), Answer::Drop);
    // No question, or two: FORMERR.
    let mut m = Message::new();
    m.set_id(1);
    let none = m.to_vec().expect("encode");
    assert_eq!(
        reply(answer(&none, &n, 0, false)).response_code(),
        ResponseCode::FormErr
    );
}

#[test]
fn container_names_must_be_dns_names() {
    for good in ["web", "Web-1", "a.b", "x".repeat(63).as_str(), "db."] {
        assert_eq!(check_name(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "-web",
        "web-",
        "we_b",
        "a..b",
        "x".repeat(64).as_str(),
        "web 1",
        "ü",
    ] {
        let e = check_name(bad).expect_err(bad);
        assert!(e.to_string().contains("is not a DNS name"), "{e}");
    }
    // 253 characters in all, a trailing dot not counted; one more is too long, although
    // every label is short enough.
    let longest = [&"x".repeat(63)[..]; 3].join(".") + "." + &"y".repeat(61);
    assert_eq!(longest.len(), 253);
    assert_eq!(check_name(&longest), Ok(()));
    assert_eq!(check_name(&format!("{longest}.")), Ok(()));
    let over = format!("{longest}y");
    assert_eq!(check_name(&over), Err(NameError(over.clone())));
    assert_eq!(check_name("."), Err(NameError(".".into())));
}

#[test]
fn servfail_answers_the_question_asked() {
    let q = query("example.org.", RecordType::A);
    let m = Message::from_vec(&servfail(&q).expect("servfail")).expect("parse");
    assert_eq!(m.id(), 0x4242);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert_eq!(m.queries()[0].name().to_ascii(), "example.org.");
    assert!(servfail(b"junk").is_none());
}

#[test]
fn big_udp_answers_are_truncated_and_tcp_gets_them_whole() {
    let alias = ["many".to_string()];
    let entries: Vec<(&[String], Ipv4Addr)> = (1..=100)
        .map(|i| (&alias[..], Ipv4Addr::new(10, 1, 0, i)))
        .collect();
    let n = Names::new(entries);
    let q = query("many", RecordType::A);
    let m = reply(answer(&q, &n, 0, false));
    assert!(m.truncated(), "over 512 bytes on UDP");
    assert!(m.answers().is_empty());
    let m = reply(answer(&q, &n, 0, true));
    assert!(!m.truncated());
    assert_eq!(a_records(&m).len(), 100);
}
