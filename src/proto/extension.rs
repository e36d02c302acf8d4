//! The extension protocol (BEP 10): the reserved bits that announce it (and BEP 6's fast bit),
//! and the extension handshake, the bencoded dictionary sent as extended message 0.
//!
//! In the handshake, `m` maps extension names to the ids *the sender* wants to receive them
//! under; each side sends with the other's ids. Every value is bounded (constants below);
//! unknown keys are ignored, as BEP 10 asks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bendy::value::Value;

use super::bencode::{self, as_dict, BencodeError, Dict, DictExt};

/// Byte and mask of the reserved handshake bit for the extension protocol (BEP 10).
pub const EXTENSION_BIT: (usize, u8) = (5, 0x10);
/// Byte and mask of the reserved handshake bit for the fast extension (BEP 6).
pub const FAST_BIT: (usize, u8) = (7, 0x04);

/// Extended message id of the extension handshake.
pub const HANDSHAKE_ID: u8 = 0;
/// Name of the metadata exchange extension (BEP 9).
pub const UT_METADATA: &str = "ut_metadata";
/// Name of the peer exchange extension (BEP 11).
pub const UT_PEX: &str = "ut_pex";

/// Most entries accepted in `m` (real clients send fewer than 15).
pub const MAX_EXTENSIONS: usize = 64;
/// Longest extension name accepted in `m`, in bytes.
pub const MAX_EXTENSION_NAME: usize = 64;
/// Longest client name and version (`v`) kept, in bytes; longer ones are cut.
pub const MAX_CLIENT_LEN: usize = 100;
/// Largest metadata (info dictionary) we accept: 8 MiB, 512 pieces of 16 KiB. An info dictionary
/// holds 20 bytes per piece plus the file list, so this covers a 400,000-piece torrent; libtorrent
/// refuses more than 4 MiB by default. Also what we are willing to allocate for one magnet.
pub const MAX_METADATA_SIZE: u64 = 8 * 1024 * 1024;
/// Largest request queue (`reqq`) we take a peer at; larger claims are clamped to it.
pub const MAX_REQQ: u32 = 4096;

/// Whether reserved handshake bytes announce the extension protocol.
pub fn supports_extensions(reserved: &[u8; 8]) -> bool {
    reserved[EXTENSION_BIT.0] & EXTENSION_BIT.1 != 0
}

/// Announce the extension protocol in reserved handshake bytes.
pub fn set_extensions(reserved: &mut [u8; 8]) {
    reserved[EXTENSION_BIT.0] |= EXTENSION_BIT.1;
}

/// Whether reserved handshake bytes announce the fast extension.
pub fn supports_fast(reserved: &[u8; 8]) -> bool {
    reserved[FAST_BIT.0] & FAST_BIT.1 != 0
}

/// Announce the fast extension in reserved handshake bytes.
pub fn set_fast(reserved: &mut [u8; 8]) {
    reserved[FAST_BIT.0] |= FAST_BIT.1;
}

/// Why an extension handshake was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// Not a bencoded dictionary, or a key of the wrong type.
    #[error("extension handshake: {0}")]
    Bencode(#[from] BencodeError),
    /// More than [`MAX_EXTENSIONS`] entries in `m`.
    #[error("extension handshake names {0} extensions (at most {MAX_EXTENSIONS} allowed)")]
    TooManyExtensions(usize),
    /// A value out of its range.
    #[error("extension handshake key `{key}` is out of range ({value})")]
    OutOfRange {
        /// The key (`m` for an entry of `m`).
        key: &'static str,
        /// The value received.
        value: i64,
    },
    /// An extension name in `m` longer than [`MAX_EXTENSION_NAME`].
    #[error("extension handshake names an extension of {0} bytes")]
    NameTooLong(usize),
    /// `yourip` that is neither 4 nor 16 bytes.
    #[error("extension handshake `yourip` of {0} bytes (4 or 16 expected)")]
    BadYourIp(usize),
}

