//! [`AgentRunner`]: one agent in one container (executor.md §5.1–5.3, decisions.md §3).
//!
//! A launch: task id and task directory; repository classified; images ensured; the vault
//! listener opened and the tokens minted *before* the container exists; env and mounts
//! assembled; the agent-config written; then, headless, one `podman run` whose output is
//! streamed; interactive, a detached container that waits for `podman exec`. The handle
//! ([`LaunchedTask`]) enforces the timeout on the host too, returns the agent's exit code, and
//! revokes the tokens (and, with `--rm`, removes container and task directory) at the end.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use terok_container_env::{
    AgentConfigSpec, ContainerEnvSpec, GitIdentityOverride, Relabel, TaskLayout, VaultWiring,
    Workspace, assemble_container_env, clone_cache, prepare_agent_config,
};
use terok_core::env::HostEnv;
use terok_core::paths::TerokPaths;
use terok_image_build::{BuildEvent, BuildRequest, ImageBuilder};
use terok_podman::{
    ContainerRuntime, GpuRequest, LABEL_AGENT, LABEL_EXECUTOR, LABEL_TASK, LogLine, LogStream,
    RunSpec, Sharing, UserMapping, VolumeSpec,
};
use terok_roster::{
    Agent, HeadlessOptions, InstructionsDelivery, Roster, RunOverrides, apply_provider_config,
    headless_command, instructions_delivery, resolve_instructions,
};
use tokio::time::Instant;

use crate::error::ExecutorError;
use crate::repo::{RepoSource, classify_repo};
use crate::task::{TaskRecord, TaskStore, container_name, new_task_id};
use crate::vault::VaultClient;

/// Seconds the host waits beyond the agent's own timeout before it stops the container (the
/// init script and image start-up run before the in-container timer starts).
pub const HOST_TIMEOUT_GRACE_SECS: u64 = 30;
/// How long a launch trusts a recorded image check whose inputs are unchanged.
pub const IMAGE_CHECK_TRUST: Duration = Duration::from_secs(300);
/// Exit code of a run whose timeout fired (what `timeout` reports).
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// Exit code of a run interrupted by the user (128 + SIGINT).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;
/// The line an interactive container prints when it is ready for `podman exec`.
pub const READY_MARKER: &str = "__CLI_READY__";
/// The init script's last line.
pub const INIT_COMPLETE: &str = ">> init complete";

/// What the agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Run once on `prompt`, stream the output, end with the agent's exit code.
    Headless {
        /// The task.
        prompt: String,
    },
    /// Start a container to log into (`podman exec -it NAME bash -l`).
    Interactive {
        /// First message of the agent's session, if any.
        initial_prompt: Option<String>,
    },
}

/// Which image the container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// This image, as it is.
    Tag(String),
    /// The L1 image of this request, built first when missing or stale.
    Ensure(BuildRequest),
}

/// Every `run` option of executor.md §1.1 and §11 that applies to headless and interactive
/// launches.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// The agent (a roster name).
    pub agent: String,
    /// A directory or a git URL (`.` by default on the command line).
    pub repo: String,
    /// Headless or interactive.
    pub mode: Mode,
    /// The image.
    pub image: ImageSource,
    /// `-m MODEL`.
    pub model: Option<String>,
    /// `--max-turns N`.
    pub max_turns: Option<u32>,
    /// `--timeout SECONDS` (default 1800).
    pub timeout_secs: Option<u64>,
    /// `--name` (default `terok-executor-<task id>`).
    pub name: Option<String>,
    /// `--branch`.
    pub branch: Option<String>,
    /// `--restricted`: no auto-approve, `no-new-privileges` (no sudo).
    pub restricted: bool,
    /// `--gpus`.
    pub gpus: Option<GpuRequest>,
    /// `--memory`.
    pub memory: Option<String>,
    /// `--cpus`.
    pub cpus: Option<String>,
    /// `--git-identity-from-host`: the human's name and email.
    pub human_identity: Option<(String, String)>,
    /// `--shared-dir`.
    pub shared_dir: Option<PathBuf>,
    /// `--shared-mount` (default `/shared`).
    pub shared_mount: Option<String>,
    /// `--timezone` (default: the host's).
    pub timezone: Option<String>,
    /// `--workspace DIR`: the host directory a git URL is cloned into.
    pub workspace_dir: Option<PathBuf>,
    /// `--rm`: remove container, task directory and tokens when the run ends.
    pub remove_on_exit: bool,
    /// Fail instead of launching without credentials when the vault does not run.
    pub vault_required: bool,
}

