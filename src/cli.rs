//! The command line: `bt <subcommand>`, parsed with argh. Raw arguments only; each command
//! validates and resolves them itself.

use std::net::SocketAddr;
use std::path::PathBuf;

use argh::FromArgs;

#[derive(FromArgs, Debug)]
/// bt: a BitTorrent tracker, seeding peer and downloading client in one binary.
#[argh(
    note = "Profiles (folder + port per peer) and the tracker address live in peers.toml (without \
            one, built-in defaults are used). `bt COMMAND --help` (or -h) explains a command; \
            `bt --version` prints the version.",
    example = "bt create data/book.txt -o book.torrent\nbt info book.torrent --pieces\nbt tracker\nbt peers"
)]
pub struct Cli {
    /// print debug logs (RUST_LOG=debug does the same, with finer control)
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// the command to run
    #[argh(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    /// `bt create`
    Create(CreateArgs),
    /// `bt edit`
    Edit(EditArgs),
    /// `bt info`
    Info(InfoArgs),
    /// `bt import`
    Import(ImportArgs),
    /// `bt show`
    Show(ShowArgs),
    /// `bt peer`
    Peer(PeerArgs),
    /// `bt client`
    Client(ClientArgs),
    /// `bt tracker`
    Tracker(TrackerArgs),
    /// `bt peers`
    Peers(PeersArgs),
    /// `bt demo`
    Demo(DemoArgs),
    /// `bt check`
    Check(CheckArgs),
    /// `bt shell`
    Shell(ShellArgs),
    /// `bt dht`
    Dht(DhtArgs),
}

#[derive(FromArgs, Debug)]
/// run a bare Mainline DHT node: a LAN's (or a test's) bootstrap node for `--bootstrap`.
#[argh(
    subcommand,
    name = "dht",
    example = "bt dht --port 6881\nbt peer --profile peer1 --bootstrap 192.168.1.10:6881",
    note = "Answers DHT queries and keeps the peers that others announce; it holds no torrents. \
            Without --bootstrap it starts a new network of its own (it never contacts the public \
            routers). Prints its address, then its routing-table size whenever it changes, until \
            Ctrl-C."
)]
pub struct DhtArgs {
    /// UDP port to listen on (default 6881; 0 picks a free one)
    #[argh(option, default = "6881")]
    pub port: u16,
    /// IPv4 address to listen on (default: every interface)
    #[argh(option)]
    pub bind: Option<std::net::Ipv4Addr>,
    /// join an existing network through this node, HOST:PORT (repeatable)
    #[argh(option)]
    pub bootstrap: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// make a .torrent from a file or a whole folder.
#[argh(
    subcommand,
    name = "create",
    example = "bt create data/album --tracker http://192.168.1.10:6969/announce -o album.torrent",
    note = "Files of a folder are taken in sorted order, nested folders included. Without \
            --tracker, the announce URL of peers.toml is used. The piece length is chosen to give \
            1,000-2,000 pieces (16 KiB to 16 MiB) unless --piece-length is given."
)]
pub struct CreateArgs {
    /// the file or folder to share
    #[argh(positional)]
    pub path: PathBuf,
    /// tracker announce URL; repeat for a BEP 12 announce-list (one tier each)
    #[argh(option)]
    pub tracker: Vec<String>,
    /// name no tracker at all: peers find each other by the DHT or LSD
    #[argh(switch)]
    pub no_tracker: bool,
    /// where to write the torrent (default: NAME.torrent in the current folder)
    #[argh(option, short = 'o')]
    pub output: Option<PathBuf>,
    /// bytes per piece, a power of two up to 64 MiB: 262144, 256k, 1m ...
    #[argh(option)]
    pub piece_length: Option<String>,
    /// set the private flag (BEP 27): peers only from the tracker
    #[argh(switch)]
    pub private: bool,
    /// a comment stored in the torrent
    #[argh(option)]
    pub comment: Option<String>,
    /// overwrite the output file if it exists
    #[argh(switch)]
    pub force: bool,
    /// config file for the default tracker URL (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

#[derive(FromArgs, Debug)]
/// change the tracker URL(s) of a .torrent; its info-hash stays the same.
#[argh(
    subcommand,
    name = "edit",
    example = "bt edit data/album.torrent --tracker http://192.168.1.10:6969/announce"
)]
pub struct EditArgs {
    /// the torrent to edit
    #[argh(positional)]
    pub torrent: PathBuf,
    /// new announce URL; repeat for an announce-list (one tier each)
    #[argh(option)]
    pub tracker: Vec<String>,
    /// write the result here instead of replacing the torrent
    #[argh(option, short = 'o')]
    pub output: Option<PathBuf>,
    /// replace the comment
    #[argh(option)]
    pub comment: Option<String>,
}

