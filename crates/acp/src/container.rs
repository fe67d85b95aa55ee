//! Agents' ACP servers in a task container: `podman exec -i <container> terok-<agent>-acp`,
//! tagged with a session mark in their environment so that the teardown can end every process
//! the server started inside the container — killing the `podman exec` client alone would
//! leave them running there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use terok_podman::ContainerRuntime;
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

/// Starts agents' ACP servers in one container.
pub struct ContainerLauncher<R: ContainerRuntime> {
    runtime: Arc<R>,
    container: String,
    started: AtomicU64,
}

impl<R: ContainerRuntime> ContainerLauncher<R> {
    /// A launcher for `container`.
    pub fn new(runtime: Arc<R>, container: &str) -> Self {
        Self {
            runtime,
            container: container.to_owned(),
            started: AtomicU64::new(0),
        }
    }
}

impl<R: ContainerRuntime> Launcher for ContainerLauncher<R> {
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
        let mut child = self
            .runtime
            .exec_piped(&self.container, &argv)
            .map_err(|err| spawn_error(err.to_string()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(spawn_error("podman exec gave no pipes".to_owned()));
        };
        tracing::debug!(agent, mark = %mark, container = %self.container, "acp: started an ACP server");
        Ok(Spawned {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            process: Box::new(ExecProcess {
                child,
                runtime: Arc::clone(&self.runtime),
                container: self.container.clone(),
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
            let asked = tokio::time::timeout(EXEC_LIMIT, self.runtime.exec(&self.container, &argv));
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

/// A server started with `podman exec`.
struct ExecProcess<R: ContainerRuntime> {
    child: Child,
    runtime: Arc<R>,
    container: String,
    mark: String,
}

impl<R: ContainerRuntime> ServerProcess for ExecProcess<R> {
    fn end(self: Box<Self>) -> BoxFuture<'static, ()> {
        let ExecProcess {
            mut child,
            runtime,
            container,
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
            let reaped = tokio::time::timeout(EXEC_LIMIT, runtime.exec(&container, &argv)).await;
            if !matches!(reaped, Ok(Ok(_))) {
                tracing::warn!(container = %container, "acp: could not reap an ACP server's processes: {reaped:?}");
            }
            end_child(&mut child).await;
        })
    }
}

/// Ends the local `podman exec`: SIGTERM, then SIGKILL after two seconds.
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
