//! What a person sees of long work: a progress bar on a terminal, plain periodic lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

/// How often plain (non-terminal) progress lines are printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Byte progress of one job, safe to advance from many threads.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    /// Progress over `total` bytes. Shows a bar when stderr is a terminal; otherwise prints a
    /// line every few seconds (so short jobs print nothing).
    pub fn bytes(total: u64, label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// Count `n` more bytes done.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= PLAIN_EVERY {
            *last = Instant::now();
            eprintln!(
                "{}: {} of {} ({:.0}%), {}/s",
                self.label,
                HumanBytes(done),
                HumanBytes(self.total),
                percent(done, self.total),
                HumanBytes(rate(done, self.started.elapsed())),
            );
        }
    }

    /// End the bar (or nothing in plain mode).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `part` of `whole` in percent (100 for an empty whole).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Bytes per second.
pub fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0
    } else {
        (bytes as f64 / secs) as u64
    }
}

/// "1 peer", "2 peers", "0 peers": `n` and the noun in the right number.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "3.10 MiB/s", or `None` when there is nothing to measure: no bytes, or less than a
/// millisecond (a rate from that would be noise, like 7.28 GiB/s for an instant).
pub fn rate_text(bytes: u64, elapsed: Duration) -> Option<String> {
    (bytes > 0 && elapsed >= Duration::from_millis(1))
        .then(|| format!("{}/s", HumanBytes(rate(bytes, elapsed))))
}

/// A short duration: "4.2 ms", "850 ms", "12.3 s", "4 min 05 s".
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10 {
        // A loopback transfer can take a few milliseconds: keep a decimal.
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// "1.5 MiB (1,572,864 bytes)".
pub fn size_both(bytes: u64) -> String {
    format!("{} ({} bytes)", HumanBytes(bytes), grouped(bytes))
}

/// Digits grouped by thousands: 1234567 -> "1,234,567".
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Text from outside (a torrent's name, paths or comment, a tracker's failure reason, a peer
/// id) made safe to print on a terminal: control characters (escape sequences included) are
/// shown as `\u{1b}`-style escapes, so that a hostile torrent cannot move the cursor, retitle
/// the window or hide text. Printable text, non-ASCII letters included, is kept as it is.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(123), "123");
        assert_eq!(size_both(1536), "1.50 KiB (1,536 bytes)");
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(0, 0), 100.0);
        assert_eq!(duration(Duration::from_millis(5)), "5.0 ms");
        assert_eq!(duration(Duration::from_millis(15)), "15 ms");
        assert_eq!(plural(1, "file", "files"), "1 file");
        assert_eq!(rate_text(0, Duration::from_secs(1)), None);
        assert_eq!(rate_text(1 << 30, Duration::from_micros(10)), None);
        assert_eq!(
            rate_text(3 << 20, Duration::from_secs(1)).as_deref(),
            Some("3.00 MiB/s")
        );
        assert_eq!(plural(0, "peer", "peers"), "0 peers");
        assert_eq!(duration(Duration::from_millis(12_345)), "12.3 s");
        assert_eq!(duration(Duration::from_secs(245)), "4 min 05 s");
    }

    #[test]
    fn escape_shows_control_characters_and_keeps_letters() {
        assert_eq!(escape("album"), "album");
        assert_eq!(escape("\u{1b}]0;pwned\u{7}x"), "\\u{1b}]0;pwned\\u{7}x");
        assert_eq!(escape("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(escape("café \u{9b}31m"), "café \\u{9b}31m");
    }
}
