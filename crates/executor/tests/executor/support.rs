//! A session as an orchestrator opens one, on an isolated host: the recording fake runtime
//! (or real podman), a real vault daemon served in this process, and what the tests look at
//! afterwards (task directories, live tokens, open listeners, containers).

use std::path::PathBuf;
use std::time::Duration;

use terok_core::config::ConfigSource;
use terok_executor::{Executor, ImageSource, LaunchedTask, RunOptions, ShieldHook};
use terok_podman::{ContainerRuntime, FakeCall, FakeRuntime};
use terok_testkit::IsolatedEnv;

/// The key the tests store; it must never show up where a container could see it.
pub const REAL_KEY: &str = "sk-ant-api03-REAL-executor-test-key-91c2d4";
/// The image launches name (the fake needs no build).
pub const IMAGE: &str = "localhost/terok-l1-cli:test";

/// One isolated host with an open session on `R`.
pub struct Session<R: ContainerRuntime = FakeRuntime> {
    pub env: IsolatedEnv,
    pub executor: Executor<R>,
    vault: Option<tokio::task::JoinHandle<()>>,
}

impl Session<FakeRuntime> {
    /// A session on a fresh fake runtime, without a vault.
    pub fn fake() -> Self {
        Self::with_runtime(FakeRuntime::new())
    }

    /// A session on a fresh fake whose host `setup` prepared first (user roster files,
    /// config.yml), without a vault.
    pub fn fake_with(setup: impl FnOnce(&IsolatedEnv)) -> Self {
        let env = IsolatedEnv::new().unwrap();
        std::fs::create_dir_all(env.work_dir().join("project")).unwrap();
        std::fs::write(env.work_dir().join("project/README.md"), "# sample\n").unwrap();
        setup(&env);
        Self::open(env, FakeRuntime::new())
    }

    /// The same host with the session opened as effective uid `euid` (0: rootful podman).
    pub fn opened_as(mut self, euid: u32) -> Self {
        let host = terok_core::HostEnv::from_vars(self.env.vars(), euid);
        self.executor = Executor::builder(host)
            .config(ConfigSource::Layered)
            .cwd(self.env.work_dir())
            .shield_hook(test_shield_hook())
            .build_with_runtime(FakeRuntime::new())
            .unwrap();
        self
    }

    /// The fake behind the session.
    pub fn fake_runtime(&self) -> &FakeRuntime {
        self.executor.runtime()
    }

    /// The argv of the first `podman run` the session made.
    pub fn first_run_argv(&self) -> Vec<String> {
        self.fake_runtime()
            .calls()
            .into_iter()
            .find_map(|c| match c {
                FakeCall::Run { argv, .. } => Some(argv),
                _ => None,
            })
            .expect("a podman run")
    }
}

/// Launches `options` on `session`; the error when it fails.
pub async fn launch_err<R: ContainerRuntime>(
    session: &Session<R>,
    options: &RunOptions,
) -> terok_executor::ExecutorError {
    match session.executor.launch(options, &mut |_| {}).await {
        Ok(task) => panic!("the launch should have failed: {task:?}"),
        Err(err) => err,
    }
}

/// The phantom in a launched task's `vault.env` and the task's vault socket on the host.
pub fn token_and_socket(
    task: &LaunchedTask<FakeRuntime>,
    executor: &Executor<FakeRuntime>,
) -> (String, PathBuf) {
    let text = std::fs::read_to_string(task.task_dir().join("agent-config/vault.env")).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("ANTHROPIC_API_KEY="))
        .unwrap()
        .trim_matches('\'')
        .to_owned();
    (token, executor.vault_paths().container_socket(task.name()))
}

/// The hook program the test sessions name (the fake runtime never runs it).
pub const SHIELD_HOOK: &str = "/usr/libexec/terok-test/terok-executor";

/// A new command on the same host as `session` (it reads config.yml and the roster anew), on
/// a fresh fake runtime, with the test sessions' shield hook.
pub fn next_command<R: ContainerRuntime>(session: &Session<R>) -> Executor<FakeRuntime> {
    next_command_builder(session)
        .shield_hook(test_shield_hook())
        .build_with_runtime(FakeRuntime::new())
        .unwrap()
}

