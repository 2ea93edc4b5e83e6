//! See `vswitch::fuzzing::parsers::offload`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::parsers::offload(data));
