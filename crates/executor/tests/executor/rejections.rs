//! A model API refusing the stored credential: a headless run hears of it from the vault
//! within seconds, stops after three refusals in a row (exit 77) unless told to keep waiting,
//! and `list` / `doctor` name the task.

use std::time::{Duration, Instant};

use terok_executor::{
    CREDENTIAL_REJECTED_EXIT_CODE, LaunchedTask, Rejection, TaskEvent, Verdict, WaitOptions,
};
use terok_podman::FakeRuntime;
use terok_testkit::model::{ModelScript, ScriptedModel};
use terok_testkit::unix_http;

use crate::support::{REAL_KEY, Session, token_and_socket};

/// A session whose Claude route leads to a model API that refuses every key.
async fn refused_session() -> (Session, ScriptedModel) {
    let model = ScriptedModel::start(
        ModelScript::refusing(401, "authentication_error"),
        "127.0.0.1:0",
    )
    .unwrap();
    let session = Session::fake();
    let dir = session.env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("claude.yaml"),
        format!("vault:\n  upstream: {}\n", model.url()),
    )
    .unwrap();
    (session.with_vault().await, model)
}

/// Launches a headless Claude that stays up, and returns it with the phantom it holds and
/// its socket on the host.
async fn launch(
    session: &Session,
    name: &str,
) -> (LaunchedTask<FakeRuntime>, String, std::path::PathBuf) {
    let mut options = session.headless("hello");
    options.name = Some(name.to_owned());
    session.fake_runtime().script_running(name, &[]);
    let task = session
        .executor
        .launch(&options, &mut |_| {})
        .await
        .unwrap();
    let (token, socket) = token_and_socket(&task, &session.executor);
    (task, token, socket)
}

/// What the agent in the container does: asks the API every `every`, `times` times.
fn agent_retrying(token: String, socket: std::path::PathBuf, times: usize, every: Duration) {
    tokio::spawn(async move {
        for _ in 0..times {
            let _ = unix_http::request(
                &socket,
                "POST",
                "/v1/messages",
                &[("x-api-key", &token)],
                "{}",
            )
            .await;
            tokio::time::sleep(every).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_reported_within_seconds_and_the_run_stops_with_77() {
    let (session, model) = refused_session().await;
    let (task, token, socket) = launch(&session, "terok-test-refused").await;
    agent_retrying(token, socket, 10, Duration::from_millis(300));
    let started = Instant::now();
    let mut first_heard = None;
    let mut told: Vec<Rejection> = Vec::new();
    let mut stopping = Vec::new();
    let options = WaitOptions::default();
    let watching = task.watch(
        &options,
        |event| match event {
            TaskEvent::CredentialRejected(r) => {
                first_heard.get_or_insert_with(|| started.elapsed());
                told.push(r.clone());
            }
            TaskEvent::Stopping(reason) => stopping.push(reason),
            _ => {}
        },
        std::future::pending(),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(30), watching)
        .await
        .expect("the run stopped on its own")
        .unwrap();
    assert_eq!(outcome.exit_code, CREDENTIAL_REJECTED_EXIT_CODE);
    assert!(outcome.stopped_for_rejection && !outcome.timed_out);
    assert_eq!(stopping, [terok_executor::StopReason::CredentialRejected]);
    let first = first_heard.expect("the refusal was reported");
    assert!(first < Duration::from_secs(5), "reported after {first:?}");
    let r = &told[0];
    assert_eq!(
        (r.provider.as_str(), r.status, r.error_type.as_deref()),
        ("claude", 401, Some("authentication_error"))
    );
    assert!(outcome.rejected.as_ref().is_some_and(|r| r.count >= 3));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped long before any timeout"
    );
    assert!(
        model
            .requests()
            .iter()
            .all(|r| r.header("x-api-key") == Some(REAL_KEY))
    );
    let shown = format!("{told:?}{outcome:?}");
    assert!(!shown.contains(REAL_KEY), "no key in what the caller hears");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fail_fast_the_run_keeps_waiting_and_list_and_doctor_name_the_task() {
    let (session, _model) = refused_session().await;
    let (task, token, socket) = launch(&session, "terok-test-patient").await;
    agent_retrying(token, socket, 5, Duration::from_millis(200));
    let (heard_tx, heard_rx) = tokio::sync::oneshot::channel::<()>();
    let mut heard_tx = Some(heard_tx);
    let watching = tokio::spawn(async move {
        task.watch(
            &WaitOptions::never_stop_early(),
            move |event| {
                if let TaskEvent::CredentialRejected(r) = event
                    && r.count >= 4
                    && let Some(tx) = heard_tx.take()
                {
                    let _ = tx.send(());
                }
            },
            async {
                // Interrupted by the test after it looked around.
                tokio::time::sleep(Duration::from_secs(30)).await;
            },
        )
        .await
    });
    tokio::time::timeout(Duration::from_secs(10), heard_rx)
        .await
        .expect("four refusals heard")
        .unwrap();
    // Still running: the run did not stop at three.
    let listed = session.executor.list_tasks().await.unwrap();
    let mine = listed
        .iter()
        .find(|t| t.name == "terok-test-patient")
        .unwrap();
    assert_eq!(mine.credential_rejected.as_deref(), Some("claude"));
    assert_eq!(mine.state, "running");
    let checks = session
        .executor
        .doctor(Some("terok-test-patient"), false)
        .await
        .unwrap();
    let task_check = checks
        .iter()
        .find(|c| c.name == "task terok-test-patient")
        .unwrap();
    assert_eq!(task_check.verdict, Verdict::Error);
    let credential = checks
        .iter()
        .find(|c| c.name == "credential claude")
        .unwrap();
    assert_eq!(credential.verdict, Verdict::Error);
    assert!(
        credential.detail.contains("401 authentication_error"),
        "{}",
        credential.detail
    );
    // A new key stored afterwards clears the credential's verdict (times are in seconds).
    tokio::time::sleep(Duration::from_secs(2)).await;
    crate::support::next_command(&session)
        .store_api_key("claude", "sk-ant-api03-another-key")
        .unwrap();
    let checks = session.executor.doctor(None, false).await.unwrap();
    let credential = checks
        .iter()
        .find(|c| c.name == "credential claude")
        .unwrap();
    assert_eq!(credential.verdict, Verdict::Ok, "{}", credential.detail);
    watching.abort();
}
