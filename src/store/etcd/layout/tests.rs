//! The etcd layout's pure parts, without etcd.
use super::*;

fn net(name: &str, vni: u32) -> NetworkRecord {
    NetworkRecord {
        name: name.into(),
        vni: Vni::new(vni).expect("vni"),
        subnet: "10.0.0.0/24".parse().expect("cidr"),
        gateway: None,
        mtu: None,
        encrypted: false,
        key_file: None,
        key_check: None,
        internal: false,
    }
}

#[test]
fn store_urls_parse_to_endpoints_and_bad_ones_are_named() {
    assert_eq!(
        parse_url("etcd://192.0.2.10:2379").expect("one"),
        vec!["192.0.2.10:2379"]
    );
    assert_eq!(
        parse_url("etcd://a.example:1,192.0.2.2,[::1]:3,[fe80::1]").expect("several"),
        vec!["a.example:1", "192.0.2.2:2379", "[::1]:3", "[fe80::1]:2379"]
    );
    assert_eq!(parse_url("etcd://h:1,h:1/").expect("dup"), vec!["h:1"]);
    for bad in [
        "http://h:1",
        "etcd://",
        "etcd://h:0",
        "etcd://h:x",
        "etcd://h:1,,h:2",
        "etcd://[::1",
        "etcd://h/p:1",
        "etcd://[zz]:1",
    ] {
        let e = parse_url(bad).expect_err(bad);
        assert!(e.contains(bad.trim_end_matches('/')), "{bad}: {e}");
    }
    assert!(parse_url("http://h:1")
        .unwrap_err()
        .contains("etcd://HOST:PORT"));
}