impl RunOptions {
    /// A headless run of `agent` on `repo` with `prompt`, everything else at its default.
    pub fn headless(
        agent: impl Into<String>,
        repo: impl Into<String>,
        prompt: impl Into<String>,
        image: ImageSource,
    ) -> Self {
        Self {
            agent: agent.into(),
            repo: repo.into(),
            mode: Mode::Headless {
                prompt: prompt.into(),
            },
            image,
            model: None,
            max_turns: None,
            timeout_secs: None,
            name: None,
            branch: None,
            restricted: false,
            gpus: None,
            memory: None,
            cpus: None,
            human_identity: None,
            shared_dir: None,
            shared_mount: None,
            timezone: None,
            workspace_dir: None,
            remove_on_exit: false,
            vault_required: false,
        }
    }

    /// An interactive container for `agent` on `repo`.
    pub fn interactive(
        agent: impl Into<String>,
        repo: impl Into<String>,
        image: ImageSource,
    ) -> Self {
        Self {
            mode: Mode::Interactive {
                initial_prompt: None,
            },
            ..Self::headless(agent, repo, "", image)
        }
    }
}

/// Progress of a launch, for the caller to show.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// Image preparation.
    Image(BuildEvent),
    /// Something the user asked for that does not apply, said once.
    Warning(String),
    /// The vault listener is open; tokens were minted for these providers.
    VaultWired {
        /// Providers with a token.
        providers: Vec<String>,
    },
    /// The container is being created.
    Launching {
        /// Container name.
        name: String,
        /// Image.
        image: String,
    },
}

/// Runs agents. Construct it with what the caller already has (runtime, roster, paths) and
/// call [`AgentRunner::launch`].
pub struct AgentRunner<'a, R> {
    runtime: &'a R,
    roster: &'a Roster,
    paths: &'a TerokPaths,
    host_env: HostEnv,
    cwd: PathBuf,
    vault: Option<VaultClient>,
    agent_config: Value,
    instructions: Option<Value>,
    subagents: Vec<Value>,
    lock_dir: Option<PathBuf>,
    image_stamps: Option<PathBuf>,
}

impl<'a, R: ContainerRuntime> AgentRunner<'a, R> {
    /// A runner without a vault (the agent gets no credentials) and an empty configuration.
    pub fn new(
        runtime: &'a R,
        roster: &'a Roster,
        paths: &'a TerokPaths,
        host_env: HostEnv,
    ) -> Self {
        Self {
            runtime,
            roster,
            paths,
            host_env,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            vault: None,
            agent_config: Value::Object(serde_json::Map::new()),
            instructions: None,
            subagents: Vec::new(),
            lock_dir: None,
            image_stamps: None,
        }
    }

    /// Trusts image checks recorded in `dir` (by `build`, `setup` or an earlier launch) for
    /// [`IMAGE_CHECK_TRUST`] when their inputs are unchanged, so a launch right after another
    /// does not ask podman about images. A launch that podman refuses forgets the record.
    pub fn with_image_stamps(mut self, dir: impl Into<PathBuf>) -> Self {
        self.image_stamps = Some(dir.into());
        self
    }

