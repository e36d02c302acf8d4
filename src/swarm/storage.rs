//! A torrent's bytes on disk: positional reads and writes through the file table.
//!
//! Files are opened on demand through the process's bounded [`FilePool`], so a torrent may have
//! more files than the process may keep open; a handle is shared by every task (`pread`/`pwrite`
//! need no seek). Paths come from a validated [`Metainfo`], so they cannot leave the root
//! folder by name; a storage made with [`Storage::new`] also refuses to write through a
//! symbolic link that leads outside its root folder (see [`Storage::prepare`]). Every I/O error
//! names the file or folder it happened on.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::files::FilePool;
use crate::proto::layout::Layout;
use crate::proto::metainfo::Metainfo;

/// Whether files may be created and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open existing files for reading only (seeding a complete torrent, hashing). Writes no
    /// byte of data; [`Storage::prepare`] still creates missing zero-length files.
    ReadOnly,
    /// Create folders and files on demand, read and write.
    ReadWrite,
}

/// The files of one torrent under a root folder.
#[derive(Debug)]
pub struct Storage {
    layout: Layout,
    paths: Vec<PathBuf>,
    access: Access,
    /// The folder the files must stay in (`None` for [`Storage::from_paths`]).
    root: Option<PathBuf>,
    /// Folders already found free of links out of `root` (checked once each).
    safe_dirs: Mutex<HashSet<PathBuf>>,
    pool: &'static FilePool,
    /// This storage's key in the pool.
    owner: u64,
    /// Files chosen for download (`None`: all): the others are not created or extended; only
    /// the pieces they share with a chosen file write into them.
    chosen: Option<Vec<bool>>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.pool.forget(self.owner);
    }
}

impl Storage {
    /// The storage of `meta` under `root` (the profile folder). Nothing is written through a
    /// symbolic link that leads out of `root`.
    pub fn new(root: &Path, meta: &Metainfo, access: Access) -> Storage {
        let paths = (0..meta.info.files.len())
            .map(|i| root.join(meta.relative_path(i)))
            .collect();
        let mut s = Storage::from_paths(paths, meta.layout(), access);
        s.root = Some(root.to_path_buf());
        s
    }

    /// Storage over explicit file paths (used by `bt create` on the source files); no root
    /// folder, so symbolic links are followed anywhere.
    pub fn from_paths(paths: Vec<PathBuf>, layout: Layout, access: Access) -> Storage {
        Storage {
            layout,
            paths,
            access,
            root: None,
            safe_dirs: Mutex::new(HashSet::new()),
            pool: FilePool::global(),
            owner: FilePool::new_owner(),
            chosen: None,
        }
    }

    /// Only the files flagged in `chosen` are downloaded (see the field's doc).
    pub fn choose(mut self, chosen: Option<Vec<bool>>) -> Storage {
        self.chosen = chosen.filter(|c| c.len() == self.paths.len());
        self
    }

    fn is_chosen(&self, i: usize) -> bool {
        self.chosen.as_ref().is_none_or(|c| c[i])
    }

