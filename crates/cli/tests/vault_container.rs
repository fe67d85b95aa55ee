//! The vault through a real container: a phantom token sent with curl over the container's
//! mounted socket reaches the upstream as the real key, and the real key is nowhere in the
//! container (env, files), in `podman inspect`, or on podman's command lines.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use terok_image_build::{BuildRequest, ImageBuilder};
use terok_podman::{ContainerRuntime, LABEL_EXECUTOR, PodmanCli, RunSpec, Sharing, VolumeSpec};
use terok_roster::RosterLoader;
use terok_testkit::IsolatedEnv;
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::podman::require_podman;
use terok_testkit::upstream::MockUpstream;
use terok_vault::control::{ControlRequest, ControlResponse, call};

const REAL_KEY: &str = "sk-ant-api03-REAL-container-test-key-7f3a9c";

fn cli(env: &IsolatedEnv, args: &[&str]) -> (i32, String) {
    let out = env
        .command(env!("CARGO_BIN_EXE_terok-executor"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn curl_over_the_container_socket_carries_the_real_key_upstream_only() {
    if !require_podman("curl_over_the_container_socket_carries_the_real_key_upstream_only") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let env = IsolatedEnv::new().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let agents = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("claude.yaml"),
        format!("vault:\n  upstream: {}\n", upstream.url()),
    )
    .unwrap();

    // The user stores the key, then starts the vault.
    let mut auth = env.command(env!("CARGO_BIN_EXE_terok-executor"));
    auth.args(["auth", "claude", "--api-key", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = auth.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(REAL_KEY.as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    let (code, out) = cli(&env, &["vault", "start"]);
    assert_eq!(code, 0, "{out}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let podman = PodmanCli::new().recording();
    let container = format!("terok-vault-test-{}", std::process::id());
    let host = env.host_env();
    let paths =
        terok_vault::VaultPaths::from_terok(&terok_core::TerokPaths::resolve(&host, None).unwrap());
    let result = runtime.block_on(async {
        // The executor's part: a listener for the container and a phantom token.
        let opened = match call(
            &paths.control_socket(),
            &ControlRequest::Open { container: container.clone(), providers: vec!["claude".into()], scope: "standalone".into(), uid: Some(1000), stored_only: false },
        )
        .await
        .unwrap()
        {
            ControlResponse::Opened(o) => o,
            other => panic!("{other:?}"),
        };
        let phantom = opened.tokens["claude"].clone();
        let roster = RosterLoader::bundled().load().unwrap();
        let images = ImageBuilder::new(&PodmanCli::new(), &roster)
            .with_lock_dir(std::env::temp_dir().join("terok-test-image-locks"))
            .ensure(&BuildRequest::new(BASE_IMAGE, vec!["claude".into()]), &mut |_| {})
            .await
            .unwrap();
        let spec = RunSpec {
            name: container.clone(),
            image: images.l0.tag.clone(),
            command: vec![
                "bash".into(),
                "-c".into(),
                "curl -sS --unix-socket /run/terok/vault/vault.sock http://vault/v1/messages -H \"x-api-key: $ANTHROPIC_API_KEY\" -d '{}' -o /tmp/answer.json; cat /tmp/answer.json; echo; env".into(),
            ],
            env: vec![("ANTHROPIC_API_KEY".into(), phantom.clone())],
            volumes: vec![VolumeSpec {
                host: opened.socket_dir.clone().unwrap(),
                container: "/run/terok/vault".into(),
                sharing: Sharing::None,
                read_only: true,
            }],
            labels: vec![(LABEL_EXECUTOR.into(), "1".into())],
            init: true,
            ..RunSpec::default()
        };
        podman.create(&spec, &env.root().join("envfiles")).await.unwrap();
        podman.start(&container).await.unwrap();
        let mut logs = podman.follow_logs(&container).unwrap();
        let mut output = String::new();
        while let Some(line) = logs.next().await {
            output.push_str(&line.line);
            output.push('\n');
        }
        let code = podman.wait(&container).await.unwrap();
        let inspect = Command::new("podman").args(["container", "inspect", &container]).output().unwrap();
        // Search the container's whole file system from the host for the real key.
        let mount = Command::new("podman").args(["mount", &container]).output().unwrap();
        let rootfs = String::from_utf8_lossy(&mount.stdout).trim().to_owned();
        assert!(!rootfs.is_empty(), "podman mount failed: {}", String::from_utf8_lossy(&mount.stderr));
        let grep = Command::new("grep")
            .args(["-rlsF", "--exclude-dir=proc", "--exclude-dir=sys", "--exclude-dir=dev", REAL_KEY])
            .arg(&rootfs)
            .output()
            .unwrap();
        let found_files = String::from_utf8_lossy(&grep.stdout).into_owned();
        let _ = Command::new("podman").args(["unmount", &container]).output();
        podman.remove(&container).await.unwrap();
        let closed = call(&paths.control_socket(), &ControlRequest::Close { container: container.clone() }).await.unwrap();
        (phantom, output, code, String::from_utf8_lossy(&inspect.stdout).into_owned(), closed, found_files)
    });
    let (phantom, output, code, inspect, closed, found_files) = result;
    let (stop_code, stop_out) = cli(&env, &["vault", "stop"]);
    assert_eq!(stop_code, 0, "{stop_out}");

    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("\"ok\":true"),
        "the request did not get through:\n{output}"
    );
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1, "{output}");
    assert_eq!(
        seen[0].header("x-api-key"),
        Some(REAL_KEY),
        "the upstream got the real key"
    );
    assert!(
        !seen[0].mentions(&phantom),
        "the phantom must not reach the upstream"
    );
    assert!(
        output.contains(&format!("ANTHROPIC_API_KEY={phantom}")),
        "the container holds only the phantom:\n{output}"
    );
    assert!(
        !output.contains(REAL_KEY),
        "the real key is in the container's output/env:\n{output}"
    );
    assert!(
        found_files.is_empty(),
        "the real key is in container files:\n{found_files}"
    );
    assert!(
        !inspect.contains(REAL_KEY) && !inspect.contains(&REAL_KEY[..20]),
        "podman inspect shows the real key"
    );
    for argv in podman.recorded() {
        assert!(
            argv.iter()
                .all(|a| !a.contains(REAL_KEY) && !a.contains(&phantom)),
            "a secret on podman's argv: {argv:?}"
        );
    }
    assert!(
        matches!(closed, ControlResponse::Revoked { tokens: 1, .. }),
        "{closed:?}"
    );
}
