//! A launch: one agent in one new container, in named steps around a [`plan::LaunchPlan`].
//!
//! 1. plan — check the options, decide what happens (nothing is created);
//! 2. image — build what is missing or stale;
//! 3. task — a task id, a container name, a private task directory;
//! 4. vault — the container's listener opened and its tokens minted *before* it exists;
//!    gate — the repository mirrored on the host, the task's gate token minted and its gate
//!    server started;
//! 5. environment — env and mounts assembled, phantom credential files written;
//! 6. agent config — `/home/dev/.terok`: wrappers, instructions, prompt;
//! 7. record — `task.json`, so `list`, `start` and `rm` know the task later;
//! 8. container — headless: one `podman run` with the output streamed; interactive: a
//!    detached container that waits for `podman exec`.
//!
//! A failing step undoes the ones before it ([`Undo`]): no container, no task directory, no
//! token, no listener is left behind.

pub(crate) mod options;
pub(crate) mod plan;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use terok_container_env::{
    AgentConfigSpec, ContainerEnv, ContainerEnvSpec, GateTransport, Relabel, TaskLayout,
    VAULT_TCP_HOST, VaultWiring, WORKSPACE, Workspace, assemble_container_env, assemble_tool_env,
    clone_cache, prepare_agent_config,
};
use terok_krun::{GUEST_ENTRY, GUEST_SSH_PORT, GuestShell, KrunHost};
use terok_podman::{
    ContainerRuntime, LABEL_AGENT, LABEL_EXECUTOR, LABEL_TASK, LogStream, RunSpec, Sharing,
    VolumeSpec,
};
use terok_roster::{InstructionsDelivery, instructions_delivery, resolve_instructions};
use terok_shield::ContainerArgs;
use tokio::time::Instant;

use crate::container_user::ContainerUser;
use crate::error::ExecutorError;
use crate::gate::OpenGate;
use crate::images::IMAGE_CHECK_TRUST;
use crate::krun::guest_shell;
use crate::launched::{LaunchedTask, READY_MARKER, TaskHandles};
use crate::listen::RemoteRecord;
use crate::ownership::RootfulTask;
use crate::repo::RepoSource;
use crate::services::TcpPlace;
use crate::session::Executor;
use crate::task::{TaskRecord, TaskStore, container_name, new_task_id};
use crate::vault::VaultClient;
use crate::web::{UI_CONTAINER_PORT, new_token, write_token};
use options::{Egress, ImageSource, Mode, RunEvent, RunOptions};
use plan::LaunchPlan;

/// How long a krun guest may take to let the host in over SSH once started.
const GUEST_LOGIN_LIMIT: Duration = Duration::from_secs(90);

/// Seconds the host waits beyond the agent's own timeout before it stops the container (the
/// init script and image start-up run before the in-container timer starts).
pub const HOST_TIMEOUT_GRACE_SECS: u64 = 30;

/// A progress callback.
pub type OnRunEvent<'a> = &'a mut (dyn FnMut(RunEvent) + Send);

impl<R: ContainerRuntime> Executor<R> {
    /// Launches `options`. On error nothing is left behind: no task directory, no token, no
    /// listener, no container.
    pub async fn launch(
        &self,
        options: &RunOptions,
        on_event: OnRunEvent<'_>,
    ) -> Result<LaunchedTask<R>, ExecutorError> {
        let plan = self.plan_launch(options)?;
        let warnings = plan.settings.warnings.iter().cloned();
        for warning in warnings.chain(self.inert_settings()) {
            on_event(RunEvent::Warning(warning));
        }
        if plan.egress == Egress::Open {
            on_event(RunEvent::EgressOpen);
        }
        let image = self.launch_image(&plan, on_event).await?;
        let mut launch = Launch::begin(self, plan, image)?;
        match launch.run(on_event).await {
            Ok(task) => Ok(task),
            Err(err) => {
                launch.undo.run().await;
                Err(err)
            }
        }
    }

