//! `.torrent` files (BEP 3 metainfo, BEP 12 announce-list): parse, validate, build, edit.
//!
//! The info-hash is the SHA-1 of the `info` dictionary exactly as it stands in the file, so the
//! raw bytes are kept and written back untouched on edit; unknown keys inside `info` survive.
//! Parsing validates everything a downloader relies on: piece count against total length, and
//! path components that cannot escape the download folder.

use bendy::decoding::{Decoder, Object};
use sha1::{Digest, Sha1};

use super::bencode::{self, as_dict, BencodeError, Dict, DictExt, Value};
use super::layout::Layout;

/// Largest piece length we accept. A piece is held in memory while it is verified, so this bounds
/// the memory one piece can take (real torrents use 16 KiB to 16 MiB).
pub const MAX_PIECE_LENGTH: u64 = 64 * 1024 * 1024;

/// Most files one torrent may list (far above any real torrent; bounds the file table).
pub const MAX_FILES: usize = 1_000_000;

pub use super::ids::InfoHash;

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the torrent, one validated component per element (for a single-file torrent,
    /// just the name). Join onto the download folder after the torrent name (see
    /// [`Metainfo::relative_path`]).
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
}

/// The `info` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Suggested name: the file name, or the folder name of a multi-file torrent.
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u64,
    /// SHA-1 of every piece.
    pub pieces: Vec<[u8; 20]>,
    /// The files, in torrent order. A single-file torrent has one entry whose path is `[name]`.
    pub files: Vec<FileEntry>,
    /// True for a multi-file torrent (files live under a folder called `name`).
    pub multi_file: bool,
    /// BEP 27 private flag.
    pub private: bool,
}

/// A parsed, validated `.torrent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// The `announce` URL.
    pub announce: Option<String>,
    /// BEP 12 tiers of tracker URLs.
    pub announce_list: Vec<Vec<String>>,
    /// Free-text comment.
    pub comment: Option<String>,
    /// The program that made the file.
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// The info dictionary, decoded.
    pub info: Info,
    /// SHA-1 of the raw info bytes.
    pub info_hash: InfoHash,
    info_bytes: Vec<u8>,
    /// Top-level keys we do not interpret (kept on edit).
    extra: Dict,
}

/// Why a `.torrent` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetainfoError {
    /// Not bencode, or a key of the wrong type. Transparent: the inner error is this error's
    /// message, not also its source (else a `{:#}` chain prints it twice).
    #[error(transparent)]
    Bencode(#[from] BencodeError),
    /// The file is not a dictionary at the top.
    #[error("not a torrent: the top level is not a dictionary")]
    NotADict,
    /// No `info` dictionary.
    #[error("not a torrent: no `info` dictionary")]
    NoInfo,
    /// `pieces` is not a whole number of 20-byte hashes.
    #[error("`pieces` is {0} bytes, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    /// The piece length is 0 or larger than we accept.
    #[error("piece length {0} is out of range (1 byte to 64 MiB)")]
    PieceLength(u64),
    /// The number of piece hashes does not match the total length.
    #[error(
        "{found} piece hashes for {total} bytes in pieces of {piece_length}: expected {expected}"
    )]
    PieceCount {
        /// Hashes in the file.
        found: usize,
        /// Hashes the length calls for.
        expected: u64,
        /// Total length.
        total: u64,
        /// Piece length.
        piece_length: u64,
    },
    /// Neither or both of `length` and `files`.
    #[error("info must have exactly one of `length` (single file) or `files` (multi-file)")]
    LengthOrFiles,
    /// An empty `files` list, or too many files.
    #[error("`files` must list between 1 and {MAX_FILES} files, found {0}")]
    FileCount(usize),
    /// The lengths add up past 2^64.
    #[error("file lengths add up to more than 2^64 bytes")]
    TooLarge,
    /// A path component that could escape the download folder or is not a plain name.
    #[error("unsafe path {path:?}: {why}")]
    UnsafePath {
        /// The path as written in the torrent.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two files with the same path, or a file that is also a folder of another.
    #[error("path {0:?} is listed twice, or as both a file and a folder")]
    PathClash(String),
}

