//! [`PodmanCli`]: the [`ContainerRuntime`] that runs the `podman` command line
//! (docs/decisions.md#2.1: exact flag parity with the Python terok-executor, podman 4.x and 5.x,
//! no API socket needed).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::error::PodmanError;
use crate::output;
use crate::runtime::*;
use crate::spec::{RunSpec, env_file_contents, hooks_dir_args};

/// Image inspections remembered by reference (`None`: podman said it does not exist).
type ImageMemo = Arc<Mutex<HashMap<String, Option<ImageInfo>>>>;

/// Runs podman. A remote engine is used when `connection` is set (`podman --connection NAME`)
/// or when `CONTAINER_HOST` is in the environment (podman reads it itself).
#[derive(Debug, Clone)]
pub struct PodmanCli {
    program: OsString,
    connection: Option<String>,
    recorder: Option<Arc<Mutex<Vec<Vec<String>>>>>,
    image_memo: Option<ImageMemo>,
}

impl Default for PodmanCli {
    fn default() -> Self {
        Self::new()
    }
}

impl PodmanCli {
    /// Runs `podman` from PATH.
    pub fn new() -> Self {
        Self {
            program: OsString::from("podman"),
            connection: None,
            recorder: None,
            image_memo: None,
        }
    }

    /// Remembers image inspections for the life of this value (and its clones): a command
    /// that checks the same images twice (preflight, then the build check) asks podman once.
    /// Builds, tags and removals made through it forget everything. For short-lived
    /// processes; a daemon would miss changes made by others.
    pub fn with_image_memo(mut self) -> Self {
        self.image_memo = Some(Arc::default());
        self
    }

    fn memo_get(&self, reference: &str) -> Option<Option<ImageInfo>> {
        self.image_memo
            .as_ref()
            .and_then(|m| m.lock().ok().and_then(|m| m.get(reference).cloned()))
    }

    fn memo_put(&self, reference: &str, info: &Option<ImageInfo>) {
        if let Some(memo) = &self.image_memo
            && let Ok(mut memo) = memo.lock()
        {
            memo.insert(reference.to_owned(), info.clone());
        }
    }

    fn memo_clear(&self) {
        if let Some(memo) = &self.image_memo
            && let Ok(mut memo) = memo.lock()
        {
            memo.clear();
        }
    }

    /// Uses another podman binary.
    pub fn with_program(mut self, program: impl Into<OsString>) -> Self {
        self.program = program.into();
        self
    }

    /// Talks to the named remote connection (`podman system connection list`).
    pub fn with_connection(mut self, connection: Option<String>) -> Self {
        self.connection = connection;
        self
    }

    /// Records the arguments of every podman invocation (for tests that check what ran).
    pub fn recording(mut self) -> Self {
        self.recorder = Some(Arc::default());
        self
    }

    /// The arguments of every invocation so far, when recording.
    pub fn recorded(&self) -> Vec<Vec<String>> {
        self.recorder
            .as_ref()
            .and_then(|r| r.lock().ok().map(|v| v.clone()))
            .unwrap_or_default()
    }

    fn command(&self, args: &[String]) -> Command {
        if let Some(recorder) = &self.recorder
            && let Ok(mut calls) = recorder.lock()
        {
            calls.push(args.to_vec());
        }
        let mut cmd = Command::new(&self.program);
        if let Some(connection) = &self.connection {
            cmd.arg("--connection").arg(connection);
        }
        for var in terok_core::env::SECRET_VARS {
            cmd.env_remove(var);
        }
        cmd.args(args).kill_on_drop(true).stdin(Stdio::null());
        cmd
    }

    fn spawn_error(&self, err: std::io::Error, args: &[String]) -> PodmanError {
        if err.kind() == std::io::ErrorKind::NotFound {
            PodmanError::NotInstalled {
                program: self.program.to_string_lossy().into_owned(),
            }
        } else {
            PodmanError::Io {
                context: format!(
                    "cannot run podman {}",
                    args.first().map_or("", String::as_str)
                ),
                source: err,
            }
        }
    }

