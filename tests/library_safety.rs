//! One profile folder, many torrents (issue 12, item 2): no torrent may overwrite another's
//! `.torrent` file or data, and bt never writes through a symbolic link that leads out of the
//! folder. Real `bt import`, `bt client` and `bt check` processes on temporary folders.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{bt, unused_port, Output};

/// `bt create SOURCE -o OUT` (tracker on a closed loopback port).
fn create(d: &Path, source: &Path, out: &Path) -> PathBuf {
    bt(
        d,
        [
            "create",
            source.to_str().unwrap(),
            "--piece-length",
            "16k",
            "--tracker",
            &format!("http://127.0.0.1:{}/announce", unused_port()),
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .success();
    out.to_path_buf()
}

fn import(d: &Path, folder: &Path, torrent: &Path) -> Output {
    bt(
        d,
        [
            "import",
            torrent.to_str().unwrap(),
            "--profile",
            "p",
            "--folder",
            folder.to_str().unwrap(),
            "--port",
            "0",
        ],
    )
}

/// `bt client` for `torrent` into `folder`, with one peer that is not there: it either fails
/// at once (refused) or after a short stall.
fn client(d: &Path, folder: &Path, torrent: &Path) -> Output {
    bt(
        d,
        [
            "client",
            "--profile",
            "p",
            "--folder",
            folder.to_str().unwrap(),
            "--port",
            "0",
            "--exit-when-done",
            "--stall-timeout",
            "3",
            "--peer",
            &format!("127.0.0.1:{}", unused_port()),
            torrent.to_str().unwrap(),
        ],
    )
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_torrent_whose_data_would_be_a_torrent_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = d.join("profile");
    write(
        &d.join("src/victim/a.bin"),
        &common::pseudo_random(1, 40_000),
    );
    let victim = create(d, &d.join("src/victim"), &d.join("victim.torrent"));
    import(d, &profile, &victim).success();
    let before = std::fs::read(profile.join("victim.torrent")).unwrap();

    // A single file named victim.torrent, and one named LOUD.TORRENT.
    for name in ["victim.torrent", "LOUD.TORRENT"] {
        write(&d.join("evil").join(name), b"not a torrent at all");
        let attack = create(
            d,
            &d.join("evil").join(name),
            &d.join(format!("attack-{name}")),
        );
        for out in [import(d, &profile, &attack), client(d, &profile, &attack)] {
            assert!(!out.status.success(), "{}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.contains("refusing") && out.stderr.contains("torrent file"),
                "{}",
                out.stderr
            );
        }
    }
    assert_eq!(
        std::fs::read(profile.join("victim.torrent")).unwrap(),
        before
    );
    assert!(!profile.join("LOUD.TORRENT").exists());
}

#[test]
fn a_second_torrent_with_the_same_data_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = d.join("profile");
    // The first album, complete in the folder.
    write(
        &profile.join("album/a.bin"),
        &common::pseudo_random(2, 100_000),
    );
    write(
        &profile.join("album/b.bin"),
        &common::pseudo_random(3, 30_000),
    );
    let first = create(d, &profile.join("album"), &d.join("album.torrent"));
    import(d, &profile, &first).success();
    // Another folder named album, and a single file named album, with other bytes.
    write(
        &d.join("other/album/a.bin"),
        &common::pseudo_random(4, 100_000),
    );
    write(&d.join("single/album"), &common::pseudo_random(5, 20_000));
    let second = create(d, &d.join("other/album"), &d.join("album2.torrent"));
    let third = create(d, &d.join("single/album"), &d.join("album3.torrent"));
    for t in [&second, &third] {
        for out in [import(d, &profile, t), client(d, &profile, t)] {
            assert!(!out.status.success(), "{}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.contains("refusing") && out.stderr.contains("album.torrent"),
                "{}",
                out.stderr
            );
        }
    }
    // The first album's data is intact and its torrent the only one in the library.
    let check = bt(
        d,
        ["check", profile.join("album.torrent").to_str().unwrap()],
    )
    .success();
    assert!(check.stdout.contains("(100.0%)"), "{}", check.stdout);
    let torrents: Vec<_> = std::fs::read_dir(&profile)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "torrent")
        })
        .collect();
    assert_eq!(torrents.len(), 1);
}

