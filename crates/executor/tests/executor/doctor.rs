//! `doctor` inside a task, on the recording fake: podman's record of the container's
//! environment, the host side of its credential file and the bridge probes' answers decide each
//! verdict (a real key in the environment or the credential file, a base URL that does not lead
//! to the vault, a bridge that died), `fix` repairs the bridges in place, and no secret is
//! repeated in a verdict.

use terok_executor::{DoctorCheck, READY_MARKER, Verdict};
use terok_podman::{ExecOutput, FakeCall};

use crate::support::Session;

const NAME: &str = "terok-test-doctor";
/// The checks inside a Claude task with the vault.
const CLAUDE_CHECKS: [&str; 4] = [
    "bridge.vault",
    "mount._claude-config",
    "env.ANTHROPIC_API_KEY",
    "base-url.ANTHROPIC_BASE_URL",
];

fn answer(status: i32, stdout: &str, stderr: &str) -> ExecOutput {
    ExecOutput {
        status,
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
    }
}

fn by_id<'a>(checks: &'a [DoctorCheck], id: &str) -> &'a DoctorCheck {
    checks
        .iter()
        .find(|c| c.id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("no {id} in {checks:#?}"))
}

/// Launches the task; returns the host side of its Claude credential file.
async fn running_task(session: &Session) -> std::path::PathBuf {
    let mut options = session.interactive();
    options.name = Some(NAME.to_owned());
    session.fake_runtime().script_running(NAME, &[READY_MARKER]);
    let task = session
        .executor
        .launch(&options, &mut |_| {})
        .await
        .unwrap();
    session
        .executor
        .task_store()
        .layout(&task.record().id)
        .phantom_file("_claude-config", ".credentials.json")
}

#[tokio::test]
async fn a_healthy_task_is_ok_and_a_tampered_one_is_named_without_its_secrets() {
    let session = Session::fake().with_vault().await;
    let credential_file = running_task(&session).await;
    let fake = session.fake_runtime();
    let checks = session.executor.doctor(Some(NAME), false).await.unwrap();
    for id in CLAUDE_CHECKS {
        assert_eq!(
            by_id(&checks, id).verdict,
            Verdict::Ok,
            "{:#?}",
            by_id(&checks, id)
        );
    }
    // The probes run with absolute paths and a fixed PATH (the agent can write to directories
    // early in the image's PATH).
    let probes: Vec<Vec<String>> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Exec(name, argv) if name == NAME => Some(argv),
            _ => None,
        })
        .collect();
    assert!(!probes.is_empty());
    for argv in &probes {
        assert!(argv[0].starts_with('/'), "{argv:?}");
        assert!(argv[2].starts_with("PATH=/usr/bin:/bin;"), "{argv:?}");
    }

    // A real key where the phantom belongs, a base URL elsewhere, a real key in the
    // credential file, the vault bridge dead.
    fake.set_container_env(NAME, "ANTHROPIC_API_KEY", "sk-ant-api03-PLANTED-in-env");
    fake.set_container_env(NAME, "ANTHROPIC_BASE_URL", "https://collector.example/v1");
    std::fs::create_dir_all(credential_file.parent().unwrap()).unwrap();
    std::fs::write(
        &credential_file,
        r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-PLANTED-in-file"}}"#,
    )
    .unwrap();
    fake.answer_exec(&["/bin/sh", "-c"], answer(1, "", ""));
    let checks = session.executor.doctor(Some(NAME), false).await.unwrap();
    for id in CLAUDE_CHECKS {
        assert_eq!(by_id(&checks, id).verdict, Verdict::Error, "{id}");
    }
    assert!(by_id(&checks, "bridge.vault").fixable);
    assert!(!by_id(&checks, "env.ANTHROPIC_API_KEY").fixable);
    let said = serde_json::to_string(&checks).unwrap();
    assert!(!said.contains("PLANTED"), "{said}");
    assert!(said.contains("collector.example"), "{said}");

    // --fix: the bridge script runs in the container, then the probe again.
    let before = fake.calls().len();
    fake.answer_exec(&["/bin/bash", "-c"], answer(0, "", ""));
    let checks = session.executor.doctor(Some(NAME), true).await.unwrap();
    let fixes = fake.calls()[before..]
        .iter()
        .filter(|c| {
            matches!(c, FakeCall::Exec(name, argv)
                if name == NAME && argv.last().is_some_and(|a| a.contains("ensure-bridges.sh")))
        })
        .count();
    assert_eq!(fixes, 1, "the bridges were started again once");
    // The probe still fails here (the fake's probe answer did not change): said so.
    let vault = by_id(&checks, "bridge.vault");
    assert_eq!(vault.verdict, Verdict::Error);
    assert!(vault.detail.contains("did not help"), "{}", vault.detail);
}
