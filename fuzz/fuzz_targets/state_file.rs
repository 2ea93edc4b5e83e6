//! See `vswitch::fuzzing::parsers::state_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::parsers::state_file(data));
