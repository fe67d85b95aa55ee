//! The container operations terok needs, as a trait with a CLI implementation and a fake.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use tokio::process::Child;
use tokio::sync::mpsc;

use crate::error::PodmanError;
use crate::spec::RunSpec;

/// Output of a command run inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command.
    pub status: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One line of container output (without its line break).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Stream.
    pub source: LogSource,
    /// Text, decoded lossily as UTF-8.
    pub line: String,
}

/// Lines of a container's output as they arrive; ends when the container's output ends.
#[derive(Debug)]
pub struct LogStream {
    rx: mpsc::Receiver<LogLine>,
    child: Option<Child>,
    scripted_exit: Option<i32>,
}

impl LogStream {
    /// A stream fed by `rx`, optionally owning the process that produces it.
    pub fn new(rx: mpsc::Receiver<LogLine>, child: Option<Child>) -> Self {
        Self {
            rx,
            child,
            scripted_exit: None,
        }
    }

    /// A stream that ends with a known exit code (for fakes).
    pub fn scripted(rx: mpsc::Receiver<LogLine>, exit_code: i32) -> Self {
        Self {
            rx,
            child: None,
            scripted_exit: Some(exit_code),
        }
    }

    /// Waits for the producing process and returns its exit code (a signal `n` counts as
    /// `128 + n`, as shells report it). For [`ContainerRuntime::run_streaming`] that is the
    /// container's exit code, or 125–127 when podman itself failed.
    pub async fn finish(mut self) -> Result<i32, PodmanError> {
        use std::os::unix::process::ExitStatusExt;
        if let Some(code) = self.scripted_exit {
            return Ok(code);
        }
        let Some(child) = self.child.as_mut() else {
            return Err(PodmanError::Output {
                command: "logs".to_owned(),
                detail: "this stream has no process to wait for".to_owned(),
            });
        };
        let status = child.wait().await.map_err(|e| PodmanError::Io {
            context: "waiting for podman".to_owned(),
            source: e,
        })?;
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1))
    }

    /// The next line, or `None` at the end.
    pub async fn next(&mut self) -> Option<LogLine> {
        self.rx.recv().await
    }

    /// Stops following (kills the `podman logs` process).
    pub async fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
    }
}

/// A container as `podman inspect` describes it (the subset terok uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image reference it was created from.
    pub image: String,
    /// Run state.
    pub state: ContainerState,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time (RFC 3339).
    pub created: String,
    /// The environment podman gives the container's processes (as created: what runs inside
    /// cannot change it).
    pub env: BTreeMap<String, String>,
}

/// Run state of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// `created`, `running`, `exited`, `stopped`, `paused` …
    pub status: String,
    /// Whether it runs now.
    pub running: bool,
    /// Exit code (meaningful once it exited).
    pub exit_code: i32,
    /// Main process id on the host (0 when not running).
    pub pid: i64,
}

/// A container as `podman ps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// State (`running`, `exited`, `created` …).
    pub state: String,
    /// Image reference.
    pub image: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time, seconds since the epoch.
    pub created_unix: i64,
}

/// An image as `podman image inspect` / `podman images` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Image id.
    pub id: String,
    /// Tags (`localhost/terok-l0:debian-bookworm`).
    pub tags: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// How many filesystem layers it has (`None` where podman's answer does not say).
    pub layers: Option<usize>,
    /// Its size in bytes, layers shared with other images included (`None` where podman's
    /// answer does not say).
    pub size: Option<u64>,
}

/// The most filesystem layers an image may have for a rootful container with a user mapping
/// (every task's) to start on these hosts: such a container's overlay mount lists each layer
/// and the kernel takes one page of mount options. Measured with podman 4.3 and runc: 27
/// layers start, 28 fail ("open …/merged/run/.containerenv: permission denied").
pub const MAX_MAPPED_LAYERS: usize = 27;

/// How many filesystem layers `dockerfile` adds: one per `RUN`, `COPY` and `ADD` (other
/// instructions only change the image's configuration). Instructions start their line;
/// indented lines continue the one before.
pub fn layer_steps(dockerfile: &str) -> usize {
    dockerfile
        .lines()
        .filter(|line| !line.starts_with(char::is_whitespace))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| matches!(word.to_ascii_uppercase().as_str(), "RUN" | "COPY" | "ADD"))
        .count()
}

