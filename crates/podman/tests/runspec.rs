//! `RunSpec` → `podman create` argv: the hardening flags, and no environment value on argv.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use insta::assert_snapshot;
use terok_podman::{
    ContainerRuntime, FakeCall, FakeRuntime, GpuRequest, LABEL_AGENT, LABEL_EXECUTOR, LABEL_TASK,
    RunSpec, Sharing, UserMapping, VolumeSpec,
};

fn spec() -> RunSpec {
    RunSpec {
        name: "terok-executor-0123456789ab".into(),
        image: "localhost/terok-l1-cli:debian-bookworm-claude".into(),
        command: vec![
            "bash".into(),
            "-lc".into(),
            "init-ssh-and-repo.sh && claude -p \"$(cat /home/dev/.terok/prompt.txt)\"".into(),
        ],
        env: vec![
            ("TASK_ID".into(), "0123456789ab".into()),
            (
                "ANTHROPIC_API_KEY".into(),
                "terok-p-0f0e0d0c0b0a09080706050403020100".into(),
            ),
            ("OPENCODE_PERMISSION".into(), r#"{"*":"allow"}"#.into()),
        ],
        volumes: vec![
            VolumeSpec {
                host: "/home/u/project".into(),
                container: "/workspace".into(),
                sharing: Sharing::None,
                read_only: false,
            },
            VolumeSpec {
                host: "/var/lib/terok/sandbox-live/mounts/_claude-config".into(),
                container: "/home/dev/.claude".into(),
                sharing: Sharing::Shared,
                read_only: false,
            },
            VolumeSpec {
                host: "/var/lib/terok/sandbox-live/mounts/_claude-config/.credentials.json".into(),
                container: "/home/dev/.claude/.credentials.json".into(),
                sharing: Sharing::Shared,
                read_only: true,
            },
            VolumeSpec {
                host: "/var/lib/terok/executor/tasks/0123456789ab/agent-config".into(),
                container: "/home/dev/.terok".into(),
                sharing: Sharing::Private,
                read_only: false,
            },
        ],
        labels: vec![
            (LABEL_EXECUTOR.into(), "1".into()),
            (LABEL_TASK.into(), "0123456789ab".into()),
            (LABEL_AGENT.into(), "claude".into()),
        ],
        init: true,
        ..RunSpec::default()
    }
}

fn argv(spec: &RunSpec) -> String {
    spec.create_args(Path::new("/run/terok/env/.x.env"))
        .join(" ")
}

#[test]
fn unrestricted_rootful_defaults() {
    assert_snapshot!(argv(&spec()), @r#"--name terok-executor-0123456789ab --label ai.terok.executor=1 --label ai.terok.task=0123456789ab --label ai.terok.agent=claude --env-file /run/terok/env/.x.env --cap-drop NET_ADMIN --cap-drop NET_RAW --init --volume /home/u/project:/workspace --volume /var/lib/terok/sandbox-live/mounts/_claude-config:/home/dev/.claude:z --volume /var/lib/terok/sandbox-live/mounts/_claude-config/.credentials.json:/home/dev/.claude/.credentials.json:z,ro --volume /var/lib/terok/executor/tasks/0123456789ab/agent-config:/home/dev/.terok:Z --workdir /workspace -- localhost/terok-l1-cli:debian-bookworm-claude bash -lc init-ssh-and-repo.sh && claude -p "$(cat /home/dev/.terok/prompt.txt)""#);
}

#[test]
fn restricted_rootless_with_limits_gpus_and_ports() {
    let mut s = spec();
    s.restricted = true;
    s.user_mapping = UserMapping::KeepId;
    s.memory = Some("4g".into());
    s.cpus = Some("2.0".into());
    s.gpus = Some(GpuRequest::parse("nvidia,amd:1", &[]).unwrap());
    s.publish = vec!["127.0.0.1:8080:8080".into()];
    s.remove_on_exit = true;
    s.hostname = Some("task".into());
    assert_snapshot!(argv(&s), @r#"--name terok-executor-0123456789ab --label ai.terok.executor=1 --label ai.terok.task=0123456789ab --label ai.terok.agent=claude --env-file /run/terok/env/.x.env --security-opt no-new-privileges --userns=keep-id:uid=1000,gid=1000 --cap-drop NET_ADMIN --cap-drop NET_RAW --init --rm --memory 4g --cpus 2.0 --device nvidia.com/gpu=all --device amd.com/gpu=1 --publish 127.0.0.1:8080:8080 --volume /home/u/project:/workspace --volume /var/lib/terok/sandbox-live/mounts/_claude-config:/home/dev/.claude:z --volume /var/lib/terok/sandbox-live/mounts/_claude-config/.credentials.json:/home/dev/.claude/.credentials.json:z,ro --volume /var/lib/terok/executor/tasks/0123456789ab/agent-config:/home/dev/.terok:Z --hostname task --workdir /workspace -- localhost/terok-l1-cli:debian-bookworm-claude bash -lc init-ssh-and-repo.sh && claude -p "$(cat /home/dev/.terok/prompt.txt)""#);
    let full = s.full_env();
    assert!(full.contains(&("NVIDIA_VISIBLE_DEVICES".to_owned(), "all".to_owned())));
}

/// Rootful: `dev` is an unprivileged host user and nothing maps onto host root.
#[test]
fn rootful_dev_is_never_host_root() {
    let mut s = spec();
    s.user_mapping = UserMapping::Rootful(terok_podman::userns::RootfulIds {
        dev_uid: 1001,
        dev_gid: 1001,
        range: terok_podman::userns::IdRange {
            start: 165_536,
            count: 65_536,
        },
    });
    let args = argv(&s);
    assert!(
        args.contains("--uidmap 0:165536:1000 --uidmap 1000:1001:1 --uidmap 1001:166537:64535 --gidmap 0:165536:1000 --gidmap 1000:1001:1 --gidmap 1001:166537:64535"),
        "{args}"
    );
    assert!(!args.contains(":0:"), "{args}");
    assert!(!args.contains("keep-id"));
}

#[test]
fn no_environment_value_ever_appears_on_argv() {
    let mut s = spec();
    s.restricted = true;
    s.user_mapping = UserMapping::KeepId;
    s.gpus = Some(GpuRequest::parse("nvidia", &[]).unwrap());
    let args = s.create_args(Path::new("/tmp/env"));
    let joined = args.join(" ");
    for (key, value) in s.full_env() {
        // The task id is also the container name and a label, and short values such as `all`
        // occur in flags by coincidence; every value that could be a secret must not appear.
        if key != "TASK_ID" && value.len() >= 8 {
            assert!(
                !joined.contains(&value),
                "value of {key} leaked into argv: {joined}"
            );
        }
        assert!(
            !joined.contains(&format!("{key}=")),
            "{key}= on argv: {joined}"
        );
    }
    assert!(!args.iter().any(|a| a == "-e" || a == "--env"));
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--env-file" && w[1] == "/tmp/env")
    );
}

#[test]
fn the_hardening_flags_are_always_there() {
    let args = spec().create_args(Path::new("/e"));
    let joined = args.join(" ");
    assert!(joined.contains("--cap-drop NET_ADMIN --cap-drop NET_RAW"));
    assert!(joined.contains("--init"));
    assert!(
        !joined.contains("no-new-privileges"),
        "unrestricted containers keep sudo"
    );
    assert!(
        !joined.contains("--userns"),
        "rootful podman needs no userns mapping"
    );
    let mut restricted = spec();
    restricted.restricted = true;
    assert!(
        restricted
            .create_args(Path::new("/e"))
            .join(" ")
            .contains("--security-opt no-new-privileges")
    );
}

#[tokio::test]
async fn the_fake_records_creates_and_answers_lifecycle_calls() {
    let fake = FakeRuntime::new();
    let s = spec();
    fake.script_container(&s.name, &["hello"], 3);
    fake.create(&s, Path::new("/unused")).await.unwrap();
    fake.start(&s.name).await.unwrap();
    let mut logs = fake.follow_logs(&s.name).unwrap();
    assert_eq!(logs.next().await.unwrap().line, "hello");
    assert_eq!(fake.wait(&s.name).await.unwrap(), 3);
    let listed = fake
        .list(&format!("{LABEL_TASK}=0123456789ab"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "exited");
    fake.remove(&s.name).await.unwrap();
    assert!(fake.inspect(&s.name).await.unwrap().is_none());
    let calls = fake.calls();
    assert!(
        matches!(&calls[0], FakeCall::Create { argv, .. } if argv.contains(&"--env-file".to_owned()))
    );
    assert_eq!(calls[1], FakeCall::Start(s.name.clone()));
}