    /// Wires containers to the vault daemon behind `client`.
    pub fn with_vault(mut self, client: VaultClient) -> Self {
        self.vault = Some(client);
        self
    }

    /// Resolves relative repository paths against `cwd` (default: the process's).
    pub fn with_cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = cwd.into();
        self
    }

    /// Per-agent settings (`{model, max_turns, timeout}`, each flat or per provider with
    /// `_default`), as an orchestrator's project configuration has them.
    pub fn with_agent_config(mut self, config: Value) -> Self {
        self.agent_config = config;
        self
    }

    /// Configured instructions (a string, a list with `_inherit`, or per provider).
    pub fn with_instructions(mut self, instructions: Option<Value>) -> Self {
        self.instructions = instructions;
        self
    }

    /// Claude sub-agent definitions.
    pub fn with_subagents(mut self, definitions: Vec<Value>) -> Self {
        self.subagents = definitions;
        self
    }

    /// Serializes image builds across processes with lock files in `dir`.
    pub fn with_lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    fn store(&self) -> TaskStore {
        TaskStore::new(self.paths.tasks_dir())
    }

    async fn ensure_image(
        &self,
        agent: &Agent,
        source: &ImageSource,
        on_event: &mut (dyn FnMut(RunEvent) + Send),
    ) -> Result<String, ExecutorError> {
        match source {
            ImageSource::Tag(tag) => Ok(tag.clone()),
            ImageSource::Ensure(request) => {
                if !request.selection.contains(&agent.name) {
                    return Err(ExecutorError::AgentNotInImage {
                        agent: agent.name.clone(),
                        selection: request.selection.join(","),
                    });
                }
                let mut builder = ImageBuilder::new(self.runtime, self.roster);
                if let Some(dir) = &self.lock_dir {
                    builder = builder.with_lock_dir(dir.clone());
                }
                if let Some(dir) = &self.image_stamps {
                    builder = builder.with_stamps(dir.clone(), Some(IMAGE_CHECK_TRUST));
                }
                let built = builder
                    .ensure(request, &mut |event| on_event(RunEvent::Image(event)))
                    .await?;
                Ok(built.l1.tag)
            }
        }
    }

    /// Launches `options`. On error nothing is left behind: no task directory, no token, no
    /// container.
    pub async fn launch(
        &'a self,
        options: &RunOptions,
        on_event: &mut (dyn FnMut(RunEvent) + Send),
    ) -> Result<LaunchedTask<'a, R>, ExecutorError> {
        let agent = self.roster.agent(&options.agent)?;
        if options.remove_on_exit && matches!(options.mode, Mode::Interactive { .. }) {
            return Err(ExecutorError::InvalidOptions(
                "--rm applies to headless runs; remove an interactive task with \
                 `terok-executor rm NAME` when you are done"
                    .to_owned(),
            ));
        }
        let repo = classify_repo(&options.repo, &self.host_env, &self.cwd)?;
        if let Some(dir) = &options.workspace_dir
            && !dir.is_dir()
        {
            return Err(ExecutorError::WorkspaceNotADirectory(dir.clone()));
        }
        let image = self.ensure_image(agent, &options.image, on_event).await?;

        let task_id = new_task_id()?;
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| container_name(&task_id));
        let store = self.store();
        let layout = store.create(&task_id)?;
        let mut launch = PendingLaunch {
            runtime: self.runtime,
            vault: self.vault.clone(),
            store: store.clone(),
            task_id: task_id.clone(),
            name: name.clone(),
            vault_opened: false,
            container_created: false,
            done: false,
        };
        let result = self
            .prepare_and_start(
                options,
                agent,
                &repo,
                &image,
                &task_id,
                &name,
                &layout,
                &mut launch,
                on_event,
            )
            .await;
        match result {
            Ok(task) => {
                launch.done = true;
                Ok(task)
            }
            Err(err) => {
                launch.abort().await;
                Err(err)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn prepare_and_start(
        &'a self,
        options: &RunOptions,
        agent: &Agent,
        repo: &RepoSource,
        image: &str,
        task_id: &str,
        name: &str,
        layout: &TaskLayout,
        launch: &mut PendingLaunch<'a, R>,
        on_event: &mut (dyn FnMut(RunEvent) + Send),
    ) -> Result<LaunchedTask<'a, R>, ExecutorError> {
        let settings = apply_provider_config(
            agent,
            &RunOverrides {
                model: options.model.clone(),
                max_turns: options.max_turns,
                timeout_secs: options.timeout_secs,
                subagents: !self.subagents.is_empty(),
            },
            &self.agent_config,
        );
        for warning in &settings.warnings {
            on_event(RunEvent::Warning(warning.clone()));
        }

        // What the image has installed: the container gets tokens and config directories for
        // those entries only.
        let installed: Option<BTreeSet<String>> = match &options.image {
            ImageSource::Ensure(request) => Some(request.selection.iter().cloned().collect()),
            ImageSource::Tag(_) => None,
        };
        // The vault first: the container must never start without its listener.
        let mut providers: Vec<String> = Vec::new();
        let wiring = match &self.vault {
            Some(client) => {
                providers = self
                    .roster
                    .entries()
                    .filter(|a| installed.as_ref().is_none_or(|set| set.contains(&a.name)))
                    .filter_map(|a| self.roster.provider_for(a))
                    .map(|p| p.name.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let wiring = client.open(name, providers.clone()).await?;
                launch.vault_opened = wiring.is_some();
                wiring
            }
            None => None,
        };
        match &wiring {
            Some(w) => on_event(RunEvent::VaultWired {
                providers: w.tokens.keys().cloned().collect(),
            }),
            None if options.vault_required => return Err(ExecutorError::VaultRequired),
            None => {}
        }

        let (workspace, code_repo, git_url) = match repo {
            RepoSource::Local(dir) => (Workspace::Host(dir.clone()), None, None),
            RepoSource::GitUrl(url) => {
                let ws = match &options.workspace_dir {
                    Some(dir) => Workspace::Host(dir.clone()),
                    None => Workspace::Task,
                };
                (ws, Some(url.clone()), Some(url.clone()))
            }
        };
        let mut spec =
            ContainerEnvSpec::new(task_id, &agent.name, &layout.dir, &self.paths.mounts_dir);
        spec.workspace = workspace.clone();
        spec.code_repo = code_repo;
        spec.branch = options.branch.clone();
        if let Some((human_name, human_email)) = &options.human_identity {
            spec.authorship = "agent-human".to_owned();
            spec.human_name = human_name.clone();
            spec.human_email = human_email.clone();
        }
        spec.git = GitIdentityOverride::default();
        spec.unrestricted = !options.restricted;
        spec.timezone = options
            .timezone
            .clone()
            .or_else(|| terok_core::timezone::detect_host_timezone(&self.host_env, Path::new("/")));
        spec.shared_dir = options.shared_dir.clone();
        if let Some(mount) = &options.shared_mount {
            spec.shared_mount = mount.clone();
        }
        spec.vault = wiring.clone();
        spec.installed = installed;
        let assembled = assemble_container_env(self.roster, &spec)?;

        // Seed a git-URL workspace from the clone cache (the container only fetches then).
        if let (Some(url), Workspace::Task) = (&git_url, &workspace)
            && let Err(err) =
                clone_cache::seed_workspace(&self.paths.clone_cache_dir(), url, &layout.workspace())
        {
            on_event(RunEvent::Warning(format!(
                "{err}; cloning from scratch instead"
            )));
        }

        let project_root = match repo {
            RepoSource::Local(dir) => Some(dir.as_path()),
            RepoSource::GitUrl(_) => None,
        };
        let instructions =
            resolve_instructions(self.instructions.as_ref(), &agent.name, project_root);
        let (prompt, initial_prompt) = match &options.mode {
            Mode::Headless { prompt } => {
                let mut parts: Vec<String> = Vec::new();
                // Agents without a channel for instructions get them in the prompt, but only
                // when they were configured (upstream's standalone runner never does this).
                if self.instructions.is_some()
                    && instructions_delivery(agent) == InstructionsDelivery::PromptPrefix
                {
                    parts.push(instructions.clone());
                }
                parts.extend(settings.prompt_prefix.iter().cloned());
                parts.push(prompt.clone());
                (Some(parts.join("\n\n")), None)
            }
            Mode::Interactive { initial_prompt } => (None, initial_prompt.clone()),
        };
        let prepared = prepare_agent_config(
            self.roster,
            &AgentConfigSpec {
                task_id: task_id.to_owned(),
                agent: agent.name.clone(),
                dir: layout.agent_config(),
                instructions,
                prompt,
                initial_prompt,
                subagents: self.subagents.clone(),
                selected_subagents: Vec::new(),
                base_dir: project_root.map(Path::to_path_buf),
                vault_env: assembled.vault_env.clone(),
                mounts_dir: self.paths.mounts_dir.clone(),
            },
        )?;
        for warning in prepared.warnings {
            on_event(RunEvent::Warning(warning));
        }

        let headless = matches!(options.mode, Mode::Headless { .. });
        let command = if headless {
            let cmd = headless_command(
                agent,
                &HeadlessOptions {
                    timeout_secs: settings.timeout_secs,
                    model: settings.model.clone(),
                    max_turns: settings.max_turns,
                },
            );
            format!("init-ssh-and-repo.sh && {}", cmd.to_shell())
        } else {
            format!("init-ssh-and-repo.sh && echo {READY_MARKER}; tail -f /dev/null")
        };
        let run_spec = RunSpec {
            name: name.to_owned(),
            image: image.to_owned(),
            command: vec!["bash".to_owned(), "-lc".to_owned(), command],
            env: assembled.env,
            volumes: assembled.volumes.iter().map(to_volume_spec).collect(),
            labels: vec![
                (LABEL_EXECUTOR.to_owned(), "1".to_owned()),
                (LABEL_TASK.to_owned(), task_id.to_owned()),
                (LABEL_AGENT.to_owned(), agent.name.clone()),
            ],
            restricted: options.restricted,
            user_mapping: UserMapping::for_invoking_user(self.host_env.is_root()),
            memory: options.memory.clone(),
            cpus: options.cpus.clone(),
            gpus: options.gpus.clone(),
            init: true,
            ..RunSpec::default()
        };
        let record = TaskRecord {
            id: task_id.to_owned(),
            name: name.to_owned(),
            agent: agent.name.clone(),
            mode: if headless { "headless" } else { "interactive" }.to_owned(),
            repo: match repo {
                RepoSource::Local(dir) => dir.display().to_string(),
                RepoSource::GitUrl(url) => url.clone(),
            },
            git_url,
            image: image.to_owned(),
            created_unix: terok_core::time::unix_now(),
            vault: wiring.is_some(),
            providers,
            remove_on_exit: options.remove_on_exit,
        };
        launch.store.save(&record)?;

        on_event(RunEvent::Launching {
            name: name.to_owned(),
            image: image.to_owned(),
        });
        let (output, deadline) = if headless {
            let stream = self.runtime.run_streaming(&run_spec)?;
            launch.container_created = true;
            let deadline = Instant::now()
                + Duration::from_secs(settings.timeout_secs + HOST_TIMEOUT_GRACE_SECS);
            (stream, Some(deadline))
        } else {
            self.runtime
                .create(&run_spec, &layout.private_dir())
                .await?;
            launch.container_created = true;
            self.runtime.start(name).await?;
            (self.runtime.follow_logs(name)?, None)
        };
        Ok(LaunchedTask {
            runtime: self.runtime,
            vault: self.vault.clone(),
            store: launch.store.clone(),
            clone_cache: self.paths.clone_cache_dir(),
            record,
            output: Some(output),
            deadline,
            wiring,
            image_stamp: match (&self.image_stamps, &options.image) {
                (Some(dir), ImageSource::Ensure(_)) => {
                    Some(terok_image_build::stamp_file(dir, image))
                }
                _ => None,
            },
        })
    }
}

fn to_volume_spec(volume: &terok_container_env::Volume) -> VolumeSpec {
    VolumeSpec {
        host: volume.host.clone(),
        container: volume.container.clone(),
        sharing: match volume.relabel {
            Relabel::Private => Sharing::Private,
            Relabel::Shared => Sharing::Shared,
            Relabel::None => Sharing::None,
        },
        read_only: volume.read_only,
    }
}

/// Undoes a launch that failed half-way.
struct PendingLaunch<'a, R> {
    runtime: &'a R,
    vault: Option<VaultClient>,
    store: TaskStore,
    task_id: String,
    name: String,
    vault_opened: bool,
    container_created: bool,
    done: bool,
}

