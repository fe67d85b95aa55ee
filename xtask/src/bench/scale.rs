//! The scale rows of `cargo xtask bench`: eight headless runs at once on this machine — their
//! wall time against one run's, measured in turn in the same run — and the host memory each
//! task costs (its `terok-executor run` process, and its share of the vault daemon's growth,
//! as proportional set sizes).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use terok_testkit::IsolatedEnv;
use terok_testkit::agents::SCRIPTED_AGENT;

use super::launch::launch_host;
use super::table::{Goal, Row, fmt_num, median_ms};

/// Runs at once.
const TASKS: usize = 8;
/// What each run's agent does: long enough that all eight overlap.
const AGENT: &str = "sleep 3; echo done";

/// The memory `pid` costs this host in KiB: its proportional set size (its private pages,
/// and its share of the pages it shares — the eight `run` processes share one binary's
/// pages, which RSS would count eight times); 0 when it is gone.
fn pss_kib(pid: u32) -> u64 {
    field_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// The resident set size of `pid` in KiB, shared pages counted in full.
fn rss_kib(pid: u32) -> u64 {
    field_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// The part of `pid`'s resident set that is its own memory (heap, stacks), not file pages
/// such as the binary's.
fn anon_kib(pid: u32) -> u64 {
    field_kib(&format!("/proc/{pid}/status"), "RssAnon:")
}

fn field_kib(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Host memory per task in KiB, two ways.
#[derive(Debug, Clone, Copy)]
struct PerTask {
    pss: f64,
    rss: f64,
    anon: f64,
}

fn spawn_run(env: &IsolatedEnv, binary: &Path) -> anyhow::Result<Child> {
    env.command(binary)
        .args(["run", SCRIPTED_AGENT, "project", "--rm", "--shield", "open"])
        .args(["-p", AGENT])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start a run")
}

fn finish(child: Child) -> anyhow::Result<()> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "a run failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One round of `count` runs at once: its wall time, and the host memory per task (the `run`
/// processes and the vault's growth), sampled while every run's agent sleeps.
fn round(
    env: &IsolatedEnv,
    binary: &Path,
    count: usize,
    vault: u32,
) -> anyhow::Result<(Duration, PerTask)> {
    let (pss_before, rss_before, anon_before) = (pss_kib(vault), rss_kib(vault), anon_kib(vault));
    let started = Instant::now();
    let children = (0..count)
        .map(|_| spawn_run(env, binary))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Every container is up and its agent asleep by then (a launch takes well under 2 s).
    std::thread::sleep(Duration::from_millis(2500));
    let pss: u64 = children.iter().map(|c| pss_kib(c.id())).sum::<u64>()
        + pss_kib(vault).saturating_sub(pss_before);
    let rss: u64 = children.iter().map(|c| rss_kib(c.id())).sum::<u64>()
        + rss_kib(vault).saturating_sub(rss_before);
    let anon: u64 = children.iter().map(|c| anon_kib(c.id())).sum::<u64>()
        + anon_kib(vault).saturating_sub(anon_before);
    for child in children {
        finish(child)?;
    }
    let per_task = PerTask {
        pss: pss as f64 / count as f64,
        rss: rss as f64 / count as f64,
        anon: anon as f64 / count as f64,
    };
    Ok((started.elapsed(), per_task))
}

pub fn rows(binary: &Path, rounds: usize) -> anyhow::Result<Vec<Row>> {
    let (env, vault) = launch_host(binary)?;
    let result = (|| -> anyhow::Result<(f64, f64, PerTask)> {
        let (mut one, mut many, mut memory) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            one.push(round(&env, binary, 1, vault)?.0);
            let (wall, per_task) = round(&env, binary, TASKS, vault)?;
            many.push(wall);
            memory.push(per_task);
        }
        memory.sort_by(|a, b| a.pss.total_cmp(&b.pss));
        let memory = memory[memory.len() / 2];
        Ok((median_ms(&mut one), median_ms(&mut many), memory))
    })();
    let _ = env.command(binary).args(["vault", "stop"]).output();
    let (one, many, per_task) = result?;
    Ok(vec![
        Row {
            figure: format!(
                "{TASKS} headless runs at once: wall time over one run's (median of {rounds})"
            ),
            value: many / one,
            unit: "×",
            goal: Goal::AtMost(3.0),
            baseline: format!(
                "one run {} ms, {TASKS} at once {} ms",
                fmt_num(one),
                fmt_num(many)
            ),
        },
        Row {
            figure: format!(
                "host memory per task with {TASKS} at once: its `run` process and its share of \
                 the vault's growth (median of {rounds})"
            ),
            value: per_task.pss / 1024.0,
            unit: "MiB",
            goal: Goal::AtMost(15.0),
            baseline: format!(
                "proportional set size; by RSS, which counts the one binary's shared pages \
                 once per process, {} MiB, of which {} MiB its own (anonymous) memory",
                fmt_num(per_task.rss / 1024.0),
                fmt_num(per_task.anon / 1024.0)
            ),
        },
    ])
}
