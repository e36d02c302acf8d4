//! A profile's library: the `.torrent` files at the top of its folder, with their data beside
//! them (a torrent named `album` keeps its files in `FOLDER/album/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::proto::metainfo::Metainfo;

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
    let dir = match std::fs::read_dir(folder) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
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
    Ok(paths
        .into_iter()
        .map(|path| Entry {
            meta: read_torrent(&path),
            path,
        })
        .collect())
}

/// Every readable torrent of a library; unreadable ones are skipped with a warning on stderr.
pub fn load_all(folder: &Path) -> Result<Vec<Metainfo>> {
    let mut metas = Vec::new();
    for entry in list(folder)? {
        match entry.meta {
            Ok(m) => metas.push(m),
            Err(e) => eprintln!("bt: warning: skipping {e:#}"),
        }
    }
    Ok(metas)
}

/// What [`import`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// Copied to this path.
    Added(PathBuf),
    /// The library already had a torrent with this info-hash, at this path.
    AlreadyThere(PathBuf),
}

/// Copy a torrent into `folder` (created if missing) unless one with the same info-hash is
/// there. Never overwrites a different file.
pub fn import(torrent: &Path, folder: &Path) -> Result<(Metainfo, Imported)> {
    let meta = read_torrent(torrent)?;
    for entry in list(folder)? {
        if let Ok(m) = &entry.meta {
            if m.info_hash == meta.info_hash {
                return Ok((meta, Imported::AlreadyThere(entry.path)));
            }
        }
    }
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create folder {}", folder.display()))?;
    let file_name = torrent
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", meta.info.name)));
    let mut dest = folder.join(&file_name);
    if dest.extension().is_none_or(|e| e != "torrent") {
        dest.set_extension("torrent");
    }
    if dest.exists() {
        bail!(
            "{} already exists and holds another torrent; rename one of them",
            dest.display()
        );
    }
    std::fs::write(&dest, meta.to_bytes())
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok((meta, Imported::Added(dest)))
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
