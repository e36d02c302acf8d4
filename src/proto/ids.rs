//! The two 20-byte identities of BitTorrent: a torrent's info-hash and a peer's id, as types
//! so that a signature says which of the two it takes.

use std::fmt;

/// A 20-byte SHA-1 info-hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Lower-case hex, 40 characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse 40 hex digits.
    pub fn from_hex(s: &str) -> Option<InfoHash> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s.trim(), &mut out).ok()?;
        Some(InfoHash(out))
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.hex())
    }
}

/// A peer's 20-byte id, as sent in its handshake (BEP 3; Azureus style `-BT0001-` + 12 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// The id as text, by one rule everywhere bt prints one: printable ASCII as it is; an
    /// Azureus-style prefix (`-XX1234-`) followed by binary bytes as the prefix plus hex; anything
    /// else as 40 hex digits. Never contains a control character.
    pub fn text(&self) -> String {
        let id = &self.0;
        if id.iter().all(|b| b.is_ascii_graphic()) {
            String::from_utf8_lossy(id).into_owned()
        } else if id[0] == b'-'
            && id[7] == b'-'
            && id[1..7].iter().all(|b| b.is_ascii_alphanumeric())
        {
            format!(
                "{}{}",
                String::from_utf8_lossy(&id[..8]),
                hex::encode(&id[8..])
            )
        } else {
            hex::encode(id)
        }
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_text_one_rule() {
        assert_eq!(
            PeerId(*b"-TR3000-abcdefghijkl").text(),
            "-TR3000-abcdefghijkl"
        );
        let mut id = *b"-LT2080-000000000000";
        id[8..].copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xfe, 0xff]);
        assert_eq!(PeerId(id).text(), "-LT2080-00010203040506070809feff");
        assert_eq!(PeerId([0x1b; 20]).text(), "1b".repeat(20));
        assert_eq!(
            PeerId([b' '; 20]).text(),
            "20".repeat(20),
            "a space is not graphic"
        );
    }

    #[test]
    fn info_hash_hex_round_trip() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(InfoHash::from_hex(&h.hex()), Some(h));
        assert_eq!(InfoHash::from_hex("zz"), None);
    }
}
