//! A peer with many torrents (issue 17): every `completed` and every `stopped` reaches the
//! tracker. Real `bt peer` processes and a real `bt tracker` on 127.0.0.1; the tracker's
//! `/peers` listing is what counts.

mod common;
mod support;

use std::path::Path;

use sha1::Digest;
use std::time::Duration;

use bt::modes::tracker::status::Listing;
use common::Proc;
use support::Tracker;

/// Torrents of the test.
const N: usize = 1_000;

fn bencode_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// `n` one-piece torrents announcing to `announce`: each `.torrent` in `torrents`, and its data
/// (a few hundred distinct bytes) in `data` when given.
fn write_torrents(n: usize, announce: &str, torrents: &Path, data: Option<&Path>) {
    for i in 0..n {
        let name = format!("t{i:05}.bin");
        let bytes = common::pseudo_random(i as u64, 100 + i % 400);
        let mut t = b"d8:announce".to_vec();
        bencode_str(&mut t, announce.as_bytes());
        t.extend_from_slice(b"4:infod6:length");
        t.extend_from_slice(format!("i{}e4:name", bytes.len()).as_bytes());
        bencode_str(&mut t, name.as_bytes());
        t.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
        t.extend_from_slice(&sha1::Sha1::digest(&bytes));
        t.extend_from_slice(b"ee");
        std::fs::write(torrents.join(format!("t{i:05}.torrent")), t).unwrap();
        if let Some(dir) = data {
            std::fs::write(dir.join(&name), bytes).unwrap();
        }
    }
}

/// Every page of the tracker's `/peers`: (peers, completed downloads) over all torrents.
fn tracker_counts(t: &Tracker) -> (usize, u64) {
    let mut offset = Some(0);
    let (mut peers, mut completed) = (0, 0);
    while let Some(at) = offset {
        let (status, body) = t.get(&format!("/peers?offset={at}"));
        assert_eq!(status, 200);
        let page: Listing = serde_json::from_slice(&body).unwrap();
        peers = page.peer_count;
        completed += page
            .torrents
            .iter()
            .map(|s| s.completed as u64)
            .sum::<u64>();
        offset = page.next;
    }
    (peers, completed)
}

fn start_peer(dir: &Path, name: &str, folder: &Path) -> Proc {
    let mut p = Proc::start(
        &[
            "peer",
            "--profile",
            name,
            "--folder",
            folder.to_str().unwrap(),
            "--port",
            "0",
        ],
        dir,
    );
    p.port();
    p
}

#[test]
fn a_peer_with_a_thousand_torrents_sends_every_completed_and_every_stopped() {
    let tracker = Tracker::start(
        "[tracker]\ninterval = 60\nmin_interval = 20\nmax_peers_per_ip = 10000\n",
        &[],
    );
    let announce = format!("{}/announce", tracker.url());
    let dir = tempfile::tempdir().unwrap();
    let (seed, leech) = (dir.path().join("seed"), dir.path().join("leech"));
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::create_dir_all(&leech).unwrap();
    write_torrents(N, &announce, &seed, Some(&seed));
    write_torrents(N, &announce, &leech, None);

    let mut seeder = start_peer(dir.path(), "s", &seed);
    let mut leecher = start_peer(dir.path(), "l", &leech);
    // Every download completes and the tracker hears of each.
    let done = common::poll(Duration::from_secs(240), || {
        let (peers, completed) = tracker_counts(&tracker);
        (peers == 2 * N && completed == N as u64).then_some(())
    });
    assert!(
        done.is_some(),
        "tracker (peers, completed): {:?}",
        tracker_counts(&tracker)
    );
    for i in 0..N {
        let name = format!("t{i:05}.bin");
        assert_eq!(
            std::fs::read(leech.join(&name)).unwrap(),
            std::fs::read(seed.join(&name)).unwrap(),
            "{name}"
        );
    }

    // The leecher leaves: the tracker has a `stopped` for each of its torrents by the time
    // it has exited (the wait for them is bounded; the exit comes after).
    assert!(leecher.stop().success(), "{}", leecher.log());
    assert_eq!(
        tracker_counts(&tracker),
        (N, N as u64),
        "after the leecher left"
    );
    assert!(seeder.stop().success(), "{}", seeder.log());
    assert_eq!(
        tracker_counts(&tracker),
        (0, N as u64),
        "after the seeder left"
    );
}
