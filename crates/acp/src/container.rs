//! Agents' ACP servers in a task container: `podman exec -i <container> terok-<agent>-acp` (or
//! the same over another [`ExecTransport`], such as SSH into a microVM guest), tagged with a
//! session mark in their environment so that the teardown can end every process the server
//! started inside the container — killing the local client alone would leave them running
//! there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use terok_podman::{ContainerRuntime, ExecOutput};
use tokio::process::Child;

use crate::error::AgentError;
use crate::link::{BoxFuture, Launcher, ServerProcess, Spawned};

/// The environment variable that marks one server's processes.
pub const SESSION_MARK: &str = "TEROK_ACP_SESSION";
/// How long a server may take to leave on its own once its stdin is closed.
const LEAVE_GRACE: Duration = Duration::from_secs(2);
/// How long the in-container reaper and the capability check may take.
const EXEC_LIMIT: Duration = Duration::from_secs(10);

/// Prints which of its arguments have a `terok-<agent>-acp` command.
const SERVABLE_SCRIPT: &str =
    r#"for a in "$@"; do command -v "terok-$a-acp" >/dev/null 2>&1 && echo "$a"; done; exit 0"#;

/// Ends every process whose environment carries the mark `$1`: SIGTERM, then SIGKILL after two
/// seconds for those still there. The reaper itself does not carry the mark.
const REAP_SCRIPT: &str = r#"mark="TEROK_ACP_SESSION=$1"
marked() {
  for p in /proc/[0-9]*; do
    tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qxF "$mark" && echo "${p#/proc/}"
  done
}
pids=$(marked)
[ -z "$pids" ] && exit 0
kill -TERM $pids 2>/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do
  sleep 0.2
  pids=$(marked)
  [ -z "$pids" ] && exit 0
done
kill -KILL $pids 2>/dev/null
exit 0"#;

/// How commands reach the inside of a task: `podman exec` ([`PodmanExec`]), or another way in
/// (SSH into a krun guest).
pub trait ExecTransport: Send + Sync + 'static {
    /// Starts `argv` inside with piped stdin and stdout.
    fn exec_piped(&self, argv: &[String]) -> Result<Child, String>;
    /// Runs `argv` inside to its end.
    fn exec<'a>(&'a self, argv: &'a [String]) -> BoxFuture<'a, Result<ExecOutput, String>>;
    /// What it reaches, for log lines.
    fn describe(&self) -> String;
}

impl std::fmt::Debug for dyn ExecTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExecTransport({})", self.describe())
    }
}

/// `podman exec` into one container.
pub struct PodmanExec<R: ContainerRuntime> {
    runtime: Arc<R>,
    container: String,
}

impl<R: ContainerRuntime> PodmanExec<R> {
    /// `podman exec` into `container`.
    pub fn new(runtime: Arc<R>, container: &str) -> Self {
        Self {
            runtime,
            container: container.to_owned(),
        }
    }
}

impl<R: ContainerRuntime> ExecTransport for PodmanExec<R> {
    fn exec_piped(&self, argv: &[String]) -> Result<Child, String> {
        self.runtime
            .exec_piped(&self.container, argv)
            .map_err(|err| err.to_string())
    }

    fn exec<'a>(&'a self, argv: &'a [String]) -> BoxFuture<'a, Result<ExecOutput, String>> {
        Box::pin(async move {
            self.runtime
                .exec(&self.container, argv)
                .await
                .map_err(|err| err.to_string())
        })
    }

    fn describe(&self) -> String {
        self.container.clone()
    }
}

/// Starts agents' ACP servers in one container.
pub struct ContainerLauncher {
    transport: Arc<dyn ExecTransport>,
    started: AtomicU64,
}

impl ContainerLauncher {
    /// A launcher for `container`, through `podman exec`.
    pub fn new<R: ContainerRuntime>(runtime: Arc<R>, container: &str) -> Self {
        Self::with_transport(Arc::new(PodmanExec::new(runtime, container)))
    }

    /// A launcher that reaches the task through `transport`.
    pub fn with_transport(transport: Arc<dyn ExecTransport>) -> Self {
        Self {
            transport,
            started: AtomicU64::new(0),
        }
    }
}

impl Launcher for ContainerLauncher {
    fn spawn(&self, agent: &str) -> Result<Spawned, AgentError> {
        let mark = format!(
            "{}-{}",
            std::process::id(),
            self.started.fetch_add(1, Ordering::Relaxed)
        );
        let argv = vec![
            "env".to_owned(),
            format!("{SESSION_MARK}={mark}"),
            format!("terok-{agent}-acp"),
        ];
        let spawn_error = |reason: String| AgentError::Spawn {
            agent: agent.to_owned(),
            reason,
        };
        let mut child = self.transport.exec_piped(&argv).map_err(spawn_error)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(spawn_error("the exec gave no pipes".to_owned()));
        };
        tracing::debug!(agent, mark = %mark, into = %self.transport.describe(), "acp: started an ACP server");
        Ok(Spawned {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            process: Box::new(ExecProcess {
                child,
                transport: Arc::clone(&self.transport),
                mark,
            }),
        })
    }

    fn servable<'a>(&'a self, agents: &'a [String]) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move {
            let mut argv = vec![
                "bash".to_owned(),
                "-c".to_owned(),
                SERVABLE_SCRIPT.to_owned(),
                "terok-acp".to_owned(),
            ];
            argv.extend(agents.iter().cloned());
            let asked = tokio::time::timeout(EXEC_LIMIT, self.transport.exec(&argv));
            match asked.await {
                Ok(Ok(out)) if out.status == 0 => Some(
                    out.stdout
                        .lines()
                        .map(str::trim)
                        .map(str::to_owned)
                        .collect(),
                ),
                other => {
                    tracing::warn!(
                        "acp: cannot ask the container which agents have an ACP server ({other:?}); trying all"
                    );
                    None
                }
            }
        })
    }
}

/// A server started through an [`ExecTransport`].
struct ExecProcess {
    child: Child,
    transport: Arc<dyn ExecTransport>,
    mark: String,
}

impl ServerProcess for ExecProcess {
    fn end(self: Box<Self>) -> BoxFuture<'static, ()> {
        let ExecProcess {
            mut child,
            transport,
            mark,
        } = *self;
        Box::pin(async move {
            let _ = tokio::time::timeout(LEAVE_GRACE, child.wait()).await;
            // Whatever the server started (a CLI, its tools) may outlive it: end all of it.
            let argv = vec![
                "bash".to_owned(),
                "-c".to_owned(),
                REAP_SCRIPT.to_owned(),
                "terok-acp-reap".to_owned(),
                mark,
            ];
            let reaped = tokio::time::timeout(EXEC_LIMIT, transport.exec(&argv)).await;
            if !matches!(reaped, Ok(Ok(_))) {
                tracing::warn!(into = %transport.describe(), "acp: could not reap an ACP server's processes: {reaped:?}");
            }
            end_child(&mut child).await;
        })
    }
}

/// Ends the local exec client: SIGTERM, then SIGKILL after two seconds.
async fn end_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Some(pid) = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(LEAVE_GRACE, child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}
