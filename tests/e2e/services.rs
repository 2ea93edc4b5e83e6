//! The network's own services: the anycast gateway (and, below, DNS and egress).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// The gateway MAC of VNI `vni` (README: `02:76:73` and the 24-bit VNI).
fn gateway_mac(vni: u32) -> String {
    let [_, a, b, c] = vni.to_be_bytes();
    format!("02:76:73:{a:02x}:{b:02x}:{c:02x}")
}

/// tshark on host `h`'s underlay, printing the innermost Ethernet addresses, ARP target and
/// IPv4 addresses of every VXLAN datagram; stop it with `interrupt`.
fn capture_inner(lab: &Lab, h: usize) -> Bg {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.hosts[h].ns.name, "tshark", "-l", "-n"])
        .args([
            "-i",
            UNDERLAY_DEV,
            "-f",
            "udp port 4789",
            "-a",
            "duration:60",
        ])
        .args(["-T", "fields", "-e", "eth.src", "-e", "eth.dst"])
        .args(["-e", "arp.dst.proto_ipv4", "-e", "ip.src", "-e", "ip.dst"])
        // The inner packet: the last occurrence of each field.
        .args(["-E", "occurrence=l"]);
    let mut bg = Bg::spawn(&mut cmd);
    bg.wait_for("Capturing on", Duration::from_secs(20));
    bg
}

#[test]
fn gateway_answers_on_every_host_and_never_crosses_the_underlay() {
    require_root();
    require_tool("tshark", "tshark");
    let mut lab = Lab::new(2);
    lab.start_mesh();
    for h in &lab.hosts {
        h.create_network("svc", 110, "10.110.0.0/24", &[]);
    }
    let inspect = lab.hosts[0].json(&["network", "inspect", "svc"]);
    assert_eq!(
        jstr(&inspect, "gateway"),
        "10.110.0.1",
        "default: the first host address"
    );
    let ca = lab.netns("ca");
    let cb = lab.netns("cb");
    let pa = lab.hosts[0].attach(&ca, "svc", &[]);
    assert_eq!(
        jstr(&pa, "ip"),
        "10.110.0.2/24",
        "IPAM never hands out the gateway"
    );
    lab.hosts[1].attach(&cb, "svc", &["--ip", "10.110.0.3/24"]);
    for c in [&ca, &cb] {
        let routes = default_routes(c);
        assert_eq!(routes.len(), 1, "{c}: {routes:?}");
        assert_eq!(routes[0]["gateway"], "10.110.0.1");
    }

    let capture = capture_inner(&lab, 0);
    lab.assert_ping(&ca, "10.110.0.1");
    lab.assert_ping(&cb, "10.110.0.1");
    // A positive control: container-to-container traffic does show in the capture. Wait for
    // tshark to print it before stopping it: under load it runs behind, and an interrupt would
    // cut off what it has not printed yet (everything before it included).
    lab.assert_ping(&ca, "10.110.0.3");
    let mut capture = capture;
    capture.wait_for("\t10.110.0.2\t10.110.0.3", Duration::from_secs(30));
    let r = capture.interrupt(Duration::from_secs(20));

    // The same MAC answers on both hosts.
    let mac = gateway_mac(110);
    assert_neigh(&ca, "10.110.0.1", &mac);
    assert_neigh(&cb, "10.110.0.1", &mac);

    let rows: Vec<Vec<String>> = r
        .out
        .iter()
        .map(|l| l.split('\t').map(|f| f.trim().to_string()).collect())
        .filter(|f: &Vec<String>| f.len() == 5)
        .collect();
    assert!(
        rows.iter()
            .any(|f| f[3] == "10.110.0.2" && f[4] == "10.110.0.3"),
        "the capture saw no container traffic, so it proves nothing: {rows:?}\n{}",
        r.err.join("\n")
    );
    for f in &rows {
        assert!(
            f[0] != mac && f[1] != mac,
            "a frame from or to the gateway MAC crossed the underlay: {f:?}"
        );
        assert!(
            f[2] != "10.110.0.1" && f[3] != "10.110.0.1" && f[4] != "10.110.0.1",
            "a frame for the gateway address crossed the underlay: {f:?}"
        );
    }

    // No kernel interface for the network on either host.
    for h in &lab.hosts {
        let got: BTreeSet<String> = links(&h.ns.name).into_iter().collect();
        let want: BTreeSet<String> = ["lo", UNDERLAY_DEV].map(String::from).into();
        assert_eq!(got, want, "host {}'s interfaces", h.label);
    }
}

