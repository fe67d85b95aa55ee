//! `doctor` and `storage` on a real task: an interactive Claude container (the agent's real
//! CLI, the vault, offline). Inside a healthy task every check is ok; then, as the agent could,
//! the vault bridge is killed (an error `--fix` repairs in place); the agent cannot write its
//! credential file (a read-only phantom), but a real-looking key that reached it on the host is
//! an error that never repeats the key. `storage` then counts the task, the shared config
//! directories and the images.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::e2e::{Run, Scenario};
use common::text;
use serde_json::Value;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

/// The checks inside a Claude task with the vault.
const CLAUDE_CHECKS: [&str; 4] = [
    "bridge.vault",
    "mount._claude-config",
    "env.ANTHROPIC_API_KEY",
    "base-url.ANTHROPIC_BASE_URL",
];

fn scenario() -> Scenario {
    Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: "sk-ant-api03-REAL-doctor-e2e-key-that-stays-home-3c0e",
        config: LAUNCH_TEST_CONFIG,
        suite: "bookworm",
        image_lock: "launch-images",
        turns: 3,
    }
}

/// `doctor NAME --json [extra]`: its exit code and its checks by id.
fn doctor(run: &Run, name: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut args = vec!["doctor", name, "--json"];
    args.extend_from_slice(extra);
    let out = run.cli(&args).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks: Vec<Value> =
        serde_json::from_str(&said).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code().unwrap_or(-1), checks, said)
}

fn verdict<'a>(checks: &'a [Value], id: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {checks:#?}"))
}

fn exec(name: &str, line: &str) {
    let out = std::process::Command::new("podman")
        .args(["exec", name, "bash", "-c", line])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}: {}", text(&out));
}

#[test]
fn doctor_looks_inside_a_real_task_and_storage_counts_it() {
    if !require_podman("doctor_looks_inside_a_real_task_and_storage_counts_it") {
        return;
    }
    let scenario = scenario();
    let mut run = Run::new(&scenario, |env| {
        install_scripted_agent(env).unwrap();
    });
    run.prepare_host();
    let name = run.launch_interactive();

    let (code, checks, said) = doctor(&run, &name, &[]);
    for id in CLAUDE_CHECKS {
        assert_eq!(verdict(&checks, id)["verdict"], "ok", "{said}");
    }
    assert_eq!(code, 0, "{said}");

    // The agent kills the vault bridge: an error, repaired by --fix.
    exec(&name, "kill \"$(cat /tmp/.terok/vault-loopback.pid)\"");
    let (code, checks, said) = doctor(&run, &name, &[]);
    let bridge = verdict(&checks, "bridge.vault");
    assert_eq!(bridge["verdict"], "error", "{said}");
    assert_eq!(bridge["fixable"], true, "{said}");
    assert_eq!(code, 1);
    let (_, checks, said) = doctor(&run, &name, &["--fix"]);
    let bridge = verdict(&checks, "bridge.vault");
    assert_eq!(bridge["verdict"], "ok", "{said}");
    assert!(
        bridge["detail"].as_str().unwrap().contains("fixed"),
        "{said}"
    );
    let (_, checks, said) = doctor(&run, &name, &[]);
    assert_eq!(verdict(&checks, "bridge.vault")["verdict"], "ok", "{said}");

    // The agent cannot write its credential file (a read-only phantom)...
    let out = std::process::Command::new("podman")
        .args([
            "exec",
            &name,
            "bash",
            "-c",
            "echo x > /home/dev/.claude/.credentials.json",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    // ...but a real key that reached it on the host (copied there by hand) is found.
    let listing: Value = serde_json::from_slice(&run.must(&["list", "--json"]).stdout).unwrap();
    let id = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name.as_str())
        .and_then(|t| t["task_id"].as_str())
        .unwrap_or_else(|| panic!("{listing:#}"))
        .to_owned();
    let phantom = run
        .env
        .state_root()
        .join("executor/tasks")
        .join(&id)
        .join("credentials/_claude-config/.credentials.json");
    assert!(phantom.is_file(), "{}", phantom.display());
    // Written in place: the container's mount is of this very file.
    std::fs::write(
        &phantom,
        r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-PLANTED-on-the-host"}}"#,
    )
    .unwrap();
    let (code, checks, said) = doctor(&run, &name, &[]);
    assert_eq!(
        verdict(&checks, "mount._claude-config")["verdict"],
        "error",
        "{said}"
    );
    assert_eq!(code, 1);
    assert!(!said.contains("PLANTED"), "the key is not repeated: {said}");
    let table = run.cli(&["doctor", &name]).output().unwrap();
    assert!(!text(&table).contains("PLANTED"), "{}", text(&table));

    // storage: the task, the shared config directories, the images.
    let out = run.must(&["storage", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let task = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name.as_str())
        .unwrap_or_else(|| panic!("the task: {report:#}"));
    // The planted file is among the task's phantom credential files ("other").
    assert!(task["other_bytes"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        task["total_bytes"].as_u64().unwrap()
            >= task["agent_config_bytes"].as_u64().unwrap() + task["other_bytes"].as_u64().unwrap(),
        "{report:#}"
    );
    let images = report["images"].as_array().unwrap();
    assert!(
        images
            .iter()
            .any(|i| i["size_bytes"].as_u64().unwrap_or(0) > 0),
        "{report:#}"
    );
    assert!(report["totals"]["images_bytes"].as_u64().unwrap() > 0);
    let table = run.must(&["storage"]);
    assert!(text(&table).contains(&name), "{}", text(&table));
}
