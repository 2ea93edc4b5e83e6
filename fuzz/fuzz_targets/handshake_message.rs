//! See `vswitch::fuzzing::parsers::handshake_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::parsers::handshake_message(data));
