//! End to end with the real Claude Code CLI (from npm, in the L1 image) against the scripted
//! model server: `run claude <sample project> -p "fix the failing test"` makes Claude read the
//! buggy file, edit it, and answer. The model server sees only the real key (the vault swapped
//! it in), the container and podman's command lines never see it, and the container's tokens
//! are revoked when it exits.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use terok_testkit::IsolatedEnv;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent, machine_lock};
use terok_testkit::base_image::ensure_base_image;
use terok_testkit::model::{ModelScript, ScriptedModel};
use terok_testkit::podman::require_podman;

const REAL_KEY: &str = "sk-ant-api03-REAL-e2e-key-that-stays-on-the-host-91c2";
const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
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

#[test]
fn claude_fixes_the_failing_test_through_the_vault() {
    if !require_podman("claude_fixes_the_failing_test_through_the_vault") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let env = IsolatedEnv::new().unwrap();
    env.write_user_config(LAUNCH_TEST_CONFIG).unwrap();
    install_scripted_agent(&env).unwrap();

    // The scripted model stands in for api.anthropic.com: the vault forwards Claude there.
    let script_path = demo_dir().join("claude-fixes-a-test.yaml");
    let script = ModelScript::parse(
        &std::fs::read_to_string(&script_path).unwrap(),
        &script_path,
    )
    .unwrap();
    let model = ScriptedModel::start(script, "127.0.0.1:0").unwrap();
    std::fs::write(
        env.user_config_dir().join("agent/agents/claude.yaml"),
        format!("vault:\n  upstream: {}\n", model.url()),
    )
    .unwrap();

    // Every podman command line terok runs is logged by a shim in front of the real podman.
    let shim_dir = env.root().join("shim");
    std::fs::create_dir_all(&shim_dir).unwrap();
    let podman_log = env.root().join("podman-argv.log");
    let real_podman = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v podman"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        shim_dir.join("podman"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec {} \"$@\"\n",
            podman_log.display(),
            real_podman.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        shim_dir.join("podman"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        shim_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cli = |args: &[&str]| -> Command {
        let mut cmd = env.command(BIN);
        cmd.args(args).env("PATH", &path).stdin(Stdio::null());
        cmd
    };

    // The user stores the key (from stdin, as a careful user would).
    terok_testkit::cli::store_key(&env, BIN, "claude", REAL_KEY);
    {
        let _lock = machine_lock("launch-images").unwrap();
        let out = cli(&["build"]).output().unwrap();
        assert!(out.status.success(), "build: {}", text(&out));
    }
    let out = cli(&["vault", "start"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let project = env.work_dir().join("project");
    copy_dir(&demo_dir().join("sample-project"), &project);
    let failing = Command::new("python3")
        .args(["-m", "unittest", "-q"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(!failing.status.success(), "the sample must start broken");

    let out = cli(&[
        "run",
        "claude",
        "project",
        "-p",
        "fix the failing test",
        "--timeout",
        "600",
        // No network but loopback: the agent reaches the model only through the vault's socket.
        "--shield",
        "offline",
    ])
    .output()
    .unwrap();
    let name = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Container: "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no container announced: {}", text(&out)));
    let cleanup = |name: &str| {
        let _ = cli(&["rm", name]).output();
        let _ = cli(&["vault", "stop"]).output();
    };
    if !out.status.success() || !model.mismatches().is_empty() {
        let report = format!(
            "exit {:?}\n{}\nmismatches: {:?}\nrequests: {:?}",
            out.status.code(),
            text(&out),
            model.mismatches(),
            model
                .requests()
                .iter()
                .map(|r| format!("{} {}", r.method, r.path_and_query))
                .collect::<Vec<_>>()
        );
        cleanup(&name);
        panic!("{report}");
    }

    // The agent did the work: the file is fixed and the sample's own test passes.
    assert_eq!(model.turns_served(), 3, "Read, Edit, answer");
    let calc = std::fs::read_to_string(project.join("calc.py")).unwrap();
    assert!(calc.contains("return a + b"), "{calc}");
    let passing = Command::new("python3")
        .args(["-m", "unittest", "-q"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(passing.status.success(), "{}", text(&passing));
    // The final answer reached the user (raw stream-json, since stdout is not a terminal).
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("subtracted its arguments"),
        "{}",
        text(&out)
    );

    // Upstream saw the real key on every model call, and never a phantom token.
    let requests = model.requests();
    let calls: Vec<_> = requests
        .iter()
        .filter(|r| r.path_and_query.starts_with("/v1/messages"))
        .collect();
    assert!(calls.len() >= 3, "{} model calls", calls.len());
    for r in &calls {
        assert_eq!(
            r.header("x-api-key"),
            Some(REAL_KEY),
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

    // The real key is nowhere the container or podman could see it.
    let inspect = Command::new("podman")
        .args(["container", "inspect", &name])
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let inspect_text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        !inspect_text.contains(REAL_KEY),
        "in the container's config"
    );
    assert!(
        inspect_text.contains("terok-p-"),
        "the container got a phantom token"
    );
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        info[0]["HostConfig"]["NetworkMode"], "none",
        "the run was offline"
    );
    let upper = info[0]["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .map(PathBuf::from);
    let key = REAL_KEY.as_bytes();
    let mut leaks = files_containing(&env.state_root().join("executor"), key);
    leaks.extend(files_containing(
        &env.state_root().join("sandbox-live"),
        key,
    ));
    leaks.extend(files_containing(&project, key));
    if let Some(upper) = &upper {
        leaks.extend(files_containing(upper, key));
    }
    assert!(leaks.is_empty(), "the real key is in {leaks:?}");
    let argv = std::fs::read_to_string(&podman_log).unwrap();
    assert!(argv.contains("run --sig-proxy=false"), "{argv}");
    assert!(
        !argv.contains(REAL_KEY),
        "the real key was on podman's argv"
    );

    // The run is over: its tokens are revoked.
    let tokens = cli(&["vault", "list", "--tokens"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&tokens.stdout).contains(&name),
        "{}",
        text(&tokens)
    );
    cleanup(&name);
}