    /// Step 2: the image the container runs, built first when missing or stale.
    pub(crate) async fn launch_image(
        &self,
        plan: &LaunchPlan<'_>,
        on_event: OnRunEvent<'_>,
    ) -> Result<String, ExecutorError> {
        match &plan.options.image {
            ImageSource::Tag(tag) => Ok(tag.clone()),
            ImageSource::Ensure(request) if plan.tool.is_some() => {
                // A tool runs in its own sidecar image (on the same L0), without agents.
                let mut request = request.clone();
                request.sidecar = Some(plan.agent.name.clone());
                let built = self
                    .image_builder(Some(IMAGE_CHECK_TRUST))?
                    .ensure_sidecar_only(&request, &mut |event| on_event(RunEvent::Image(event)))
                    .await?;
                Ok(built.tag)
            }
            ImageSource::Ensure(request) => {
                let built = self
                    .image_builder(Some(IMAGE_CHECK_TRUST))?
                    .ensure(request, &mut |event| on_event(RunEvent::Image(event)))
                    .await?;
                Ok(built.l1.tag)
            }
        }
    }

    /// The handles a task needs after its launch, shared with the session.
    pub(crate) fn task_handles(&self) -> TaskHandles<R> {
        TaskHandles {
            runtime: Arc::clone(&self.runtime),
            vault: self.vault.clone(),
            store: self.task_store(),
            clone_cache: self.paths.clone_cache_dir(),
            gate_tokens: self.gate_tokens(),
        }
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// What decides a task's environment and mounts (all but the git gate's part).
    pub(crate) fn container_env_spec(
        &self,
        plan: &LaunchPlan<'_>,
        id: &str,
        layout: &TaskLayout,
        wiring: Option<&VaultWiring>,
    ) -> ContainerEnvSpec {
        let options = plan.options;
        let mut spec =
            ContainerEnvSpec::new(id, &plan.agent.name, &layout.dir, &self.paths.mounts_dir);
        spec.workspace = plan.workspace.clone();
        spec.code_repo = plan.git_url.clone();
        spec.branch = options.branch.clone();
        if let Some(human) = &options.human_identity {
            spec.authorship = "agent-human".to_owned();
            spec.human_name = human.name.clone();
            spec.human_email = human.email.clone();
        }
        spec.unrestricted = !options.restricted;
        spec.timezone = options
            .timezone
            .clone()
            .or_else(|| terok_core::timezone::detect_host_timezone(&self.env, Path::new("/")));
        spec.shared_dir = options
            .shared_dir
            .as_deref()
            .map(|d| self.absolute(d).unwrap_or_else(|| d.to_path_buf()));
        if let Some(mount) = &options.shared_mount {
            spec.shared_mount = mount.clone();
        }
        spec.vault = wiring.cloned();
        spec.installed = plan.installed.clone();
        spec
    }

    /// Step 6: a task's agent-config directory.
    pub(crate) fn write_agent_config(
        &self,
        plan: &LaunchPlan<'_>,
        id: &str,
        layout: &TaskLayout,
        env: &ContainerEnv,
        on_event: OnRunEvent<'_>,
    ) -> Result<(), ExecutorError> {
        let defaults = &self.defaults;
        let project_root = match &plan.repo {
            RepoSource::Local(dir) => Some(dir.as_path()),
            RepoSource::GitUrl(_) => None,
        };
        let instructions = resolve_instructions(
            defaults.instructions.as_ref(),
            &plan.agent.name,
            project_root,
        );
        let (prompt, initial_prompt) = match &plan.options.mode {
            Mode::Headless { prompt } => {
                (Some(self.full_prompt(plan, prompt, &instructions)), None)
            }
            Mode::Interactive { initial_prompt } => (None, initial_prompt.clone()),
            Mode::Web(_) | Mode::Tool { .. } => (None, None),
        };
        let prepared = prepare_agent_config(
            self.roster()?,
            &AgentConfigSpec {
                task_id: id.to_owned(),
                agent: plan.agent.name.clone(),
                dir: layout.agent_config(),
                instructions,
                prompt,
                initial_prompt,
                subagents: defaults.subagents.clone(),
                selected_subagents: Vec::new(),
                base_dir: project_root.map(Path::to_path_buf),
                vault_env: env.vault_env.clone(),
            },
        )?;
        for warning in prepared.warnings {
            on_event(RunEvent::Warning(warning));
        }
        if plan.web.is_some() {
            write_token(&layout.agent_config(), &new_token()?)?;
        }
        Ok(())
    }

    /// The headless prompt: configured instructions for agents without a channel for them
    /// (only when configured: the Python terok-executor's standalone runner never does this),
    /// the settings' prefix, then the user's prompt.
    fn full_prompt(&self, plan: &LaunchPlan<'_>, prompt: &str, instructions: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.defaults.instructions.is_some()
            && instructions_delivery(&plan.agent) == InstructionsDelivery::PromptPrefix
        {
            parts.push(instructions.to_owned());
        }
        parts.extend(plan.settings.prompt_prefix.iter().cloned());
        parts.push(prompt.to_owned());
        parts.join("\n\n")
    }
}

/// A launch in progress: the plan, the task it created, and what to undo if a step fails.
struct Launch<'e, 'o, R> {
    executor: &'e Executor<R>,
    plan: LaunchPlan<'o>,
    image: String,
    id: String,
    name: String,
    layout: TaskLayout,
    /// Who the container's users are on the host.
    user: ContainerUser,
    /// The firewall's podman arguments (for `allowlist`).
    shield: Option<ContainerArgs>,
    /// The task's git gate, once open.
    gate: Option<OpenGate>,
    /// A krun task's host context (the `%host` keypair on disk).
    krun_host: Option<KrunHost>,
    /// Where its vault and gate listen over TCP (`services.mode: tcp`).
    tcp: Option<TcpPlace>,
    /// The TCP port its vault listener took.
    vault_port: Option<u16>,
    /// When the task was created (its record keeps it from the first save on).
    created_unix: i64,
    undo: Undo<R>,
}

impl<'e, 'o, R: ContainerRuntime> Launch<'e, 'o, R> {
    /// Step 3: a task id, a container name and a new private task directory.
    fn begin(
        executor: &'e Executor<R>,
        plan: LaunchPlan<'o>,
        image: String,
    ) -> Result<Self, ExecutorError> {
        let id = new_task_id()?;
        let name = plan
            .options
            .name
            .clone()
            .unwrap_or_else(|| container_name(&id));
        // A remote engine's container gets a copy: the user's directory is not lent to it.
        let remote = executor.runtime.remote_engine().is_some();
        let workspace = match &plan.workspace {
            Workspace::Host(dir) if !remote => Some(dir.as_path()),
            Workspace::Host(_) | Workspace::Task => None,
        };
        let user = executor.container_user(workspace)?;
        let store = executor.task_store();
        let layout = store.layout(&id);
        let undo = Undo {
            runtime: Arc::clone(&executor.runtime),
            vault: executor.vault.clone(),
            store,
            task_id: id.clone(),
            name: name.clone(),
            vault_opened: false,
            gate_opened: None,
            container_created: false,
            lent: None,
        };
        let launch = Self {
            executor,
            plan,
            image,
            id,
            name,
            layout,
            user,
            shield: None,
            gate: None,
            krun_host: None,
            tcp: None,
            vault_port: None,
            created_unix: terok_core::time::unix_now(),
            undo,
        };
        // Recorded from the start: a launch cut short (a signal, a crash) is a task `rm` removes.
        launch.undo.store.create(&launch.record(false, None))?;
        Ok(launch)
    }

