//! `run --runtime krun`, as far as this host can go: Debian has no libkrun, so
//! `TEROK_KRUN_OCI_RUNTIME=runc` starts the very guest a krun launch starts — the L1 image with
//! every krun argument (the `%host` public key for sshd, `TEROK_CONTAINER_RUNTIME=krun`, root
//! for the first process), its first process the guest's SSH server, its port published on
//! 127.0.0.1, behind the default allow-list firewall — as a plain container. The real Claude
//! Code then fixes the sample's failing test through the vault, its headless command sent
//! over SSH with the vault's `%host` key: the guest's sshd logs the login, the container's own
//! command is the SSH server, and the model saw only the real key. Without the override, on
//! this host, the launch is refused with what to install.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::e2e::{Run, Scenario};
use common::text;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

fn scenario() -> Scenario {
    Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: "sk-ant-api03-REAL-krun-e2e-key-that-stays-home-77b4",
        config: LAUNCH_TEST_CONFIG,
        suite: "bookworm",
        image_lock: "launch-images",
        turns: 3,
    }
}

#[test]
fn claude_fixes_the_failing_test_in_a_guest_reached_over_ssh() {
    if !require_podman("claude_fixes_the_failing_test_in_a_guest_reached_over_ssh") {
        return;
    }
    let scenario = scenario();
    let mut run = Run::new(&scenario, |env| {
        install_scripted_agent(env).unwrap();
    });
    run.prepare_host();
    assert!(
        !run.sample_test_passes().status.success(),
        "the sample must start broken"
    );
    let out = run
        .cli(&[
            "run",
            "claude",
            "project",
            "-p",
            "fix the failing test",
            "--timeout",
            "600",
            "--runtime",
            "krun",
        ])
        .env("TEROK_KRUN_OCI_RUNTIME", "runc")
        .output()
        .unwrap();
    run.container = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Container: "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned);
    assert!(
        out.status.success(),
        "exit {:?}\n{}\nunanswered: {:?}\nlast request: {}",
        out.status.code(),
        text(&out),
        run.model.unanswered(),
        run.last_request_tail()
    );
    let name = run.container.clone().expect("a container");
    assert!(
        run.sample_test_passes().status.success(),
        "the test still fails"
    );
    assert!(
        !text(&out).contains("egress is open"),
        "the firewall stays on: {}",
        text(&out)
    );
    run.assert_upstream_saw_only_the_real_key();

    // The container ran the guest's SSH server, not the agent; the agent came over SSH.
    let inspect = Command::new("podman")
        .args(["container", "inspect", &name])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let info = &info[0];
    let command = info["Config"]["Cmd"].to_string();
    assert!(command.contains("terok-krun-guest"), "{command}");
    assert!(!command.contains("claude"), "{command}");
    assert_eq!(info["Config"]["User"], "root");
    assert_eq!(info["OCIRuntime"], "runc");
    let env = info["Config"]["Env"].to_string();
    assert!(env.contains("TEROK_CONTAINER_RUNTIME=krun"), "{env}");
    let mounts = info["Mounts"].to_string();
    assert!(
        mounts.contains("/etc/ssh/authorized_keys.d/terok"),
        "{mounts}"
    );
    assert!(
        !mounts.contains("krun_host.key\""),
        "the private key is never mounted"
    );
    assert!(
        !inspect
            .stdout
            .windows(scenario.real_key.len())
            .any(|w| w == scenario.real_key.as_bytes()),
        "the real key is in the container's config"
    );
    let logs = Command::new("podman")
        .args(["logs", &name])
        .output()
        .unwrap();
    let logs = text(&logs);
    eprintln!("the run:\n{}\nthe guest's log:\n{logs}", text(&out));
    assert!(
        logs.contains("Accepted publickey for dev"),
        "the guest's sshd let the host in: {logs}"
    );
    // The run is over: the guest ended with it, like a container with its command.
    let state = Command::new("podman")
        .args(["inspect", "--format", "{{.State.Running}}", &name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "false");
}

#[test]
fn krun_on_a_host_without_it_says_what_to_install() {
    if !require_podman("krun_on_a_host_without_it_says_what_to_install") {
        return;
    }
    if std::path::Path::new("/dev/kvm").exists()
        && ["/usr/bin/krun", "/usr/local/bin/krun", "/usr/sbin/krun"]
            .iter()
            .any(|p| std::path::Path::new(p).exists())
    {
        eprintln!(
            "*** SKIPPED krun_on_a_host_without_it_says_what_to_install: this host has krun ***"
        );
        return;
    }
    let scenario = scenario();
    let run = Run::new(&scenario, |env| {
        install_scripted_agent(env).unwrap();
    });
    let out = run
        .cli(&["run", "claude", "project", "-p", "x", "--runtime", "krun"])
        .env_remove("TEROK_KRUN_OCI_RUNTIME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("this host cannot start krun microVMs")
            && said.contains("install crun built with libkrun"),
        "{said}"
    );
    let tasks = run.env.state_root().join("executor/tasks");
    let created = std::fs::read_dir(&tasks).map(|d| d.count()).unwrap_or(0);
    assert_eq!(created, 0, "nothing was created in {}", tasks.display());
}

#[test]
fn a_restricted_interactive_guest_prints_a_login_with_the_tasks_environment_and_no_sudo() {
    if !require_podman(
        "a_restricted_interactive_guest_prints_a_login_with_the_tasks_environment_and_no_sudo",
    ) {
        return;
    }
    let scenario = scenario();
    let mut run = Run::new(&scenario, |env| {
        install_scripted_agent(env).unwrap();
    });
    run.prepare_host();
    let out = run
        .cli(&[
            "run",
            "claude",
            "project",
            "--interactive",
            "--runtime",
            "krun",
            "--restricted",
        ])
        .env("TEROK_KRUN_OCI_RUNTIME", "runc")
        .output()
        .unwrap();
    run.container = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Container: "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let login = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Guest ready. Login with:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no login line: {}", text(&out)))
        .trim()
        .to_owned();
    assert!(
        login.starts_with("ssh ") && login.ends_with("dev@127.0.0.1"),
        "{login}"
    );
    // What a person's login shell sees: the task's environment, the agent, a phantom token.
    let session = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{login} -o BatchMode=yes -- bash -lc \
             \"'echo task=\\$TASK_ID; type -t claude; echo key=\\${{ANTHROPIC_API_KEY:0:8}}; pwd; \
             test -e /etc/sudoers.d/dev || echo no-sudo-rule'\""
        ))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let said = text(&session);
    assert!(session.status.success(), "{said}");
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("task=") && l.len() > "task=".len()),
        "{said}"
    );
    assert!(lines.contains(&"key=terok-p-"), "{said}");
    assert!(
        lines.contains(&"/workspace") || lines.contains(&"/home/dev"),
        "{said}"
    );
    assert!(
        lines.iter().any(|l| *l == "function" || *l == "file"),
        "claude is there: {said}"
    );
    // Restricted: the guest took dev's sudo rule away (a microVM keeps podman's
    // no-new-privileges on the host's side).
    assert!(lines.contains(&"no-sudo-rule"), "{said}");
}
