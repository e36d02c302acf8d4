//! `peers.toml`: the tracker section and the named profiles (a folder and a port each), plus the
//! command-line overrides that every profile-taking subcommand shares.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The default config file name, looked up in the current folder.
pub const DEFAULT_CONFIG: &str = "peers.toml";

/// The whole `peers.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the tracker listens and how peers reach it.
    pub tracker: TrackerConfig,
    /// The Mainline DHT (off unless enabled).
    pub dht: DhtConfig,
    /// Named profiles: `peer1`, `peer2`, `client`, ...
    pub profiles: BTreeMap<String, ProfileConfig>,
}

/// The `[dht]` section: the Mainline DHT (BEP 5), which finds peers without a tracker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhtConfig {
    /// Join the DHT (`bt peer` and `bt client`; `--dht` does the same). Off by default.
    pub enabled: bool,
    /// UDP port of the DHT node (default: the profile's peer port, on UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Nodes to join through, `HOST:PORT` (a LAN's `bt dht`). Empty: the public routers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<String>,
}

/// The `[tracker]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Address `bt tracker` listens on (`0.0.0.0:6969` serves the whole LAN).
    pub bind: SocketAddr,
    /// Announce URL that peers use and that `bt create` writes by default.
    pub announce: String,
    /// Seconds between announces that the tracker asks of peers. A peer silent for two
    /// intervals is dropped from the swarm.
    pub interval: u64,
    /// Seconds a peer must wait at least between two announces (sent as `min interval`;
    /// 0: not sent).
    pub min_interval: u64,
    /// Most torrents tracked at once; announces that would add one more are refused.
    pub max_torrents: usize,
    /// Most peers in one torrent; announces from new peers beyond it are refused.
    pub max_peers_per_torrent: usize,
    /// Most peers from one address (an IPv4 address, an IPv6 /64) over all torrents; announces
    /// of new peers beyond it are refused, so one host cannot fill the table.
    pub max_peers_per_ip: usize,
    /// Take a peer's address from the announce's `ip` parameter instead of the connection's
    /// source address. Off by default: it lets anyone point a swarm at a third party.
    pub allow_ip_param: bool,
    /// A file of allowed info-hashes (40 hex digits a line, `#` comments), relative to this
    /// file's folder. When set, announces for any other torrent are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_list: Option<PathBuf>,
}

/// One `[profiles.NAME]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// The profile's library and download folder, relative to the config file's folder.
    pub folder: PathBuf,
    /// TCP port for the peer wire protocol.
    pub port: u16,
    /// Address to listen on (default `0.0.0.0`, every interface).
    #[serde(default = "any_ip")]
    pub ip: IpAddr,
    /// Download limit in KiB/s (the command line's `--download-limit` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_limit: Option<u64>,
    /// Upload limit in KiB/s (`--upload-limit` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u64>,
    /// Seed goal: bytes sent as a multiple of the download (`--seed-ratio` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_ratio: Option<f64>,
    /// Seed goal: how long to seed once complete, `30m`, `2h` (`--seed-time` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_time: Option<String>,
    /// Serve the web page and API here (`bt peer` and `bt client`; `--web` overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<SocketAddr>,
    /// The token the web API asks for; required when `web` is not a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_token: Option<String>,
    /// Find peers on the LAN by local service discovery (BEP 14 multicast). Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lsd: bool,
}

/// A profile's transfer settings from `peers.toml` (each one overridden by its option).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Download limit in KiB/s.
    pub download_limit: Option<u64>,
    /// Upload limit in KiB/s.
    pub upload_limit: Option<u64>,
    /// Seed ratio.
    pub seed_ratio: Option<f64>,
    /// Seed time.
    pub seed_time: Option<std::time::Duration>,
}

fn any_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 6969)),
            announce: "http://127.0.0.1:6969/announce".into(),
            interval: 30,
            min_interval: 10,
            max_torrents: 100_000,
            max_peers_per_torrent: 50_000,
            max_peers_per_ip: 2_000,
            allow_ip_param: false,
            access_list: None,
        }
    }
}

