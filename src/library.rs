//! A profile's library: the `.torrent` files at the top of its folder, with their data beside
//! them (a torrent named `album` keeps its files in `FOLDER/album/`).
//!
//! [`Library`] reads the folder once and keeps an index (info-hash and data name of each
//! torrent), so that importing many torrents is linear, and so that no torrent is let in whose
//! data or `.torrent` file would overwrite another's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::proto::metainfo::{InfoHash, Metainfo};
use crate::swarm::selection::Selection;

/// Largest `.torrent` file we read (a 1 TiB torrent in 1 MiB pieces needs 20 MiB of hashes).
pub const MAX_TORRENT_FILE: u64 = 64 * 1024 * 1024;

/// Read and validate a `.torrent` file; errors name the file.
pub fn read_torrent(path: &Path) -> Result<Metainfo> {
    let bytes = read_bounded(path)?;
    Metainfo::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid torrent", path.display()))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE {
        bail!(
            "{} is larger than {} MiB; not a torrent we accept",
            path.display(),
            MAX_TORRENT_FILE >> 20
        );
    }
    Ok(bytes)
}

/// One entry of a library listing.
pub struct Entry {
    /// The `.torrent` file.
    pub path: PathBuf,
    /// Its contents, or why it could not be read.
    pub meta: Result<Metainfo>,
}

/// Every `.torrent` at the top of `folder`, sorted by file name. A missing folder is an empty
/// library.
pub fn list(folder: &Path) -> Result<Vec<Entry>> {
    Ok(Library::open(folder)?.entries)
}

/// Every readable torrent of a library that may use its data path; unreadable ones, and ones
/// whose data would clash with another's (see [`Library::metas`]), are skipped with a warning.
pub fn load_all(folder: &Path) -> Result<Vec<Metainfo>> {
    Ok(Library::open(folder)?.metas())
}

/// What [`import`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// Copied to this path (under another file name than the source's when that name was
    /// taken; a warning says so).
    Added(PathBuf),
    /// The library already had a torrent with this info-hash, at this path.
    AlreadyThere(PathBuf),
}

/// Copy a torrent into `folder` (created if missing) unless one with the same info-hash is
/// there. Never overwrites anything: see [`Library::import`]. To import many torrents, open
/// the [`Library`] once and call [`Library::import`] for each: this function reads the whole
/// folder every time.
pub fn import(torrent: &Path, folder: &Path) -> Result<(Metainfo, Imported)> {
    Library::open(folder)?.import(torrent)
}

/// The top-level name of a torrent's data in the folder: its single file, or its folder.
pub fn data_name(meta: &Metainfo) -> String {
    meta.info.name.clone()
}

/// True for a file name the library would take for a torrent (`*.torrent`, any case).
fn looks_like_torrent(name: &str) -> bool {
    name.len() >= 8 && name.as_bytes()[name.len() - 8..].eq_ignore_ascii_case(b".torrent")
}

/// A profile's library, read once: each `.torrent` file with its info-hash and the top-level
/// name of its data, so that importing N torrents costs N reads, not N².
///
/// Collision rules (docs/robustness.md, "One folder, many torrents"): a torrent's data may not
/// take the top-level name of another torrent's data, nor a name ending in `.torrent` (that
/// would be a library file); such a torrent is refused at import, and skipped with a warning
/// when one is found in the folder already. A `.torrent` name that is taken is not a reason to
/// refuse: the copy is stored under a free name and a warning says which.
pub struct Library {
    folder: PathBuf,
    entries: Vec<Entry>,
    /// Info-hash -> index in `entries`.
    by_hash: HashMap<InfoHash, usize>,
    /// Top-level data name -> index of the entry that owns it (the first in file-name order).
    by_data: HashMap<String, usize>,
}

