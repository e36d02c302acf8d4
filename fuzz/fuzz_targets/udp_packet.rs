//! Fuzz target: BEP 15 datagrams, parsed both ways and answered by the UDP tracker.
//! The properties live in `fuzz/checks.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::udp_packet(data));