impl<R: ContainerRuntime> PendingLaunch<'_, R> {
    async fn abort(&mut self) {
        if self.done {
            return;
        }
        if self.container_created {
            let _ = self.runtime.remove(&self.name).await;
        }
        if self.vault_opened
            && let Some(vault) = &self.vault
        {
            let _ = vault.close(&self.name).await;
        }
        let _ = self.store.remove(&self.task_id);
        self.done = true;
    }
}

/// How a headless run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The agent's exit code (124 when the timeout fired, 130 when interrupted).
    pub exit_code: i32,
    /// The host-side timeout stopped the container.
    pub timed_out: bool,
    /// The caller's interrupt stopped the container.
    pub interrupted: bool,
    /// Container and task directory were removed (`--rm`).
    pub removed: bool,
    /// Tokens revoked when the run ended.
    pub revoked_tokens: usize,
    /// Cleanup steps that failed (the run itself is over; these are reported, not fatal).
    pub cleanup_warnings: Vec<String>,
}

/// A launched task: its name, its output, and the end of it.
pub struct LaunchedTask<'a, R> {
    runtime: &'a R,
    vault: Option<VaultClient>,
    store: TaskStore,
    clone_cache: PathBuf,
    record: TaskRecord,
    output: Option<LogStream>,
    deadline: Option<Instant>,
    wiring: Option<VaultWiring>,
    image_stamp: Option<PathBuf>,
}