    /// Steps 4–8.
    async fn run(&mut self, on_event: OnRunEvent<'_>) -> Result<LaunchedTask<R>, ExecutorError> {
        if let Some(range) = self.user.unreserved {
            on_event(RunEvent::Warning(format!(
                "no id range is reserved for terok in /etc/subuid and /etc/subgid; the \
                 container's users map to {}–{}, free today — `terok-executor setup` reserves it",
                range.start,
                u64::from(range.start) + u64::from(range.count) - 1
            )));
        }
        self.place_services().await?;
        let wiring = match self.plan.tool {
            Some(_) => None,
            None => self.wire_vault(on_event).await?,
        };
        self.wire_gate(on_event).await?;
        let env = match self.plan.tool {
            Some(_) => self.assemble_tool(on_event)?,
            None => {
                let env = self.assemble(wiring.as_ref(), on_event)?;
                self.write_agent_config(&env, on_event)?;
                env
            }
        };
        self.prepare_krun()?;
        self.raise_shield()?;
        self.hand_over()?;
        let spec = self.run_spec(env);
        let record = self.save_record(wiring.is_some(), &spec)?;
        on_event(RunEvent::Launching {
            name: self.name.clone(),
            image: self.image.clone(),
        });
        let (output, deadline) = self.start_container(&spec).await?;
        let image_stamp = match &self.plan.options.image {
            ImageSource::Ensure(_) => Some(terok_image_build::stamp_file(
                &self.executor.image_stamps_dir(),
                &self.image,
            )),
            ImageSource::Tag(_) => None,
        };
        Ok(LaunchedTask::new(
            self.executor.task_handles(),
            record,
            output,
            deadline,
            wiring,
            image_stamp,
        ))
    }

