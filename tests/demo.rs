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
    assert!(text.contains("pieces verified by SHA-1"), "{text}");
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