#[derive(FromArgs, Debug)]
/// show what a .torrent holds: name, size, pieces, info-hash, trackers, files.
#[argh(
    subcommand,
    name = "info",
    example = "bt info data/album.torrent --files --pieces\nbt info data/album.torrent --json\nbt info data/album.torrent --magnet"
)]
pub struct InfoArgs {
    /// the torrent to read
    #[argh(positional)]
    pub torrent: PathBuf,
    /// list every file (by default only the first 20)
    #[argh(switch)]
    pub files: bool,
    /// list the SHA-1 of every piece
    #[argh(switch)]
    pub pieces: bool,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub json: bool,
    /// print only the torrent's magnet link (info-hash, name, trackers)
    #[argh(switch)]
    pub magnet: bool,
}

#[derive(FromArgs, Debug)]
/// put a .torrent into a profile's library (its folder).
#[argh(
    subcommand,
    name = "import",
    example = "bt import data/album.torrent --profile client"
)]
pub struct ImportArgs {
    /// the torrent to import
    #[argh(positional)]
    pub torrent: PathBuf,
    /// the config file (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// the profile whose library receives the torrent
    #[argh(option)]
    pub profile: String,
    /// use this folder instead of the profile's
    #[argh(option)]
    pub folder: Option<PathBuf>,
    /// use this port instead of the profile's (accepted for symmetry; unused here)
    #[argh(option)]
    pub port: Option<u16>,
}

#[derive(FromArgs, Debug)]
/// list a profile's library: torrents, sizes, info-hashes, verified pieces.
#[argh(
    subcommand,
    name = "show",
    example = "bt show --profile peer1\nbt show --profile client --json",
    note = "VERIFIED is the share of pieces whose SHA-1 matches the data on disk, hashed now, \
            as `bt check` does (bt keeps no resume state), so a partial or damaged download \
            never shows as complete."
)]
pub struct ShowArgs {
    /// the config file (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// the profile to list
    #[argh(option)]
    pub profile: String,
    /// use this folder instead of the profile's
    #[argh(option)]
    pub folder: Option<PathBuf>,
    /// use this port instead of the profile's (accepted for symmetry; unused here)
    #[argh(option)]
    pub port: Option<u16>,
    /// print one JSON object instead of the table
    #[argh(switch)]
    pub json: bool,
}

