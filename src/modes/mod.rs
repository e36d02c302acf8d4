//! The long-running modes: `tracker`, `peer`, `client`. Thin: each wires a config to the engine
//! or the server and shows what happens.

pub mod client;
pub mod demo;
pub mod engine;
pub mod peer;
pub mod status;
pub mod tracker;
