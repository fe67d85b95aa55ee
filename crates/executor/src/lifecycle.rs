//! The life of a task after its launch: `list`, `start`, `stop`, `rm`, with containers
//! selected by label (docs/decisions.md#3.6). `start` replays the launch's credential step
//! from the task record: fresh tokens for the same providers, the same phantom files and
//! config patches, a new `vault.env`.

use std::collections::BTreeMap;

use terok_container_env::{ContainerEnvSpec, vault_env, write_task_credentials, write_vault_env};
use terok_podman::{ContainerRuntime, LABEL_AGENT, LABEL_EXECUTOR, LABEL_TASK};
use terok_vault::control::ControlError;

use crate::error::ExecutorError;
use crate::session::Executor;
use crate::task::TaskRecord;

/// Seconds a stopping task gets before it is killed.
const STOP_GRACE_SECS: u32 = 10;

/// One task as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
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
    /// The provider whose stored credential the model API keeps refusing for this task, if
    /// any (its agent cannot work until a new one is stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_rejected: Option<String>,
}

/// What `rm` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Removed {
    /// The container existed and was removed.
    pub container: bool,
    /// The task directory existed and was removed.
    pub task_dir: bool,
    /// Tokens revoked (through the vault, or in the database when the vault does not run),
    /// the gate's included.
    pub revoked: usize,
}