#[derive(FromArgs, Debug)]
/// serve a profile's library to the swarm, and fetch whatever it lacks.
#[argh(
    subcommand,
    name = "peer",
    example = "bt peer --profile peer1\nbt peer --profile peer2 --tracker http://192.168.1.10:6969/announce",
    note = "Loads every .torrent in the profile's folder, checks the data on disk, announces to the \
            tracker, listens on the profile's port and serves every peer that asks. Runs until \
            Ctrl-C, then tells the tracker it stopped."
)]
pub struct PeerArgs {
    /// the config file (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// the profile to run, a [profiles.NAME] section of the config
    #[argh(option)]
    pub profile: String,
    /// use this folder instead of the profile's
    #[argh(option)]
    pub folder: Option<PathBuf>,
    /// use this port instead of the profile's
    #[argh(option)]
    pub port: Option<u16>,
    /// announce here instead of the torrents' own trackers (repeatable)
    #[argh(option)]
    pub tracker: Vec<String>,
    /// also connect to this peer directly, ADDR:PORT (repeatable)
    #[argh(option)]
    pub peer: Vec<String>,
    /// upload slots: peers served at once, plus one optimistic (default 0: every interested peer)
    #[argh(option, default = "0")]
    pub upload_slots: usize,
    /// upload limit in KiB/s for the whole process (default: unlimited)
    #[argh(option)]
    pub upload_limit: Option<u64>,
    /// download limit in KiB/s for the whole process (default: unlimited)
    #[argh(option)]
    pub download_limit: Option<u64>,
    /// serve the web page and JSON API here, e.g. 127.0.0.1:8080 (default: `web` of the profile); another address than loopback needs `web_token` in the profile
    #[argh(option)]
    pub web: Option<std::net::SocketAddr>,
    /// find peers on the LAN by local service discovery (BEP 14), as `lsd = true` in the profile
    #[argh(switch)]
    pub lsd: bool,
    /// join the Mainline DHT, as `enabled = true` in [dht]; without --bootstrap (or `bootstrap`
    /// in [dht]) through the public routers
    #[argh(switch)]
    pub dht: bool,
    /// join the DHT through this node, HOST:PORT (repeatable; turns the DHT on and replaces
    /// `bootstrap` of [dht])
    #[argh(option)]
    pub bootstrap: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// download torrents into a profile's folder, showing progress, then keep seeding.
#[argh(
    subcommand,
    name = "client",
    example = "bt client data/album.torrent\nbt client -o downloads --exit-when-done data/book.txt.torrent\nbt client --json data/album.torrent\nbt client data/album.torrent --only '*.flac' --seed-ratio 2\nbt client data/album.torrent --files 1,3-5 --download-limit 512 --seed-time 1h",
    note = "Imports the given torrents into the profile's library (plus any already there), \
            downloads them from every peer the tracker knows, verifying each piece's SHA-1, then \
            seeds until Ctrl-C. Exits 1 with the reason if a torrent cannot complete, 130 when \
            Ctrl-C stops an --exit-when-done download before it is complete. --only and --files \
            choose files of the torrents given (either one picks a file; the choice is kept in \
            the profile's folder for the next run); with a seed goal the client exits 0 once \
            every torrent is complete and has met it. Progress: a bar per torrent on a \
            terminal, else a line when a tenth more is done or the peers change; --json \
            prints one JSON object per line instead."
)]
pub struct ClientArgs {
    /// torrents to download (imported into the profile's library first)
    #[argh(positional)]
    pub torrents: Vec<PathBuf>,
    /// the config file (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// the profile to run, a [profiles.NAME] section of the config (default: client)
    #[argh(option, default = "String::from(\"client\")")]
    pub profile: String,
    /// use this folder instead of the profile's
    #[argh(option)]
    pub folder: Option<PathBuf>,
    /// download into this folder (the same as --folder)
    #[argh(option, short = 'o')]
    pub output: Option<PathBuf>,
    /// use this port instead of the profile's
    #[argh(option)]
    pub port: Option<u16>,
    /// announce here instead of the torrents' own trackers (repeatable)
    #[argh(option)]
    pub tracker: Vec<String>,
    /// also connect to this peer directly, ADDR:PORT (repeatable)
    #[argh(option)]
    pub peer: Vec<String>,
    /// no progress display: only the summaries and errors
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// print one JSON object per line (progress each second, then completion) instead of bars
    #[argh(switch)]
    pub json: bool,
    /// exit 0 once every torrent is complete and verified, instead of seeding
    #[argh(switch)]
    pub exit_when_done: bool,
    /// give up (exit 1) when a download has made no progress for this many seconds, whoever is connected
    #[argh(option, default = "60")]
    pub stall_timeout: u64,
    /// upload slots: peers served at once, plus one optimistic (default 0: every interested peer)
    #[argh(option, default = "0")]
    pub upload_slots: usize,
    /// upload limit in KiB/s for the whole process (default: unlimited)
    #[argh(option)]
    pub upload_limit: Option<u64>,
    /// download limit in KiB/s for the whole process (default: unlimited)
    #[argh(option)]
    pub download_limit: Option<u64>,
    /// download only the files whose path in the torrent matches this glob (`*.flac`,
    /// `disc1/**`); repeatable; kept for the next run
    #[argh(option)]
    pub only: Vec<String>,
    /// download only these files, numbered as `bt info --files` lists them: 1,3-5; kept for
    /// the next run
    #[argh(option)]
    pub files: Option<String>,
    /// once complete, seed until each torrent has sent R times its size, then exit 0
    #[argh(option, from_str_fn(parse_ratio))]
    pub seed_ratio: Option<f64>,
    /// once complete, seed this long (30m, 2h, 1day), then exit 0
    #[argh(option, from_str_fn(parse_duration))]
    pub seed_time: Option<std::time::Duration>,
    /// serve the web page and JSON API here, e.g. 127.0.0.1:8080 (default: `web` of the profile); another address than loopback needs `web_token` in the profile
    #[argh(option)]
    pub web: Option<std::net::SocketAddr>,
    /// find peers on the LAN by local service discovery (BEP 14), as `lsd = true` in the profile
    #[argh(switch)]
    pub lsd: bool,
    /// join the Mainline DHT, as `enabled = true` in [dht]; without --bootstrap (or `bootstrap`
    /// in [dht]) through the public routers
    #[argh(switch)]
    pub dht: bool,
    /// join the DHT through this node, HOST:PORT (repeatable; turns the DHT on and replaces
    /// `bootstrap` of [dht])
    #[argh(option)]
    pub bootstrap: Vec<String>,
}