#[test]
fn two_networks_with_one_subnet_each_have_their_own_gateway() {
    require_root();
    let mut lab = Lab::new(1);
    lab.start_mesh();
    let a = &lab.hosts[0];
    a.create_network("red", 111, "10.111.0.0/24", &[]);
    a.create_network("blue", 112, "10.111.0.0/24", &[]);
    let r = lab.netns("r");
    let b = lab.netns("b");
    a.attach(&r, "red", &["--ip", "10.111.0.2/24"]);
    a.attach(&b, "blue", &["--ip", "10.111.0.2/24"]);
    lab.assert_ping(&r, "10.111.0.1");
    lab.assert_ping(&b, "10.111.0.1");
    assert_neigh(&r, "10.111.0.1", &gateway_mac(111));
    assert_neigh(&b, "10.111.0.1", &gateway_mac(112));
    // The gateway is not a port: the MAC table has only the container.
    let fdb = a.json(&["fdb", "--network", "red"]);
    let macs: Vec<String> = fdb
        .as_array()
        .expect("fdb list")
        .iter()
        .map(|e| jstr(e, "mac"))
        .collect();
    assert!(!macs.contains(&gateway_mac(111)), "{macs:?}");
    // Nothing for the gateway was lost on the way to it.
    let stats = a.json(&["stats"]);
    assert_eq!(stats["dataplane"]["gateway_queue_full"], 0, "{stats}");
}

// ---------------------------------------------------------------------------------------------
// Embedded DNS
// ---------------------------------------------------------------------------------------------

/// A DNS client for the tests (stdlib only): `server name type(A|PTR) proto(udp|tcp) count`.
/// Per query it prints `rcode=N answers=a,b ms=T`, or `timeout ms=T`; `count` queries are
/// sent one after another, each with a new id, and each answer must carry its query's id.
const PY_DIG: &str = r#"
import random, socket, struct, sys, time
server, name, qtype, proto, count = sys.argv[1:6]
QT = {'A': 1, 'PTR': 12}[qtype]
def query(qid):
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip('.').split('.'):
        q += bytes([len(label)]) + label.encode()
    return q + b'\0' + struct.pack('>HH', QT, 1)
def read_name(m, i):
    labels, jumped, end = [], False, None
    while True:
        n = m[i]
        if n & 0xc0 == 0xc0:
            if end is None: end = i + 2
            i = ((n & 0x3f) << 8) | m[i + 1]
            continue
        if n == 0:
            return '.'.join(labels) + '.', (end if end is not None else i + 1)
        labels.append(m[i + 1:i + 1 + n].decode()); i += 1 + n
def parse(m, qid):
    rid, flags, qd, an = struct.unpack('>HHHH', m[:8])
    assert rid == qid, 'answer id %d for query %d' % (rid, qid)
    i = 12
    for _ in range(qd):
        _, i = read_name(m, i); i += 4
    out = []
    for _ in range(an):
        _, i = read_name(m, i)
        t, c, ttl, ln = struct.unpack('>HHIH', m[i:i + 10]); i += 10
        if t == 1: out.append(socket.inet_ntoa(m[i:i + 4]))
        if t == 12: out.append(read_name(m, i)[0])
        i += ln
    return flags & 0xf, out
