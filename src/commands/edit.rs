//! `bt edit`: change a torrent's trackers (and comment) without touching its info-hash.

use anyhow::{bail, Result};

use crate::cli::EditArgs;
use crate::commands::read_torrent;

/// Run `bt edit`.
pub fn run(args: EditArgs) -> Result<()> {
    if args.tracker.is_empty() && args.comment.is_none() {
        bail!("nothing to change: give --tracker URL (repeatable) and/or --comment TEXT");
    }
    let mut meta = read_torrent(&args.torrent)?;
    let before = meta.info_hash;
    if !args.tracker.is_empty() {
        for t in &args.tracker {
            crate::swarm::announce::check_tracker_url(t)?;
        }
        meta.set_trackers(&args.tracker);
    }
    if let Some(c) = args.comment {
        meta.comment = (!c.is_empty()).then_some(c);
    }
    let bytes = meta.to_bytes();
    // Belt and braces: what we write must parse back to the same info-hash.
    let check = crate::proto::metainfo::Metainfo::from_bytes(&bytes)?;
    if check.info_hash != before {
        bail!("internal error: the info-hash would change; nothing written");
    }
    let out = args.output.as_deref().unwrap_or(&args.torrent);
    super::write_atomic(out, &bytes)?;
    println!(
        "wrote {}: trackers {}, info-hash {} (unchanged)",
        out.display(),
        meta.trackers().join(", "),
        before
    );
    Ok(())
}
