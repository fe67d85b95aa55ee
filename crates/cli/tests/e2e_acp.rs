//! End to end through the ACP proxy with the real Claude ACP adapter (from npm, in an L1 image
//! on Debian sid: it needs Node.js 22) in a running task, against the scripted model through
//! the vault: an editor-like client (the agent-client-protocol crate's client side) sees
//! `claude:<model>` among the models, prompts "fix the failing test", follows the Read and the
//! Edit as session updates and ends with `end_turn`; the file on the host is fixed and the
//! model saw only the real key. Once over `acp TASK`'s socket, once through `acp --stdio TASK`
//! (which starts the proxy in the background), and once killed mid-prompt, which must leave
//! no `podman exec` on the host and nothing of the agent in the container.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_client_protocol::v1::schema::{SessionUpdate, StopReason, ToolKind};
use common::acp_client::{Transcript, Updates, prompt_once};
use common::e2e::{Run, Scenario};
use common::text;
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

const CONFIG: &str = "image:\n  base_image: localhost/debian:sid\n  agents: claude\n";
const PROMPT: &str = "fix the failing test";
/// How long one prompt may take (the agent, the vault and the scripted model on two cores).
const PROMPT_LIMIT: Duration = Duration::from_secs(300);
/// How long the proxy may take to end what a client left behind.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The tool kinds of the session's tool calls.
fn tool_kinds(updates: &Updates) -> Vec<ToolKind> {
    updates
        .lock()
        .unwrap()
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::ToolCall(call) => Some(call.kind),
            _ => None,
        })
        .collect()
}

/// The checks of one prompt that fixed the sample.
fn assert_fixed(run: &Run, transcript: &Transcript, updates: &Updates, turns: usize) {
    assert_eq!(transcript.agent_name, "terok-acp");
    assert!(
        transcript.models.iter().any(|m| m.starts_with("claude:")),
        "{:?}",
        transcript.models
    );
    assert!(transcript.models.iter().all(|m| m.starts_with("claude:")));
    assert_eq!(transcript.stop_reason, Some(StopReason::EndTurn));
    let kinds = tool_kinds(updates);
    assert!(
        kinds.contains(&ToolKind::Read) && kinds.contains(&ToolKind::Edit),
        "tool calls seen: {kinds:?}"
    );
    // Read, edit, answer; Claude's adapter may ask once more after the turn ended (a prompt
    // suggestion), which the script answers with text.
    assert!(
        run.model.turns_served() >= turns,
        "{} turns served, {turns} expected",
        run.model.turns_served()
    );
    assert!(
        run.model.mismatches().is_empty(),
        "{:?}",
        run.model.mismatches()
    );
    let passing = run.sample_test_passes();
    assert!(passing.status.success(), "{}", text(&passing));
    run.assert_upstream_saw_only_the_real_key();
}

/// Host processes of `podman exec` into `container`.
fn podman_execs(container: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_podman = args.first().is_some_and(|a| a.ends_with("podman"));
        if is_podman && args.iter().any(|a| a == "exec") && args.iter().any(|a| a == container) {
            found.push(args.join(" "));
        }
    }
    found
}

