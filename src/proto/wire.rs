//! The peer wire protocol (BEP 3): the 68-byte handshake and length-prefixed messages.
//!
//! [`decode`] reads one frame from the front of a buffer without copying (`Ok(None)` means
//! "need more bytes"); every length is checked against [`FrameLimits`] before anything is trusted,
//! so a hostile peer cannot make us allocate or wait for a 4 GiB message.

use super::layout::BLOCK;

/// The protocol string of the handshake.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Bytes in a handshake.
pub const HANDSHAKE_LEN: usize = 68;

/// Message ids.
pub mod id {
    /// choke
    pub const CHOKE: u8 = 0;
    /// unchoke
    pub const UNCHOKE: u8 = 1;
    /// interested
    pub const INTERESTED: u8 = 2;
    /// not interested
    pub const NOT_INTERESTED: u8 = 3;
    /// have
    pub const HAVE: u8 = 4;
    /// bitfield
    pub const BITFIELD: u8 = 5;
    /// request
    pub const REQUEST: u8 = 6;
    /// piece
    pub const PIECE: u8 = 7;
    /// cancel
    pub const CANCEL: u8 = 8;
    /// suggest piece (BEP 6)
    pub const SUGGEST: u8 = 0x0D;
    /// have all (BEP 6)
    pub const HAVE_ALL: u8 = 0x0E;
    /// have none (BEP 6)
    pub const HAVE_NONE: u8 = 0x0F;
    /// reject request (BEP 6)
    pub const REJECT: u8 = 0x10;
    /// allowed fast (BEP 6)
    pub const ALLOWED_FAST: u8 = 0x11;
    /// extended (BEP 10): a sub-id byte, then that extension's payload
    pub const EXTENDED: u8 = 20;
}

/// Longest payload of an extended message after its sub-id byte: a 16 KiB metadata piece (BEP 9)
/// with its dictionary, or a peer exchange message of a few hundred addresses, fits; a 60 KB
/// list of 10,000 peers does not.
pub const MAX_EXTENDED_PAYLOAD: usize = 2 * BLOCK as usize;

/// The opening message of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Extension bits (see `proto::extension` for the ones we know).
    pub reserved: [u8; 8],
    /// The torrent.
    pub info_hash: [u8; 20],
    /// The sender's id.
    pub peer_id: [u8; 20],
}

/// Why bytes from a peer were refused. Any of these ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The handshake does not start with `\x13BitTorrent protocol`.
    #[error("not a BitTorrent handshake")]
    BadProtocol,
    /// A frame longer than any legal message.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Length announced.
        len: u32,
        /// Our limit.
        max: u32,
    },
    /// A message whose length does not fit its id.
    #[error("message id {id} with a payload of {len} bytes (expected {expected})")]
    BadLength {
        /// The message id.
        id: u8,
        /// Payload length received.
        len: usize,
        /// What the id requires.
        expected: &'static str,
    },
    /// A request or cancel for more than a block.
    #[error("request for {0} bytes (at most 16 KiB allowed)")]
    BlockTooLarge(u32),
}

impl Handshake {
    /// A handshake with no extension bits.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Handshake {
        Handshake {
            reserved: [0; 8],
            info_hash,
            peer_id,
        }
    }

    /// The 68 wire bytes.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// Parse 68 wire bytes.
    pub fn decode(b: &[u8; HANDSHAKE_LEN]) -> Result<Handshake, WireError> {
        if b[0] != 19 || &b[1..20] != PROTOCOL {
            return Err(WireError::BadProtocol);
        }
        let mut h = Handshake::new([0; 20], [0; 20]);
        h.reserved.copy_from_slice(&b[20..28]);
        h.info_hash.copy_from_slice(&b[28..48]);
        h.peer_id.copy_from_slice(&b[48..68]);
        Ok(h)
    }
}

/// A block address: piece index, offset in the piece, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// Piece index.
    pub index: u32,
    /// Offset inside the piece.
    pub begin: u32,
    /// Bytes.
    pub len: u32,
}

