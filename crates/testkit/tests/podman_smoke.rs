//! The first podman-backed test: a real container from the local Debian base image runs and
//! its output comes back, so CI proves podman works on the machine it runs on.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::process::Command;

use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::podman::require_podman;

#[test]
fn a_container_from_the_base_image_runs_and_reports_debian_12() {
    if !require_podman("a_container_from_the_base_image_runs_and_reports_debian_12") {
        return;
    }
    ensure_base_image(&mut |line| eprintln!("base image: {line}")).expect("base image");
    let out = Command::new("podman")
        .args([
            "run",
            "--rm",
            BASE_IMAGE,
            "sh",
            "-c",
            "cat /etc/debian_version; id -u",
        ])
        .output()
        .expect("podman run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let version = lines.next().unwrap_or_default();
    assert!(
        version.starts_with("12."),
        "unexpected /etc/debian_version: {stdout}"
    );
    assert_eq!(
        lines.next(),
        Some("0"),
        "expected to run as root in the container: {stdout}"
    );
}
