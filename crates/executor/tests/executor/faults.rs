//! A task record written when the disk is full: a typed error naming the record, and the
//! record from before still there, whole.

use terok_executor::{TaskRecord, TaskStore};
use terok_testkit::full_disk::FullDisk;

fn record(id: &str, image: &str) -> TaskRecord {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "name": format!("terok-executor-{id}"),
        "agent": "claude",
        "mode": "headless",
        "repo": "/tmp/project",
        "image": image,
        "created_unix": 1_700_000_000,
        "vault": true,
        "remove_on_exit": false,
    }))
    .unwrap()
}

#[test]
fn a_task_record_saved_on_a_full_disk_fails_and_the_old_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = TaskStore::new(dir.path().join("tasks"));
    let old = record("t1", "localhost/terok-l1:old");
    let layout = store.create(&old).unwrap();
    let Some(disk) = FullDisk::over(
        &layout.dir,
        "a_task_record_saved_on_a_full_disk_fails_and_the_old_one_stays",
    )
    .unwrap() else {
        return;
    };
    let kept = disk.entries();
    let err = store
        .save(&record("t1", "localhost/terok-l1:new"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("t1/"), "{err}");
    assert!(!err.contains(".tmp-"), "{err}");
    assert_eq!(store.load("t1"), Some(old));
    assert_eq!(disk.entries(), kept);
}

/// A vault daemon that exits instead of answering is reported as soon as it exits, with the
/// end of its log — not after the whole start window a slow daemon gets.
#[tokio::test]
async fn a_vault_daemon_that_exits_at_once_is_reported_at_once_with_its_log() {
    let env = terok_testkit::IsolatedEnv::new().unwrap();
    let executor = terok_executor::Executor::builder(env.host_env())
        .cwd(env.work_dir())
        .vault_launcher(terok_executor::VaultLauncher::new(
            "/bin/sh",
            ["-c", "echo 'cannot listen: address in use' >&2; exit 3"],
        ))
        .build_with_runtime(terok_podman::FakeRuntime::new())
        .unwrap();
    let started = std::time::Instant::now();
    let err = executor.ensure_vault().await.unwrap_err();
    assert!(
        matches!(err, terok_executor::ExecutorError::VaultDidNotStart { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("cannot listen: address in use"),
        "{err}"
    );
    assert!(
        // Well under any start window (20 s; 5 s before): the wait ends when the daemon does.
        started.elapsed() < std::time::Duration::from_secs(4),
        "waited {:?} for a daemon that had exited",
        started.elapsed()
    );
}