impl Library {
    /// Read every `.torrent` at the top of `folder` once. A missing folder is an empty library.
    pub fn open(folder: &Path) -> Result<Library> {
        let mut lib = Library {
            folder: folder.to_path_buf(),
            entries: Vec::new(),
            by_hash: HashMap::new(),
            by_data: HashMap::new(),
        };
        let dir = match std::fs::read_dir(folder) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(lib),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", folder.display())),
        };
        let mut paths = Vec::new();
        for item in dir {
            let path = item
                .with_context(|| format!("cannot list {}", folder.display()))?
                .path();
            if path.extension().is_some_and(|e| e == "torrent") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let meta = read_torrent(&path);
            lib.add(Entry { path, meta });
        }
        Ok(lib)
    }

    fn add(&mut self, entry: Entry) {
        let i = self.entries.len();
        if let Ok(m) = &entry.meta {
            self.by_hash.entry(m.info_hash).or_insert(i);
            self.by_data.entry(data_name(m)).or_insert(i);
        }
        self.entries.push(entry);
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Every `.torrent` file, sorted by file name (then those imported since [`Library::open`]).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Why `meta` may not put its data in this folder, if it may not: its data name is a
    /// torrent file name, or belongs to another torrent's data.
    fn clash(&self, meta: &Metainfo) -> Option<String> {
        let name = data_name(meta);
        if looks_like_torrent(&name) {
            return Some(format!(
                "its data would be {}, which bt would take for a torrent file of the library",
                self.folder.join(&name).display()
            ));
        }
        let owner = &self.entries[*self.by_data.get(&name)?];
        match &owner.meta {
            Ok(m) if m.info_hash != meta.info_hash => Some(format!(
                "its data would be {}, which holds the data of another torrent, {} ({})",
                self.folder.join(&name).display(),
                owner.path.display(),
                m.info_hash
            )),
            _ => None,
        }
    }

    /// Every readable torrent, in file-name order; unreadable ones, and ones whose data would
    /// clash with an earlier one's, are skipped with a warning on stderr.
    pub fn metas(&self) -> Vec<Metainfo> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            match &e.meta {
                Ok(m) => {
                    let owner = self.by_data.get(&data_name(m)).copied();
                    if owner != Some(i) || looks_like_torrent(&data_name(m)) {
                        let why = self.clash(m).unwrap_or_else(|| "it is there twice".into());
                        log::warn!("skipping {}: {why}", e.path.display());
                        continue;
                    }
                    out.push(m.clone());
                }
                Err(err) => eprintln!("bt: warning: skipping {err:#}"),
            }
        }
        out
    }

    /// Copy `torrent` into the folder (created if missing) unless one with the same info-hash
    /// is there. Refuses a torrent whose data would clash with another's (see [`Library`]);
    /// stores the copy under a free name when its file name is taken, saying so. Never
    /// overwrites a file and never writes through a symbolic link.
    pub fn import(&mut self, torrent: &Path) -> Result<(Metainfo, Imported)> {
        let meta = read_torrent(torrent)?;
        let wanted = torrent.file_name().map(PathBuf::from);
        self.import_as(meta, wanted, &torrent.display().to_string())
    }

    /// Store a torrent that has no file of its own (fetched for a magnet link) as
    /// `NAME.torrent`, with the same rules as [`Library::import`].
    pub fn import_meta(&mut self, meta: Metainfo) -> Result<(Metainfo, Imported)> {
        let what = format!("{} ({})", meta.info.name, meta.info_hash);
        self.import_as(meta, None, &what)
    }

    /// Import `meta` as the file name `wanted` (default `NAME.torrent`); `what` names it in
    /// errors.
    fn import_as(
        &mut self,
        meta: Metainfo,
        wanted: Option<PathBuf>,
        what: &str,
    ) -> Result<(Metainfo, Imported)> {
        if let Some(&i) = self.by_hash.get(&meta.info_hash) {
            return Ok((meta, Imported::AlreadyThere(self.entries[i].path.clone())));
        }
        if let Some(why) = self.clash(&meta) {
            bail!(
                "refusing to import {what} into {}: {why}",
                self.folder.display()
            );
        }
        std::fs::create_dir_all(&self.folder)
            .with_context(|| format!("cannot create folder {}", self.folder.display()))?;
        let mut wanted =
            wanted.unwrap_or_else(|| PathBuf::from(format!("{}.torrent", meta.info.name)));
        if wanted.extension().is_none_or(|e| e != "torrent") {
            wanted.set_extension("torrent");
        }
        let dest = self.write_new(&wanted, &meta)?;
        if dest.file_name() != Some(wanted.as_os_str()) {
            log::warn!(
                "{} is taken in {}; stored {} as {}",
                wanted.display(),
                self.folder.display(),
                meta.info.name,
                dest.display()
            );
        }
        self.add(Entry {
            path: dest.clone(),
            meta: Ok(meta.clone()),
        });
        Ok((meta, Imported::Added(dest)))
    }

    /// Write `meta` as `wanted` in the folder, or, when that name is taken (by any file, or as
    /// another torrent's data name), as `STEM.HASH8.torrent` (then `-2`, `-3` ...). Written to
    /// a temporary file and hard-linked into place: a link fails if the name exists, so nothing
    /// is overwritten, a symbolic link included, and a reader never sees half a torrent.
    fn write_new(&self, wanted: &Path, meta: &Metainfo) -> Result<PathBuf> {
        let dest = self.folder.join(wanted);
        if let Ok(m) = std::fs::symlink_metadata(&dest) {
            if m.file_type().is_symlink() {
                bail!(
                    "{} is a symbolic link; bt does not write a torrent through it (remove it or import under another name)",
                    dest.display()
                );
            }
        }
        let stem = wanted
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let short = &meta.info_hash.hex()[..8];
        let tmp = self
            .folder
            .join(format!(".{stem}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &meta.to_bytes()))
            .with_context(|| format!("cannot write {}", dest.display()))?;
        let candidates = std::iter::once(wanted.to_path_buf())
            .chain(std::iter::once(PathBuf::from(format!(
                "{stem}.{short}.torrent"
            ))))
            .chain((2..100).map(|n| PathBuf::from(format!("{stem}.{short}-{n}.torrent"))));
        let mut result = None;
        for name in candidates {
            let taken_as_data = name.to_str().is_some_and(|n| self.by_data.contains_key(n));
            if taken_as_data {
                continue;
            }
            let dest = self.folder.join(&name);
            match std::fs::hard_link(&tmp, &dest) {
                Ok(()) => {
                    result = Some(Ok(dest));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    result =
                        Some(Err(e).with_context(|| format!("cannot write {}", dest.display())));
                    break;
                }
            }
        }
        let _ = std::fs::remove_file(&tmp);
        result.unwrap_or_else(|| {
            Err(anyhow!(
                "no free name for {} in {}",
                wanted.display(),
                self.folder.display()
            ))
        })
    }
}

/// Largest selection sidecar read: a number list as long as `--files` may be, and its comment.
const MAX_SELECTION_FILE: u64 = crate::swarm::selection::MAX_SPEC as u64 + 4096;

/// Where the files chosen for a torrent's download are kept: a small text file beside the
/// library's torrents, `FOLDER/.bt-selection.HASH`, holding the `--files` numbers (`1,3-5`).
/// Its absence means every file.
pub fn selection_path(folder: &Path, meta: &Metainfo) -> PathBuf {
    folder.join(format!(".bt-selection.{}", meta.info_hash.hex()))
}

/// The files chosen earlier for `meta` in `folder`, if a choice was saved. A sidecar that
/// cannot be read or no longer fits the torrent is an error naming it.
pub fn load_selection(folder: &Path, meta: &Metainfo) -> Result<Option<Selection>> {
    use std::io::Read;
    let path = selection_path(folder, meta);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_SELECTION_FILE)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let spec: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(",");
    Selection::from_numbers(spec.trim_matches(','), meta.info.files.len())
        .map(Some)
        .map_err(|e| {
            anyhow!(
                "{}: {e}; remove it to download every file of {}",
                path.display(),
                meta.info.name
            )
        })
}

