//! [`FakeRuntime`]: a [`ContainerRuntime`] that records every call and answers from a small
//! in-memory model (images, containers, scripted logs and exit codes), so logic above podman can
//! be tested without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use tokio::process::Child;
use tokio::sync::mpsc;

use crate::error::PodmanError;
use crate::runtime::*;
use crate::spec::RunSpec;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    /// `create`, with the argv podman would have received.
    Create {
        /// The spec.
        spec: Box<RunSpec>,
        /// `podman create` arguments (the env file path is `<env-file>`).
        argv: Vec<String>,
    },
    /// `start`.
    Start(String),
    /// `start` with OCI hook directories.
    StartHooked(String, Vec<PathBuf>),
    /// A command run in the container's network namespace from the host, with its stdin.
    InNetns {
        /// The container.
        name: String,
        /// The command.
        argv: Vec<String>,
        /// What it read on stdin.
        stdin: Option<String>,
    },
    /// `run` with the terminal attached.
    RunAttached {
        /// The spec.
        spec: Box<RunSpec>,
        /// `podman run` arguments.
        argv: Vec<String>,
    },
    /// `run` with the output streamed.
    Run {
        /// The spec.
        spec: Box<RunSpec>,
        /// `podman run` arguments (after `run --sig-proxy=false`).
        argv: Vec<String>,
    },
    /// `exec`.
    Exec(String, Vec<String>),
    /// `exec -i`.
    ExecPiped(String, Vec<String>),
    /// `logs -f`.
    Logs(String),
    /// `wait`.
    Wait(String),
    /// `inspect`.
    Inspect(String),
    /// `ps --filter label=…`.
    List(String),
    /// `stop`.
    Stop(String),
    /// `rm`.
    Remove(String),
    /// `image inspect`.
    ImageInspect(String),
    /// `tag`.
    ImageTag(String, String),
    /// `pull`.
    Pull(String),
    /// `image rm`.
    ImageRemove(Vec<String>),
    /// `images --filter label=…`.
    ImagesWithLabel(String),
    /// `info` for the storage driver.
    StorageDriver,
    /// `network inspect` for a gateway.
    NetworkGateway(String),
    /// `cp HOST NAME:PATH`.
    CopyInto(String, PathBuf, String),
    /// `cp NAME:PATH HOST`.
    CopyOut(String, String, PathBuf),
    /// `build`.
    Build(Box<BuildSpec>),
}

/// An operation [`FakeRuntime::fail`] can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FakeOp {
    /// `create`.
    Create,
    /// `start`.
    Start,
    /// `run` with the output streamed.
    Run,
    /// `run` with the terminal attached.
    RunAttached,
    /// `stop`.
    Stop,
    /// `rm`.
    Remove,
    /// `build`.
    Build,
}

/// Runs when an attached container "runs", with its spec (a test can write what the real
/// program would have left in its mounts).
type AttachedHook = Box<dyn Fn(&RunSpec) + Send + Sync>;

#[derive(Default)]
struct State {
    calls: Vec<FakeCall>,
    images: BTreeMap<String, ImageInfo>,
    containers: BTreeMap<String, ContainerInfo>,
    logs: BTreeMap<String, Vec<String>>,
    exit_codes: BTreeMap<String, i32>,
    builds: usize,
    failing: std::collections::BTreeSet<FakeOp>,
    podman_failures: BTreeMap<String, i32>,
    attached_hook: Option<AttachedHook>,
    /// Containers whose output stays open until they are stopped or removed.
    running_until_stopped: std::collections::BTreeSet<String>,
    open_streams: BTreeMap<String, mpsc::Sender<LogLine>>,
    /// The storage driver reported (`None`: `overlay`).
    storage_driver: Option<String>,
    /// The remote engine the fake pretends to be (`None`: this host's).
    remote: Option<String>,
    /// Files a test put in containers' `/workspace`, by container: what `copy_out` copies.
    workspace_files: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    /// Gateways of podman networks (`podman`: 10.88.0.1 unless set).
    gateways: BTreeMap<String, Option<std::net::IpAddr>>,
    /// What commands in a network namespace answer, in turn (then: success, no output).
    netns_answers: std::collections::VecDeque<ExecOutput>,
    /// Answers of `exec` by the command's first words (the longest match wins).
    exec_answers: Vec<(Vec<String>, ExecOutput)>,
    /// What builds print, after their first step (as podman's build log does).
    build_lines: Vec<String>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("calls", &self.calls.len())
            .field("containers", &self.containers.keys().collect::<Vec<_>>())
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

impl State {
    /// The error of a scripted failure of `op`, if one is scripted.
    fn failure(&self, op: FakeOp, what: &str) -> Result<(), PodmanError> {
        if self.failing.contains(&op) {
            return Err(PodmanError::Failed {
                command: what.to_owned(),
                status: "exit status: 125".to_owned(),
                stderr: format!("scripted failure of {op:?}"),
            });
        }
        Ok(())
    }
}

/// A recording, scripted stand-in for podman.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

impl FakeRuntime {
    /// An empty fake: no images, no containers.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.with_state(|s| s.calls.clone())
    }