impl Default for Config {
    /// The same three profiles as the shipped `peers.toml`.
    fn default() -> Self {
        let profile = |folder: &str, port| ProfileConfig {
            folder: folder.into(),
            port,
            ip: any_ip(),
            download_limit: None,
            upload_limit: None,
            seed_ratio: None,
            seed_time: None,
            web: None,
            web_token: None,
            lsd: false,
        };
        Config {
            tracker: TrackerConfig::default(),
            dht: DhtConfig::default(),
            profiles: BTreeMap::from([
                ("peer1".to_string(), profile("peer1", 6881)),
                ("peer2".to_string(), profile("peer2", 6882)),
                ("client".to_string(), profile("client", 6883)),
            ]),
        }
    }
}

impl Config {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", origin.display(), one_line(&e.to_string())))?;
        let mut ports = BTreeMap::new();
        for (name, p) in &config.profiles {
            if let Some(other) = ports.insert((p.ip, p.port), name) {
                bail!(
                    "{}: profiles `{other}` and `{name}` both use port {}",
                    origin.display(),
                    p.port
                );
            }
        }
        Ok(config)
    }

    /// Load a config file. A missing file is an error only if the user named it: without
    /// `--config`, a missing `peers.toml` means the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<(Config, PathBuf)> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Config::parse(&text, &path)?, base_dir(&path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok((Config::default(), PathBuf::new()))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read config {}", path.display())),
        }
    }
}

/// The folder that relative profile folders are resolved against.
fn base_dir(config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::new(),
    }
}

/// toml's messages span several lines with a source excerpt; keep them to one.
fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // toml puts "TOML parse error at line X, column Y" first and the reason last.
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if lines.len() > 1 => {
            format!(
                "{}: {}",
                first.trim_start_matches("TOML parse error "),
                last
            )
        }
        _ => s.trim().to_string(),
    }
}

/// A profile with overrides applied and its folder resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Library and download folder.
    pub folder: PathBuf,
    /// Listen port.
    pub port: u16,
    /// Listen address.
    pub ip: IpAddr,
    /// Limits and seed goals from the config file.
    pub settings: Settings,
    /// Where to serve the web page and API, if anywhere.
    pub web: Option<SocketAddr>,
    /// The web API's token.
    pub web_token: Option<String>,
    /// Local service discovery is on (`lsd = true`).
    pub lsd: bool,
    /// The whole config it came from (for the tracker URL).
    pub config: Config,
}

/// Say on stderr when no config file is used: no `--config` and no `peers.toml` in the
/// current folder, so the built-in profiles apply (a new user in an empty folder).
pub fn note_if_built_in(config_path: Option<&Path>, profile: &Profile) {
    if config_path.is_none() && !Path::new(DEFAULT_CONFIG).exists() {
        eprintln!(
            "bt: note: no {DEFAULT_CONFIG} in this folder; using the built-in defaults (profile \
             {}: folder {}, port {}; tracker {})",
            profile.name,
            profile.folder.display(),
            profile.port,
            profile.config.tracker.announce
        );
    }
}

/// Resolve a profile from a config file and command-line overrides.
pub fn resolve(
    config_path: Option<&Path>,
    name: &str,
    folder: Option<&Path>,
    port: Option<u16>,
) -> Result<Profile> {
    let (config, base) = Config::load(config_path)?;
    let shown = config_path.unwrap_or(Path::new(DEFAULT_CONFIG)).display();
    let found = config.profiles.get(name).cloned();
    let settings = match &found {
        Some(p) => settings(p).map_err(|e| anyhow::anyhow!("{shown}: [profiles.{name}] {e}"))?,
        None => Settings::default(),
    };
    let (web, web_token) = found
        .as_ref()
        .map_or((None, None), |p| (p.web, p.web_token.clone()));
    let (folder, port, ip, lsd) = match (found, folder, port) {
        (Some(p), f, o) => (
            f.map(Path::to_path_buf)
                .unwrap_or_else(|| base.join(&p.folder)),
            o.unwrap_or(p.port),
            p.ip,
            p.lsd,
        ),
        // Both overrides given: the profile need not exist (scripts, benchmarks).
        (None, Some(f), Some(o)) => (f.to_path_buf(), o, any_ip(), false),
        (None, _, _) => {
            let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
            bail!(
                "{shown}: no profile `{name}` (known: {}); add a [profiles.{name}] section or pass --folder and --port",
                known.join(", ")
            )
        }
    };
    Ok(Profile {
        name: name.to_string(),
        folder,
        port,
        ip,
        settings,
        web,
        web_token,
        lsd,
        config,
    })
}

