//! The web row of `cargo xtask bench` (`--only web`: it builds a Debian sid image with Claude
//! and Toad the first time): how much longer `run claude <dir> --web` takes until the UI
//! answers `200` — the vault, the task, the token gate and the firewall included — than a bare
//! `podman run` of the same image serving Toad on a published port, on cached images.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use terok_testkit::IsolatedEnv;

use super::table::{Goal, Row, fmt_num, median_ms};
use crate::util::run_echo;

const CONFIG: &str = "image:\n  base_image: localhost/debian:sid\n  agents: claude\n";
/// How long one start may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(120);

pub fn row(binary: &Path, runs: usize) -> anyhow::Result<Row> {
    if !terok_testkit::podman::podman_works() {
        bail!("podman is needed for the web row; run `cargo xtask host-setup`");
    }
    terok_testkit::base_image::ensure_suite_image("sid", &mut |line| println!("bench: {line}"))?;
    let env = IsolatedEnv::new()?;
    env.write_user_config(CONFIG)?;
    std::fs::create_dir_all(env.work_dir().join("project"))?;
    println!("bench: making sure the sid image with Claude and Toad is current…");
    run_echo(
        env.command(binary)
            .args(["build", "--agents", "claude,toad"]),
    )?;
    run_echo(env.command(binary).args(["vault", "start"]))?;
    // The first launch is not measured (it checks the images); it names the image.
    let (task, _) = web_task(&env, binary)?;
    let image = image_of(&task)?;
    remove_task(&env, binary, &task);
    let mut terok = Vec::new();
    let mut bare = Vec::new();
    for run in 0..runs {
        let (task, elapsed) = web_task(&env, binary)?;
        remove_task(&env, binary, &task);
        terok.push(elapsed);
        bare.push(bare_podman(&image, run)?);
    }
    let _ = env.command(binary).args(["vault", "stop"]).output();
    let terok = median_ms(&mut terok);
    let bare = median_ms(&mut bare);
    Ok(Row {
        figure: format!(
            "`run --web` to the UI's first 200 over a bare `podman run` of Toad, cached images (median of {runs})"
        ),
        value: (terok - bare) / 1000.0,
        unit: "s",
        goal: Goal::AtMost(3.0),
        baseline: format!(
            "run --web {} ms, podman run {} ms",
            fmt_num(terok),
            fmt_num(bare)
        ),
    })
}

/// `run claude project --web` (it returns once the UI answers 200): the task and the time.
fn web_task(env: &IsolatedEnv, binary: &Path) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let out = env
        .command(binary)
        .args(["run", "claude", "project", "--web"])
        .stdin(Stdio::null())
        .output()?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!("run --web failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let task = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Container: "))
        .map(str::to_owned)
        .context("no container name")?;
    Ok((task, elapsed))
}

fn remove_task(env: &IsolatedEnv, binary: &Path, task: &str) {
    let _ = env.command(binary).args(["rm", task]).output();
}

fn image_of(container: &str) -> anyhow::Result<String> {
    let out = Command::new("podman")
        .args(["inspect", "--format", "{{.ImageName}}", container])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `podman run -d -p 127.0.0.1:<port>:8080 IMAGE toad --serve …` until `GET /` answers 200.
fn bare_podman(image: &str, run: usize) -> anyhow::Result<Duration> {
    let port = free_port()?;
    let name = format!("terok-bench-bare-web-{}-{run}", std::process::id());
    let started = Instant::now();
    let out = Command::new("podman")
        .args(["run", "-d", "--name", &name, "--publish"])
        .arg(format!("127.0.0.1:{port}:8080"))
        .arg(image)
        .args([
            "toad",
            "--serve",
            "-H",
            "0.0.0.0",
            "-p",
            "8080",
            "--public-url",
        ])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("/workspace")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("podman run: {}", String::from_utf8_lossy(&out.stderr));
    }
    let answered = loop {
        if status(port) == Some(200) {
            break Some(started.elapsed());
        }
        if started.elapsed() > LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", &name])
        .output();
    answered.context("the bare Toad did not answer")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The status of `GET /` on 127.0.0.1:`port`, `None` while nothing answers.
fn status(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
