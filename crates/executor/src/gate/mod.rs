//! The git gate as a service of the session: the host-side mirror of a task's repository,
//! a token and a Unix socket per task (served by a process of its own while the task's
//! container runs, see [`server`]), and the review of what agents pushed — list, diff,
//! promote, sync.

pub(crate) mod record;
pub(crate) mod server;

pub use record::{GateMode, TaskGate};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use terok_container_env::GateWiring;
use terok_gate::{Mirror, MirrorStore, Push, TokenStore, repo_name};
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::listen::TcpListen;
use crate::repo::RepoSource;
use crate::session::Executor;
use crate::task::TaskRecord;

/// A mirror with the tasks that use it, for `gate list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GateRepo {
    /// The mirror's name.
    pub name: String,
    /// Its source.
    pub source: String,
    /// Branch → tip.
    pub branches: Vec<(String, String)>,
    /// What agents pushed, oldest first.
    pub pushes: Vec<Push>,
    /// The tasks whose records name this mirror.
    pub tasks: Vec<String>,
}

/// A launch's gate: what to mirror and how the container uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatePlan {
    /// The git URL or the local repository.
    pub source: String,
    /// The mode.
    pub mode: GateMode,
}

/// A task's gate, opened: the record's part and the container's part.
#[derive(Debug, Clone)]
pub(crate) struct OpenGate {
    pub task: TaskGate,
    pub wiring: GateWiring,
    /// The source's branches the mirror could not take (see [`terok_gate::Synced`]).
    pub blocked: Vec<String>,
}

impl OpenGate {
    /// `CODE_REPO` and `CLONE_FROM` of the container.
    pub fn repo_env(&self) -> (String, Option<String>) {
        let gate_url = self.wiring.url(&self.task.repo);
        match self.task.mode {
            GateMode::Gatekeeping => (gate_url, None),
            GateMode::Online => (self.task.source.clone(), Some(gate_url)),
        }
    }
}

