//! How a running torrent looks: one progress bar per torrent on a terminal (each line fits 80
//! columns), plain lines otherwise (printed when something changes, not on a timer), one JSON
//! object per line with `--json`, nothing with `--quiet`; and the summary printed when a
//! download completes, with times that say what they measure.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::swarm::torrent::Snapshot;
use crate::ui;

/// Rates are measured over at least this long (shorter gaps make them jump).
const RATE_WINDOW: Duration = Duration::from_millis(900);
/// Widest torrent name shown in front of a bar (longer ones are cut, with `~`).
const NAME_WIDTH: usize = 14;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a terminal.
    Bars,
    /// A plain line when a torrent's tenth of progress, peer count or state changes.
    Plain,
    /// One JSON object per line: progress each second, and one at completion.
    Json,
    /// Nothing but the summaries.
    Quiet,
}

impl Mode {
    /// Bars when stdout is a terminal, plain lines otherwise; `json` and `quiet` win.
    pub fn pick(json: bool, quiet: bool) -> Mode {
        match (json, quiet) {
            (true, _) => Mode::Json,
            (_, true) => Mode::Quiet,
            _ if std::io::stdout().is_terminal() => Mode::Bars,
            _ => Mode::Plain,
        }
    }
}

/// What one plain line says; a new line is printed only when it changes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PlainKey {
    tenth: u64,
    peers: usize,
    complete: bool,
}

/// Live display of several torrents.
pub struct Display {
    mode: Mode,
    multi: Option<MultiProgress>,
    /// One per torrent; `None` once its summary replaced it.
    bars: Vec<Option<ProgressBar>>,
    names: Vec<String>,
    hashes: Vec<String>,
    /// The last rate sample: when, bytes received, bytes sent.
    last: Vec<(Instant, u64, u64)>,
    /// Bytes per second received and sent.
    rates: Vec<(u64, u64)>,
    plain: Vec<Option<PlainKey>>,
    /// When the last JSON progress line went out, per torrent.
    json_at: Vec<Option<Instant>>,
}