/// The extension handshake dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtHandshake {
    /// Extension name to the id the sender receives it under; 0 means "disabled" (a handshake
    /// may be re-sent to switch one off). Names that are not UTF-8 are skipped.
    pub m: BTreeMap<String, u8>,
    /// Size of the info dictionary in bytes, 1 to [`MAX_METADATA_SIZE`] (BEP 9).
    pub metadata_size: Option<u64>,
    /// Client name and version, at most [`MAX_CLIENT_LEN`] bytes (cut on decode).
    pub v: Option<String>,
    /// The sender's listening TCP port (1 to 65535).
    pub p: Option<u16>,
    /// How many outstanding requests the sender accepts, 1 to [`MAX_REQQ`] (clamped on decode).
    pub reqq: Option<u32>,
    /// Our address as the sender sees it.
    pub yourip: Option<IpAddr>,
    /// The sender only uploads: it is a seed, or wants nothing more (BEP 21 `upload_only`;
    /// any integer but 0 is yes). Two such peers have nothing to trade.
    pub upload_only: bool,
}

impl ExtHandshake {
    /// The id the sender wants extension `name` under, if it supports it (0 = not supported).
    pub fn id(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }

    /// Decode the payload of extended message 0 (after the sub-id byte).
    pub fn decode(payload: &[u8]) -> Result<ExtHandshake, ExtensionError> {
        let value = bencode::decode(payload)?;
        let d = as_dict(&value, "extension handshake")?;
        let mut h = ExtHandshake::default();
        if let Some(m) = d.opt_dict("m")? {
            if m.len() > MAX_EXTENSIONS {
                return Err(ExtensionError::TooManyExtensions(m.len()));
            }
            for (name, id) in m {
                if name.len() > MAX_EXTENSION_NAME {
                    return Err(ExtensionError::NameTooLong(name.len()));
                }
                let Value::Integer(id) = id else {
                    return Err(bencode::type_err("m", "a dictionary of integers").into());
                };
                let id = u8::try_from(*id).map_err(|_| ExtensionError::OutOfRange {
                    key: "m",
                    value: *id,
                })?;
                // A name that is not UTF-8 is no extension we know: skipped.
                if let Ok(name) = std::str::from_utf8(name) {
                    h.m.insert(name.to_string(), id);
                }
            }
        }
        h.metadata_size =
            ranged(d, "metadata_size", 1, MAX_METADATA_SIZE as i64)?.map(|v| v as u64);
        h.v = d.opt_bytes("v")?.map(client_name);
        h.p = ranged(d, "p", 1, u16::MAX.into())?.map(|v| v as u16);
        h.reqq = ranged(d, "reqq", 1, i64::MAX)?.map(|v| v.min(MAX_REQQ.into()) as u32);
        // Lenient: a value that is not an integer is no claim to be a seed.
        h.upload_only = d
            .opt_int("upload_only")
            .ok()
            .flatten()
            .is_some_and(|v| v != 0);
        h.yourip = match d.opt_bytes("yourip")? {
            None => None,
            Some(b) => Some(match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(b).expect("4 bytes")),
                16 => IpAddr::from(<[u8; 16]>::try_from(b).expect("16 bytes")),
                n => return Err(ExtensionError::BadYourIp(n)),
            }),
        };
        Ok(h)
    }

    /// Encode as the payload of extended message 0 (the caller adds the sub-id byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Dict::new();
        let mut m = Dict::new();
        for (name, id) in &self.m {
            m.insert(bencode::key(name), Value::Integer((*id).into()));
        }
        d.insert(bencode::key("m"), Value::Dict(m));
        if let Some(size) = self.metadata_size {
            d.insert(bencode::key("metadata_size"), Value::Integer(size as i64));
        }
        if let Some(v) = &self.v {
            d.insert(bencode::key("v"), bencode::text(v));
        }
        if let Some(p) = self.p {
            d.insert(bencode::key("p"), Value::Integer(p.into()));
        }
        if let Some(reqq) = self.reqq {
            d.insert(bencode::key("reqq"), Value::Integer(reqq.into()));
        }
        if self.upload_only {
            d.insert(bencode::key("upload_only"), Value::Integer(1));
        }
        if let Some(ip) = self.yourip {
            let b = match ip {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            d.insert(bencode::key("yourip"), bencode::bytes(b));
        }
        bencode::encode(&Value::Dict(d))
    }
}

