//! Gate for tests that need a real podman: run in CI (where a missing podman is a failure),
//! skip loudly elsewhere.

use std::io::Write;
use std::process::{Command, Stdio};

use terok_core::env::HostEnv;

/// Whether `podman` is installed and answers `podman version`.
pub fn podman_works() -> bool {
    Command::new("podman")
        .args(["version", "--format", "{{.Client.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns `true` when the calling test can use podman. Without podman: panics under CI
/// (`CI=true`), so CI can never pass by skipping; otherwise prints a loud SKIPPED banner and
/// returns `false`, and the test should return early.
pub fn require_podman(test_name: &str) -> bool {
    if podman_works() {
        return true;
    }
    if HostEnv::from_process().is_ci() {
        panic!(
            "{test_name}: podman is not available but CI is set; run `cargo xtask host-setup` \
             (the podman-backed tests must run in CI)"
        );
    }
    // A skipped test must be visible: this banner is the whole point of this function.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test_name}: podman is not installed or not working. \
         Run `cargo xtask host-setup` to run the podman-backed tests. ***\n"
    );
    false
}
