//! Metadata exchange (BEP 9, extension `ut_metadata`): the request / data / reject messages, and
//! a [`MetadataAssembler`] that collects the info dictionary from 16 KiB pieces.
//!
//! A message is a bencoded dictionary (`msg_type`, `piece`, and `total_size` for data); a data
//! message carries the piece's raw bytes after the dictionary. Decoding checks every number
//! against the metadata size before anything is trusted; the assembled bytes are only handed out
//! after their SHA-1 matched the info-hash.

use bendy::decoding::{Decoder, Object};
use bendy::value::Value;
use sha1::{Digest, Sha1};

use super::bencode::{self, as_dict, BencodeError, Dict, DictExt};
use super::extension::MAX_METADATA_SIZE;
use super::ids::InfoHash;

/// Bytes in a metadata piece (all but the last, which may be shorter).
pub const METADATA_PIECE: usize = 16 * 1024;

/// `msg_type` values.
pub mod msg_type {
    /// Please send this piece.
    pub const REQUEST: i64 = 0;
    /// Here is a piece.
    pub const DATA: i64 = 1;
    /// I will not send that piece.
    pub const REJECT: i64 = 2;
}

/// Pieces in metadata of `size` bytes.
pub fn piece_count(size: u64) -> u32 {
    size.div_ceil(METADATA_PIECE as u64).min(u32::MAX.into()) as u32
}

/// Length of piece `piece` of metadata of `size` bytes (0 if there is no such piece).
pub fn piece_len(size: u64, piece: u32) -> usize {
    let start = u64::from(piece) * METADATA_PIECE as u64;
    size.saturating_sub(start).min(METADATA_PIECE as u64) as usize
}

/// One `ut_metadata` message; data borrows from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMsg<'a> {
    /// Please send piece `piece`.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// Piece `piece` of metadata of `total_size` bytes.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole metadata.
        total_size: u64,
        /// The piece's bytes.
        data: &'a [u8],
    },
    /// The sender will not send piece `piece`.
    Reject {
        /// Piece index.
        piece: u32,
    },
    /// A `msg_type` BEP 9 does not define: to be ignored, as BEP 9 asks.
    Unknown(i64),
}

/// Why a `ut_metadata` message or piece was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not a bencoded dictionary, or a key missing or of the wrong type.
    #[error("metadata message: {0}")]
    Bencode(#[from] BencodeError),
    /// A piece index beyond the metadata.
    #[error("metadata piece {piece} does not exist (metadata has {count} pieces)")]
    NoSuchPiece {
        /// Index received.
        piece: i64,
        /// Pieces in the metadata.
        count: u32,
    },
    /// A data piece whose length is not what its index requires.
    #[error("metadata piece {piece} of {len} bytes ({expected} expected)")]
    WrongSize {
        /// Piece index.
        piece: u32,
        /// Bytes received.
        len: usize,
        /// Bytes required.
        expected: usize,
    },
    /// `total_size` differs from the size announced in the handshake, or is out of range.
    #[error("metadata total_size {got} where {expected} was announced")]
    TotalSize {
        /// Value received.
        got: i64,
        /// Size we hold to (0: none announced and the value is out of range).
        expected: u64,
    },
    /// Bytes after a request or reject.
    #[error("{0} stray bytes after a metadata request or reject")]
    Trailing(usize),
    /// A metadata size of 0 or above [`MAX_METADATA_SIZE`].
    #[error("metadata of {0} bytes (at most {MAX_METADATA_SIZE} accepted)")]
    BadSize(u64),
    /// The assembled metadata does not hash to the info-hash.
    #[error("metadata does not match the info-hash")]
    HashMismatch,
}

