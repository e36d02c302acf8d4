//! `bt`: parse the command line, run one subcommand, print any error once on stderr.

use std::process::ExitCode;

use bt::cli::{Cli, Command};
use bt::{commands, modes};

fn main() -> ExitCode {
    bt::sys::tune_allocator();
    let cli: Cli = argh::from_env();
    // The tracker's event lines are info; other commands log only problems unless asked.
    let level = match (&cli.command, cli.verbose) {
        (_, true) => "debug",
        (Command::Tracker(_), false) => "warn,bt=info",
        _ => "warn",
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if cli.verbose
        || matches!(cli.command, Command::Tracker(_))
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole context chain on one line: "cannot open x.torrent: No such file".
            eprintln!("bt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
