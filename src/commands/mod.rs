//! The short-lived commands: `create`, `edit`, `info`, `import`, `show` work on files; `peers`
//! asks a running tracker. Each takes its parsed arguments and prints its result; nothing here
//! runs a network service.

pub mod check;
pub mod create;
pub mod edit;
pub mod info;
pub mod library;
pub mod peers;

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use crate::proto::metainfo::{Metainfo, MetainfoError};
use crate::ui;

/// [`crate::library::read_torrent`], with a plain word for a file that is no torrent at all
/// (a text file, an image: it does not even start as a bencoded dictionary) instead of the
/// bencode decoder's own message. A damaged torrent keeps the decoder's precise message.
pub fn read_torrent(path: &Path) -> Result<Metainfo> {
    crate::library::read_torrent(path).map_err(|e| match e.downcast_ref::<MetainfoError>() {
        Some(MetainfoError::Bencode(_)) if !starts_as_dict(path) => {
            anyhow!(
            "{} is not a bencoded torrent (a .torrent file is a bencoded dictionary); is it the \
             file you meant?",
            ui::escape(&path.display().to_string())
        )
        }
        _ => e,
    })
}

/// Whether the file's first byte opens a bencoded dictionary (`d`).
fn starts_as_dict(path: &Path) -> bool {
    use std::io::Read;
    let mut first = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut first))
        .is_ok_and(|()| first[0] == b'd')
}

/// Write `bytes` to `path` through a temporary file and a rename, so that a crash never leaves
/// half a torrent behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}", path.display())
    })
}