    /// Step 4a, `services.mode: tcp`: where the task's listeners go (and what a remote
    /// engine cannot run refused).
    async fn place_services(&mut self) -> Result<(), ExecutorError> {
        let krun = self.plan.krun.is_some();
        let mode = &self.plan.options.mode;
        (self.executor).check_remote_launch(self.plan.egress, mode, krun)?;
        if self.executor.services_over_tcp() {
            let network = self.plan.options.network.as_deref();
            let rootful = self.user.rootful.is_some();
            let place = self.executor.tcp_place(self.plan.egress, network, rootful);
            self.tcp = Some(place.await?);
        }
        Ok(())
    }

    /// Step 4: the listener opened and the tokens minted, before the container exists; the
    /// daemon made to serve the roster's routes as they are now.
    async fn wire_vault(
        &mut self,
        on_event: OnRunEvent<'_>,
    ) -> Result<Option<VaultWiring>, ExecutorError> {
        let providers = self.plan.providers.clone();
        let vault = &self.executor.vault;
        let listener = match &self.tcp {
            Some(place) => {
                let opened = vault
                    .open_tcp(&self.name, providers, place.listen())
                    .await?;
                opened.map(|(listener, port)| {
                    self.vault_port = Some(port);
                    listener
                })
            }
            // The SSH signer has a socket only: it comes with socket listeners.
            None => {
                let uid = self.user.socket_uid();
                let ssh_scope = Some(self.plan.agent.name.as_str());
                vault.open(&self.name, providers, uid, ssh_scope).await?
            }
        };
        self.undo.vault_opened = listener.is_some();
        let wiring = match listener {
            Some(listener) => {
                let changes = self.executor.sync_routes(&listener.routes_hash).await?;
                if !changes.is_empty() {
                    on_event(RunEvent::RoutesUpdated { changes });
                }
                Some(listener.wiring)
            }
            None => None,
        };
        match &wiring {
            Some(w) => on_event(RunEvent::VaultWired {
                providers: w.tokens.keys().cloned().collect(),
            }),
            None if self.plan.options.vault_required => return Err(ExecutorError::VaultRequired),
            None => {}
        }
        Ok(wiring)
    }

    /// Step 4b: the repository mirrored, the task's gate token minted and its server started
    /// (for a launch through the gate).
    async fn wire_gate(&mut self, on_event: OnRunEvent<'_>) -> Result<(), ExecutorError> {
        let Some(plan) = &self.plan.gate else {
            return Ok(());
        };
        let tcp = self.tcp.as_ref().map(TcpPlace::listen_gate);
        let gate = self
            .executor
            .open_gate(&self.name, plan, self.user.socket_uid(), tcp)
            .await?;
        self.undo.gate_opened = Some(self.executor.gate_tokens());
        on_event(RunEvent::GateOpened {
            repo: gate.task.repo.clone(),
            mode: gate.task.mode,
            blocked: gate.blocked.clone(),
        });
        self.gate = Some(gate);
        Ok(())
    }

    /// What decides the container's environment and mounts (with the gate's repository).
    fn env_spec(&self, wiring: Option<&VaultWiring>) -> ContainerEnvSpec {
        let mut spec =
            (self.executor).container_env_spec(&self.plan, &self.id, &self.layout, wiring);
        if let Some(gate) = &self.gate {
            let (code_repo, clone_from) = gate.repo_env();
            spec.code_repo = Some(code_repo);
            spec.clone_from = clone_from;
            spec.gate = Some(gate.wiring.clone());
        }
        spec
    }

    /// Step 5: env and mounts, phantom credential files, and a git-URL workspace seeded from
    /// the clone cache (the container only fetches then).
    fn assemble(
        &self,
        wiring: Option<&VaultWiring>,
        on_event: OnRunEvent<'_>,
    ) -> Result<ContainerEnv, ExecutorError> {
        let env = assemble_container_env(self.executor.roster()?, &self.env_spec(wiring))?;
        for warning in &env.warnings {
            on_event(RunEvent::Warning(warning.clone()));
        }
        // A gated clone comes through the gate: a cached clone's origin would not match.
        if let (Some(url), Workspace::Task, None) =
            (&self.plan.git_url, &self.plan.workspace, &self.gate)
            && let Err(err) = clone_cache::seed_workspace(
                &self.executor.paths.clone_cache_dir(),
                url,
                &self.layout.workspace(),
            )
        {
            on_event(RunEvent::Warning(format!(
                "{err}; cloning from scratch instead"
            )));
        }
        Ok(env)
    }

