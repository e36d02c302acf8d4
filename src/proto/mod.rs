//! Pure BitTorrent formats: bytes in, values out.
//!
//! Nothing in here touches a socket, a file or a clock, so every decoder can be tested and fuzzed
//! on plain byte slices. The engine and the modes build on these types; this module imports
//! nothing else of ours.

pub mod bencode;
pub mod bitfield;
pub mod extension;
pub mod fast;
pub mod ids;
pub mod layout;
pub mod lsd;
pub mod magnet;
pub mod metadata;
pub mod metainfo;
pub mod pex;
pub mod tracker;
pub mod wire;
