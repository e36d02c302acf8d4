//! `bt import` and `bt show`: a profile's library.

use std::path::Path;

use anyhow::Result;
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::{ImportArgs, ShowArgs};
use crate::config::Profile;
use crate::library::{self, Imported};
use crate::proto::metainfo::Metainfo;
use crate::swarm::session::check_existing;
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
            ui::escape(&meta.info.name),
            meta.info_hash,
            profile.name,
            p.display()
        ),
        Imported::AlreadyThere(p) => println!(
            "{} ({}) is already in {}'s library: {}",
            ui::escape(&meta.info.name),
            meta.info_hash,
            profile.name,
            p.display()
        ),
    }
    Ok(meta)
}

/// One torrent of `bt show --json`.
#[derive(Serialize)]
struct ShownTorrent {
    name: String,
    info_hash: String,
    file: String,
    total_bytes: u64,
    pieces: usize,
    verified_pieces: usize,
    verified_bytes: u64,
    percent: f64,
    /// Files of the torrent.
    files: usize,
    /// The files chosen for download (`null`: all of them).
    chosen: Option<Chosen>,
}

/// A torrent's saved choice of files, in `bt show`.
#[derive(Serialize)]
struct Chosen {
    /// How many files are chosen.
    files: usize,
    /// Their numbers, as `--files` takes them.
    numbers: String,
    /// Pieces that hold the chosen files, and how many of them are verified.
    pieces: usize,
    verified_pieces: usize,
}

/// A `.torrent` of the library that could not be read.
#[derive(Serialize)]
struct Unreadable {
    file: String,
    error: String,
}

/// Run `bt show`: the library, with the pieces verified on disk (hashed now, as `bt check`
/// does: bt keeps no resume state, and bytes on disk say nothing of their correctness).
pub fn show(args: ShowArgs) -> Result<()> {
    let profile = args.profile()?;
    let entries = library::list(&profile.folder)?;
    let mut shown = Vec::new();
    let mut unreadable = Vec::new();
    for e in entries {
        let file = e
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match e.meta {
            Ok(m) => {
                let have = match check_existing(&m, &profile.folder) {
                    Ok(have) => have,
                    Err(err) => {
                        let error = format!("cannot check its data: {err}");
                        unreadable.push(Unreadable { file, error });
                        continue;
                    }
                };
                let layout = m.layout();
                let bytes: u64 = have.ones().map(|i| layout.piece_size(i) as u64).sum();
                let chosen = match library::load_selection(&profile.folder, &m) {
                    Ok(sel) => sel.filter(|s| !s.is_all()).map(|s| {
                        let wanted = s.wanted_pieces(&layout);
                        Chosen {
                            files: s.count(),
                            numbers: s.to_numbers(),
                            pieces: wanted.count(),
                            verified_pieces: wanted.ones().filter(|&i| have.get(i)).count(),
                        }
                    }),
                    Err(err) => {
                        eprintln!("bt: warning: {err:#}");
                        None
                    }
                };
                shown.push(ShownTorrent {
                    name: m.info.name.clone(),
                    info_hash: m.info_hash.hex(),
                    file,
                    total_bytes: m.total_length(),
                    pieces: have.len(),
                    verified_pieces: have.count(),
                    verified_bytes: bytes,
                    percent: (ui::percent(bytes, m.total_length()) * 10.0).round() / 10.0,
                    files: m.info.files.len(),
                    chosen,
                });
            }
            Err(err) => unreadable.push(Unreadable {
                file,
                error: format!("{err:#}"),
            }),
        }
    }
    if args.json {
        let v = serde_json::json!({
            "profile": profile.name,
            "folder": profile.folder.display().to_string(),
            "port": profile.port,
            "verified_by": "sha1 check of the data on disk, now",
            "torrents": shown,
            "unreadable": unreadable,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "profile {}: folder {}, port {}",
        profile.name,
        ui::escape(&profile.folder.display().to_string()),
        profile.port
    );
    if shown.is_empty() && unreadable.is_empty() {
        println!(
            "  (no torrents; add one with `bt import FILE.torrent --profile {}`)",
            profile.name
        );
        return Ok(());
    }
    println!(
        "  {:<28} {:>11} {:>8}  {:<40}  FILE",
        "NAME", "SIZE", "VERIFIED", "INFO-HASH"
    );
    for t in &shown {
        println!(
            "  {:<28} {:>11} {:>7.0}%  {:<40}  {}",
            ui::escape(&t.name),
            HumanBytes(t.total_bytes).to_string(),
            // Never round a partial download up to 100%.
            if t.verified_pieces < t.pieces {
                t.percent.min(99.0)
            } else {
                t.percent
            },
            t.info_hash,
            ui::escape(&t.file)
        );
        if let Some(c) = &t.chosen {
            println!(
                "    {} of {} files chosen ({}): {} of their {} pieces verified",
                c.files, t.files, c.numbers, c.verified_pieces, c.pieces
            );
        }
    }
    for u in &unreadable {
        println!(
            "  {}: unreadable: {}",
            ui::escape(&u.file),
            ui::escape(&u.error)
        );
    }
    if !shown.is_empty() {
        println!(
            "  (VERIFIED: pieces whose SHA-1 matches the data on disk, hashed now as `bt check` does)"
        );
    }
    Ok(())
}
