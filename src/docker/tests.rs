use std::sync::Mutex as StdMutex;

use super::*;
use crate::control::{NetworkDetail, NetworkSummary, PortInfo};

/// A daemon that records what it is asked and refuses what `refuse` names.
#[derive(Debug, Default)]
struct Recorder {
    seen: StdMutex<Vec<Request>>,
    refuse: Option<&'static str>,
    /// `network ls` lists one network on 10.10.0.0/24 whose port holds 10.10.0.2.
    listed: bool,
}

impl Handler for Recorder {
    type Error = String;

    async fn handle(&self, request: Request) -> Result<Response, String> {
        let op = serde_json::to_value(&request).expect("json")["op"].clone();
        self.seen.lock().expect("lock").push(request.clone());
        if self.refuse.is_some_and(|r| op == r) {
            return Err("network 'x' has 1 port: detach it first".into());
        }
        Ok(match request {
            Request::NetworkInspect { name } => Response::NetworkDetail(NetworkDetail {
                name,
                vni: crate::wire::Vni::new(100).expect("vni"),
                subnet: "10.10.0.0/24".parse().expect("subnet"),
                gateway: Some(Ipv4Addr::new(10, 10, 0, 1)),
                mtu: 1450,
                encrypted: false,
                internal: false,
                ports: self
                    .listed
                    .then(|| port("10.10.0.2/24"))
                    .into_iter()
                    .collect(),
                traffic: Default::default(),
                endpoints: vec![],
                flood: vec![],
                arp_answered: 0,
            }),
            Request::Detach { .. } => Response::Ports(vec![]),
            Request::NetworkList if self.listed => Response::Networks(vec![NetworkSummary {
                name: "docker-abc".into(),
                vni: crate::wire::Vni::new(100).expect("vni"),
                subnet: "10.10.0.0/24".parse().expect("subnet"),
                gateway: Some(Ipv4Addr::new(10, 10, 0, 1)),
                mtu: 1450,
                encrypted: false,
                internal: false,
                ports: 1,
            }]),
            Request::Attach(a) => Response::Port(PortInfo {
                port: 1,
                network: a.network.unwrap_or_default(),
                netns: a.netns,
                ifname: a.ifname.unwrap_or_default(),
                mac: crate::wire::Mac([2, 0, 0, 0, 0, 1]),
                ip: None,
                mtu: 1450,
                port_security: true,
                names: vec![],
                container_id: None,
                egress: None,
            }),
            _ => Response::Peers(vec![]),
        })
    }
}

fn port(ip: &str) -> PortInfo {
    PortInfo {
        port: 1,
        network: "docker-abc".into(),
        netns: "docker-ep-abc".into(),
        ifname: "eth0".into(),
        mac: crate::wire::Mac([2, 0, 0, 0, 0, 1]),
        ip: Some(ip.into()),
        mtu: 1450,
        port_security: true,
        names: vec![],
        container_id: None,
        egress: None,
    }
}

/// One call over the socket, as dockerd's plugin client makes it.
async fn post(path: &Path, method: &str, body: Value) -> (StatusCode, Value) {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("/{method}"))
        .header("Host", "plugin")
        .header("Accept", "application/vnd.docker.plugins.v1.2+json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("reply");
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], CONTENT_TYPE);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("json reply"))
}

fn temp_socket(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "vswitch-plugin-{tag}-{}/vswitch.sock",
        std::process::id()
    ))
}

