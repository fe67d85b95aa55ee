//! Real images on the local Debian base: L0 + L1 with Claude Code built, inspected and run; a
//! second build reuses both without calling `podman build`; a changed install snippet rebuilds
//! L1 and leaves L0 alone. An L1 too deep for a task container is squashed and starts with the
//! task's user mapping.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use terok_image_build::{BuildEvent, BuildRequest, ImageBuilder};
use terok_podman::userns::{IdRange, RootfulIds};
use terok_podman::{ContainerRuntime, PodmanCli, RunSpec, UserMapping};
use terok_roster::RosterLoader;
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::podman::require_podman;

fn lock_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("terok-test-image-locks")
}

fn builds(podman: &PodmanCli) -> usize {
    podman
        .recorded()
        .iter()
        .filter(|args| args.first().map(String::as_str) == Some("build"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_images_build_run_and_are_reused_then_rebuilt_when_the_snippet_changes() {
    if !require_podman(
        "claude_images_build_run_and_are_reused_then_rebuilt_when_the_snippet_changes",
    ) {
        return;
    }
    ensure_base_image(&mut |line| eprintln!("base image: {line}")).unwrap();
    let roster = RosterLoader::bundled().load().unwrap();
    let request = BuildRequest::new(BASE_IMAGE, vec!["claude".into()]);

    // First: build (or reuse, when an earlier run left current images behind).
    let podman = PodmanCli::new().recording();
    let mut progress = |e: BuildEvent| match e {
        BuildEvent::Step {
            layer,
            current,
            total,
            text,
        } => eprintln!("{} {current}/{total} {text}", layer.display_name()),
        BuildEvent::LayerFinished {
            tag,
            reused,
            duration,
            ..
        } => eprintln!("{tag}: reused={reused} in {duration:?}"),
        _ => {}
    };
    let first = ImageBuilder::new(&podman, &roster)
        .with_lock_dir(lock_dir())
        .ensure(&request, &mut progress)
        .await
        .unwrap();
    assert_eq!(
        first.l1.tag,
        "terok-l1-cli:localhost-debian-bookworm-claude"
    );

    let l1 = podman.image_inspect(&first.l1.tag).await.unwrap().unwrap();
    assert_eq!(
        l1.labels.get("ai.terok.agents").map(String::as_str),
        Some("claude")
    );
    let out = podman
        .exec_in_image(
            &first.l1.tag,
            "id -u; id -un; cat /etc/terok/installed.env; claude --version",
        )
        .await;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1000"), "{out}");
    assert_eq!(lines.next(), Some("dev"), "{out}");
    assert_eq!(lines.next(), Some("TEROK_INSTALLED_AGENTS=claude"), "{out}");
    let version = lines.next().unwrap_or_default();
    assert!(
        version.contains("Claude Code"),
        "claude --version printed: {out}"
    );

    // Second: both layers are current, so no build runs and the ids are the same.
    let podman2 = PodmanCli::new().recording();
    let second = ImageBuilder::new(&podman2, &roster)
        .with_lock_dir(lock_dir())
        .ensure(&request, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        builds(&podman2),
        0,
        "podman build ran although the images are current"
    );
    assert!(second.l0.reused && second.l1.reused);
    assert_eq!(
        (second.l0.id.as_str(), second.l1.id.as_str()),
        (first.l0.id.as_str(), first.l1.id.as_str())
    );

    // Third: a user override changes claude's install snippet → L1 is rebuilt, L0 is not.
    let overrides = tempfile::tempdir().unwrap();
    std::fs::write(
        overrides.path().join("claude.yaml"),
        "install:\n  run_as_dev: |\n    RUN npm install -g @anthropic-ai/claude-code \\\n     && claude --version \\\n     && echo 'overridden by a user roster file'\n",
    )
    .unwrap();
    let changed = RosterLoader::bundled()
        .with_override_dir(overrides.path())
        .load()
        .unwrap();
    let podman3 = PodmanCli::new().recording();
    let third = ImageBuilder::new(&podman3, &changed)
        .with_lock_dir(lock_dir())
        .ensure(&request, &mut progress)
        .await
        .unwrap();
    assert!(
        third.l0.reused,
        "L0 must not rebuild for an L1 snippet change"
    );
    assert_eq!(third.l0.id, first.l0.id);
    assert!(!third.l1.reused);
    assert_ne!(third.l1.id, first.l1.id);
    assert_eq!(builds(&podman3), 1, "exactly one build: L1");

    // Leave the bundled-roster image current for later tests and runs.
    ImageBuilder::new(&PodmanCli::new(), &roster)
        .with_lock_dir(lock_dir())
        .ensure(&request, &mut |_| {})
        .await
        .unwrap();
}

/// Runs a shell command in a throwaway container of `image` and returns its stdout.
trait ExecInImage {
    async fn exec_in_image(&self, image: &str, script: &str) -> String;
}

impl ExecInImage for PodmanCli {
    async fn exec_in_image(&self, image: &str, script: &str) -> String {
        let name = format!("terok-image-test-{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let spec = terok_podman::RunSpec {
            name: name.clone(),
            image: image.to_owned(),
            command: vec!["bash".into(), "-lc".into(), script.into()],
            ..Default::default()
        };
        self.create(&spec, dir.path()).await.unwrap();
        self.start(&name).await.unwrap();
        let mut logs = self.follow_logs(&name).unwrap();
        let mut out = String::new();
        while let Some(line) = logs.next().await {
            out.push_str(&line.line);
            out.push('\n');
        }
        let code = self.wait(&name).await.unwrap();
        self.remove(&name).await.unwrap();
        assert_eq!(code, 0, "{script} failed:\n{out}");
        out
    }
}

/// How many one-file entries the deep image gets: with L0 and L1's own steps, well past what
/// a task container can start from.
const DEEP_ENTRIES: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn an_image_deeper_than_a_task_can_start_from_is_squashed_and_starts_with_a_user_mapping() {
    if !require_podman(
        "an_image_deeper_than_a_task_can_start_from_is_squashed_and_starts_with_a_user_mapping",
    ) {
        return;
    }
    ensure_base_image(&mut |line| eprintln!("base image: {line}")).unwrap();
    let overrides = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for n in 1..=DEEP_ENTRIES {
        let name = format!("layer{n:02}");
        std::fs::write(
            overrides.path().join(format!("{name}.yaml")),
            format!(
                "roster_version: 1\nkind: tool\nlabel: Layer {n}\nbinary: \"true\"\n\
                 install:\n  run_as_root: |\n    RUN touch /terok-{name}\n"
            ),
        )
        .unwrap();
        names.push(name);
    }
    let roster = RosterLoader::bundled()
        .with_override_dir(overrides.path())
        .load()
        .unwrap();
    let podman = PodmanCli::new();
    let mut squashed = None;
    let built = ImageBuilder::new(&podman, &roster)
        .with_lock_dir(lock_dir())
        .ensure(&BuildRequest::new(BASE_IMAGE, names), &mut |e| {
            if let BuildEvent::Squashed { layers, limit, .. } = e {
                squashed = Some((layers, limit));
            }
        })
        .await
        .unwrap();
    let l1 = podman.image_inspect(&built.l1.tag).await.unwrap().unwrap();
    let layers = l1.layers.unwrap();
    assert!(layers <= terok_podman::MAX_MAPPED_LAYERS, "{layers} layers");
    if !built.l1.reused {
        let (would, limit) = squashed.expect("a build this deep says it squashes");
        assert!(would > limit, "{would} layers would not need squashing");
    }
    // Started as a rootful task on a directory terok made starts (every user mapped into a
    // subordinate range, `dev` too), every entry's file is there.
    let range = IdRange {
        start: 300_000,
        count: 65_536,
    };
    let mapping = if terok_core::env::HostEnv::from_process().is_root() {
        UserMapping::Rootful(RootfulIds {
            dev_uid: range.start + 1000,
            dev_gid: range.start + 1000,
            range,
        })
    } else {
        UserMapping::KeepId
    };
    let name = format!("terok-deep-image-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let spec = RunSpec {
        name: name.clone(),
        image: built.l1.tag.clone(),
        command: vec![
            "bash".into(),
            "-c".into(),
            format!("test -e /terok-layer{DEEP_ENTRIES:02} && test -e /terok-layer01"),
        ],
        user_mapping: mapping,
        ..Default::default()
    };
    podman.create(&spec, dir.path()).await.unwrap();
    let started = podman.start(&name).await;
    let code = match &started {
        Ok(()) => podman.wait(&name).await.unwrap(),
        Err(_) => -1,
    };
    podman.remove(&name).await.unwrap();
    assert!(started.is_ok(), "the container did not start: {started:?}");
    assert_eq!(code, 0, "an entry's file is missing");
}
