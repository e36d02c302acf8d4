//! Fuzz target: the extension decoders (BEP 10 handshake, BEP 9 `ut_metadata`, BEP 11 `ut_pex`)
//! and the magnet link parser. The properties live in `fuzz/checks.rs`, shared with
//! `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::extension(data));