    /// Step 5, tool: the task basics and the repository, and the tool's real credential
    /// mapped through its `sidecar.env_map` (into the env file, never onto argv).
    fn assemble_tool(&self, on_event: OnRunEvent<'_>) -> Result<ContainerEnv, ExecutorError> {
        let mut env = assemble_tool_env(&self.env_spec(None))?;
        if let Some(tool) = &self.plan.tool {
            let (credential_env, missing) =
                self.executor.tool_credential_env(&self.plan.agent, tool)?;
            env.env.extend(credential_env);
            if let Some(event) = missing {
                on_event(event);
            }
        }
        Ok(env)
    }

    /// Step 6: the agent-config directory.
    fn write_agent_config(
        &self,
        env: &ContainerEnv,
        on_event: OnRunEvent<'_>,
    ) -> Result<(), ExecutorError> {
        (self.executor).write_agent_config(&self.plan, &self.id, &self.layout, env, on_event)
    }

    /// Step 6a, krun: the `%host` keypair written for `ssh -i` (made in the vault on first use).
    fn prepare_krun(&mut self) -> Result<(), ExecutorError> {
        if self.plan.krun.is_some() {
            self.krun_host = Some(self.executor.krun_host()?);
        }
        Ok(())
    }

    /// Step 6b, `allowlist`: the task's firewall state and the hook that loads it (with the
    /// ports the host connects to opened to new inbound connections: a web UI's, a krun
    /// guest's SSH server).
    fn raise_shield(&mut self) -> Result<(), ExecutorError> {
        if self.plan.egress != Egress::Allowlist {
            return Ok(());
        }
        let mut ingress = Vec::new();
        if self.plan.web.is_some() {
            ingress.push(UI_CONTAINER_PORT);
        }
        if self.plan.krun.is_some() {
            ingress.push(GUEST_SSH_PORT);
        }
        let host_services = match &self.tcp {
            Some(place) => [self.vault_port, self.gate_port()]
                .into_iter()
                .flatten()
                .map(|port| place.service(port))
                .collect(),
            None => Vec::new(),
        };
        self.shield = Some(self.executor.prepare_shield(
            &self.layout.dir,
            &self.plan.shield_profiles,
            &ingress,
            &host_services,
        )?);
        Ok(())
    }

    /// The TCP port the task's gate server took.
    fn gate_port(&self) -> Option<u16> {
        match self.gate.as_ref()?.wiring.transport {
            GateTransport::Tcp(port) => Some(port),
            GateTransport::Socket(_) => None,
        }
    }

    /// Step 6c, rootful: the task's files and a root-owned workspace handed to the container's
    /// `dev` (given back by the undo should a later step fail).
    fn hand_over(&mut self) -> Result<(), ExecutorError> {
        let Some(rootful) = &self.user.rootful else {
            return Ok(());
        };
        // A remote engine gets copies, which it owns to the container's user itself: the
        // files here stay the user's (ids of this host mean nothing there).
        if self.executor.runtime.remote_engine().is_some() {
            return Ok(());
        }
        self.undo.lent = Some(rootful.clone());
        rootful
            .hand_over(&self.layout.container_files())
            .map_err(ExecutorError::io(
                "cannot hand the task's files to the container's user",
            ))
    }

