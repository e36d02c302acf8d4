//! The engine shared by `bt peer` and `bt client`: storage, hashing and (later) the swarm.
//!
//! A client is a peer whose folder starts empty; both run this same code.

pub mod hashing;
pub mod storage;
