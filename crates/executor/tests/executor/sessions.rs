//! Sessions as an orchestrator holds them: several in one process, each with its own host
//! state, and launched tasks that move into spawned tasks.

use std::time::Duration;

use terok_executor::{READY_MARKER, SetupScope};

use crate::support::Session;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_in_one_process_do_not_collide() {
    let a = Session::fake().with_vault().await;
    let b = Session::fake().with_vault().await;
    let (options_a, options_b) = (a.interactive(), b.interactive());
    let (mut quiet_a, mut quiet_b) = (|_| {}, |_| {});
    let (task_a, task_b) = tokio::join!(
        a.executor.launch(&options_a, &mut quiet_a),
        b.executor.launch(&options_b, &mut quiet_b),
    );
    let (task_a, task_b) = (task_a.unwrap(), task_b.unwrap());
    assert_ne!(task_a.name(), task_b.name());
    assert_eq!(a.task_dirs(), [task_a.record().id.clone()]);
    assert_eq!(b.task_dirs(), [task_b.record().id.clone()]);
    assert_eq!(a.token_holders(), [task_a.name().to_owned()]);
    assert_eq!(b.token_holders(), [task_b.name().to_owned()]);
    assert_eq!(a.listeners().await, [task_a.name().to_owned()]);
    assert_eq!(b.listeners().await, [task_b.name().to_owned()]);
    assert!(task_a.task_dir().starts_with(a.env.root()));
    assert!(task_b.task_dir().starts_with(b.env.root()));

    // Removing A's task touches nothing of B's.
    let name_a = task_a.name().to_owned();
    drop(task_a);
    a.executor.remove_task(&name_a).await.unwrap();
    a.assert_nothing_left("a after rm").await;
    assert_eq!(b.token_holders(), [task_b.name().to_owned()]);
    assert!(
        b.executor.remove_task(&name_a).await.is_err(),
        "B does not know A's task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launched_task_moves_into_a_spawned_task() {
    let session = Session::fake().with_vault().await;
    let mut headless = session.headless("echo hi");
    headless.name = Some("terok-test-spawned".to_owned());
    session
        .fake_runtime()
        .script_container("terok-test-spawned", &["hi"], 0);
    let task = session
        .executor
        .launch(&headless, &mut |_| {})
        .await
        .unwrap();
    let outcome = tokio::spawn(task.wait()).await.unwrap().unwrap();
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.revoked_tokens, 1);

    let mut interactive = session.interactive();
    interactive.name = Some("terok-test-spawned-i".to_owned());
    session
        .fake_runtime()
        .script_container("terok-test-spawned-i", &[READY_MARKER], 0);
    let task = session
        .executor
        .launch(&interactive, &mut |_| {})
        .await
        .unwrap();
    let ready = tokio::spawn(task.wait_ready(Duration::from_secs(5), |_| {}))
        .await
        .unwrap();
    assert!(ready);
}

/// `vfs` storage works but costs minutes: the host checks say so as a warning, not a failure.
#[tokio::test]
async fn vfs_storage_is_a_warning_in_the_host_checks() {
    let session = Session::fake();
    let rows = session.executor.setup_checks(&SetupScope::default()).await;
    let storage = rows.iter().find(|r| r.name == "storage").unwrap();
    assert_eq!(storage.outcome, Ok("overlay".to_owned()));
    assert_eq!(storage.warning, None);
    session.fake_runtime().set_storage_driver("vfs");
    let storage = session.executor.storage_check().await;
    assert_eq!(storage.outcome, Ok("vfs".to_owned()));
    assert!(storage.ok());
    assert!(
        storage
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("copies every layer")),
        "{storage:?}"
    );
}
