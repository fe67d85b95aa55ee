//! [`LaunchedTask`]: a launched container the caller owns — it can be moved into a spawned
//! task or stored — with its output, the host-enforced timeout, the agent's exit code, and
//! the clean-up at the end (tokens revoked; with removal on exit, container and task gone).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use terok_container_env::{VaultWiring, clone_cache};
use terok_podman::{ContainerRuntime, LogLine, LogStream, PodmanError};
use terok_vault::rejections::Rejection;
use tokio::time::Instant;

use crate::error::ExecutorError;
use crate::task::{TaskRecord, TaskStore};
use crate::vault::VaultClient;
use crate::web::{self, WebAccess};

/// The line an interactive container prints when it is ready for `podman exec`.
pub const READY_MARKER: &str = "__CLI_READY__";
/// The init script's last line.
pub const INIT_COMPLETE: &str = ">> init complete";
/// Exit code of a run whose timeout fired (what `timeout` reports).
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// Exit code of a run interrupted by the caller (128 + SIGINT).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;
/// Exit code of a run stopped because the model API kept refusing the stored credential
/// (`EX_NOPERM` of sysexits.h: the agent was not allowed to do its work).
pub const CREDENTIAL_REJECTED_EXIT_CODE: i32 = 77;
/// How often a headless run asks the vault whether an upstream refuses its credential.
const REJECTION_POLL: Duration = Duration::from_secs(1);
/// Seconds a container stopped at the end of a headless run (timeout, interrupt, refused
/// credential) gets before it is killed.
pub const STOP_GRACE_SECS: u32 = 5;
/// How often a stop is repeated while the container's output goes on after it.
const STOP_REPEAT: Duration = Duration::from_secs(2);

/// What a launched task needs from its session, owned (so the task is `'static`).
pub(crate) struct TaskHandles<R> {
    pub runtime: Arc<R>,
    pub vault: VaultClient,
    pub store: TaskStore,
    pub clone_cache: PathBuf,
    pub gate_tokens: terok_gate::TokenStore,
}

/// How a headless run is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitOptions {
    /// Stop the run when the model API refuses the stored credential this many times in a
    /// row (`None`: keep waiting for the agent). Three, by default: a single refusal can race
    /// an OAuth refresh, and agents retry once at once; three in a row, with nothing getting
    /// through in between, is a credential the API will not take — and an agent's back-off
    /// makes them within seconds.
    pub stop_after_rejections: Option<u32>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            stop_after_rejections: Some(3),
        }
    }
}

impl WaitOptions {
    /// Keep waiting for the agent whatever the API says.
    pub fn never_stop_early() -> Self {
        Self {
            stop_after_rejections: None,
        }
    }
}

/// Something that happened during a headless run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskEvent<'a> {
    /// A line of the agent's output.
    Line(&'a LogLine),
    /// The model API refused the stored credential (again): said once per new refusal.
    CredentialRejected(&'a Rejection),
    /// The host is stopping the container: it gets [`STOP_GRACE_SECS`] to end before podman
    /// kills it, and the run ends once it has. Said once, before the stop.
    Stopping(StopReason),
}

/// Why the host stops a headless run's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The host-side timeout passed.
    TimedOut,
    /// The caller's interrupt completed (Ctrl-C, SIGTERM).
    Interrupted,
    /// The model API refused the stored credential as often as the run allows.
    CredentialRejected,
}

/// How a headless run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunOutcome {
    /// The agent's exit code (124 when the timeout fired, 130 when interrupted, 77 when the
    /// run was stopped because the API refused the credential).
    pub exit_code: i32,
    /// The host-side timeout stopped the container.
    pub timed_out: bool,
    /// The caller's interrupt stopped the container.
    pub interrupted: bool,
    /// The last refusal of a credential by the model API, if any came.
    pub rejected: Option<Rejection>,
    /// The run was stopped because of it.
    pub stopped_for_rejection: bool,
    /// Container and task directory were removed.
    pub removed: bool,
    /// On a remote engine: what of the workspace's copy was merged back into the user's
    /// directory.
    pub copied_back: Option<crate::copy_back::CopiedBack>,
    /// Tokens revoked when the run ended.
    pub revoked_tokens: usize,
    /// Clean-up steps that failed (the run itself is over; these are reported, not fatal).
    pub cleanup_warnings: Vec<String>,
}

