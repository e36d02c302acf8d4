//! What a remote control (the web API) may do to a running engine: add a torrent, pause,
//! resume and remove one. It keeps the announcer of every torrent by info-hash, so that a
//! pause tells the trackers `stopped` and a resume `started`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::engine::{self, Options, Running};
use super::magnet;
use crate::library::{self, Library};
use crate::proto::magnet::Magnet;
use crate::proto::metainfo::{InfoHash, Metainfo};
use crate::swarm::announce::Announcer;
use crate::swarm::session::Session;
use crate::swarm::torrent::Torrent;

/// How long a magnet link added here may go without progress on its metadata.
pub const MAGNET_STALL: std::time::Duration = std::time::Duration::from_secs(600);

/// Why a control request was refused: the caller maps each kind to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No torrent with this info-hash in the session.
    #[error("no torrent {0} here")]
    NotFound(String),
    /// The request cannot be carried out as given (a bad torrent, a clash in the folder).
    #[error("{0}")]
    Refused(String),
    /// The session has this torrent already.
    #[error("torrent {0} is here already")]
    Exists(String),
    /// The engine failed (disk, check).
    #[error("{0}")]
    Failed(String),
}

/// The control side of a running engine (see the module doc).
pub struct Control {
    session: Arc<Session>,
    folder: PathBuf,
    opts: Options,
    direct: Vec<SocketAddr>,
    announcers: Mutex<HashMap<InfoHash, Arc<Announcer>>>,
    /// Announcers of the torrents added here (the mode's [`Running`] knows the others).
    added: Mutex<Vec<Arc<Announcer>>>,
}

impl Control {
    /// Control over `running`, whose torrents live in `folder` (the profile's library) and
    /// announce as `opts` says.
    pub fn new(running: &Running, folder: PathBuf, opts: Options) -> Arc<Control> {
        let direct = engine::parse_peers(&opts.peers).unwrap_or_default();
        let announcers = running
            .torrents
            .iter()
            .zip(&running.announcers)
            .map(|(t, a)| (t.info_hash(), Arc::clone(a)))
            .collect();
        Arc::new(Control {
            session: Arc::clone(&running.session),
            folder,
            opts,
            direct,
            announcers: Mutex::new(announcers),
            added: Mutex::new(Vec::new()),
        })
    }

    /// The session's torrents, in info-hash order (stable from one look to the next).
    pub fn torrents(&self) -> Vec<Arc<Torrent>> {
        let mut all = self.session.torrents();
        all.sort_by_key(|t| t.info_hash().0);
        all
    }

    /// The torrent with this info-hash (40 hex digits).
    pub fn find(&self, hex: &str) -> Result<Arc<Torrent>, ControlError> {
        InfoHash::from_hex(hex)
            .and_then(|h| self.session.find(&h))
            .ok_or_else(|| ControlError::NotFound(hex.to_string()))
    }

    /// Tell the control about a torrent the mode added itself (`bt peer`'s folder watch).
    pub fn adopt(&self, torrent: &Torrent, announcer: &Arc<Announcer>) {
        self.lock_announcers()
            .insert(torrent.info_hash(), Arc::clone(announcer));
    }

