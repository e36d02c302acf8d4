//! A torrent's bytes on disk: positional reads and writes through the file table.
//!
//! Files are opened lazily, once, and shared by every task (`pread`/`pwrite` need no seek, so
//! one handle serves concurrent readers). Paths come from a validated [`Metainfo`], so they
//! cannot leave the root folder. Every I/O error names the file or folder it happened on.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::proto::layout::Layout;
use crate::proto::metainfo::Metainfo;

/// Whether files may be created and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open existing files for reading only (seeding a complete torrent, hashing).
    ReadOnly,
    /// Create folders and files on demand, read and write.
    ReadWrite,
}

/// The files of one torrent under a root folder.
#[derive(Debug)]
pub struct Storage {
    layout: Layout,
    paths: Vec<PathBuf>,
    handles: Vec<OnceLock<File>>,
    access: Access,
}

impl Storage {
    /// The storage of `meta` under `root` (the profile folder).
    pub fn new(root: &Path, meta: &Metainfo, access: Access) -> Storage {
        let paths = (0..meta.info.files.len())
            .map(|i| root.join(meta.relative_path(i)))
            .collect();
        Storage::from_paths(paths, meta.layout(), access)
    }

    /// Storage over explicit file paths (used by `bt create` on the source files).
    pub fn from_paths(paths: Vec<PathBuf>, layout: Layout, access: Access) -> Storage {
        let handles = paths.iter().map(|_| OnceLock::new()).collect();
        Storage {
            layout,
            paths,
            handles,
            access,
        }
    }

    /// The piece geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Path of file `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.paths[i]
    }

    fn file(&self, i: usize) -> io::Result<&File> {
        if let Some(f) = self.handles[i].get() {
            return Ok(f);
        }
        let path = &self.paths[i];
        let file = match self.access {
            Access::ReadOnly => File::open(path),
            Access::ReadWrite => {
                if let Some(dir) = path.parent() {
                    create_folder(dir)?;
                }
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
            }
        }
        .map_err(|e| with_path(e, path))?;
        // Another thread may have opened it meanwhile; either handle is fine.
        let _ = self.handles[i].set(file);
        Ok(self.handles[i].get().expect("just set"))
    }

    /// Fill `buf` from torrent offset `offset`. A missing or short file is an error
    /// (`NotFound` / `UnexpectedEof`).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0usize;
        for span in self.layout.spans(offset, buf.len() as u64) {
            let part = &mut buf[done..done + span.len as usize];
            self.file(span.file)?
                .read_exact_at(part, span.offset)
                .map_err(|e| with_path(e, &self.paths[span.file]))?;
            done += span.len as usize;
        }
        if done != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the torrent",
            ));
        }
        Ok(())
    }

    /// Write `data` at torrent offset `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.access == Access::ReadOnly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "storage is read-only",
            ));
        }
        let mut done = 0usize;
        for span in self.layout.spans(offset, data.len() as u64) {
            let part = &data[done..done + span.len as usize];
            self.file(span.file)?
                .write_all_at(part, span.offset)
                .map_err(|e| with_path(e, &self.paths[span.file]))?;
            done += span.len as usize;
        }
        Ok(())
    }

    /// Before a download: create the folders of every file and open the files already there
    /// for writing, so that a folder or file bt may not write to is reported at once, naming
    /// it, rather than when the first piece arrives. Missing files are still created on their
    /// first write.
    pub fn prepare(&self) -> io::Result<()> {
        if self.access == Access::ReadOnly {
            return Ok(());
        }
        for (i, path) in self.paths.iter().enumerate() {
            match path.try_exists() {
                Ok(true) => {
                    self.file(i)?;
                }
                _ => {
                    if let Some(dir) = path.parent() {
                        create_folder(dir)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Read piece `index` into `buf` (resized to the piece size).
    pub fn read_piece(&self, index: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(self.layout.piece_size(index) as usize, 0);
        self.read(self.layout.piece_offset(index), buf)
    }

    /// Make sure every file exists with its full length (zero-length files have no piece that
    /// would create them; a sparse tail is extended). Used when a download completes.
    pub fn finish_files(&self) -> io::Result<()> {
        for i in 0..self.paths.len() {
            let want = self.layout.file_length(i);
            let f = self.file(i)?;
            let path = &self.paths[i];
            if f.metadata().map_err(|e| with_path(e, path))?.len() != want {
                f.set_len(want).map_err(|e| with_path(e, path))?;
            }
        }
        Ok(())
    }
}

/// `create_dir_all`, with the folder in the error.
fn create_folder(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot create folder {}: {e}", dir.display()),
        )
    })
}

/// `e` prefixed with `path` (its kind kept).
fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_across_files_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![
            dir.path().join("a"),
            dir.path().join("empty"),
            dir.path().join("sub/b"),
        ];
        let layout = Layout::new(4, [5, 0, 6]).unwrap();
        let s = Storage::from_paths(paths.clone(), layout.clone(), Access::ReadWrite);
        s.write(3, b"hello!!").unwrap();
        let mut buf = [0u8; 7];
        s.read(3, &mut buf).unwrap();
        assert_eq!(&buf, b"hello!!");
        assert_eq!(std::fs::read(&paths[0]).unwrap(), b"\0\0\0he");
        assert_eq!(std::fs::read(&paths[2]).unwrap(), b"llo!!");
        s.finish_files().unwrap();
        assert_eq!(std::fs::metadata(&paths[1]).unwrap().len(), 0);
        assert_eq!(std::fs::metadata(&paths[2]).unwrap().len(), 6);

        let ro = Storage::from_paths(paths, layout, Access::ReadOnly);
        assert!(ro.write(0, b"x").is_err());
        let mut piece = Vec::new();
        ro.read_piece(2, &mut piece).unwrap();
        assert_eq!(piece, b"!!\0");
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::from_paths(
            vec![dir.path().join("nope")],
            Layout::new(4, [8]).unwrap(),
            Access::ReadOnly,
        );
        let mut buf = [0u8; 4];
        assert_eq!(
            s.read(0, &mut buf).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
