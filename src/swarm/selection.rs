//! Which files of a torrent to download: `--files 1,3-5` (numbers as `bt info --files` prints
//! them, from 1) and `--only PATTERN` (a glob on the path inside the torrent), and the pieces
//! that follows. Pure: no files, no clock.
//!
//! A piece is wanted when it holds a byte of a selected file, so the pieces at the edges of a
//! selected file, which it shares with its neighbours, are fetched whole.

use crate::proto::bitfield::Bitfield;
use crate::proto::layout::Layout;
use crate::proto::metainfo::Metainfo;

/// Longest `--files` list accepted (a command line or a saved choice: every other file of a
/// torrent of 100,000 files takes about 300 KB).
pub const MAX_SPEC: usize = 1024 * 1024;

/// The files of one torrent chosen for download, one flag per file in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    files: Vec<bool>,
}

impl Selection {
    /// Every one of `count` files.
    pub fn all(count: usize) -> Selection {
        Selection {
            files: vec![true; count],
        }
    }

    /// Files by number (1-based, as `bt info --files` prints them): `1,3-5`. Out-of-range
    /// numbers, reversed ranges and stray text are errors that say what is wrong.
    pub fn from_numbers(spec: &str, count: usize) -> Result<Selection, String> {
        let mut files = vec![false; count];
        if spec.len() > MAX_SPEC {
            return Err(format!("the file list is longer than {MAX_SPEC} bytes"));
        }
        let number = |t: &str| -> Result<usize, String> {
            let n: usize = t
                .trim()
                .parse()
                .map_err(|_| format!("`{}` is not a file number", t.trim()))?;
            if n == 0 || n > count {
                return Err(format!(
                    "there is no file {n}: the torrent has {} (numbered from 1, as `bt info --files` lists them)",
                    crate::ui::plural(count, "file", "files")
                ));
            }
            Ok(n - 1)
        };
        for part in spec.split(',') {
            if part.trim().is_empty() {
                return Err(format!(
                    "`{spec}` should be file numbers and ranges, like 1,3-5"
                ));
            }
            let (from, to) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let n = number(part)?;
                    (n, n)
                }
            };
            if from > to {
                return Err(format!("`{}` is a range backwards", part.trim()));
            }
            files[from..=to].iter_mut().for_each(|f| *f = true);
        }
        Ok(Selection { files })
    }

    /// The files of `meta` whose path matches one of `patterns` (see [`matches`]).
    pub fn from_patterns(meta: &Metainfo, patterns: &[String]) -> Selection {
        let files = meta
            .info
            .files
            .iter()
            .map(|f| {
                let inner = f.path.join("/");
                let full = if meta.info.multi_file {
                    format!("{}/{inner}", meta.info.name)
                } else {
                    inner.clone()
                };
                patterns
                    .iter()
                    .any(|p| matches(p, &inner) || matches(p, &full))
            })
            .collect();
        Selection { files }
    }

    /// The files chosen by `--files` and `--only` together (either one picks a file); `None`
    /// when neither is given. An error when the numbers are wrong or nothing is chosen.
    pub fn from_args(
        meta: &Metainfo,
        numbers: Option<&str>,
        patterns: &[String],
    ) -> Result<Option<Selection>, String> {
        let count = meta.info.files.len();
        let mut sel = match numbers {
            Some(spec) => Selection::from_numbers(spec, count)?,
            None if patterns.is_empty() => return Ok(None),
            None => Selection {
                files: vec![false; count],
            },
        };
        if !patterns.is_empty() {
            let by_name = Selection::from_patterns(meta, patterns);
            for (f, m) in sel.files.iter_mut().zip(by_name.files) {
                *f |= m;
            }
        }
        if sel.count() == 0 {
            return Err(format!(
                "--only {} matches none of the {} of {}; `bt info --files` lists them",
                patterns.join(" --only "),
                crate::ui::plural(count, "file", "files"),
                meta.info.name
            ));
        }
        Ok(Some(sel))
    }

    /// Whether file `i` is chosen.
    pub fn contains(&self, i: usize) -> bool {
        self.files.get(i).copied().unwrap_or(false)
    }

    /// One flag per file.
    pub fn flags(&self) -> &[bool] {
        &self.files
    }

    /// How many files are chosen.
    pub fn count(&self) -> usize {
        self.files.iter().filter(|f| **f).count()
    }

    /// How many files the torrent has.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True for a torrent without files (never a valid one).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every file is chosen.
    pub fn is_all(&self) -> bool {
        self.files.iter().all(|f| *f)
    }

    /// The pieces that hold a byte of a chosen file.
    pub fn wanted_pieces(&self, layout: &Layout) -> Bitfield {
        let mut wanted = Bitfield::new(layout.piece_count());
        for (i, _) in self.files.iter().enumerate().filter(|(_, f)| **f) {
            for p in layout.pieces_of_file(i) {
                wanted.set(p);
            }
        }
        wanted
    }

    /// The chosen files as `--files` takes them: `1,3-5`.
    pub fn to_numbers(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.files.len() {
            if !self.files[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < self.files.len() && self.files[i + 1] {
                i += 1;
            }
            out.push(if start == i {
                format!("{}", start + 1)
            } else {
                format!("{}-{}", start + 1, i + 1)
            });
            i += 1;
        }
        out.join(",")
    }
}

