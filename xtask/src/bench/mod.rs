//! `cargo xtask bench`: speed figures of the release build, each against its goal, printed as one
//! table. Goals are reported, not asserted: the command fails only when a figure cannot be
//! measured. Every figure is measured next to a baseline taken in the same run, so a slow or
//! busy machine shows up in both.

mod acp;
mod first_run;
mod gate;
mod launch;
mod scale;
mod table;
mod vault;
mod web;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use terok_testkit::IsolatedEnv;

use crate::util::{run_echo, workspace_root};
use table::{Goal, Row, fmt_num, print_table, time_command};

/// Builds the release binary and returns its path.
fn release_binary() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    run_echo(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&root)
            .args(["build", "--release", "--locked", "-p", "terok-executor-cli"]),
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("release/terok-executor");
    if !binary.is_file() {
        bail!("release build did not produce {}", binary.display());
    }
    Ok(binary)
}

fn agents_list_row(binary: &Path, runs: usize) -> anyhow::Result<Row> {
    let env = IsolatedEnv::new()?;
    let baseline = time_command(runs, || env.command("/bin/true"))?;
    let value = time_command(runs, || {
        let mut cmd = env.command(binary);
        cmd.args(["agents", "list", "--all"]);
        cmd
    })?;
    Ok(Row {
        figure: format!("cold `agents list --all` (median of {runs})"),
        value,
        unit: "ms",
        goal: Goal::AtMost(5.0),
        baseline: format!("/bin/true {} ms", fmt_num(baseline)),
    })
}

/// The base image and selection the podman-backed rows use.
const BENCH_BASE: &str = terok_testkit::base_image::BASE_IMAGE;

/// The rows of the `build` group: a no-op build, and the size of the image it keeps current.
fn build_rows(binary: &Path, runs: usize) -> anyhow::Result<Vec<Row>> {
    if !terok_testkit::podman::podman_works() {
        bail!("podman is needed for the build rows; run `cargo xtask host-setup`");
    }
    terok_testkit::base_image::ensure_base_image(&mut |line| println!("bench: {line}"))?;
    let env = IsolatedEnv::new()?;
    let build = |cmd: &mut Command| {
        cmd.args(["build", "--base", BENCH_BASE, "--agents", "claude"]);
    };
    // Make every image current first (this may build them).
    println!("bench: making sure the images are current (the first build takes minutes)…");
    let mut warm = env.command(binary);
    build(&mut warm);
    run_echo(&mut warm)?;
    let l0 = format!("terok-l0:{}", terok_image_build::base_fragment(BENCH_BASE));
    let baseline = time_command(runs, || {
        let mut cmd = env.command("podman");
        cmd.args(["image", "exists", &l0]);
        cmd
    })?;
    let value = time_command(runs, || {
        let mut cmd = env.command(binary);
        build(&mut cmd);
        cmd
    })?;
    let noop = Row {
        figure: format!("no-op `build` (images current, median of {runs})"),
        value: value / 1000.0,
        unit: "s",
        goal: Goal::AtMost(0.5),
        baseline: format!("`podman image exists` {} ms", fmt_num(baseline)),
    };
    let l1 = format!(
        "terok-l1-cli:{}-claude",
        terok_image_build::base_fragment(BENCH_BASE)
    );
    let size = Row {
        figure: "L1 image with Claude only, bookworm (L0 included)".to_owned(),
        value: image_gb(&env, &l1)?,
        unit: "GB",
        goal: Goal::AtMost(1.0),
        baseline: format!("L0 alone {} GB", fmt_num(image_gb(&env, &l0)?)),
    };
    Ok(vec![noop, size])
}

/// The size of `image` as podman reports it (all its layers), in GB.
fn image_gb(env: &IsolatedEnv, image: &str) -> anyhow::Result<f64> {
    let mut cmd = env.command("podman");
    cmd.args(["image", "inspect", "--format", "{{.Size}}", image]);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("`podman image inspect {image}` failed");
    }
    let bytes: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(bytes / 1e9)
}

pub fn run(runs: usize, only: Option<&str>) -> anyhow::Result<()> {
    if runs < 20 {
        bail!("--runs must be at least 20 for a meaningful median");
    }
    // The in-process peers (mock upstream, HTTP client) must be optimised like the code they
    // measure, or they dominate the figures: run the benchmark itself from a release build.
    if cfg!(debug_assertions) {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(workspace_root())
            .args([
                "run",
                "--release",
                "--locked",
                "--quiet",
                "-p",
                "xtask",
                "--",
                "bench",
                "--runs",
            ])
            .arg(runs.to_string());
        if let Some(group) = only {
            cmd.args(["--only", group]);
        }
        return run_echo(&mut cmd);
    }
    if let Some(group) = only
        && ![
            "agents",
            "build",
            "launch",
            "vault",
            "gate",
            "first-run",
            "acp",
            "web",
            "scale",
        ]
        .contains(&group)
    {
        bail!(
            "unknown group `{group}`; expected agents, build, launch, scale, vault, gate, \
             first-run, acp or web"
        );
    }
    let wanted = |group: &str| only.is_none_or(|o| o == group);
    let binary = release_binary()?;
    let mut rows = Vec::new();
    if wanted("agents") {
        rows.push(agents_list_row(&binary, runs)?);
    }
    if wanted("build") {
        rows.extend(build_rows(&binary, (runs / 2).max(10))?);
    }
    if wanted("launch") {
        rows.extend(launch::rows(&binary, (runs / 2).max(10))?);
    }
    if wanted("scale") {
        rows.extend(scale::rows(&binary, 3)?);
    }
    if wanted("vault") {
        rows.extend(vault::rows(&binary)?);
    }
    if wanted("gate") {
        rows.push(gate::row((runs / 4).max(5))?);
    }
    // Minutes and an extra account: only when asked for by name.
    if only == Some("first-run") {
        rows.push(first_run::row(&binary)?);
    }
    // A Debian sid image with Claude's ACP adapter: only when asked for by name.
    if only == Some("acp") {
        rows.push(acp::row(&binary, (runs / 4).max(5))?);
    }
    // A Debian sid image with Claude and Toad: only when asked for by name.
    if only == Some("web") {
        rows.push(web::row(&binary, (runs / 4).max(5))?);
    }
    print_table(&rows);
    Ok(())
}