/// Whether `c` can be used as one component of a path on disk: not empty, not `.` or `..`, no
/// separators or NUL. Returns what is wrong otherwise.
pub fn check_component(c: &str) -> Result<(), &'static str> {
    if c.is_empty() {
        Err("empty path component")
    } else if c == "." || c == ".." {
        Err("`.` or `..` component")
    } else if c.contains(['/', '\\']) {
        Err("separator inside a path component")
    } else if c.contains('\0') {
        Err("NUL inside a path component")
    } else if c.len() > 255 {
        Err("path component longer than 255 bytes")
    } else {
        Ok(())
    }
}

fn unsafe_path(components: &[String], why: &'static str) -> MetainfoError {
    MetainfoError::UnsafePath {
        path: components.join("/"),
        why,
    }
}

impl Metainfo {
    /// Parse and validate a `.torrent` file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let mut decoder = Decoder::new(bytes).with_max_depth(bencode::MAX_DEPTH);
        let mut top = Dict::new();
        let mut info_bytes = None;
        {
            let object = decoder.next_object().map_err(bencode::syntax)?;
            let mut dict = match object {
                Some(Object::Dict(d)) => d,
                Some(_) => return Err(MetainfoError::NotADict),
                None => return Err(BencodeError::Empty.into()),
            };
            while let Some((k, v)) = dict.next_pair().map_err(bencode::syntax)? {
                if k == b"info" {
                    match v {
                        Object::Dict(d) => {
                            info_bytes = Some(d.into_raw().map_err(bencode::syntax)?.to_vec())
                        }
                        _ => return Err(bencode::type_err("info", "a dictionary").into()),
                    }
                } else {
                    use bendy::decoding::FromBencode;
                    let v = Value::decode_bencode_object(v).map_err(bencode::syntax)?;
                    top.insert(k.to_vec().into(), v.into_owned());
                }
            }
        }
        if !matches!(decoder.next_object(), Ok(None)) {
            return Err(BencodeError::Syntax("stray bytes after the torrent".into()).into());
        }
        let info_bytes = info_bytes.ok_or(MetainfoError::NoInfo)?;
        let info_value = bencode::decode(&info_bytes)?;
        let info = parse_info(as_dict(&info_value, "info")?)?;

