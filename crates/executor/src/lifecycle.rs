//! The life of a task after its launch: `list`, `start`, `stop`, `rm` (upstream 0.5.0 verbs,
//! selecting containers by label, decisions.md §3 item 6).

use std::collections::BTreeMap;

use terok_container_env::{
    ContainerEnvSpec, VaultWiring, vault_env, write_phantom_files, write_vault_env,
};
use terok_core::paths::TerokPaths;
use terok_podman::{ContainerRuntime, LABEL_AGENT, LABEL_EXECUTOR, LABEL_TASK};
use terok_roster::Roster;

use crate::error::ExecutorError;
use crate::task::{TaskRecord, TaskStore};
use crate::vault::VaultClient;

/// One task as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskListing {
    /// Container name.
    pub name: String,
    /// Task id (empty for a labelled container without a task directory).
    pub task_id: String,
    /// Agent.
    pub agent: String,
    /// `running`, `exited`, `created`, … or `missing` (task directory without container).
    pub state: String,
    /// Seconds since creation.
    pub age_secs: i64,
}

/// Every task: containers carrying our label, and task directories whose container is gone
/// (so `rm` can clean them). Sorted by name.
pub async fn list_tasks<R: ContainerRuntime>(
    runtime: &R,
    store: &TaskStore,
) -> Result<Vec<TaskListing>, ExecutorError> {
    let now = terok_core::time::unix_now();
    let records: BTreeMap<String, TaskRecord> = store
        .list()
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let mut out = Vec::new();
    let containers = runtime.list(LABEL_EXECUTOR).await?;
    for c in &containers {
        let record = records.get(&c.name);
        out.push(TaskListing {
            name: c.name.clone(),
            task_id: c
                .labels
                .get(LABEL_TASK)
                .cloned()
                .or_else(|| record.map(|r| r.id.clone()))
                .unwrap_or_default(),
            agent: c.labels.get(LABEL_AGENT).cloned().unwrap_or_default(),
            state: c.state.clone(),
            age_secs: (now - c.created_unix).max(0),
        });
    }
    for (name, record) in &records {
        if !containers.iter().any(|c| &c.name == name) {
            out.push(TaskListing {
                name: name.clone(),
                task_id: record.id.clone(),
                agent: record.agent.clone(),
                state: "missing".to_owned(),
                age_secs: (now - record.created_unix).max(0),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What `rm` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The container existed and was removed.
    pub container: bool,
    /// The task directory existed and was removed.
    pub task_dir: bool,
    /// Tokens revoked through the vault; `None` when the vault did not run (the caller
    /// revokes in the database).
    pub revoked: Option<usize>,
}

/// Removes a task: its container (running or not), its tokens, its task directory. `name` is a
/// container name or a task id.
pub async fn remove_task<R: ContainerRuntime>(
    runtime: &R,
    store: &TaskStore,
    vault: Option<&VaultClient>,
    name: &str,
) -> Result<Removed, ExecutorError> {
    let record = store.find(name);
    let container_name = record.as_ref().map_or(name, |r| r.name.as_str()).to_owned();
    let info = runtime.inspect(&container_name).await?;
    // Only our own containers: a name that is not ours is not removed.
    let ours = info
        .as_ref()
        .is_some_and(|c| c.labels.contains_key(LABEL_EXECUTOR));
    if record.is_none() && !ours {
        return Err(ExecutorError::TaskNotFound(name.to_owned()));
    }
    let mut removed = Removed::default();
    if ours {
        runtime.remove(&container_name).await?;
        removed.container = true;
    }
    removed.revoked = match vault {
        Some(client) => match client.close(&container_name).await {
            Ok(n) => Some(n),
            Err(terok_vault::control::ControlError::NotRunning { .. }) => None,
            Err(err) => return Err(err.into()),
        },
        None => None,
    };
    if let Some(record) = &record {
        store.remove(&record.id)?;
        removed.task_dir = true;
    }
    Ok(removed)
}

/// Stops a running task (it stays for a later `start`) and revokes its tokens.
pub async fn stop_task<R: ContainerRuntime>(
    runtime: &R,
    store: &TaskStore,
    vault: Option<&VaultClient>,
    name: &str,
) -> Result<String, ExecutorError> {
    let container_name = resolve_container(runtime, store, name).await?;
    runtime.stop(&container_name, 10).await?;
    if let Some(client) = vault {
        let _ = client.close(&container_name).await;
    }
    Ok(container_name)
}

/// Starts a stopped task again. Its tokens were revoked when it stopped, so fresh ones are
/// minted and written to its `vault.env` and phantom credential files before podman starts it.
pub async fn start_task<R: ContainerRuntime>(
    runtime: &R,
    roster: &Roster,
    paths: &TerokPaths,
    vault: Option<&VaultClient>,
    name: &str,
) -> Result<String, ExecutorError> {
    let store = TaskStore::new(paths.tasks_dir());
    let container_name = resolve_container(runtime, &store, name).await?;
    let info = runtime
        .inspect(&container_name)
        .await?
        .ok_or_else(|| ExecutorError::TaskNotFound(name.to_owned()))?;
    if info.state.running {
        return Err(ExecutorError::AlreadyRunning(container_name));
    }
    if let Some(record) = store.find(&container_name)
        && record.vault
    {
        let client = vault.ok_or(ExecutorError::VaultRequired)?;
        let wiring: VaultWiring = client
            .open(&container_name, record.providers.clone())
            .await?
            .ok_or(ExecutorError::VaultRequired)?;
        let layout = store.layout(&record.id);
        let mut spec =
            ContainerEnvSpec::new(&record.id, &record.agent, &layout.dir, &paths.mounts_dir);
        spec.vault = Some(wiring.clone());
        write_phantom_files(roster, &spec)?;
        write_vault_env(&layout.agent_config(), &vault_env(roster, &wiring))?;
    }
    runtime.start(&container_name).await?;
    Ok(container_name)
}

/// The container behind `name` (a container name or a task id), which must be ours.
async fn resolve_container<R: ContainerRuntime>(
    runtime: &R,
    store: &TaskStore,
    name: &str,
) -> Result<String, ExecutorError> {
    let container_name = store.find(name).map_or_else(|| name.to_owned(), |r| r.name);
    match runtime.inspect(&container_name).await? {
        Some(info) if info.labels.contains_key(LABEL_EXECUTOR) => Ok(container_name),
        _ => Err(ExecutorError::TaskNotFound(name.to_owned())),
    }
}