#[test]
fn a_taken_torrent_file_name_gets_a_free_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = d.join("profile");
    write(&d.join("a/first/x.bin"), &common::pseudo_random(6, 20_000));
    write(&d.join("b/second/x.bin"), &common::pseudo_random(7, 20_000));
    write(&d.join("c/third/x.bin"), &common::pseudo_random(8, 20_000));
    let t1 = create(d, &d.join("a/first"), &d.join("a/x.torrent"));
    let t2 = create(d, &d.join("b/second"), &d.join("b/x.torrent"));
    let t3 = create(d, &d.join("c/third"), &d.join("c/x.torrent"));
    import(d, &profile, &t1).success();
    let before = std::fs::read(profile.join("x.torrent")).unwrap();
    let out = import(d, &profile, &t2).success();
    assert!(out.stderr.contains("x.torrent is taken"), "{}", out.stderr);
    // Through the client too, and the same torrent again is found, not copied a third time.
    let out = client(d, &profile, &t3);
    assert!(out.stderr.contains("x.torrent is taken"), "{}", out.stderr);
    let again = import(d, &profile, &t2).success();
    assert!(again.stdout.contains("already in"), "{}", again.stdout);
    assert_eq!(std::fs::read(profile.join("x.torrent")).unwrap(), before);
    let names: Vec<String> = std::fs::read_dir(&profile)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".torrent"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let show = bt(
        d,
        [
            "show",
            "--profile",
            "p",
            "--port",
            "0",
            "--folder",
            profile.to_str().unwrap(),
        ],
    )
    .success();
    for name in ["first", "second", "third"] {
        assert!(show.stdout.contains(name), "{}", show.stdout);
    }
}

#[test]
fn nothing_is_written_through_a_link_out_of_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let outside = d.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let profile = d.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    write(&d.join("src/dl/a.bin"), &common::pseudo_random(9, 50_000));
    write(&d.join("src/one.bin"), &common::pseudo_random(10, 50_000));
    let multi = create(d, &d.join("src/dl"), &d.join("dl.torrent"));
    let single = create(d, &d.join("src/one.bin"), &d.join("one.torrent"));

    // The data folder is a link out; the single file is a dangling link out.
    symlink(&outside, profile.join("dl")).unwrap();
    symlink(outside.join("one.bin"), profile.join("one.bin")).unwrap();
    for (t, link) in [(&multi, "dl"), (&single, "one.bin")] {
        let out = client(d, &profile, t);
        assert!(!out.status.success(), "{}", out.stdout);
        assert!(
            out.stderr.contains("symbolic link")
                && out
                    .stderr
                    .contains(&profile.join(link).display().to_string()),
            "{}",
            out.stderr
        );
    }
    // An imported torrent is not written through a link named like it.
    std::fs::remove_file(profile.join("dl.torrent")).ok();
    let t = d.join("sub/t.torrent");
    std::fs::create_dir_all(t.parent().unwrap()).unwrap();
    std::fs::copy(&multi, &t).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let p2 = empty.path().join("p2");
    std::fs::create_dir_all(&p2).unwrap();
    symlink(outside.join("t.torrent"), p2.join("t.torrent")).unwrap();
    let out = import(d, &p2, &t);
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(
        out.stderr.contains("symbolic link") && out.stderr.contains("t.torrent"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside the profile folder"
    );
}

#[test]
fn a_link_that_stays_inside_the_folder_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = d.join("profile");
    write(&d.join("src/dl/a.bin"), &common::pseudo_random(11, 50_000));
    let multi = create(d, &d.join("src/dl"), &d.join("dl.torrent"));
    std::fs::create_dir_all(profile.join("real")).unwrap();
    symlink(profile.join("real"), profile.join("dl")).unwrap();
    // Fails only for want of a peer, after the stall timeout, not because of the link.
    let out = client(d, &profile, &multi);
    assert!(!out.status.success());
    assert!(!out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert!(out.stderr.contains("no peer"), "{}", out.stderr);
}