    /// Runs podman with `args` and returns its stdout; a non-zero exit is an error with stderr.
    async fn run(&self, args: Vec<String>) -> Result<String, PodmanError> {
        let output = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| self.spawn_error(e, &args))?;
        if output.status.success() {
            report_warnings(&args, &output.stderr);
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(failed(
                &args,
                &output.status.to_string(),
                &String::from_utf8_lossy(&output.stderr),
            ))
        }
    }

    /// Like [`Self::run`] but `Ok(None)` when podman says the object does not exist.
    async fn run_maybe_missing(&self, args: Vec<String>) -> Result<Option<String>, PodmanError> {
        match self.run(args).await {
            Ok(out) => Ok(Some(out)),
            Err(PodmanError::Failed { stderr, .. }) if is_no_such(&stderr) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// Passes on what podman warned about while starting, stopping or removing a container
/// succeeded (a network that was not torn down, a hook that failed): logged, so a later
/// failure can be traced back to it. The usual note that a stop fell back to SIGKILL is left
/// out.
fn report_warnings(args: &[String], stderr: &[u8]) {
    // The verbs that set a container's network up or tear it down (after options such as
    // `--hooks-dir PATH`).
    let Some(verb) = args
        .iter()
        .map(String::as_str)
        .find(|a| matches!(*a, "start" | "stop" | "rm"))
    else {
        return;
    };
    for line in String::from_utf8_lossy(stderr).lines() {
        let warned = line.contains("level=warning") || line.contains("level=error");
        if warned && !line.contains("resorting to SIGKILL") {
            tracing::warn!(
                "podman {verb}: {}",
                terok_core::text::printable(line.trim())
            );
        }
    }
}

/// Runs `argv` on the host inside the network namespace of the running container `name`:
/// through `nsenter` as root; rootless, inside podman's user namespace (`podman unshare`),
/// which owns the container's network namespace.
async fn in_netns(
    cli: &PodmanCli,
    name: &str,
    argv: &[String],
    stdin: Option<&str>,
) -> Result<ExecOutput, PodmanError> {
    use tokio::io::AsyncWriteExt;
    if cli.connection.is_some() || std::env::var_os("CONTAINER_HOST").is_some() {
        return Err(PodmanError::NeedsLocal(
            "entering a container's network namespace".to_owned(),
        ));
    }
    let info = cli
        .inspect(name)
        .await?
        .filter(|info| info.state.running && info.state.pid > 0)
        .ok_or_else(|| PodmanError::NotRunning(name.to_owned()))?;
    let mut args = vec![
        format!("--net=/proc/{}/ns/net", info.state.pid),
        "--".to_owned(),
    ];
    args.extend(argv.iter().cloned());
    let mut command = if terok_core::env::HostEnv::from_process().is_root() {
        let mut command = Command::new("nsenter");
        for var in terok_core::env::SECRET_VARS {
            command.env_remove(var);
        }
        command.args(&args).kill_on_drop(true);
        command
    } else {
        let mut full = strings(&["unshare", "nsenter"]);
        full.extend(args);
        cli.command(&full)
    };
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PodmanError::Io {
            context: "cannot run nsenter".to_owned(),
            source: e,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| PodmanError::Io {
                context: "cannot write to the command in the network namespace".to_owned(),
                source: e,
            })?;
        drop(pipe);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| PodmanError::Io {
            context: "waiting for the command in the network namespace".to_owned(),
            source: e,
        })?;
    Ok(ExecOutput {
        status: output.status.code().unwrap_or(128 + 9),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn failed(args: &[String], status: &str, stderr: &str) -> PodmanError {
    let mut stderr = stderr.trim().to_owned();
    if stderr.len() > 4000 {
        let cut = stderr.len() - 4000;
        let cut = (cut..stderr.len())
            .find(|i| stderr.is_char_boundary(*i))
            .unwrap_or(cut);
        stderr = format!("…{}", &stderr[cut..]);
    }
    PodmanError::Failed {
        command: args
            .iter()
            .filter(|a| *a != "--")
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        status: status.to_owned(),
        stderr,
    }
}

fn is_no_such(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no such container")
        || s.contains("no such image")
        || s.contains("no such object")
        || s.contains("image not known")
        || s.contains("failed to find image")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Removes the env file when the create call is done, whatever happened.
struct EnvFileGuard(PathBuf);

impl EnvFileGuard {
    /// Writes `spec`'s environment to a 0600 file in the private directory `env_dir`.
    fn write(spec: &RunSpec, env_dir: &Path) -> Result<Self, PodmanError> {
        let io = |context: &str, e: terok_core::secure_fs::SecureFsError| PodmanError::Io {
            context: context.to_owned(),
            source: std::io::Error::other(e.to_string()),
        };
        terok_core::secure_fs::ensure_private_dir(env_dir)
            .map_err(|e| io("cannot prepare the env-file directory", e))?;
        let path = env_dir.join(format!(".{}.env", spec.name));
        terok_core::secure_fs::write_sensitive(
            &path,
            env_file_contents(&spec.full_env()).as_bytes(),
        )
        .map_err(|e| io("cannot write the env file", e))?;
        Ok(Self(path))
    }
}

impl Drop for EnvFileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The most of a command's stdout, and of its stderr, kept by [`bounded_output`]: a container
/// (or a krun guest) cannot fill the host's memory through an answer.
pub const OUTPUT_LIMIT: u64 = 1024 * 1024;

/// `command` run to its end with stdin closed, at most `limit` bytes kept of each of its
/// stdout and stderr (the rest is read and dropped); it is killed if the future is dropped.
pub async fn bounded_output(
    mut command: tokio::process::Command,
    limit: u64,
) -> std::io::Result<ExecOutput> {
    use tokio::io::{AsyncRead, AsyncReadExt};
    async fn keep(pipe: Option<impl AsyncRead + Unpin>, limit: u64) -> Vec<u8> {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = (&mut pipe).take(limit).read_to_end(&mut kept).await;
            let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
        }
        kept
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (stdout, stderr) = tokio::join!(
        keep(child.stdout.take(), limit),
        keep(child.stderr.take(), limit)
    );
    let status = child.wait().await?;
    Ok(ExecOutput {
        status: status.code().unwrap_or(255),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// The longest line passed on whole: a container that never ends a line cannot make the host
/// hold more than this of it.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// The lines `child` writes to its piped stdout and stderr (each cut at [`MAX_LINE_BYTES`]),
/// ending when both close; [`LogStream::finish`] returns its exit code. Must be called within
/// a tokio runtime.
pub fn stream_child(mut child: Child) -> LogStream {
    let (tx, rx) = mpsc::channel(256);
    if let Some(stdout) = child.stdout.take() {
        pump_lines(stdout, LogSource::Stdout, tx.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        pump_lines(stderr, LogSource::Stderr, tx);
    }
    LogStream::new(rx, Some(child))
}

/// Reads `source` line by line into `tx`; a line over [`MAX_LINE_BYTES`] is cut there, marked,
/// and the rest of it skipped.
fn pump_lines<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    source: LogSource,
    tx: mpsc::Sender<LogLine>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        while let Some(line) = read_bounded_line(&mut reader, MAX_LINE_BYTES).await {
            if tx.send(LogLine { source, line }).await.is_err() {
                break;
            }
        }
    });
}

/// The next line of `reader` without its line ending, at most `limit` bytes of it (a longer
/// one ends with a note of how much was cut); `None` at the end or on an error.
async fn read_bounded_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Option<String> {
    let mut kept = Vec::new();
    let mut cut = 0usize;
    let mut saw_any = false;
    loop {
        let available = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(bytes) => bytes,
        };
        saw_any = true;
        let (chunk, ended) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        cut += chunk.len().saturating_sub(room);
        let used = chunk.len() + usize::from(ended);
        reader.consume(used);
        if ended {
            break;
        }
    }
    if !saw_any {
        return None;
    }
    if kept.ends_with(b"\r") {
        kept.pop();
    }
    let mut line = String::from_utf8_lossy(&kept).into_owned();
    if cut > 0 {
        line.push_str(&format!(" … [{cut} more bytes of this line not shown]"));
    }
    Some(line)
}

impl ContainerRuntime for PodmanCli {
    async fn create(&self, spec: &RunSpec, env_dir: &Path) -> Result<String, PodmanError> {
        spec.validate()?;
        let env_file = EnvFileGuard::write(spec, env_dir)?;
        let env_path = env_file.0.clone();
        let mut args = spec.global_args();
        args.push("create".to_owned());
        args.extend(spec.create_args(&env_path));
        let out = self.run(args).await?;
        Ok(out.trim().to_owned())
    }

    async fn start(&self, name: &str) -> Result<(), PodmanError> {
        self.start_hooked(name, &[]).await
    }

    async fn start_hooked(&self, name: &str, hooks_dirs: &[PathBuf]) -> Result<(), PodmanError> {
        let mut args = hooks_dir_args(hooks_dirs);
        args.extend(strings(&["start", "--", name]));
        self.run(args).await.map(|_| ())
    }

    async fn in_netns(
        &self,
        name: &str,
        argv: &[String],
        stdin: Option<&str>,
    ) -> Result<ExecOutput, PodmanError> {
        in_netns(self, name, argv, stdin).await
    }

    async fn run_attached(&self, spec: &RunSpec, env_dir: &Path) -> Result<i32, PodmanError> {
        spec.validate()?;
        let env_file = EnvFileGuard::write(spec, env_dir)?;
        let env_path = env_file.0.clone();
        let mut args = spec.global_args();
        args.push("run".to_owned());
        args.extend(spec.create_args(&env_path));
        let status = self
            .command(&args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .await
            .map_err(|e| self.spawn_error(e, &args))?;
        Ok(status.code().unwrap_or(128 + 9))
    }

    fn run_streaming(&self, spec: &RunSpec) -> Result<LogStream, PodmanError> {
        use tokio::io::AsyncWriteExt;
        spec.validate()?;
        let mut args = spec.global_args();
        args.extend(strings(&["run", "--sig-proxy=false"]));
        args.extend(spec.create_args(Path::new("/dev/stdin")));
        let mut child = self
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The container outlives this process if it is killed; Ctrl-C is the caller's.
            .kill_on_drop(false)
            .process_group(0)
            .spawn()
            .map_err(|e| self.spawn_error(e, &args))?;
        if let Some(mut stdin) = child.stdin.take() {
            let contents = env_file_contents(&spec.full_env());
            tokio::spawn(async move {
                let _ = stdin.write_all(contents.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }
        Ok(stream_child(child))
    }

    async fn exec(&self, name: &str, argv: &[String]) -> Result<ExecOutput, PodmanError> {
        let mut args = strings(&["exec", "--", name]);
        args.extend(argv.iter().cloned());
        // What the container prints is its to choose: keep a bounded part of it.
        bounded_output(self.command(&args), OUTPUT_LIMIT)
            .await
            .map_err(|e| self.spawn_error(e, &args))
    }

    fn exec_piped(&self, name: &str, argv: &[String]) -> Result<Child, PodmanError> {
        let mut args = strings(&["exec", "-i", "--", name]);
        args.extend(argv.iter().cloned());
        self.command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| self.spawn_error(e, &args))
    }

    fn follow_logs(&self, name: &str) -> Result<LogStream, PodmanError> {
        let args = strings(&["logs", "--follow", "--", name]);
        let child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e, &args))?;
        Ok(stream_child(child))
    }

    async fn wait(&self, name: &str) -> Result<i32, PodmanError> {
        let out = self.run(strings(&["wait", "--", name])).await?;
        let text = out.trim();
        text.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| PodmanError::Output {
                command: "wait".to_owned(),
                detail: format!("expected an exit code, got `{text}`"),
            })
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, PodmanError> {
        let Some(out) = self
            .run_maybe_missing(strings(&[
                "container",
                "inspect",
                "--format",
                "json",
                "--",
                name,
            ]))
            .await?
        else {
            return Ok(None);
        };
        output::container_inspect(&out)
    }

    async fn list(&self, label: &str) -> Result<Vec<ContainerSummary>, PodmanError> {
        let out = self
            .run(strings(&[
                "ps",
                "--all",
                "--filter",
                &format!("label={label}"),
                "--format",
                "json",
            ]))
            .await?;
        output::container_list(&out)
    }

    async fn stop(&self, name: &str, timeout_secs: u32) -> Result<(), PodmanError> {
        match self
            .run(strings(&[
                "stop",
                "--time",
                &timeout_secs.to_string(),
                "--",
                name,
            ]))
            .await
        {
            Err(PodmanError::Failed { stderr, .. }) if is_no_such(&stderr) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn remove(&self, name: &str) -> Result<(), PodmanError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .run(strings(&["rm", "--force", "--ignore", "--", name]))
                .await
            {
                Err(PodmanError::Failed { stderr, .. }) if is_no_such(&stderr) => return Ok(()),
                // A container still being torn down (its shm mount busy): podman succeeds on a
                // second try.
                Err(PodmanError::Failed { stderr, .. })
                    if attempts < 3 && stderr.contains("device or resource busy") =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                other => return other.map(|_| ()),
            }
        }
    }

    async fn image_inspect(&self, reference: &str) -> Result<Option<ImageInfo>, PodmanError> {
        Ok(self
            .image_inspect_many(&[reference.to_owned()])
            .await?
            .pop()
            .flatten())
    }

    async fn image_inspect_many(
        &self,
        references: &[String],
    ) -> Result<Vec<Option<ImageInfo>>, PodmanError> {
        let mut answers: Vec<Option<Option<ImageInfo>>> =
            references.iter().map(|r| self.memo_get(r)).collect();
        let missing: Vec<String> = references
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        if !missing.is_empty() {
            let mut args = strings(&["image", "inspect", "--format", "json", "--"]);
            args.extend(missing.iter().cloned());
            let found: Vec<Option<ImageInfo>> = match self.run(args).await {
                // All exist: the answers are in order.
                Ok(out) => {
                    let items = output::image_inspect(&out)?;
                    if items.len() != missing.len() {
                        return Err(PodmanError::Output {
                            command: "image inspect".to_owned(),
                            detail: format!(
                                "asked for {} images, got {}",
                                missing.len(),
                                items.len()
                            ),
                        });
                    }
                    items.into_iter().map(Some).collect()
                }
                // Some are missing: ask one by one to know which.
                Err(PodmanError::Failed { stderr, .. }) if is_no_such(&stderr) => {
                    let mut one_by_one = Vec::with_capacity(missing.len());
                    for reference in &missing {
                        let out = self
                            .run_maybe_missing(strings(&[
                                "image", "inspect", "--format", "json", "--", reference,
                            ]))
                            .await?;
                        one_by_one.push(match out {
                            None => None,
                            Some(out) => output::image_inspect(&out)?.into_iter().next(),
                        });
                    }
                    one_by_one
                }
                Err(err) => return Err(err),
            };
            let mut found = found.into_iter();
            for (reference, answer) in references.iter().zip(answers.iter_mut()) {
                if answer.is_none() {
                    let info = found.next().flatten();
                    self.memo_put(reference, &info);
                    *answer = Some(info);
                }
            }
        }
        Ok(answers.into_iter().map(Option::flatten).collect())
    }

    async fn pull(&self, reference: &str) -> Result<(), PodmanError> {
        self.memo_clear();
        self.run(strings(&["pull", "--quiet", "--", reference]))
            .await
            .map(|_| ())
    }

    async fn image_tag(&self, source: &str, target: &str) -> Result<(), PodmanError> {
        self.memo_clear();
        self.run(strings(&["tag", "--", source, target]))
            .await
            .map(|_| ())
    }

    async fn image_remove(&self, references: &[String], force: bool) -> Result<(), PodmanError> {
        self.memo_clear();
        if references.is_empty() {
            return Ok(());
        }
        let mut args = strings(&["image", "rm"]);
        if force {
            args.push("--force".to_owned());
        }
        args.push("--".to_owned());
        args.extend(references.iter().cloned());
        match self.run(args).await {
            Err(PodmanError::Failed { stderr, .. }) if is_no_such(&stderr) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn storage_driver(&self) -> Result<String, PodmanError> {
        let out = self
            .run(strings(&["info", "--format", "{{.Store.GraphDriverName}}"]))
            .await?;
        Ok(out.trim().to_owned())
    }

    fn remote_engine(&self) -> Option<String> {
        // What podman itself reads to go remote (containers.conf's `[engine] remote` is not
        // looked at: docs/scale.md).
        self.connection.clone().or_else(|| {
            ["CONTAINER_HOST", "CONTAINER_CONNECTION"]
                .into_iter()
                .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        })
    }

    async fn copy_into(
        &self,
        name: &str,
        host: &Path,
        container_path: &str,
    ) -> Result<(), PodmanError> {
        // A directory's contents (`dir/.`), whether or not the target exists yet.
        let source = if host.is_dir() {
            format!("{}/.", host.display())
        } else {
            host.display().to_string()
        };
        self.run(vec![
            "cp".to_owned(),
            "--".to_owned(),
            source,
            format!("{name}:{container_path}"),
        ])
        .await
        .map(drop)
    }

    async fn copy_out(
        &self,
        name: &str,
        container_path: &str,
        host: &Path,
    ) -> Result<(), PodmanError> {
        self.run(vec![
            "cp".to_owned(),
            "--".to_owned(),
            format!("{name}:{}/.", container_path.trim_end_matches('/')),
            host.display().to_string(),
        ])
        .await
        .map(drop)
    }

    async fn network_gateway(
        &self,
        network: &str,
    ) -> Result<Option<std::net::IpAddr>, PodmanError> {
        let out = self
            .run(strings(&[
                "network", "inspect", "--format", "json", "--", network,
            ]))
            .await?;
        output::network_gateway(&out)
    }

    async fn images_with_label(&self, label: &str) -> Result<Vec<ImageInfo>, PodmanError> {
        let out = self
            .run(strings(&[
                "images",
                "--filter",
                &format!("label={label}"),
                "--format",
                "json",
            ]))
            .await?;
        output::image_list(&out)
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<BuildOutput, PodmanError> {
        self.memo_clear();
        let iid_dir = tempfile_dir()?;
        let iid_file = iid_dir.join("iid");
        let mut args = strings(&["build", "--file"]);
        args.push(spec.dockerfile.to_string_lossy().into_owned());
        args.push("--iidfile".to_owned());
        args.push(iid_file.to_string_lossy().into_owned());
        for (k, v) in &spec.build_args {
            args.push("--build-arg".to_owned());
            args.push(format!("{k}={v}"));
        }
        for (k, v) in &spec.labels {
            args.push("--label".to_owned());
            args.push(format!("{k}={v}"));
        }
        for tag in &spec.tags {
            args.push("--tag".to_owned());
            args.push(tag.clone());
        }
        if spec.no_cache {
            args.push("--no-cache".to_owned());
        }
        if spec.pull_always {
            args.push("--pull=always".to_owned());
        }
        if spec.squash {
            args.push("--squash".to_owned());
        }
        args.push("--".to_owned());
        args.push(spec.context.to_string_lossy().into_owned());
        let mut child = self
            .command(&args)
            // A build abandoned half-way (the caller was interrupted) is asked to stop, not
            // killed: see `InterruptOnDrop`.
            .kill_on_drop(false)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e, &args))?;
        let mut running = InterruptOnDrop {
            pid: child.id(),
            scratch: iid_dir.clone(),
        };
        let (tx, mut rx) = mpsc::channel(256);
        if let Some(stdout) = child.stdout.take() {
            pump_lines(stdout, LogSource::Stdout, tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            pump_lines(stderr, LogSource::Stderr, tx);
        }
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        while let Some(line) = rx.recv().await {
            on_line(&line.line);
            if tail.len() == 40 {
                tail.pop_front();
            }
            tail.push_back(line.line);
        }
        let status = child.wait().await.map_err(|e| PodmanError::Io {
            context: "waiting for podman build".to_owned(),
            source: e,
        })?;
        running.pid = None;
        let result = if status.success() {
            std::fs::read_to_string(&iid_file)
                .map(|id| BuildOutput {
                    image_id: id.trim().trim_start_matches("sha256:").to_owned(),
                })
                .map_err(|e| PodmanError::Io {
                    context: "podman build wrote no image id".to_owned(),
                    source: e,
                })
        } else {
            Err(failed(
                &args,
                &status.to_string(),
                &tail.into_iter().collect::<Vec<_>>().join("\n"),
            ))
        };
        drop(running);
        result
    }
}

/// A `podman build` still running when its future is dropped gets SIGINT, as from a terminal's
/// Ctrl-C, and stops within seconds without tagging anything — rather than SIGKILL, which
/// gives it no chance to release its storage locks. The process ends on its own; nobody waits
/// for it. (Podman 4.3 leaves the build containers of the steps it had run, as it does on a
/// terminal's Ctrl-C: `podman ps --external` lists them.)
struct InterruptOnDrop {
    /// The build's process, until it has ended.
    pid: Option<u32>,
    /// The scratch directory of its id file, removed either way.
    scratch: PathBuf,
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        let pid = self
            .pid
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A private scratch directory for podman's id file.
fn tempfile_dir() -> Result<PathBuf, PodmanError> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!("terok-podman-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(PodmanError::Io {
                    context: format!("cannot create {}", dir.display()),
                    source: e,
                });
            }
        }
    }
    Err(PodmanError::Io {
        context: "cannot create a scratch directory".to_owned(),
        source: std::io::Error::other("too many attempts"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vault's key and passphrase never reach podman (nor, through it, anything it runs).
    #[test]
    fn podman_never_inherits_the_vault_secrets() {
        let podman = PodmanCli::new();
        let command = podman.command(&["ps".to_owned()]);
        let removed: Vec<_> = command
            .as_std()
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for var in terok_core::env::SECRET_VARS {
            assert!(removed.iter().any(|r| r == var), "{var} is inherited");
        }
    }

    /// What a container prints is kept up to a limit, so it cannot fill the host's memory.
    #[tokio::test]
    async fn an_answer_is_kept_up_to_the_limit_and_the_rest_dropped() {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "head -c 3000000 /dev/zero; echo said >&2; exit 3"]);
        let out = bounded_output(command, 1000).await.unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert_eq!(out.stderr, "said\n");
        assert_eq!(out.status, 3);
    }

    /// A name or reference that looks like an option (`--all`, say) stays a name: every
    /// positional argument comes after `--`.
    #[tokio::test]
    async fn names_and_references_follow_a_double_dash() {
        let podman = PodmanCli::new().with_program("true").recording();
        let hostile = "--all";
        let _ = podman.start(hostile).await;
        let _ = podman.wait(hostile).await;
        let _ = podman.inspect(hostile).await;
        let _ = podman.stop(hostile, 1).await;
        let _ = podman.remove(hostile).await;
        let _ = podman.exec(hostile, &["id".to_owned()]).await;
        let _ = podman.image_inspect(hostile).await;
        let _ = podman.pull(hostile).await;
        let _ = podman.image_tag(hostile, hostile).await;
        let _ = podman.image_remove(&[hostile.to_owned()], false).await;
        let calls = podman.recorded();
        assert_eq!(calls.len(), 10, "{calls:?}");
        for call in calls {
            let dash = call.iter().position(|a| a == "--");
            let name = call.iter().position(|a| a == hostile);
            assert!(
                matches!((dash, name), (Some(d), Some(n)) if d < n),
                "{call:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_line_that_never_ends_is_cut_at_the_limit() {
        let mut input: &[u8] = b"short\r\n0123456789abcdef\nlast";
        let mut lines = Vec::new();
        while let Some(line) = read_bounded_line(&mut input, 10).await {
            lines.push(line);
        }
        assert_eq!(
            lines,
            [
                "short",
                "0123456789 … [6 more bytes of this line not shown]",
                "last"
            ]
        );
    }
}
