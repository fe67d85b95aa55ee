//! Task ids and the task store: one directory per task under `<executor state>/tasks/<id>/`
//! (docs/decisions.md: the task directory lives under the executor's state root) with a
//! `task.json` record, so `list`, `start` and `rm` know what a container was launched with
//! even after the launching process is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use terok_container_env::TaskLayout;
use terok_core::secure_fs;

use crate::error::ExecutorError;

/// Prefix of default container names.
pub const CONTAINER_PREFIX: &str = "terok-executor-";
/// File name of the task record.
const RECORD: &str = "task.json";
/// Prefix of a task directory being filled (not a task id, so never listed as a task).
const STAGING_PREFIX: &str = ".new-";
/// Age after which a staging directory is taken as left by a killed process: filling one
/// takes milliseconds.
const STAGING_ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A fresh task id: 12 hex digits from the OS RNG.
pub fn new_task_id() -> Result<String, ExecutorError> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|_| ExecutorError::Rng)?;
    Ok(hex::encode(bytes))
}

/// The default container name of task `id`.
pub fn container_name(id: &str) -> String {
    format!("{CONTAINER_PREFIX}{id}")
}

/// How a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TaskMode {
    /// Once on a prompt; the launcher follows its output to the end.
    Headless,
    /// A container to log into.
    Interactive,
    /// Toad in the browser.
    Web,
    /// A sidecar tool, once.
    Tool,
}

impl TaskMode {
    /// `headless` or `interactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Headless => "headless",
            Self::Interactive => "interactive",
            Self::Web => "web",
            Self::Tool => "tool",
        }
    }
}

/// What a task was launched with: enough for `start` to give a stopped task the same wiring
/// again (fresh tokens for the same providers, the same phantom files and config patches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskRecord {
    /// Task id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Agent.
    pub agent: String,
    /// How it runs.
    pub mode: TaskMode,
    /// The repository argument as given (a resolved path or a URL).
    pub repo: String,
    /// The git URL cloned inside, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_url: Option<String>,
    /// Image.
    pub image: String,
    /// Seconds since the epoch.
    pub created_unix: i64,
    /// Whether the container got vault wiring (then `start` must reopen its listener).
    pub vault: bool,
    /// Providers the launch asked the vault for (`start` asks for the same).
    #[serde(default)]
    pub providers: Vec<String>,
    /// Roster entries installed in the image (their config directories are mounted); `None`
    /// when the image was given as a tag and nothing restricts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<BTreeSet<String>>,
    /// `--rm`: removed (container, task dir, tokens) when the run ends.
    pub remove_on_exit: bool,
    /// Rootful: `dev`'s host ids and the workspace lent to it, to hand over again on `start`
    /// and give back when the container stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootful: Option<crate::ownership::RootfulTask>,
    /// Whether the container runs behind the allow-list firewall (its hook is needed at
    /// every start).
    #[serde(default)]
    pub shielded: bool,
    /// The task's git gate, when its repository goes through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::record::TaskGate>,
    /// Where a web task's UI is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebRecord>,
    /// How a krun task's guest is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub krun: Option<KrunRecord>,
    /// Where its vault and gate listen over TCP (`services.mode: tcp`); `None` on sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<crate::listen::TcpRecord>,
    /// On a remote engine: which, and what was copied in instead of mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::listen::RemoteRecord>,
}

/// A krun task's guest, as recorded for `start` and logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KrunRecord {
    /// The OCI runtime podman starts the guest with (`krun`).
    pub oci_runtime: String,
    /// The loopback port the guest's SSH server is forwarded to.
    pub ssh_port: u16,
}

/// The task directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStore {
    dir: PathBuf,
}

impl TaskStore {
    /// The store under `tasks_dir` (`TerokPaths::tasks_dir`).
    pub fn new(tasks_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: tasks_dir.into(),
        }
    }

    /// The layout of task `id`.
    pub fn layout(&self, id: &str) -> TaskLayout {
        TaskLayout::new(self.dir.join(id))
    }

    /// Creates the (new, private) directory of `record`'s task with the record in it. The
    /// directory appears whole or not at all — it is filled under a hidden name and renamed —
    /// so a launch cut short at any later point leaves a task that `list` shows and `rm`
    /// removes, never a directory nothing knows about.
    pub fn create(&self, record: &TaskRecord) -> Result<TaskLayout, ExecutorError> {
        let layout = self.layout(&record.id);
        if layout.dir.exists() {
            return Err(ExecutorError::TaskRecord {
                path: layout.dir.clone(),
                detail: "a task with this id exists already".to_owned(),
            });
        }
        self.remove_abandoned_staging();
        let staging = self.dir.join(format!("{STAGING_PREFIX}{}", record.id));
        secure_fs::ensure_private_dir(&staging)?;
        let filled = write_record(&staging, record)
            .and_then(|()| secure_fs::rename(&staging, &layout.dir).map_err(ExecutorError::from));
        if filled.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        filled.map(|()| layout)
    }

    /// Removes staging directories a process killed between creating and renaming one left
    /// behind; a young one may belong to a launch running right now.
    fn remove_abandoned_staging(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let abandoned = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > STAGING_ABANDONED_AFTER));
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
                && abandoned
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Saves `record` in its task directory.
    pub fn save(&self, record: &TaskRecord) -> Result<(), ExecutorError> {
        write_record(&self.layout(&record.id).dir, record)
    }

    /// The record of task `id`, if it exists and reads.
    pub fn load(&self, id: &str) -> Option<TaskRecord> {
        let path = self.layout(id).dir.join(RECORD);
        let bytes = secure_fs::read_nofollow(&path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every readable task record, oldest first.
    pub fn list(&self) -> Vec<TaskRecord> {
        let mut out: Vec<TaskRecord> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|id| self.load(id)))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        out
    }

    /// The task whose container name or id is `name_or_id`.
    pub fn find(&self, name_or_id: &str) -> Option<TaskRecord> {
        if is_task_id(name_or_id)
            && let Some(record) = self.load(name_or_id)
        {
            return Some(record);
        }
        self.list().into_iter().find(|r| r.name == name_or_id)
    }

    /// Removes the directory of task `id` (with everything in it). Missing is fine.
    pub fn remove(&self, id: &str) -> Result<(), ExecutorError> {
        let dir = self.layout(id).dir;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecutorError::TaskRecord {
                path: dir,
                detail: format!("cannot remove: {e}"),
            }),
        }
    }

    /// The directory holding the tasks.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `record` as the record file of `dir`, atomically.
