//! Any bytes as a VXLAN datagram: parse never panics; a parsed header re-emits to itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::vxlan_header(data));
