//! The credential database: sealed storage, fail-closed keys, and phantom tokens bound to their
//! container (docs/compatibility.md#13.4).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;

use terok_credentials::seal::DataKey;
use terok_credentials::{Credential, CredentialDb, DbError, is_phantom_token};

const REAL_KEY: &str = "sk-ant-api03-REAL-KEY-that-must-never-leak-0123456789";

fn key(byte: u8) -> DataKey {
    DataKey::from_bytes([byte; 32])
}

fn open(dir: &std::path::Path) -> CredentialDb {
    CredentialDb::open(&dir.join("vault/credentials.db"), key(7), "test key").unwrap()
}

#[test]
fn credentials_round_trip_per_set_and_provider() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.store_credential("default", "claude", &Credential::api_key(REAL_KEY))
        .unwrap();
    db.store_credential("default", "codex", &Credential::api_key("sk-other"))
        .unwrap();
    db.store_credential("work", "claude", &Credential::api_key("sk-work"))
        .unwrap();
    assert_eq!(
        db.load_credential("default", "claude")
            .unwrap()
            .unwrap()
            .upstream_value()
            .expose(),
        REAL_KEY
    );
    assert_eq!(
        db.load_credential("work", "claude")
            .unwrap()
            .unwrap()
            .upstream_value()
            .expose(),
        "sk-work"
    );
    assert!(db.load_credential("default", "vibe").unwrap().is_none());
    let names: Vec<(String, String)> = db
        .list_credentials("default")
        .unwrap()
        .into_iter()
        .map(|c| (c.provider, c.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("claude".into(), "api_key".into()),
            ("codex".into(), "api_key".into())
        ]
    );
    // Replacing keeps one row.
    db.store_credential("default", "claude", &Credential::api_key("sk-new"))
        .unwrap();
    assert_eq!(db.list_credentials("default").unwrap().len(), 2);
    assert!(db.delete_credential("default", "codex").unwrap());
    assert!(!db.delete_credential("default", "codex").unwrap());
}

#[test]
fn the_database_file_never_contains_the_secret_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault/credentials.db");
    {
        let db = CredentialDb::open(&path, key(7), "test key").unwrap();
        db.store_credential("default", "claude", &Credential::api_key(REAL_KEY))
            .unwrap();
    }
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
        let file = entry.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(REAL_KEY.len())
                .any(|w| w == REAL_KEY.as_bytes()),
            "{} contains the real key",
            file.display()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

/// `credentials.db_path` may put the database in a directory of the user's: its mode is
/// theirs, only the database file is made private.
#[test]
fn a_database_in_the_users_directory_leaves_its_mode_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("secrets");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o750)).unwrap();
    let path = theirs.join("terok.db");
    CredentialDb::open(&path, key(7), "test key").unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&theirs), 0o750);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn a_wrong_key_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault/credentials.db");
    CredentialDb::open(&path, key(7), "test key")
        .unwrap()
        .store_credential("default", "claude", &Credential::api_key(REAL_KEY))
        .unwrap();
    let err = CredentialDb::open(&path, key(8), "key file /x/vault.key").unwrap_err();
    assert!(matches!(err, DbError::WrongKey { .. }), "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("sealed with a different key (key file /x/vault.key)"),
        "{shown}"
    );
    assert!(!shown.contains(REAL_KEY));
}

#[test]
fn tokens_are_unique_bound_and_only_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = db
        .mint_token("standalone", "terok-executor-aaa", "default", "claude")
        .unwrap();
    let b = db
        .mint_token("standalone", "terok-executor-aaa", "default", "codex")
        .unwrap();
    let c = db
        .mint_token("standalone", "terok-executor-bbb", "default", "claude")
        .unwrap();
    assert!(is_phantom_token(&a) && is_phantom_token(&b) && is_phantom_token(&c));
    assert!(a != b && a != c && b != c);
    let rec = db.lookup_token(&a).unwrap().unwrap();
    assert_eq!(
        (rec.subject.as_str(), rec.provider.as_str()),
        ("terok-executor-aaa", "claude")
    );
    assert!(
        db.lookup_token("terok-p-00000000000000000000000000000000")
            .unwrap()
            .is_none()
    );
    assert!(
        db.list_tokens()
            .unwrap()
            .iter()
            .all(|t| t.token_hash.len() == 64 && t.token_hash != a)
    );

    // Revocation is per container and idempotent.
    assert_eq!(db.revoke_subject("terok-executor-aaa").unwrap(), 2);
    assert_eq!(db.revoke_subject("terok-executor-aaa").unwrap(), 0);
    assert!(db.lookup_token(&a).unwrap().is_none());
    assert!(db.lookup_token(&c).unwrap().is_some());

    // A sweep revokes the tokens of containers that no longer exist.
    db.mint_token("standalone", "terok-executor-ccc", "default", "claude")
        .unwrap();
    let live: BTreeSet<String> = ["terok-executor-ccc".to_owned()].into();
    // Tokens younger than the grace period survive: their container may be being created.
    assert!(db.sweep(&live, 3600).unwrap().is_empty());
    assert_eq!(db.sweep(&live, 0).unwrap(), ["terok-executor-bbb"]);
    assert!(db.lookup_token(&c).unwrap().is_none());
    assert_eq!(db.list_tokens().unwrap().len(), 1);
}

