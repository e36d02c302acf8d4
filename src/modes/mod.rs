//! The long-running modes: `peer` and `client` (and soon `tracker`). Thin: each wires a profile
//! to the engine and shows what happens.

pub mod client;
pub mod engine;
pub mod peer;
pub mod status;
