use super::*;
use crate::wire::Mac;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn the_environment_names_what_is_missing() {
    let e = Invocation::from_env(env(&[])).expect_err("no command");
    assert_eq!(e.code, code::INVALID_ENV);
    assert!(e.msg.contains("CNI_COMMAND"), "{e}");
    let e = Invocation::from_env(env(&[("CNI_COMMAND", "FROB")])).expect_err("unknown");
    assert_eq!(e.code, code::INVALID_ENV);
    let e = Invocation::from_env(env(&[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_IFNAME", "eth0"),
    ]))
    .expect_err("ADD without a namespace");
    assert_eq!(e.code, code::INVALID_ENV);
    assert!(e.msg.contains("CNI_NETNS"), "{e}");
    // DEL may come without a namespace (it is gone), and an empty value counts as unset.
    let del = Invocation::from_env(env(&[
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", ""),
        ("CNI_IFNAME", "eth0"),
    ]))
    .expect("DEL");
    assert_eq!(del.command, Command::Del);
    assert_eq!(del.netns, None);
    let v = Invocation::from_env(env(&[("CNI_COMMAND", "VERSION")])).expect("VERSION");
    assert_eq!(v.command, Command::Version);
}

#[test]
fn configs_are_decoded_checked_and_versioned() {
    let c = NetConf::parse(
        br#"{"cniVersion":"1.0.0","name":"blue","type":"vswitch-cni","ipMasq":true}"#,
    )
    .expect("unknown fields are ignored");
    assert_eq!(c.network(), "blue");
    assert!(!c.has_status_and_gc());
    let c = NetConf::parse(
        br#"{"cniVersion":"1.1.0","name":"n","type":"vswitch-cni","network":"red","socket":"/s"}"#,
    )
    .expect("full");
    assert_eq!(c.network(), "red");
    assert_eq!(c.socket.as_deref(), Some(std::path::Path::new("/s")));
    assert_eq!(
        NetConf::parse(b"{").expect_err("json").code,
        code::DECODE_FAILURE
    );
    assert_eq!(
        NetConf::parse(br#"{"cniVersion":"1.1.0","type":"vswitch-cni"}"#)
            .expect_err("no name")
            .code,
        code::INVALID_CONFIG
    );
    assert_eq!(
        NetConf::parse(br#"{"cniVersion":"0.3.1","name":"n","type":"vswitch-cni"}"#)
            .expect_err("old")
            .code,
        code::INCOMPATIBLE_VERSION
    );
}

#[test]
fn errors_are_the_specs_json_in_the_configs_version() {
    let e = CniError::new(code::TRY_AGAIN_LATER, "down", "why");
    assert_eq!(
        e.to_json(Some("1.0.0")),
        json!({"cniVersion":"1.0.0","code":11,"msg":"down","details":"why"})
    );
    assert_eq!(e.to_json(Some("9.9.9"))["cniVersion"], SPEC_VERSION);
    assert_eq!(e.to_json(None)["cniVersion"], SPEC_VERSION);
}

fn port() -> PortInfo {
    PortInfo {
        port: 1,
        network: "blue".into(),
        netns: "/run/netns/x".into(),
        ifname: "eth0".into(),
        mac: Mac([2, 0, 0, 0, 0, 1]),
        ip: Some("10.1.0.1/24".into()),
        mtu: 1450,
        port_security: true,
        names: vec![],
        container_id: Some("c1".into()),
        egress: None,
    }
}

#[test]
fn the_add_result_follows_the_version() {
    let gw = Some(Ipv4Addr::new(10, 1, 0, 254));
    let r = add_result("1.1.0", &port(), gw, "/var/run/netns/x");
    assert_eq!(
        r,
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "mtu": 1450, "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": "10.1.0.1/24", "gateway": "10.1.0.254", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.254"}],
            "dns": {"nameservers": ["10.1.0.254"]},
        })
    );
    let old = add_result("0.4.0", &port(), None, "/x");
    assert_eq!(old["ips"][0]["version"], "4");
    assert!(old["interfaces"][0].get("mtu").is_none());
    assert!(old["ips"][0].get("gateway").is_none());
    assert_eq!(old["dns"], json!({}), "no gateway, no nameserver");
    assert_eq!(old["routes"], json!([]));
    assert_eq!(prev_addresses(&r, "eth0"), vec!["10.1.0.1/24".to_string()]);
    assert!(prev_addresses(&r, "eth1").is_empty());
}

#[test]
fn version_lists_every_supported_version() {
    assert_eq!(
        version_result(),
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})
    );
}
