//! Op sequences against a switch, with its invariants checked after every step. The input is
//! decoded with `arbitrary` inside `vswitch::fuzzing::switch_ops::decode`, the same decoder the
//! corpus replay test uses, so a corpus file means the same thing in both.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::switch_ops::switch_ops(data));
