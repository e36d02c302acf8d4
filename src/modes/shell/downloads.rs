//! The shell's background downloads: one engine session for the profile, opened by the first
//! `start` and shared by every torrent after it; a watcher task that measures rates and reports
//! completions and errors as notes; the `status` text; and the stop on `quit`.
//!
//! The engine runs on async-std tasks; the calls into the runtime are all here.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use indicatif::HumanBytes;

use super::input::Notes;
use crate::config::Profile;
use crate::library::Library;
use crate::modes::engine::{self, Options, Running, SeedGoal};
use crate::modes::magnet;
use crate::modes::status;
use crate::proto::magnet::Magnet;
use crate::proto::metainfo::{InfoHash, Metainfo};
use crate::swarm::announce::Announcer;
use crate::swarm::magnet::MetadataFetch;
use crate::swarm::session::Session;
use crate::swarm::torrent::{Snapshot, Torrent};
use crate::swarm::{EngineConfig, TorrentOptions};
use crate::ui;

/// How long a magnet link may go without progress on its metadata before it is given up.
const MAGNET_STALL: Duration = Duration::from_secs(600);

/// How often the watcher samples the torrents.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How often `wait` looks at the torrents it waits for (a shell command, not a measurement:
/// the completion time it reports comes from the engine's `completed_at`).
const WAIT_POLL: Duration = Duration::from_millis(100);

/// Which started torrents `wait` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// Every torrent started so far.
    All,
    /// The one with this name (as `status` shows it) or this info-hash in hex.
    Named(String),
    /// The one with this info-hash (from a .torrent file).
    Hash(InfoHash),
}

/// Why `wait` gave up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// Nothing matches what was asked for.
    #[error("{0}")]
    Unknown(String),
    /// A torrent failed (could not start, or a disk error).
    #[error("{0}")]
    Failed(String),
    /// The time ran out first.
    #[error("{0}")]
    Timeout(String),
}

/// Where a waited-for torrent stands.
enum Standing {
    Pending(String),
    Done,
    Failed(String),
}

/// The profile's background torrents; cheap to clone (every clone is the same downloads).
#[derive(Clone)]
pub struct Downloads {
    profile: Arc<Profile>,
    shared: Arc<Mutex<Shared>>,
    notes: Notes,
}

#[derive(Default)]
struct Shared {
    session: Option<Arc<Session>>,
    items: Vec<Item>,
}

/// One started torrent.
struct Item {
    name: String,
    info_hash: InfoHash,
    state: State,
    /// The watcher's last sample: when, bytes received, bytes sent.
    sample: Option<(Instant, u64, u64)>,
    /// Bytes per second received and sent, over the last sample period.
    rates: (u64, u64),
    noted_complete: bool,
    noted_failure: bool,
    /// When to stop seeding it.
    goal: SeedGoal,
    /// Its seed goal was met and it was stopped.
    goal_met: bool,
}

enum State {
    /// A magnet link fetching its metadata.
    Fetching(Arc<MetadataFetch>),
    /// Its data on disk is being checked before it joins the session.
    Checking,
    Running(Arc<Torrent>, Arc<Announcer>),
    /// It could not join the session.
    Failed(String),
}