/// Decides whether a launch goes through the gate: a git URL does unless `gate` is
/// `Some(false)`; a directory only with `Some(true)`, and then it must be a git repository
/// and the mode gatekeeping (its source is a host path the container cannot reach).
pub(crate) fn plan_gate(
    repo: &RepoSource,
    gate: Option<bool>,
    mode: GateMode,
) -> Result<Option<GatePlan>, ExecutorError> {
    match (repo, gate) {
        (RepoSource::GitUrl(url), None | Some(true)) => Ok(Some(GatePlan {
            source: url.clone(),
            mode,
        })),
        (RepoSource::Local(dir), Some(true)) => {
            if mode == GateMode::Online {
                return Err(ExecutorError::GateOnlineNeedsUrl(dir.clone()));
            }
            if !dir.join(".git").exists() && !dir.join("HEAD").is_file() {
                return Err(ExecutorError::GateNotARepository(dir.clone()));
            }
            Ok(Some(GatePlan {
                source: dir.display().to_string(),
                mode,
            }))
        }
        _ => Ok(None),
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// The mirrors (`<sandbox state>/gate`), fetching and promoting with the user's git.
    pub fn mirror_store(&self) -> MirrorStore {
        let env = self
            .env
            .vars()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        MirrorStore::new(self.gate_dir()).with_user_env(env)
    }

    /// The gate's tokens.
    pub fn gate_tokens(&self) -> TokenStore {
        TokenStore::new(self.gate_dir().join("tokens.json"))
    }

    fn gate_dir(&self) -> PathBuf {
        self.paths.sandbox_state_dir.join("gate")
    }

    /// The directory of `container`'s gate socket on the host (mounted at
    /// [`GateWiring::CONTAINER_DIR`]).
    pub fn gate_socket_dir(&self, container: &str) -> PathBuf {
        self.paths.runtime_dir.join("gate").join(container)
    }

    /// Where `container`'s gate server logs.
    fn gate_log(&self, container: &str) -> PathBuf {
        self.paths
            .runtime_dir
            .join("gate")
            .join(format!("{container}.log"))
    }

    /// Mirrors `plan`'s source, mints `container`'s token and starts its gate server.
    /// `socket_uid`: the host uid of the container's `dev` when it is not ours (rootful).
    pub(crate) async fn open_gate(
        &self,
        container: &str,
        plan: &GatePlan,
        socket_uid: Option<u32>,
        tcp: Option<TcpListen>,
    ) -> Result<OpenGate, ExecutorError> {
        let repo = repo_name(&plan.source);
        let synced = self.mirror_store().sync(&repo, &plan.source).await?;
        self.sweep_gate_tokens().await;
        let token = self.gate_tokens().mint(&repo, container)?;
        let task = TaskGate {
            repo,
            source: plan.source.clone(),
            mode: plan.mode,
            token,
        };
        match self.start_gate_server(container, socket_uid, tcp).await {
            Ok(transport) => Ok(OpenGate {
                wiring: GateWiring {
                    transport,
                    token: task.token.clone(),
                },
                task,
                blocked: synced.blocked,
            }),
            Err(err) => {
                self.close_gate(container);
                Err(err)
            }
        }
    }

    /// Admits a restarting task again with its recorded token and starts its gate server.
    pub(crate) async fn reopen_gate(&self, record: &TaskRecord) -> Result<(), ExecutorError> {
        let Some(gate) = &record.gate else {
            return Ok(());
        };
        self.gate_tokens()
            .reinstate(&gate.token, &gate.repo, &record.name)?;
        let uid = record.rootful.as_ref().map(|r| r.dev_uid);
        let tcp = record
            .tcp
            .as_ref()
            .and_then(|tcp| Some(tcp.listen(tcp.gate_port?)));
        self.start_gate_server(&record.name, uid, tcp)
            .await
            .map(drop)
    }

    /// Revokes `container`'s gate tokens; its server sees that within a second, removes its
    /// socket and ends. Returns how many were revoked (nothing to revoke is not an error).
    pub(crate) fn close_gate(&self, container: &str) -> usize {
        self.gate_tokens().revoke_task(container).unwrap_or(0)
    }

    /// Revokes the gate tokens of tasks whose container no longer runs (the servers of those
    /// tasks ended with them; after a reboot nothing else would), sparing fresh ones.
    async fn sweep_gate_tokens(&self) {
        let Ok(live) =
            crate::vault_service::running_containers(&*self.runtime, &self.sandboxes_dir()).await
        else {
            return;
        };
        let _ = self
            .gate_tokens()
            .revoke_unless(&|task| live.contains(task), server::SWEEP_GRACE_SECS);
    }

    /// Every mirror with the tasks that use it.
    pub async fn gate_repos(&self) -> Result<Vec<GateRepo>, ExecutorError> {
        let records = self.task_store().list();
        let mirrors = self.mirror_store().list().await?;
        Ok(mirrors
            .into_iter()
            .map(
                |Mirror {
                     name,
                     source,
                     branches,
                     pushes,
                     ..
                 }| {
                    let tasks = records
                        .iter()
                        .filter(|r| r.gate.as_ref().is_some_and(|g| g.repo == name))
                        .map(|r| r.name.clone())
                        .collect();
                    GateRepo {
                        name,
                        source,
                        branches,
                        pushes,
                        tasks,
                    }
                },
            )
            .collect())
    }

    /// The mirror `target` names: a task (name or id) that went through the gate, or a
    /// mirror's own name. With it, the task's container name when it is a task.
    pub fn gate_repo_of(&self, target: &str) -> Result<(String, Option<String>), ExecutorError> {
        if let Some(record) = self.task_store().find(target) {
            return match record.gate {
                Some(gate) => Ok((gate.repo, Some(record.name))),
                None => Err(ExecutorError::NotGated(record.name)),
            };
        }
        if self.mirror_store().exists(target) {
            return Ok((target.to_owned(), None));
        }
        Err(ExecutorError::UnknownGateTarget(target.to_owned()))
    }

    /// The branch to review: `branch` when given, else the one branch the task pushed.
    async fn reviewed_branch(
        &self,
        repo: &str,
        task: Option<&str>,
        branch: Option<&str>,
    ) -> Result<String, ExecutorError> {
        if let Some(branch) = branch {
            return Ok(branch.to_owned());
        }
        let pushed: BTreeSet<String> = self
            .mirror_store()
            .pushes(repo)
            .into_iter()
            .filter(|p| task.is_none_or(|t| p.task == t) && p.new.is_some())
            .filter_map(|p| Some(p.reference.strip_prefix("refs/heads/")?.to_owned()))
            .collect();
        match pushed.len() {
            1 => Ok(pushed.into_iter().next().unwrap_or_default()),
            _ => Err(ExecutorError::GateBranchNeeded {
                target: task.unwrap_or(repo).to_owned(),
                pushed: pushed.into_iter().collect(),
            }),
        }
    }

    /// What `branch` (default: the one branch the task pushed) changes against the mirror's
    /// default branch; the branch and the log and patch.
    pub async fn gate_diff(
        &self,
        target: &str,
        branch: Option<&str>,
    ) -> Result<(String, String), ExecutorError> {
        let (repo, task) = self.gate_repo_of(target)?;
        let branch = self.reviewed_branch(&repo, task.as_deref(), branch).await?;
        let diff = self.mirror_store().diff(&repo, &branch).await?;
        Ok((branch, diff))
    }

    /// Pushes `branch` of the mirror `target` names to the real remote as `to` (default:
    /// the same name), with the user's git and credentials; git's porcelain report.
    pub async fn gate_promote(
        &self,
        target: &str,
        branch: &str,
        to: Option<&str>,
    ) -> Result<String, ExecutorError> {
        let (repo, _) = self.gate_repo_of(target)?;
        Ok(self.mirror_store().promote(&repo, branch, to).await?)
    }

    /// Refreshes the mirror `target` names from its source (what agents pushed under other
    /// names stays; tips a fetch moves are backed up).
    pub async fn gate_sync(&self, target: &str) -> Result<terok_gate::Synced, ExecutorError> {
        let (repo, _) = self.gate_repo_of(target)?;
        let store = self.mirror_store();
        let source = store
            .list()
            .await?
            .into_iter()
            .find(|m| m.name == repo)
            .map(|m| m.source)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ExecutorError::UnknownGateTarget(target.to_owned()))?;
        Ok(store.sync(&repo, &source).await?)
    }
}

