//! The vault as a Pod's sidecar: it serves one socket from a bundle, swaps only the bundle's
//! tokens for the real credential, never echoes a bundle's content in an error, reads the
//! base64 form podman before 4.4 writes, and stops when the agent's end file appears.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use terok_credentials::routes::Route;
use terok_credentials::{Credential, new_token, token_hash};
use terok_testkit::upstream::MockUpstream;
use terok_vault::bundle::{BUNDLE_VERSION, read_bundle};
use terok_vault::listener::ListenerLimits;
use terok_vault::{SidecarBundle, SidecarOptions, serve_sidecar};

const REAL: &str = "sk-ant-real-sidecar-key";

fn bundle(upstream: &MockUpstream, token: &str) -> SidecarBundle {
    SidecarBundle {
        version: BUNDLE_VERSION,
        container: "task-1".into(),
        routes: [(
            "claude".to_owned(),
            Route {
                upstream: upstream.url(),
                auth_header: "dynamic".into(),
                ..Route::default()
            },
        )]
        .into(),
        credentials: [("claude".to_owned(), Credential::api_key(REAL))].into(),
        token_hashes: [("claude".to_owned(), token_hash(token))].into(),
    }
}

async fn status_over(socket: &Path, token: &str) -> u16 {
    let headers = [("x-api-key", token)];
    let answer = terok_testkit::unix_http::request(socket, "GET", "/v1/models", &headers, "");
    answer.await.unwrap().status
}

async fn wait_for_socket(socket: &Path) {
    for _ in 0..200 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sidecar did not listen on {}", socket.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_swaps_only_its_bundles_tokens_and_stops_when_the_agent_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let token = new_token().unwrap();
    let file = dir.path().join("bundle.json");
    // As podman 4.3 mounts a Secret's value: base64 of the JSON.
    let json = serde_json::to_vec(&bundle(&upstream, &token)).unwrap();
    std::fs::write(
        &file,
        base64::engine::general_purpose::STANDARD.encode(json),
    )
    .unwrap();
    let socket = dir.path().join("vault.sock");
    let until = dir.path().join("agent-exited");
    let serving = tokio::spawn(serve_sidecar(SidecarOptions {
        bundle: file,
        socket: socket.clone(),
        state_dir: dir.path().join("state"),
        until: Some(until.clone()),
        limits: ListenerLimits::default(),
    }));
    wait_for_socket(&socket).await;

    assert_eq!(status_over(&socket, &token).await, 200);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-api-key"), Some(REAL));
    assert!(!seen[0].mentions(&token));
    // Another token, even a well-formed one, is refused and never forwarded.
    assert_eq!(status_over(&socket, &new_token().unwrap()).await, 401);
    assert_eq!(upstream.requests().len(), 1);
    // The state is sealed: the real key is in no file of the sidecar's.
    for entry in walk(&dir.path().join("state")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(REAL.len()).any(|w| w == REAL.as_bytes()),
            "{}",
            entry.display()
        );
    }

    std::fs::write(&until, b"").unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the sidecar stops once the agent is done")
        .unwrap()
        .unwrap();
    assert!(!socket.exists());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_broken_bundle_is_named_without_echoing_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    let secret = "sk-ant-never-in-an-error";
    for text in [
        format!(
            "{{\"version\": 1, \"container\": \"c\", \"routes\": {{}}, \"credentials\": {{\"claude\": \"{secret}\"}}, \"token_hashes\": {{}}}}"
        ),
        format!("{{\"version\": 1, \"unknown\": \"{secret}\"}}"),
        format!("not json {secret}"),
    ] {
        std::fs::write(&file, &text).unwrap();
        let err = read_bundle(&file).unwrap_err().to_string();
        assert!(err.contains("bundle.json"), "{err}");
        assert!(!err.contains(secret), "{err}");
    }
    std::fs::write(
        &file,
        br#"{"version": 2, "container": "c", "routes": {}, "credentials": {}, "token_hashes": {}}"#,
    )
    .unwrap();
    let err = read_bundle(&file).unwrap_err().to_string();
    assert!(err.contains("version 2"), "{err}");
}
