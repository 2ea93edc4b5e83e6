//! Any bytes as an inner Ethernet frame: classify and flow_hash never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::inner_frame(data));