/// Whether this host has what the gate needs: git, its `http-backend`, and `prlimit` to bound
/// what each request's git may take; what is missing.
pub fn gate_tools_missing() -> Vec<String> {
    let mut git = std::process::Command::new("git");
    git.arg("--exec-path");
    for var in terok_core::env::SECRET_VARS {
        git.env_remove(var);
    }
    let exec_path = git.output();
    match exec_path {
        Ok(out) if out.status.success() => {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let mut missing = Vec::new();
            if !Path::new(&dir).join("git-http-backend").is_file() {
                missing.push(format!("git-http-backend (not in {dir})"));
            }
            if !terok_gate::request_limits_available() {
                missing.push("prlimit (util-linux)".to_owned());
            }
            missing
        }
        _ => vec!["git".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terok_container_env::GateTransport;

    #[test]
    fn git_urls_are_gated_by_default_and_directories_only_when_asked() {
        let url = RepoSource::GitUrl("https://example.org/acme/widget.git".into());
        let plan = plan_gate(&url, None, GateMode::Online).unwrap().unwrap();
        assert_eq!(
            (plan.source.as_str(), plan.mode),
            ("https://example.org/acme/widget.git", GateMode::Online)
        );
        assert_eq!(
            plan_gate(&url, Some(false), GateMode::Gatekeeping).unwrap(),
            None
        );

        let dir = tempfile::tempdir().unwrap();
        let local = RepoSource::Local(dir.path().to_path_buf());
        assert_eq!(
            plan_gate(&local, None, GateMode::Gatekeeping).unwrap(),
            None
        );
        assert!(matches!(
            plan_gate(&local, Some(true), GateMode::Gatekeeping),
            Err(ExecutorError::GateNotARepository(_))
        ));
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        assert!(
            plan_gate(&local, Some(true), GateMode::Gatekeeping)
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            plan_gate(&local, Some(true), GateMode::Online),
            Err(ExecutorError::GateOnlineNeedsUrl(_))
        ));
    }

    #[test]
    fn gatekeeping_points_origin_at_the_gate_and_online_at_the_remote() {
        let open = |mode| OpenGate {
            task: TaskGate {
                repo: "widget-1a2b3c4d".into(),
                source: "https://example.org/acme/widget.git".into(),
                mode,
                token: "terok-g-0123456789abcdef0123456789abcdef".into(),
            },
            wiring: GateWiring {
                transport: GateTransport::Socket("/run/terok/gate/x".into()),
                token: "terok-g-0123456789abcdef0123456789abcdef".into(),
            },
            blocked: Vec::new(),
        };
        let gate_url =
            "http://terok-g-0123456789abcdef0123456789abcdef@localhost:9418/widget-1a2b3c4d.git";
        assert_eq!(
            open(GateMode::Gatekeeping).repo_env(),
            (gate_url.to_owned(), None)
        );
        assert_eq!(
            open(GateMode::Online).repo_env(),
            (
                "https://example.org/acme/widget.git".to_owned(),
                Some(gate_url.to_owned())
            )
        );
    }
}