/// A launched task: its name, its output, and the end of it.
pub struct LaunchedTask<R> {
    handles: TaskHandles<R>,
    record: TaskRecord,
    output: Option<LogStream>,
    deadline: Option<Instant>,
    wiring: Option<VaultWiring>,
    image_stamp: Option<PathBuf>,
}

impl<R> std::fmt::Debug for LaunchedTask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchedTask")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Why the output loop of a headless run ended early, and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Followed {
    timed_out: bool,
    interrupted: bool,
    stopped_for_rejection: bool,
    rejected: Option<Rejection>,
}

impl Followed {
    fn stopping(&self) -> bool {
        self.timed_out || self.interrupted || self.stopped_for_rejection
    }
}

impl<R: ContainerRuntime> LaunchedTask<R> {
    pub(crate) fn new(
        handles: TaskHandles<R>,
        record: TaskRecord,
        output: LogStream,
        deadline: Option<Instant>,
        wiring: Option<VaultWiring>,
        image_stamp: Option<PathBuf>,
    ) -> Self {
        Self {
            handles,
            record,
            output: Some(output),
            deadline,
            wiring,
            image_stamp,
        }
    }

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
        self.handles.store.layout(&self.record.id).dir
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
    pub async fn wait_ready(mut self, limit: Duration, mut on_line: impl FnMut(&LogLine)) -> bool {
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
        ready
    }