/// A seed ratio: a finite number, zero or more.
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("`{s}` is not a ratio: give a number such as 1.5")),
    }
}

/// A duration in humantime's form: `90s`, `30m`, `2h 30m`, `1day`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}): give one such as 30m or 2h"))
}

#[derive(FromArgs, Debug)]
/// run the HTTP tracker: /announce, /scrape, /peers (JSON) and a status page at /.
#[argh(
    subcommand,
    name = "tracker",
    example = "bt tracker\nbt tracker --bind 127.0.0.1:7070 --config lan.toml",
    note = "Peers are told to announce every `interval` seconds of the [tracker] section and are \
            dropped after two intervals of silence. A peer's address is the connection's source \
            address (the `ip` parameter only with allow_ip_param = true). Started, completed and \
            stopped events are logged one line each on stderr (-v logs every announce)."
)]
pub struct TrackerArgs {
    /// the config file (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// address and port to listen on (default: `bind` of [tracker]); port 0 picks a free one
    #[argh(option)]
    pub bind: Option<SocketAddr>,
}

#[derive(FromArgs, Debug)]
/// list the torrents a running tracker knows, with their seeders, leechers and peers.
#[argh(
    subcommand,
    name = "peers",
    example = "bt peers\nbt peers --tracker http://192.168.1.10:6969/announce"
)]
pub struct PeersArgs {
    /// the tracker: its announce URL or http://HOST:PORT (default: `announce` of the config)
    #[argh(option)]
    pub tracker: Option<String>,
    /// the config file (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

#[derive(FromArgs, Debug)]
/// run the whole exercise in one process: tracker, peer1, peer2 and a client that downloads
/// from both.
#[argh(
    subcommand,
    name = "demo",
    example = "bt demo\nbt demo --size 1GiB",
    note = "Works in a scratch copy (default: a new bt-demo-XXXXXXXX in the system temp folder), so \
            the repository stays as it is: peer1 and peer2 get copies of their folders from \
            peers.toml, the client starts empty. Everything listens on 127.0.0.1 on free ports. \
            With --size, both peers share one random file of that size instead of the samples; \
            that data is removed when the demo ends. Exits 0 when the client has every piece \
            verified, 1 with the reason otherwise, 130 on Ctrl-C."
)]
pub struct DemoArgs {
    /// the config file whose peer1 and peer2 folders are copied (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// share one random file of this size instead of the samples: 100m, 1GiB, ...
    #[argh(option)]
    pub size: Option<String>,
    /// scratch folder, wiped first (default: a new bt-demo-XXXXXXXX in the system temp folder)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// give up after this many seconds (default 300)
    #[argh(option, default = "300")]
    pub timeout: u64,
    /// serve the client's web page on a free loopback port and print its address; the peers
    /// send slowly so the pieces can be watched arriving, and the page stays up after the
    /// download until Ctrl-C
    #[argh(switch)]
    pub web: bool,
}