#[test]
fn prefixes_are_absolute_paths_without_a_trailing_slash() {
    assert_eq!(parse_prefix("/vswitch").expect("ok"), "/vswitch");
    assert_eq!(parse_prefix("/a/b-c_d.e").expect("ok"), "/a/b-c_d.e");
    for bad in ["", "/", "vswitch", "/a/", "/a//b", "/a/../b", "/a b", "/ä"] {
        assert!(parse_prefix(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn keys_live_under_the_prefix_and_classify_back() {
    let k = Keys::new("/vswitch");
    assert_eq!(k.root(), "/vswitch/");
    assert_eq!(k.network("blue"), "/vswitch/networks/blue");
    assert_eq!(k.vni(Vni::new(100).expect("vni")), "/vswitch/vnis/100");
    assert_eq!(k.host("h1"), "/vswitch/hosts/h1");
    assert_eq!(k.alive("h1"), "/vswitch/alive/h1");
    assert_eq!(
        k.classify(b"/vswitch/networks/blue"),
        Some(Entry::Network("blue".into()))
    );
    assert_eq!(
        k.classify(b"/vswitch/alive/h1"),
        Some(Entry::Alive("h1".into()))
    );
    assert_eq!(k.classify(b"/vswitchx/networks/blue"), None);
    assert_eq!(k.classify(b"/other/networks/blue"), None);
    assert_eq!(k.classify(b"/vswitch/networks/"), None);
    assert_eq!(k.classify(b"/vswitch/networks/a/b"), None);
    assert_eq!(k.classify(b"/vswitch/leases/x"), None);
    assert_eq!(k.classify(b"/vswitch/networks/\xff"), None);
    let ip = "10.0.0.5".parse().expect("ip");
    assert_eq!(k.address("blue", ip), "/vswitch/addresses/blue/10.0.0.5");
    assert!(k.address("blue", ip).starts_with(&k.addresses("blue")));
    assert_eq!(
        k.parse_address(b"/vswitch/addresses/blue/10.0.0.5"),
        Some(("blue".to_string(), ip))
    );
    assert_eq!(k.parse_address(b"/vswitch/addresses/blue/x"), None);
    // Address keys are not networks or hosts.
    assert_eq!(k.classify(b"/vswitch/addresses/blue/10.0.0.5"), None);
}

#[test]
fn a_listing_decodes_networks_hosts_and_liveness_and_names_garbage() {
    let k = Keys::new("/p");
    let blue = serde_json::to_vec(&net("blue", 100)).expect("json");
    let h1 = serde_json::to_vec(&HostRecord {
        name: "h1".into(),
        vtep: "192.0.2.1:4789".parse().expect("addr"),
    })
    .expect("json");
    let h2 = br#"{"name":"h2","vtep":"192.0.2.2:4789"}"#;
    let h3 = br#"{"name":"h3","vtep":"192.0.2.3:4789"}"#;
    let kvs = [
        (&b"/p/networks/blue"[..], &blue[..], 7),
        (b"/p/networks/red", b"{nonsense", 8),
        (b"/p/networks/wrongname", &blue[..], 9),
        (b"/p/vnis/100", b"blue", 7),
        (b"/p/hosts/h1", &h1[..], 2),
        (b"/p/hosts/h2", h2, 3),
        (b"/p/hosts/h3", h3, 4),
        (b"/p/alive/h1", b"", 5),
        (b"/p/alive/h2", b"", 6),
    ];
    let l = Listing::decode(
        &k,
        kvs.iter().map(|(key, value, r)| Kv {
            key,
            value,
            mod_revision: *r,
        }),
    );
    assert_eq!(l.networks, vec![(net("blue", 100), 7)]);
    assert_eq!(l.garbled, vec!["/p/networks/red", "/p/networks/wrongname"]);
    assert_eq!(l.hosts.len(), 3);
    let me = l.hosts[0].clone();
    // h3 is registered but not alive; h1 is me.
    assert_eq!(
        l.registry_peers(&me),
        vec!["192.0.2.2:4789".parse::<SocketAddr>().expect("addr")]
    );
}

#[test]
fn snapshot_peers_merge_static_and_registry_and_a_registry_peer_cannot_be_removed() {
    let a: SocketAddr = "192.0.2.2:4789".parse().expect("addr");
    let b: SocketAddr = "192.0.2.3:4789".parse().expect("addr");
    let a_other_port: SocketAddr = "192.0.2.2:5000".parse().expect("addr");
    let s: SocketAddr = "198.51.100.1:4789".parse().expect("addr");
    assert_eq!(peers(&[s, a_other_port], &[a, b]), vec![s, a, b]);
    assert_eq!(static_peers(&[a, b], &[s, a, b]), Ok(vec![s]));
    assert_eq!(static_peers(&[a, b], &[s, a]), Err(b));
    assert_eq!(static_peers(&[], &[s]), Ok(vec![s]));
}

#[test]
fn a_new_network_needs_its_name_and_vni_free() {
    let k = Keys::new("/p");
    let p = plan(&k, &[], &[net("blue", 100)]);
    assert_eq!(
        p.checks,
        vec![
            Check::Absent("/p/networks/blue".into()),
            Check::Absent("/p/vnis/100".into())
        ]
    );
    assert_eq!(p.ops.len(), 2);
    assert_eq!(
        p.ops[1],
        Op::Put {
            key: "/p/vnis/100".into(),
            value: b"blue".to_vec()
        }
    );
    let Op::Put { key, value } = &p.ops[0] else {
        panic!("{:?}", p.ops)
    };
    assert_eq!(key, "/p/networks/blue");
    let stored: NetworkRecord = serde_json::from_slice(value).expect("json");
    assert_eq!(stored, net("blue", 100));
}

#[test]
fn unchanged_networks_make_no_ops_and_removals_compare_the_revision_seen() {
    let k = Keys::new("/p");
    let base = [(net("blue", 100), 7), (net("red", 200), 9)];
    // The key file's path is local: it is never stored, so it is no change.
    let mut blue = net("blue", 100);
    blue.key_file = Some("/root/k.key".into());
    assert!(plan(&k, &base, &[blue.clone(), net("red", 200)]).is_empty());
    let p = plan(&k, &base, &[blue]);
    assert_eq!(
        p.checks,
        vec![Check::Unchanged {
            key: "/p/networks/red".into(),
            mod_revision: 9
        }]
    );
    assert_eq!(
        p.ops,
        vec![
            Op::Delete("/p/networks/red".into()),
            Op::Delete("/p/vnis/200".into())
        ]
    );
}

#[test]
fn a_changed_network_compares_its_revision_and_moves_its_vni() {
    let k = Keys::new("/p");
    let base = [(net("blue", 100), 7)];
    let mut mtu = net("blue", 100);
    mtu.mtu = Some(1400);
    let p = plan(&k, &base, std::slice::from_ref(&mtu));
    assert_eq!(
        p.checks,
        vec![Check::Unchanged {
            key: "/p/networks/blue".into(),
            mod_revision: 7
        }]
    );
    assert_eq!(p.ops.len(), 1);
    let p = plan(&k, &base, &[net("blue", 101)]);
    assert!(p.checks.contains(&Check::Absent("/p/vnis/101".into())));
    assert!(p.ops.contains(&Op::Delete("/p/vnis/100".into())));
}

/// Address claims are the endpoint advertisements: the other live hosts' ones, each at its
/// host's VTEP; this host's own, a dead host's and garbled ones are left out.
#[test]
fn a_listing_shows_the_other_live_hosts_endpoints() {
    let k = Keys::new("/p");
    let claim = |host: &str, mac: u8| {
        format!(
            r#"{{"host":"{host}","netns":"c","ifname":"eth0","mac":"02:00:00:00:00:{mac:02x}"}}"#
        )
        .into_bytes()
    };
    let (c1, c2, c3) = (claim("h1", 1), claim("h2", 2), claim("h3", 3));
    let h1 = br#"{"name":"h1","vtep":"192.0.2.1:4789"}"#;
    let h2 = br#"{"name":"h2","vtep":"192.0.2.2:4789"}"#;
    let h3 = br#"{"name":"h3","vtep":"192.0.2.3:4789"}"#;
    let kvs: Vec<(&[u8], &[u8])> = vec![
        (b"/p/hosts/h1", h1),
        (b"/p/hosts/h2", h2),
        (b"/p/hosts/h3", h3),
        (b"/p/alive/h1", b""),
        (b"/p/alive/h2", b""),
        (b"/p/addresses/blue/10.0.0.1", &c1),
        (b"/p/addresses/blue/10.0.0.2", &c2),
        (b"/p/addresses/blue/10.0.0.3", &c3),
        (b"/p/addresses/blue/10.0.0.4", b"{nonsense"),
        (b"/p/addresses/blue/not-an-ip", &c2),
    ];
    let l = Listing::decode(
        &k,
        kvs.iter().map(|(key, value)| Kv {
            key,
            value,
            mod_revision: 1,
        }),
    );
    assert_eq!(
        l.garbled,
        vec!["/p/addresses/blue/10.0.0.4", "/p/addresses/blue/not-an-ip"]
    );
    let me = l.hosts[0].clone();
    let cluster = l.cluster(&me);
    assert_eq!(
        cluster.hosts,
        vec!["192.0.2.2:4789".parse::<SocketAddr>().expect("addr")]
    );
    assert_eq!(
        cluster.endpoints,
        vec![crate::store::Advert {
            network: "blue".into(),
            ip: "10.0.0.2".parse().expect("ip"),
            mac: "02:00:00:00:00:02".parse().expect("mac"),
            host: "h2".into(),
            vtep: "192.0.2.2:4789".parse().expect("addr"),
        }],
        "not h1's own, not dead h3's"
    );
}