    fn lock_announcers(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, Arc<Announcer>>> {
        self.announcers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Import a `.torrent` (its bytes) into the library and start it.
    pub async fn add_torrent(&self, bytes: &[u8]) -> Result<Arc<Torrent>, ControlError> {
        let meta = Metainfo::from_bytes(bytes)
            .map_err(|e| ControlError::Refused(format!("not a valid torrent: {e}")))?;
        if self.session.find(&meta.info_hash).is_some() {
            return Err(ControlError::Exists(meta.info_hash.hex()));
        }
        self.import(&meta)?;
        let trackers = self.opts.trackers_for(&meta);
        let options = self
            .opts
            .for_torrent(&self.folder, &meta)
            .map_err(|e| ControlError::Failed(format!("{e:#}")))?;
        let (t, a) = engine::add(
            &self.session,
            &self.folder,
            meta,
            trackers,
            &self.direct,
            options,
        )
        .await
        .map_err(|e| ControlError::Failed(format!("{e:#}")))?;
        self.adopt(&t, &a);
        self.added.lock().unwrap_or_else(|e| e.into_inner()).push(a);
        Ok(t)
    }

    /// Start a magnet link: its metadata is fetched in the background (from the link's
    /// trackers and `x.pe` peers, the profile's `--peer`s, and the DHT or LSD when on), saved
    /// in the library, and the torrent is added then. Returns its info-hash and name at once;
    /// a fetch that finds nothing within [`MAGNET_STALL`] is given up with a warning.
    pub fn add_magnet(self: &Arc<Self>, link: &str) -> Result<(InfoHash, String), ControlError> {
        let m = Magnet::parse(link)
            .map_err(|e| ControlError::Refused(format!("not a valid magnet link: {e}")))?;
        let hash = m.info_hash;
        if self.session.find(&hash).is_some() || self.session.fetch_of(&hash).is_some() {
            return Err(ControlError::Exists(hash.hex()));
        }
        // Registered now, so that a second request for it is refused at once.
        self.session.begin_fetch(hash);
        let name = magnet::label(&m);
        let me = Arc::clone(self);
        crate::rt::spawn(async move {
            if let Err(e) = me.fetch_and_add(&m).await {
                log::warn!("{}: {e:#}", magnet::label(&m));
            }
        })
        .detach();
        Ok((hash, name))
    }

    async fn fetch_and_add(&self, m: &Magnet) -> anyhow::Result<()> {
        let trackers = magnet::trackers_for(m, &self.opts.trackers);
        let (meta, f) = magnet::fetch(
            &self.session,
            m,
            &trackers,
            &self.direct,
            MAGNET_STALL,
            |_| {},
        )
        .await?;
        let meta = magnet::save(&mut Library::open(&self.folder)?, meta)?;
        let options = self.opts.for_torrent(&self.folder, &meta)?;
        let (t, a) = magnet::add(&self.session, &self.folder, meta, trackers, &f, options).await?;
        self.adopt(&t, &a);
        self.added.lock().unwrap_or_else(|e| e.into_inner()).push(a);
        Ok(())
    }

    /// Copy `meta` into the library through a scratch file (the library imports files).
    fn import(&self, meta: &Metainfo) -> Result<(), ControlError> {
        let scratch = std::env::temp_dir().join(format!(
            "bt-web-{}-{}",
            std::process::id(),
            meta.info_hash.hex()
        ));
        let refuse = |e: anyhow::Error| ControlError::Refused(format!("{e:#}"));
        std::fs::create_dir_all(&scratch).map_err(|e| refuse(e.into()))?;
        let file = scratch.join(format!("{}.torrent", library::data_name(meta)));
        let result = std::fs::write(&file, meta.to_bytes())
            .map_err(anyhow::Error::from)
            .and_then(|()| Library::open(&self.folder)?.import(&file));
        let _ = std::fs::remove_dir_all(&scratch);
        result.map(|_| ()).map_err(refuse)
    }

    /// Pause: close the connections, stop calling peers, tell the trackers `stopped`.
    pub async fn pause(&self, hex: &str) -> Result<Arc<Torrent>, ControlError> {
        let t = self.find(hex)?;
        if !t.is_paused() {
            t.set_paused(true);
            let a = self.lock_announcers().get(&t.info_hash()).cloned();
            if let Some(a) = a {
                a.pause().await;
            }
        }
        Ok(t)
    }

    /// Resume a paused torrent: announce `started`, call peers again.
    pub async fn resume(&self, hex: &str) -> Result<Arc<Torrent>, ControlError> {
        let t = self.find(hex)?;
        if t.is_paused() {
            t.set_paused(false);
            let a = self.lock_announcers().get(&t.info_hash()).cloned();
            if let Some(a) = a {
                a.resume();
            }
            crate::swarm::session::dial_due(&t);
        }
        Ok(t)
    }

    /// Remove a torrent from the session (its files and its `.torrent` stay): connections
    /// close and the trackers are told `stopped`.
    pub async fn remove(&self, hex: &str) -> Result<(), ControlError> {
        let t = self.find(hex)?;
        let was_paused = t.is_paused();
        self.session.remove(&t.info_hash());
        let a = self.lock_announcers().remove(&t.info_hash());
        if let (Some(a), false) = (a, was_paused) {
            a.pause().await;
        }
        Ok(())
    }

    /// Tell the trackers of the torrents added here that we leave (the mode's
    /// [`Running::shutdown`] does the others).
    pub async fn shutdown(&self) {
        let added: Vec<Arc<Announcer>> =
            std::mem::take(&mut *self.added.lock().unwrap_or_else(|e| e.into_inner()));
        for a in added {
            let Some(t) = a.torrent() else { continue };
            t.close_all(crate::swarm::error::CloseReason::Shutdown);
            if !t.is_paused() {
                a.stopped().await;
            }
        }
    }
}
