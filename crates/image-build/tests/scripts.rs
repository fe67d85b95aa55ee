//! The container-side scripts parse (`bash -n`) and pass shellcheck.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../resources/scripts");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("resources/scripts")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !name.ends_with(".mjs") && name != "Caddyfile"
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "expected the container scripts, found {out:?}"
    );
    out
}

#[test]
fn every_script_parses_with_bash_n() {
    for script in scripts() {
        let out = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_script_passes_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("CI").is_ok_and(|v| v != "false" && v != "0") {
            panic!("shellcheck is not installed but CI is set; run `cargo xtask host-setup`");
        }
        eprintln!(
            "\n*** SKIPPED every_script_passes_shellcheck: shellcheck is not installed ***\n"
        );
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../resources/scripts");
    for script in scripts() {
        let out = Command::new("shellcheck")
            .args(["--external-sources", "--source-path"])
            .arg(&dir)
            .arg(&script)
            .output()
            .expect("shellcheck");
        assert!(
            out.status.success(),
            "shellcheck {}:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
