//! `bt create`: hash a file or a folder into a new `.torrent`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::cli::CreateArgs;
use crate::config::Config;
use crate::proto::layout::Layout;
use crate::proto::metainfo::{self, auto_piece_length, Content, FileEntry, NewTorrent};
use crate::swarm::hashing::{hash_pieces, is_missing_data};
use crate::swarm::storage::{Access, Storage};
use crate::ui::{self, Progress};

/// The value of `created by`.
pub const CREATED_BY: &str = concat!("bt/", env!("CARGO_PKG_VERSION"));

/// Run `bt create`.
pub fn run(args: CreateArgs) -> Result<()> {
    if args.no_tracker && !args.tracker.is_empty() {
        bail!("give --tracker or --no-tracker, not both");
    }
    let trackers = if args.no_tracker {
        // Peers come from the DHT or LSD (or --peer) instead.
        Vec::new()
    } else if args.tracker.is_empty() {
        vec![Config::load(args.config.as_deref())?.0.tracker.announce]
    } else {
        args.tracker.clone()
    };
    for t in &trackers {
        check_tracker_url(t)?;
    }
    let piece_length = args
        .piece_length
        .as_deref()
        .map(parse_piece_length)
        .transpose()?;
    let source = Source::scan(&args.path)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", source.name)));
    if output.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to overwrite it or -o to choose another name",
            output.display()
        );
    }
    let meta = build(&source, piece_length, &trackers, args.private, args.comment)?;
    super::write_atomic(&output, &meta.to_bytes())?;
    println!(
        "created {}: {}, {}, {} of {}, info-hash {}",
        output.display(),
        ui::size_both(meta.total_length()),
        ui::plural(meta.info.files.len(), "file", "files"),
        ui::plural(meta.info.pieces.len(), "piece", "pieces"),
        indicatif::HumanBytes(meta.info.piece_length),
        meta.info_hash
    );
    println!("magnet: {}", super::info::magnet_link(&meta));
    Ok(())
}

/// Build the metainfo of `source`, hashing its pieces on every core.
pub fn build(
    source: &Source,
    piece_length: Option<u64>,
    trackers: &[String],
    private: bool,
    comment: Option<String>,
) -> Result<metainfo::Metainfo> {
    let total: u64 = source.files.iter().map(|f| f.length).sum();
    if total == 0 {
        bail!("{} holds no data to share (0 bytes)", source.root.display());
    }
    let piece_length = piece_length.unwrap_or_else(|| auto_piece_length(total));
    let layout = Layout::new(piece_length, source.files.iter().map(|f| f.length))
        .ok_or_else(|| anyhow!("piece length {piece_length} is not usable"))?;
    let storage = Storage::from_paths(
        source.files.iter().map(|f| f.disk.clone()).collect(),
        layout.clone(),
        Access::ReadOnly,
    );
    let hashes = Mutex::new(vec![[0u8; 20]; layout.piece_count()]);
    let failure = Mutex::new(None);
    let progress = Progress::bytes(total, "hashing");
    hash_pieces(&storage, |index, result| match result {
        Ok(h) => {
            hashes.lock().expect("no panics while held")[index] = h;
            progress.inc(layout.piece_size(index) as u64);
            true
        }
        Err(e) => {
            *failure.lock().expect("no panics while held") = Some(e);
            false
        }
    });
    progress.finish();
    if let Some(e) = failure.into_inner().expect("no panics while held") {
        // Only a file that vanished or shrank since the scan "changed"; anything else (no
        // permission, a disk error) is named as it is.
        let why = if is_missing_data(&e) {
            "a file changed while it was being hashed"
        } else {
            "cannot read the files to hash"
        };
        return Err(e).context(why);
    }
    let content = if source.single {
        Content::Single(total)
    } else {
        Content::Multi(
            source
                .files
                .iter()
                .map(|f| FileEntry {
                    path: f.path.clone(),
                    length: f.length,
                })
                .collect(),
        )
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    NewTorrent {
        name: source.name.clone(),
        piece_length,
        pieces: hashes.into_inner().expect("no panics while held"),
        content,
        private,
        trackers: trackers.to_vec(),
        comment,
        created_by: Some(CREATED_BY.into()),
        creation_date: Some(now),
    }
    .build()
    .context("the new torrent did not validate")
}

/// One file to put in a torrent.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path components inside the torrent.
    pub path: Vec<String>,
    /// Where it is on disk.
    pub disk: PathBuf,
    /// Size in bytes.
    pub length: u64,
}

/// What `bt create` shares: a single file or every file under a folder.
#[derive(Debug)]
pub struct Source {
    /// The path given.
    pub root: PathBuf,
    /// Torrent name: the file or folder name.
    pub name: String,
    /// True for a single file.
    pub single: bool,
    /// Files in torrent order (sorted by path).
    pub files: Vec<SourceFile>,
}