/// The same as [`next_command`], without a shield hook.
pub fn next_command_without_shield_hook<R: ContainerRuntime>(
    session: &Session<R>,
) -> Executor<FakeRuntime> {
    next_command_builder(session)
        .build_with_runtime(FakeRuntime::new())
        .unwrap()
}

fn next_command_builder<R: ContainerRuntime>(
    session: &Session<R>,
) -> terok_executor::ExecutorBuilder {
    Executor::builder(session.env.host_env()).cwd(session.env.work_dir())
}

/// The shield hook of the test sessions.
pub fn test_shield_hook() -> ShieldHook {
    ShieldHook::new(SHIELD_HOOK, ["shield", "hook"])
}

impl<R: ContainerRuntime> Session<R> {
    /// A session on `runtime` in a new isolated environment.
    pub fn with_runtime(runtime: R) -> Self {
        let env = IsolatedEnv::new().unwrap();
        std::fs::create_dir_all(env.work_dir().join("project")).unwrap();
        std::fs::write(env.work_dir().join("project/README.md"), "# sample\n").unwrap();
        Self::open(env, runtime)
    }

    /// A session on `runtime` in `env`.
    fn open(env: IsolatedEnv, runtime: R) -> Self {
        let executor = Executor::builder(env.host_env())
            .config(ConfigSource::Layered)
            .cwd(env.work_dir())
            .shield_hook(test_shield_hook())
            .build_with_runtime(runtime)
            .unwrap();
        Self {
            env,
            executor,
            vault: None,
        }
    }

    /// Stores [`REAL_KEY`] for Claude and serves the vault in this process until dropped.
    pub async fn with_vault(mut self) -> Self {
        self.executor.store_api_key("claude", REAL_KEY).unwrap();
        self.executor.write_routes().unwrap();
        let config = self.executor.vault_config();
        self.vault = Some(tokio::spawn(async move {
            terok_executor::serve_vault(config).await.unwrap();
        }));
        for _ in 0..200 {
            if self.executor.vault_client().is_running().await {
                return self;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the test vault did not come up");
    }

    /// Whether no credential is stored.
    pub fn has_no_credentials(&self) -> bool {
        self.executor
            .stored_credentials()
            .unwrap()
            .unwrap_or_default()
            .is_empty()
    }

    /// A headless run of Claude on the sample project, on [`IMAGE`].
    pub fn headless(&self, prompt: &str) -> RunOptions {
        RunOptions::headless(
            "claude",
            "project",
            prompt,
            ImageSource::Tag(IMAGE.to_owned()),
        )
    }

    /// An interactive Claude container on the sample project.
    pub fn interactive(&self) -> RunOptions {
        RunOptions::interactive("claude", "project", ImageSource::Tag(IMAGE.to_owned()))
    }

    /// Ids of the task directories that exist.
    pub fn task_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.executor.paths().tasks_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Containers holding live tokens.
    pub fn token_holders(&self) -> Vec<String> {
        self.executor
            .live_tokens()
            .unwrap()
            .into_iter()
            .map(|t| t.subject)
            .collect()
    }

    /// Containers with an open vault listener.
    pub async fn listeners(&self) -> Vec<String> {
        self.executor
            .vault_client()
            .status()
            .await
            .map(|s| s.listeners)
            .unwrap_or_default()
    }

    /// Asserts that nothing of a launch is left: no task directory, no token, no listener.
    pub async fn assert_nothing_left(&self, step: &str) {
        assert_eq!(self.task_dirs(), Vec::<String>::new(), "{step}: task dirs");
        assert_eq!(self.token_holders(), Vec::<String>::new(), "{step}: tokens");
        assert_eq!(
            self.listeners().await,
            Vec::<String>::new(),
            "{step}: listeners"
        );
    }

    /// Stops the in-process vault.
    pub async fn stop_vault(&mut self) {
        if let Some(task) = self.vault.take() {
            self.executor.stop_vault().await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl<R: ContainerRuntime> Drop for Session<R> {
    fn drop(&mut self) {
        if let Some(task) = self.vault.take() {
            task.abort();
        }
    }
}
