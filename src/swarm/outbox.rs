//! Bytes waiting to go out on one connection, written with one `writev` per batch. Block data
//! is not copied: it is borrowed from the cached piece, and only the 13-byte headers and other
//! small messages are copied into a buffer. (A `BufWriter` copied every block once more, 7% of
//! a seeder's CPU.)

use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::Arc;

use futures::io::{AsyncWrite, AsyncWriteExt};

use super::cache::PieceBuf;

/// Most slices given to one `writev` (Linux allows 1024).
const MAX_SLICES: usize = 256;

enum Part {
    /// A range of `small`.
    Small(Range<usize>),
    /// A range of a piece.
    Block(Arc<PieceBuf>, Range<usize>),
}

/// Queued output: small messages copied, blocks borrowed.
#[derive(Default)]
pub struct Outbox {
    small: Vec<u8>,
    parts: Vec<Part>,
    len: usize,
}

impl Outbox {
    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Queue a copy of `bytes`.
    pub fn push_small(&mut self, bytes: &[u8]) {
        let start = self.small.len();
        self.small.extend_from_slice(bytes);
        match self.parts.last_mut() {
            Some(Part::Small(r)) if r.end == start => r.end = self.small.len(),
            _ => self.parts.push(Part::Small(start..self.small.len())),
        }
        self.len += bytes.len();
    }

    /// Queue `range` of `piece` without copying it. `range` must lie inside `piece`.
    pub fn push_block(&mut self, piece: Arc<PieceBuf>, range: Range<usize>) {
        debug_assert!(range.end <= piece.len());
        self.len += range.len();
        self.parts.push(Part::Block(piece, range));
    }

    /// Write everything queued, then empty the box.
    pub async fn flush<W: AsyncWrite + Unpin>(&mut self, out: &mut W) -> io::Result<()> {
        let mut written = 0;
        while written < self.len {
            let n = out.write_vectored(&self.slices(written)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            written += n;
        }
        self.small.clear();
        self.parts.clear();
        self.len = 0;
        Ok(())
    }

    /// Slices of what is left after the first `skip` bytes.
    fn slices(&self, mut skip: usize) -> Vec<IoSlice<'_>> {
        let mut out = Vec::with_capacity(self.parts.len().min(MAX_SLICES));
        for part in &self.parts {
            let bytes = match part {
                Part::Small(r) => &self.small[r.clone()],
                Part::Block(piece, r) => &piece[r.clone()],
            };
            if skip >= bytes.len() {
                skip -= bytes.len();
                continue;
            }
            out.push(IoSlice::new(&bytes[skip..]));
            skip = 0;
            if out.len() == MAX_SLICES {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Accepts at most `step` bytes per write, to exercise partial writes.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.step - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A box with many small and block parts, and the bytes it must write.
    fn filled() -> (Outbox, Vec<u8>) {
        let piece = Arc::new(PieceBuf::uncounted(
            (0..=255u8).cycle().take(5000).collect::<Vec<u8>>(),
        ));
        let mut want = Vec::new();
        let mut o = Outbox::default();
        for k in 0..300 {
            // more parts than one writev takes
            o.push_small(&[k as u8, 0xAA]);
            want.extend_from_slice(&[k as u8, 0xAA]);
            if k % 3 == 0 {
                o.push_small(b"xyz"); // merges with the previous small part
                want.extend_from_slice(b"xyz");
            }
            let r = (k * 7) % 4000..(k * 7) % 4000 + 1000;
            want.extend_from_slice(&piece[r.clone()]);
            o.push_block(Arc::clone(&piece), r);
        }
        (o, want)
    }

    #[test]
    fn partial_writes_keep_order_and_bytes() {
        for step in [7, 1000, 1 << 20] {
            let (mut o, want) = filled();
            assert_eq!(o.len(), want.len());
            let mut w = Trickle {
                got: Vec::new(),
                step,
            };
            crate::rt::block_on(o.flush(&mut w)).unwrap();
            assert_eq!(w.got, want, "step {step}");
            assert_eq!(o.len(), 0);
        }
    }
}
