//! The long-running modes: `tracker`, `peer`, `client`, `demo`, `dht` and the interactive `shell`.
//! Thin: each wires a config to the engine or the server and shows what happens.

pub mod client;
pub mod control;
pub mod demo;
pub mod dht;
pub mod engine;
pub mod magnet;
pub mod peer;
pub mod shell;
pub mod status;
pub mod tracker;
pub mod web;
