//! Fuzz target: the peer wire frame decoder on a byte stream arriving in arbitrary chunks.
//! The properties live in `fuzz/checks.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::wire_stream(data));
