//! The end-to-end scenario every agent runs, as a user would: store a key, route the agent's
//! provider to a scripted model speaking its vendor's API, `run <agent> <copy of the demo's
//! sample project> -p "fix the failing test"` offline, then check that the sample's test
//! passes, that upstream saw the real key on every call and never a phantom token, that the
//! real key is nowhere the container or podman could see it, and that the run's tokens are
//! revoked.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use terok_testkit::IsolatedEnv;
use terok_testkit::agents::machine_lock;
use terok_testkit::base_image::ensure_suite_image;
use terok_testkit::demo::DemoAgent;
use terok_testkit::model::{ModelScript, ScriptedModel};
use terok_testkit::upstream::RecordedRequest;

use super::{BIN, text};

/// One agent's run of the scenario.
pub struct Scenario {
    /// The agent, its provider, protocol, conversation and `run` arguments.
    pub demo: &'static DemoAgent,
    /// The stored key.
    pub real_key: &'static str,
    /// config.yml: the base image and the agents of the image.
    pub config: &'static str,
    /// The Debian suite of the base image.
    pub suite: &'static str,
    /// Lock held while the image is built (tests sharing an image share the lock).
    pub image_lock: &'static str,
    /// Scripted turns the agent must take.
    pub turns: usize,
}

/// The scripted model's final answer, which must reach the user.
pub const ANSWER: &str = "subtracted its arguments";

pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if kind.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(path);
        }
    }
    hits
}

/// A `podman` in front of the real one that logs every command line terok runs; returns the
/// `PATH` that finds it first and the log.
fn podman_shim(env: &IsolatedEnv) -> (String, PathBuf) {
    let shim_dir = env.root().join("shim");
    std::fs::create_dir_all(&shim_dir).unwrap();
    let log = env.root().join("podman-argv.log");
    let real = Command::new("sh")
        .args(["-c", "command -v podman"])
        .output()
        .unwrap()
        .stdout;
    let shim = shim_dir.join("podman");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec {} \"$@\"\n",
            log.display(),
            String::from_utf8_lossy(&real).trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        shim_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, log)
}

/// The status line a `GET /` on 127.0.0.1:`port` gets, or why there is none.
fn head_line(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream,
        Err(err) => return format!("connect: {err}"),
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    if let Err(err) = stream.write_all(b"GET / HTTP/1.0\r\n\r\n") {
        return format!("write: {err}");
    }
    let mut answer = [0u8; 64];
    match stream.read(&mut answer) {
        Ok(n) => String::from_utf8_lossy(&answer[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        Err(err) => format!("read: {err}"),
    }
}

/// The host of one run: the isolated environment, the scripted model, the podman log.
pub struct Run<'s> {
    pub scenario: &'s Scenario,
    pub env: IsolatedEnv,
    pub model: ScriptedModel,
    path: String,
    podman_log: PathBuf,
    pub project: PathBuf,
    pub container: Option<String>,
    /// Podman's warnings in the steps so far.
    warnings: std::cell::RefCell<String>,
    /// Variables every command gets (a remote engine's `CONTAINER_HOST`).
    pub extra_env: Vec<(String, String)>,
    /// How the run reaches only the vault: offline unless a test says otherwise.
    pub network_args: Vec<String>,
    /// The container's network mode that shows it.
    pub network_mode: String,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if let Some(name) = &self.container {
            let _ = self.cli(&["rm", name]).output();
        }
        let _ = self.cli(&["vault", "stop"]).output();
    }
}

impl<'s> Run<'s> {
    pub fn new(scenario: &'s Scenario, extra_setup: impl FnOnce(&IsolatedEnv)) -> Self {
        Self::with_model_at(scenario, "127.0.0.1:0", extra_setup)
    }

