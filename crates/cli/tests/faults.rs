//! What the CLI leaves behind when the disk fills up in the middle of a write: an error that
//! names the file and the cause, the previous file intact, no temporary file left over.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;

use terok_testkit::IsolatedEnv;
use terok_testkit::cli::{CliRun as Run, run_cli};
use terok_testkit::full_disk::FullDisk;

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

fn run_in(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_cli(env, BIN, args)
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn a_config_edit_on_a_full_disk_fails_and_keeps_the_file() {
    let env = IsolatedEnv::new().unwrap();
    let before = "# ours\nimage:\n  agents: all  # every one\n";
    let config = env.write_user_config(before).unwrap();
    let Some(disk) = FullDisk::over(
        config.parent().unwrap(),
        "a_config_edit_on_a_full_disk_fails_and_keeps_the_file",
    )
    .unwrap() else {
        return;
    };
    let r = run_in(&env, &["agents", "set", "claude"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    let named = format!(
        "cannot write {}: No space left",
        env.redact(&config.display().to_string())
    );
    assert!(r.stderr.contains(&named), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    assert_eq!(disk.entries(), names(&["config.yml"]));
}

#[test]
fn writing_routes_on_a_full_disk_fails_and_keeps_the_file() {
    let env = IsolatedEnv::new().unwrap();
    let first = run_in(&env, &["vault", "routes", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let routes = env.state_root().join("vault/routes.json");
    let before = std::fs::read(&routes).unwrap();
    let Some(disk) = FullDisk::over(
        routes.parent().unwrap(),
        "writing_routes_on_a_full_disk_fails_and_keeps_the_file",
    )
    .unwrap() else {
        return;
    };
    let kept = disk.entries();
    let r = run_in(&env, &["vault", "routes"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    let named = format!(
        "cannot write {}: No space left",
        env.redact(&routes.display().to_string())
    );
    assert!(r.stderr.contains(&named), "{}", r.stderr);
    assert_eq!(std::fs::read(&routes).unwrap(), before);
    assert_eq!(disk.entries(), kept);
}
