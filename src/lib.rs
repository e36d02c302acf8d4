//! bt: a BitTorrent tracker, seeding peer and downloading client in one binary.
//!
//! Data flows one way: [`modes`] and [`commands`] -> [`swarm`] (the engine) -> [`proto`] (pure
//! formats). `proto` imports nothing of ours.
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod library;
pub mod modes;
pub mod proto;
pub mod rt;
pub(crate) mod swarm;
pub mod sys;
pub mod ui;