    /// A run whose scripted model listens on `address` (a container must reach it when the
    /// vault runs in one).
    pub fn with_model_at(
        scenario: &'s Scenario,
        address: &str,
        extra_setup: impl FnOnce(&IsolatedEnv),
    ) -> Self {
        ensure_suite_image(scenario.suite, &mut |_| {}).unwrap();
        let env = IsolatedEnv::new().unwrap();
        env.write_user_config(scenario.config).unwrap();
        extra_setup(&env);
        let demo = scenario.demo;
        let script_path = demo_dir().join(demo.script);
        let script = ModelScript::parse(
            &std::fs::read_to_string(&script_path).unwrap(),
            &script_path,
        )
        .unwrap();
        let model = ScriptedModel::serve(demo.protocol, script, address).unwrap();
        // The scripted model stands in for the vendor's API: the vault forwards there.
        let overrides = env.user_config_dir().join("agent/agents");
        std::fs::create_dir_all(&overrides).unwrap();
        std::fs::write(
            overrides.join(format!("{}.yaml", demo.provider)),
            format!(
                "vault:\n  upstream: {}{}\n",
                model.url(),
                demo.upstream_path
            ),
        )
        .unwrap();
        let (path, podman_log) = podman_shim(&env);
        let project = env.work_dir().join("project");
        copy_dir(&demo_dir().join("sample-project"), &project);
        Self {
            scenario,
            env,
            model,
            path,
            podman_log,
            project,
            container: None,
            warnings: std::cell::RefCell::default(),
            extra_env: Vec::new(),
            network_args: vec!["--shield".to_owned(), "offline".to_owned()],
            network_mode: "none".to_owned(),
        }
    }

    /// `podman` as the run's commands see it (the same engine).
    pub fn podman(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = self.env.command(BIN);
        cmd.args(args).env("PATH", &self.path).stdin(Stdio::null());
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn must(&self, args: &[&str]) -> Output {
        let out = self.cli(args).output().unwrap();
        // What podman warned about in earlier steps (a network left set up, say) explains
        // many a later failure.
        let warned: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("podman "))
            .map(|l| format!("{args:?}: {l}\n"))
            .collect();
        self.warnings.borrow_mut().push_str(&warned);
        assert!(
            out.status.success(),
            "{args:?}: {}\n--- podman's warnings in earlier steps:\n{}{}",
            text(&out),
            self.warnings.borrow(),
            self.container_log()
        );
        out
    }

