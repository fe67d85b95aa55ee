//! The ACP row of `cargo xtask bench` (`--only acp`: it builds a Debian sid image with Claude's
//! ACP adapter the first time): how long an editor waits for the first words of an answer —
//! from `session/new` on the task's proxy socket (the proxy binds the session to Claude's
//! server: the warm one, started in the task when the session before took its own) to the
//! first `agent_message_chunk` — against the same agent's headless run, from `run -p` to the
//! answer on its output. Both answer one scripted turn through the vault. The sessions start
//! [`SESSION_GAP`] apart, as a person opens threads in an editor: back to back, each would
//! wait for the warm server the one before started.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use terok_testkit::IsolatedEnv;
use terok_testkit::model::{ModelScript, ScriptedModel};

use super::table::{Goal, Row, fmt_num, median_ms};
use crate::util::run_echo;

const CONFIG: &str = "image:\n  base_image: localhost/debian:sid\n  agents: claude\n";
const ANSWER: &str = "Hello from the bench.";
const KEY: &str = "sk-ant-api03-bench-not-a-real-key";
/// The pause before each measured session (less than a person takes to open a thread and
/// type a prompt).
const SESSION_GAP: Duration = Duration::from_secs(3);

/// Ends the proxy and the task, however the measurement ends.
struct Cleanup<'e> {
    env: &'e IsolatedEnv,
    binary: &'e Path,
    proxy: Option<Child>,
    task: Option<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(mut proxy) = self.proxy.take() {
            let _ = proxy.kill();
            let _ = proxy.wait();
        }
        if let Some(task) = &self.task {
            let _ = self.env.command(self.binary).args(["rm", task]).output();
        }
        let _ = self
            .env
            .command(self.binary)
            .args(["vault", "stop"])
            .output();
    }
}

pub fn row(binary: &Path, runs: usize) -> anyhow::Result<Row> {
    if !terok_testkit::podman::podman_works() {
        bail!("podman is needed for the ACP row; run `cargo xtask host-setup`");
    }
    terok_testkit::base_image::ensure_suite_image("sid", &mut |line| println!("bench: {line}"))?;
    let env = IsolatedEnv::new()?;
    env.write_user_config(CONFIG)?;
    let script = ModelScript::parse(
        &format!("turns:\n  - text: \"{ANSWER}\"\n"),
        Path::new("bench.yaml"),
    )
    .map_err(anyhow::Error::msg)?;
    let model = ScriptedModel::start(script, "127.0.0.1:0")?;
    let overrides = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&overrides)?;
    std::fs::write(
        overrides.join("claude.yaml"),
        format!("vault:\n  upstream: {}\n", model.url()),
    )?;
    std::fs::create_dir_all(env.work_dir().join("project"))?;
    println!(
        "bench: making sure the sid image with Claude's ACP adapter is current (the first build takes minutes)…"
    );
    run_echo(env.command(binary).arg("build"))?;
    let mut auth = env.command(binary);
    auth.args(["auth", "claude", "--api-key", KEY])
        .stdout(Stdio::null());
    if !auth.status()?.success() {
        bail!("cannot store the bench credential");
    }
    run_echo(env.command(binary).args(["vault", "start"]))?;
    let mut cleanup = Cleanup {
        env: &env,
        binary,
        proxy: None,
        task: None,
    };

    let mut headless = Vec::new();
    for _ in 0..runs {
        headless.push(headless_first_output(&env, binary)?);
    }
    let task = start_task(&env, binary)?;
    cleanup.task = Some(task.clone());
    let (proxy, socket) = start_proxy(&env, binary, &task)?;
    cleanup.proxy = Some(proxy);
    // The first session probes the agent's models (cached afterwards): not measured.
    acp_first_output(&socket)?;
    let mut acp = Vec::new();
    for _ in 0..runs {
        std::thread::sleep(SESSION_GAP);
        acp.push(acp_first_output(&socket)?);
    }
    drop(cleanup);
    let headless = median_ms(&mut headless);
    let acp = median_ms(&mut acp);
    Ok(Row {
        figure: format!(
            "ACP: `session/new` to first answer chunk (sessions {}s apart) over headless `run -p` to the answer, Claude (median of {runs})",
            SESSION_GAP.as_secs()
        ),
        value: acp / headless,
        unit: "×",
        goal: Goal::AtMost(1.2),
        baseline: format!("ACP {} ms, headless {} ms", fmt_num(acp), fmt_num(headless)),
    })
}

/// `run claude project -p …` until the answer's first words are on its output.
fn headless_first_output(env: &IsolatedEnv, binary: &Path) -> anyhow::Result<Duration> {
    let mut cmd = env.command(binary);
    cmd.args([
        "run",
        "claude",
        "project",
        "--rm",
        "--shield",
        "offline",
        "-p",
        "say hello",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut first = None;
    for line in BufReader::new(stdout).lines() {
        if first.is_none() && line?.contains(ANSWER) {
            first = Some(started.elapsed());
        }
    }
    if !child.wait()?.success() {
        bail!("the headless run failed");
    }
    first.context("the headless run did not print the answer")
}

/// `run claude project --interactive`: the task the proxy serves.
fn start_task(env: &IsolatedEnv, binary: &Path) -> anyhow::Result<String> {
    let out = env
        .command(binary)
        .args([
            "run",
            "claude",
            "project",
            "--interactive",
            "--shield",
            "offline",
        ])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "cannot start the task: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Container: "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .context("no container name")
}

fn start_proxy(env: &IsolatedEnv, binary: &Path, task: &str) -> anyhow::Result<(Child, PathBuf)> {
    let mut proxy = env
        .command(binary)
        .args(["acp", task])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().context("no stdout")?).read_line(&mut line)?;
    Ok((proxy, PathBuf::from(line.trim())))
}

/// One session: `initialize`, then the clock runs from `session/new` (and the lazy bind of
/// the prompt) to the first chunk of the answer.
fn acp_first_output(socket: &Path) -> anyhow::Result<Duration> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut writer = stream.try_clone()?;
    let mut lines = BufReader::new(stream).lines();
    let mut send = |frame: Value| -> anyhow::Result<()> {
        writeln!(writer, "{frame}")?;
        Ok(())
    };
    let mut answer = |id: i64| -> anyhow::Result<Value> {
        for line in lines.by_ref() {
            let frame: Value = serde_json::from_str(&line?)?;
            if frame["id"] == id {
                return Ok(frame);
            }
        }
        bail!("the proxy closed the connection")
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}),
    )?;
    answer(1)?;
    let started = Instant::now();
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "session/new", "params": {"cwd": "/x", "mcpServers": []}}),
    )?;
    let session = answer(2)?;
    let session_id = session["result"]["sessionId"].clone();
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "session/prompt",
        "params": {"sessionId": session_id, "prompt": [{"type": "text", "text": "say hello"}]}}),
    )?;
    for line in lines {
        let frame: Value = serde_json::from_str(&line?)?;
        if frame["params"]["update"]["sessionUpdate"] == "agent_message_chunk" {
            return Ok(started.elapsed());
        }
        if frame["id"] == 3 {
            bail!("the prompt ended without an answer chunk: {frame}");
        }
    }
    bail!("the proxy closed the connection before the answer")
}
