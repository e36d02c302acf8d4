//! `bt import` and `bt show`: a profile's library.

use std::path::Path;

use anyhow::Result;
use indicatif::HumanBytes;

use crate::cli::{ImportArgs, ShowArgs};
use crate::config::Profile;
use crate::library::{self, Imported};
use crate::proto::metainfo::Metainfo;
use crate::ui;

/// Run `bt import`.
pub fn import(args: ImportArgs) -> Result<()> {
    let profile = args.profile()?;
    import_into(&args.torrent, &profile)?;
    Ok(())
}

/// Copy `torrent` into `profile`'s library (once per info-hash), say where it went, and return
/// it.
pub fn import_into(torrent: &Path, profile: &Profile) -> Result<Metainfo> {
    let (meta, what) = library::import(torrent, &profile.folder)?;
    match what {
        Imported::Added(p) => println!(
            "imported {} ({}) into {}: {}",
            meta.info.name,
            meta.info_hash,
            profile.name,
            p.display()
        ),
        Imported::AlreadyThere(p) => println!(
            "{} ({}) is already in {}'s library: {}",
            meta.info.name,
            meta.info_hash,
            profile.name,
            p.display()
        ),
    }
    Ok(meta)
}

/// Run `bt show`.
pub fn show(args: ShowArgs) -> Result<()> {
    let profile = args.profile()?;
    let entries = library::list(&profile.folder)?;
    println!(
        "profile {}: folder {}, port {}",
        profile.name,
        profile.folder.display(),
        profile.port
    );
    if entries.is_empty() {
        println!(
            "  (no torrents; add one with `bt import FILE.torrent --profile {}`)",
            profile.name
        );
        return Ok(());
    }
    println!(
        "  {:<28} {:>11} {:>8}  {:<40}  FILE",
        "NAME", "SIZE", "ON DISK", "INFO-HASH"
    );
    for e in entries {
        let file = e
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match e.meta {
            Ok(m) => {
                let have = library::bytes_on_disk(&m, &profile.folder);
                println!(
                    "  {:<28} {:>11} {:>7.0}%  {:<40}  {}",
                    m.info.name,
                    HumanBytes(m.total_length()).to_string(),
                    ui::percent(have, m.total_length()),
                    m.info_hash.hex(),
                    file
                );
            }
            Err(err) => println!("  {file}: unreadable: {err:#}"),
        }
    }
    Ok(())
}