impl Source {
    /// Look at `root`: a file, or a folder walked recursively in sorted order.
    pub fn scan(root: &Path) -> Result<Source> {
        let meta =
            std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
        let abs = std::fs::canonicalize(root)
            .with_context(|| format!("cannot read {}", root.display()))?;
        let name = component(abs.file_name().map(Path::new).unwrap_or(&abs), root)?;
        if meta.is_file() {
            return Ok(Source {
                root: root.to_path_buf(),
                files: vec![SourceFile {
                    path: vec![name.clone()],
                    disk: root.to_path_buf(),
                    length: meta.len(),
                }],
                name,
                single: true,
            });
        }
        let mut files = Vec::new();
        walk(root, &mut Vec::new(), &mut files)?;
        if files.is_empty() {
            bail!("{} holds no files to share", root.display());
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Source {
            root: root.to_path_buf(),
            name,
            single: false,
            files,
        })
    }
}

fn walk(dir: &Path, prefix: &mut Vec<String>, out: &mut Vec<SourceFile>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let name = component(Path::new(&entry.file_name()), &path)?;
        // Follow symlinks to files, but not to folders (a loop would never end).
        let link = entry.file_type()?.is_symlink();
        let meta =
            std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        prefix.push(name);
        if meta.is_file() {
            out.push(SourceFile {
                path: prefix.clone(),
                disk: path,
                length: meta.len(),
            });
        } else if meta.is_dir() && !link {
            walk(&path, prefix, out)?;
        } else {
            log::warn!("skipping {} (not a regular file)", path.display());
        }
        prefix.pop();
    }
    Ok(())
}

fn component(name: &Path, whole: &Path) -> Result<String> {
    let s = name
        .to_str()
        .ok_or_else(|| anyhow!("{}: file name is not valid UTF-8", whole.display()))?;
    metainfo::check_component(s).map_err(|why| anyhow!("{}: {why}", whole.display()))?;
    Ok(s.to_string())
}

/// Parse "262144", "256k", "256KiB", "1m", "4MiB" into bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("`{text}` is not a size (try 262144, 256k or 1m)"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => bail!("`{text}` has an unknown unit (use k, m or g)"),
    };
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("`{text}` is too large"))
}

/// Parse `--piece-length`: a size that is a power of two, at most what a torrent may use.
/// Checked before any hashing, so a bad value costs nothing.
pub fn parse_piece_length(text: &str) -> Result<u64> {
    let n = parse_size(text)?;
    if !n.is_power_of_two() || n > metainfo::MAX_PIECE_LENGTH {
        bail!("piece length `{text}` should be a power of two up to 64 MiB (16k, 256k, 1m ...)");
    }
    Ok(n)
}

fn check_tracker_url(url: &str) -> Result<()> {
    Ok(crate::swarm::announce::check_tracker_url(url)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metainfo::Metainfo;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("262144").unwrap(), 262144);
        assert_eq!(parse_size("256k").unwrap(), 262144);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert!(parse_size("1x").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999g").is_err());
    }

    #[test]
    fn piece_lengths_are_powers_of_two_up_to_64_mib() {
        assert_eq!(parse_piece_length("16k").unwrap(), 16384);
        assert_eq!(parse_piece_length("64m").unwrap(), 64 << 20);
        for bad in ["0", "10000", "3k", "128m"] {
            let e = parse_piece_length(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("power of two"), "{e}");
        }
    }

    #[test]
    fn folder_torrent_hashes_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        let a: Vec<u8> = (0..30_000u32).map(|i| i as u8).collect();
        let d: Vec<u8> = (0..20_000u32).map(|i| (i / 3) as u8).collect();
        std::fs::write(root.join("a.bin"), &a).unwrap();
        std::fs::write(root.join("b/c/d.bin"), &d).unwrap();
        std::fs::write(root.join("b/empty"), b"").unwrap();
        let src = Source::scan(&root).unwrap();
        let paths: Vec<String> = src.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(paths, ["a.bin", "b/c/d.bin", "b/empty"]);
        let m = build(
            &src,
            Some(16384),
            &["http://t/announce".into()],
            false,
            None,
        )
        .unwrap();
        let all = [a, d].concat();
        let want: Vec<[u8; 20]> = all.chunks(16384).map(crate::swarm::hashing::sha1).collect();
        assert_eq!(m.info.pieces, want);
        assert_eq!(m.info.name, "top");
        assert_eq!(Metainfo::from_bytes(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn read_errors_name_their_real_cause() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a"), [1u8; 5000]).unwrap();
        std::fs::write(root.join("b"), [2u8; 5000]).unwrap();
        let src = Source::scan(&root).unwrap();
        let trackers = ["http://t/announce".to_string()];
        // A file gone since the scan: it changed.
        std::fs::remove_file(root.join("b")).unwrap();
        let e = format!(
            "{:#}",
            build(&src, None, &trackers, false, None).unwrap_err()
        );
        assert!(e.contains("changed while it was being hashed"), "{e}");
        // A folder where the file was: a read error, named as it is.
        std::fs::create_dir(root.join("b")).unwrap();
        let e = format!(
            "{:#}",
            build(&src, None, &trackers, false, None).unwrap_err()
        );
        assert!(
            e.contains("cannot read the files to hash") && e.contains("top/b"),
            "{e}"
        );
    }
}
