//! The launch-overhead rows of `cargo xtask bench`: time from `terok-executor run` to the
//! agent's first output line, minus the same for a bare `podman run` of the same image and
//! command — unfiltered (`--shield open`) and behind the allow-list firewall (the default:
//! the OCI hook loads and verifies the ruleset) — measured in turn in the same run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use terok_testkit::IsolatedEnv;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, SCRIPTED_AGENT, install_scripted_agent};

use super::table::{Goal, Row, fmt_num, median_ms};
use crate::util::run_echo;

/// What the stand-in agent prints; the clock stops when it appears.
const MARKER: &str = "terok-bench-first-line";

/// Spawns `cmd` and returns how long it took until a stdout line contained [`MARKER`]; the
/// process is then waited for, and must succeed.
fn time_to_marker(mut cmd: Command) -> anyhow::Result<Duration> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut first = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if first.is_none() && line.contains(MARKER) {
            first = Some(started.elapsed());
        }
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    first.with_context(|| format!("{:?} never printed the marker", cmd.get_program()))
}

/// An isolated host for launches: the launch images current, a stored credential (so
/// launches open a listener and mint tokens as a real one does) and the vault running; with
/// the vault's pid.
pub fn launch_host(binary: &Path) -> anyhow::Result<(IsolatedEnv, u32)> {
    if !terok_testkit::podman::podman_works() {
        bail!("podman is needed for the launch rows; run `cargo xtask host-setup`");
    }
    terok_testkit::base_image::ensure_base_image(&mut |line| println!("bench: {line}"))?;
    let env = IsolatedEnv::new()?;
    env.write_user_config(LAUNCH_TEST_CONFIG)?;
    install_scripted_agent(&env)?;
    std::fs::create_dir_all(env.work_dir().join("project"))?;
    println!("bench: making sure the launch images are current (the first build takes minutes)…");
    run_echo(env.command(binary).arg("build"))?;
    let mut auth = env.command(binary);
    auth.args([
        "auth",
        "claude",
        "--api-key",
        "sk-ant-api03-bench-not-a-real-key",
    ])
    .stdout(Stdio::null());
    if !auth.status()?.success() {
        bail!("cannot store the bench credential");
    }
    let started = env.command(binary).args(["vault", "start"]).output()?;
    let said = String::from_utf8_lossy(&started.stdout).into_owned();
    let pid = said
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches([')', '.', '\n']).parse().ok())
        .with_context(|| format!("`vault start` said no pid: {said}"))?;
    Ok((env, pid))
}

pub fn rows(binary: &Path, runs: usize) -> anyhow::Result<Vec<Row>> {
    let (env, _) = launch_host(binary)?;

    let image = format!(
        "terok-l1-cli:{}-claude-{SCRIPTED_AGENT}",
        terok_image_build::base_fragment(terok_testkit::base_image::BASE_IMAGE)
    );
    let agent_cmd = format!("init-ssh-and-repo.sh && terok-scripted-agent -c 'echo {MARKER}'");
    // The default profiles name domains: the hook then also starts the task's DNS forwarder.
    // A profile with one domain that nothing resolves (`.invalid`) measures that start.
    std::fs::create_dir_all(env.user_config_dir().join("shield/profiles"))?;
    std::fs::write(
        env.user_config_dir()
            .join("shield/profiles/bench-domains.txt"),
        "bench.terok.invalid\n",
    )?;
    let forwarder_config = env.user_config_dir().join("bench-forwarder.yml");
    std::fs::write(
        &forwarder_config,
        format!("{LAUNCH_TEST_CONFIG}shield:\n  profiles: [bench-domains]\n"),
    )?;
    // Without dnsmasq a launch would resolve that name on this host: no such row then.
    let forwarder = std::path::Path::new("/usr/sbin/dnsmasq").is_file();
    let ours = |shield: &str, config: Option<&std::path::Path>| {
        let mut cmd = env.command(binary);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["run", SCRIPTED_AGENT, "project", "--rm", "--shield", shield])
            .args(["-p", &format!("echo {MARKER}")]);
        cmd
    };
    let result = (|| -> anyhow::Result<[f64; 4]> {
        let mut samples: [Vec<Duration>; 4] = Default::default();
        for _ in 0..runs {
            let mut cmd = Command::new("podman");
            cmd.args(["run", "--rm", &image, "bash", "-lc", &agent_cmd]);
            samples[0].push(time_to_marker(cmd)?);
            samples[1].push(time_to_marker(ours("open", None))?);
            samples[2].push(time_to_marker(ours("allowlist", None))?);
            if forwarder {
                samples[3].push(time_to_marker(ours("allowlist", Some(&forwarder_config)))?);
            }
        }
        Ok(samples.map(|mut s| {
            if s.is_empty() {
                f64::NAN
            } else {
                median_ms(&mut s)
            }
        }))
    })();
    let _ = env.command(binary).args(["vault", "stop"]).output();
    let [bare, open, allowlist, with_forwarder] = result?;
    let row = |what: &str, value: f64, goal: f64| Row {
        figure: format!(
            "launch overhead{what}: `run` to first agent line minus bare `podman run` (median of {runs})"
        ),
        value: value - bare,
        unit: "ms",
        goal: Goal::AtMost(goal),
        baseline: format!(
            "bare `podman run` {} ms, `run` {} ms",
            fmt_num(bare),
            fmt_num(value)
        ),
    };
    let mut rows = vec![
        row(", unfiltered (`--shield open`)", open, 100.0),
        row(
            ", allow-list firewall (hook loads and verifies the ruleset)",
            allowlist,
            150.0,
        ),
    ];
    if forwarder {
        rows.push(row(
            ", allow-list firewall and the task's DNS forwarder (a profile with a domain)",
            with_forwarder,
            150.0,
        ));
    }
    Ok(rows)
}
