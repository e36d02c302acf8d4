//! `bt`: parse the command line, run one subcommand, print any error once on stderr.
//!
//! The command line follows the usual conventions on top of argh: `--version`/`-V`, `-h` as
//! `--help`, and a mistake is one `bt: error: ...` line that names the help to read (exit 2).

use std::process::ExitCode;

use argh::{EarlyExit, FromArgs, SubCommands};
use bt::cli::{Cli, Command, Interrupted, INTERRUPTED_EXIT};
use bt::{commands, modes};

/// Exit code of a command line that does not parse (as getopt-style tools do).
const USAGE_ERROR: u8 = 2;

/// Parse the command line; `Err` is the exit code, after printing help, version or an error.
fn parse() -> Result<Cli, ExitCode> {
    let mut args = Vec::new();
    for (i, a) in std::env::args_os().skip(1).enumerate() {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                eprintln!(
                    "bt: error: argument {} ({}) is not UTF-8 text",
                    i + 1,
                    a.to_string_lossy()
                );
                return Err(ExitCode::from(USAGE_ERROR));
            }
        }
    }
    let before_dashes = args.iter().take_while(|a| *a != "--").count();
    if matches!(args.first().map(String::as_str), Some("--version" | "-V")) {
        println!("bt {}", env!("CARGO_PKG_VERSION"));
        return Err(ExitCode::SUCCESS);
    }
    for a in &mut args[..before_dashes] {
        if a == "-h" {
            *a = "--help".into();
        }
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match Cli::from_args(&["bt"], &words) {
        Ok(cli) => Ok(cli),
        Err(EarlyExit {
            output,
            status: Ok(()),
        }) => {
            print!("{output}");
            Err(ExitCode::SUCCESS)
        }
        Err(EarlyExit { output, .. }) => {
            // The subcommand the line names, if any, for the pointer to its help.
            let sub = words[..before_dashes.min(words.len())]
                .iter()
                .find(|w| Command::COMMANDS.iter().any(|c| c.name == **w));
            let help = match sub {
                Some(s) => format!("bt {s} --help"),
                None => "bt --help".into(),
            };
            // argh's message without its own "Run ... --help" line, on one line.
            let what: Vec<&str> = output
                .lines()
                .filter(|l| !l.starts_with("Run ") && !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let what = what.join(" ");
            let mut chars = what.trim_end_matches('.').chars();
            let first = chars.next().map(|c| c.to_lowercase().collect::<String>());
            eprintln!(
                "bt: error: {}{}; `{help}` shows the usage",
                first.unwrap_or_default(),
                chars.as_str()
            );
            Err(ExitCode::from(USAGE_ERROR))
        }
    }
}

fn main() -> ExitCode {
    bt::sys::tune_allocator();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // The tracker's event lines are info; other commands log only problems unless asked.
    let level = match (&cli.command, cli.verbose) {
        (_, true) => "debug",
        (Command::Tracker(_) | Command::Dht(_), false) => "warn,bt=info",
        _ => "warn",
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if cli.verbose
        || matches!(cli.command, Command::Tracker(_) | Command::Dht(_))
        || std::env::var_os("RUST_LOG").is_some()
    {
        logger.format_timestamp_millis();
    } else {
        // Quiet by default: warnings read as one plain line, like our errors.
        logger.format(|f, r| {
            use std::io::Write;
            let level = match r.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                _ => "note",
            };
            writeln!(f, "bt: {level}: {}", r.args())
        });
    }
    if matches!(cli.command, Command::Shell(_)) {
        // Log lines must not cut through the shell's prompt.
        logger.target(env_logger::Target::Pipe(Box::new(modes::shell::LogWriter)));
    }
    logger.init();
    let result = match cli.command {
        Command::Create(a) => commands::create::run(a),
        Command::Edit(a) => commands::edit::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Import(a) => commands::library::import(a),
        Command::Show(a) => commands::library::show(a),
        Command::Peer(a) => modes::peer::run(a),
        Command::Client(a) => modes::client::run(a),
        Command::Tracker(a) => modes::tracker::run(a),
        Command::Peers(a) => commands::peers::run(a),
        Command::Demo(a) => modes::demo::run(a),
        Command::Check(a) => commands::check::run(a),
        Command::Shell(a) => modes::shell::run(a),
        Command::Dht(a) => modes::dht::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("bt: {e}");
            ExitCode::from(INTERRUPTED_EXIT)
        }
        Err(e) => {
            // The whole context chain on one line: "cannot open x.torrent: No such file".
            eprintln!("bt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