/// Whether `path` (components joined by `/`) matches the glob `pattern`: `*` is any run of
/// characters but `/`, `**` any run including `/`, `?` one character but `/`. A pattern with
/// no `/` is matched against the file name alone, so `*.flac` finds them in every folder.
pub fn matches(pattern: &str, path: &str) -> bool {
    let text = if pattern.contains('/') {
        path
    } else {
        path.rsplit('/').next().unwrap_or(path)
    };
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t)
}

/// Iterative glob match with backtracking (never exponential): a mismatch lets the last `*`
/// eat one more character (not a `/`), else the last `**` (anything), else fails.
fn glob(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // (pattern index after the star, text index where its run ends)
    let mut single: Option<(usize, usize)> = None;
    let mut double: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            if p.get(pi + 1) == Some(&'*') {
                pi += 2;
                double = Some((pi, ti));
                single = None;
            } else {
                pi += 1;
                single = Some((pi, ti));
            }
            continue;
        }
        if pi < p.len() && (p[pi] == t[ti] || (p[pi] == '?' && t[ti] != '/')) {
            pi += 1;
            ti += 1;
            continue;
        }
        match (single, double) {
            (Some((after, end)), _) if t[end] != '/' => {
                single = Some((after, end + 1));
                (pi, ti) = (after, end + 1);
            }
            (_, Some((after, end))) => {
                single = None;
                double = Some((after, end + 1));
                (pi, ti) = (after, end + 1);
            }
            _ => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metainfo::{Content, FileEntry, NewTorrent};

    #[test]
    fn numbers_and_ranges() {
        let s = Selection::from_numbers("1,3-5", 7).unwrap();
        assert_eq!(
            s.flags(),
            [true, false, true, true, true, false, false].as_slice()
        );
        assert_eq!(s.to_numbers(), "1,3-5");
        assert_eq!(s.count(), 4);
        assert_eq!(
            Selection::from_numbers(" 7 , 2", 7).unwrap().to_numbers(),
            "2,7"
        );
        for (bad, says) in [
            ("8", "no file 8"),
            ("0", "no file 0"),
            ("2-9", "no file 9"),
            ("5-3", "backwards"),
            ("x", "`x` is not a file number"),
            ("1,,2", "like 1,3-5"),
            ("", "like 1,3-5"),
        ] {
            let e = Selection::from_numbers(bad, 7).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(Selection::from_numbers("8", 7)
            .unwrap_err()
            .contains("7 files"));
    }

    #[test]
    fn globs() {
        assert!(matches("*.flac", "disc1/01.flac"));
        assert!(matches("*.flac", "01.flac"));
        assert!(!matches("*.flac", "01.flac.txt"));
        assert!(matches("disc1/*", "disc1/01.flac"));
        assert!(!matches("disc1/*", "disc1/sub/01.flac"));
        assert!(matches("disc1/**", "disc1/sub/01.flac"));
        assert!(matches("**/0?.flac", "a/b/03.flac"));
        assert!(!matches("d?sc1/x", "d/sc1/x"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("*", "anything"));
        // Many stars against a long name: no blow-up.
        let long = "a".repeat(10_000);
        assert!(!matches(&"*a".repeat(50), &format!("{long}b")));
        // A `*` that meets a `/` hands back to the `**` before it.
        assert!(matches("**/a*b", "x/a/y/azb"));
    }

    fn three_files() -> Metainfo {
        NewTorrent {
            name: "album".into(),
            piece_length: 16,
            pieces: vec![[0; 20]; 3],
            content: Content::Multi(
                [
                    (vec!["a.txt"], 20),
                    (vec!["sub", "b.flac"], 12),
                    (vec!["c.flac"], 10),
                ]
                .into_iter()
                .map(|(path, length)| FileEntry {
                    path: path.into_iter().map(String::from).collect(),
                    length,
                })
                .collect(),
            ),
            private: false,
            trackers: vec![],
            comment: None,
            created_by: None,
            creation_date: None,
        }
        .build()
        .unwrap()
    }

    #[test]
    fn patterns_and_numbers_together_and_the_pieces_they_need() {
        let m = three_files();
        let only = Selection::from_args(&m, None, &["*.flac".into()])
            .unwrap()
            .unwrap();
        assert_eq!(only.to_numbers(), "2-3");
        // Paths with the torrent's name match too.
        let full = Selection::from_args(&m, None, &["album/sub/*".into()])
            .unwrap()
            .unwrap();
        assert_eq!(full.to_numbers(), "2");
        let both = Selection::from_args(&m, Some("1"), &["c.*".into()])
            .unwrap()
            .unwrap();
        assert_eq!(both.to_numbers(), "1,3");
        assert_eq!(Selection::from_args(&m, None, &[]).unwrap(), None);
        let e = Selection::from_args(&m, None, &["*.mp3".into()]).unwrap_err();
        assert!(e.contains("none of the 3 files of album"), "{e}");
        // Bytes: a.txt 0..20, b.flac 20..32, c.flac 32..42; pieces of 16: 0..16, 16..32, 32..42.
        let l = m.layout();
        let bits = |s: &Selection| {
            let w = s.wanted_pieces(&l);
            (0..3).map(|i| w.get(i)).collect::<Vec<_>>()
        };
        assert_eq!(bits(&full), [false, true, false]);
        assert_eq!(
            bits(&Selection::from_numbers("1", 3).unwrap()),
            [true, true, false]
        );
        assert_eq!(
            bits(&Selection::from_numbers("3", 3).unwrap()),
            [false, false, true]
        );
    }
}