#[derive(FromArgs, Debug)]
/// hash the data of a torrent on disk and say how much of it is complete and correct.
#[argh(
    subcommand,
    name = "check",
    example = "bt check peer1/album.torrent\nbt check data/album.torrent --folder client"
)]
pub struct CheckArgs {
    /// the torrent
    #[argh(positional)]
    pub torrent: PathBuf,
    /// the folder holding the data (default: the torrent's own folder)
    #[argh(option)]
    pub folder: Option<PathBuf>,
}

#[derive(FromArgs, Debug)]
/// an interactive console for one profile: make and inspect torrents, download in the background.
#[argh(
    subcommand,
    name = "shell",
    example = "bt shell --profile client\nprintf 'start data/album.torrent\\nwait --timeout 120\\n' | bt shell --profile client",
    note = "Commands at the prompt: create, edit, info, show, peers, start, status, wait, help, \
            quit (`help COMMAND` shows its options). `start` downloads in the background while \
            the prompt stays usable; finished torrents keep seeding until `quit`, which tells the \
            tracker they stopped. With piped input the lines are read one by one, for scripts: \
            end a script with `wait`, or it ends before its downloads do (a failed `wait` makes \
            the script exit 1)."
)]
pub struct ShellArgs {
    /// the config file (default: peers.toml)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// the profile to work as, a [profiles.NAME] section of the config
    #[argh(option)]
    pub profile: String,
    /// use this folder instead of the profile's
    #[argh(option)]
    pub folder: Option<PathBuf>,
    /// use this port instead of the profile's (0 picks a free one)
    #[argh(option)]
    pub port: Option<u16>,
}

/// A run stopped by Ctrl-C (or SIGTERM) before its work was done: `bt` exits 130, as a shell
/// does for a command killed by SIGINT, so that a script can tell it from success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted before it was done")]
pub struct Interrupted;

/// Exit code of an [`Interrupted`] run (128 + SIGINT).
pub const INTERRUPTED_EXIT: u8 = 130;

/// `profile()` for every argument struct that carries `--config`, `--profile`, `--folder` and
/// `--port` (argh cannot flatten a shared struct into subcommands).
macro_rules! profile_args {
    ($($t:ty),*) => {$(
        impl $t {
            /// The profile these arguments name, with `--folder` and `--port` applied.
            pub fn profile(&self) -> anyhow::Result<crate::config::Profile> {
                crate::config::resolve(
                    self.config.as_deref(),
                    &self.profile,
                    self.folder.as_deref(),
                    self.port,
                )
            }
        }
    )*};
}

profile_args!(ImportArgs, ShowArgs, PeerArgs, ShellArgs);

impl ClientArgs {
    /// The profile these arguments name, with `--folder` (or `-o`) and `--port` applied.
    pub fn profile(&self) -> anyhow::Result<crate::config::Profile> {
        if self.folder.is_some() && self.output.is_some() {
            anyhow::bail!("give --folder or -o, not both: they name the same folder");
        }
        crate::config::resolve(
            self.config.as_deref(),
            &self.profile,
            self.folder.as_deref().or(self.output.as_deref()),
            self.port,
        )
    }
}
