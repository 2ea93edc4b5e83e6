//! End-to-end tests: real network namespaces, real TAPs, real `vswitch daemon`s talking VXLAN
//! over a veth/bridge underlay, and the kernel's vxlan device as an interop peer.
//!
//! They need root and must run in a network (and mount) namespace of their own, so they never
//! touch the machine's real interfaces and `ip netns` mounts vanish with the run:
//!
//! ```sh
//! cargo test --test e2e --no-run
//! BIN=$(ls -t target/debug/deps/e2e-* | grep -v '\.d$' | head -1)
//! sudo unshare --net --mount --propagation private -- "$BIN" --test-threads 2
//! ```
//!
//! Needs iproute2, python3 (raw-socket helpers: ICMP echo, AF_PACKET send/count, ARP, TCP with
//! SHA-256) and, for `underlay_capture_shows_vxlan_with_vni`, tshark. Without root every test
//! fails with a message saying so (they never skip). Set `RUST_LOG` to change the daemons' log
//! level; daemon logs are printed when a test fails.
//!
//! Traffic rule: tests only send to loopback and to addresses they assign inside namespaces they
//! create (prefix `vse<pid>_<n>`); every namespace is deleted on drop, panics included.

mod support;
mod watchdog;

mod cli;
pub(crate) mod cluster;
mod cni;
mod docker;
mod egress;
mod hardening;
mod hostile;
mod interop;
mod json;
mod lifecycle;
mod losses;
mod metrics;
mod not_sealed;
mod overlay;
mod podman;
mod restore;
mod sealed;
mod services;
mod streams;
mod systemd;
mod uso;
mod workers;
