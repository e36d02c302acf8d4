//! Fuzz target: `Metainfo::from_bytes` on arbitrary bytes; accepted torrents must round-trip.
//! The properties live in `fuzz/checks.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::metainfo(data));
