//! `bt`: parse the command line, run one subcommand, print any error once on stderr.

use std::process::ExitCode;

use bt::cli::{Cli, Command};
use bt::{commands, modes};

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    // The tracker's event lines are info; other commands log only problems unless asked.
    let level = match (&cli.command, cli.verbose) {
        (_, true) => "debug",
        (Command::Tracker(_), false) => "warn,bt=info",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .init();
    let result = match cli.command {
        Command::Create(a) => commands::create::run(a),
        Command::Edit(a) => commands::edit::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Import(a) => commands::library::import(a),
        Command::Show(a) => commands::library::show(a),
        Command::Tracker(a) => modes::tracker::run(a),
        Command::Peers(a) => commands::peers::run(a),
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
