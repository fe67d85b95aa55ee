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
    let layout = store.create("t1").unwrap();
    let old = record("t1", "localhost/terok-l1:old");
    store.save(&old).unwrap();
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