    /// Web: waits (at most `limit`) until the UI answers `200` to the task's token, handing
    /// every line of output meanwhile to `on_line`; returns the link to open. The container
    /// keeps running.
    pub async fn wait_web(
        mut self,
        limit: Duration,
        mut on_line: impl FnMut(&LogLine),
    ) -> Result<WebAccess, ExecutorError> {
        let web = self
            .record
            .web
            .clone()
            .ok_or_else(|| ExecutorError::NotAWebTask {
                name: self.record.name.clone(),
            })?;
        let token = web::read_token(&self.handles.store.layout(&self.record.id).agent_config())?;
        let cookie = web.cookie_name();
        let deadline = Instant::now() + limit;
        let mut output_ended = false;
        let outcome = loop {
            if web::probe_ui(web.port, &cookie, &token).await == Some(200) {
                break Ok(());
            }
            if output_ended {
                break Err(web::WebWait::Exited);
            }
            if Instant::now() >= deadline {
                break Err(web::WebWait::TimedOut);
            }
            // Lines as they come; a look at the UI at least every POLL.
            let pause = tokio::time::sleep(web::POLL);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    line = self.next_line() => match line {
                        Some(line) => on_line(&line),
                        None => { output_ended = true; break; }
                    },
                    () = &mut pause => break,
                }
            }
        };
        if let Some(stream) = self.output.take() {
            stream.stop().await;
        }
        outcome.map_err(|why| web::web_wait_error(&self.record, why, limit))?;
        Ok(web::access(&web, &token))
    }

    /// Headless: waits for the run to end without looking at the output.
    pub async fn wait(self) -> Result<RunOutcome, ExecutorError> {
        self.wait_with(|_| {}, std::future::pending()).await
    }

    /// Headless: hands every output line to `on_line` until the agent exits (watched with the
    /// default [`WaitOptions`]); see [`Self::watch`].
    pub async fn wait_with(
        self,
        mut on_line: impl FnMut(&LogLine),
        interrupt: impl Future<Output = ()>,
    ) -> Result<RunOutcome, ExecutorError> {
        let on_event = |event: TaskEvent<'_>| {
            if let TaskEvent::Line(line) = event {
                on_line(line);
            }
        };
        self.watch(&WaitOptions::default(), on_event, interrupt)
            .await
    }

    /// Headless: hands every output line, and every refusal of the credential by the model
    /// API, to `on_event` until the agent exits; stops the container when the host-side
    /// timeout passes, when `interrupt` completes, or when the API refused the credential as
    /// often as `options` allows. Then revokes the tokens and, with removal on exit, removes
    /// container and task directory.
    pub async fn watch(
        mut self,
        options: &WaitOptions,
        on_event: impl FnMut(TaskEvent<'_>),
        interrupt: impl Future<Output = ()>,
    ) -> Result<RunOutcome, ExecutorError> {
        let Some(mut stream) = self.output.take() else {
            return Err(ExecutorError::TaskRecord {
                path: self.task_dir(),
                detail: "this task's output was already consumed".to_owned(),
            });
        };
        let followed = match self.follow(&mut stream, options, on_event, interrupt).await {
            Ok(followed) => followed,
            Err(source) => return Err(self.unstoppable(source).await),
        };
        // `podman run` exits with the container's code; 125–127 can also mean podman itself
        // failed, and only a look at the container tells which.
        let finished = stream.finish().await;
        if self.record.remote.is_some() {
            // The output came from `podman logs`: the agent's code is the container's.
            return match self.handles.runtime.wait(&self.record.name).await {
                Ok(code) => Ok(self.finish_remote(code, followed).await),
                Err(err) => {
                    // The tokens go whatever happened; the container keeps the work.
                    self.cleanup(false).await;
                    Err(err.into())
                }
            };
        }
        let podman_code = match finished {
            Ok(code) => code,
            Err(err) => {
                // Whatever became of the container, it keeps no access through terok.
                self.revoke_access(ContainerState::MayRun).await;
                return Err(err.into());
            }
        };
        if self.record.krun.is_some() {
            // The agent ran over SSH (the code is its own, or 255 when ssh failed); the guest
            // still serves SSH and ends here, as a container ends with its command. A guest
            // that will not stop keeps its workspace until `stop` or `rm`.
            if let Err(source) = self.stop_container().await {
                return Err(self.unstoppable(source).await);
            }
        } else if (125..=127).contains(&podman_code) && !self.container_ran().await {
            self.forget_image_check();
            self.cleanup(true).await;
            return Err(ExecutorError::LaunchFailed {
                name: self.record.name.clone(),
                code: podman_code,
            });
        }
        let exit_code = exit_code_of(&followed, podman_code);
        let remove = self.record.remove_on_exit;
        let (revoked_tokens, cleanup_warnings) = self.cleanup(remove).await;
        Ok(RunOutcome {
            exit_code,
            timed_out: followed.timed_out,
            interrupted: followed.interrupted,
            rejected: followed.rejected,
            stopped_for_rejection: followed.stopped_for_rejection,
            removed: remove,
            copied_back: None,
            revoked_tokens,
            cleanup_warnings,
        })
    }

    /// A remote engine's run ended with `code`: the workspace's copy merged back (a copy
    /// that cannot come back keeps its container, whatever `--rm` said), then the clean-up.
    async fn finish_remote(self, code: i32, followed: Followed) -> RunOutcome {
        let mut warnings = Vec::new();
        let copied_back = match self.copy_back().await {
            Ok(done) => done,
            Err(err) => {
                warnings.push(format!(
                    "the workspace could not be copied back ({err}); the container {} keeps it",
                    self.record.name
                ));
                None
            }
        };
        let remove = self.record.remove_on_exit && warnings.is_empty();
        let (revoked_tokens, cleanup_warnings) = self.cleanup(remove).await;
        warnings.extend(cleanup_warnings);
        RunOutcome {
            exit_code: exit_code_of(&followed, code),
            timed_out: followed.timed_out,
            interrupted: followed.interrupted,
            rejected: followed.rejected,
            stopped_for_rejection: followed.stopped_for_rejection,
            removed: remove,
            copied_back,
            revoked_tokens,
            cleanup_warnings: warnings,
        }
    }

    /// The container's `/workspace`, copied out into the task directory and merged into
    /// the directory it came from; `None` when it came from none (a git URL).
    async fn copy_back(&self) -> Result<Option<crate::copy_back::CopiedBack>, String> {
        let Some(workspace) = self
            .record
            .remote
            .as_ref()
            .and_then(|r| r.workspace.clone())
        else {
            return Ok(None);
        };
        let staging = self.task_dir().join("copied-back");
        let _ = fs_err::remove_dir_all(&staging);
        terok_core::secure_fs::ensure_private_dir(&staging).map_err(|e| e.to_string())?;
        let copied = async {
            self.handles
                .runtime
                .copy_out(&self.record.name, terok_container_env::WORKSPACE, &staging)
                .await
                .map_err(|e| e.to_string())?;
            crate::copy_back::merge(&staging, &workspace).map_err(|e| e.to_string())
        }
        .await;
        let _ = fs_err::remove_dir_all(&staging);
        copied.map(Some)
    }

    /// Hands the output to `on_event` until it ends, stopping the container at the deadline,
    /// on `interrupt`, or after too many refusals of the credential.
    async fn follow(
        &self,
        stream: &mut LogStream,
        options: &WaitOptions,
        mut on_event: impl FnMut(TaskEvent<'_>),
        interrupt: impl Future<Output = ()>,
    ) -> Result<Followed, PodmanError> {
        let deadline = self.deadline;
        let timer = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timer);
        tokio::pin!(interrupt);
        let mut poll = tokio::time::interval(REJECTION_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // `podman run` may not have created the container yet when a stop comes (a signal
        // right after the launch): podman takes that stop as done, and the container would
        // start and run on. So while the output goes on after a stop, the stop is repeated.
        let mut again = tokio::time::interval(STOP_REPEAT);
        again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut followed = Followed::default();
        loop {
            let waiting = !followed.stopping();
            tokio::select! {
                line = stream.next() => match line {
                    Some(line) => on_event(TaskEvent::Line(&line)),
                    None => break,
                },
                () = &mut timer, if waiting => {
                    followed.timed_out = true;
                    on_event(TaskEvent::Stopping(StopReason::TimedOut));
                    self.stop_container().await?;
                }
                () = &mut interrupt, if waiting => {
                    followed.interrupted = true;
                    on_event(TaskEvent::Stopping(StopReason::Interrupted));
                    self.stop_container().await?;
                }
                _ = again.tick(), if !waiting => {
                    // Best effort: the first stop's error, if any, was reported already.
                    let _ = self.stop_container().await;
                }
                _ = poll.tick(), if waiting && self.record.vault => {
                    if let Some(rejection) = self.new_rejection(followed.rejected.as_ref()).await {
                        on_event(TaskEvent::CredentialRejected(&rejection));
                        let limit = options.stop_after_rejections;
                        followed.rejected = Some(rejection);
                        if followed.rejected.as_ref().is_some_and(|r| limit.is_some_and(|n| r.count >= n)) {
                            followed.stopped_for_rejection = true;
                            on_event(TaskEvent::Stopping(StopReason::CredentialRejected));
                            self.stop_container().await?;
                        }
                    }
                }
            }
        }
        Ok(followed)
    }

    async fn stop_container(&self) -> Result<(), PodmanError> {
        self.handles
            .runtime
            .stop(&self.record.name, STOP_GRACE_SECS)
            .await
    }

    /// The run was to end and its container would not stop: the tokens go all the same (what
    /// runs on must not keep the vault's credentials), and container, task and workspace stay
    /// as they are — a rootful workspace is given back by the `stop` or `rm` that ends the
    /// container, not while the agent may still write to it.
    async fn unstoppable(&self, source: PodmanError) -> ExecutorError {
        let (revoked_tokens, cleanup_warnings) = self.revoke_access(ContainerState::MayRun).await;
        ExecutorError::StopFailed(Box::new(crate::error::StopFailure {
            name: self.record.name.clone(),
            revoked_tokens,
            cleanup_warnings,
            work_in_container: self.record.remote.is_some(),
            source,
        }))
    }

    /// A refusal the vault saw since `known` (a failed question is no news: the run goes on).
    async fn new_rejection(&self, known: Option<&Rejection>) -> Option<Rejection> {
        let current = self
            .handles
            .vault
            .rejections(Some(&self.record.name))
            .await
            .ok()?;
        current
            .into_iter()
            .filter(|r| known.is_none_or(|k| k.provider != r.provider || k.count != r.count))
            .max_by_key(|r| r.count)
    }

    /// Whether the container exists and got as far as running its command.
    async fn container_ran(&self) -> bool {
        match self.handles.runtime.inspect(&self.record.name).await {
            Ok(Some(info)) => info.state.status != "created",
            _ => false,
        }
    }

    /// Perhaps the image went away behind terok's back: the next launch checks it properly.
    fn forget_image_check(&self) {
        if let Some(stamp) = &self.image_stamp {
            let _ = std::fs::remove_file(stamp);
        }
    }

    /// Revokes the tokens, remembers a clone, and with `remove` deletes container and task.
    async fn cleanup(&self, remove: bool) -> (usize, Vec<String>) {
        let (revoked, mut warnings) = self.revoke_access(ContainerState::Ended).await;
        if let Some(rootful) = &self.record.rootful
            && let Err(err) = rootful.give_back()
        {
            warnings.push(format!("could not give the workspace back: {err}"));
        }
        // A gated clone's origin is the task's gate: no use to a later launch.
        if let (Some(url), None) = (&self.record.git_url, &self.record.gate) {
            let workspace = self.handles.store.layout(&self.record.id).workspace();
            if let Err(err) =
                clone_cache::remember_clone(&self.handles.clone_cache, url, &workspace)
            {
                warnings.push(err.to_string());
            }
        }
        if remove {
            if let Err(err) = self.handles.runtime.remove(&self.record.name).await {
                warnings.push(format!("could not remove {}: {err}", self.record.name));
            }
            if let Err(err) = self.handles.store.remove(&self.record.id) {
                warnings.push(err.to_string());
            }
        }
        (revoked, warnings)
    }

    /// Revokes the run's vault tokens and its gate token: what the container could reach
    /// through terok ends here. Returns how many were revoked, and what could not be — and,
    /// for a container that has `Ended`, what will revoke it later.
    async fn revoke_access(&self, container: ContainerState) -> (usize, Vec<String>) {
        let name = &self.record.name;
        let later = |ended: &str| match container {
            ContainerState::Ended => format!(" ({ended})"),
            ContainerState::MayRun => " (it stays valid while the container runs)".to_owned(),
        };
        let mut warnings = Vec::new();
        let mut revoked = 0;
        if self.record.vault {
            match self.handles.vault.close(name).await {
                Ok(n) => revoked = n,
                Err(err) => warnings.push(format!(
                    "could not revoke the tokens of {name}: {err}{}",
                    later("the vault's sweep will")
                )),
            }
        }
        if self.record.gate.is_some() {
            // Its gate server sees the token gone and ends.
            match self.handles.gate_tokens.revoke_task(name) {
                Ok(n) => revoked += n,
                Err(err) => warnings.push(format!(
                    "could not revoke the gate token of {name}: {err}{}",
                    later("its gate server will when it sees the container stopped")
                )),
            }
        }
        (revoked, warnings)
    }
}

/// Whether a run's container is known to have ended when its access is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContainerState {
    /// It exited or was stopped.
    Ended,
    /// A stop failed, or its end is unknown: it may run on.
    MayRun,
}

/// The run's exit code: the agent's `code`, unless the host stopped it.
fn exit_code_of(followed: &Followed, code: i32) -> i32 {
    if followed.timed_out {
        TIMEOUT_EXIT_CODE
    } else if followed.interrupted {
        INTERRUPTED_EXIT_CODE
    } else if followed.stopped_for_rejection {
        CREDENTIAL_REJECTED_EXIT_CODE
    } else {
        code
    }
}