    /// The piece geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Path of file `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.paths[i]
    }

    /// File `i`, from the pool or opened now.
    fn file(&self, i: usize) -> io::Result<Arc<File>> {
        self.pool.get(self.owner, i, || self.open(i))
    }

    /// Open file `i` (creating it and its folders for [`Access::ReadWrite`]).
    fn open(&self, i: usize) -> io::Result<File> {
        let path = &self.paths[i];
        match self.access {
            Access::ReadOnly => File::open(path).map_err(|e| with_path(e, path)),
            Access::ReadWrite => {
                self.make_parent(path)?;
                self.check_link(path)?;
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|e| with_path(e, path))
            }
        }
    }

    /// Create the folder of `path`, after checking that none of its existing components is a
    /// link out of the root folder.
    fn make_parent(&self, path: &Path) -> io::Result<()> {
        let Some(dir) = path.parent() else {
            return Ok(());
        };
        if self.lock_dirs().contains(dir) {
            return Ok(());
        }
        if let Some(root) = &self.root {
            // Every component between the root and the file, outermost first.
            let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
            let mut at = root.clone();
            for c in rel.components() {
                at.push(c);
                self.check_link(&at)?;
            }
        }
        create_folder(dir)?;
        self.lock_dirs().insert(dir.to_path_buf());
        Ok(())
    }

    fn lock_dirs(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.safe_dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An error if `path` is a symbolic link that leads out of the root folder (or nowhere).
    fn check_link(&self, path: &Path) -> io::Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {}
            _ => return Ok(()),
        }
        let real_root = std::fs::canonicalize(root).map_err(|e| with_path(e, root))?;
        match std::fs::canonicalize(path) {
            Ok(target) if target.starts_with(&real_root) => Ok(()),
            Ok(target) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symbolic link to {}, outside the folder {}; bt does not write through it",
                    path.display(),
                    target.display(),
                    root.display()
                ),
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symbolic link that leads nowhere; bt does not write through it",
                    path.display()
                ),
            )),
        }
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

    /// Before a download or seeding. With [`Access::ReadWrite`]: create the folders of every
    /// file and open the files already there for writing, so that a folder or file bt may not
    /// write to, or a symbolic link out of the root folder, is reported at once, naming it,
    /// rather than when the first piece arrives; missing files are created on their first
    /// write. Files not chosen (see [`Storage::choose`]) are left alone. In both modes: create
    /// the missing zero-length files, which no piece would ever
    /// create (read-only: best effort, a failure is logged, since peers do not need them).
    pub fn prepare(&self) -> io::Result<()> {
        for (i, path) in self.paths.iter().enumerate() {
            if !self.is_chosen(i) {
                continue;
            }
            let empty = self.layout.file_length(i) == 0;
            // `symlink_metadata`: a dangling link counts as there (and is not written through).
            let exists = std::fs::symlink_metadata(path).is_ok();
            match self.access {
                Access::ReadWrite => {
                    self.make_parent(path)?;
                    self.check_link(path)?;
                    if exists {
                        // Not kept open: only whether we may write matters here.
                        OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(|e| with_path(e, path))?;
                    } else if empty {
                        create_empty(path)?;
                    }
                }
                Access::ReadOnly if empty && !exists => {
                    let made = self.make_parent(path).and_then(|()| create_empty(path));
                    if let Err(e) = made {
                        log::warn!("cannot create an empty file of the torrent: {e}");
                    }
                }
                Access::ReadOnly => {}
            }
        }
        Ok(())
    }

    /// Read piece `index` into `buf` (resized to the piece size).
    pub fn read_piece(&self, index: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(self.layout.piece_size(index) as usize, 0);
        self.read(self.layout.piece_offset(index), buf)
    }

    /// Make sure every chosen file exists with its full length (zero-length files have no
    /// piece that would create them; a sparse tail is extended). Used when a download
    /// completes.
    pub fn finish_files(&self) -> io::Result<()> {
        for i in (0..self.paths.len()).filter(|&i| self.is_chosen(i)) {
            let want = self.layout.file_length(i);
            let path = &self.paths[i];
            // One `stat` for the common case, so 100,000 files do not churn the pool.
            if matches!(std::fs::metadata(path), Ok(m) if m.is_file() && m.len() == want) {
                continue;
            }
            let f = self.file(i)?;
            if f.metadata().map_err(|e| with_path(e, path))?.len() != want {
                f.set_len(want).map_err(|e| with_path(e, path))?;
            }
        }
        Ok(())
    }
}

/// Create an empty file at `path` unless something is there already; never through a link.
fn create_empty(path: &Path) -> io::Result<()> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(with_path(e, path)),
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

    #[test]
    fn more_files_than_the_pool_holds() {
        let dir = tempfile::tempdir().unwrap();
        let n = FilePool::global().capacity() + 100;
        let paths: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("d/{i}"))).collect();
        let layout = Layout::new(16, (0..n).map(|i| (i % 3) as u64)).unwrap();
        let s = Storage::from_paths(paths.clone(), layout.clone(), Access::ReadWrite);
        s.prepare().unwrap();
        let data: Vec<u8> = (0..layout.total_length()).map(|i| i as u8).collect();
        s.write(0, &data).unwrap();
        s.finish_files().unwrap();
        assert!(FilePool::global().len() <= FilePool::global().capacity());
        let ro = Storage::from_paths(paths.clone(), layout, Access::ReadOnly);
        let mut back = vec![0u8; data.len()];
        ro.read(0, &mut back).unwrap();
        assert_eq!(back, data);
        // The zero-length files exist too.
        assert!(paths.iter().all(|p| p.is_file()));
    }

    #[test]
    fn empty_files_are_created_even_when_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().join("t/a"), dir.path().join("t/sub/b")];
        let s = Storage::from_paths(
            paths.clone(),
            Layout::new(16, [0, 0]).unwrap(),
            Access::ReadOnly,
        );
        s.prepare().unwrap();
        assert!(paths.iter().all(|p| p.is_file()));
    }

    #[test]
    fn refuses_to_write_through_a_link_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("profile");
        std::fs::create_dir_all(root.join("inner")).unwrap();
        // A folder link out, a file link out, a dangling link, and a link that stays inside.
        std::os::unix::fs::symlink(outside.path(), root.join("album")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), root.join("single")).unwrap();
        std::os::unix::fs::symlink(root.join("inner"), root.join("ok")).unwrap();
        let layout = Layout::new(16, [4]).unwrap();
        for (name, refused) in [("album/x", true), ("single", true), ("ok/x", false)] {
            let mut s =
                Storage::from_paths(vec![root.join(name)], layout.clone(), Access::ReadWrite);
            s.root = Some(root.clone());
            let r = s.prepare().and_then(|()| s.write(0, b"data"));
            if refused {
                let e = r.unwrap_err().to_string();
                assert!(
                    e.contains("symbolic link") && e.contains(&root.display().to_string()),
                    "{e}"
                );
            } else {
                r.unwrap();
            }
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert_eq!(std::fs::read(root.join("inner/x")).unwrap(), b"data");
    }
}
