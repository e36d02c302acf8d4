//! `bt info`: what a torrent holds, as text or JSON.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use indicatif::HumanBytes;
use serde::Serialize;

use crate::proto::magnet::Magnet;

use crate::cli::InfoArgs;
use crate::commands::read_torrent;
use crate::proto::metainfo::Metainfo;
use crate::ui;

/// Files listed without `--files`.
const DEFAULT_FILES_SHOWN: usize = 20;

/// The JSON form of `bt info --json`.
#[derive(Serialize)]
pub struct InfoJson {
    /// Hex info-hash.
    pub info_hash: String,
    /// Torrent name.
    pub name: String,
    /// Total bytes.
    pub length: u64,
    /// Bytes per piece.
    pub piece_length: u64,
    /// Number of pieces.
    pub pieces: usize,
    /// Piece hashes in hex (only with `--pieces`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub piece_hashes: Option<Vec<String>>,
    /// BEP 27 flag.
    pub private: bool,
    /// Every tracker URL.
    pub trackers: Vec<String>,
    /// True for a multi-file torrent.
    pub multi_file: bool,
    /// Comment.
    pub comment: Option<String>,
    /// Creator.
    pub created_by: Option<String>,
    /// Seconds since the epoch.
    pub creation_date: Option<i64>,
    /// Files, in torrent order.
    pub files: Vec<FileJson>,
}

/// A file in [`InfoJson`].
#[derive(Serialize)]
pub struct FileJson {
    /// Path components (for a multi-file torrent, below the torrent name).
    pub path: Vec<String>,
    /// Bytes.
    pub length: u64,
}

/// Run `bt info`.
pub fn run(args: InfoArgs) -> Result<()> {
    let meta = read_torrent(&args.torrent)?;
    if args.magnet {
        println!("{}", magnet_link(&meta));
    } else if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&meta, args.pieces))?
        );
    } else {
        print!("{}", render(&meta, args.files, args.pieces));
    }
    Ok(())
}

/// The magnet link of a torrent: its info-hash, name and trackers (BEP 9).
pub fn magnet_link(meta: &Metainfo) -> String {
    Magnet::new(
        meta.info_hash,
        Some(meta.info.name.clone()),
        meta.trackers(),
    )
    .to_string()
}

/// The JSON view of a torrent.
pub fn to_json(meta: &Metainfo, pieces: bool) -> InfoJson {
    InfoJson {
        info_hash: meta.info_hash.hex(),
        name: meta.info.name.clone(),
        length: meta.total_length(),
        piece_length: meta.info.piece_length,
        pieces: meta.info.pieces.len(),
        piece_hashes: pieces.then(|| meta.info.pieces.iter().map(hex::encode).collect()),
        private: meta.info.private,
        trackers: meta.trackers(),
        multi_file: meta.info.multi_file,
        comment: meta.comment.clone(),
        created_by: meta.created_by.clone(),
        creation_date: meta.creation_date,
        files: meta
            .info
            .files
            .iter()
            .map(|f| FileJson {
                path: f.path.clone(),
                length: f.length,
            })
            .collect(),
    }
}

/// The text view of a torrent.
pub fn render(meta: &Metainfo, all_files: bool, pieces: bool) -> String {
    let mut s = String::new();
    let i = &meta.info;
    let _ = writeln!(s, "name:          {}", i.name);
    let _ = writeln!(s, "info-hash:     {}", meta.info_hash);
    let _ = writeln!(s, "size:          {}", ui::size_both(meta.total_length()));
    let _ = writeln!(
        s,
        "pieces:        {} x {} ({} bytes)",
        i.pieces.len(),
        HumanBytes(i.piece_length),
        ui::grouped(i.piece_length)
    );
    let _ = writeln!(s, "private:       {}", if i.private { "yes" } else { "no" });
    let trackers = meta.trackers();
    let _ = writeln!(
        s,
        "trackers:      {}",
        if trackers.is_empty() {
            "(none)".into()
        } else {
            trackers.join("\n               ")
        }
    );
    if let Some(c) = &meta.comment {
        let _ = writeln!(s, "comment:       {c}");
    }
    if let Some(c) = &meta.created_by {
        let _ = writeln!(s, "created by:    {c}");
    }
    if let Some(d) = meta.creation_date.and_then(|d| u64::try_from(d).ok()) {
        let when = UNIX_EPOCH + Duration::from_secs(d);
        let _ = writeln!(
            s,
            "created:       {}",
            humantime::format_rfc3339_seconds(when)
        );
    }
    let n = i.files.len();
    let _ = writeln!(s, "files ({n}, numbered for `bt client --files`):");
    let shown = if all_files {
        n
    } else {
        n.min(DEFAULT_FILES_SHOWN)
    };
    // Numbered from 1: the numbers `--files` takes.
    let width = n.to_string().len();
    for (k, f) in i.files.iter().enumerate().take(shown) {
        let _ = writeln!(
            s,
            "  {:>width$}  {:>12}  {}",
            k + 1,
            HumanBytes(f.length).to_string(),
            meta.relative_path(k).display()
        );
    }
    if shown < n {
        let _ = writeln!(s, "  ... {} more (--files lists them all)", n - shown);
    }
    if pieces {
        let _ = writeln!(s, "piece hashes:");
        for (k, h) in i.pieces.iter().enumerate() {
            let _ = writeln!(s, "  {k:>6}  {}", hex::encode(h));
        }
    }
    s
}
