//! The long-running modes: `tracker`, `peer`, `client`. Thin: each wires a config to the engine
//! or the server.

pub mod tracker;