/// The checked transfer settings of a profile section.
fn settings(p: &ProfileConfig) -> std::result::Result<Settings, String> {
    if let Some(r) = p.seed_ratio {
        crate::cli::parse_ratio(&r.to_string()).map_err(|e| format!("seed_ratio: {e}"))?;
    }
    let seed_time = match &p.seed_time {
        Some(t) => Some(crate::cli::parse_duration(t).map_err(|e| format!("seed_time: {e}"))?),
        None => None,
    };
    Ok(Settings {
        download_limit: p.download_limit,
        upload_limit: p.upload_limit,
        seed_ratio: p.seed_ratio,
        seed_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_matches_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/peers.toml")).unwrap();
        let c = Config::parse(&text, Path::new("peers.toml")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn defaults_survive_a_round_trip() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(
            Config::parse(&text, Path::new("x")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_and_clashing_ports_are_named() {
        let e = Config::parse("[tracker]\nbindd = \"1.2.3.4:1\"\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml: ") && e.contains("bindd"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = Config::parse(
            "[profiles.a]\nfolder = \"a\"\nport = 1\n[profiles.b]\nfolder = \"b\"\nport = 1\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("both use port 1"), "{e}");
    }

    #[test]
    fn resolve_applies_overrides_and_names_missing_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[profiles.x]\nfolder = \"xdir\"\nport = 7000\n").unwrap();
        let p = resolve(Some(&path), "x", None, None).unwrap();
        assert_eq!(p.folder, dir.path().join("xdir"));
        assert_eq!(p.port, 7000);
        assert_eq!(p.settings, Settings::default());
        let p = resolve(Some(&path), "x", Some(Path::new("/tmp/o")), Some(7001)).unwrap();
        assert_eq!((p.folder.as_path(), p.port), (Path::new("/tmp/o"), 7001));
        let e = resolve(Some(&path), "nope", None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no profile `nope`") && e.contains("c.toml"),
            "{e}"
        );
        assert!(
            !p.lsd && !p.config.dht.enabled,
            "discovery is off unless asked"
        );
        std::fs::write(
            &path,
            "[dht]\nenabled = true\nbootstrap = [\"10.0.0.1:6881\"]\n\
             [profiles.x]\nfolder = \"xdir\"\nport = 7000\nlsd = true\n",
        )
        .unwrap();
        let p = resolve(Some(&path), "x", None, None).unwrap();
        assert!(p.lsd && p.config.dht.enabled);
        assert_eq!(p.config.dht.bootstrap, ["10.0.0.1:6881"]);
        let e = resolve(Some(&dir.path().join("missing.toml")), "x", None, None).unwrap_err();
        assert!(format!("{e:#}").contains("missing.toml"));
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn a_profile_carries_its_limits_and_seed_goals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[profiles.x]\nfolder = \"x\"\nport = 7000\ndownload_limit = 512\nupload_limit = 64\nseed_ratio = 1.5\nseed_time = \"2h\"\n",
        )
        .unwrap();
        let s = resolve(Some(&path), "x", None, None).unwrap().settings;
        assert_eq!(s.download_limit, Some(512));
        assert_eq!(s.upload_limit, Some(64));
        assert_eq!(s.seed_ratio, Some(1.5));
        assert_eq!(s.seed_time, Some(std::time::Duration::from_secs(7200)));
        std::fs::write(
            &path,
            "[profiles.x]\nfolder = \"x\"\nport = 7000\nseed_time = \"soon\"\n",
        )
        .unwrap();
        let e = resolve(Some(&path), "x", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("seed_time"), "{e}");
    }
}