    /// Number of `build` calls so far.
    pub fn build_count(&self) -> usize {
        self.with_state(|s| s.builds)
    }

    /// Makes the fake report `driver` as podman's storage driver (`overlay` by default).
    pub fn set_storage_driver(&self, driver: &str) {
        self.with_state(|s| s.storage_driver = Some(driver.to_owned()));
    }

    /// Makes the fake a remote engine (`Some(CONTAINER_HOST)`) or this host's (`None`).
    pub fn set_remote(&self, engine: Option<&str>) {
        self.with_state(|s| s.remote = engine.map(str::to_owned));
    }

    /// What `copy_out` of container `name`'s `/workspace` finds there: `(relative path,
    /// contents)` (a path ending in `/` is a directory).
    pub fn set_workspace_files(&self, name: &str, files: &[(&str, &[u8])]) {
        self.with_state(|s| {
            s.workspace_files.insert(
                name.to_owned(),
                files
                    .iter()
                    .map(|(path, bytes)| ((*path).to_owned(), bytes.to_vec()))
                    .collect(),
            );
        });
    }

    /// Makes the fake report `gateway` as podman network `network`'s.
    pub fn set_network_gateway(&self, network: &str, gateway: Option<std::net::IpAddr>) {
        self.with_state(|s| {
            s.gateways.insert(network.to_owned(), gateway);
        });
    }

    /// Adds an image under `reference` with `labels`.
    pub fn add_image(&self, reference: &str, labels: &[(&str, &str)]) {
        self.with_state(|s| {
            let id = format!("fakeimage{}", s.images.len());
            s.images.insert(
                reference.to_owned(),
                ImageInfo {
                    id,
                    tags: vec![reference.to_owned()],
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    layers: None,
                    size: Some(1 << 20),
                },
            );
        });
    }

    /// Makes the container `name` print `lines` and exit with `code`.
    pub fn script_container(&self, name: &str, lines: &[&str], code: i32) {
        self.with_state(|s| {
            s.logs.insert(
                name.to_owned(),
                lines.iter().map(|l| (*l).to_owned()).collect(),
            );
            s.exit_codes.insert(name.to_owned(), code);
        });
    }

    /// Makes the container `name` print `lines` and then keep running (its output open)
    /// until it is stopped or removed; it then exits with 137, as a killed container does.
    pub fn script_running(&self, name: &str, lines: &[&str]) {
        self.script_container(name, lines, 137);
        self.with_state(|s| s.running_until_stopped.insert(name.to_owned()));
    }

    /// Sets `var` to `value` in the environment of the container `name` (as though it had
    /// been created with it).
    pub fn set_container_env(&self, name: &str, var: &str, value: &str) {
        self.with_state(|s| {
            if let Some(info) = s.containers.get_mut(name) {
                info.env.insert(var.to_owned(), value.to_owned());
            }
        });
    }

    /// Makes every `exec` whose command starts with `argv_start` answer `answer` (the
    /// longest scripted start wins; unscripted commands succeed silently).
    pub fn answer_exec(&self, argv_start: &[&str], answer: ExecOutput) {
        self.with_state(|s| {
            s.exec_answers
                .push((argv_start.iter().map(|a| (*a).to_owned()).collect(), answer));
        });
    }