/// Decode a `ut_metadata` payload (after the extended sub-id byte). `size` is the metadata size
/// held to: ours when serving, the one the peer announced when fetching; `None` when unknown
/// (then piece indices are only bounded by [`MAX_METADATA_SIZE`], and a data message's
/// `total_size` by the same).
pub fn decode(payload: &[u8], size: Option<u64>) -> Result<MetadataMsg<'_>, MetadataError> {
    // The dictionary's own bytes: the data of a data message follows it.
    let mut decoder = Decoder::new(payload).with_max_depth(bencode::MAX_DEPTH);
    let dict_len = match decoder.next_object().map_err(bencode::syntax)? {
        Some(Object::Dict(d)) => d.into_raw().map_err(bencode::syntax)?.len(),
        Some(_) => return Err(bencode::type_err("ut_metadata message", "a dictionary").into()),
        None => return Err(BencodeError::Empty.into()),
    };
    let value = bencode::decode(&payload[..dict_len])?;
    let d = as_dict(&value, "ut_metadata message")?;
    let rest = &payload[dict_len..];
    let kind = d
        .opt_int("msg_type")?
        .ok_or_else(|| BencodeError::Missing("msg_type".into()))?;
    if !(msg_type::REQUEST..=msg_type::REJECT).contains(&kind) {
        return Ok(MetadataMsg::Unknown(kind));
    }
    let max = size.unwrap_or(MAX_METADATA_SIZE);
    let count = piece_count(max);
    let raw_piece = d
        .opt_int("piece")?
        .ok_or_else(|| BencodeError::Missing("piece".into()))?;
    let piece =
        u32::try_from(raw_piece)
            .ok()
            .filter(|&p| p < count)
            .ok_or(MetadataError::NoSuchPiece {
                piece: raw_piece,
                count,
            })?;
    if kind != msg_type::DATA {
        if !rest.is_empty() {
            return Err(MetadataError::Trailing(rest.len()));
        }
        return Ok(match kind {
            msg_type::REQUEST => MetadataMsg::Request { piece },
            _ => MetadataMsg::Reject { piece },
        });
    }
    let total = d
        .opt_int("total_size")?
        .ok_or_else(|| BencodeError::Missing("total_size".into()))?;
    let lying = || MetadataError::TotalSize {
        got: total,
        expected: size.unwrap_or(0),
    };
    let total_size = u64::try_from(total).map_err(|_| lying())?;
    match size {
        Some(s) if s != total_size => return Err(lying()),
        None if total_size == 0 || total_size > MAX_METADATA_SIZE => return Err(lying()),
        _ => {}
    }
    if piece >= piece_count(total_size) {
        return Err(MetadataError::NoSuchPiece {
            piece: raw_piece,
            count: piece_count(total_size),
        });
    }
    let expected = piece_len(total_size, piece);
    if rest.len() != expected {
        return Err(MetadataError::WrongSize {
            piece,
            len: rest.len(),
            expected,
        });
    }
    Ok(MetadataMsg::Data {
        piece,
        total_size,
        data: rest,
    })
}

/// Append the payload of `msg` (without the extended sub-id byte) to `out`.
pub fn encode(msg: &MetadataMsg<'_>, out: &mut Vec<u8>) {
    let mut d = Dict::new();
    let (kind, piece) = match msg {
        MetadataMsg::Request { piece } => (msg_type::REQUEST, *piece),
        MetadataMsg::Reject { piece } => (msg_type::REJECT, *piece),
        MetadataMsg::Data {
            piece, total_size, ..
        } => {
            d.insert(
                bencode::key("total_size"),
                Value::Integer(*total_size as i64),
            );
            (msg_type::DATA, *piece)
        }
        // Never sent: we only decode unknown types.
        MetadataMsg::Unknown(_) => return,
    };
    d.insert(bencode::key("msg_type"), Value::Integer(kind));
    d.insert(bencode::key("piece"), Value::Integer(piece.into()));
    out.extend_from_slice(&bencode::encode(&Value::Dict(d)));
    if let MetadataMsg::Data { data, .. } = msg {
        out.extend_from_slice(data);
    }
}