/// An image to build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildSpec {
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// Tags to apply.
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// `--label` values.
    pub labels: Vec<(String, String)>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull=always`.
    pub pull_always: bool,
    /// `--squash`: the build's new layers become one.
    pub squash: bool,
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// The new image's id.
    pub image_id: String,
}

/// The container operations terok needs. [`crate::PodmanCli`] runs podman; [`crate::FakeRuntime`]
/// records calls for tests.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Creates (does not start) a container. The spec's environment is written to a 0600 env
    /// file in `env_dir`, which is deleted as soon as podman has read it.
    fn create(
        &self,
        spec: &RunSpec,
        env_dir: &Path,
    ) -> impl Future<Output = Result<String, PodmanError>> + Send;

    /// Starts a created or stopped container.
    fn start(&self, name: &str) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Starts a created or stopped container with the OCI hooks of `hooks_dirs` (podman reads
    /// hooks at every start, not when the container is created).
    fn start_hooked(
        &self,
        name: &str,
        hooks_dirs: &[PathBuf],
    ) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Runs `argv` on the host inside the network namespace of the running container `name`
    /// (for the firewall's tools, which the container neither has nor may use), with `stdin`
    /// piped in.
    fn in_netns(
        &self,
        name: &str,
        argv: &[String],
        stdin: Option<&str>,
    ) -> impl Future<Output = Result<ExecOutput, PodmanError>> + Send;

    /// Creates and starts a container and streams its output until it exits (`podman run` with
    /// stdout and stderr piped): one podman call from nothing to the agent's first line. The
    /// environment reaches podman through a pipe (`--env-file /dev/stdin`), so it is never on
    /// argv nor on disk. [`LogStream::finish`] then gives the container's exit code. The
    /// podman client runs in its own process group: a terminal's Ctrl-C reaches the caller,
    /// which decides what happens to the container.
    fn run_streaming(&self, spec: &RunSpec) -> Result<LogStream, PodmanError>;

    /// Runs a container in the foreground with this process's terminal attached (`podman run`
    /// with stdin, stdout and stderr inherited; for interactive logins) and returns its exit
    /// code. The environment goes through a 0600 env file in `env_dir`, as for
    /// [`Self::create`].
    fn run_attached(
        &self,
        spec: &RunSpec,
        env_dir: &Path,
    ) -> impl Future<Output = Result<i32, PodmanError>> + Send;

    /// Runs `argv` in a running container and collects its output.
    fn exec(
        &self,
        name: &str,
        argv: &[String],
    ) -> impl Future<Output = Result<ExecOutput, PodmanError>> + Send;

    /// Runs `argv` in a running container with stdin and stdout piped (for ACP).
    fn exec_piped(&self, name: &str, argv: &[String]) -> Result<Child, PodmanError>;

    /// Follows the container's output from the start until it ends.
    fn follow_logs(&self, name: &str) -> Result<LogStream, PodmanError>;

    /// Waits for the container to stop and returns its exit code.
    fn wait(&self, name: &str) -> impl Future<Output = Result<i32, PodmanError>> + Send;

    /// Inspects a container; `None` when it does not exist.
    fn inspect(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ContainerInfo>, PodmanError>> + Send;

    /// Lists containers (running or not) carrying `label` (`key` or `key=value`).
    fn list(
        &self,
        label: &str,
    ) -> impl Future<Output = Result<Vec<ContainerSummary>, PodmanError>> + Send;

    /// Stops a container, killing it after `timeout_secs`.
    fn stop(
        &self,
        name: &str,
        timeout_secs: u32,
    ) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Removes a container (forcefully; a missing one is not an error).
    fn remove(&self, name: &str) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Inspects an image; `None` when it does not exist.
    fn image_inspect(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, PodmanError>> + Send;

    /// Inspects several images; the answers come in the order of `references`. One podman
    /// call when they all exist.
    fn image_inspect_many(
        &self,
        references: &[String],
    ) -> impl Future<Output = Result<Vec<Option<ImageInfo>>, PodmanError>> + Send;

    /// Pulls `reference` from its registry.
    fn pull(&self, reference: &str) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Adds tag `target` to the image `source`.
    fn image_tag(
        &self,
        source: &str,
        target: &str,
    ) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Removes images; with `force`, also the containers using them.
    fn image_remove(
        &self,
        references: &[String],
        force: bool,
    ) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Images carrying `label` (`key` or `key=value`).
    fn images_with_label(
        &self,
        label: &str,
    ) -> impl Future<Output = Result<Vec<ImageInfo>, PodmanError>> + Send;

    /// The storage driver podman uses (`overlay`, `vfs`, …): with `vfs` every layer is a full
    /// copy, which makes a first build several times slower.
    fn storage_driver(&self) -> impl Future<Output = Result<String, PodmanError>> + Send;

    /// The engine podman talks to when it is not this host's own: the connection's name
    /// (`--connection`) or `CONTAINER_HOST`. A remote engine sees none of this host's paths or
    /// sockets, and runs no hook of this host.
    fn remote_engine(&self) -> Option<String>;

    /// Copies `host` (a file, or a directory's contents) to `container_path` in container
    /// `name`, created or stopped (`podman cp`): what a remote engine gets instead of a mount.
    fn copy_into(
        &self,
        name: &str,
        host: &Path,
        container_path: &str,
    ) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// Copies the contents of directory `container_path` of container `name` into the host
    /// directory `host` (`podman cp`).
    fn copy_out(
        &self,
        name: &str,
        container_path: &str,
        host: &Path,
    ) -> impl Future<Output = Result<(), PodmanError>> + Send;

    /// The gateway of podman network `network` (its first subnet's): the host's address on a
    /// bridge, which its containers reach. `None` when the network has no gateway.
    fn network_gateway(
        &self,
        network: &str,
    ) -> impl Future<Output = Result<Option<std::net::IpAddr>, PodmanError>> + Send;

    /// Builds an image, handing every output line to `on_line`.
    fn build(
        &self,
        spec: &BuildSpec,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<BuildOutput, PodmanError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_steps_count_the_instructions_that_add_files() {
        let dockerfile = "FROM base\n# RUN in a comment\nENV A=1\nRUN apt-get update \\\n run-parts /x \\\n && true\nCOPY a /a\nadd b /b\nUSER dev\nRUN true\n";
        assert_eq!(layer_steps(dockerfile), 4);
    }
}
