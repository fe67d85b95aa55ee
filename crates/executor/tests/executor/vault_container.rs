//! The vault through a real container: a phantom token sent with curl over the container's
//! mounted socket reaches the upstream as the real key, and the real key is nowhere in the
//! container (env, files), in `podman inspect`, or on podman's command lines.

use std::process::Command;

use terok_executor::{Executor, ImageChoice};
use terok_podman::{ContainerRuntime, LABEL_EXECUTOR, PodmanCli, RunSpec, Sharing, VolumeSpec};
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::podman::require_podman;
use terok_testkit::upstream::MockUpstream;

use crate::support::{REAL_KEY, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_the_container_socket_carries_the_real_key_upstream_only() {
    if !require_podman("curl_over_the_container_socket_carries_the_real_key_upstream_only") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let upstream = MockUpstream::start().unwrap();
    let session = Session::with_runtime(PodmanCli::new().recording());
    let agents = session.env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("claude.yaml"),
        format!("vault:\n  upstream: {}\n", upstream.url()),
    )
    .unwrap();
    // The user stores the key, then the vault runs (served by this session).
    let mut session = session.with_vault().await;
    let executor: &Executor<PodmanCli> = &session.executor;
    let podman = executor.runtime();
    let container = format!("terok-vault-test-{}", std::process::id());

    // The image first: waiting for another test's build can outlast the grace a fresh
    // listener has before the vault's sweep closes it (its container does not exist yet).
    let mut choice = ImageChoice::default();
    choice.base = Some(BASE_IMAGE.to_owned());
    choice.agents = Some("claude".to_owned());
    let request = executor.build_request(&choice).unwrap();
    let images = {
        let _lock = terok_testkit::agents::machine_lock("executor-vault-images").unwrap();
        executor.ensure_images(&request, &mut |_| {}).await.unwrap()
    };
    // The executor's part: a listener for the container and a phantom token.
    // As launches map it: the container's `dev` is never host root, and the socket is its.
    let user = executor.container_user(None).unwrap();
    let opened = executor
        .vault_client()
        .open(&container, vec!["claude".into()], user.socket_uid(), None)
        .await
        .unwrap()
        .expect("the vault runs");
    let phantom = opened.wiring.tokens["claude"].clone();
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
            host: opened.wiring.socket_mount().unwrap().0.to_path_buf(),
            container: "/run/terok/vault".into(),
            sharing: Sharing::None,
            read_only: true,
        }],
        labels: vec![(LABEL_EXECUTOR.into(), "1".into())],
        user_mapping: user.mapping,
        init: true,
        ..RunSpec::default()
    };
    podman
        .create(&spec, &session.env.root().join("envfiles"))
        .await
        .unwrap();
    podman.start(&container).await.unwrap();
    let mut logs = podman.follow_logs(&container).unwrap();
    let mut output = String::new();
    while let Some(line) = logs.next().await {
        output.push_str(&line.line);
        output.push('\n');
    }
    let code = podman.wait(&container).await.unwrap();
    let inspect = Command::new("podman")
        .args(["container", "inspect", &container])
        .output()
        .unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    // Search the container's whole file system from the host for the real key.
    let mount = Command::new("podman")
        .args(["mount", &container])
        .output()
        .unwrap();
    let rootfs = String::from_utf8_lossy(&mount.stdout).trim().to_owned();
    assert!(
        !rootfs.is_empty(),
        "podman mount failed: {}",
        String::from_utf8_lossy(&mount.stderr)
    );
    let grep = Command::new("grep")
        .args([
            "-rlsF",
            "--exclude-dir=proc",
            "--exclude-dir=sys",
            "--exclude-dir=dev",
            REAL_KEY,
        ])
        .arg(&rootfs)
        .output()
        .unwrap();
    let found_files = String::from_utf8_lossy(&grep.stdout).into_owned();
    let _ = Command::new("podman")
        .args(["unmount", &container])
        .output();
    podman.remove(&container).await.unwrap();
    let revoked = executor.vault_client().close(&container).await.unwrap();
    let recorded = podman.recorded();
    session.stop_vault().await;

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
    for argv in recorded {
        assert!(
            argv.iter()
                .all(|a| !a.contains(REAL_KEY) && !a.contains(&phantom)),
            "a secret on podman's argv: {argv:?}"
        );
    }
    assert_eq!(revoked, 1, "closing the listener revokes the token");
}
