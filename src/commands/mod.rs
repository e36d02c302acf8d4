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

use anyhow::{Context, Result};

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
