//! What the CLI's podman tests share: an isolated host with the launch-test config, the
//! stand-in agent, a stored Claude key, the images built and the vault running.

// Test helpers may panic: a panic is how a test reports failure. Each test file uses some.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    dead_code
)]

use std::process::{Child, Command, Output, Stdio};

use terok_testkit::IsolatedEnv;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent, machine_lock};
use terok_testkit::base_image::ensure_base_image;

pub mod acp_client;
pub mod acp_e2e;
pub mod e2e;
pub mod network;
pub mod remote;

pub const REAL_KEY: &str = "sk-ant-api03-REAL-launch-test-key-5d1e0b";
pub const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

/// An isolated host with the launch-test config, the stand-in agent, a stored Claude key, the
/// images built (once per machine, under a lock) and the vault running. Dropping it stops the
/// vault and removes every container it started.
pub struct Host {
    pub env: IsolatedEnv,
}

impl Host {
    pub fn new() -> Self {
        ensure_base_image(&mut |_| {}).unwrap();
        let env = IsolatedEnv::new().unwrap();
        env.write_user_config(LAUNCH_TEST_CONFIG).unwrap();
        install_scripted_agent(&env).unwrap();
        std::fs::create_dir_all(env.work_dir().join("project")).unwrap();
        std::fs::write(env.work_dir().join("project/README.md"), "# sample\n").unwrap();
        let host = Self { env };
        terok_testkit::cli::store_key(&host.env, BIN, "claude", REAL_KEY);
        {
            let _lock = machine_lock("launch-images").unwrap();
            let out = host.run(&["build"]);
            assert!(out.status.success(), "build: {}", text(&out));
        }
        let out = host.run(&["vault", "start"]);
        assert!(out.status.success(), "vault start: {}", text(&out));
        host
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.env.command(BIN);
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Launches an interactive task of the stand-in agent with the Claude key; its name.
    pub fn run_interactive(&self) -> String {
        let out = self.run(&[
            "run",
            "scripted",
            "project",
            "--interactive",
            "--credential",
            "claude",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        announced_name(&out)
    }

    pub fn tasks_dir(&self) -> std::path::PathBuf {
        self.env.state_root().join("executor/tasks")
    }

    pub fn task_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.tasks_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `list --json` as (name, state) pairs, for this host's tasks only (podman is shared by
    /// the tests running at the same time, and `list` shows every terok container).
    pub fn list(&self) -> Vec<(String, String)> {
        let out = self.run(&["list", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mine = self.task_dirs();
        value
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| mine.iter().any(|id| t["task_id"] == id.as_str()))
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_owned(),
                    t["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Containers holding live tokens, from `vault list --tokens`.
    pub fn token_holders(&self) -> Vec<String> {
        let out = self.run(&["vault", "list", "--tokens"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("terok-executor-"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let names: Vec<String> = self.list().into_iter().map(|(n, _)| n).collect();
        for name in names {
            // The CLI's environment: rootless, podman's runtime state is under its
            // XDG_RUNTIME_DIR.
            let _ = self
                .env
                .command("podman")
                .args(["rm", "-f", &name])
                .output();
        }
        let _ = self.run(&["vault", "stop"]);
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The container name the CLI announced (`Container: NAME` on stderr).
pub fn announced_name(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Container: "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no container announced: {}", text(out)))
}