/// One peer wire message; payloads borrow from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Zero-length frame.
    KeepAlive,
    /// We will not serve you.
    Choke,
    /// We will serve you.
    Unchoke,
    /// We want something you have.
    Interested,
    /// We want nothing you have.
    NotInterested,
    /// We now have this piece.
    Have(u32),
    /// Every piece we have (raw bytes; check with `Bitfield::from_bytes`).
    Bitfield(&'a [u8]),
    /// Please send this block.
    Request(BlockRef),
    /// Here is a block.
    Piece {
        /// Piece index.
        index: u32,
        /// Offset inside the piece.
        begin: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// Never mind that request.
    Cancel(BlockRef),
    /// Suggest piece (BEP 6): a hint, which may be ignored.
    Suggest(u32),
    /// Have all (BEP 6): the sender is a seed; replaces the bitfield.
    HaveAll,
    /// Have none (BEP 6): the sender has nothing; replaces the bitfield.
    HaveNone,
    /// Reject request (BEP 6): this request will not be served.
    Reject(BlockRef),
    /// Allowed fast (BEP 6): this piece may be requested even while choked.
    AllowedFast(u32),
    /// Extended message (BEP 10): sub-id (0 = extension handshake) and payload, at most
    /// [`MAX_EXTENDED_PAYLOAD`] bytes.
    Extended {
        /// The extended message id.
        id: u8,
        /// The payload after the id.
        payload: &'a [u8],
    },
    /// A message id we do not implement (ignored, as BEP 3 allows).
    Unknown(u8),
}

/// Bounds for incoming frames, derived from the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Longest frame accepted (length prefix value).
    pub max_frame: u32,
}

