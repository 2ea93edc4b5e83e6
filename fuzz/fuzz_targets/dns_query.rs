//! See `vswitch::fuzzing::services::dns_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::services::dns_query(data));