fn write_record(dir: &Path, record: &TaskRecord) -> Result<(), ExecutorError> {
    let path = dir.join(RECORD);
    let text = serde_json::to_vec_pretty(record).map_err(|e| ExecutorError::TaskRecord {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    secure_fs::write_atomic(&path, &text, secure_fs::SECRET_FILE_MODE)?;
    Ok(())
}

/// Whether `text` has the shape of a task id (only then is it used as a path component).
pub fn is_task_id(text: &str) -> bool {
    text.len() == 12 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// Where a web task is served, as recorded for `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebRecord {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The address the browser uses (`http://127.0.0.1:<port>` unless one was given).
    pub public_url: String,
}

impl WebRecord {
    /// The record of a UI on `port`, its public address `public_url` or the loopback one.
    pub fn new(port: u16, public_url: Option<&str>) -> Self {
        Self {
            port,
            public_url: public_url.map_or_else(
                || format!("http://127.0.0.1:{port}"),
                |u| u.trim_end_matches('/').to_owned(),
            ),
        }
    }

    /// The origin the browser sends from the UI's pages (see [`crate::origin_of`]); the
    /// loopback one when the recorded address cannot be read.
    pub fn origin(&self) -> String {
        crate::origin::origin_of(&self.public_url)
            .unwrap_or_else(|_| format!("http://127.0.0.1:{}", self.port))
    }

    /// The cookie the gate sets: named per port, as cookies do not tell ports apart.
    pub fn cookie_name(&self) -> String {
        format!("terok_token_{}", self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created: i64) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            name: container_name(id),
            agent: "claude".into(),
            mode: TaskMode::Headless,
            repo: "/src".into(),
            git_url: None,
            image: "img".into(),
            created_unix: created,
            vault: true,
            providers: vec!["claude".into()],
            installed: None,
            remove_on_exit: false,
            rootful: None,
            shielded: false,
            gate: None,
            web: None,
            krun: None,
            tcp: None,
            remote: None,
        }
    }

    #[test]
    fn ids_are_twelve_hex_digits_and_distinct() {
        let a = new_task_id().unwrap();
        assert!(is_task_id(&a), "{a}");
        assert_ne!(a, new_task_id().unwrap());
        assert!(!is_task_id("../etc/passw"));
    }

    #[test]
    fn records_of_earlier_versions_still_read() {
        let old = r#"{"id":"aaaaaaaaaaaa","name":"n","agent":"claude","mode":"interactive",
            "repo":"/src","image":"img","created_unix":1,"vault":true,"remove_on_exit":false}"#;
        let record: TaskRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.mode, TaskMode::Interactive);
        assert!(record.providers.is_empty() && record.installed.is_none());
    }

    #[test]
    fn a_task_directory_appears_with_its_record_and_staging_left_by_a_kill_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path().join("tasks"));
        let layout = store.create(&record("aaaaaaaaaaaa", 1)).unwrap();
        assert_eq!(store.load("aaaaaaaaaaaa"), Some(record("aaaaaaaaaaaa", 1)));
        assert!(layout.dir.ends_with("tasks/aaaaaaaaaaaa"));

        // Staging dirs of killed processes: an old one goes, a young one may be in use.
        let old = store.dir().join(".new-bbbbbbbbbbbb");
        let young = store.dir().join(".new-cccccccccccc");
        std::fs::create_dir(&old).unwrap();
        std::fs::create_dir(&young).unwrap();
        let long_ago = std::time::SystemTime::now() - 2 * STAGING_ABANDONED_AFTER;
        std::fs::File::open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert_eq!(store.list().len(), 1, "staging is never a task");
        store.create(&record("dddddddddddd", 2)).unwrap();
        assert!(!old.exists());
        assert!(young.exists());
        let ids: Vec<String> = store.list().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["aaaaaaaaaaaa", "dddddddddddd"]);
    }

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path().join("tasks"));
        store.create(&record("aaaaaaaaaaaa", 2)).unwrap();
        store.create(&record("bbbbbbbbbbbb", 1)).unwrap();
        assert!(
            store.create(&record("aaaaaaaaaaaa", 3)).is_err(),
            "ids are never reused"
        );
        let ids: Vec<String> = store.list().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]);
        assert_eq!(
            store.find("terok-executor-aaaaaaaaaaaa").unwrap().id,
            "aaaaaaaaaaaa"
        );
        assert_eq!(store.find("aaaaaaaaaaaa").unwrap().id, "aaaaaaaaaaaa");
        store.remove("aaaaaaaaaaaa").unwrap();
        store.remove("aaaaaaaaaaaa").unwrap();
        assert!(store.find("aaaaaaaaaaaa").is_none());
    }
}