for _ in range(int(count)):
    qid = random.randrange(65536)
    t0 = time.time()
    try:
        if proto == 'udp':
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
            s.sendto(query(qid), (server, 53)); m = s.recv(65535)
        else:
            s = socket.create_connection((server, 53), timeout=5)
            q = query(qid); s.sendall(struct.pack('>H', len(q)) + q)
            ln = struct.unpack('>H', s.recv(2))[0]; m = b''
            while len(m) < ln: m += s.recv(ln - len(m))
        s.close()
        rcode, out = parse(m, qid)
        print('rcode=%d answers=%s ms=%d' % (rcode, ','.join(out), (time.time() - t0) * 1000), flush=True)
    except socket.timeout:
        print('timeout ms=%d' % ((time.time() - t0) * 1000), flush=True)
"#;

/// One answer of [`PY_DIG`]: the rcode (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN), the answers in
/// order, and how long it took.
#[derive(Debug, PartialEq, Eq)]
struct Dig {
    rcode: u32,
    answers: Vec<String>,
    ms: u64,
}

fn dig_n(ns: &str, server: &str, name: &str, qtype: &str, proto: &str, n: u32) -> Vec<Dig> {
    let out = run_cmd(
        &mut py_cmd(ns, PY_DIG, &[server, name, qtype, proto, &n.to_string()]),
        Duration::from_secs(30 + u64::from(n) / 50),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let digs: Vec<Dig> = text
        .lines()
        .map(|l| {
            let field = |k: &str| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix(k))
                    .unwrap_or_else(|| panic!("no {k} in '{l}' (query {name} from {ns})"))
                    .to_string()
            };
            Dig {
                rcode: field("rcode=").parse().expect("rcode"),
                answers: field("answers=")
                    .split(',')
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
                ms: field("ms=").parse().expect("ms"),
            }
        })
        .collect();
    assert_eq!(
        digs.len(),
        n as usize,
        "dig {name} from {ns}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    digs
}

fn dig(ns: &str, server: &str, name: &str, qtype: &str) -> Dig {
    dig_n(ns, server, name, qtype, "udp", 1).remove(0)
}

/// A fake resolver on the underlay LAN: answers every A query with 192.0.2.99, or (`silent`)
/// reads queries and never answers.
const PY_UPSTREAM: &str = r#"
import socket, struct, sys
addr, silent = sys.argv[1], sys.argv[2] == 'silent'
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, 53))
print('ready', flush=True)
while True:
    q, peer = s.recvfrom(65535)
    if silent: continue
    qid = q[:2]; qd = q[12:]
    ans = b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 30, 4) + socket.inet_aton('192.0.2.99')
    s.sendto(qid + struct.pack('>HHHHH', 0x8180, 1, 1, 0, 0) + qd + ans, peer)
"#;

fn upstream(lab: &Lab, tag: &str, ip: &str, silent: bool) -> Bg {
    let ns = lab.underlay_node(tag, ip);
    let mode = if silent { "silent" } else { "answer" };
    let mut bg = Bg::spawn(&mut py_cmd(&ns, PY_UPSTREAM, &[ip, mode]));
    bg.wait_for("ready", Duration::from_secs(15));
    bg
}

