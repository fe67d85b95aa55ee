//! `cargo xtask demo [--agent NAME]`: the whole story on this machine. Host setup, the base
//! image, the images; the scripted model server (`terok-mock-model`) standing in for the
//! agent's vendor API (Anthropic Messages, OpenAI Responses or Chat Completions); then the real
//! agent CLI (Claude Code by default; Codex, OpenRouter through OpenCode, Mistral Vibe, Pi) in a
//! terok container fixes the failing test of `demo/sample-project` (a copy), and the demo prints
//! the agent's output, the diff and the passing test. Everything runs in a temporary HOME: the
//! user's own terok files are not touched.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use terok_testkit::IsolatedEnv;
use terok_testkit::demo::{DemoAgent, demo_agent, demo_agent_names};

use crate::util::{display, run_echo, workspace_root};

/// A real-looking key: it never leaves the host (the vault swaps it in on the way to the
/// scripted model, which checks nothing).
const DEMO_KEY: &str = "sk-demo-key-kept-on-the-host";

fn step(title: &str) {
    println!("\n==> {title}");
}

/// Stops the mock model server when the demo ends, however it ends.
struct ModelServer(Child);

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo's config.yml (the agent's base, the agent) and the roster override that sends
/// the provider's API traffic to the scripted model at `url`.
fn private_home(env: &IsolatedEnv, entry: &DemoAgent, url: &str) -> anyhow::Result<()> {
    env.write_user_config(&format!(
        "image:\n  base_image: localhost/debian:{}\n  agents: {}\n",
        entry.suite, entry.agent
    ))?;
    let agents = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&agents)?;
    std::fs::write(
        agents.join(format!("{}.yaml", entry.provider)),
        format!(
            "# The demo sends {}'s API traffic to the scripted model.\nvault:\n  upstream: {url}{}\n",
            entry.provider, entry.upstream_path
        ),
    )?;
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

pub fn run(agent: &str) -> anyhow::Result<()> {
    let Some(entry) = demo_agent(agent) else {
        bail!(
            "no demo for `{agent}`; --agent takes one of: {}",
            demo_agent_names()
        );
    };
    let started = Instant::now();
    let root = workspace_root();
    let demo = root.join("demo");

    step("host setup (podman, base image tools; idempotent)");
    crate::host_setup::setup(false)?;
    step(&format!("base image localhost/debian:{}", entry.suite));
    terok_testkit::base_image::ensure_suite_image(entry.suite, &mut |line| println!("{line}"))?;

    step("building terok-executor and terok-mock-model");
    run_echo(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&root)
            .args([
                "build",
                "--locked",
                "-p",
                "terok-executor-cli",
                "-p",
                "terok-testkit",
                "--bin",
                "terok-executor",
                "--bin",
                "terok-mock-model",
            ]),
    )?;
    let bin_dir = target_dir(&root).join("debug");
    let terok = bin_dir.join("terok-executor");

    step(&format!(
        "scripted model server ({} API; the vendor's API is not reachable here)",
        entry.protocol.name()
    ));
    let script = demo.join(entry.script);
    let mut child = Command::new(bin_dir.join("terok-mock-model"))
        .arg("--script")
        .arg(&script)
        .args(["--protocol", entry.protocol.name()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start terok-mock-model")?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout from terok-mock-model")?;
    let server = ModelServer(child);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url)?;
    let url = url.trim().to_owned();
    if !url.starts_with("http://") {
        bail!("terok-mock-model did not report its address");
    }
    println!("listening on {url}, script {}", script.display());

    // A private terok home: config, roster override, vault, tasks.
    let env = IsolatedEnv::new()?;
    private_home(&env, entry, &url)?;
    let terok_cmd = |args: &[&str]| {
        let mut cmd = env.command(&terok);
        cmd.args(args);
        cmd
    };

    step("storing the API key on the host (the container will only see a phantom token)");
    // From stdin, as a careful user does: a key on a command line shows in the process list.
    let mut auth = terok_cmd(&["auth", entry.provider, "--api-key", "-"]);
    auth.stdin(Stdio::piped()).stdout(Stdio::inherit());
    println!("$ {} <<< '<key>'", display(&auth));
    let mut child = auth.spawn().context("cannot run terok-executor auth")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(DEMO_KEY.as_bytes())?;
    }
    if !child.wait()?.success() {
        bail!("storing the demo key failed");
    }
    step("setup: vault routes, vault daemon, images (the first build takes a few minutes)");
    run_echo(&mut terok_cmd(&["setup"]))?;

    let project = env.work_dir().join("sample-project");
    copy_dir(&demo.join("sample-project"), &project)?;
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.current_dir(&project)
            .args(args)
            .env("GIT_AUTHOR_NAME", "Demo")
            .env("GIT_AUTHOR_EMAIL", "demo@localhost")
            .env("GIT_COMMITTER_NAME", "Demo")
            .env("GIT_COMMITTER_EMAIL", "demo@localhost");
        cmd
    };
    for args in [
        &["init", "-q"][..],
        &["add", "."][..],
        &["commit", "-q", "-m", "sample project"][..],
    ] {
        let out = git(args).output()?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    step("the sample's test fails before");
    let mut test = Command::new("python3");
    test.args(["-m", "unittest"]).current_dir(&project);
    println!("$ {}", display(&test));
    let before = test.status()?;
    if before.success() {
        bail!("the sample project's test should fail before the fix");
    }

    let mut args = vec![
        "run",
        entry.agent,
        "sample-project",
        "-p",
        "fix the failing test",
    ];
    args.extend_from_slice(entry.run_args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| match a.contains(' ') {
            true => format!("\"{a}\""),
            false => (*a).to_owned(),
        })
        .collect();
    step(&format!("terok-executor {}", shown.join(" ")));
    // Readable output even when the demo's own output goes to a log; --rm leaves no container
    // behind (the fix is in the host's copy of the project).
    args.extend_from_slice(&["--yes", "--rm", "--output", "text"]);
    let mut run = terok_cmd(&args);
    let status = run.status().context("cannot run terok-executor")?;
    let result = (|| -> anyhow::Result<()> {
        if !status.success() {
            bail!("the agent run failed ({status})");
        }
        step("the diff");
        let diff = git(&["--no-pager", "diff", "--color=never"]).output()?;
        print!("{}", String::from_utf8_lossy(&diff.stdout));
        if diff.stdout.is_empty() {
            bail!("the agent changed nothing");
        }
        step("the sample's test passes now");
        println!("$ {}", display(&test));
        let after = test.status()?;
        if !after.success() {
            bail!("the test still fails");
        }
        Ok(())
    })();
    let _ = terok_cmd(&["vault", "stop"]).output();
    drop(server);
    result?;
    println!(
        "\ndemo: done in {:.0} s (real {agent}, real container, real vault; scripted model)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
