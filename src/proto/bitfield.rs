//! A set of piece indices as the wire carries it: bit 7 of byte 0 is piece 0.

/// A fixed-size bit set over `len` pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: usize,
    ones: usize,
}

/// Why a received bitfield was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// The byte count does not match the number of pieces.
    #[error("bitfield of {got} bytes for {pieces} pieces (expected {expected})")]
    WrongSize {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
        /// Pieces in the torrent.
        pieces: usize,
    },
    /// Bits past the last piece are set.
    #[error("bitfield has spare bits set past piece {0}")]
    SpareBits(usize),
}

impl Bitfield {
    /// An empty set over `len` pieces.
    pub fn new(len: usize) -> Bitfield {
        Bitfield {
            bytes: vec![0; len.div_ceil(8)],
            len,
            ones: 0,
        }
    }

    /// A full set over `len` pieces.
    pub fn full(len: usize) -> Bitfield {
        let mut b = Bitfield::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Parse a received bitfield for a torrent of `len` pieces: exact size, spare bits clear.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Result<Bitfield, BitfieldError> {
        let expected = len.div_ceil(8);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongSize {
                got: bytes.len(),
                expected,
                pieces: len,
            });
        }
        if !len.is_multiple_of(8) {
            let spare_mask = 0xffu8 >> (len % 8);
            if bytes[expected - 1] & spare_mask != 0 {
                return Err(BitfieldError::SpareBits(len));
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones() as usize).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of pieces the set ranges over.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the set ranges over no pieces.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether piece `i` is in the set (false when out of range).
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.bytes[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// Add piece `i`; returns true if it was not there. Out of range is ignored.
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[i / 8] |= 0x80 >> (i % 8);
        self.ones += 1;
        true
    }

    /// Remove piece `i`.
    pub fn clear(&mut self, i: usize) {
        if self.get(i) {
            self.bytes[i / 8] &= !(0x80 >> (i % 8));
            self.ones -= 1;
        }
    }

    /// Number of pieces in the set.
    pub fn count(&self) -> usize {
        self.ones
    }

    /// True when every piece is in the set.
    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// Indices in the set, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count_and_wire_bytes() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0) && b.set(9) && !b.set(9) && !b.set(10));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count(), 2);
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 9]);
        b.clear(0);
        assert!(!b.get(0) && b.count() == 1);
        assert!(Bitfield::full(10).is_full());
        assert_eq!(Bitfield::from_bytes(&[0xff, 0xc0], 10).unwrap().count(), 10);
    }

    #[test]
    fn rejects_wrong_size_and_spare_bits() {
        assert!(matches!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(BitfieldError::WrongSize { .. })
        ));
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xe0], 10),
            Err(BitfieldError::SpareBits(10))
        );
        assert!(Bitfield::from_bytes(&[0xff], 8).is_ok());
    }
}