/// Whether `metadata` hashes to `info_hash` (SHA-1).
pub fn matches(metadata: &[u8], info_hash: &InfoHash) -> bool {
    Sha1::digest(metadata).as_slice() == info_hash.0
}

/// What [`MetadataAssembler::add`] did with a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Stored; more pieces are missing.
    Stored,
    /// Stored, and it was the last missing piece: call [`MetadataAssembler::finish`].
    Complete,
    /// Already had it: ignored (the first copy is kept).
    Duplicate,
}

/// Collects metadata pieces in any order. `S` identifies who sent each piece (a peer key), so
/// that when the whole fails its hash the caller knows whom to blame.
#[derive(Debug, Clone)]
pub struct MetadataAssembler<S> {
    bytes: Vec<u8>,
    from: Vec<Option<S>>,
    missing: usize,
}

impl<S: Clone + PartialEq> MetadataAssembler<S> {
    /// An empty assembler for metadata of `size` bytes (1 to [`MAX_METADATA_SIZE`]; that much
    /// is allocated now).
    pub fn new(size: u64) -> Result<MetadataAssembler<S>, MetadataError> {
        if size == 0 || size > MAX_METADATA_SIZE {
            return Err(MetadataError::BadSize(size));
        }
        let count = piece_count(size) as usize;
        Ok(MetadataAssembler {
            bytes: vec![0; size as usize],
            from: vec![None; count],
            missing: count,
        })
    }

