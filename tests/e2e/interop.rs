//! Interoperability with the Linux kernel's own VXLAN implementation: host A runs vswitch,
//! host B a `vxlan` device + bridge, with the same VNI on both sides.

use crate::support::*;

/// The kernel's vxlan device with default offloads, on a veth underlay: it sends inner TCP
/// with a partial checksum (`CHECKSUM_PARTIAL`, only the pseudo-header sum), which vswitch
/// completes before the frame reaches its container.
#[test]
fn interop_with_kernel_vxlan() {
    let lab = kernel_vxlan_lab(false);
    let stats = lab.hosts[0].json(&["stats"]);
    assert!(
        stats["dataplane"]["checksums_completed"].as_u64() > Some(0),
        "the kernel sent partial checksums and vswitch completed them: {}",
        stats["dataplane"]
    );
}

/// The same with the kernel side computing every checksum in software on transmit, as a real
/// NIC does: nothing is left to complete.
#[test]
fn interop_with_kernel_vxlan_without_tx_offload() {
    let lab = kernel_vxlan_lab(true);
    let stats = lab.hosts[0].json(&["stats"]);
    assert_eq!(
        stats["dataplane"]["checksums_completed"].as_u64(),
        Some(0),
        "{}",
        stats["dataplane"]
    );
}

/// Host A runs vswitch, host B the kernel's vxlan device bridged to a container; ping and 8 MB
/// TCP both ways. `tx_csum_off` makes host B's underlay veth compute checksums in software.
fn kernel_vxlan_lab(tx_csum_off: bool) -> Lab {
    let mut lab = Lab::new(2);
    let args = lab.mesh_args(0);
    lab.hosts[0].start(&args);
    let a = &lab.hosts[0];
    let hb = lab.hosts[1].ns.name.clone();
    let (a_ip, b_ip) = (a.ip.clone(), lab.hosts[1].ip.clone());

    a.create_network("ix", 4242, "10.42.42.0/24", &["--gateway", "10.42.42.254"]);
    let ca = lab.netns("ca");
    let att = a.attach(
        &ca,
        "ix",
        &["--ip", "10.42.42.1/24", "--mac", "02:00:00:42:00:01"],
    );
    assert_eq!(
        att["mtu"].as_u64(),
        Some(1450),
        "attach --json mtu on a 1500 underlay: {att}"
    );

    // Host B: the kernel's vxlan device on the same VNI, bridged to a container veth.
    let cb = lab.netns("cb");
    let ipb = |args: &[&str]| {
        let mut a = vec!["ip", "-n", &hb];
        a.extend_from_slice(args);
        sh_ok(&a);
    };
    ipb(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "4242",
        "dstport",
        "4789",
        "local",
        &b_ip,
        "remote",
        &a_ip,
        "dev",
        UNDERLAY_DEV,
    ]);
    if tx_csum_off {
        disable_tx_checksum(&hb, UNDERLAY_DEV);
    }
    ipb(&["link", "add", "br0", "type", "bridge"]);
    sh_ok(&[
        "ip", "link", "add", "name", "hb0", "netns", &hb, "type", "veth", "peer", "name", "eth0",
        "netns", &cb,
    ]);
    ipb(&["link", "set", "hb0", "mtu", "1450"]);
    ipb(&["link", "set", "vx0", "master", "br0"]);
    ipb(&["link", "set", "hb0", "master", "br0"]);
    for dev in ["vx0", "hb0", "br0"] {
        ipb(&["link", "set", dev, "up"]);
    }
    sh_ok(&[
        "ip",
        "-n",
        &cb,
        "link",
        "set",
        "eth0",
        "mtu",
        "1450",
        "address",
        "02:00:00:42:00:02",
    ]);
    sh_ok(&[
        "ip",
        "-n",
        &cb,
        "addr",
        "add",
        "10.42.42.2/24",
        "dev",
        "eth0",
    ]);
    sh_ok(&["ip", "-n", &cb, "link", "set", "eth0", "up"]);

    lab.assert_ping(&ca, "10.42.42.2");
    lab.assert_ping(&cb, "10.42.42.1");
    tcp_transfer(&ca, &cb, "10.42.42.2", 9201, 8 * 1024 * 1024);
    tcp_transfer(&cb, &ca, "10.42.42.1", 9202, 8 * 1024 * 1024);
    lab
}