#[test]
fn dns_names_aliases_ptr_isolation_and_upstreams() {
    require_root();
    let mut lab = Lab::new(2);
    // Host A's resolver answers; host B's never does.
    let _answering = upstream(&lab, "up", "192.0.2.53", false);
    let _silent = upstream(&lab, "mute", "192.0.2.54", true);
    for (i, up) in [(0, "192.0.2.53"), (1, "192.0.2.54")] {
        let mut args = lab.mesh_args(i);
        args.extend(["--dns-upstream".to_string(), up.to_string()]);
        lab.hosts[i].start(&args);
    }
    for h in &lab.hosts {
        h.create_network("red", 120, "10.120.0.0/24", &[]);
        h.create_network("blue", 121, "10.120.0.0/24", &[]);
    }
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let w1 = lab.netns("w1");
    let w2 = lab.netns("w2");
    let ca = lab.netns("ca");
    let bl = lab.netns("bl");
    let cb = lab.netns("cb");
    let p = a.attach(
        &w1,
        "red",
        &["--ip", "10.120.0.11/24", "--name", "Web1", "--alias", "web"],
    );
    assert_eq!(p["names"], serde_json::json!(["Web1", "web"]));
    a.attach(
        &w2,
        "red",
        &["--ip", "10.120.0.12/24", "--name", "web2", "--alias", "web"],
    );
    a.attach(&ca, "red", &["--ip", "10.120.0.13/24", "--name", "client"]);
    a.attach(
        &bl,
        "blue",
        &["--ip", "10.120.0.11/24", "--name", "db", "--alias", "web"],
    );
    b.attach(
        &cb,
        "red",
        &["--ip", "10.120.0.21/24", "--name", "far", "--no-dns"],
    );

    // attach wrote the namespace's resolv.conf (not with --no-dns), and the system resolver
    // inside the container finds a name through it.
    let conf = std::path::Path::new("/etc/netns")
        .join(&ca)
        .join("resolv.conf");
    assert!(
        read_file(&conf).contains("nameserver 10.120.0.1"),
        "{}",
        read_file(&conf)
    );
    assert!(!std::path::Path::new("/etc/netns").join(&cb).exists());
    let got =
        String::from_utf8_lossy(&ns_exec(&ca, &["getent", "hosts", "web2"]).stdout).to_string();
    assert!(
        got.starts_with("10.120.0.12"),
        "getent hosts web2 in the container: {got:?}"
    );

    let gw = "10.120.0.1";
    // Names are case-insensitive; an alias of two containers gives both, rotated.
    assert_eq!(dig(&ca, gw, "WEB1", "A").answers, ["10.120.0.11"]);
    let first = dig(&ca, gw, "web", "A").answers;
    let second = dig(&ca, gw, "web", "A").answers;
    assert_eq!(first.len(), 2, "{first:?}");
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, ["10.120.0.11", "10.120.0.12"]);
    assert_eq!(second, [first[1].clone(), first[0].clone()], "round robin");
    // Scoped to the network: blue's db is not red's, and red's web is not blue's.
    assert_eq!(dig(&ca, gw, "db", "A").rcode, 3, "NXDOMAIN");
    assert_eq!(dig(&bl, gw, "web", "A").answers, ["10.120.0.11"]);
    assert_eq!(dig(&bl, gw, "web2", "A").rcode, 3);
    // PTR, and TCP.
    assert_eq!(
        dig(&ca, gw, "12.0.120.10.in-addr.arpa", "PTR").answers,
        ["web2."]
    );
    let tcp = dig_n(&ca, gw, "web2", "A", "tcp", 1);
    assert_eq!(tcp[0].answers, ["10.120.0.12"]);
    // File store: names are this host's; host B's container is not known on A, and B's
    // gateway answers for its own.
    assert_eq!(dig(&ca, gw, "far", "A").rcode, 3);
    assert_eq!(dig(&cb, gw, "far", "A").answers, ["10.120.0.21"]);
    // Other names go to the host's resolvers: host A's answers, host B's never does and the
    // client gets SERVFAIL once the 2 s deadline passes, not a hang.
    let fwd = dig(&ca, gw, "example.test", "A");
    assert_eq!(
        (fwd.rcode, fwd.answers),
        (0, vec!["192.0.2.99".to_string()])
    );
    let fail = dig(&cb, gw, "example.test", "A");
    assert_eq!(fail.rcode, 2, "SERVFAIL: {fail:?}");
    assert!(
        (1500..4000).contains(&fail.ms),
        "SERVFAIL after the upstream timeout (2 s): {fail:?}"
    );

    // network inspect shows each endpoint's names.
    let inspect = a.json(&["network", "inspect", "red"]);
    let endpoints = inspect["endpoints"].as_array().expect("endpoints");
    let w1_names = endpoints
        .iter()
        .find(|e| e["ip"] == "10.120.0.11")
        .map(|e| e["names"].clone());
    assert_eq!(w1_names, Some(serde_json::json!(["Web1", "web"])));

    // Detach forgets the names and removes the resolv.conf it wrote.
    a.ok(&["detach", &w1]);
    assert_eq!(dig(&ca, gw, "web", "A").answers, ["10.120.0.12"]);
    assert_eq!(dig(&ca, gw, "web1", "A").rcode, 3);
    a.ok(&["detach", &ca]);
    assert!(!conf.exists(), "detach removes the resolv.conf");
    let stats = a.json(&["stats"]);
    assert_eq!(stats["dataplane"]["dns_malformed"], 0, "{stats}");
    assert!(
        stats["dataplane"]["dns_queries"].as_u64() >= Some(12),
        "{stats}"
    );
    assert!(
        stats["dataplane"]["dns_forwarded"].as_u64() >= Some(1),
        "example.test went to host A's resolver: {stats}"
    );
    let stats = b.json(&["stats"]);
    // Host B's one query for a name it does not know: forwarded, unanswered, SERVFAIL.
    assert_eq!(stats["dataplane"]["dns_forwarded"], 1, "{stats}");
    assert_eq!(stats["dataplane"]["dns_servfail"], 1, "{stats}");
}