impl FrameLimits {
    /// FrameLimits for a torrent of `pieces` pieces: the largest of a full-block `piece` message,
    /// a bitfield and an extended message (which also leaves room for unknown messages we skip).
    pub fn for_pieces(pieces: usize) -> FrameLimits {
        let bitfield = 1 + pieces.div_ceil(8) as u64;
        let piece = 9 + BLOCK as u64;
        let extended = 2 + MAX_EXTENDED_PAYLOAD as u64;
        FrameLimits {
            max_frame: bitfield.max(piece).max(extended).min(u32::MAX as u64) as u32,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decode the frame at the front of `buf`. `Ok(None)`: incomplete, read more. `Ok(Some((msg,
/// used)))`: a message and the bytes it took. `Err`: drop the peer.
pub fn decode(buf: &[u8], limits: FrameLimits) -> Result<Option<(Message<'_>, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32_at(buf, 0);
    if len > limits.max_frame {
        return Err(WireError::TooLong {
            len,
            max: limits.max_frame,
        });
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    if len == 0 {
        return Ok(Some((Message::KeepAlive, 4)));
    }
    let id = buf[4];
    let p = &buf[5..total];
    let exact = |n: usize, expected: &'static str| {
        if p.len() == n {
            Ok(())
        } else {
            Err(WireError::BadLength {
                id,
                len: p.len(),
                expected,
            })
        }
    };
    let block = |p: &[u8]| -> Result<BlockRef, WireError> {
        let b = BlockRef {
            index: u32_at(p, 0),
            begin: u32_at(p, 4),
            len: u32_at(p, 8),
        };
        if b.len > BLOCK {
            return Err(WireError::BlockTooLarge(b.len));
        }
        Ok(b)
    };
    let msg = match id {
        id::CHOKE => exact(0, "0").map(|_| Message::Choke)?,
        id::UNCHOKE => exact(0, "0").map(|_| Message::Unchoke)?,
        id::INTERESTED => exact(0, "0").map(|_| Message::Interested)?,
        id::NOT_INTERESTED => exact(0, "0").map(|_| Message::NotInterested)?,
        id::HAVE => exact(4, "4").map(|_| Message::Have(u32_at(p, 0)))?,
        id::BITFIELD => Message::Bitfield(p),
        id::REQUEST => {
            exact(12, "12")?;
            Message::Request(block(p)?)
        }
        id::CANCEL => {
            exact(12, "12")?;
            Message::Cancel(block(p)?)
        }
        id::SUGGEST => exact(4, "4").map(|_| Message::Suggest(u32_at(p, 0)))?,
        id::HAVE_ALL => exact(0, "0").map(|_| Message::HaveAll)?,
        id::HAVE_NONE => exact(0, "0").map(|_| Message::HaveNone)?,
        id::REJECT => {
            exact(12, "12")?;
            Message::Reject(block(p)?)
        }
        id::ALLOWED_FAST => exact(4, "4").map(|_| Message::AllowedFast(u32_at(p, 0)))?,
        id::EXTENDED => {
            if p.is_empty() || p.len() - 1 > MAX_EXTENDED_PAYLOAD {
                return Err(WireError::BadLength {
                    id,
                    len: p.len(),
                    expected: "1 + up to 32 KiB",
                });
            }
            Message::Extended {
                id: p[0],
                payload: &p[1..],
            }
        }
        id::PIECE => {
            if p.len() < 8 || p.len() - 8 > BLOCK as usize {
                return Err(WireError::BadLength {
                    id,
                    len: p.len(),
                    expected: "8 + up to 16 KiB",
                });
            }
            Message::Piece {
                index: u32_at(p, 0),
                begin: u32_at(p, 4),
                data: &p[8..],
            }
        }
        other => Message::Unknown(other),
    };
    Ok(Some((msg, total)))
}

/// Append the encoding of `msg` to `out`.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) {
    let simple = |out: &mut Vec<u8>, id: u8| {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.push(id);
    };
    let with_block = |out: &mut Vec<u8>, id: u8, b: &BlockRef| {
        out.extend_from_slice(&13u32.to_be_bytes());
        out.push(id);
        out.extend_from_slice(&b.index.to_be_bytes());
        out.extend_from_slice(&b.begin.to_be_bytes());
        out.extend_from_slice(&b.len.to_be_bytes());
    };
    let with_index = |out: &mut Vec<u8>, id: u8, i: u32| {
        out.extend_from_slice(&5u32.to_be_bytes());
        out.push(id);
        out.extend_from_slice(&i.to_be_bytes());
    };
    match msg {
        Message::KeepAlive => out.extend_from_slice(&0u32.to_be_bytes()),
        Message::Choke => simple(out, id::CHOKE),
        Message::Unchoke => simple(out, id::UNCHOKE),
        Message::Interested => simple(out, id::INTERESTED),
        Message::NotInterested => simple(out, id::NOT_INTERESTED),
        Message::Have(i) => with_index(out, id::HAVE, *i),
        Message::Bitfield(bits) => {
            out.extend_from_slice(&(1 + bits.len() as u32).to_be_bytes());
            out.push(id::BITFIELD);
            out.extend_from_slice(bits);
        }
        Message::Request(b) => with_block(out, id::REQUEST, b),
        Message::Cancel(b) => with_block(out, id::CANCEL, b),
        Message::Piece { index, begin, data } => {
            out.extend_from_slice(&piece_header(*index, *begin, data.len()));
            out.extend_from_slice(data);
        }
        Message::Suggest(i) => with_index(out, id::SUGGEST, *i),
        Message::HaveAll => simple(out, id::HAVE_ALL),
        Message::HaveNone => simple(out, id::HAVE_NONE),
        Message::Reject(b) => with_block(out, id::REJECT, b),
        Message::AllowedFast(i) => with_index(out, id::ALLOWED_FAST, *i),
        Message::Extended { id: sub, payload } => {
            out.extend_from_slice(&(2 + payload.len() as u32).to_be_bytes());
            out.push(id::EXTENDED);
            out.push(*sub);
            out.extend_from_slice(payload);
        }
        // Never sent: we only ever decode unknown ids.
        Message::Unknown(_) => {}
    }
}

/// The 13-byte header of a `piece` message carrying `len` bytes (the data follows it), so a
/// sender can write header and data without joining them first.
pub fn piece_header(index: u32, begin: u32, len: usize) -> [u8; 13] {
    let mut h = [0u8; 13];
    h[0..4].copy_from_slice(&(9 + len as u32).to_be_bytes());
    h[4] = id::PIECE;
    h[5..9].copy_from_slice(&index.to_be_bytes());
    h[9..13].copy_from_slice(&begin.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<Message<'static>> {
        let b = BlockRef {
            index: 7,
            begin: 16384,
            len: 16384,
        };
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(0xdead_beef),
            Message::Bitfield(&[0xff, 0x80]),
            Message::Request(b),
            Message::Cancel(b),
            Message::Piece {
                index: 3,
                begin: 0,
                data: b"hello",
            },
            Message::Suggest(9),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject(b),
            Message::AllowedFast(0x0102_0304),
            Message::Extended {
                id: 0,
                payload: b"d1:md6:ut_pexi1eee",
            },
            Message::Extended {
                id: 3,
                payload: b"",
            },
        ]
    }

    #[test]
    fn every_message_round_trips_at_every_split() {
        let limits = FrameLimits::for_pieces(16);
        let mut stream = Vec::new();
        for m in all_messages() {
            encode(&m, &mut stream);
        }
        // Feed the stream cut at every position: the decoder must wait, never misparse.
        for cut in 0..=stream.len() {
            let mut got = Vec::new();
            let mut pos = 0;
            let mut buf = stream[..cut].to_vec();
            loop {
                match decode(&buf[pos..], limits).unwrap() {
                    Some((m, used)) => {
                        let mut again = Vec::new();
                        encode(&m, &mut again);
                        got.push(again);
                        pos += used;
                    }
                    None if buf.len() < stream.len() => buf = stream.clone(),
                    None => break,
                }
            }
            assert_eq!(got.concat(), stream, "cut at {cut}");
        }
    }

    #[test]
    fn handshake_round_trip_and_bad_protocol() {
        let h = Handshake::new([1; 20], [2; 20]);
        let bytes = h.encode();
        assert_eq!(Handshake::decode(&bytes).unwrap(), h);
        let mut bad = bytes;
        bad[3] = b'x';
        assert_eq!(Handshake::decode(&bad), Err(WireError::BadProtocol));
    }

    #[test]
    fn hostile_lengths_are_refused_before_reading_them() {
        let limits = FrameLimits::for_pieces(100);
        // A 4 GiB claim: refused from the 4-byte prefix alone.
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff, 0xff], limits),
            Err(WireError::TooLong { .. })
        ));
        // request for more than a block
        let mut out = Vec::new();
        encode(
            &Message::Request(BlockRef {
                index: 0,
                begin: 0,
                len: BLOCK + 1,
            }),
            &mut out,
        );
        assert_eq!(
            decode(&out, limits),
            Err(WireError::BlockTooLarge(BLOCK + 1))
        );
        // have with a short payload
        assert!(matches!(
            decode(&[0, 0, 0, 3, id::HAVE, 0, 0], limits),
            Err(WireError::BadLength { .. })
        ));
        // choke with a payload
        assert!(matches!(
            decode(&[0, 0, 0, 2, id::CHOKE, 0], limits),
            Err(WireError::BadLength { .. })
        ));
        // piece too short for its header
        assert!(matches!(
            decode(&[0, 0, 0, 5, id::PIECE, 0, 0, 0, 0], limits),
            Err(WireError::BadLength { .. })
        ));
        // unknown ids are skipped, not fatal
        assert_eq!(
            decode(&[0, 0, 0, 2, 21, 9], limits).unwrap(),
            Some((Message::Unknown(21), 6))
        );
    }

    #[test]
    fn fast_and_extended_reference_bytes_and_exact_lengths() {
        let limits = FrameLimits::for_pieces(100);
        let enc = |m: Message<'_>| {
            let mut out = Vec::new();
            encode(&m, &mut out);
            out
        };
        // BEP 6 and BEP 10 layouts, byte for byte.
        assert_eq!(enc(Message::HaveAll), [0, 0, 0, 1, 0x0E]);
        assert_eq!(enc(Message::HaveNone), [0, 0, 0, 1, 0x0F]);
        assert_eq!(enc(Message::Suggest(7)), [0, 0, 0, 5, 0x0D, 0, 0, 0, 7]);
        assert_eq!(enc(Message::AllowedFast(7)), [0, 0, 0, 5, 0x11, 0, 0, 0, 7]);
        let b = BlockRef {
            index: 1,
            begin: 2,
            len: 3,
        };
        assert_eq!(
            enc(Message::Reject(b)),
            [0, 0, 0, 13, 0x10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
        );
        assert_eq!(
            enc(Message::Extended {
                id: 0,
                payload: b"de"
            }),
            [0, 0, 0, 4, 20, 0, b'd', b'e']
        );
        // Each id with one byte too many or too few is refused.
        for (id, len) in [
            (0x0Du8, 4usize),
            (0x0E, 0),
            (0x0F, 0),
            (0x10, 12),
            (0x11, 4),
        ] {
            for wrong in [len.wrapping_sub(1), len + 1] {
                if wrong > 13 {
                    continue;
                }
                let mut frame = (1 + wrong as u32).to_be_bytes().to_vec();
                frame.push(id);
                frame.resize(5 + wrong, 0);
                assert!(
                    matches!(decode(&frame, limits), Err(WireError::BadLength { .. })),
                    "id {id} with {wrong} bytes"
                );
            }
        }
        // A reject for more than a block, an extended message with no sub-id or too long.
        let big = BlockRef {
            len: BLOCK + 1,
            ..b
        };
        assert_eq!(
            decode(&enc(Message::Reject(big)), limits),
            Err(WireError::BlockTooLarge(BLOCK + 1))
        );
        assert!(matches!(
            decode(&[0, 0, 0, 1, 20], limits),
            Err(WireError::BadLength { .. })
        ));
        let payload = vec![0u8; MAX_EXTENDED_PAYLOAD];
        let ok = enc(Message::Extended {
            id: 1,
            payload: &payload,
        });
        assert!(ok.len() - 4 <= limits.max_frame as usize);
        assert!(decode(&ok, limits).unwrap().is_some());
        let mut huge = FrameLimits::for_pieces(10_000_000);
        huge.max_frame = huge.max_frame.max(1 << 20);
        let payload = vec![0u8; MAX_EXTENDED_PAYLOAD + 1];
        let long = enc(Message::Extended {
            id: 1,
            payload: &payload,
        });
        assert!(matches!(
            decode(&long, huge),
            Err(WireError::BadLength { .. })
        ));
        assert!(matches!(
            decode(&long, limits),
            Err(WireError::TooLong { .. })
        ));
    }

    #[test]
    fn limits_cover_a_large_bitfield() {
        let l = FrameLimits::for_pieces(1_000_000);
        assert_eq!(l.max_frame, 1 + 125_000);
        assert_eq!(
            FrameLimits::for_pieces(1).max_frame,
            2 + MAX_EXTENDED_PAYLOAD as u32
        );
    }
}