impl Display {
    /// A display for these torrents: `names` (already escaped) with their info-hashes in hex
    /// and total sizes.
    pub fn new(mode: Mode, names: Vec<String>, hashes: Vec<String>, totals: &[u64]) -> Display {
        let multi = (mode == Mode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        let bars = names
            .iter()
            .zip(totals)
            .map(|(n, &t)| {
                let m = multi.as_ref()?;
                let bar = ProgressBar::new(t);
                // 14 + 2 + 20 + 2 + 4 + 1 = 43 columns, then a message cut to what is left.
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:14} [{bar:20.green/white}] {percent:>3}% {wide_msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(short_name(n));
                Some(m.add(bar))
            })
            .collect();
        let now = Instant::now();
        let n = names.len();
        Display {
            mode,
            multi,
            bars,
            names,
            hashes,
            last: vec![(now, 0, 0); n],
            rates: vec![(0, 0); n],
            plain: vec![None; n],
            json_at: vec![None; n],
        }
    }

    /// Refresh every torrent from its snapshot (same order as the names); torrents whose
    /// summary was printed are left alone.
    pub fn refresh(&mut self, snaps: &[Snapshot]) {
        let now = Instant::now();
        for (i, s) in snaps.iter().enumerate() {
            let (t0, d0, u0) = self.last[i];
            let dt = now.duration_since(t0);
            let rated = dt >= RATE_WINDOW;
            if rated {
                self.rates[i] = (
                    ui::rate(s.downloaded.saturating_sub(d0), dt),
                    ui::rate(s.uploaded.saturating_sub(u0), dt),
                );
                self.last[i] = (now, s.downloaded, s.uploaded);
            }
            match self.mode {
                Mode::Bars => {
                    if let Some(bar) = &self.bars[i] {
                        bar.set_position(s.have_bytes);
                        bar.set_message(self.short_status(i, s));
                    }
                }
                Mode::Plain => {
                    let key = PlainKey {
                        tenth: (ui::percent(s.have_bytes, s.total_bytes) / 10.0) as u64,
                        peers: s.peers.len(),
                        complete: s.complete(),
                    };
                    if self.plain[i] != Some(key) {
                        self.plain[i] = Some(key);
                        println!(
                            "{}: {:.0}% ({} of {}), {}",
                            self.names[i],
                            ui::percent(s.have_bytes, s.total_bytes),
                            HumanBytes(s.have_bytes),
                            HumanBytes(s.total_bytes),
                            self.rates_and_peers(i, s)
                        );
                    }
                }
                Mode::Json => {
                    let due = self.json_at[i].is_none_or(|t| now.duration_since(t) >= RATE_WINDOW);
                    if due {
                        self.json_at[i] = Some(now);
                        println!("{}", self.json_progress(i, s));
                    }
                }
                Mode::Quiet => {}
            }
        }
    }

    /// The bar's message: bytes, rate, peers and ETA, short enough for the line to fit.
    fn short_status(&self, i: usize, s: &Snapshot) -> String {
        let (down, up) = self.rates[i];
        let eta = match (s.total_bytes - s.have_bytes).checked_div(down) {
            _ if s.complete() => format!("up {}/s", HumanBytes(up)),
            Some(secs) => format!("eta {secs}s"),
            None => "eta ?".into(),
        };
        format!(
            "{}/{} {}/s {} {eta}",
            HumanBytes(s.have_bytes),
            HumanBytes(s.total_bytes),
            HumanBytes(down),
            ui::plural(s.peers.len(), "peer", "peers"),
        )
    }

    fn rates_and_peers(&self, i: usize, s: &Snapshot) -> String {
        let (down, up) = self.rates[i];
        format!(
            "down {}/s, up {}/s, {}{}",
            HumanBytes(down),
            HumanBytes(up),
            ui::plural(s.peers.len(), "peer", "peers"),
            match &s.failure {
                Some(_) => ", failed",
                None if s.complete() => ", seeding",
                None => "",
            }
        )
    }

    fn json_progress(&self, i: usize, s: &Snapshot) -> serde_json::Value {
        let (down, up) = self.rates[i];
        json!({
            "event": "progress",
            "name": self.names[i],
            "info_hash": self.hashes[i],
            "state": state(s),
            "have_bytes": s.have_bytes,
            "total_bytes": s.total_bytes,
            "percent": (ui::percent(s.have_bytes, s.total_bytes) * 10.0).round() / 10.0,
            "have_pieces": s.have_pieces,
            "pieces": s.pieces,
            "down_rate": down,
            "up_rate": up,
            "downloaded": s.downloaded,
            "uploaded": s.uploaded,
            "peers": s.peers.len(),
        })
    }

    /// Torrent `i` completed: its bar gives way to `text` (the summary), or in JSON mode one
    /// `complete` object is printed.
    pub fn completed(&mut self, i: usize, text: &str, s: &Snapshot, timing: &Timing) {
        if let Some(bar) = self.bars[i].take() {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
        match self.mode {
            Mode::Json => {
                let from: Vec<_> = s
                    .history
                    .iter()
                    .filter(|(_, t)| t.downloaded > 0)
                    .map(|(addr, t)| {
                        json!({"addr": addr.to_string(), "client": t.client, "bytes": t.downloaded, "source": s.source(*addr).name()})
                    })
                    .collect();
                let v = json!({
                    "event": "complete",
                    "name": self.names[i],
                    "info_hash": self.hashes[i],
                    "pieces": s.pieces,
                    "total_bytes": s.total_bytes,
                    "received": s.downloaded,
                    "seconds_since_start": timing.total.as_secs_f64(),
                    "seconds_transfer": timing.transfer.map(|d| d.as_secs_f64()),
                    "from": from,
                });
                println!("{v}");
            }
            _ => self.println(text),
        }
    }

    /// Print a line above the bars (or plainly; on stderr in JSON mode, to keep stdout JSON).
    pub fn println(&self, text: &str) {
        match (&self.multi, self.mode) {
            (Some(m), _) => {
                let _ = m.println(text);
            }
            (None, Mode::Json) => eprintln!("{text}"),
            (None, _) => println!("{text}"),
        }
    }

    /// Take the bars away for good (nothing is drawn after this); the torrents not complete
    /// get one plain line saying where they stopped.
    pub fn finish(&mut self, snaps: &[Snapshot]) {
        for (i, bar) in self.bars.iter_mut().enumerate() {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
                if let Some(s) = snaps.get(i) {
                    println!(
                        "{}: {:.0}% ({} of {})",
                        self.names[i],
                        ui::percent(s.have_bytes, s.total_bytes),
                        HumanBytes(s.have_bytes),
                        HumanBytes(s.total_bytes)
                    );
                }
            }
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// "downloading", "seeding" or "error".
fn state(s: &Snapshot) -> &'static str {
    match &s.failure {
        Some(_) => "error",
        None if s.complete() => "seeding",
        None => "downloading",
    }
}

/// A name cut to [`NAME_WIDTH`] columns.
fn short_name(name: &str) -> String {
    if name.chars().count() <= NAME_WIDTH {
        return name.to_string();
    }
    let mut s: String = name.chars().take(NAME_WIDTH - 1).collect();
    s.push('~');
    s
}

/// The times of a completed download.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From the torrent's start (tracker, connections included) to its last piece verified.
    pub total: Duration,
    /// From the first byte seen to the last piece verified, when the first byte was seen
    /// before the end.
    pub transfer: Option<Duration>,
}

impl Timing {
    /// The times between `started`, the first byte seen (if it was) and `end`.
    pub fn new(started: Instant, first_byte: Option<Instant>, end: Instant) -> Timing {
        Timing {
            total: end.saturating_duration_since(started),
            transfer: first_byte
                .filter(|f| *f < end)
                .map(|f| end.duration_since(f)),
        }
    }
}

/// The lines printed when a download completes: size, time, rate, and what each peer sent.
/// `name` is already escaped.
pub fn summary(name: &str, s: &Snapshot, timing: &Timing) -> String {
    let mut out = String::new();
    let got = s.downloaded;
    let timed = match timing.transfer {
        Some(t) => format!(
            " in {}{} (first byte to last piece verified; {} since the start)",
            ui::duration(t),
            ui::rate_text(got, t)
                .map(|r| format!(" = {r}"))
                .unwrap_or_default(),
            ui::duration(timing.total)
        ),
        None => format!(
            " in {} since the start, tracker and connections included{}",
            ui::duration(timing.total),
            ui::rate_text(got, timing.total)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    };
    let _ = writeln!(
        out,
        "{name}: complete: {} pieces verified (SHA-1), {} received{timed}{}",
        s.pieces,
        HumanBytes(got),
        if s.bad_pieces > 0 {
            format!(
                ", {} bad pieces thrown away and fetched again",
                s.bad_pieces
            )
        } else {
            String::new()
        }
    );
    for (addr, t) in s.history.iter().filter(|(_, t)| t.downloaded > 0) {
        let _ = writeln!(
            out,
            "  from {addr} ({}, via {}): {} ({:.0}%){}",
            ui::escape(&t.client),
            s.source(*addr),
            HumanBytes(t.downloaded),
            ui::percent(t.downloaded, got.max(1)),
            if t.strikes > 0 {
                format!(", {} bad pieces", t.strikes)
            } else {
                String::new()
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_and_timing_needs_a_first_byte_before_the_end() {
        assert_eq!(short_name("album"), "album");
        assert_eq!(short_name("a-very-long-torrent-name"), "a-very-long-t~");
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(40);
        let t2 = t0 + Duration::from_millis(100);
        let t = Timing::new(t0, Some(t1), t2);
        assert_eq!(
            (t.total, t.transfer),
            (Duration::from_millis(100), Some(Duration::from_millis(60)))
        );
        assert_eq!(Timing::new(t0, Some(t2), t2).transfer, None);
        assert_eq!(Timing::new(t0, None, t2).transfer, None);
    }
}
