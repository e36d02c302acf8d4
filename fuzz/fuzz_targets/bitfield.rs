//! Fuzz target: `Bitfield::from_bytes` with an arbitrary piece count.
//! The properties live in `fuzz/checks.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::bitfield(data));
