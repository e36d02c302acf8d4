//! Fuzz target: announce and scrape query parsing on arbitrary text; accepted queries round-trip.
//! The properties live in `fuzz/checks.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::tracker_query(data));