impl<R> std::fmt::Debug for LaunchedTask<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchedTask")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl<R: ContainerRuntime> LaunchedTask<'_, R> {
    /// The container name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The task's record.
    pub fn record(&self) -> &TaskRecord {
        &self.record
    }

    /// The task directory on the host.
    pub fn task_dir(&self) -> PathBuf {
        self.store.layout(&self.record.id).dir
    }

    /// Providers whose phantom token the container holds.
    pub fn vault_providers(&self) -> BTreeSet<String> {
        self.wiring
            .as_ref()
            .map(|w| w.tokens.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The next line of the container's output, `None` at its end.
    pub async fn next_line(&mut self) -> Option<LogLine> {
        match self.output.as_mut() {
            Some(stream) => stream.next().await,
            None => None,
        }
    }

    /// Interactive: waits (at most `limit`) until the container says it is ready, handing
    /// every line before that to `on_line`. The container keeps running; its tokens stay
    /// valid until it stops (the vault's sweep) or is removed.
    pub async fn wait_ready(
        mut self,
        limit: Duration,
        mut on_line: impl FnMut(&LogLine),
    ) -> Result<bool, ExecutorError> {
        let ready = tokio::time::timeout(limit, async {
            while let Some(line) = self.next_line().await {
                if line.line.contains(READY_MARKER) {
                    return true;
                }
                on_line(&line);
                if line.line.contains(INIT_COMPLETE) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if let Some(stream) = self.output.take() {
            stream.stop().await;
        }
        Ok(ready)
    }

    /// Headless: waits for the run to end without looking at the output.
    pub async fn wait(self) -> Result<RunOutcome, ExecutorError> {
        self.wait_with(|_| {}, std::future::pending()).await
    }

    /// Headless: hands every output line to `on_line` until the agent exits; stops the
    /// container when the host-side timeout passes or `interrupt` completes. Then revokes the
    /// tokens and, with `--rm`, removes container and task directory.
    pub async fn wait_with(
        mut self,
        mut on_line: impl FnMut(&LogLine),
        interrupt: impl Future<Output = ()>,
    ) -> Result<RunOutcome, ExecutorError> {
        let Some(mut stream) = self.output.take() else {
            return Err(ExecutorError::InvalidOptions(
                "this task's output was already consumed".to_owned(),
            ));
        };
        let name = self.record.name.clone();
        let deadline = self.deadline;
        let timer = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timer);
        tokio::pin!(interrupt);
        let (mut timed_out, mut interrupted) = (false, false);
        loop {
            tokio::select! {
                line = stream.next() => match line {
                    Some(line) => on_line(&line),
                    None => break,
                },
                () = &mut timer, if !timed_out && !interrupted => {
                    timed_out = true;
                    self.runtime.stop(&name, 5).await?;
                }
                () = &mut interrupt, if !timed_out && !interrupted => {
                    interrupted = true;
                    self.runtime.stop(&name, 5).await?;
                }
            }
        }
        // `podman run` exits with the container's code; only 125-127 can also mean podman
        // itself failed, and then only a look at the container tells which.
        let podman_code = stream.finish().await?;
        let podman_failed = (125..=127).contains(&podman_code)
            && self.runtime.inspect(&name).await.ok().flatten().is_none();
        if podman_failed {
            // Perhaps the image went away behind terok's back: check it properly next time.
            if let Some(stamp) = &self.image_stamp {
                let _ = std::fs::remove_file(stamp);
            }
            self.cleanup(true).await;
            return Err(ExecutorError::LaunchFailed {
                name,
                code: podman_code,
            });
        }
        let exit_code = if timed_out {
            TIMEOUT_EXIT_CODE
        } else if interrupted {
            INTERRUPTED_EXIT_CODE
        } else {
            podman_code
        };
        let remove = self.record.remove_on_exit;
        let (revoked_tokens, cleanup_warnings) = self.cleanup(remove).await;
        Ok(RunOutcome {
            exit_code,
            timed_out,
            interrupted,
            removed: remove,
            revoked_tokens,
            cleanup_warnings,
        })
    }

    /// Revokes the tokens, remembers a clone, and with `remove` deletes container and task.
    async fn cleanup(&self, remove: bool) -> (usize, Vec<String>) {
        let mut warnings = Vec::new();
        let mut revoked = 0;
        if self.record.vault
            && let Some(vault) = &self.vault
        {
            match vault.close(&self.record.name).await {
                Ok(n) => revoked = n,
                Err(err) => warnings.push(format!(
                    "could not revoke the tokens of {}: {err} (the vault's sweep will)",
                    self.record.name
                )),
            }
        }
        if let Some(url) = &self.record.git_url {
            let workspace = self.store.layout(&self.record.id).workspace();
            if let Err(err) = clone_cache::remember_clone(&self.clone_cache, url, &workspace) {
                warnings.push(err.to_string());
            }
        }
        if remove {
            if let Err(err) = self.runtime.remove(&self.record.name).await {
                warnings.push(format!("could not remove {}: {err}", self.record.name));
            }
            if let Err(err) = self.store.remove(&self.record.id) {
                warnings.push(err.to_string());
            }
        }
        (revoked, warnings)
    }
}
