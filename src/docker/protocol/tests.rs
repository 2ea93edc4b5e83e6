use super::*;

fn create(json: serde_json::Value) -> CreateNetwork {
    serde_json::from_value(json).expect("Docker's CreateNetwork")
}

/// What dockerd sends for `docker network create -d vswitch --ipam-driver vswitch
/// --subnet 10.10.0.0/24 -o vni=100 -o encrypted=/etc/vswitch/k.key blue`.
fn docker_create() -> serde_json::Value {
    serde_json::json!({
        "NetworkID": "3f1c0a5e9b7d4e21aa",
        "Options": {
            "com.docker.network.enable_ipv6": false,
            "com.docker.network.generic": { "vni": "100", "encrypted": "/etc/vswitch/k.key" }
        },
        "IPv4Data": [{ "AddressSpace": "vswitch", "Pool": "10.10.0.0/24",
                       "Gateway": "10.10.0.1/24", "AuxAddresses": null }],
        "IPv6Data": []
    })
}

#[test]
fn create_network_maps_options_and_ipam_data() {
    let spec = network_spec(&create(docker_create())).expect("valid");
    assert_eq!(spec.name, "docker-3f1c0a5e9b7d");
    assert_eq!(spec.vni.get(), 100);
    assert_eq!(spec.subnet.to_string(), "10.10.0.0/24");
    assert_eq!(spec.gateway, Some(Ipv4Addr::new(10, 10, 0, 1)));
    assert!(spec.encrypted);
    assert_eq!(spec.key_file, Some(PathBuf::from("/etc/vswitch/k.key")));
    assert_eq!(spec.mtu, None);
}

#[test]
fn create_network_refusals_name_the_fix() {
    let cases = [
        (
            "/Options/com.docker.network.generic",
            serde_json::json!({}),
            "add -o vni=N",
        ),
        (
            "/Options/com.docker.network.generic",
            serde_json::json!({"vni": "0"}),
            "'0' is no VNI",
        ),
        (
            "/Options/com.docker.network.generic",
            serde_json::json!({"vni": "7", "mtu": "big"}),
            "pass -o mtu=N",
        ),
        (
            "/Options/com.docker.network.generic",
            serde_json::json!({"vni": "7", "encrypted": "k.key"}),
            "absolute path",
        ),
        ("/IPv4Data", serde_json::json!([]), "pass one --subnet"),
        (
            "/IPv6Data",
            serde_json::json!([{"Pool": "fd00::/64"}]),
            "without --ipv6",
        ),
    ];
    for (at, value, hint) in cases {
        let mut j = docker_create();
        *j.pointer_mut(at).expect(at) = value;
        let e = network_spec(&create(j)).expect_err(hint);
        assert!(e.0.contains(hint), "{at}: {e}");
    }
}

#[test]
fn endpoint_takes_dockers_address_and_mac() {
    let r: EndpointRef = serde_json::from_value(serde_json::json!({
        "NetworkID": "3f1c0a5e9b7d4e21aa", "EndpointID": "ab12cd34ef56ab78cd90",
        "Interface": { "Address": "10.10.0.2/24", "AddressIPv6": "", "MacAddress": "" },
        "Options": {}
    }))
    .expect("Docker's CreateEndpoint");
    let ep = endpoint(&r, network_name(&r.network_id)).expect("valid");
    assert_eq!(ep.network, "docker-3f1c0a5e9b7d");
    assert_eq!(ep.ip, Some(Ipv4Addr::new(10, 10, 0, 2)));
    assert_eq!(ep.mac, None);
    let a = attach("ab12cd34ef56ab78cd90", &ep);
    assert!(a.handoff);
    assert_eq!(a.ifname.as_deref(), Some("vsdab12cd34ef"));
    assert!(a.ifname.as_deref().is_some_and(|n| n.len() <= 15));
    assert_eq!(a.netns, "docker-ep-ab12cd34ef56");
    assert_eq!(a.ip, ep.ip);
}

#[test]
fn endpoint_refuses_ipv6_and_bad_mac() {
    let mut r = EndpointRef {
        network_id: "n".into(),
        endpoint_id: "e".into(),
        interface: Some(EndpointInterface {
            address_ipv6: "fd00::2/64".into(),
            ..Default::default()
        }),
        sandbox_key: String::new(),
    };
    assert!(endpoint(&r, "n".into())
        .expect_err("v6")
        .0
        .contains("without --ip6"));
    r.interface = Some(EndpointInterface {
        mac_address: "zz".into(),
        ..Default::default()
    });
    assert!(endpoint(&r, "n".into())
        .expect_err("mac")
        .0
        .contains("--mac-address"));
}

#[test]
fn join_reply_hands_the_tap_to_docker() {
    let j = join_reply("vsdab12", Some(Ipv4Addr::new(10, 10, 0, 1)));
    assert_eq!(j["InterfaceName"]["SrcName"], "vsdab12");
    assert_eq!(j["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(j["Gateway"], "10.10.0.1");
    assert!(join_reply("t", None).get("Gateway").is_none());
}

#[test]
fn go_nulls_read_as_empty() {
    // What dockerd 20.10 sends: nil maps and slices are `null`.
    let r: RequestAddress =
        serde_json::from_str(r#"{"PoolID":"10.10.0.0/24#1","Address":"","Options":null}"#)
            .expect("RequestAddress with null Options");
    assert!(r.options.is_empty());
    let c = create(serde_json::json!({"NetworkID": "n", "Options": null,
        "IPv4Data": [{"AddressSpace": "vswitch", "Pool": "10.1.0.0/16", "Gateway": null, "AuxAddresses": null}],
        "IPv6Data": null}));
    assert!(c.ipv6_data.is_empty());
    let e = network_spec(&c).expect_err("no vni");
    assert!(e.0.contains("-o vni=N"), "{e}");
    let ep: EndpointRef = serde_json::from_str(
        r#"{"NetworkID":"n","EndpointID":"e","Interface":null,"Options":null}"#,
    )
    .expect("CreateEndpoint with null Interface");
    assert_eq!(endpoint(&ep, "n".into()).expect("ok").ip, None);
}