    /// Size of the metadata in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Pieces still missing, lowest first.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.from.len() as u32).filter(|&i| self.from[i as usize].is_none())
    }

    /// Whether every piece is in.
    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// Store piece `piece` sent by `source`.
    pub fn add(&mut self, piece: u32, data: &[u8], source: S) -> Result<Added, MetadataError> {
        let size = self.size();
        let count = self.from.len() as u32;
        let slot = self
            .from
            .get_mut(piece as usize)
            .ok_or(MetadataError::NoSuchPiece {
                piece: piece.into(),
                count,
            })?;
        let expected = piece_len(size, piece);
        if data.len() != expected {
            return Err(MetadataError::WrongSize {
                piece,
                len: data.len(),
                expected,
            });
        }
        if slot.is_some() {
            return Ok(Added::Duplicate);
        }
        *slot = Some(source);
        let start = piece as usize * METADATA_PIECE;
        self.bytes[start..start + expected].copy_from_slice(data);
        self.missing -= 1;
        Ok(if self.missing == 0 {
            Added::Complete
        } else {
            Added::Stored
        })
    }

    /// Everyone who sent a piece, without repeats (to drop them all after a hash mismatch).
    pub fn sources(&self) -> Vec<S> {
        let mut out: Vec<S> = Vec::new();
        for s in self.from.iter().flatten() {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// The metadata, when complete and its SHA-1 is `info_hash`. `Ok(None)`: pieces are still
    /// missing. On a mismatch every piece is forgotten (ask [`Self::sources`] first to know whom
    /// to drop) and the assembler starts over.
    pub fn finish(&mut self, info_hash: &InfoHash) -> Result<Option<Vec<u8>>, MetadataError> {
        if !self.is_complete() {
            return Ok(None);
        }
        if !matches(&self.bytes, info_hash) {
            self.from.iter_mut().for_each(|s| *s = None);
            self.missing = self.from.len();
            return Err(MetadataError::HashMismatch);
        }
        Ok(Some(std::mem::take(&mut self.bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_msg(piece: i64, total: i64, data: &[u8]) -> Vec<u8> {
        let mut v = format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{total}ee").into_bytes();
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reference_bytes_from_bep9() {
        let mut out = Vec::new();
        encode(&MetadataMsg::Request { piece: 0 }, &mut out);
        assert_eq!(out, b"d8:msg_typei0e5:piecei0ee");
        assert_eq!(
            decode(&out, Some(1)).unwrap(),
            MetadataMsg::Request { piece: 0 }
        );
        out.clear();
        encode(&MetadataMsg::Reject { piece: 0 }, &mut out);
        assert_eq!(out, b"d8:msg_typei2e5:piecei0ee");
        assert_eq!(
            decode(&out, None).unwrap(),
            MetadataMsg::Reject { piece: 0 }
        );
        out.clear();
        let piece = vec![7u8; 34256 - 2 * METADATA_PIECE];
        let msg = MetadataMsg::Data {
            piece: 2,
            total_size: 34256,
            data: &piece,
        };
        encode(&msg, &mut out);
        assert_eq!(out, data_msg(2, 34256, &piece));
        assert_eq!(decode(&out, Some(34256)).unwrap(), msg);
        assert_eq!(decode(&out, None).unwrap(), msg);
        // An unknown msg_type is for the caller to ignore.
        assert_eq!(
            decode(b"d8:msg_typei9e5:piecei0ee", Some(1)).unwrap(),
            MetadataMsg::Unknown(9)
        );
    }

    #[test]
    fn hostile_messages() {
        use MetadataError::*;
        let full = vec![0u8; METADATA_PIECE];
        // Piece beyond the metadata, negative, or beyond u32.
        assert!(matches!(
            decode(b"d8:msg_typei0e5:piecei1ee", Some(100)),
            Err(NoSuchPiece { piece: 1, count: 1 })
        ));
        assert!(matches!(
            decode(b"d8:msg_typei0e5:piecei-1ee", Some(100)),
            Err(NoSuchPiece { .. })
        ));
        assert!(matches!(
            decode(b"d8:msg_typei0e5:piecei4294967296ee", None),
            Err(NoSuchPiece { .. })
        ));
        assert!(matches!(
            decode(b"d8:msg_typei0e5:piecei512ee", None),
            Err(NoSuchPiece { .. })
        ));
        assert!(decode(b"d8:msg_typei0e5:piecei511ee", None).is_ok());
        // A lying total_size: not the announced one, negative, zero, or huge.
        assert!(matches!(
            decode(&data_msg(0, 101, &[0; 101]), Some(100)),
            Err(TotalSize {
                got: 101,
                expected: 100
            })
        ));
        assert!(matches!(
            decode(&data_msg(0, -1, &[]), Some(100)),
            Err(TotalSize { .. })
        ));
        assert!(matches!(
            decode(&data_msg(0, 0, &[]), None),
            Err(TotalSize { .. })
        ));
        assert!(matches!(
            decode(&data_msg(0, 1 << 40, &full), None),
            Err(TotalSize { .. })
        ));
        // total_size smaller than the piece index implies.
        assert!(matches!(
            decode(&data_msg(1, 100, &[0; 100]), None),
            Err(NoSuchPiece { .. })
        ));
        // Wrong piece lengths: short middle piece, long last piece, empty.
        let size = Some(2 * METADATA_PIECE as u64 + 5);
        let total = 2 * METADATA_PIECE as i64 + 5;
        assert!(matches!(
            decode(&data_msg(0, total, &full[1..]), size),
            Err(WrongSize { .. })
        ));
        assert!(decode(&data_msg(1, total, &full), size).is_ok());
        assert!(matches!(
            decode(&data_msg(2, total, &[0; 6]), size),
            Err(WrongSize { expected: 5, .. })
        ));
        assert!(matches!(
            decode(&data_msg(2, total, &[]), size),
            Err(WrongSize { .. })
        ));
        // Missing keys, wrong types, junk.
        assert!(matches!(decode(b"d5:piecei0ee", None), Err(Bencode(_))));
        assert!(matches!(decode(b"d8:msg_typei0ee", None), Err(Bencode(_))));
        assert!(matches!(
            decode(b"d8:msg_typei1e5:piecei0ee", None),
            Err(Bencode(_))
        ));
        assert!(matches!(decode(b"d8:msg_type1:0e", None), Err(Bencode(_))));
        assert!(matches!(decode(b"li0ee", None), Err(Bencode(_))));
        assert!(matches!(decode(b"", None), Err(Bencode(_))));
        assert!(matches!(
            decode(b"d8:msg_typei0e5:piecei0", None),
            Err(Bencode(_))
        ));
        assert!(matches!(
            decode(b"d8:msg_typei0e5:piecei0eexyz", None),
            Err(Trailing(3))
        ));
        // Truncations of a valid message never panic.
        let good = data_msg(0, 40, &[1; 40]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], None).is_err(), "cut {cut}");
        }
    }

    fn metadata(size: usize) -> (Vec<u8>, InfoHash) {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let hash = InfoHash(Sha1::digest(&bytes).into());
        (bytes, hash)
    }

    #[test]
    fn assembler_in_any_order_with_duplicates_and_wrong_sizes() {
        let (meta, hash) = metadata(3 * METADATA_PIECE + 10);
        let chunks: Vec<&[u8]> = meta.chunks(METADATA_PIECE).collect();
        let mut a = MetadataAssembler::new(meta.len() as u64).unwrap();
        assert_eq!(a.missing().collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(a.add(3, chunks[3], 'a'), Ok(Added::Stored));
        assert!(matches!(
            a.add(1, chunks[3], 'a'),
            Err(MetadataError::WrongSize { .. })
        ));
        assert!(matches!(
            a.add(3, chunks[0], 'a'),
            Err(MetadataError::WrongSize { .. })
        ));
        assert!(matches!(
            a.add(4, &[], 'a'),
            Err(MetadataError::NoSuchPiece { .. })
        ));
        assert!(matches!(
            a.add(u32::MAX, chunks[0], 'a'),
            Err(MetadataError::NoSuchPiece { .. })
        ));
        assert_eq!(a.add(1, chunks[1], 'b'), Ok(Added::Stored));
        assert_eq!(
            a.add(1, &vec![0; METADATA_PIECE], 'c'),
            Ok(Added::Duplicate)
        );
        assert_eq!(a.add(0, chunks[0], 'a'), Ok(Added::Stored));
        assert_eq!(a.finish(&hash), Ok(None));
        assert_eq!(a.missing().collect::<Vec<_>>(), [2]);
        assert_eq!(a.add(2, chunks[2], 'b'), Ok(Added::Complete));
        assert_eq!(a.sources(), ['a', 'b']);
        assert_eq!(a.finish(&hash), Ok(Some(meta)));
    }

    #[test]
    fn assembler_hash_mismatch_starts_over() {
        let (meta, hash) = metadata(100);
        let mut a = MetadataAssembler::new(100).unwrap();
        let mut bad = meta.clone();
        bad[50] ^= 1;
        assert_eq!(a.add(0, &bad, 1u64), Ok(Added::Complete));
        assert_eq!(a.sources(), [1]);
        assert_eq!(a.finish(&hash), Err(MetadataError::HashMismatch));
        assert!(!a.is_complete());
        assert!(a.sources().is_empty());
        assert_eq!(a.add(0, &meta, 2), Ok(Added::Complete));
        assert_eq!(a.finish(&hash), Ok(Some(meta)));
    }

    #[test]
    fn assembler_size_bounds() {
        assert!(matches!(
            MetadataAssembler::<u8>::new(0),
            Err(MetadataError::BadSize(0))
        ));
        assert!(MetadataAssembler::<u8>::new(MAX_METADATA_SIZE + 1).is_err());
        let a = MetadataAssembler::<u8>::new(MAX_METADATA_SIZE).unwrap();
        assert_eq!(a.missing().count(), 512);
        assert_eq!(piece_count(MAX_METADATA_SIZE), 512);
        assert_eq!(piece_len(100, 0), 100);
        assert_eq!(piece_len(100, 1), 0);
        assert_eq!(piece_len(u64::MAX, u32::MAX), METADATA_PIECE);
    }
}