impl<R: ContainerRuntime> Executor<R> {
    /// Every task: containers carrying our label, and task directories whose container is
    /// gone (so `rm` can clean them). Sorted by name.
    pub async fn list_tasks(&self) -> Result<Vec<TaskListing>, ExecutorError> {
        let now = terok_core::time::unix_now();
        let records: BTreeMap<String, TaskRecord> = self
            .task_store()
            .list()
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let containers = self.runtime.list(LABEL_EXECUTOR).await?;
        // A vault that does not answer knows of no refusal.
        let rejected: BTreeMap<String, String> = self
            .vault
            .rejections(None)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.container, r.provider))
            .collect();
        let mut out: Vec<TaskListing> = containers
            .iter()
            .map(|c| TaskListing {
                name: c.name.clone(),
                task_id: c
                    .labels
                    .get(LABEL_TASK)
                    .cloned()
                    .or_else(|| records.get(&c.name).map(|r| r.id.clone()))
                    .unwrap_or_default(),
                agent: c.labels.get(LABEL_AGENT).cloned().unwrap_or_default(),
                state: c.state.clone(),
                age_secs: (now - c.created_unix).max(0),
                credential_rejected: rejected.get(&c.name).cloned(),
            })
            .collect();
        out.extend(
            records
                .values()
                .filter(|r| !containers.iter().any(|c| c.name == r.name))
                .map(|r| TaskListing {
                    name: r.name.clone(),
                    task_id: r.id.clone(),
                    agent: r.agent.clone(),
                    state: "missing".to_owned(),
                    age_secs: (now - r.created_unix).max(0),
                    credential_rejected: None,
                }),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a task — its container (running or not), its tokens, its task directory.
    /// `name` is a container name or a task id; a container that is not ours is refused.
    pub async fn remove_task(&self, name: &str) -> Result<Removed, ExecutorError> {
        let store = self.task_store();
        let record = store.find(name);
        let container = record.as_ref().map_or(name, |r| r.name.as_str()).to_owned();
        let ours = self
            .runtime
            .inspect(&container)
            .await?
            .is_some_and(|c| c.labels.contains_key(LABEL_EXECUTOR));
        if record.is_none() && !ours {
            return Err(ExecutorError::TaskNotFound(name.to_owned()));
        }
        let mut removed = Removed::default();
        if ours {
            self.runtime.remove(&container).await?;
            removed.container = true;
        }
        if let Some(rootful) = record.as_ref().and_then(|r| r.rootful.as_ref()) {
            give_back(rootful)?;
        }
        removed.revoked = self.revoke(&container).await? + self.close_gate(&container);
        if let Some(record) = &record {
            store.remove(&record.id)?;
            removed.task_dir = true;
        }
        Ok(removed)
    }

    /// Revokes `container`'s tokens: through the vault (which also closes its listener), or
    /// in the database when the vault does not run.
    async fn revoke(&self, container: &str) -> Result<usize, ExecutorError> {
        match self.vault.close(container).await {
            Ok(n) => Ok(n),
            Err(ControlError::NotRunning { .. }) => match self.open_existing_db()? {
                Some(db) => Ok(db.revoke_subject(container)?),
                None => Ok(0),
            },
            Err(err) => Err(err.into()),
        }
    }

    /// Stops a running task (it stays for a later `start`) and revokes its tokens; returns
    /// the container name.
    pub async fn stop_task(&self, name: &str) -> Result<String, ExecutorError> {
        let container = self.our_container(name).await?;
        self.runtime.stop(&container, STOP_GRACE_SECS).await?;
        self.revoke(&container).await?;
        self.close_gate(&container);
        if let Some(rootful) = self.task_store().find(&container).and_then(|r| r.rootful) {
            give_back(&rootful)?;
        }
        Ok(container)
    }

    /// Starts a stopped task again. Its tokens were revoked when it stopped, so fresh ones are
    /// minted and written to its phantom files and `vault.env` before podman starts it.
    pub async fn start_task(&self, name: &str) -> Result<String, ExecutorError> {
        let container = self.our_container(name).await?;
        let info = self
            .runtime
            .inspect(&container)
            .await?
            .ok_or_else(|| ExecutorError::TaskNotFound(name.to_owned()))?;
        if info.state.running {
            return Err(ExecutorError::AlreadyRunning(container));
        }
        let record = self.task_store().find(&container);
        if let Some(record) = record.as_ref().filter(|r| r.vault) {
            self.rewire_credentials(record).await?;
        }
        if let Some(record) = &record {
            self.reopen_gate(record).await?;
            self.rotate_web_token(record)?;
            self.copy_task_files_again(&container, record).await?;
        }
        if let Some(record) = record.as_ref().filter(|r| r.remote.is_none())
            && let Some(rootful) = &record.rootful
        {
            let layout = self.task_store().layout(&record.id);
            rootful
                .hand_over(&layout.container_files())
                .map_err(ExecutorError::io(
                    "cannot hand the task's files to the container's user",
                ))?;
        }
        let hooks_dirs = match &record {
            Some(record) => self.reshield(record)?,
            None => Vec::new(),
        };
        if let Err(err) = self.runtime.start_hooked(&container, &hooks_dirs).await {
            // A permit the hook did not take must not serve a start without it.
            if let Some(record) = &record {
                self.withdraw_shield_permit(record);
            }
            return Err(err.into());
        }
        Ok(container)
    }

    /// A remote engine's task sees its fresh tokens only in copies: the task's own files
    /// (`vault.env`, phantom credential files) are copied in again.
    async fn copy_task_files_again(
        &self,
        container: &str,
        record: &TaskRecord,
    ) -> Result<(), ExecutorError> {
        let Some(remote) = &record.remote else {
            return Ok(());
        };
        for (host, path) in &remote.task_files {
            self.runtime.copy_into(container, host, path).await?;
        }
        Ok(())
    }

    /// The launch's credential step again, for a task about to restart.
    async fn rewire_credentials(&self, record: &TaskRecord) -> Result<(), ExecutorError> {
        let socket_uid = record.rootful.as_ref().map(|r| r.dev_uid);
        let providers = record.providers.clone();
        let tcp = record
            .tcp
            .as_ref()
            .and_then(|tcp| Some(tcp.listen(tcp.vault_port?)));
        // Over TCP, where the container (whose environment cannot change) was told.
        let listener = match tcp {
            Some(listen) => (self.vault.open_tcp(&record.name, providers, listen).await?)
                .map(|(listener, _)| listener),
            None => {
                let ssh_scope = Some(record.agent.as_str());
                (self
                    .vault
                    .open(&record.name, providers, socket_uid, ssh_scope))
                .await?
            }
        }
        .ok_or(ExecutorError::VaultRequired)?;
        self.sync_routes(&listener.routes_hash).await?;
        let wiring = listener.wiring;
        let roster = self.roster()?;
        let layout = self.task_store().layout(&record.id);
        let mut spec = ContainerEnvSpec::new(
            &record.id,
            &record.agent,
            &layout.dir,
            &self.paths.mounts_dir,
        );
        spec.installed = record.installed.clone();
        spec.vault = Some(wiring);
        // Warnings of a restart (a shared config moved aside) have no one to tell; the file
        // itself says what happened.
        let _ = write_task_credentials(roster, &spec)?;
        if let Some(wiring) = &spec.vault {
            write_vault_env(&layout.agent_config(), &vault_env(roster, wiring))?;
        }
        Ok(())
    }

    /// The container behind `name` (a container name or a task id), which must be ours.
    pub(crate) async fn our_container(&self, name: &str) -> Result<String, ExecutorError> {
        let container = self
            .task_store()
            .find(name)
            .map_or_else(|| name.to_owned(), |r| r.name);
        match self.runtime.inspect(&container).await? {
            Some(info) if info.labels.contains_key(LABEL_EXECUTOR) => Ok(container),
            _ => Err(ExecutorError::TaskNotFound(name.to_owned())),
        }
    }
}

/// Gives a stopped task's workspace back to its owner.
fn give_back(rootful: &crate::ownership::RootfulTask) -> Result<(), ExecutorError> {
    rootful.give_back().map(drop).map_err(ExecutorError::io(
        "cannot give the workspace back to its owner",
    ))
}
