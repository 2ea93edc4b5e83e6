//! See `vswitch::fuzzing::parsers::control_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::parsers::control_request(data));