    /// Queues the answer of the next command run in a container's network namespace.
    pub fn answer_in_netns(&self, answer: ExecOutput) {
        self.with_state(|s| s.netns_answers.push_back(answer));
    }

    /// Makes every later build print `lines` (after a first `STEP 1/1: FROM fake`).
    pub fn print_in_builds(&self, lines: &[&str]) {
        self.with_state(|s| s.build_lines = lines.iter().map(|l| (*l).to_owned()).collect());
    }

    /// Makes every later build fail.
    pub fn fail_builds(&self) {
        self.fail(FakeOp::Build);
    }

    /// Makes every later `op` fail (as podman does, with exit status 125).
    pub fn fail(&self, op: FakeOp) {
        self.with_state(|s| s.failing.insert(op));
    }

    /// Undoes [`Self::fail`] for `op`.
    pub fn heal(&self, op: FakeOp) {
        self.with_state(|s| s.failing.remove(&op));
    }

    /// Makes `podman run` of the container `name` fail with `code` before the container
    /// exists (125: podman's own error, 126: cannot invoke, 127: not found).
    pub fn script_podman_failure(&self, name: &str, code: i32) {
        self.with_state(|s| s.podman_failures.insert(name.to_owned(), code));
    }

    /// Calls `hook` with the spec of every attached run (before it "exits").
    pub fn on_run_attached(&self, hook: impl Fn(&RunSpec) + Send + Sync + 'static) {
        self.with_state(|s| s.attached_hook = Some(Box::new(hook)));
    }

    /// Names of the containers that exist now.
    pub fn containers(&self) -> Vec<String> {
        self.with_state(|s| s.containers.keys().cloned().collect())
    }

    fn record(&self, call: FakeCall) {
        self.with_state(|s| s.calls.push(call));
    }
}

impl ContainerRuntime for FakeRuntime {
    async fn create(&self, spec: &RunSpec, _env_dir: &Path) -> Result<String, PodmanError> {
        spec.validate()?;
        let argv = spec.create_args(Path::new("<env-file>"));
        self.record(FakeCall::Create {
            spec: Box::new(spec.clone()),
            argv,
        });
        self.with_state(|s| {
            s.failure(FakeOp::Create, "create")?;
            if s.containers.contains_key(&spec.name) {
                return Err(PodmanError::Failed {
                    command: "create".to_owned(),
                    status: "exit status: 125".to_owned(),
                    stderr: format!("the container name \"{}\" is already in use", spec.name),
                });
            }
            let id = format!("fakecontainer{}", s.containers.len());
            s.containers.insert(
                spec.name.clone(),
                ContainerInfo {
                    id: id.clone(),
                    name: spec.name.clone(),
                    image: spec.image.clone(),
                    state: ContainerState {
                        status: "created".to_owned(),
                        running: false,
                        exit_code: 0,
                        pid: 0,
                    },
                    labels: spec.labels.iter().cloned().collect(),
                    created: String::new(),
                    env: spec.env.iter().cloned().collect(),
                },
            );
            Ok(id)
        })
    }

    async fn start(&self, name: &str) -> Result<(), PodmanError> {
        self.start_hooked(name, &[]).await
    }

    async fn in_netns(
        &self,
        name: &str,
        argv: &[String],
        stdin: Option<&str>,
    ) -> Result<ExecOutput, PodmanError> {
        self.record(FakeCall::InNetns {
            name: name.to_owned(),
            argv: argv.to_vec(),
            stdin: stdin.map(str::to_owned),
        });
        self.with_state(|s| {
            if !s.containers.get(name).is_some_and(|c| c.state.running) {
                return Err(PodmanError::NotRunning(name.to_owned()));
            }
            Ok(s.netns_answers.pop_front().unwrap_or(ExecOutput {
                status: 0,
                stdout: String::new(),
                stderr: String::new(),
            }))
        })
    }

