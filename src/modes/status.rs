//! How a running torrent looks on screen: one progress bar per torrent on a terminal, plain
//! lines otherwise, and the summary printed when a download completes.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::swarm::torrent::Snapshot;
use crate::ui;

/// Live display of several torrents.
pub struct Display {
    multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    names: Vec<String>,
    last: Vec<(Instant, u64, u64)>,
    last_plain: Instant,
}

impl Display {
    /// A display for these torrent names: bars on a terminal, plain lines every few seconds
    /// otherwise.
    pub fn new(names: Vec<String>, totals: &[u64]) -> Display {
        let tty = std::io::stdout().is_terminal();
        let multi = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0).min(24);
        let bars = names
            .iter()
            .zip(totals)
            .map(|(n, &t)| {
                let bar = ProgressBar::new(t);
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{prefix:{width}}} [{{bar:25.green/white}}] {{percent:>3}}% {{bytes:>10}}/{{total_bytes:<10}} {{msg}}"
                    ))
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(n.clone());
                match &multi {
                    Some(m) => m.add(bar),
                    None => bar,
                }
            })
            .collect();
        let now = Instant::now();
        Display {
            multi,
            bars,
            last: vec![(now, 0, 0); names.len()],
            names,
            last_plain: now,
        }
    }

    /// Refresh every torrent from its snapshot (same order as the names).
    pub fn refresh(&mut self, snaps: &[Snapshot]) {
        let now = Instant::now();
        let plain_due = now.duration_since(self.last_plain) >= Duration::from_secs(2);
        if plain_due {
            self.last_plain = now;
        }
        for (i, s) in snaps.iter().enumerate() {
            self.bars[i].set_position(s.have_bytes);
            let (t0, d0, u0) = self.last[i];
            let dt = now.duration_since(t0);
            if dt < Duration::from_millis(900) {
                continue;
            }
            let down = ui::rate(s.downloaded.saturating_sub(d0), dt);
            let up = ui::rate(s.uploaded.saturating_sub(u0), dt);
            self.last[i] = (now, s.downloaded, s.uploaded);
            let eta = match (s.total_bytes - s.have_bytes).checked_div(down) {
                _ if s.complete() => "done".to_string(),
                Some(secs) => format!("eta {secs}s"),
                None => "eta ?".to_string(),
            };
            // What each peer sent so far, the biggest first (three at most on one line).
            let mut peers: Vec<_> = s.peers.iter().filter(|p| p.downloaded > 0).collect();
            peers.sort_by_key(|p| std::cmp::Reverse(p.downloaded));
            let from: Vec<String> = peers
                .iter()
                .take(3)
                .map(|p| format!("{} {}", p.addr, HumanBytes(p.downloaded)))
                .collect();
            let msg = format!(
                "down {}/s up {}/s {eta} peers {}{}",
                HumanBytes(down),
                HumanBytes(up),
                s.peers.len(),
                if from.is_empty() {
                    String::new()
                } else {
                    format!(" (from {})", from.join(", "))
                }
            );
            if self.multi.is_some() {
                self.bars[i].set_message(msg);
            } else if plain_due {
                println!(
                    "{}: {:.0}% {} of {}, {msg}",
                    self.names[i],
                    ui::percent(s.have_bytes, s.total_bytes),
                    HumanBytes(s.have_bytes),
                    HumanBytes(s.total_bytes)
                );
            }
        }
    }

    /// Print a line above the bars (or plainly).
    pub fn println(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => println!("{text}"),
        }
    }

    /// Leave the bars as they are.
    pub fn finish(&self) {
        for b in &self.bars {
            b.abandon();
        }
    }
}

/// The lines printed when a download completes: size, time, rate, and what each peer sent.
pub fn summary(name: &str, s: &Snapshot, elapsed: Duration) -> String {
    let mut out = String::new();
    let got = s.downloaded;
    let _ = writeln!(
        out,
        "{name}: complete: {} pieces verified (SHA-1), {} received in {} ({}/s){}",
        s.pieces,
        HumanBytes(got),
        ui::duration(elapsed),
        HumanBytes(ui::rate(got, elapsed)),
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
            "  from {addr} ({}): {} ({:.0}%){}",
            t.client,
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
