//! What may be typed at the shell's prompt: one argh subcommand per command, so that a line is
//! parsed exactly like `bt COMMAND ...` (the file commands reuse the very structs of `bt`), and
//! `help COMMAND` is argh's own usage text.

use std::path::PathBuf;

use argh::{EarlyExit, FromArgs, SubCommands};

use crate::cli::{CreateArgs, EditArgs, InfoArgs, PeersArgs};

/// One command of the shell.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Line {
    /// `create`, as `bt create`
    Create(CreateArgs),
    /// `edit`, as `bt edit`
    Edit(EditArgs),
    /// `show`: the profile's library
    Show(ShowCmd),
    /// `info`, as `bt info`
    Info(InfoArgs),
    /// `peers`, as `bt peers`
    Peers(PeersArgs),
    /// `start`: download in the background
    Start(StartCmd),
    /// `status`: the background downloads
    Status(StatusCmd),
    /// `wait`: until the background downloads complete
    Wait(WaitCmd),
    /// `quit`
    Quit(QuitCmd),
}

#[derive(FromArgs, Debug)]
/// list the profile's library: torrents, sizes, data on disk, info-hashes.
#[argh(subcommand, name = "show", example = "show")]
pub struct ShowCmd {}

#[derive(FromArgs, Debug)]
/// import torrents into the profile's library and download them in the background.
#[argh(
    subcommand,
    name = "start",
    example = "start data/album.torrent\nstart album.torrent --peer 127.0.0.1:6881\nstart data/album.torrent --only '*.flac' --seed-ratio 1",
    note = "The prompt stays usable while the download runs; `status` shows how it goes. The \
            first `start` opens the profile's port; finished torrents keep seeding until `quit`, \
            or until a seed goal (--seed-ratio, --seed-time) is met. Without TORRENT, every \
            torrent of the library is started. --only and --files choose files (kept for the \
            next start)."
)]
pub struct StartCmd {
    /// torrents to download (imported into the library first)
    #[argh(positional)]
    pub torrents: Vec<PathBuf>,
    /// announce here instead of the torrents' own trackers (repeatable)
    #[argh(option)]
    pub tracker: Vec<String>,
    /// also connect to this peer directly, ADDR:PORT (repeatable)
    #[argh(option)]
    pub peer: Vec<String>,
    /// download only the files whose path in the torrent matches this glob (repeatable)
    #[argh(option)]
    pub only: Vec<String>,
    /// download only these files, numbered as `info --files` lists them: 1,3-5
    #[argh(option)]
    pub files: Option<String>,
    /// download limit in KiB/s for the torrents of this `start` together (default: unlimited)
    #[argh(option)]
    pub download_limit: Option<u64>,
    /// once complete, seed until each torrent has sent R times its size, then stop it
    #[argh(option, from_str_fn(crate::cli::parse_ratio))]
    pub seed_ratio: Option<f64>,
    /// once complete, seed this long (30m, 2h), then stop it
    #[argh(option, from_str_fn(crate::cli::parse_duration))]
    pub seed_time: Option<std::time::Duration>,
}

#[derive(FromArgs, Debug)]
/// show each background torrent: progress, rates, peers, what each peer sent, the tracker.
#[argh(subcommand, name = "status", example = "status")]
pub struct StatusCmd {}

#[derive(FromArgs, Debug)]
/// wait until a background torrent (or every one) is complete, then show its status.
#[argh(
    subcommand,
    name = "wait",
    example = "wait\nwait album --timeout 60",
    note = "TORRENT is a name, an info-hash or a .torrent file given to `start`. Without it, \
            waits for every started torrent. When the time runs out (or a torrent fails), it \
            prints an error, and a shell reading a script exits 1 at its end."
)]
pub struct WaitCmd {
    /// the torrent to wait for (default: every started torrent)
    #[argh(positional)]
    pub torrent: Option<String>,
    /// give up after this many seconds (default 600)
    #[argh(option, default = "600")]
    pub timeout: u64,
}

#[derive(FromArgs, Debug)]
/// stop the downloads (telling the tracker) and leave; `exit` and Ctrl-D do the same.
#[argh(subcommand, name = "quit", example = "quit")]
pub struct QuitCmd {}

/// What a typed line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Nothing (a blank line or a comment).
    Empty,
    /// A command to run.
    Run(Line),
    /// Text to print as it is: `help`, `help COMMAND`, `COMMAND --help`.
    Text(String),
}

/// What `help help` says (argh keeps the name `help` for itself, so this one is by hand).
const HELP_USAGE: &str = "Usage: help [<command>]

list the commands, or show one command's usage, options and examples.

Positional Arguments:
  command           the command to explain

Examples:
  help
  help start
";