#[test]
fn unsafe_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for bad in ["", "../x", "a b", "x;drop", "-lead"] {
        assert!(
            db.mint_token(bad, "c", "default", "claude").is_err(),
            "scope {bad:?}"
        );
        assert!(
            db.store_credential("default", bad, &Credential::api_key("k"))
                .is_err(),
            "provider {bad:?}"
        );
    }
    assert!(db.mint_token("%host", "c", "default", "ssh").is_ok());
}

#[test]
fn other_connections_see_changes_through_data_version() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let second = open(dir.path());
    let before = first.data_version().unwrap();
    second
        .store_credential("default", "claude", &Credential::api_key("k"))
        .unwrap();
    assert_ne!(first.data_version().unwrap(), before);
}

/// Set in the child this file's lock tests start: `<database>:<seconds>`.
const HOLD_LOCK: &str = "TEROK_TEST_HOLD_DB_LOCK";

/// Not a test of its own: in a child process started with [`HOLD_LOCK`], it takes the
/// database's write lock, says so on stdout, and keeps it for the given seconds — another
/// process holding the lock, as a second terok-executor or a user's sqlite3 would.
#[test]
fn hold_the_database_lock_when_asked() {
    let Ok(asked) = std::env::var(HOLD_LOCK) else {
        return;
    };
    let (path, seconds) = asked.rsplit_once(':').unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    println!("LOCKED");
    std::thread::sleep(std::time::Duration::from_secs(seconds.parse().unwrap()));
    conn.execute_batch("COMMIT").unwrap();
}

/// A child process that holds `db`'s write lock for `seconds`, started once it holds it.
fn lock_from_another_process(db: &std::path::Path, seconds: u64) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_the_database_lock_when_asked",
            "--nocapture",
        ])
        .env(HOLD_LOCK, format!("{}:{seconds}", db.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let locked = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("LOCKED"));
    assert!(locked, "the child never took the lock");
    // The rest of its output is read, so the child never dies writing to a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Another process keeps the database locked for 3 s: a write waits it out and lands.
#[test]
fn a_write_waits_out_another_process_holding_the_lock_for_a_few_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.store_credential("default", "claude", &Credential::api_key("sk-old"))
        .unwrap();
    let mut holder = lock_from_another_process(db.path(), 5);
    let started = std::time::Instant::now();
    db.store_credential("default", "claude", &Credential::api_key(REAL_KEY))
        .unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "it did wait"
    );
    assert!(holder.wait().unwrap().success());
    let stored = db.load_credential("default", "claude").unwrap().unwrap();
    assert_eq!(stored.upstream_value().expose(), REAL_KEY);
}

/// A lock held for longer than terok waits: the write fails with an error that names the
/// database and the lock, and the credential stored before is untouched.
#[test]
fn a_lock_held_past_the_wait_fails_cleanly_and_keeps_the_old_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.store_credential("default", "claude", &Credential::api_key("sk-old"))
        .unwrap();
    let mut holder =
        lock_from_another_process(db.path(), terok_credentials::LOCK_WAIT.as_secs() + 3);
    let err = db
        .store_credential("default", "claude", &Credential::api_key(REAL_KEY))
        .unwrap_err();
    assert!(matches!(err, DbError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("credentials.db is locked by another process"),
        "{message}"
    );
    assert!(!message.contains(REAL_KEY));
    assert!(holder.wait().unwrap().success());
    let stored = db.load_credential("default", "claude").unwrap().unwrap();
    assert_eq!(stored.upstream_value().expose(), "sk-old");
}