/// Processes in `container` that an ACP server started (marked in their environment), and
/// any Claude left running.
fn agent_processes(container: &str) -> String {
    let out = Command::new("podman")
        .args([
            "exec",
            container,
            "bash",
            "-c",
            "grep -l TEROK_ACP_SESSION= /proc/[0-9]*/environ 2>/dev/null; pgrep -af '[c]laude' || true",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_until(what: &str, mut done: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + TEARDOWN_LIMIT;
    loop {
        let Some(left) = done() else { return };
        assert!(Instant::now() < deadline, "{what}: {left}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn nothing_left(container: &str) -> Option<String> {
    let execs = podman_execs(container);
    let inside = agent_processes(container);
    (!execs.is_empty() || !inside.is_empty())
        .then(|| format!("podman exec on the host: {execs:?}; in the container: {inside}"))
}

/// `acp TASK` in the foreground: the process and its socket (its first line of output).
fn start_proxy(run: &Run, container: &str, log: &Path) -> (std::process::Child, PathBuf) {
    let mut proxy = run
        .cli(&["acp", container])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let socket = PathBuf::from(line.trim());
    assert!(
        socket.is_absolute(),
        "no socket printed: {line:?}; {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    (proxy, socket)
}

/// `acp --stdio TASK` with its stdio piped.
fn start_bridge(run: &Run, container: &str, log: &Path) -> tokio::process::Child {
    let std_command = run.cli(&["acp", "--stdio", container]);
    let mut command = tokio::process::Command::from(std_command);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true);
    command.spawn().unwrap()
}

#[test]
fn an_editor_drives_claude_in_a_task_through_the_acp_proxy() {
    if !require_podman("an_editor_drives_claude_in_a_task_through_the_acp_proxy") {
        return;
    }
    let scenario = Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: "sk-ant-api03-REAL-acp-e2e-key-that-stays-home-77b3",
        config: CONFIG,
        suite: "sid",
        image_lock: "acp-e2e-images",
        turns: 3,
    };
    let mut run = Run::new(&scenario, |_| {});
    run.prepare_host();
    assert!(
        !run.sample_test_passes().status.success(),
        "the sample must start broken"
    );
    let container = run.launch_interactive();
    let logs = run.env.root().join("acp-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let rt = runtime();

    // 1. An editor connected to the socket of `acp TASK`.
    let (mut proxy, socket) = start_proxy(&run, &container, &logs.join("proxy.log"));
    let updates = Updates::default();
    let transcript = rt
        .block_on(async {
            let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
            let (reader, writer) = stream.into_split();
            tokio::time::timeout(
                PROMPT_LIMIT,
                prompt_once(reader, writer, "claude:", PROMPT, updates.clone()),
            )
            .await
        })
        .expect("the prompt ends in time")
        .unwrap_or_else(|err| {
            panic!(
                "{err:?}\nproxy: {}\nunanswered: {:?}\nlast request: {}",
                std::fs::read_to_string(logs.join("proxy.log")).unwrap_or_default(),
                run.model.unanswered(),
                run.last_request_tail()
            )
        });
    assert_fixed(&run, &transcript, &updates, 3);
    wait_until("the session's agent outlived its client", || {
        nothing_left(&container)
    });
    // SIGTERM: the proxy stops cleanly and removes its socket.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&proxy),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = proxy.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket stays after the proxy stopped");

    // 2. An editor that starts `acp --stdio TASK` (the proxy now starts in the background).
    run.reset_project();
    let updates = Updates::default();
    let transcript = rt.block_on(async {
        let mut bridge = start_bridge(&run, &container, &logs.join("stdio.log"));
        let (stdin, stdout) = (bridge.stdin.take().unwrap(), bridge.stdout.take().unwrap());
        let transcript = tokio::time::timeout(
            PROMPT_LIMIT,
            prompt_once(stdout, stdin, "claude:", PROMPT, updates.clone()),
        )
        .await
        .expect("the prompt ends in time");
        // The client closed its side: the bridge ends.
        let status = tokio::time::timeout(TEARDOWN_LIMIT, bridge.wait()).await;
        assert!(matches!(status, Ok(Ok(s)) if s.success()), "{status:?}");
        transcript
    });
    let transcript = transcript.unwrap_or_else(|err| {
        panic!(
            "{err:?}\nstdio: {}",
            std::fs::read_to_string(logs.join("stdio.log")).unwrap_or_default()
        )
    });
    assert_fixed(&run, &transcript, &updates, 6);
    assert!(
        socket.exists(),
        "the background proxy serves the default socket"
    );

    // 3. The editor is killed mid-prompt: nothing of the session may be left.
    run.reset_project();
    let updates = Updates::default();
    rt.block_on(async {
        let mut bridge = start_bridge(&run, &container, &logs.join("killed.log"));
        let (stdin, stdout) = (bridge.stdin.take().unwrap(), bridge.stdout.take().unwrap());
        let prompting = tokio::spawn(prompt_once(
            stdout,
            stdin,
            "claude:",
            PROMPT,
            updates.clone(),
        ));
        let deadline = Instant::now() + PROMPT_LIMIT;
        while !tool_kinds(&updates).contains(&ToolKind::Read) {
            assert!(Instant::now() < deadline, "no tool call before the kill");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bridge.start_kill().unwrap();
        let _ = bridge.wait().await;
        prompting.abort();
    });
    wait_until("a killed client left the agent running", || {
        nothing_left(&container)
    });

    // The task stops: so does its background proxy.
    run.must(&["stop", &container]);
    wait_until("the proxy outlived its task", || {
        socket.exists().then(|| socket.display().to_string())
    });
}
