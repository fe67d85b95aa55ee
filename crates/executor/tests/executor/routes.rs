//! The vault serves the routes of the roster as it is now: a launch brings a running daemon's
//! routes up to date before the container starts, status reports a daemon serving an older
//! roster, and a broken override changes nothing.

use terok_executor::{Executor, ExecutorError, LaunchedTask, RouteChange, RunEvent};
use terok_podman::FakeRuntime;
use terok_testkit::unix_http;
use terok_testkit::upstream::MockUpstream;

use crate::support::{REAL_KEY, Session, next_command, token_and_socket};

/// Points Claude's route at `upstream` with a user override (`None` removes the override).
fn override_claude(session: &Session, upstream: Option<&str>) {
    let dir = session.env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("claude.yaml");
    match upstream {
        Some(url) => std::fs::write(&file, format!("vault:\n  upstream: {url}\n")).unwrap(),
        None => std::fs::remove_file(&file).unwrap(),
    }
}

/// Sends one request over the task's socket, as Claude in the container would.
async fn request_as_the_container(
    task: &LaunchedTask<FakeRuntime>,
    executor: &Executor<FakeRuntime>,
) -> u16 {
    let (token, socket) = token_and_socket(task, executor);
    unix_http::request(
        &socket,
        "POST",
        "/v1/messages",
        &[("x-api-key", &token)],
        "{}",
    )
    .await
    .unwrap()
    .status
}

async fn launch(
    executor: &Executor<FakeRuntime>,
    session: &Session,
) -> (LaunchedTask<FakeRuntime>, Vec<RunEvent>) {
    let mut events = Vec::new();
    let task = executor
        .launch(&session.interactive(), &mut |e| events.push(e))
        .await
        .unwrap();
    (task, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_makes_the_running_vault_serve_the_roster_as_it_is_now() {
    let first = MockUpstream::start().unwrap();
    let second = MockUpstream::start().unwrap();
    let session = Session::fake();
    override_claude(&session, Some(&first.url()));
    // The daemon starts on the first roster and keeps running across the commands below.
    let session = session.with_vault().await;

    let run = next_command(&session);
    let (task, events) = launch(&run, &session).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, RunEvent::RoutesUpdated { .. })),
        "nothing changed, nothing said: {events:?}"
    );
    assert_eq!(request_as_the_container(&task, &run).await, 200);
    assert_eq!(first.requests().len(), 1);
    assert_eq!(first.requests()[0].header("x-api-key"), Some(REAL_KEY));

    // The user points Claude elsewhere; status says the daemon serves an older roster.
    override_claude(&session, Some(&second.url()));
    let status = next_command(&session).vault_report().await.unwrap();
    assert_eq!(
        status.route_changes,
        Some(vec![RouteChange::Changed {
            provider: "claude".into(),
            fields: vec!["upstream"]
        }])
    );

    // The next run fixes it before its container starts, and says so.
    let run = next_command(&session);
    let (task, events) = launch(&run, &session).await;
    assert!(events.iter().any(|e| matches!(
        e,
        RunEvent::RoutesUpdated { changes } if changes.len() == 1
    )));
    assert_eq!(request_as_the_container(&task, &run).await, 200);
    assert_eq!(
        second.requests().len(),
        1,
        "the new upstream got the request"
    );
    assert_eq!(second.requests()[0].header("x-api-key"), Some(REAL_KEY));
    assert_eq!(first.requests().len(), 1, "the old one got nothing more");
    assert_eq!(run.route_changes().await.unwrap(), Some(Vec::new()));

    // Without the override, the bundled upstream is served again (read, not requested: no
    // traffic leaves this machine).
    override_claude(&session, None);
    let run = next_command(&session);
    launch(&run, &session).await;
    let served = run.vault_client().served_routes().await.unwrap().unwrap();
    assert_eq!(
        served.routes["claude"].upstream,
        "https://api.anthropic.com"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_override_fails_the_launch_and_leaves_the_served_routes_alone() {
    let upstream = MockUpstream::start().unwrap();
    let session = Session::fake();
    override_claude(&session, Some(&upstream.url()));
    let session = session.with_vault().await;
    let before = session
        .executor
        .vault_client()
        .served_routes()
        .await
        .unwrap()
        .unwrap();

    let dir = session.env.user_config_dir().join("agent/agents");
    std::fs::write(
        dir.join("claude.yaml"),
        "vault:\n  upstreem: http://127.0.0.1:9\n",
    )
    .unwrap();
    let run = next_command(&session);
    let err = run
        .launch(&session.interactive(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ExecutorError::Roster(_)), "{err}");
    let shown = format!("{:?}", miette::Report::new(err));
    assert!(
        shown.contains("upstreem") && shown.contains("claude.yaml"),
        "{shown}"
    );

    let after = session
        .executor
        .vault_client()
        .served_routes()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before, after, "the served routes are untouched");
    let file = std::fs::read_to_string(session.executor.vault_paths().routes()).unwrap();
    assert!(
        file.contains(&upstream.url()),
        "routes.json is untouched:\n{file}"
    );
    session.assert_nothing_left("broken override").await;
}