    /// The container: hardened, labelled, its environment through a pipe or an env file, and
    /// with `allowlist` behind the shield.
    fn run_spec(&self, mut env: ContainerEnv) -> RunSpec {
        let options = self.plan.options;
        // A krun guest's first process is its SSH server; the agent's command comes over SSH.
        let command = match &self.plan.krun {
            Some(_) => format!("exec {GUEST_ENTRY}"),
            None => self.plan.shell_command(),
        };
        let mut publish = Vec::new();
        if let Some(krun) = &self.plan.krun {
            publish.push(format!("127.0.0.1:{}:{GUEST_SSH_PORT}", krun.ssh_port));
        }
        if let Some(web) = &self.plan.web {
            publish.push(format!("127.0.0.1:{}:{UI_CONTAINER_PORT}", web.port));
            env.env
                .push(("TEROK_WEB_PORT".to_owned(), web.port.to_string()));
            env.env.push(("TEROK_WEB_ORIGIN".to_owned(), web.origin()));
        }
        let network = match (self.plan.egress, &self.tcp) {
            (Egress::Offline, _) => Some("none".to_owned()),
            (
                _,
                Some(TcpPlace {
                    network: Some(network),
                    ..
                }),
            ) => Some(network.clone()),
            (Egress::Allowlist | Egress::Open, _) => options.network.clone(),
        };
        // The listeners' host, as the container was told (podman's own entry may differ).
        let add_hosts = self
            .tcp
            .iter()
            .map(|place| format!("{VAULT_TCP_HOST}:{}", place.seen_as))
            .collect();
        let mut spec = RunSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            command: vec!["bash".to_owned(), "-lc".to_owned(), command.clone()],
            env: env.env,
            volumes: env.volumes.iter().map(to_volume_spec).collect(),
            labels: vec![
                (LABEL_EXECUTOR.to_owned(), "1".to_owned()),
                (LABEL_TASK.to_owned(), self.id.clone()),
                (LABEL_AGENT.to_owned(), self.plan.agent.name.clone()),
            ],
            restricted: options.restricted,
            user_mapping: self.user.mapping,
            memory: options.memory.clone(),
            cpus: options.cpus.clone(),
            gpus: options.gpus.clone(),
            init: true,
            network,
            publish,
            add_hosts,
            ..RunSpec::default()
        };
        if let Some(shield) = &self.shield {
            shield.apply(&mut spec, &command);
        }
        if let (Some(krun), Some(host)) = (&self.plan.krun, &self.krun_host) {
            host.apply(&mut spec);
            spec.runtime = Some(krun.oci_runtime.clone());
        }
        spec
    }

    /// Step 7: the task record, complete.
    fn save_record(&self, vault: bool, spec: &RunSpec) -> Result<TaskRecord, ExecutorError> {
        let record = self.record(vault, Some(spec));
        self.undo.store.save(&record)?;
        Ok(record)
    }

    /// The task record as far as it is known: before the container's spec (`None`), without
    /// what wiring the services and placing the task add.
    fn record(&self, vault: bool, spec: Option<&RunSpec>) -> TaskRecord {
        TaskRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            agent: self.plan.agent.name.clone(),
            mode: self.plan.mode(),
            repo: self.plan.repo_text(),
            git_url: self.plan.git_url.clone(),
            image: self.image.clone(),
            created_unix: self.created_unix,
            vault,
            providers: self.plan.providers.clone(),
            installed: self.plan.installed.clone(),
            remove_on_exit: self.plan.options.remove_on_exit,
            rootful: self.user.rootful.clone(),
            shielded: self.shield.is_some(),
            gate: self.gate.as_ref().map(|g| g.task.clone()),
            web: self.plan.web.clone(),
            krun: self.plan.krun.clone(),
            tcp: (self.tcp.as_ref()).map(|place| place.record(self.vault_port, self.gate_port())),
            remote: spec.and_then(|spec| self.remote_record(spec)),
        }
    }

    /// What a remote engine's task keeps: the engine, the directory its workspace came from
    /// and the task's own files copied in.
    fn remote_record(&self, spec: &RunSpec) -> Option<RemoteRecord> {
        let engine = self.executor.runtime.remote_engine()?;
        let workspace = match &self.plan.workspace {
            Workspace::Host(dir) => Some(dir.clone()),
            Workspace::Task => None,
        };
        let task_files = spec
            .volumes
            .iter()
            // Not the workspace (a git URL's lives in the task directory): copied again, it
            // would overwrite what the agent did there.
            .filter(|v| v.host.starts_with(&self.layout.dir) && v.container != WORKSPACE)
            .map(|v| (v.host.clone(), v.container.clone()))
            .collect();
        Some(RemoteRecord {
            engine,
            workspace,
            task_files,
        })
    }

    /// Step 8: the container started; its output, and the host's deadline for a headless run.
    async fn start_container(
        &mut self,
        spec: &RunSpec,
    ) -> Result<(LogStream, Option<Instant>), ExecutorError> {
        if let (Some(krun), Some(host)) = (&self.plan.krun, &self.krun_host) {
            let guest = guest_shell(krun, host, &self.layout.private_dir());
            return self.start_guest(spec, &guest).await;
        }
        if self.executor.runtime.remote_engine().is_some() {
            return self.start_copied(spec).await;
        }
        let runtime = &self.executor.runtime;
        if self.plan.options.is_headless() {
            let stream = runtime.run_streaming(spec)?;
            self.undo.container_created = true;
            let limit = self.plan.settings.timeout_secs + HOST_TIMEOUT_GRACE_SECS;
            return Ok((stream, Some(Instant::now() + Duration::from_secs(limit))));
        }
        runtime.create(spec, &self.layout.private_dir()).await?;
        self.undo.container_created = true;
        runtime.start_hooked(&self.name, &spec.hooks_dirs).await?;
        Ok((runtime.follow_logs(&self.name)?, None))
    }
}