#[test]
fn dns_resolves_names_of_other_hosts_in_cluster_mode() {
    require_root();
    // No resolver is ever asked here (every name is single-label); the flag keeps the
    // daemons away from the machine's own resolv.conf all the same.
    let (lab, _etcd) =
        crate::cluster::cluster_lab_with(&["n1", "n2"], &["--dns-upstream", "192.0.2.54"]);
    lab.hosts[0].create_network("blue", 130, "10.130.0.0/24", &[]);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    crate::cluster::eventually("blue on n2", Duration::from_secs(3), &lab, || {
        b.vs(&["network", "inspect", "blue"])
            .status
            .success()
            .then_some(())
    });
    let ca = lab.netns("ca");
    let cb = lab.netns("cb");
    a.attach(&ca, "blue", &["--name", "api"]);
    b.attach(&cb, "blue", &["--name", "web", "--alias", "front"]);
    let web_ip = jstr(&b.json(&["network", "inspect", "blue"])["ports"][0], "ip");
    let web_ip = web_ip.split('/').next().expect("ip").to_string();
    // Host A's gateway knows host B's container (from the claims in etcd) within a refresh.
    let got =
        crate::cluster::eventually("web resolvable on n1", Duration::from_secs(5), &lab, || {
            let d = dig(&ca, "10.130.0.1", "web", "A");
            (d.rcode == 0 && !d.answers.is_empty()).then_some(d.answers)
        });
    assert_eq!(got, std::slice::from_ref(&web_ip));
    assert_eq!(dig(&ca, "10.130.0.1", "FRONT", "A").answers, [web_ip]);
    assert_eq!(dig(&cb, "10.130.0.1", "api", "A").answers.len(), 1);
    lab.assert_ping(&ca, "10.130.0.1");
}

#[test]
fn dns_under_load_answers_every_query() {
    require_root();
    let mut lab = Lab::new(1);
    lab.start_mesh();
    let a = &lab.hosts[0];
    a.create_network("load", 140, "10.140.0.0/24", &[]);
    let mut clients = Vec::new();
    for i in 0..4 {
        let c = lab.netns(&format!("l{i}"));
        a.attach(
            &c,
            "load",
            &[
                "--ip",
                &format!("10.140.0.{}/24", 10 + i),
                "--name",
                &format!("c{i}"),
                "--alias",
                "pool",
            ],
        );
        clients.push(c);
    }
    // 4 containers × 1250 queries at once: 5000 in all, every answer correct.
    let results: Vec<Vec<Dig>> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let target = format!("c{}", (i + 1) % 4);
                s.spawn(move || dig_n(c, "10.140.0.1", &target, "A", "udp", 1250))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    for (i, digs) in results.iter().enumerate() {
        let want = format!("10.140.0.{}", 10 + (i + 1) % 4);
        for d in digs {
            assert_eq!(
                (d.rcode, &d.answers),
                (0, &vec![want.clone()]),
                "client {i}"
            );
        }
    }
    let stats = a.json(&["stats"]);
    assert_eq!(stats["dataplane"]["dns_queries"], 5000, "{stats}");
    assert_eq!(stats["dataplane"]["gateway_queue_full"], 0, "{stats}");
}
