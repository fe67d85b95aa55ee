//! `run-tool` with real podman: a stand-in tool from a user roster entry (its `sidecar.install`
//! builds it into the sidecar image) reports the variable names it sees and whether its mapped
//! credential is the stored one — never the value. The credential reaches the tool only: not
//! podman's argv, not the task's files, not the output; the tool's exit code is the CLI's, and
//! `--timeout` ends it with 124. The container is gone afterwards.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::e2e::files_containing;
use common::{Host, text};
use terok_testkit::agents::machine_lock;
use terok_testkit::podman::require_podman;

const TOOL_KEY: &str = "ftk-REAL-sidecar-test-key-3c9a71";

/// The stand-in tool: `faketool SHA256 [SLEEP] [EXIT]`.
const FAKE_TOOL: &str = r#"roster_version: 1
kind: tool
label: Fake review tool
binary: faketool
auth:
  host_dir: _faketool-config
  container_mount: /home/dev/.faketool
  modes: [api_key]
vault:
  route_prefix: faketool
  upstream: https://faketool.invalid
  auth_header: Authorization
  auth_prefix: "Bearer "
  credential_type: api_key
  phantom_env:
    FAKETOOL_KEY: true
sidecar:
  env_map:
    FAKETOOL_KEY: key
  install: |
    RUN printf '%s\n' '#!/bin/bash' \
      'echo "faketool env: $(compgen -e | sort | xargs)"' \
      'got=$(printf %s "${FAKETOOL_KEY-}" | sha256sum | cut -d" " -f1)' \
      'if [ "$got" = "$1" ]; then echo "faketool credential: right"; else echo "faketool credential: wrong"; fi' \
      'sleep "${2:-0}"' \
      'exit "${3:-0}"' > /usr/local/bin/faketool \
     && chmod 0755 /usr/local/bin/faketool
"#;

fn sha256_hex(text: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The host with the stand-in tool in its user roster and its key stored.
fn tool_host() -> Host {
    let host = Host::new();
    let dir = host.env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("faketool.yaml"), FAKE_TOOL).unwrap();
    terok_testkit::cli::store_key(&host.env, common::BIN, "faketool", TOOL_KEY);
    host
}

#[test]
fn a_sidecar_tool_gets_its_credential_and_nothing_else_and_its_exit_code_is_the_clis() {
    if !require_podman("a_sidecar_tool_gets_its_credential_and_nothing_else") {
        return;
    }
    let host = tool_host();
    let want = sha256_hex(TOOL_KEY);
    let out = {
        let _lock = machine_lock("launch-images").unwrap();
        host.run(&[
            "run-tool", "faketool", "project", "--shield", "offline", "--yes", "--", &want, "0",
            "3",
        ])
    };
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "the tool's exit code: {all}");
    assert!(all.contains("faketool credential: right"), "{all}");
    let names: Vec<&str> = all
        .lines()
        .find_map(|l| l.strip_prefix("faketool env: "))
        .unwrap_or_else(|| panic!("{all}"))
        .split_whitespace()
        .collect();
    for name in ["TASK_ID", "REPO_ROOT", "GIT_RESET_MODE", "FAKETOOL_KEY"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // Nothing of an agent's: no phantom tokens, no vault or gate wiring, no agent settings.
    for name in &names {
        assert!(
            !name.starts_with("TEROK_VAULT")
                && !name.starts_with("ANTHROPIC")
                && !name.starts_with("CLAUDE")
                && !name.starts_with("GIT_AUTHOR")
                && *name != "TEROK_UNRESTRICTED",
            "{name} in {names:?}"
        );
    }
    // The key itself went nowhere but into the tool.
    assert!(!all.contains(TOOL_KEY), "{all}");
    let leaked = files_containing(host.env.root(), TOOL_KEY.as_bytes());
    assert!(leaked.is_empty(), "{leaked:?}");
    // The container and its task are gone (the list is machine-wide: other tests' tasks may
    // be in it, this one's is not).
    let name = common::announced_name(&out);
    let list = host.run(&["list", "--json"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "{}",
        text(&list)
    );
    let exists = std::process::Command::new("podman")
        .args(["container", "exists", &name])
        .status()
        .unwrap();
    assert!(!exists.success(), "{name} is still there");

    // The tool's stdout is the CLI's; a wrong key is told apart from the right one.
    let out = host.run(&[
        "run-tool", "faketool", "project", "--shield", "offline", "--", "0000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("faketool credential: wrong"),
        "{}",
        text(&out)
    );

    // --timeout ends it: 124.
    let out = host.run(&[
        "run-tool",
        "faketool",
        "project",
        "--shield",
        "offline",
        "--timeout",
        "2",
        "--",
        &want,
        "30",
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
}

#[test]
fn a_tool_without_a_stored_credential_runs_and_says_how_to_store_one() {
    if !require_podman("a_tool_without_a_stored_credential_runs_and_says_how_to_store_one") {
        return;
    }
    let host = Host::new();
    let dir = host.env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("faketool.yaml"), FAKE_TOOL).unwrap();
    let out = {
        let _lock = machine_lock("launch-images").unwrap();
        host.run(&[
            "run-tool", "faketool", "project", "--shield", "offline", "--yes", "--", "x",
        ])
    };
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("Run: terok-executor auth faketool --api-key <key>"),
        "{all}"
    );
    assert!(all.contains("faketool credential: wrong"), "{all}");
}
