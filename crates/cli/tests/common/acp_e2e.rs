//! The ACP end-to-end flow the agents share: a task started with `run AGENT --interactive`, its
//! proxy (`acp TASK` in the foreground, or `acp --stdio TASK`), an editor-like client that picks
//! the agent's model and prompts "fix the failing test", and the checks: the sample is fixed,
//! the model saw only the real key, and nothing of a session outlives its client.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_client_protocol::v1::schema::{SessionUpdate, StopReason, ToolKind};

use super::acp_client::{Transcript, Updates, prompt_once};
use super::e2e::{Run, Scenario};
use super::text;

pub const PROMPT: &str = "fix the failing test";

/// How long one prompt may take (the agent, the vault and the scripted model on two cores).
pub const PROMPT_LIMIT: Duration = Duration::from_secs(300);
/// How long the proxy may take to end what a client left behind.
pub const TEARDOWN_LIMIT: Duration = Duration::from_secs(30);

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The tool kinds of the session's tool calls.
pub fn tool_kinds(updates: &Updates) -> Vec<ToolKind> {
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
pub fn assert_fixed(
    run: &Run,
    transcript: &Transcript,
    updates: &Updates,
    turns: usize,
    kinds: &[ToolKind],
) {
    let agent = run.scenario.demo.agent;
    assert_eq!(transcript.agent_name, "terok-acp");
    assert!(
        transcript
            .models
            .iter()
            .any(|m| m.starts_with(&format!("{agent}:"))),
        "{:?}",
        transcript.models
    );
    let summary = || {
        let updates: Vec<String> = updates
            .lock()
            .unwrap()
            .iter()
            .map(|u| {
                serde_json::to_string(u)
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect()
            })
            .collect();
        let requests: Vec<String> = run
            .model
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path_and_query))
            .collect();
        format!(
            "mismatches: {:?}\nunanswered: {:?}\nrequests: {requests:?}\nlast request: {}\nupdates: {updates:#?}",
            run.model.mismatches(),
            run.model.unanswered(),
            run.last_request_tail()
        )
    };
    assert!(run.model.mismatches().is_empty(), "{}", summary());
    // Read, edit, answer; an agent may ask once more after the turn ended (Claude's adapter:
    // a prompt suggestion), which the script answers with text.
    assert!(
        run.model.turns_served() >= turns,
        "{} turns served, {turns} expected\n{}",
        run.model.turns_served(),
        summary()
    );
    assert_eq!(
        transcript.stop_reason,
        Some(StopReason::EndTurn),
        "{}",
        summary()
    );
    let seen = tool_kinds(updates);
    assert!(
        !seen.is_empty() && kinds.iter().all(|k| seen.contains(k)),
        "tool calls seen: {seen:?}, expected {kinds:?}\n{}",
        summary()
    );
    let passing = run.sample_test_passes();
    assert!(passing.status.success(), "{}", text(&passing));
    run.assert_upstream_saw_only_the_real_key();
}

