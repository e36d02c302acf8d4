//! `bt check`: hash a torrent's data on disk (on every core) and report what is verified.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use indicatif::HumanBytes;

use crate::cli::CheckArgs;
use crate::library::read_torrent;
use crate::swarm::session::check_existing;
use crate::ui;

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
    let started = Instant::now();
    let have = check_existing(&meta, &folder);
    let elapsed = started.elapsed();
    let layout = meta.layout();
    let bytes: u64 = have.ones().map(|i| layout.piece_size(i) as u64).sum();
    println!(
        "{}: {}/{} pieces verified ({:.1}%), {} of {} in {}, checked in {} ({}/s)",
        meta.info.name,
        have.count(),
        have.len(),
        ui::percent(bytes, meta.total_length()),
        HumanBytes(bytes),
        HumanBytes(meta.total_length()),
        folder.join(&meta.info.name).display(),
        ui::duration(elapsed),
        HumanBytes(ui::rate(meta.total_length(), elapsed)),
    );
    Ok(())
}
