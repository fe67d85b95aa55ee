//! The container-side scripts parse (`bash -n`; Python ones `py_compile`) and the shell ones
//! pass shellcheck.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `path` is a Python program (by its `#!` line).
fn is_python(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.starts_with("#!") && l.contains("python"))
        })
        .unwrap_or(false)
}

/// The shell scripts.
fn scripts() -> Vec<PathBuf> {
    let mut out = all_scripts();
    out.retain(|p| !is_python(p));
    out
}

fn all_scripts() -> Vec<PathBuf> {
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
fn every_python_script_compiles() {
    let python: Vec<PathBuf> = all_scripts().into_iter().filter(|p| is_python(p)).collect();
    assert!(!python.is_empty(), "terok-toad-agents is Python");
    for script in python {
        let code = "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')";
        let out = Command::new("python3")
            .args(["-c", code])
            .arg(&script)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{} does not compile:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

/// Runs `terok-pi-vault` with HOME in `home` and the given variables; returns its exit status
/// and stderr.
fn pi_vault(home: &Path, vars: &[(&str, &str)]) -> (bool, String) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../resources/scripts/terok-pi-vault");
    let out = Command::new("bash")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(vars.iter().copied())
        .output()
        .expect("bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pi_vault_points_the_anthropic_provider_at_the_vault_and_keeps_the_rest() {
    if Command::new("jq").arg("--version").output().is_err() {
        panic!("jq is not installed; run `cargo xtask host-setup`");
    }
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join(".pi/agent/models.json");
    // Without a vault it changes nothing.
    assert_eq!(pi_vault(home.path(), &[]), (true, String::new()));
    assert!(!models.exists());
    // The user's own providers and settings stay; Anthropic's endpoint becomes the vault.
    std::fs::create_dir_all(models.parent().unwrap()).unwrap();
    std::fs::write(
        &models,
        r#"{"providers": {"anthropic": {"baseUrl": "https://api.anthropic.com", "headers": {"x": "1"}}, "local": {"baseUrl": "http://ollama:11434/v1"}}}"#,
    )
    .unwrap();
    let vars = [
        ("TEROK_VAULT_LOOPBACK_PORT", "9419"),
        ("ANTHROPIC_API_KEY", "terok-p-phantom"),
    ];
    assert!(pi_vault(home.path(), &vars).0);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&models).unwrap()).unwrap();
    assert_eq!(
        written["providers"]["anthropic"]["baseUrl"],
        "http://localhost:9419"
    );
    assert_eq!(written["providers"]["anthropic"]["headers"]["x"], "1");
    assert_eq!(
        written["providers"]["local"]["baseUrl"],
        "http://ollama:11434/v1"
    );
    // A file it cannot read is left as it is, and Pi does not start.
    std::fs::write(&models, "{ not json").unwrap();
    let (ok, stderr) = pi_vault(home.path(), &vars);
    assert!(!ok);
    assert!(stderr.contains("is not valid JSON"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&models).unwrap(), "{ not json");
    let leftovers = std::fs::read_dir(models.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
}
