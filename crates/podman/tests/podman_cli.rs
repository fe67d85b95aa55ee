//! `PodmanCli` against the real podman: the container lifecycle, env files, logs, exit codes,
//! labels, image queries, and the errors for a missing podman and a failing call.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use terok_podman::{
    ContainerRuntime, LABEL_EXECUTOR, LABEL_TASK, LogSource, PodmanCli, PodmanError, RunSpec,
    Sharing, VolumeSpec,
};
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::podman::require_podman;

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_runs_with_env_from_a_deleted_env_file_and_reports_its_exit_code() {
    if !require_podman(
        "a_container_runs_with_env_from_a_deleted_env_file_and_reports_its_exit_code",
    ) {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let podman = PodmanCli::new().recording();
    let dir = tempfile::tempdir().unwrap();
    let env_dir = dir.path().join("env");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), "from the host").unwrap();
    let task = unique("t");
    let secretish = "terok-p-00112233445566778899aabbccddeeff";
    let spec = RunSpec {
        name: format!("terok-podman-test-{task}"),
        image: BASE_IMAGE.into(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo out; echo err >&2; echo \"token=$PHANTOM\"; cat /data/hello.txt; exit 7".into(),
        ],
        env: vec![
            ("PHANTOM".into(), secretish.into()),
            ("JSON".into(), r#"{"*":"allow"} with spaces"#.into()),
        ],
        volumes: vec![VolumeSpec {
            host: shared.clone(),
            container: "/data".into(),
            sharing: Sharing::None,
            read_only: true,
        }],
        labels: vec![
            (LABEL_EXECUTOR.into(), "1".into()),
            (LABEL_TASK.into(), task.clone()),
        ],
        init: true,
        // The bare base image has no /workspace.
        workdir: Some("/".into()),
        ..RunSpec::default()
    };
    podman.create(&spec, &env_dir).await.unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&env_dir).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "the env file must be deleted right after create"
    );
    assert!(
        podman
            .recorded()
            .iter()
            .flatten()
            .all(|arg| !arg.contains(secretish)),
        "an env value reached podman's argv"
    );

    podman.start(&spec.name).await.unwrap();
    let mut logs = podman.follow_logs(&spec.name).unwrap();
    let mut lines = Vec::new();
    while let Some(line) = logs.next().await {
        lines.push(line);
    }
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert!(text.contains(&"out") && text.contains(&"err"), "{text:?}");
    assert!(
        text.contains(&format!("token={secretish}").as_str()),
        "{text:?}"
    );
    assert!(text.contains(&"from the host"), "{text:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.line == "err" && l.source == LogSource::Stderr)
    );
    assert_eq!(podman.wait(&spec.name).await.unwrap(), 7);

    let info = podman.inspect(&spec.name).await.unwrap().unwrap();
    assert_eq!(info.state.exit_code, 7);
    assert!(!info.state.running);
    assert_eq!(info.labels.get(LABEL_TASK), Some(&task));
    let listed = podman.list(&format!("{LABEL_TASK}={task}")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, spec.name);
    assert_eq!(listed[0].state, "exited");

    podman.remove(&spec.name).await.unwrap();
    assert!(podman.inspect(&spec.name).await.unwrap().is_none());
    podman.remove(&spec.name).await.unwrap(); // removing twice is fine
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_runs_in_a_running_container_and_stop_ends_it() {
    if !require_podman("exec_runs_in_a_running_container_and_stop_ends_it") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let podman = PodmanCli::new();
    let dir = tempfile::tempdir().unwrap();
    let spec = RunSpec {
        name: unique("terok-podman-exec"),
        image: BASE_IMAGE.into(),
        command: vec!["sleep".into(), "300".into()],
        init: true,
        // The bare base image has no /workspace.
        workdir: Some("/".into()),
        ..RunSpec::default()
    };
    podman.create(&spec, dir.path()).await.unwrap();
    podman.start(&spec.name).await.unwrap();
    let out = podman
        .exec(
            &spec.name,
            &["sh".into(), "-c".into(), "echo hi; exit 4".into()],
        )
        .await
        .unwrap();
    assert_eq!((out.status, out.stdout.as_str()), (4, "hi\n"));
    podman.stop(&spec.name, 1).await.unwrap();
    let info = podman.inspect(&spec.name).await.unwrap().unwrap();
    assert!(!info.state.running);
    podman.remove(&spec.name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn image_queries_and_podman_errors() {
    if !require_podman("image_queries_and_podman_errors") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let podman = PodmanCli::new();
    let base = podman.image_inspect(BASE_IMAGE).await.unwrap().unwrap();
    assert!(!base.id.is_empty());
    assert!(
        podman
            .image_inspect("localhost/terok-does-not-exist:nope")
            .await
            .unwrap()
            .is_none()
    );
    let err = podman
        .start("terok-no-such-container-xyz")
        .await
        .unwrap_err();
    match err {
        PodmanError::Failed { stderr, .. } => assert!(
            stderr.to_lowercase().contains("no such container"),
            "{stderr}"
        ),
        other => panic!("expected a podman failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_podman_is_one_clear_error() {
    let podman = PodmanCli::new().with_program("/nonexistent/bin/podman");
    let err = podman.start("x").await.unwrap_err();
    assert!(matches!(err, PodmanError::NotInstalled { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "podman is not installed (cannot run `/nonexistent/bin/podman`)"
    );
}
