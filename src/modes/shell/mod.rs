//! `bt shell`: an interactive console for one profile. The file commands (`create`, `edit`,
//! `info`, `show`, `peers`) run as their `bt` subcommands do; `start` downloads in the
//! background while the prompt stays usable; `status` shows how the downloads go; `wait` blocks
//! until they are complete (so that a piped script does not end before its download starts);
//! `quit` stops them. A mistake prints one line and the prompt goes on. A script (input not a
//! terminal) whose `wait` failed exits 1 at its end.
//!
//! The prompt loop runs on the main thread and blocks only on reading a line; the engine runs on
//! async-std tasks (see [`downloads`]).

mod downloads;
mod input;
mod syntax;

pub use self::input::LogWriter;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use self::downloads::{Downloads, Which};
use self::input::Input;
use self::syntax::{Line, Parsed, StartCmd, WaitCmd};
use super::engine::{self, Options, SeedGoal};
use super::magnet;
use crate::cli::{ShellArgs, ShowArgs};
use crate::commands;
use crate::config::{self, Profile};
use crate::library;
use crate::proto::magnet::Magnet;

/// Run `bt shell`.
pub fn run(args: ShellArgs) -> Result<()> {
    let profile = config::resolve(
        args.config.as_deref(),
        &args.profile,
        args.folder.as_deref(),
        args.port,
    )?;
    config::note_if_built_in(args.config.as_deref(), &profile);
    let mut input = Input::new(profile.folder.clone())?;
    let downloads = Downloads::new(profile.clone(), input.notes());
    // Ctrl-C while a command runs (or a SIGTERM): leave as `quit` would.
    let stop = downloads.clone();
    ctrlc::set_handler(move || {
        stop.shutdown();
        std::process::exit(130);
    })
    .map_err(|e| anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    println!(
        "bt shell: profile {} (folder {}, port {}); `help` lists the commands, `quit` leaves",
        profile.name,
        profile.folder.display(),
        profile.port
    );
    let prompt = format!("bt:{}> ", profile.name);
    let mut shell = Shell {
        config: args.config,
        profile,
        downloads,
        failed_waits: 0,
    };
    while let Some(line) = input.read(&prompt)? {
        if !shell.execute(&line) {
            break;
        }
    }
    input.notes().flush();
    shell.downloads.shutdown();
    input.save_history();
    if shell.failed_waits > 0 && !std::io::stdin().is_terminal() {
        bail!(
            "{} of the script's `wait` commands did not see their torrents complete",
            shell.failed_waits
        );
    }
    Ok(())
}

/// What the commands work on.
struct Shell {
    /// The config file given to `bt shell`, the default for `create` and `peers`.
    config: Option<std::path::PathBuf>,
    profile: Profile,
    downloads: Downloads,
    /// `wait` commands that timed out or saw a torrent fail.
    failed_waits: usize,
}

impl Shell {
    /// Run one line; false when it asks to leave. Errors are printed, never returned.
    fn execute(&mut self, line: &str) -> bool {
        let command = match syntax::parse(line) {
            Ok(Parsed::Run(c)) => c,
            Ok(Parsed::Empty) => return true,
            Ok(Parsed::Text(t)) => {
                print!("{t}");
                return true;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return true;
            }
        };
        if matches!(command, Line::Quit(_)) {
            return false;
        }
        if let Err(e) = self.run(command) {
            // The whole context chain on one line, as `bt` prints it.
            eprintln!("error: {e:#}");
        }
        true
    }

    fn run(&mut self, command: Line) -> Result<()> {
        match command {
            Line::Create(mut a) => {
                a.config = a.config.or_else(|| self.config.clone());
                commands::create::run(a)
            }
            Line::Edit(a) => commands::edit::run(a),
            Line::Info(a) => commands::info::run(a),
            Line::Show(_) => commands::library::show(ShowArgs {
                config: self.config.clone(),
                profile: self.profile.name.clone(),
                folder: Some(self.profile.folder.clone()),
                port: Some(self.profile.port),
                json: false,
            }),
            Line::Peers(mut a) => {
                a.config = a.config.or_else(|| self.config.clone());
                commands::peers::run(a)
            }
            Line::Start(a) => self.start(a),
            Line::Status(_) => {
                print!("{}", self.downloads.status());
                Ok(())
            }
            Line::Wait(w) => self.wait(w),
            Line::Quit(_) => Ok(()),
        }
    }

    /// Block until the torrents are complete (or fail, or the time runs out), then show them.
    fn wait(&mut self, w: WaitCmd) -> Result<()> {
        let which = match w.torrent {
            None => Which::All,
            // A .torrent file names its info-hash (read as `start` read it).
            Some(t) if t.ends_with(".torrent") && std::path::Path::new(&t).is_file() => {
                Which::Hash(commands::read_torrent(std::path::Path::new(&t))?.info_hash)
            }
            Some(name) => Which::Named(name),
        };
        match self.downloads.wait(&which, Duration::from_secs(w.timeout)) {
            Ok(text) => {
                print!("{text}");
                Ok(())
            }
            Err(e) => {
                self.failed_waits += 1;
                Err(anyhow!("wait: {e}"))
            }
        }
    }

    /// Import the torrents (all of them before any starts), then start each in the background.
    fn start(&mut self, a: StartCmd) -> Result<()> {
        for t in &a.tracker {
            crate::swarm::announce::check_tracker_url(t)?;
        }
        let mut opts = Options {
            trackers: a.tracker,
            peers: a.peer,
            download_limit: engine::download_limit(a.download_limit, &self.profile),
            ..Options::default()
        };
        let goal = SeedGoal {
            ratio: a.seed_ratio.or(self.profile.settings.seed_ratio),
            time: a.seed_time.or(self.profile.settings.seed_time),
        };
        let direct = engine::parse_peers(&opts.peers)?;
        if a.torrents.is_empty() && (a.files.is_some() || !a.only.is_empty()) {
            return Err(anyhow!(
                "--files and --only choose files of the torrents given: name one"
            ));
        }
        let mut metas = Vec::new();
        let mut magnets = Vec::new();
        for t in &a.torrents {
            if let Some(link) = t.to_str().filter(|s| magnet::is_magnet(s)) {
                magnets.push(Magnet::parse(link).with_context(|| format!("cannot read {link}"))?);
                continue;
            }
            let meta = commands::library::import_into(t, &self.profile)?;
            // Checked before anything starts: a wrong number starts nothing.
            opts.files.extend(engine::choose_files(
                std::slice::from_ref(&meta),
                a.files.as_deref(),
                &a.only,
            )?);
            metas.push(meta);
        }
        if a.torrents.is_empty() {
            for entry in library::list(&self.profile.folder)? {
                match entry.meta {
                    Ok(m) => metas.push(m),
                    Err(e) => eprintln!("warning: skipping {e:#}"),
                }
            }
            if metas.is_empty() {
                return Err(anyhow!(
                    "the library of {} is empty; give a .torrent file: `start FILE.torrent`",
                    self.profile.name
                ));
            }
        }
        // A port in use is one error, not one per torrent.
        self.downloads.session()?;
        for meta in metas {
            let trackers = opts.trackers_for(&meta);
            engine::warn_if_alone(&meta, &trackers, &direct, false);
            let started = opts
                .for_torrent(&self.profile.folder, &meta)
                .and_then(|topts| self.downloads.start(meta, trackers, &direct, topts, goal));
            if let Err(e) = started {
                eprintln!("error: {e:#}");
            }
        }
        for m in magnets {
            let trackers = magnet::trackers_for(&m, &opts.trackers);
            if let Err(e) = self
                .downloads
                .start_magnet(m, trackers, &direct, opts.clone(), goal)
            {
                eprintln!("error: {e:#}");
            }
        }
        Ok(())
    }
}
