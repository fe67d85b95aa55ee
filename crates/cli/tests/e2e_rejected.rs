//! The real Claude Code, in a real container, with a key the model API refuses (the scripted
//! model answers 401 `authentication_error` to everything): the CLI says so within seconds,
//! names the agent and the remedy, never the key, and stops the run with exit status 77 —
//! unless `--no-fail-fast`, which keeps waiting and shows Claude's retries.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use terok_testkit::IsolatedEnv;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent, machine_lock};
use terok_testkit::base_image::ensure_base_image;
use terok_testkit::model::{ModelScript, ScriptedModel};
use terok_testkit::podman::require_podman;

const REAL_KEY: &str = "sk-ant-api03-REFUSED-key-of-the-rejection-test-4b1c";
const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

/// An isolated host whose Claude route leads to a model API refusing every key, with the key
/// stored, the images built and the vault running.
struct Host {
    env: IsolatedEnv,
    model: ScriptedModel,
}

impl Host {
    fn new() -> Self {
        ensure_base_image(&mut |_| {}).unwrap();
        let env = IsolatedEnv::new().unwrap();
        env.write_user_config(LAUNCH_TEST_CONFIG).unwrap();
        install_scripted_agent(&env).unwrap();
        let model = ScriptedModel::start(
            ModelScript::refusing(401, "authentication_error"),
            "127.0.0.1:0",
        )
        .unwrap();
        std::fs::write(
            env.user_config_dir().join("agent/agents/claude.yaml"),
            format!("vault:\n  upstream: {}\n", model.url()),
        )
        .unwrap();
        std::fs::create_dir_all(env.work_dir().join("project")).unwrap();
        terok_testkit::cli::store_key(&env, BIN, "claude", REAL_KEY);
        let host = Self { env, model };
        {
            let _lock = machine_lock("launch-images").unwrap();
            let out = host.command(&["build"]).output().unwrap();
            assert!(
                out.status.success(),
                "build: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            host.command(&["vault", "start"])
                .status()
                .unwrap()
                .success()
        );
        host
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.env.command(BIN);
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs `run claude project -p hello` with `extra` flags; returns its exit code, its
    /// stdout, its stderr lines with the time each arrived, and when the run started.
    fn run(&self, extra: &[&str]) -> (i32, String, Vec<(Duration, String)>, Instant) {
        let mut args = vec!["run", "claude", "project", "-p", "hello", "--rm"];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .map(|l| (started.elapsed(), l))
                .collect::<Vec<_>>()
        });
        let out = child.wait_with_output().unwrap();
        let lines = reader.join().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            lines,
            started,
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.command(&["vault", "stop"]).output();
    }
}

/// When the model API first refused a request, relative to the run's start.
fn first_refusal(host: &Host, started: Instant) -> Duration {
    host.model
        .requests()
        .iter()
        .find(|r| r.path_and_query.starts_with("/v1/messages"))
        .map(|r| r.at.saturating_duration_since(started))
        .expect("Claude asked the model")
}

#[test]
fn a_refused_key_is_reported_within_seconds_and_the_run_stops_with_77() {
    if !require_podman("a_refused_key_is_reported_within_seconds_and_the_run_stops_with_77") {
        return;
    }
    let host = Host::new();
    let (code, stdout, lines, started) = host.run(&["--output", "text", "--timeout", "300"]);
    let all: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    assert_eq!(code, 77, "{all}\n{stdout}");
    let message = "the API rejected the stored credential for claude (401 authentication_error) \
                   — store a new one with terok-executor auth claude";
    let (told_at, _) = lines
        .iter()
        .find(|(_, l)| l == message)
        .unwrap_or_else(|| panic!("no rejection message:\n{all}"));
    let refused = first_refusal(&host, started);
    assert!(
        told_at.saturating_sub(refused) < Duration::from_secs(5),
        "told {told_at:?} after the start, the first refusal came at {refused:?}:\n{all}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|(t, _)| *t < Duration::from_secs(120)),
        "stopped well before the 300 s timeout:\n{all}"
    );
    assert!(
        all.contains("Stopped: the API refused the credential"),
        "{all}"
    );
    assert!(
        !all.contains(REAL_KEY) && !stdout.contains(REAL_KEY),
        "never the key"
    );
    assert!(
        host.model
            .requests()
            .iter()
            .filter(|r| r.path_and_query.starts_with("/v1/messages"))
            .all(|r| r.header("x-api-key") == Some(REAL_KEY)),
        "the API saw the real key, never a phantom"
    );
    // The vault remembers it for `vault status`.
    let status = host.command(&["vault", "status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("Rejected:      claude by its API: 401 authentication_error"),
        "{status}"
    );
}

#[test]
fn without_fail_fast_the_run_waits_and_shows_claudes_retries() {
    if !require_podman("without_fail_fast_the_run_waits_and_shows_claudes_retries") {
        return;
    }
    let host = Host::new();
    let (code, stdout, lines, _) =
        host.run(&["--output", "text", "--timeout", "20", "--no-fail-fast"]);
    let all: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    assert_eq!(code, 124, "waited for the timeout:\n{all}\n{stdout}");
    assert!(
        all.contains("the API rejected the stored credential for claude"),
        "still told:\n{all}"
    );
    assert!(!all.contains("Stopped: the API refused"), "{all}");
    assert!(
        stdout.lines().any(|l| l.starts_with("↻ API error 401")),
        "Claude's retries rendered:\n{stdout}"
    );
    assert!(!all.contains(REAL_KEY) && !stdout.contains(REAL_KEY));
}
