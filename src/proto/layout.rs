//! Where the bytes of a torrent live: pieces and 16 KiB blocks mapped onto the files.
//!
//! A torrent is one long byte string cut into pieces; the files are laid end to end along it, so
//! a piece (or a block) may cross file boundaries and zero-length files take no room at all.

/// The size of a block, the unit of `request` and `piece` messages (16 KiB, what every client
/// sends and most accept as a maximum).
pub const BLOCK: u32 = 16 * 1024;

/// Part of a read or write that falls in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of the file in the torrent's file list.
    pub file: usize,
    /// Offset inside that file.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// The piece and file geometry of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    piece_length: u64,
    total: u64,
    /// (start offset in the torrent, length) of every file, in torrent order.
    files: Vec<(u64, u64)>,
}

impl Layout {
    /// Build the layout of files with these lengths. Returns `None` when the piece length is 0
    /// or the total overflows.
    pub fn new(piece_length: u64, lengths: impl IntoIterator<Item = u64>) -> Option<Layout> {
        if piece_length == 0 || piece_length > u32::MAX as u64 {
            return None;
        }
        let mut total = 0u64;
        let mut files = Vec::new();
        for len in lengths {
            files.push((total, len));
            total = total.checked_add(len)?;
        }
        Some(Layout {
            piece_length,
            total,
            files,
        })
    }

    /// Total bytes of the torrent.
    pub fn total_length(&self) -> u64 {
        self.total
    }

    /// Nominal piece length.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Number of pieces (the last may be short).
    pub fn piece_count(&self) -> usize {
        self.total.div_ceil(self.piece_length) as usize
    }

    /// Length of file `i`.
    pub fn file_length(&self, i: usize) -> u64 {
        self.files[i].1
    }

    /// Offset of piece `index` in the torrent.
    pub fn piece_offset(&self, index: usize) -> u64 {
        index as u64 * self.piece_length
    }

    /// Size of piece `index` (0 when out of range).
    pub fn piece_size(&self, index: usize) -> u32 {
        let start = self.piece_offset(index);
        if start >= self.total {
            return 0;
        }
        (self.total - start).min(self.piece_length) as u32
    }

    /// Number of blocks in piece `index`.
    pub fn block_count(&self, index: usize) -> u32 {
        self.piece_size(index).div_ceil(BLOCK)
    }

    /// Size of block `block` of piece `index` (0 when out of range).
    pub fn block_size(&self, index: usize, block: u32) -> u32 {
        let size = self.piece_size(index);
        let start = block.saturating_mul(BLOCK);
        if start >= size {
            return 0;
        }
        (size - start).min(BLOCK)
    }

    /// Whether `begin..begin+len` is a valid range inside piece `index`.
    pub fn contains(&self, index: usize, begin: u32, len: u32) -> bool {
        let size = self.piece_size(index) as u64;
        len > 0 && (begin as u64 + len as u64) <= size
    }

    /// The file spans that hold `len` bytes at torrent offset `offset`, in order. Zero-length
    /// files are skipped. A range past the end yields only the part inside the torrent.
    pub fn spans(&self, offset: u64, len: u64) -> Vec<Span> {
        let end = offset.saturating_add(len).min(self.total);
        let mut out = Vec::new();
        // First file whose end is past `offset`.
        let first = self
            .files
            .partition_point(|&(start, flen)| start + flen <= offset);
        for (file, &(start, flen)) in self.files.iter().enumerate().skip(first) {
            if start >= end {
                break;
            }
            if flen == 0 {
                continue;
            }
            let from = offset.max(start);
            let to = end.min(start + flen);
            if to > from {
                out.push(Span {
                    file,
                    offset: from - start,
                    len: to - from,
                });
            }
        }
        out
    }

    /// The file spans of piece `index`.
    pub fn piece_spans(&self, index: usize) -> Vec<Span> {
        self.spans(self.piece_offset(index), self.piece_size(index) as u64)
    }

    /// The range of pieces that touch file `i` (empty for a zero-length file).
    pub fn pieces_of_file(&self, i: usize) -> std::ops::Range<usize> {
        let (start, len) = self.files[i];
        if len == 0 {
            return 0..0;
        }
        let first = (start / self.piece_length) as usize;
        let last = ((start + len - 1) / self.piece_length) as usize;
        first..last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cross_files_and_skip_empty_ones() {
        // files: 10, 0, 5, 20 bytes; pieces of 8
        let l = Layout::new(8, [10, 0, 5, 20]).unwrap();
        assert_eq!(l.total_length(), 35);
        assert_eq!(l.piece_count(), 5);
        assert_eq!(l.piece_size(4), 3);
        assert_eq!(l.piece_size(5), 0);
        assert_eq!(
            l.piece_spans(1),
            vec![
                Span {
                    file: 0,
                    offset: 8,
                    len: 2
                },
                Span {
                    file: 2,
                    offset: 0,
                    len: 5
                },
                Span {
                    file: 3,
                    offset: 0,
                    len: 1
                },
            ]
        );
        assert_eq!(
            l.piece_spans(4),
            vec![Span {
                file: 3,
                offset: 17,
                len: 3
            }]
        );
        assert_eq!(l.pieces_of_file(1), 0..0);
        assert_eq!(l.pieces_of_file(2), 1..2);
        assert_eq!(l.pieces_of_file(3), 1..5);
        // every byte is covered exactly once
        let covered: u64 = (0..l.piece_count())
            .flat_map(|p| l.piece_spans(p))
            .map(|s| s.len)
            .sum();
        assert_eq!(covered, 35);
    }

    #[test]
    fn blocks() {
        let l = Layout::new(40_000, [100_000]).unwrap();
        assert_eq!(l.block_count(0), 3);
        assert_eq!(l.block_size(0, 2), 40_000 - 2 * BLOCK);
        assert_eq!(l.block_size(0, 3), 0);
        assert_eq!(l.piece_size(2), 20_000);
        assert!(l.contains(2, 0, 20_000));
        assert!(!l.contains(2, 1, 20_000));
        assert!(!l.contains(2, 0, 0));
        assert!(!l.contains(9, 0, 1));
    }

    #[test]
    fn rejects_zero_piece_length_and_overflow() {
        assert!(Layout::new(0, [1]).is_none());
        assert!(Layout::new(1, [u64::MAX, 1]).is_none());
    }
}
