//! `bt check`: hash a torrent's data on disk (on every core) and report what is verified.
//!
//! Exits 0 only when every piece is verified and every file is there; missing or bad pieces
//! exit non-zero after the summary, and an I/O error that is not missing data (no permission, a
//! disk error) is an error of its own, never counted as bad pieces.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::HumanBytes;

use crate::cli::CheckArgs;
use crate::library::read_torrent;
use crate::swarm::hashing::verify;
use crate::swarm::storage::{Access, Storage};
use crate::ui::{self, Progress};

/// Run `bt check`.
pub fn run(args: CheckArgs) -> Result<()> {
    let meta = read_torrent(&args.torrent)?;
    let folder = match &args.folder {
        Some(f) => f.clone(),
        None => args
            .torrent
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    let data = folder.join(&meta.info.name);
    let started = Instant::now();
    let storage = Storage::new(&folder, &meta, Access::ReadOnly);
    let layout = meta.layout();
    let progress = Progress::bytes(meta.total_length(), &format!("checking {}", meta.info.name));
    let found = verify(&storage, &meta.info.pieces, |i| {
        progress.inc(layout.piece_size(i) as u64)
    });
    progress.finish();
    let found = found.with_context(|| format!("cannot check {}", data.display()))?;
    // Zero-length files hold no piece: look for them by name.
    let missing_files = (0..meta.info.files.len())
        .filter(|&i| meta.info.files[i].length == 0)
        .filter(|&i| !storage.path(i).is_file())
        .count();
    let elapsed = started.elapsed();
    let have = &found.have;
    let bytes: u64 = have.ones().map(|i| layout.piece_size(i) as u64).sum();
    println!(
        "{}: {}/{} pieces verified ({:.1}%), {} of {} in {}, checked in {} ({}/s)",
        meta.info.name,
        have.count(),
        meta.info.pieces.len(),
        ui::percent(bytes, meta.total_length()),
        HumanBytes(bytes),
        HumanBytes(meta.total_length()),
        data.display(),
        ui::duration(elapsed),
        HumanBytes(ui::rate(meta.total_length(), elapsed)),
    );
    if found.bad > 0 || found.missing > 0 {
        bail!(
            "{} is not complete: {} pieces bad (their data differs), {} missing (a file is absent or too short)",
            data.display(),
            found.bad,
            found.missing
        );
    }
    if missing_files > 0 {
        bail!(
            "{} is not complete: {} empty files are missing",
            data.display(),
            missing_files
        );
    }
    Ok(())
}
