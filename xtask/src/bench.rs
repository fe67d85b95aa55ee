//! `cargo xtask bench`: speed figures of the release build, each against its goal, printed as one
//! table. Goals are reported, not asserted: the command fails only when a figure cannot be
//! measured. Every figure is measured next to a baseline taken in the same run, so a slow or
//! busy machine shows up in both.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use terok_testkit::IsolatedEnv;

use crate::util::{run_echo, workspace_root};

/// Which way a goal points.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// Smaller is better; the value should not exceed this.
    AtMost(f64),
    /// Larger is better; the value should reach this.
    AtLeast(f64),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// Unit of `value` and of the goal.
    pub unit: &'static str,
    /// The goal.
    pub goal: Goal,
    /// The baseline measured in the same run, as text (`/bin/true 0.8 ms`).
    pub baseline: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        match self.goal {
            Goal::AtMost(goal) | Goal::AtLeast(goal) => self.value / goal,
        }
    }

    fn meets(&self) -> bool {
        match self.goal {
            Goal::AtMost(goal) => self.value <= goal,
            Goal::AtLeast(goal) => self.value >= goal,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::AtMost(goal) => format!("≤ {} {}", fmt_num(goal), self.unit),
            Goal::AtLeast(goal) => format!("≥ {} {}", fmt_num(goal), self.unit),
        }
    }
}

pub fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Median of `samples` in milliseconds.
pub fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    mid.as_secs_f64() * 1000.0
}

/// Runs `make()` `runs` times, each to completion with output discarded, and returns the median
/// wall time in milliseconds. Any failed run is a measurement error.
pub fn time_command(runs: usize, mut make: impl FnMut() -> Command) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut cmd = make();
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let started = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
        samples.push(started.elapsed());
        if !out.status.success() {
            bail!(
                "{:?} failed: {}",
                cmd.get_program(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(median_ms(&mut samples))
}

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

fn noop_build_row(binary: &Path, runs: usize) -> anyhow::Result<Row> {
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
    Ok(Row {
        figure: format!("no-op `build` (images current, median of {runs})"),
        value: value / 1000.0,
        unit: "s",
        goal: Goal::AtMost(0.5),
        baseline: format!("`podman image exists` {} ms", fmt_num(baseline)),
    })
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
        && !["agents", "build", "launch", "vault"].contains(&group)
    {
        bail!("unknown group `{group}`; expected agents, build, launch or vault");
    }
    let wanted = |group: &str| only.is_none_or(|o| o == group);
    let binary = release_binary()?;
    let mut rows = Vec::new();
    if wanted("agents") {
        rows.push(agents_list_row(&binary, runs)?);
    }
    if wanted("build") {
        rows.push(noop_build_row(&binary, (runs / 2).max(10))?);
    }
    if wanted("launch") {
        rows.push(crate::bench_launch::row(&binary, (runs / 2).max(10))?);
    }
    if wanted("vault") {
        rows.extend(crate::bench_vault::rows(&binary)?);
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Row]) {
    let header = [
        "figure",
        "measured",
        "baseline (same run)",
        "goal",
        "ratio to goal",
        "",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                format!("{} {}", fmt_num(r.value), r.unit),
                r.baseline.clone(),
                r.goal_text(),
                format!("{:.2}×", r.ratio()),
                if r.meets() {
                    "meets goal"
                } else {
                    "MISSES goal"
                }
                .to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        row.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    println!();
    println!("{}", line(&header.map(str::to_owned)));
    println!("{}", widths.map(|w| "-".repeat(w)).join("-|-"));
    for row in &cells {
        println!("{}", line(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_samples() {
        let ms = Duration::from_millis;
        assert_eq!(median_ms(&mut [ms(3), ms(1), ms(2)]), 2.0);
        assert_eq!(median_ms(&mut [ms(4), ms(1), ms(2), ms(3)]), 2.5);
    }

    #[test]
    fn goals_compare_in_their_direction() {
        let row = |value, goal| Row {
            figure: String::new(),
            value,
            unit: "ms",
            goal,
            baseline: String::new(),
        };
        assert!(row(4.0, Goal::AtMost(5.0)).meets());
        assert!(!row(6.0, Goal::AtMost(5.0)).meets());
        assert!((row(2.5, Goal::AtMost(5.0)).ratio() - 0.5).abs() < 1e-9);
        assert!(row(30000.0, Goal::AtLeast(27000.0)).meets());
        assert!(!row(20000.0, Goal::AtLeast(27000.0)).meets());
    }
}