    async fn start_hooked(&self, name: &str, hooks_dirs: &[PathBuf]) -> Result<(), PodmanError> {
        self.record(if hooks_dirs.is_empty() {
            FakeCall::Start(name.to_owned())
        } else {
            FakeCall::StartHooked(name.to_owned(), hooks_dirs.to_vec())
        });
        self.with_state(|s| s.failure(FakeOp::Start, "start"))?;
        self.with_state(|s| match s.containers.get_mut(name) {
            Some(c) => {
                c.state.status = "running".to_owned();
                c.state.running = true;
                Ok(())
            }
            None => Err(PodmanError::Failed {
                command: format!("start {name}"),
                status: "exit status: 125".to_owned(),
                stderr: format!("no such container {name}"),
            }),
        })
    }

    fn run_streaming(&self, spec: &RunSpec) -> Result<LogStream, PodmanError> {
        spec.validate()?;
        let argv = spec.create_args(Path::new("/dev/stdin"));
        self.record(FakeCall::Run {
            spec: Box::new(spec.clone()),
            argv,
        });
        self.with_state(|s| s.failure(FakeOp::Run, "run"))?;
        if let Some(code) = self.with_state(|s| s.podman_failures.get(&spec.name).copied()) {
            let (_tx, rx) = mpsc::channel(1);
            return Ok(LogStream::scripted(rx, code));
        }
        let (lines, code, keeps_running) = self.with_state(|s| {
            let lines = s.logs.get(&spec.name).cloned().unwrap_or_default();
            let code = s.exit_codes.get(&spec.name).copied().unwrap_or(0);
            let keeps_running = s.running_until_stopped.contains(&spec.name);
            let id = format!("fakecontainer{}", s.containers.len());
            s.containers.insert(
                spec.name.clone(),
                ContainerInfo {
                    id,
                    name: spec.name.clone(),
                    image: spec.image.clone(),
                    state: ContainerState {
                        status: if keeps_running { "running" } else { "exited" }.to_owned(),
                        running: keeps_running,
                        exit_code: code,
                        pid: 0,
                    },
                    labels: spec.labels.iter().cloned().collect(),
                    created: String::new(),
                    env: spec.env.iter().cloned().collect(),
                },
            );
            (lines, code, keeps_running)
        });
        let (tx, rx) = mpsc::channel(lines.len().max(1));
        for line in lines {
            let _ = tx.try_send(LogLine {
                source: LogSource::Stdout,
                line,
            });
        }
        if keeps_running {
            self.with_state(|s| s.open_streams.insert(spec.name.clone(), tx));
        }
        Ok(LogStream::scripted(rx, code))
    }

    async fn run_attached(&self, spec: &RunSpec, _env_dir: &Path) -> Result<i32, PodmanError> {
        spec.validate()?;
        let argv = spec.create_args(Path::new("<env-file>"));
        self.record(FakeCall::RunAttached {
            spec: Box::new(spec.clone()),
            argv,
        });
        self.with_state(|s| {
            s.failure(FakeOp::RunAttached, "run")?;
            if let Some(hook) = &s.attached_hook {
                hook(spec);
            }
            Ok(s.exit_codes.get(&spec.name).copied().unwrap_or(0))
        })
    }

    async fn exec(&self, name: &str, argv: &[String]) -> Result<ExecOutput, PodmanError> {
        self.record(FakeCall::Exec(name.to_owned(), argv.to_vec()));
        Ok(self.with_state(|s| {
            s.exec_answers
                .iter()
                .filter(|(start, _)| argv.starts_with(start))
                .max_by_key(|(start, _)| start.len())
                .map(|(_, answer)| answer.clone())
                .unwrap_or(ExecOutput {
                    status: 0,
                    stdout: String::new(),
                    stderr: String::new(),
                })
        }))
    }