#[tokio::test]
async fn a_container_lifecycle_over_the_socket() {
    let path = temp_socket("life");
    let socket = PluginSocket::bind(&path).expect("bind");
    let daemon = Arc::new(Recorder::default());
    let task = tokio::spawn(socket.serve(daemon.clone(), None));

    let mode = std::fs::metadata(&path).expect("socket").permissions();
    let mode = std::os::unix::fs::PermissionsExt::mode(&mode);
    assert_eq!(mode & 0o777, 0o600, "the plugin socket is root's");
    let (s, v) = post(&path, "Plugin.Activate", json!({})).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"Implements": ["NetworkDriver", "IpamDriver"]})
        )
    );
    let (_, v) = post(&path, "NetworkDriver.GetCapabilities", json!({})).await;
    assert_eq!(v["Scope"], "local");
    let (_, pool) = post(
        &path,
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "vswitch", "Pool": "10.10.0.0/24", "Options": {}, "V6": false}),
    )
    .await;
    assert_eq!(pool["Pool"], "10.10.0.0/24");
    let pool_id = pool["PoolID"].as_str().expect("id").to_owned();
    let (_, gw) = post(
        &path,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "",
        "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    )
    .await;
    assert_eq!(gw["Address"], "10.10.0.1/24");
    let (_, a) = post(
        &path,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": ""}),
    )
    .await;
    assert_eq!(a["Address"], "10.10.0.2/24");
    let (_, b) = post(
        &path,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": ""}),
    )
    .await;
    assert_eq!(b["Address"], "10.10.0.3/24");
    let (s, taken) = post(
        &path,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "10.10.0.3"}),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        taken["Err"]
            .as_str()
            .expect("err")
            .contains("pick another --ip"),
        "{taken}"
    );

    let net = "0123456789abcdef";
    let (s, _) = post(&path, "NetworkDriver.CreateNetwork", json!({"NetworkID": net,
        "Options": {"com.docker.network.generic": {"vni": "100"}},
        "IPv4Data": [{"AddressSpace": "vswitch", "Pool": "10.10.0.0/24", "Gateway": "10.10.0.1/24"}]})).await;
    assert_eq!(s, StatusCode::OK);
    let ep = "feedfacecafebeef0000";
    let (s, _) = post(&path, "NetworkDriver.CreateEndpoint", json!({"NetworkID": net, "EndpointID": ep,
        "Interface": {"Address": "10.10.0.2/24", "AddressIPv6": "", "MacAddress": ""}, "Options": {}})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, j) = post(
        &path,
        "NetworkDriver.Join",
        json!({"NetworkID": net, "EndpointID": ep,
        "SandboxKey": "/var/run/docker/netns/abc", "Options": {}}),
    )
    .await;
    assert_eq!(
        j["InterfaceName"],
        json!({"SrcName": "vsdfeedfaceca", "DstPrefix": "eth"})
    );
    assert_eq!(j["Gateway"], "10.10.0.1");
    let (s, _) = post(
        &path,
        "NetworkDriver.Leave",
        json!({"NetworkID": net, "EndpointID": ep}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = post(
        &path,
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": net, "EndpointID": ep}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = post(
        &path,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool_id, "Address": "10.10.0.2"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, again) = post(
        &path,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": ""}),
    )
    .await;
    assert_eq!(
        again["Address"], "10.10.0.2/24",
        "a released address is handed out again"
    );

    let seen = daemon.seen.lock().expect("lock").clone();
    let Some(spec) = seen.iter().find_map(|r| match r {
        Request::NetworkCreate(spec) => Some(spec),
        _ => None,
    }) else {
        panic!("{seen:?}")
    };
    assert_eq!(
        (spec.name.as_str(), spec.vni.get()),
        ("docker-0123456789ab", 100)
    );
    let attach = seen
        .iter()
        .find_map(|r| match r {
            Request::Attach(a) => Some(a),
            _ => None,
        })
        .expect("attach");
    assert!(attach.handoff);
    assert_eq!(attach.ip, Some(Ipv4Addr::new(10, 10, 0, 2)));
    assert!(seen.iter().any(|r| *r
        == Request::Detach {
            netns: "docker-ep-feedfacecafe".into(),
            network: Some("docker-0123456789ab".into())
        }));
    task.abort();
    let _ = task.await;
}

#[tokio::test]
async fn refusals_come_back_as_err_with_the_daemons_message() {
    let daemon = Arc::new(Recorder {
        refuse: Some("network_remove"),
        ..Default::default()
    });
    let plugin = Plugin::new(daemon, None);
    let e = plugin
        .call("NetworkDriver.DeleteNetwork", br#"{"NetworkID":"abc"}"#)
        .await
        .expect_err("refused");
    assert!(
        e.0.starts_with("vswitch: network 'x' has 1 port: detach it first"),
        "{e}"
    );
    let e = plugin
        .call(
            "NetworkDriver.Join",
            br#"{"NetworkID":"n","EndpointID":"nope"}"#,
        )
        .await
        .expect_err("unknown");
    assert!(e.0.contains("start the container again"), "{e}");
    let e = plugin
        .call("NetworkDriver.CreateNetwork", b"{not json")
        .await
        .expect_err("garbage");
    assert!(e.0.contains("cannot read Docker's request"), "{e}");
    let e = plugin
        .call("VolumeDriver.Create", b"{}")
        .await
        .expect_err("not ours");
    assert!(e.0.contains("NetworkDriver and IpamDriver"), "{e}");
    let e = plugin
        .call("IpamDriver.RequestPool", br#"{"Pool":""}"#)
        .await
        .expect_err("no subnet");
    assert!(e.0.contains("pass --subnet"), "{e}");
    let e = plugin
        .call("IpamDriver.RequestAddress", br#"{"PoolID":"gone"}"#)
        .await
        .expect_err("no pool");
    assert!(e.0.contains("--ipam-driver vswitch"), "{e}");
}

#[tokio::test]
async fn ip_range_limits_containers_not_the_gateway() {
    let plugin = Plugin::new(Arc::new(Recorder::default()), None);
    let body = br#"{"Pool":"10.10.0.0/24","SubPool":"10.10.0.128/25"}"#;
    let pool = plugin
        .call("IpamDriver.RequestPool", body)
        .await
        .expect("pool");
    let id = pool["PoolID"].clone();
    let gw = json!({"PoolID": id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}});
    let got = plugin
        .call("IpamDriver.RequestAddress", gw.to_string().as_bytes())
        .await
        .expect("gw");
    assert_eq!(got["Address"], "10.10.0.1/24");
    let req = json!({"PoolID": id, "Address": ""}).to_string();
    let got = plugin
        .call("IpamDriver.RequestAddress", req.as_bytes())
        .await
        .expect("addr");
    assert_eq!(got["Address"], "10.10.0.129/24");
    let outside = br#"{"Pool":"10.10.0.0/24","SubPool":"10.20.0.0/25"}"#;
    let e = plugin
        .call("IpamDriver.RequestPool", outside)
        .await
        .expect_err("outside");
    assert!(e.0.contains("not within --subnet 10.10.0.0/24"), "{e}");
}

#[tokio::test]
async fn two_networks_with_one_subnet_get_their_own_pools() {
    let plugin = Plugin::new(Arc::new(Recorder::default()), None);
    let body = br#"{"AddressSpace":"vswitch","Pool":"10.10.0.0/24","V6":false}"#;
    let a = plugin
        .call("IpamDriver.RequestPool", body)
        .await
        .expect("a");
    let b = plugin
        .call("IpamDriver.RequestPool", body)
        .await
        .expect("b");
    assert_ne!(a["PoolID"], b["PoolID"]);
    for p in [&a, &b] {
        let req = json!({"PoolID": p["PoolID"], "Address": ""}).to_string();
        let got = plugin
            .call("IpamDriver.RequestAddress", req.as_bytes())
            .await
            .expect("addr");
        assert_eq!(got["Address"], "10.10.0.1/24");
    }
}

#[tokio::test]
async fn a_restarted_plugin_serves_known_pools_and_skips_held_addresses() {
    // A pool this plugin never saw created (the daemon restarted): its ID says what it is, and
    // the daemon's records say which addresses are taken (the gateway, a container's).
    let plugin = Plugin::new(
        Arc::new(Recorder {
            listed: true,
            ..Default::default()
        }),
        None,
    );
    let req = json!({"PoolID": "vswitch:10.10.0.0/24:10.10.0.0/24:1", "Address": ""}).to_string();
    let got = plugin
        .call("IpamDriver.RequestAddress", req.as_bytes())
        .await
        .expect("addr");
    assert_eq!(got["Address"], "10.10.0.3/24");
    // Asked for, it is the other network's (same subnet) to refuse: attach checks it.
    let req = json!({"PoolID": "vswitch:10.10.0.0/24:10.10.0.0/24:1", "Address": "10.10.0.2"});
    let got = plugin
        .call("IpamDriver.RequestAddress", req.to_string().as_bytes())
        .await
        .expect("asked");
    assert_eq!(got["Address"], "10.10.0.2/24");
}

#[tokio::test]
async fn a_named_network_joins_the_same_one_made_elsewhere_and_its_name_is_kept() {
    // The daemon refuses the create (another host made the network, cluster mode); inspect
    // shows VNI 100 on 10.10.0.0/24, unencrypted.
    let daemon = Arc::new(Recorder {
        refuse: Some("network_create"),
        ..Default::default()
    });
    let dir = temp_socket("names");
    std::fs::create_dir_all(dir.parent().expect("dir")).expect("mkdir");
    let file = dir.with_file_name(NAMES_FILE);
    let plugin = Plugin::new(daemon.clone(), Some(file.clone()));
    let create = |vni: &str| {
        json!({"NetworkID": "d0cker1d", "Options": {protocol::GENERIC: {"vni": vni, "name": "blue"}},
               "IPv4Data": [{"Pool": "10.10.0.0/24", "Gateway": "10.10.0.1/24"}]})
        .to_string()
    };
    let e = plugin
        .call("NetworkDriver.CreateNetwork", create("200").as_bytes())
        .await
        .expect_err("another VNI is not the same network");
    assert!(e.0.contains("detach it first"), "the daemon's refusal: {e}");
    plugin
        .call("NetworkDriver.CreateNetwork", create("100").as_bytes())
        .await
        .expect("the same network: joined");
    // A restarted plugin still knows Docker's network by its vswitch name.
    let again = Plugin::new(daemon.clone(), Some(file.clone()));
    let ep =
        br#"{"NetworkID":"d0cker1d","EndpointID":"e1","Interface":{"Address":"10.10.0.5/24"}}"#;
    again
        .call("NetworkDriver.CreateEndpoint", ep)
        .await
        .expect("endpoint");
    let inspected = daemon.seen.lock().expect("lock").last().cloned();
    assert_eq!(
        inspected,
        Some(Request::NetworkInspect {
            name: "blue".into()
        })
    );
    again
        .call(
            "NetworkDriver.DeleteNetwork",
            br#"{"NetworkID":"d0cker1d"}"#,
        )
        .await
        .expect("removed");
    let kept = std::fs::read_to_string(&file).expect("names file");
    assert_eq!(kept, "{}", "a removed network's name is forgotten");
}