/// Remember `sel` as the files to download for `meta` (every file: the sidecar is removed).
/// Written to a temporary file and renamed, so a reader never sees half of it.
pub fn save_selection(folder: &Path, meta: &Metainfo, sel: &Selection) -> Result<()> {
    let path = selection_path(folder, meta);
    if sel.is_all() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create folder {}", folder.display()))?;
    let text = format!(
        "# bt: the files to download, numbered as `bt info --files` lists them\n{}\n",
        sel.to_numbers()
    );
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Bytes of the torrent's data found on disk in `folder` (file sizes, capped at the expected
/// length; not verified). Cheap: one `stat` per file.
pub fn bytes_on_disk(meta: &Metainfo, folder: &Path) -> u64 {
    (0..meta.info.files.len())
        .map(|i| {
            let want = meta.info.files[i].length;
            std::fs::metadata(folder.join(meta.relative_path(i)))
                .map(|m| if m.is_file() { m.len().min(want) } else { 0 })
                .unwrap_or(0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metainfo::{Content, NewTorrent};

    fn torrent(name: &str, byte: u8) -> Metainfo {
        NewTorrent {
            name: name.into(),
            piece_length: 16384,
            pieces: vec![[byte; 20]],
            content: Content::Single(100),
            private: false,
            trackers: vec!["http://127.0.0.1:9/announce".into()],
            comment: None,
            created_by: None,
            creation_date: None,
        }
        .build()
        .unwrap()
    }

    #[test]
    fn a_folder_with_clashing_torrents_loads_only_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.torrent"), torrent("album", 1).to_bytes()).unwrap();
        std::fs::write(d.join("b.torrent"), torrent("album", 2).to_bytes()).unwrap();
        std::fs::write(d.join("c.torrent"), torrent("x.Torrent", 3).to_bytes()).unwrap();
        std::fs::write(d.join("d.torrent"), torrent("other", 4).to_bytes()).unwrap();
        let lib = Library::open(d).unwrap();
        assert_eq!(lib.entries().len(), 4);
        let names: Vec<_> = lib.metas().iter().map(|m| m.info.pieces[0][0]).collect();
        assert_eq!(names, [1, 4]);
    }

    #[test]
    fn a_saved_choice_of_files_round_trips_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let m = torrent("one", 1);
        assert_eq!(
            load_selection(d, &m).unwrap(),
            None,
            "no sidecar: every file"
        );
        let one = Selection::from_numbers("1", 1).unwrap();
        // Choosing every file stores nothing.
        save_selection(d, &m, &one).unwrap();
        assert!(!selection_path(d, &m).exists());
        // A sidecar from an edit by hand, or a torrent of fewer files: an error naming it.
        std::fs::write(selection_path(d, &m), "# chosen\n1,2\n").unwrap();
        let e = format!("{:#}", load_selection(d, &m).unwrap_err());
        assert!(
            e.contains(".bt-selection.") && e.contains("no file 2"),
            "{e}"
        );
        std::fs::write(selection_path(d, &m), "1\n").unwrap();
        assert_eq!(load_selection(d, &m).unwrap(), Some(one));
    }

    #[test]
    fn import_renames_a_taken_file_name_and_refuses_a_taken_data_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let lib_dir = d.join("lib");
        std::fs::create_dir_all(d.join("x")).unwrap();
        std::fs::create_dir_all(d.join("y")).unwrap();
        std::fs::write(d.join("x/t.torrent"), torrent("one", 1).to_bytes()).unwrap();
        std::fs::write(d.join("y/t.torrent"), torrent("two", 2).to_bytes()).unwrap();
        std::fs::write(d.join("clash.torrent"), torrent("one", 3).to_bytes()).unwrap();
        let mut lib = Library::open(&lib_dir).unwrap();
        let (_, first) = lib.import(&d.join("x/t.torrent")).unwrap();
        assert_eq!(first, Imported::Added(lib_dir.join("t.torrent")));
        let (m, second) = lib.import(&d.join("y/t.torrent")).unwrap();
        let short = &m.info_hash.hex()[..8];
        assert_eq!(
            second,
            Imported::Added(lib_dir.join(format!("t.{short}.torrent")))
        );
        let e = lib
            .import(&d.join("clash.torrent"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another torrent") && e.contains("t.torrent"),
            "{e}"
        );
        // A fresh read of the folder sees the same two.
        assert_eq!(load_all(&lib_dir).unwrap().len(), 2);
    }
}