    /// The end of the task container's log (and its web gate's), for a failure message.
    fn container_log(&self) -> String {
        let Some(name) = &self.container else {
            return String::new();
        };
        let said = |args: &[&str]| {
            self.env
                .command("podman")
                .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
                .args(args)
                .output()
                .map(|o| text(&o))
                .unwrap_or_default()
        };
        let pid = said(&["inspect", "--format", "{{.State.Pid}}", name]);
        let ruleset = std::process::Command::new("nsenter")
            .args(["-t", pid.trim(), "-n", "nft", "list", "ruleset"])
            .output()
            .map(|o| text(&o))
            .unwrap_or_default();
        let ports = said(&["port", name]);
        // The published port's answer from this host, without a token (403 when it works).
        let from_host = ports
            .lines()
            .find_map(|l| l.split("127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
            .map(head_line)
            .unwrap_or_default();
        format!(
            "\n--- podman logs {name}:\n{}\n--- /tmp/caddy.log:\n{}\n--- podman port:\n{ports}\n\
             --- from this host, GET the published port:\n{from_host}\n\
             --- inside, GET :8080:\n{}\n--- inside, GET :8080 with the token file's token:\n{}\n\
             --- ruleset:\n{ruleset}",
            said(&["logs", "--tail", "40", name]),
            said(&["exec", name, "tail", "-n", "20", "/tmp/caddy.log"]),
            said(&[
                "exec",
                name,
                "bash",
                "-c",
                "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 \
                 && head -1 <&3"
            ]),
            said(&[
                "exec",
                name,
                "bash",
                "-c",
                "t=$(cat /home/dev/.terok/toad.token) && exec 3<>/dev/tcp/127.0.0.1/8080 && \
                 printf \"GET / HTTP/1.0\\r\\nCookie: terok_token_${TEROK_WEB_PORT}=$t\\r\\n\\r\\n\" >&3 \
                 && head -1 <&3"
            ]),
        )
    }

    /// Stores the key (from stdin), builds the image under the lock, starts the vault.
    pub fn prepare_host(&self) {
        let s = self.scenario;
        terok_testkit::cli::store_key(&self.env, BIN, s.demo.provider, s.real_key);
        {
            let _lock = machine_lock(s.image_lock).unwrap();
            self.must(&["build"]);
        }
        self.must(&["vault", "start"]);
    }

    pub fn sample_test_passes(&self) -> Output {
        Command::new("python3")
            .args(["-m", "unittest", "-q"])
            .current_dir(&self.project)
            .output()
            .unwrap()
    }

    /// Puts the demo's broken sample back into the project.
    pub fn reset_project(&self) {
        copy_dir(&demo_dir().join("sample-project"), &self.project);
    }

    /// `run <agent> project --interactive`, offline: a task that keeps running (for ACP);
    /// returns its container's name.
    pub fn launch_interactive(&mut self) -> String {
        let s = self.scenario;
        let out = self.must(&[
            "run",
            s.demo.agent,
            "project",
            "--interactive",
            "--shield",
            "offline",
        ]);
        let name = String::from_utf8_lossy(&out.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("Container: "))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no container name: {}", text(&out)));
        self.container = Some(name.clone());
        name
    }

    /// `run <agent> project -p "fix the failing test"`, offline; panics with the model's
    /// view of the conversation when the run fails or strays from the script.
    fn run_agent(&mut self) -> Output {
        let s = self.scenario;
        let mut args = vec![
            "run",
            s.demo.agent,
            "project",
            "-p",
            "fix the failing test",
            "--timeout",
            "600",
        ];
        // No network but loopback (or one that reaches only this host's listeners): the
        // agent reaches the model only through the vault.
        let network_args = self.network_args.clone();
        args.extend(network_args.iter().map(String::as_str));
        args.extend_from_slice(s.demo.run_args);
        let out = self.cli(&args).output().unwrap();
        self.container = String::from_utf8_lossy(&out.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("Container: "))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned);
        let requests: Vec<String> = self
            .model
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path_and_query))
            .collect();
        assert!(
            out.status.success() && self.model.mismatches().is_empty() && self.container.is_some(),
            "exit {:?}\n{}\nmismatches: {:?}\nunanswered: {:?}\nrequests: {requests:?}\n\
             last request's newest message: {}",
            out.status.code(),
            text(&out),
            self.model.mismatches(),
            self.model.unanswered(),
            self.last_request_tail(),
        );
        out
    }

    /// The newest message (or input item) of the last model request: what the agent sent
    /// when it strayed from the script.
    pub fn last_request_tail(&self) -> String {
        let Some(last) = self.model.requests().pop() else {
            return String::new();
        };
        let body: serde_json::Value = serde_json::from_slice(&last.body).unwrap_or_default();
        ["messages", "input"]
            .iter()
            .find_map(|key| body[key].as_array().and_then(|items| items.last()))
            .map(|item| item.to_string())
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&last.body)
                    .chars()
                    .take(2000)
                    .collect()
            })
    }

    fn assert_the_work_is_done(&self, out: &Output) {
        assert_eq!(
            self.model.turns_served(),
            self.scenario.turns,
            "read, edit, answer"
        );
        let calc = std::fs::read_to_string(self.project.join("calc.py")).unwrap();
        assert!(calc.contains("return a + b"), "{calc}");
        let passing = self.sample_test_passes();
        assert!(passing.status.success(), "{}", text(&passing));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(ANSWER),
            "the answer did not reach the user: {}",
            text(out)
        );
    }

    /// Every API call upstream carried the real key in the vendor's header, and no request
    /// carried a phantom token.
    pub fn assert_upstream_saw_only_the_real_key(&self) {
        let (header, prefix) = self.scenario.demo.key_header;
        let expected = format!("{prefix}{}", self.scenario.real_key);
        let requests = self.model.requests();
        let calls: Vec<&RecordedRequest> = requests
            .iter()
            .filter(|r| r.path_and_query.contains("/v1/"))
            .collect();
        assert!(
            calls.len() >= self.scenario.turns,
            "{} API calls",
            calls.len()
        );
        for r in &calls {
            assert_eq!(
                r.header(header),
                Some(expected.as_str()),
                "{} {}",
                r.method,
                r.path_and_query
            );
        }
        for r in &requests {
            assert!(
                !r.mentions("terok-p-"),
                "a phantom token reached upstream: {} {}",
                r.method,
                r.path_and_query
            );
        }
    }

    /// The real key is not in the container's config, its writable layer, the task and
    /// vault directories, the project, or podman's command lines; the container got a
    /// phantom token and no network.
    fn assert_the_key_stayed_on_the_host(&self) {
        let name = self.container.as_deref().unwrap();
        let inspect = self
            .podman()
            .args(["container", "inspect", name])
            .output()
            .unwrap();
        assert!(inspect.status.success(), "{}", text(&inspect));
        let inspect_text = String::from_utf8_lossy(&inspect.stdout);
        let key = self.scenario.real_key;
        assert!(!inspect_text.contains(key), "in the container's config");
        // A phantom token in its environment (Claude, Vibe, OpenCode) or in the credential
        // file mounted from the task's directory (Codex's auth.json).
        let phantom_files = files_containing(&self.env.state_root().join("executor"), b"terok-p-");
        assert!(
            inspect_text.contains("terok-p-") || !phantom_files.is_empty(),
            "the container got no phantom token"
        );
        let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(
            info[0]["HostConfig"]["NetworkMode"],
            self.network_mode.as_str(),
            "the run reached nothing but the vault"
        );
        let mut leaks = files_containing(&self.env.state_root().join("executor"), key.as_bytes());
        leaks.extend(files_containing(
            &self.env.state_root().join("sandbox-live"),
            key.as_bytes(),
        ));
        leaks.extend(files_containing(&self.project, key.as_bytes()));
        if let Some(upper) = info[0]["GraphDriver"]["Data"]["UpperDir"].as_str() {
            leaks.extend(files_containing(Path::new(upper), key.as_bytes()));
        }
        assert!(leaks.is_empty(), "the real key is in {leaks:?}");
        let argv = std::fs::read_to_string(&self.podman_log).unwrap();
        assert!(
            argv.contains("run --sig-proxy=false") || argv.contains("create "),
            "{argv}"
        );
        assert!(!argv.contains(key), "the real key was on podman's argv");
    }

    fn assert_the_tokens_are_revoked(&self) {
        let name = self.container.as_deref().unwrap();
        let tokens = self.must(&["vault", "list", "--tokens"]);
        assert!(
            !String::from_utf8_lossy(&tokens.stdout).contains(name),
            "{}",
            text(&tokens)
        );
    }
}

/// Runs `scenario` end to end; `extra_setup` may add to the isolated host (a roster entry)
/// before anything runs.
pub fn fix_the_failing_test(scenario: &Scenario, extra_setup: impl FnOnce(&IsolatedEnv)) {
    fix_the_failing_test_on(scenario, extra_setup, |_| {});
}

/// [`fix_the_failing_test`] with the run adjusted by `adjust` first (its engine, its
/// network).
pub fn fix_the_failing_test_on(
    scenario: &Scenario,
    extra_setup: impl FnOnce(&IsolatedEnv),
    adjust: impl FnOnce(&mut Run),
) {
    let mut run = Run::new(scenario, extra_setup);
    adjust(&mut run);
    run.prepare_host();
    assert!(
        !run.sample_test_passes().status.success(),
        "the sample must start broken"
    );
    let out = run.run_agent();
    run.assert_the_work_is_done(&out);
    run.assert_upstream_saw_only_the_real_key();
    run.assert_the_key_stayed_on_the_host();
    run.assert_the_tokens_are_revoked();
}