/// Host processes of `podman exec` into `container`.
pub fn podman_execs(container: &str) -> Vec<String> {
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

pub fn wait_until(what: &str, mut done: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + TEARDOWN_LIMIT;
    loop {
        let Some(left) = done() else { return };
        assert!(Instant::now() < deadline, "{what}: {left}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The ACP servers' marks (`TEROK_ACP_SESSION=<proxy pid>-<count>`) on the host's `podman
/// exec` processes.
pub fn marks_on_the_host(container: &str) -> BTreeSet<String> {
    podman_execs(container)
        .iter()
        .flat_map(|args| args.split(' '))
        .filter(|arg| arg.starts_with("TEROK_ACP_SESSION="))
        .map(str::to_owned)
        .collect()
}

/// The marks of the processes in `container` that ACP servers started.
fn marks_in_the_container(container: &str) -> BTreeSet<String> {
    let out = Command::new("podman")
        .args([
            "exec",
            container,
            "bash",
            "-c",
            "grep -aoh 'TEROK_ACP_SESSION=[0-9-]*' /proc/[0-9]*/environ 2>/dev/null || true",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `None` once nothing with `mark` runs, on the host or in the container.
pub fn gone(container: &str, mark: &str) -> Option<String> {
    let host = marks_on_the_host(container);
    let inside = marks_in_the_container(container);
    (host.contains(mark) || inside.contains(mark))
        .then(|| format!("{mark} on the host: {host:?}; in the container: {inside:?}"))
}

/// The mark of the server started first (its count is the lowest).
pub fn first_started(marks: &BTreeSet<String>) -> Option<String> {
    marks
        .iter()
        .min_by_key(|mark| {
            mark.rsplit('-')
                .next()
                .and_then(|count| count.parse::<u64>().ok())
        })
        .cloned()
}

/// `None` once no more than the proxy's warm server runs: one `podman exec` at most, and
/// nothing in the container but what it started. A session's server left behind is a second
/// one.
pub fn only_the_warm_server_left(container: &str) -> Option<String> {
    let host = marks_on_the_host(container);
    let inside = marks_in_the_container(container);
    (host.len() > 1 || !inside.is_subset(&host))
        .then(|| format!("ACP servers on the host: {host:?}; in the container: {inside:?}"))
}

/// Ends a foreground proxy as Ctrl-C would; it must exit cleanly.
pub fn stop_proxy(proxy: &mut std::process::Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(proxy),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = proxy.wait().unwrap();
    assert!(status.success(), "the proxy stopped with {status:?}");
}

pub fn nothing_left(container: &str) -> Option<String> {
    let execs = podman_execs(container);
    let inside = marks_in_the_container(container);
    (!execs.is_empty() || !inside.is_empty())
        .then(|| format!("podman exec on the host: {execs:?}; in the container: {inside:?}"))
}

/// `acp TASK` in the foreground: the process and its socket (its first line of output).
/// How long the proxy's probe of an agent may take here: CI runs the agents' tests side by
/// side on two cores, where an agent's ACP server can take longer than the default 30 s to
/// answer its first `session/new`.
const PROBE_LIMIT_SECS: &str = "180";

pub fn start_proxy(run: &Run, container: &str, log: &Path) -> (std::process::Child, PathBuf) {
    let mut proxy = run
        .cli(&["acp", container])
        .env("TEROK_ACP_PROBE_TIMEOUT_SECS", PROBE_LIMIT_SECS)
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
pub fn start_bridge(run: &Run, container: &str, log: &Path) -> tokio::process::Child {
    let mut std_command = run.cli(&["acp", "--stdio", container]);
    std_command.env("TEROK_ACP_PROBE_TIMEOUT_SECS", PROBE_LIMIT_SECS);
    let mut command = tokio::process::Command::from(std_command);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true);
    command.spawn().unwrap()
}

/// The whole flow for `scenario`'s agent over `acp TASK`'s socket: the sample fixed, only the
/// real key upstream, nothing left after the client; `kinds` are tool kinds that must show.
pub fn fix_through_acp(scenario: &Scenario, kinds: &[ToolKind]) {
    let mut run = Run::new(scenario, |_| {});
    run.prepare_host();
    assert!(
        !run.sample_test_passes().status.success(),
        "the sample must start broken"
    );
    let container = run.launch_interactive();
    let log = run.env.root().join("acp-proxy.log");
    let (mut proxy, socket) = start_proxy(&run, &container, &log);
    let updates = Updates::default();
    // The model the demo runs with (`--model X`), else the agent's first.
    let demo = scenario.demo;
    let model = demo
        .run_args
        .windows(2)
        .find(|pair| pair[0] == "--model")
        .map_or_else(
            || format!("{}:", demo.agent),
            |pair| format!("{}:{}", demo.agent, pair[1]),
        );
    let transcript = runtime()
        .block_on(async {
            let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
            let (reader, writer) = stream.into_split();
            tokio::time::timeout(
                PROMPT_LIMIT,
                prompt_once(reader, writer, &model, PROMPT, updates.clone()),
            )
            .await
        })
        .expect("the prompt ends in time")
        .unwrap_or_else(|err| {
            panic!(
                "{err:?}\nproxy: {}\nunanswered: {:?}\nlast request: {}",
                std::fs::read_to_string(&log).unwrap_or_default(),
                run.model.unanswered(),
                run.last_request_tail()
            )
        });
    assert_fixed(&run, &transcript, &updates, scenario.turns, kinds);
    wait_until("the session's agent outlived its client", || {
        only_the_warm_server_left(&container)
    });
    stop_proxy(&mut proxy);
    wait_until("the warm server outlived the proxy", || {
        nothing_left(&container)
    });
}