impl Downloads {
    /// No downloads yet; the engine starts with the first [`Downloads::start`].
    pub fn new(profile: Profile, notes: Notes) -> Downloads {
        Downloads {
            profile: Arc::new(profile),
            shared: Arc::default(),
            notes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Download (or seed) `meta` in the background, announcing to `trackers` and calling the
    /// `direct` peers; once complete, seed until `goal` is met (if set), then stop it.
    /// Returns at once; the data check and the transfer go on in tasks.
    pub fn start(
        &self,
        meta: Metainfo,
        trackers: Vec<String>,
        direct: &[SocketAddr],
        topts: TorrentOptions,
        goal: SeedGoal,
    ) -> Result<()> {
        // Printed in every status line: made safe once, here.
        let name = ui::escape(&meta.info.name).into_owned();
        let hash = meta.info_hash;
        let session = self.enter(&name, hash, goal, |_| State::Checking)?;
        let me = self.clone();
        let direct = direct.to_vec();
        crate::rt::spawn(async move {
            let folder = &me.profile.folder;
            let added = engine::add(&session, folder, meta, trackers, &direct, topts).await;
            me.added(hash, added);
        })
        .detach();
        println!("started {name} ({hash}) in the background; `status` shows how it goes");
        Ok(())
    }

    /// List torrent `hash` as started, in the state `state` makes of the session (bound now if
    /// need be); refused when it is started already and has not failed.
    fn enter(
        &self,
        name: &str,
        hash: InfoHash,
        goal: SeedGoal,
        state: impl FnOnce(&Session) -> State,
    ) -> Result<Arc<Session>> {
        {
            let mut shared = self.lock();
            if let Some(i) = shared.items.iter().position(|i| i.info_hash == hash) {
                // A failed torrent, or one stopped at its seed goal, may be started again.
                let item = &shared.items[i];
                if !matches!(item.state, State::Failed(_)) && !item.goal_met {
                    bail!("{name} is already started; `status` shows how it goes");
                }
                shared.items.remove(i);
            }
        }
        let session = self.session()?;
        self.lock().items.push(Item {
            name: name.to_string(),
            info_hash: hash,
            state: state(&session),
            sample: None,
            rates: (0, 0),
            noted_complete: false,
            noted_failure: false,
            goal,
            goal_met: false,
        });
        Ok(session)
    }

    /// Fetch the metadata of a magnet link in the background (announcing to `trackers`,
    /// calling its `x.pe` peers and the `direct` ones), store the torrent in the library, then
    /// download it like [`Downloads::start`].
    pub fn start_magnet(
        &self,
        m: Magnet,
        trackers: Vec<String>,
        direct: &[SocketAddr],
        opts: Options,
        goal: SeedGoal,
    ) -> Result<()> {
        let name = magnet::label(&m);
        let hash = m.info_hash;
        let session = self.enter(&name, hash, goal, |s| State::Fetching(s.begin_fetch(hash)))?;
        let me = self.clone();
        let direct = direct.to_vec();
        crate::rt::spawn(async move {
            let folder = me.profile.folder.clone();
            let added = async {
                let (meta, f) =
                    magnet::fetch(&session, &m, &trackers, &direct, MAGNET_STALL, |_| {}).await?;
                let mut lib = Library::open(&folder)?;
                let meta = magnet::save(&mut lib, meta)?;
                if let Some(item) = me.lock().items.iter_mut().find(|i| i.info_hash == hash) {
                    item.name = ui::escape(&meta.info.name).into_owned();
                    item.state = State::Checking;
                }
                let topts = opts.for_torrent(&folder, &meta)?;
                magnet::add(&session, &folder, meta, trackers, &f, topts).await
            }
            .await;
            me.added(hash, added);
        })
        .detach();
        println!("started {name} ({hash}) in the background: fetching its metadata; `status` shows how it goes");
        Ok(())
    }

    /// The session, bound on first use (when the watcher starts too).
    pub fn session(&self) -> Result<Arc<Session>> {
        if let Some(s) = &self.lock().session {
            return Ok(Arc::clone(s));
        }
        let session = crate::rt::block_on(engine::bind(&self.profile, EngineConfig::default()))?;
        self.lock().session = Some(Arc::clone(&session));
        let me = self.clone();
        crate::rt::spawn(async move {
            loop {
                crate::rt::sleep(SAMPLE_EVERY).await;
                me.sample();
            }
        })
        .detach();
        println!(
            "listening for peers on {}, downloading into {}",
            session.listen,
            self.profile.folder.display()
        );
        Ok(session)
    }

    fn added(&self, hash: InfoHash, added: Result<(Arc<Torrent>, Arc<Announcer>)>) {
        let mut shared = self.lock();
        let Some(item) = shared.items.iter_mut().find(|i| i.info_hash == hash) else {
            return;
        };
        match added {
            Ok((t, a)) => item.state = State::Running(t, a),
            Err(e) => {
                let why = format!("{e:#}");
                let note = format!("{}: cannot start: {why}", item.name);
                item.state = State::Failed(why);
                drop(shared);
                self.notes.note(note);
            }
        }
    }

    /// The watcher's round: rates, and a note for each completion or error.
    fn sample(&self) {
        let now = Instant::now();
        let mut notes = Vec::new();
        let mut stops = Vec::new();
        for item in &mut self.lock().items {
            let State::Running(torrent, announcer) = &item.state else {
                continue;
            };
            let s = torrent.snapshot();
            if let Some((then, down, up)) = item.sample {
                let dt = now.duration_since(then);
                item.rates = (
                    ui::rate(s.downloaded.saturating_sub(down), dt),
                    ui::rate(s.uploaded.saturating_sub(up), dt),
                );
            }
            item.sample = Some((now, s.downloaded, s.uploaded));
            if let (Some(f), false) = (&s.failure, item.noted_failure) {
                item.noted_failure = true;
                notes.push(format!("{}: error: {f}", item.name));
            }
            if s.complete() && !item.noted_complete {
                item.noted_complete = true;
                notes.push(completion(&item.name, torrent, &s));
            }
            let since = s.completed_at.unwrap_or(torrent.started());
            if s.complete()
                && !item.goal_met
                && item.goal.met(s.uploaded, s.total_bytes, since, now)
            {
                item.goal_met = true;
                stops.push((Arc::clone(torrent), Arc::clone(announcer)));
                notes.push(format!(
                    "{}: seed goal met ({} sent); stopped seeding",
                    item.name,
                    HumanBytes(s.uploaded)
                ));
            }
        }
        let session = self.lock().session.clone();
        for (torrent, announcer) in stops {
            if let Some(session) = &session {
                session.remove(&torrent.info_hash());
            }
            crate::rt::spawn(async move { announcer.stopped().await }).detach();
        }
        for n in notes {
            self.notes.note(n);
        }
    }

    /// Every started torrent: progress, rates, peers, what each peer sent, the tracker.
    pub fn status(&self) -> String {
        let shared = self.lock();
        if shared.items.is_empty() {
            return "nothing started; `start TORRENT` downloads one in the background\n".into();
        }
        let mut out = String::new();
        for item in &shared.items {
            item.describe(&mut out);
        }
        out
    }

    /// Wait until every torrent `which` names is complete (or one fails, or `limit` passes);
    /// returns their `status` text.
    pub fn wait(&self, which: &Which, limit: Duration) -> Result<String, WaitError> {
        let hashes = self.select(which)?;
        let deadline = Instant::now() + limit;
        crate::rt::block_on(async {
            loop {
                let mut pending = Vec::new();
                for h in &hashes {
                    match self.standing(h) {
                        Standing::Done => {}
                        Standing::Pending(what) => pending.push(what),
                        Standing::Failed(why) => return Err(WaitError::Failed(why)),
                    }
                }
                if pending.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(WaitError::Timeout(format!(
                        "not complete after {}: {}; `status` shows more",
                        ui::duration(limit),
                        pending.join("; ")
                    )));
                }
                crate::rt::sleep(WAIT_POLL).await;
            }
            let shared = self.lock();
            let mut out = String::new();
            for item in shared
                .items
                .iter()
                .filter(|i| hashes.contains(&i.info_hash))
            {
                item.describe(&mut out);
            }
            Ok(out)
        })
    }

    /// The info-hashes of the started torrents `which` names.
    fn select(&self, which: &Which) -> Result<Vec<InfoHash>, WaitError> {
        let shared = self.lock();
        let picked: Vec<InfoHash> = shared
            .items
            .iter()
            .filter(|i| match which {
                Which::All => true,
                Which::Named(n) => i.name == *n || i.info_hash.to_string().eq_ignore_ascii_case(n),
                Which::Hash(h) => i.info_hash == *h,
            })
            .map(|i| i.info_hash)
            .collect();
        if !picked.is_empty() {
            return Ok(picked);
        }
        Err(WaitError::Unknown(match which {
            Which::All => "nothing started; `start TORRENT` first".into(),
            Which::Named(n) => format!(
                "no started torrent is named {}; `status` lists them",
                ui::escape(n)
            ),
            Which::Hash(h) => format!("{h} is not started; `start` it first"),
        }))
    }

    /// Whether the torrent with `hash` is complete, still going, or failed.
    fn standing(&self, hash: &InfoHash) -> Standing {
        let shared = self.lock();
        let Some(item) = shared.items.iter().find(|i| i.info_hash == *hash) else {
            return Standing::Failed(format!("{hash} is no longer started"));
        };
        match &item.state {
            State::Checking => Standing::Pending(format!("{} is checking its data", item.name)),
            State::Fetching(f) => Standing::Pending(format!(
                "{} is {}",
                item.name,
                magnet::describe(&f.status())
            )),
            State::Failed(why) => Standing::Failed(format!("{}: cannot start: {why}", item.name)),
            State::Running(t, _) => {
                let s = t.snapshot();
                match &s.failure {
                    Some(f) => Standing::Failed(format!("{}: error: {}", item.name, ui::escape(f))),
                    None if s.complete() => Standing::Done,
                    None => Standing::Pending(format!(
                        "{} has {:.0}% ({} of {} pieces) from {}",
                        item.name,
                        ui::percent(s.have_bytes, s.total_bytes),
                        s.have_pieces,
                        s.pieces,
                        ui::plural(s.peers.len(), "peer", "peers")
                    )),
                }
            }
        }
    }

    /// Close every connection and tell the trackers we leave; waits (bounded) for them.
    pub fn shutdown(&self) {
        let running = {
            let shared = self.lock();
            let Some(session) = shared.session.clone() else {
                return;
            };
            let (torrents, announcers) = shared
                .items
                .iter()
                .filter_map(|i| match &i.state {
                    // One stopped at its seed goal has told the tracker already.
                    State::Running(..) if i.goal_met => None,
                    State::Running(t, a) => Some((Arc::clone(t), Arc::clone(a))),
                    _ => None,
                })
                .unzip();
            Running {
                session,
                torrents,
                announcers,
                dht: None,
            }
        };
        if !running.torrents.is_empty() {
            println!(
                "stopping {}",
                ui::plural(running.torrents.len(), "torrent", "torrents")
            );
            crate::rt::block_on(running.shutdown());
        }
    }
}

impl Item {
    fn describe(&self, out: &mut String) {
        let (torrent, announcer) = match &self.state {
            State::Checking => {
                let _ = writeln!(out, "{}: checking the data on disk", self.name);
                return;
            }
            State::Fetching(f) => {
                let _ = writeln!(out, "{}: {}", self.name, magnet::describe(&f.status()));
                return;
            }
            State::Failed(why) => {
                let _ = writeln!(out, "{}: error: {why}", self.name);
                return;
            }
            State::Running(t, a) => (t, a),
        };
        let s = torrent.snapshot();
        let state = match &s.failure {
            Some(f) => format!("error: {f}"),
            None if s.complete() && self.goal_met => "complete, seed goal met, stopped".into(),
            None if s.complete() => "complete, seeding".into(),
            None => "downloading".into(),
        };
        let _ = writeln!(
            out,
            "{}: {state}, {:.0}% ({} of {}), down {}/s, up {}/s, {}",
            self.name,
            ui::percent(s.have_bytes, s.total_bytes),
            HumanBytes(s.have_bytes),
            HumanBytes(s.total_bytes),
            HumanBytes(self.rates.0),
            HumanBytes(self.rates.1),
            ui::plural(s.peers.len(), "peer", "peers")
        );
        for (addr, t) in &s.history {
            let live = s.peers.iter().any(|p| p.addr == *addr);
            let _ = writeln!(
                out,
                "  peer {addr} ({}, via {}): received {}, sent {}{}",
                t.client,
                s.source(*addr),
                HumanBytes(t.downloaded),
                HumanBytes(t.uploaded),
                if live { "" } else { " (gone)" }
            );
        }
        let _ = writeln!(out, "  tracker: {}", announcer.status());
    }
}

/// The note for a finished torrent.
fn completion(name: &str, torrent: &Torrent, s: &Snapshot) -> String {
    if s.downloaded == 0 {
        return format!("{name}: already complete on disk; seeding");
    }
    // The watcher samples once a second: too coarse to time the first byte, so the time is
    // the engine's, from the start to the last piece verified.
    let timing = status::Timing::new(
        torrent.started(),
        None,
        s.completed_at.unwrap_or_else(Instant::now),
    );
    let summary = status::summary(name, s, &timing);
    format!("{}; seeding", summary.lines().next().unwrap_or(name))
}
