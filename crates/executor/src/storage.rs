//! How much disk terok's state takes: each task's directory (its workspace, its agent config,
//! the rest), each shared config directory, and the images terok built.

use std::path::Path;

use serde::Serialize;
use terok_container_env::TaskLayout;
use terok_image_build::LABEL_LAYER;
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::session::Executor;
use crate::task::is_task_id;

/// The disk use of terok's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StorageReport {
    /// Every task directory, by id.
    pub tasks: Vec<TaskStorage>,
    /// Every directory shared with containers, by name.
    pub shared_mounts: Vec<MountStorage>,
    /// Every image terok built.
    pub images: Vec<ImageStorage>,
}

impl StorageReport {
    /// Bytes of all task directories.
    pub fn tasks_bytes(&self) -> u64 {
        self.tasks
            .iter()
            .fold(0, |sum, t| sum.saturating_add(t.total_bytes))
    }

    /// Bytes of all shared directories.
    pub fn shared_mounts_bytes(&self) -> u64 {
        self.shared_mounts
            .iter()
            .fold(0, |sum, m| sum.saturating_add(m.bytes))
    }

    /// Bytes of all images (layers two images share are counted in each).
    pub fn images_bytes(&self) -> u64 {
        self.images
            .iter()
            .filter_map(|i| i.size_bytes)
            .fold(0, u64::saturating_add)
    }
}

/// One task directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskStorage {
    /// Task id.
    pub id: String,
    /// Container name (`None` when the task's record does not read).
    pub name: Option<String>,
    /// The workspace terok made for the task (a git URL's clone, `--workspace` aside); a
    /// directory of the user's is not counted.
    pub workspace_bytes: u64,
    /// The task's agent config (`/home/dev/.terok`).
    pub agent_config_bytes: u64,
    /// Everything else: the task's copies of shared config, phantom credential files, logs.
    pub other_bytes: u64,
    /// All of it.
    pub total_bytes: u64,
}

/// One directory shared with containers (an agent's config directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MountStorage {
    /// Its name under the mounts directory (`_claude-config`).
    pub host_dir: String,
    /// What it is (`Claude config`).
    pub label: String,
    /// Bytes of its files.
    pub bytes: u64,
}

/// One image terok built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImageStorage {
    /// Image id.
    pub id: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its size, shared layers included (`None` when podman did not say).
    pub size_bytes: Option<u64>,
}

impl<R: ContainerRuntime> Executor<R> {
    /// The disk use of every task, every shared directory and every image terok built.
    pub async fn storage(&self) -> Result<StorageReport, ExecutorError> {
        let mut images: Vec<ImageStorage> = self
            .runtime()
            .images_with_label(LABEL_LAYER)
            .await?
            .into_iter()
            .map(|image| ImageStorage {
                id: image.id,
                tags: image.tags,
                size_bytes: image.size,
            })
            .collect();
        images.sort_by(|a, b| a.tags.cmp(&b.tags));
        Ok(StorageReport {
            tasks: self.tasks_storage(),
            shared_mounts: self.mounts_storage(),
            images,
        })
    }

    /// The task directories, by id.
    fn tasks_storage(&self) -> Vec<TaskStorage> {
        let store = self.task_store();
        let mut ids: Vec<String> = subdirectories(store.dir())
            .into_iter()
            .filter(|id| is_task_id(id))
            .collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let layout = TaskLayout::new(store.dir().join(&id));
                let total_bytes = bytes_under(&layout.dir);
                let workspace_bytes = bytes_under(&layout.workspace());
                let agent_config_bytes = bytes_under(&layout.agent_config());
                TaskStorage {
                    name: store.load(&id).map(|record| record.name),
                    id,
                    workspace_bytes,
                    agent_config_bytes,
                    other_bytes: total_bytes
                        .saturating_sub(workspace_bytes.saturating_add(agent_config_bytes)),
                    total_bytes,
                }
            })
            .collect()
    }

    /// The shared directories, by name, labelled from the roster.
    fn mounts_storage(&self) -> Vec<MountStorage> {
        let known = self
            .roster()
            .map(|roster| roster.shared_mounts())
            .unwrap_or_default();
        let dir = &self.paths().mounts_dir;
        let mut names = subdirectories(dir);
        names.sort();
        names
            .into_iter()
            .map(|host_dir| {
                let label = known
                    .iter()
                    .find(|m| m.host_dir == host_dir)
                    .map(|m| m.label.clone())
                    .unwrap_or_else(|| fallback_label(&host_dir));
                MountStorage {
                    bytes: bytes_under(&dir.join(&host_dir)),
                    label,
                    host_dir,
                }
            })
            .collect()
    }
}

/// The label of a shared directory the roster does not name (an agent's left behind).
fn fallback_label(host_dir: &str) -> String {
    match host_dir {
        "_claude-config" => "Claude config".to_owned(),
        other => other.to_owned(),
    }
}

/// The names of the directories in `dir` (not links to directories).
fn subdirectories(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect()
}

/// Bytes of the regular files under `path` (0 when it is missing). Links are not followed —
/// a container can plant one pointing anywhere — the walk stays on `path`'s file system (a
/// directory swapped for a link to `/` mid-walk leads elsewhere), and what cannot be read is
/// not counted.
pub(crate) fn bytes_under(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = fs_err::symlink_metadata(path) else {
        return 0;
    };
    let device = root.dev();
    let mut total = 0u64;
    let mut pending = vec![path.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(meta) = fs_err::symlink_metadata(&next) else {
            continue;
        };
        if meta.dev() != device {
            continue;
        }
        if meta.is_file() {
            total = total.saturating_add(meta.len());
        } else if meta.is_dir()
            && let Ok(entries) = fs_err::read_dir(&next)
        {
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn files_are_counted_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/one"), [0u8; 100]).unwrap();
        std::fs::write(root.join("a/b/two"), [0u8; 23]).unwrap();
        // A link to something big (a container can plant one) adds nothing.
        std::os::unix::fs::symlink("/usr", root.join("a/b/usr")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("a/passwd")).unwrap();
        assert_eq!(bytes_under(&root.join("a")), 123);
        assert_eq!(bytes_under(&root.join("missing")), 0);
        assert_eq!(bytes_under(&root.join("a/one")), 100);
    }
}
