//! See `vswitch::fuzzing::parsers::sealed_envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::parsers::sealed_envelope(data));