        let announce = top.opt_text("announce")?.filter(|s| !s.is_empty());
        let announce_list = match top.opt_list("announce-list") {
            // Lenient: a tier or URL of the wrong type is skipped, not fatal.
            Ok(Some(tiers)) => tiers
                .iter()
                .filter_map(|t| match t {
                    Value::List(urls) => Some(
                        urls.iter()
                            .filter_map(|u| match u {
                                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                                _ => None,
                            })
                            .filter(|u| !u.is_empty())
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .filter(|t| !t.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        let comment = top.opt_text("comment").ok().flatten();
        let created_by = top.opt_text("created by").ok().flatten();
        let creation_date = top.opt_int("creation date").ok().flatten();
        for k in [
            "announce",
            "announce-list",
            "comment",
            "created by",
            "creation date",
        ] {
            top.remove(k.as_bytes());
        }
        let info_hash = InfoHash(Sha1::digest(&info_bytes).into());
        Ok(Metainfo {
            announce,
            announce_list,
            comment,
            created_by,
            creation_date,
            info,
            info_hash,
            info_bytes,
            extra: top,
        })
    }

    /// The file's bytes: top-level keys re-encoded in sorted order, `info` copied verbatim.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut top = self.extra.clone();
        if let Some(a) = &self.announce {
            top.insert(bencode::key("announce"), bencode::text(a));
        }
        if !self.announce_list.is_empty() {
            let tiers = self
                .announce_list
                .iter()
                .map(|t| Value::List(t.iter().map(|u| bencode::text(u)).collect()))
                .collect();
            top.insert(bencode::key("announce-list"), Value::List(tiers));
        }
        if let Some(c) = &self.comment {
            top.insert(bencode::key("comment"), bencode::text(c));
        }
        if let Some(c) = &self.created_by {
            top.insert(bencode::key("created by"), bencode::text(c));
        }
        if let Some(d) = self.creation_date {
            top.insert(bencode::key("creation date"), Value::Integer(d));
        }
        // Write the dict by hand so that `info` goes in as the exact original bytes.
        let mut out = Vec::with_capacity(self.info_bytes.len() + 256);
        out.push(b'd');
        let mut info_written = false;
        for (k, v) in &top {
            if !info_written && k.as_ref() > b"info".as_slice() {
                push_key(&mut out, b"info");
                out.extend_from_slice(&self.info_bytes);
                info_written = true;
            }
            push_key(&mut out, k);
            out.extend_from_slice(&bencode::encode(v));
        }
        if !info_written {
            push_key(&mut out, b"info");
            out.extend_from_slice(&self.info_bytes);
        }
        out.push(b'e');
        out
    }

    /// A torrent from an info dictionary fetched for a magnet link (checked against the
    /// info-hash by the caller) and the link's trackers.
    pub fn from_info(info: &[u8], trackers: &[String]) -> Result<Metainfo, MetainfoError> {
        let mut bytes = Vec::with_capacity(info.len() + 8);
        bytes.extend_from_slice(b"d4:info");
        bytes.extend_from_slice(info);
        bytes.push(b'e');
        let mut meta = Metainfo::from_bytes(&bytes)?;
        meta.set_trackers(trackers);
        Ok(meta)
    }

    /// The raw bencoded `info` dictionary.
    pub fn info_bytes(&self) -> &[u8] {
        &self.info_bytes
    }

    /// Every tracker URL, tiers first (BEP 12 says use `announce-list` when present), without
    /// duplicates.
    pub fn trackers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for url in self.announce_list.iter().flatten().chain(&self.announce) {
            if !out.contains(url) {
                out.push(url.clone());
            }
        }
        out
    }

    /// Replace the trackers: the first becomes `announce`; with more than one, each becomes a
    /// tier of its own in `announce-list`. The info-hash does not change.
    pub fn set_trackers(&mut self, urls: &[String]) {
        self.announce = urls.first().cloned();
        self.announce_list = if urls.len() > 1 {
            urls.iter().map(|u| vec![u.clone()]).collect()
        } else {
            Vec::new()
        };
    }

    /// Total bytes of all files.
    pub fn total_length(&self) -> u64 {
        self.info.files.iter().map(|f| f.length).sum()
    }

    /// Piece and file geometry.
    pub fn layout(&self) -> Layout {
        // Validated at parse time: piece length in range and no overflow.
        Layout::new(
            self.info.piece_length,
            self.info.files.iter().map(|f| f.length),
        )
        .expect("validated layout")
    }

    /// Path of file `i` relative to the download folder: `name` for a single file,
    /// `name/dir/.../file` for a multi-file torrent. Every component is validated.
    pub fn relative_path(&self, i: usize) -> std::path::PathBuf {
        let mut p = std::path::PathBuf::new();
        if self.info.multi_file {
            p.push(&self.info.name);
        }
        for c in &self.info.files[i].path {
            p.push(c);
        }
        p
    }
}

fn push_key(out: &mut Vec<u8>, k: &[u8]) {
    out.extend_from_slice(k.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(k);
}

fn parse_info(d: &Dict) -> Result<Info, MetainfoError> {
    let name = d
        .opt_text("name")?
        .ok_or_else(|| BencodeError::Missing("name".into()))?;
    check_component(&name).map_err(|why| unsafe_path(std::slice::from_ref(&name), why))?;
    let piece_length = d.req_u64("piece length")?;
    if piece_length == 0 || piece_length > MAX_PIECE_LENGTH {
        return Err(MetainfoError::PieceLength(piece_length));
    }
    let raw_pieces = d.req_bytes("pieces")?;
    if !raw_pieces.len().is_multiple_of(20) {
        return Err(MetainfoError::PiecesNotMultipleOf20(raw_pieces.len()));
    }
    let private = d.opt_int("private")?.unwrap_or(0) == 1;

    let (files, multi_file) = match (d.raw("length"), d.opt_list("files")?) {
        (Some(_), None) => (
            vec![FileEntry {
                path: vec![name.clone()],
                length: d.req_u64("length")?,
            }],
            false,
        ),
        (None, Some(list)) => (parse_files(list)?, true),
        _ => return Err(MetainfoError::LengthOrFiles),
    };

    let mut total = 0u64;
    for f in &files {
        total = total.checked_add(f.length).ok_or(MetainfoError::TooLarge)?;
    }
    let expected = total.div_ceil(piece_length);
    let found = raw_pieces.len() / 20;
    if expected != found as u64 {
        return Err(MetainfoError::PieceCount {
            found,
            expected,
            total,
            piece_length,
        });
    }
    let pieces = raw_pieces
        .chunks_exact(20)
        .map(|c| c.try_into().expect("20-byte chunk"))
        .collect();
    Ok(Info {
        name,
        piece_length,
        pieces,
        files,
        multi_file,
        private,
    })
}

fn parse_files(list: &[Value<'static>]) -> Result<Vec<FileEntry>, MetainfoError> {
    if list.is_empty() || list.len() > MAX_FILES {
        return Err(MetainfoError::FileCount(list.len()));
    }
    let mut files = Vec::with_capacity(list.len());
    for item in list {
        let d = as_dict(item, "files[]")?;
        let length = d.req_u64("length")?;
        let comps = d
            .opt_list("path")?
            .ok_or_else(|| BencodeError::Missing("path".into()))?;
        let mut path = Vec::with_capacity(comps.len());
        for c in comps {
            match c {
                Value::Bytes(b) => path.push(String::from_utf8_lossy(b).into_owned()),
                _ => return Err(bencode::type_err("path", "a list of byte strings").into()),
            }
        }
        if path.is_empty() {
            return Err(unsafe_path(&path, "empty path"));
        }
        for c in &path {
            check_component(c).map_err(|why| unsafe_path(&path, why))?;
        }
        files.push(FileEntry { path, length });
    }
    check_clashes(&files)?;
    Ok(files)
}

/// Refuse duplicate paths and a path that is both a file and a folder (`a` and `a/b`).
/// Case is folded so that the torrent also lands safely on case-insensitive file systems.
fn check_clashes(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut paths: Vec<Vec<String>> = files
        .iter()
        .map(|f| f.path.iter().map(|c| c.to_lowercase()).collect())
        .collect();
    paths.sort();
    for pair in paths.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // After sorting, a file that is a prefix of another sits right before it.
        if b.len() >= a.len() && b[..a.len()] == a[..] {
            return Err(MetainfoError::PathClash(a.join("/")));
        }
    }
    Ok(())
}

/// The files of a new torrent.
#[derive(Debug, Clone)]
pub enum Content {
    /// One file of this many bytes.
    Single(u64),
    /// The files of a folder, paths relative to it.
    Multi(Vec<FileEntry>),
}

/// What a new torrent is made of; [`NewTorrent::build`] encodes it.
#[derive(Debug, Clone)]
pub struct NewTorrent {
    /// File or folder name.
    pub name: String,
    /// Bytes per piece.
    pub piece_length: u64,
    /// Piece hashes.
    pub pieces: Vec<[u8; 20]>,
    /// A single file, or the files of a folder.
    pub content: Content,
    /// BEP 27 private flag.
    pub private: bool,
    /// Tracker URLs (first = `announce`; several = announce-list tiers).
    pub trackers: Vec<String>,
    /// Optional comment.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date`.
    pub creation_date: Option<i64>,
}

impl NewTorrent {
    /// Encode and re-parse, so that what we write is exactly what we would accept.
    pub fn build(&self) -> Result<Metainfo, MetainfoError> {
        let mut info = Dict::new();
        info.insert(bencode::key("name"), bencode::text(&self.name));
        info.insert(
            bencode::key("piece length"),
            Value::Integer(self.piece_length as i64),
        );
        info.insert(bencode::key("pieces"), bencode::bytes(self.pieces.concat()));
        if self.private {
            info.insert(bencode::key("private"), Value::Integer(1));
        }
        match &self.content {
            Content::Single(length) => {
                info.insert(bencode::key("length"), Value::Integer(*length as i64));
            }
            Content::Multi(files) => {
                let list = files
                    .iter()
                    .map(|f| {
                        let mut d = Dict::new();
                        d.insert(bencode::key("length"), Value::Integer(f.length as i64));
                        d.insert(
                            bencode::key("path"),
                            Value::List(f.path.iter().map(|c| bencode::text(c)).collect()),
                        );
                        Value::Dict(d)
                    })
                    .collect();
                info.insert(bencode::key("files"), Value::List(list));
            }
        }
        let mut top = Dict::new();
        top.insert(bencode::key("info"), Value::Dict(info));
        let mut m = Metainfo::from_bytes(&bencode::encode(&Value::Dict(top)))?;
        m.set_trackers(&self.trackers);
        m.comment = self.comment.clone();
        m.created_by = self.created_by.clone();
        m.creation_date = self.creation_date;
        Ok(m)
    }
}

/// Piece length for `total` bytes: a power of two giving about 1,000–2,000 pieces, between
/// 16 KiB and 16 MiB.
pub fn auto_piece_length(total: u64) -> u64 {
    let target = total.div_ceil(2000).max(1);
    target
        .checked_next_power_of_two()
        .unwrap_or(16 << 20)
        .clamp(16 << 10, 16 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(pieces: usize, length: u64, plen: u64) -> Vec<u8> {
        let p = "x".repeat(20 * pieces);
        format!(
            "d8:announce20:http://t.example/ann4:infod6:lengthi{length}e4:name5:a.bin12:piece lengthi{plen}e6:pieces{}:{p}ee",
            p.len()
        )
        .into_bytes()
    }

    #[test]
    fn parses_single_file_and_hashes_raw_info() {
        let bytes = single(3, 40_000, 16384);
        let m = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(m.info.name, "a.bin");
        assert_eq!(m.total_length(), 40_000);
        assert_eq!(m.info.pieces.len(), 3);
        assert!(!m.info.multi_file);
        assert_eq!(m.trackers(), vec!["http://t.example/ann".to_string()]);
        let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
        let raw = &bytes[start..bytes.len() - 1];
        assert_eq!(m.info_bytes(), raw);
        assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(raw)));
        // Writing back gives the same bytes.
        assert_eq!(m.to_bytes(), bytes);
    }

    #[test]
    fn unknown_info_keys_are_kept_in_the_hash() {
        let p = "y".repeat(20);
        let with =
            format!("d4:infod6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:{p}4:zzzzi7eee");
        let without = format!("d4:infod6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:{p}ee");
        let a = Metainfo::from_bytes(with.as_bytes()).unwrap();
        let b = Metainfo::from_bytes(without.as_bytes()).unwrap();
        assert_ne!(a.info_hash, b.info_hash);
        let mut edited = a.clone();
        edited.set_trackers(&["http://x/announce".into(), "http://y/announce".into()]);
        let again = Metainfo::from_bytes(&edited.to_bytes()).unwrap();
        assert_eq!(again.info_hash, a.info_hash);
        assert_eq!(again.trackers().len(), 2);
    }

    #[test]
    fn rejects_bad_piece_counts_and_lengths() {
        let e = Metainfo::from_bytes(&single(2, 40_000, 16384)).unwrap_err();
        assert!(
            matches!(e, MetainfoError::PieceCount { expected: 3, .. }),
            "{e}"
        );
        let e = Metainfo::from_bytes(&single(1, 5, 0)).unwrap_err();
        assert_eq!(e, MetainfoError::PieceLength(0));
        // A huge declared length needs a matching number of hashes: refused, nothing allocated.
        let e = Metainfo::from_bytes(&single(1, 1 << 60, 16384)).unwrap_err();
        assert!(matches!(e, MetainfoError::PieceCount { .. }));
        assert!(Metainfo::from_bytes(b"d4:infoi3ee").is_err());
        assert_eq!(
            Metainfo::from_bytes(b"le").unwrap_err(),
            MetainfoError::NotADict
        );
        assert_eq!(
            Metainfo::from_bytes(b"de").unwrap_err(),
            MetainfoError::NoInfo
        );
        // truncated
        let full = single(3, 40_000, 16384);
        for cut in [1, 10, full.len() / 2, full.len() - 1] {
            assert!(Metainfo::from_bytes(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    fn multi(paths: &[&[&str]]) -> Result<Metainfo, MetainfoError> {
        NewTorrent {
            name: "top".into(),
            piece_length: 16384,
            pieces: vec![[0; 20]],
            content: Content::Multi(
                paths
                    .iter()
                    .map(|p| FileEntry {
                        path: p.iter().map(|s| s.to_string()).collect(),
                        length: 1,
                    })
                    .collect(),
            ),
            private: true,
            trackers: vec!["http://t/announce".into()],
            comment: Some("hi".into()),
            created_by: None,
            creation_date: Some(1),
        }
        .build()
    }

    #[test]
    fn builds_multi_file_and_refuses_unsafe_paths() {
        let m = multi(&[&["a"], &["sub", "b"], &["sub", "c"]]).unwrap();
        assert!(m.info.multi_file && m.info.private);
        assert_eq!(m.relative_path(1), std::path::Path::new("top/sub/b"));
        assert_eq!(m.comment.as_deref(), Some("hi"));
        let again = Metainfo::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(again, m);

        for bad in [
            &["..", "x"][..],
            &["a/b"][..],
            &[""][..],
            &["."][..],
            &["a\\b"][..],
        ] {
            let e = multi(&[bad]).unwrap_err();
            assert!(
                matches!(e, MetainfoError::UnsafePath { .. }),
                "{bad:?}: {e}"
            );
        }
        assert!(matches!(
            multi(&[&["a"], &["a", "b"]]).unwrap_err(),
            MetainfoError::PathClash(_)
        ));
        assert!(matches!(
            multi(&[&["A"], &["a"]]).unwrap_err(),
            MetainfoError::PathClash(_)
        ));
    }

    #[test]
    fn bencode_errors_are_not_repeated_as_their_own_source() {
        let e = Metainfo::from_bytes(b"").unwrap_err();
        assert_eq!(e.to_string(), "empty input");
        assert!(std::error::Error::source(&e).is_none(), "{e:?}");
    }

    #[test]
    fn unsafe_name_is_refused() {
        let p = "y".repeat(20);
        let t = format!("d4:infod6:lengthi5e4:name2:..12:piece lengthi16384e6:pieces20:{p}ee");
        assert!(matches!(
            Metainfo::from_bytes(t.as_bytes()).unwrap_err(),
            MetainfoError::UnsafePath { .. }
        ));
    }

    #[test]
    fn auto_piece_length_aims_at_1000_to_2000_pieces() {
        assert_eq!(auto_piece_length(0), 16 << 10);
        assert_eq!(auto_piece_length(1 << 20), 16 << 10);
        for total in [100u64 << 20, 1 << 30, 3 << 30, 7_000_000_000] {
            let n = total.div_ceil(auto_piece_length(total));
            assert!((1000..=2000).contains(&n), "{total}: {n} pieces");
        }
        assert_eq!(auto_piece_length(1 << 50), 16 << 20);
    }
}