impl<R: ContainerRuntime> Launch<'_, '_, R> {
    /// Step 8, remote engine: the container created without mounts, what they would have
    /// mounted copied in (the engine sees none of this host's paths), then started; its
    /// output followed (a headless run's exit code comes from `podman wait`).
    async fn start_copied(
        &mut self,
        spec: &RunSpec,
    ) -> Result<(LogStream, Option<Instant>), ExecutorError> {
        let runtime = &self.executor.runtime;
        let bare = RunSpec {
            volumes: Vec::new(),
            ..spec.clone()
        };
        runtime.create(&bare, &self.layout.private_dir()).await?;
        self.undo.container_created = true;
        for volume in &spec.volumes {
            runtime
                .copy_into(&self.name, &volume.host, &volume.container)
                .await?;
        }
        runtime.start(&self.name).await?;
        let stream = runtime.follow_logs(&self.name)?;
        let deadline = self.plan.options.is_headless().then(|| {
            let limit = self.plan.settings.timeout_secs + HOST_TIMEOUT_GRACE_SECS;
            Instant::now() + Duration::from_secs(limit)
        });
        Ok((stream, deadline))
    }

    /// Step 8, krun: the guest started (its SSH server first), then — once it lets the host
    /// in — the agent's command over SSH (headless), or the init script up to the ready line
    /// (interactive; the user logs in over SSH).
    async fn start_guest(
        &mut self,
        spec: &RunSpec,
        guest: &GuestShell,
    ) -> Result<(LogStream, Option<Instant>), ExecutorError> {
        let runtime = Arc::clone(&self.executor.runtime);
        runtime.create(spec, &self.layout.private_dir()).await?;
        self.undo.container_created = true;
        runtime.start_hooked(&self.name, &spec.hooks_dirs).await?;
        let name = self.name.clone();
        let alive =
            async || matches!(runtime.inspect(&name).await, Ok(Some(info)) if info.state.running);
        guest
            .wait_for_login(Instant::now() + GUEST_LOGIN_LIMIT, alive)
            .await?;
        if self.plan.options.is_headless() {
            let stream = guest.stream(&self.plan.shell_command())?;
            let limit = self.plan.settings.timeout_secs + HOST_TIMEOUT_GRACE_SECS;
            return Ok((stream, Some(Instant::now() + Duration::from_secs(limit))));
        }
        let init = format!("init-ssh-and-repo.sh && echo {READY_MARKER}");
        Ok((guest.stream(&init)?, None))
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

/// What a launch that fails half-way takes back: the container, the listener and its
/// tokens, the task directory.
struct Undo<R> {
    runtime: Arc<R>,
    vault: VaultClient,
    store: TaskStore,
    task_id: String,
    name: String,
    vault_opened: bool,
    /// The gate's tokens, once the task's was minted (its server ends when it is revoked).
    gate_opened: Option<terok_gate::TokenStore>,
    container_created: bool,
    /// The workspace lent to the container's `dev`, to give back.
    lent: Option<RootfulTask>,
}

impl<R: ContainerRuntime> Undo<R> {
    async fn run(&self) {
        if self.container_created {
            let _ = self.runtime.remove(&self.name).await;
        }
        if let Some(lent) = &self.lent {
            let _ = lent.give_back();
        }
        if self.vault_opened {
            let _ = self.vault.close(&self.name).await;
        }
        if let Some(tokens) = &self.gate_opened {
            let _ = tokens.revoke_task(&self.name);
        }
        let _ = self.store.remove(&self.task_id);
    }
}
