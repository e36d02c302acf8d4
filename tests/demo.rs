//! `bt demo` from the repository's own peers.toml and samples: it must finish, say that both
//! peers sent pieces, and leave the downloaded files byte-identical to `data/`.

use std::process::Command;

#[test]
fn demo_downloads_the_samples_from_both_peers() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_bt"))
        .args(["demo", "--timeout", "60", "--dir"])
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("done: all ") && l.ends_with(" verified by SHA-1")),
        "{text}"
    );
    for role in ["peer1", "peer2"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("from {role}:")))
            .unwrap_or_else(|| panic!("no line for {role}:\n{text}"));
        let pieces: u32 = line
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pieces > 0, "{role} sent nothing:\n{text}");
    }
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    for name in ["album", "book.txt"] {
        let st = Command::new("diff")
            .arg("-r")
            .arg(data.join(name))
            .arg(dir.join("client").join(name))
            .status()
            .unwrap();
        assert!(st.success(), "{name} differs");
    }
}

/// `bt demo` with the system temp folder at `tmp`, from the repository root.
fn demo_in(tmp: &std::path::Path, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_bt"))
        .arg("demo")
        .args(["--timeout", "60"])
        .args(extra)
        .env("TMPDIR", tmp)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_demos_at_once_get_their_own_folders_and_random_data_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = [
        demo_in(tmp.path(), &[]),
        demo_in(tmp.path(), &["--size", "3m"]),
    ];
    let outs: Vec<_> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut dirs = Vec::new();
    for out in &outs {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = text
            .lines()
            .find_map(|l| l.strip_prefix("bt demo in "))
            .and_then(|l| l.split(" (").next())
            .unwrap_or_else(|| panic!("no scratch folder named:\n{text}"))
            .to_string();
        assert!(dir.starts_with(tmp.path().to_str().unwrap()), "{dir}");
        // The times say what they measure; a rate is never made up from nothing.
        assert!(
            text.contains("from the client's start to the last piece verified"),
            "{text}"
        );
        assert!(
            !text.contains(" 0 B/s") && !text.contains("GiB/s"),
            "{text}"
        );
        dirs.push(dir);
    }
    assert_ne!(dirs[0], dirs[1], "two runs shared a scratch folder");
    // The samples stay to be looked at; the random data is gone, folder and all.
    assert!(std::path::Path::new(&dirs[0]).join("client/album").is_dir());
    assert!(
        !std::path::Path::new(&dirs[1]).exists(),
        "{} is left",
        dirs[1]
    );
    let text = String::from_utf8_lossy(&outs[1].stdout);
    assert!(text.contains("removed the random data"), "{text}");
    assert!(!text.contains("downloaded: "), "{text}");
}