/// Split `line` like a Unix shell would and parse it; the error is one line, ready to print.
pub fn parse(line: &str) -> Result<Parsed, String> {
    let words = shell_words::split(line).map_err(|e| format!("cannot read that line: {e}"))?;
    let Some((first, rest)) = words.split_first() else {
        return Ok(Parsed::Empty);
    };
    if first == "help" {
        return match rest {
            [] => help(None),
            [c] => help(Some(c)),
            _ => Err("help takes one command at most: `help start`".into()),
        }
        .map(Parsed::Text);
    }
    let name = command_name(first)?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match Line::from_args(&[name], &rest) {
        Ok(line) => Ok(Parsed::Run(line)),
        Err(EarlyExit {
            output,
            status: Ok(()),
        }) => Ok(Parsed::Text(for_the_shell(&output))),
        Err(EarlyExit { output, .. }) => Err(format!(
            "{}; `help {name}` shows the usage",
            one_line(&output)
        )),
    }
}

/// `help` (every command, one line each) or `help COMMAND` (its usage, options and examples).
pub fn help(command: Option<&str>) -> Result<String, String> {
    let Some(word) = command else {
        let mut out = String::from("commands (`help COMMAND` shows its options and an example):\n");
        for c in Line::COMMANDS {
            out += &format!("  {:<8} {}\n", c.name, c.description);
        }
        out += "  help     list the commands, or show one command's usage.\n";
        return Ok(out);
    };
    if matches!(word, "help" | "--help") {
        return Ok(HELP_USAGE.into());
    }
    let name = command_name(word)?;
    match Line::from_args(&[name], &["--help"]) {
        Err(EarlyExit { output, .. }) => Ok(for_the_shell(&output)),
        Ok(_) => Err(format!("no help for `{name}`")),
    }
}

/// The command a typed word names (`exit` is `quit`).
fn command_name(word: &str) -> Result<&'static str, String> {
    let word = if word == "exit" { "quit" } else { word };
    Line::COMMANDS
        .iter()
        .map(|c| c.name)
        .find(|n| *n == word)
        .ok_or_else(|| format!("unknown command `{word}`; `help` lists the commands"))
}

/// argh's text with the examples as typed at the prompt (`create x`, not `bt create x`).
fn for_the_shell(text: &str) -> String {
    let mut out = String::new();
    let mut examples = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            examples = line.starts_with("Examples:");
        }
        match line.strip_prefix("  bt ") {
            Some(rest) if examples => out += &format!("  {rest}\n"),
            _ => out += &format!("{line}\n"),
        }
    }
    out
}

/// argh's error text on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Line {
        match parse(line) {
            Ok(Parsed::Run(l)) => l,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn lines_parse_like_the_subcommands() {
        match run("create 'my folder' --tracker http://t/announce -o x.torrent") {
            Line::Create(a) => {
                assert_eq!(a.path, PathBuf::from("my folder"));
                assert_eq!(a.tracker, ["http://t/announce"]);
                assert_eq!(a.output, Some(PathBuf::from("x.torrent")));
            }
            other => panic!("{other:?}"),
        }
        match run("start a.torrent b.torrent --peer 127.0.0.1:1") {
            Line::Start(a) => {
                assert_eq!(a.torrents.len(), 2);
                assert_eq!(a.peer, ["127.0.0.1:1"]);
            }
            other => panic!("{other:?}"),
        }
        match run("wait album --timeout 5") {
            Line::Wait(w) => assert_eq!((w.torrent.as_deref(), w.timeout), (Some("album"), 5)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(run("wait"), Line::Wait(w) if w.torrent.is_none() && w.timeout == 600));
        assert!(matches!(run("exit"), Line::Quit(_)));
        assert!(matches!(parse("   ").unwrap(), Parsed::Empty));
        assert!(matches!(parse("# a comment").unwrap(), Parsed::Empty));
    }

    #[test]
    fn mistakes_are_one_line() {
        for (line, want) in [
            ("frobnicate", "unknown command `frobnicate`"),
            ("create", "path"),
            ("info x.torrent --bogus", "--bogus"),
            ("start 'unclosed", "cannot read that line"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(want) && !e.contains('\n'), "{line}: {e}");
        }
    }

    #[test]
    fn help_lists_every_command_and_shows_usage() {
        let all = help(None).unwrap();
        for c in Line::COMMANDS {
            assert!(all.contains(&format!("\n  {} ", c.name)), "{all}");
        }
        assert!(all.contains("\n  help "), "{all}");
        assert!(help(Some("help")).unwrap().starts_with("Usage: help"));
        let create = help(Some("create")).unwrap();
        assert!(
            create.starts_with("Usage: create ") && create.contains("<path>"),
            "{create}"
        );
        assert!(create.contains("\n  create data/album"), "{create}");
        assert!(!create.contains("bt create"), "{create}");
        assert!(matches!(parse("info --help").unwrap(), Parsed::Text(t) if t.contains("--pieces")));
        assert!(help(Some("nope")).is_err());
    }
}