    fn exec_piped(&self, name: &str, argv: &[String]) -> Result<Child, PodmanError> {
        self.record(FakeCall::ExecPiped(name.to_owned(), argv.to_vec()));
        // Runs the command on the host instead of in a container.
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| PodmanError::InvalidSpec("empty exec command".to_owned()))?;
        let mut cmd = tokio::process::Command::new(program);
        for var in terok_core::env::SECRET_VARS {
            cmd.env_remove(var);
        }
        cmd.args(rest)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| PodmanError::Io {
                context: format!("fake exec of {program}"),
                source: e,
            })
    }

    fn follow_logs(&self, name: &str) -> Result<LogStream, PodmanError> {
        self.record(FakeCall::Logs(name.to_owned()));
        let lines = self.with_state(|s| s.logs.get(name).cloned().unwrap_or_default());
        let (tx, rx) = mpsc::channel(lines.len().max(1));
        for line in lines {
            let _ = tx.try_send(LogLine {
                source: LogSource::Stdout,
                line,
            });
        }
        Ok(LogStream::new(rx, None))
    }

    async fn wait(&self, name: &str) -> Result<i32, PodmanError> {
        self.record(FakeCall::Wait(name.to_owned()));
        self.with_state(|s| {
            let code = s.exit_codes.get(name).copied().unwrap_or(0);
            if let Some(c) = s.containers.get_mut(name) {
                c.state.status = "exited".to_owned();
                c.state.running = false;
                c.state.exit_code = code;
            }
            Ok(code)
        })
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, PodmanError> {
        self.record(FakeCall::Inspect(name.to_owned()));
        Ok(self.with_state(|s| s.containers.get(name).cloned()))
    }

    async fn list(&self, label: &str) -> Result<Vec<ContainerSummary>, PodmanError> {
        self.record(FakeCall::List(label.to_owned()));
        let (key, value) = label
            .split_once('=')
            .map_or((label, None), |(k, v)| (k, Some(v)));
        Ok(self.with_state(|s| {
            s.containers
                .values()
                .filter(|c| {
                    c.labels
                        .get(key)
                        .is_some_and(|v| value.is_none_or(|want| v == want))
                })
                .map(|c| ContainerSummary {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    state: c.state.status.clone(),
                    image: c.image.clone(),
                    labels: c.labels.clone(),
                    created_unix: 0,
                })
                .collect()
        }))
    }

    async fn stop(&self, name: &str, _timeout_secs: u32) -> Result<(), PodmanError> {
        self.record(FakeCall::Stop(name.to_owned()));
        self.with_state(|s| {
            s.failure(FakeOp::Stop, "stop")?;
            s.open_streams.remove(name);
            if let Some(c) = s.containers.get_mut(name) {
                c.state.status = "exited".to_owned();
                c.state.running = false;
            }
            Ok(())
        })
    }

    async fn remove(&self, name: &str) -> Result<(), PodmanError> {
        self.record(FakeCall::Remove(name.to_owned()));
        self.with_state(|s| {
            s.failure(FakeOp::Remove, "rm")?;
            s.open_streams.remove(name);
            s.containers.remove(name);
            Ok(())
        })
    }

    async fn image_inspect(&self, reference: &str) -> Result<Option<ImageInfo>, PodmanError> {
        self.record(FakeCall::ImageInspect(reference.to_owned()));
        Ok(self.with_state(|s| s.images.get(reference).cloned()))
    }

    async fn image_inspect_many(
        &self,
        references: &[String],
    ) -> Result<Vec<Option<ImageInfo>>, PodmanError> {
        let mut out = Vec::with_capacity(references.len());
        for reference in references {
            out.push(self.image_inspect(reference).await?);
        }
        Ok(out)
    }

    async fn pull(&self, reference: &str) -> Result<(), PodmanError> {
        self.record(FakeCall::Pull(reference.to_owned()));
        self.add_image(reference, &[]);
        Ok(())
    }

    async fn image_tag(&self, source: &str, target: &str) -> Result<(), PodmanError> {
        self.record(FakeCall::ImageTag(source.to_owned(), target.to_owned()));
        self.with_state(|s| match s.images.get(source).cloned() {
            Some(mut image) => {
                image.tags.push(target.to_owned());
                s.images.insert(target.to_owned(), image);
                Ok(())
            }
            None => Err(PodmanError::Failed {
                command: format!("tag {source} {target}"),
                status: "exit status: 125".to_owned(),
                stderr: format!("{source}: image not known"),
            }),
        })
    }

    async fn image_remove(&self, references: &[String], _force: bool) -> Result<(), PodmanError> {
        self.record(FakeCall::ImageRemove(references.to_vec()));
        self.with_state(|s| {
            for r in references {
                s.images.remove(r);
                s.images.retain(|_, img| &img.id != r);
            }
        });
        Ok(())
    }

    async fn storage_driver(&self) -> Result<String, PodmanError> {
        self.record(FakeCall::StorageDriver);
        Ok(self.with_state(|s| s.storage_driver.clone().unwrap_or_else(|| "overlay".into())))
    }

    fn remote_engine(&self) -> Option<String> {
        self.with_state(|s| s.remote.clone())
    }

    async fn copy_into(
        &self,
        name: &str,
        host: &Path,
        container_path: &str,
    ) -> Result<(), PodmanError> {
        self.record(FakeCall::CopyInto(
            name.to_owned(),
            host.to_path_buf(),
            container_path.to_owned(),
        ));
        Ok(())
    }

    async fn copy_out(
        &self,
        name: &str,
        container_path: &str,
        host: &Path,
    ) -> Result<(), PodmanError> {
        self.record(FakeCall::CopyOut(
            name.to_owned(),
            container_path.to_owned(),
            host.to_path_buf(),
        ));
        let files = self.with_state(|s| s.workspace_files.get(name).cloned().unwrap_or_default());
        for (path, bytes) in files {
            let target = host.join(&path);
            let made = if path.ends_with('/') {
                std::fs::create_dir_all(&target)
            } else {
                terok_core::secure_fs::write_atomic(&target, &bytes, 0o644)
                    .map_err(std::io::Error::other)
            };
            made.map_err(|source| PodmanError::Io {
                context: format!("fake copy_out of {path}"),
                source,
            })?;
        }
        Ok(())
    }

    async fn network_gateway(
        &self,
        network: &str,
    ) -> Result<Option<std::net::IpAddr>, PodmanError> {
        self.record(FakeCall::NetworkGateway(network.to_owned()));
        match self.with_state(|s| s.gateways.get(network).copied()) {
            Some(gateway) => Ok(gateway),
            None if network == "podman" => Ok(Some(std::net::IpAddr::from([10, 88, 0, 1]))),
            None => Err(PodmanError::Failed {
                command: format!("network inspect {network}"),
                status: "exit status: 125".to_owned(),
                stderr: format!("network {network}: unable to find network"),
            }),
        }
    }

    async fn images_with_label(&self, label: &str) -> Result<Vec<ImageInfo>, PodmanError> {
        self.record(FakeCall::ImagesWithLabel(label.to_owned()));
        let key = label.split_once('=').map_or(label, |(k, _)| k);
        Ok(self.with_state(|s| {
            let mut seen = std::collections::BTreeSet::new();
            s.images
                .values()
                .filter(|img| img.labels.contains_key(key) && seen.insert(img.id.clone()))
                .cloned()
                .collect()
        }))
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<BuildOutput, PodmanError> {
        self.record(FakeCall::Build(Box::new(spec.clone())));
        on_line("STEP 1/1: FROM fake");
        for line in self.with_state(|s| s.build_lines.clone()) {
            on_line(&line);
        }
        // As podman would count them: the base's layers (one when the fake does not know
        // them) and one per step that adds files.
        let steps = std::fs::read_to_string(&spec.dockerfile)
            .map(|text| crate::runtime::layer_steps(&text))
            .unwrap_or(0);
        let base = spec
            .build_args
            .iter()
            .find(|(name, _)| name == "BASE_IMAGE")
            .map(|(_, value)| value.clone());
        self.with_state(|s| {
            s.builds += 1;
            s.failure(FakeOp::Build, "build")?;
            let id = format!("fakebuild{}", s.builds);
            let below = base
                .as_deref()
                .and_then(|b| {
                    s.images
                        .get(b)
                        .or_else(|| s.images.get(b.trim_start_matches("localhost/")))
                })
                .and_then(|img| img.layers)
                .unwrap_or(1);
            let layers = Some(if spec.squash {
                below + 1
            } else {
                below + steps
            });
            for tag in &spec.tags {
                s.images.insert(
                    tag.clone(),
                    ImageInfo {
                        id: id.clone(),
                        tags: spec.tags.clone(),
                        labels: spec.labels.iter().cloned().collect(),
                        layers,
                        size: Some(1 << 20),
                    },
                );
            }
            Ok(BuildOutput { image_id: id })
        })
    }
}