/// `v` as text of at most [`MAX_CLIENT_LEN`] bytes: invalid UTF-8 replaced, then cut on a
/// character boundary (so that decoding what we encode gives the same text).
fn client_name(v: &[u8]) -> String {
    // Replacement at most triples the length: never look at more than that needs.
    let mut text = String::from_utf8_lossy(&v[..v.len().min(4 * MAX_CLIENT_LEN)]).into_owned();
    let mut end = text.len().min(MAX_CLIENT_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// An optional integer key that must lie in `min..=max`.
fn ranged(d: &Dict, key: &'static str, min: i64, max: i64) -> Result<Option<i64>, ExtensionError> {
    match d.opt_int(key)? {
        Some(v) if v < min || v > max => Err(ExtensionError::OutOfRange { key, value: v }),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bits() {
        let mut r = [0u8; 8];
        assert!(!supports_extensions(&r) && !supports_fast(&r));
        set_extensions(&mut r);
        assert_eq!(r, [0, 0, 0, 0, 0, 0x10, 0, 0]);
        set_fast(&mut r);
        assert_eq!(r, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert!(supports_extensions(&r) && supports_fast(&r));
        // Other bits (DHT is byte 7, 0x01) do not count.
        assert!(!supports_fast(&[0, 0, 0, 0, 0, 0xef, 0, 0xfb]));
        assert!(!supports_extensions(&[0, 0, 0, 0, 0, 0xef, 0, 0xfb]));
    }

    #[test]
    fn reference_bytes_round_trip() {
        let mut h = ExtHandshake {
            metadata_size: Some(31235),
            v: Some("bt 0.1.0".into()),
            p: Some(6881),
            reqq: Some(250),
            yourip: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        };
        h.m.insert(UT_METADATA.into(), 3);
        h.m.insert(UT_PEX.into(), 1);
        let enc = h.encode();
        assert_eq!(
            enc,
            b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e\
              4:reqqi250e1:v8:bt 0.1.06:yourip4:\x7f\x00\x00\x01e"
                .to_vec()
        );
        assert_eq!(ExtHandshake::decode(&enc).unwrap(), h);
        assert_eq!(h.id(UT_METADATA), Some(3));
        h.yourip = Some("::1".parse().unwrap());
        assert_eq!(ExtHandshake::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn libtorrent_style_handshake_with_unknown_keys() {
        // Keys a real libtorrent sends, several unknown to us; `ut_pex` 0 = disabled.
        let raw = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi0ee13:metadata_sizei17e4:reqqi500e11:upload_onlyi0e1:v17:libtorrent/2.0.106:yourip4:\x7f\x00\x00\x01e";
        let h = ExtHandshake::decode(raw).unwrap();
        assert_eq!(h.id(UT_METADATA), Some(2));
        assert_eq!(h.id(UT_PEX), None);
        assert_eq!(h.m.len(), 6);
        assert_eq!(h.metadata_size, Some(17));
        assert_eq!(h.reqq, Some(500));
        assert!(!h.upload_only, "upload_only 0 is no");
        let seed = ExtHandshake {
            upload_only: true,
            ..ExtHandshake::default()
        };
        assert!(ExtHandshake::decode(&seed.encode()).unwrap().upload_only);
        assert!(
            !ExtHandshake::decode(b"d11:upload_only3:yese")
                .unwrap()
                .upload_only
        );
        assert_eq!(h.v.as_deref(), Some("libtorrent/2.0.10"));
        assert_eq!(h.p, None);
    }

    #[test]
    fn real_libtorrent_capture() {
        use crate::proto::wire::{self, FrameLimits, Handshake, Message, HANDSHAKE_LEN};
        // Bytes libtorrent 2.0.8 sent to a raw socket (the fuzz seed of the same name).
        let raw = include_bytes!("../../fuzz/seeds/wire_stream/libtorrent-head");
        // The first byte is the fuzz target's piece-count selector, the second its chunk count.
        let stream = &raw[2..];
        let hs = Handshake::decode(stream[..HANDSHAKE_LEN].try_into().unwrap()).unwrap();
        assert!(supports_extensions(&hs.reserved) && supports_fast(&hs.reserved));
        let mut rest = &stream[HANDSHAKE_LEN..];
        let mut got = Vec::new();
        while let Some((m, used)) = wire::decode(rest, FrameLimits::for_pieces(1)).unwrap() {
            got.push(m);
            rest = &rest[used..];
        }
        let Message::Extended { id: 0, payload } = got[0] else {
            panic!("{:?}", got[0]);
        };
        let h = ExtHandshake::decode(payload).unwrap();
        assert_eq!(h.id(UT_METADATA), Some(2));
        assert_eq!(h.id(UT_PEX), Some(1));
        assert_eq!(h.metadata_size, Some(108));
        assert_eq!(h.p, Some(18994));
        assert_eq!(h.reqq, Some(2000));
        assert_eq!(h.v.as_deref(), Some("libtorrent/2.0.8.0"));
        assert_eq!(h.yourip, Some("127.0.0.1".parse().unwrap()));
        assert!(got.contains(&Message::HaveAll));
        assert!(got.iter().any(|m| matches!(m, Message::AllowedFast(_))));
        assert!(got.iter().any(|m| matches!(m, Message::Reject(_))));
    }

    #[test]
    fn huge_and_odd_values() {
        use ExtensionError::*;
        let d = |s: &str| ExtHandshake::decode(s.as_bytes());
        assert!(matches!(
            d("d13:metadata_sizei8388609ee"),
            Err(OutOfRange {
                key: "metadata_size",
                ..
            })
        ));
        assert!(matches!(d("d13:metadata_sizei0ee"), Err(OutOfRange { .. })));
        assert!(matches!(
            d("d13:metadata_sizei-5ee"),
            Err(OutOfRange { .. })
        ));
        assert!(d("d13:metadata_sizei8388608ee").is_ok());
        assert!(matches!(
            d("d1:pi65536ee"),
            Err(OutOfRange { key: "p", .. })
        ));
        assert!(matches!(d("d1:pi0ee"), Err(OutOfRange { key: "p", .. })));
        assert!(matches!(
            d("d1:md1:ai256eee"),
            Err(OutOfRange { key: "m", .. })
        ));
        assert!(matches!(
            d("d1:md1:ai-1eee"),
            Err(OutOfRange { key: "m", .. })
        ));
        assert!(matches!(d("d1:md1:a1:xee"), Err(Bencode(_))));
        assert!(matches!(d("d1:mi1ee"), Err(Bencode(_))));
        assert!(matches!(d("d1:vi1ee"), Err(Bencode(_))));
        assert!(matches!(d("d6:yourip3:abce"), Err(BadYourIp(3))));
        assert!(matches!(d("le"), Err(Bencode(_))));
        assert!(matches!(d(""), Err(Bencode(_))));
        assert!(matches!(d("d1:m"), Err(Bencode(_))));
        assert_eq!(d("d4:reqqi99999999999ee").unwrap().reqq, Some(MAX_REQQ));
        assert!(matches!(d("d4:reqqi0ee"), Err(OutOfRange { .. })));
        // An integer too large for i64 is a syntax error, not a wrap.
        assert!(matches!(
            d("d4:reqqi99999999999999999999999ee"),
            Err(Bencode(_))
        ));
        let long_v = format!("d1:v{}:{}e", 10_000, "é".repeat(5_000));
        let v = d(&long_v).unwrap().v.unwrap();
        assert!(
            v.len() <= MAX_CLIENT_LEN && v.chars().all(|c| c == 'é'),
            "{v}"
        );
        let many: String = (0..=MAX_EXTENSIONS)
            .map(|i| format!("3:x{i:02}i1e"))
            .collect();
        assert!(matches!(
            d(&format!("d1:md{many}ee")),
            Err(TooManyExtensions(65))
        ));
        let name = "n".repeat(MAX_EXTENSION_NAME + 1);
        assert!(matches!(
            d(&format!("d1:md{}:{name}i1eee", name.len())),
            Err(NameTooLong(65))
        ));
        // A handshake without `m` is legal: nothing supported.
        assert_eq!(d("de").unwrap(), ExtHandshake::default());
    }
}
