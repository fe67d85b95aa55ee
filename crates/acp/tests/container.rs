//! Agents' ACP servers in a real container (podman, the local Debian base image): a server that
//! never reads its stdin and leaves a child behind is still ended — with everything it
//! started inside the container — when its link closes, and the `podman exec` on the host
//! is gone too.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use terok_acp::{AgentLink, ContainerLauncher, Launcher};
use terok_podman::PodmanCli;
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::podman::require_podman;

/// An "ACP server" that ignores its stdin, answers nothing, and starts a child of its own.
const STUBBORN: &str = "#!/bin/sh\nsleep 1000 &\nwhile :; do sleep 1; done\n";

/// Removes the test's container however the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

fn marked_processes(container: &str) -> String {
    let out = Command::new("podman")
        .args([
            "exec",
            container,
            "sh",
            "-c",
            "grep -l TEROK_ACP_SESSION= /proc/[0-9]*/environ 2>/dev/null || true",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_link_ends_a_server_that_ignores_its_stdin_and_its_children() {
    if !require_podman("closing_a_link_ends_a_server_that_ignores_its_stdin_and_its_children") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("terok-stubborn-acp");
    std::fs::write(&script, STUBBORN).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = format!("terok-acp-test-{}", std::process::id());
    let started = Command::new("podman")
        .args([
            "run",
            "-d",
            "--rm",
            "--network",
            "none",
            "--name",
            &name,
            "-v",
        ])
        .arg(format!(
            "{}:/usr/local/bin/terok-stubborn-acp:ro",
            script.display()
        ))
        .args([BASE_IMAGE, "sleep", "infinity"])
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let container = Container(name);

    let launcher = ContainerLauncher::new(Arc::new(PodmanCli::new()), &container.0);
    let servable = launcher
        .servable(&["stubborn".to_owned(), "absent".to_owned()])
        .await;
    assert_eq!(servable, Some(vec!["stubborn".to_owned()]));
    let link = AgentLink::start(&launcher, "stubborn").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while marked_processes(&container.0).lines().count() < 2 {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    link.close().await;
    assert_eq!(marked_processes(&container.0), "", "left in the container");
    let execs = Command::new("pgrep")
        .args(["-f", &format!("exec -i -- {} env", container.0)])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&execs.stdout).trim().is_empty(),
        "a podman exec is left on the host"
    );
}
