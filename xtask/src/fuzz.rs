//! `cargo xtask fuzz`: builds the fuzz targets of `fuzz/` (cargo-fuzz, nightly toolchain)
//! and runs each for a while from its seeds — the committed ones in `fuzz/seeds/<target>/`
//! plus the fixture files named here — then prints one row per target: executions, corpus
//! size, peak memory, and any crash, timeout or out-of-memory input found (kept under
//! `target/fuzz/artifacts/<target>/`, to become a regression test).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{on_path, output_of, run_echo, workspace_root};

/// A fuzz target and the fixture files that seed it besides its committed seeds.
struct Target {
    name: &'static str,
    fixtures: &'static [Fixture],
}

/// Files of one directory, each turned into a seed as `prefix` + file + `suffix`.
struct Fixture {
    dir: &'static str,
    extension: &'static str,
    prefix: &'static [u8],
    suffix: &'static [u8],
}

const fn none() -> &'static [Fixture] {
    &[]
}

/// A model request the scripts' first turn answers (Anthropic Messages, with tools).
const ANTHROPIC_REQUEST: &[u8] = b"\n---request\n{\"model\":\"m\",\"max_tokens\":100,\"tools\":[{\"name\":\"Read\"}],\"messages\":[{\"role\":\"user\",\"content\":\"fix the failing test\"}]}";

const TARGETS: &[Target] = &[
    Target {
        name: "roster",
        // The bundled roster entries, as user overrides of themselves.
        fixtures: &[Fixture {
            dir: "resources/agents",
            extension: "yaml",
            prefix: &[0],
            suffix: b"",
        }],
    },
    Target {
        name: "config",
        fixtures: none(),
    },
    Target {
        name: "routes",
        fixtures: none(),
    },
    Target {
        name: "vault_request",
        fixtures: none(),
    },
    Target {
        name: "gate_request",
        fixtures: none(),
    },
    Target {
        name: "ssh_agent",
        fixtures: none(),
    },
    Target {
        name: "acp_frame",
        fixtures: none(),
    },
    Target {
        name: "podman_output",
        fixtures: none(),
    },
    Target {
        name: "model_script",
        // The demo's and end-to-end tests' conversations.
        fixtures: &[Fixture {
            dir: "demo",
            extension: "yaml",
            prefix: &[0],
            suffix: ANTHROPIC_REQUEST,
        }],
    },
    Target {
        name: "shield_inputs",
        // The bundled allowlist profiles.
        fixtures: &[Fixture {
            dir: "crates/shield/profiles",
            extension: "txt",
            prefix: &[1],
            suffix: b"",
        }],
    },
];

/// What `cargo xtask fuzz` was asked.
pub struct FuzzArgs {
    /// How long each target runs.
    pub seconds: u64,
    /// Only these targets (all when empty).
    pub only: Vec<String>,
}

/// One target's run.
struct Outcome {
    name: &'static str,
    executions: u64,
    corpus: usize,
    peak_rss_mb: u64,
    found: Option<Failure>,
}

/// How a target failed.
enum Failure {
    /// libFuzzer saved the input that crashed, hung or ran out of memory.
    Input(PathBuf),
    /// The process died without saving one (a signal libFuzzer does not catch); the log says
    /// what it was doing.
    Died { status: String, log: PathBuf },
}

pub fn run(args: FuzzArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let targets = chosen(&args.only)?;
    require_nightly()?;
    if !on_path("cargo-fuzz") {
        bail!(
            "cargo-fuzz is not installed: run `cargo xtask host-setup` (or `cargo install --locked cargo-fuzz`)"
        );
    }
    let work = root.join("target/fuzz");
    build(&root, &work)?;
    let mut outcomes = Vec::new();
    for target in targets {
        println!("\n==> fuzz {} for {} s", target.name, args.seconds);
        outcomes.push(run_target(&root, &work, target, args.seconds)?);
    }
    print_table(&outcomes, args.seconds);
    let failed: Vec<_> = outcomes.iter().filter(|o| o.found.is_some()).collect();
    if !failed.is_empty() {
        for outcome in &failed {
            match &outcome.found {
                Some(Failure::Input(input)) => println!(
                    "fuzz: {} failed on {}\n  reproduce: {} {}",
                    outcome.name,
                    input.display(),
                    binary(&work, outcome.name).display(),
                    input.display()
                ),
                Some(Failure::Died { status, log }) => println!(
                    "fuzz: {} {status} without saving an input; its log: {}",
                    outcome.name,
                    log.display()
                ),
                None => {}
            }
        }
        bail!("{} fuzz target(s) found a failing input", failed.len());
    }
    Ok(())
}

fn chosen(only: &[String]) -> anyhow::Result<Vec<&'static Target>> {
    if let Some(unknown) = only
        .iter()
        .find(|name| !TARGETS.iter().any(|t| t.name == name.as_str()))
    {
        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        bail!(
            "unknown fuzz target `{unknown}`; the targets: {}",
            names.join(", ")
        );
    }
    Ok(TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|n| n == t.name))
        .collect())
}

/// Fails unless the nightly toolchain cargo-fuzz needs is installed.
pub fn require_nightly() -> anyhow::Result<()> {
    let listed = output_of(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if listed.lines().any(|l| l.starts_with("nightly")) {
        return Ok(());
    }
    bail!(
        "the nightly toolchain is not installed (cargo-fuzz needs it): `rustup toolchain install nightly --profile minimal`"
    )
}

/// The options every build and run shares: no sanitizer (the fuzzed code is safe Rust, so
/// AddressSanitizer would only slow it; panics, overflows, hangs and memory growth are what
/// is looked for) but debug assertions on, so an arithmetic overflow is a crash.
const BUILD_FLAGS: &[&str] = &["--sanitizer", "none", "--debug-assertions"];

fn build(root: &Path, work: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args(["+nightly", "fuzz", "build"])
        .args(BUILD_FLAGS)
        .arg("--target-dir")
        .arg(work);
    run_echo(&mut cmd).context("building the fuzz targets")
}

/// Where cargo-fuzz puts target `name`: under the host's target triple (it always passes
/// `--target`), release profile.
fn binary(work: &Path, name: &str) -> PathBuf {
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    work.join(triple).join("release").join(name)
}

fn run_target(root: &Path, work: &Path, target: &Target, seconds: u64) -> anyhow::Result<Outcome> {
    let corpus = work.join("corpus").join(target.name);
    let artifacts = work.join("artifacts").join(target.name);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let seeds = root.join("fuzz/seeds").join(target.name);
    let mut cmd = Command::new(binary(work, target.name));
    cmd.current_dir(root)
        .arg(format!("-max_total_time={seconds}"))
        // One input taking 30 s is a hang; the harnesses' own limits are 10 s at most.
        .arg("-timeout=30")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .arg(fixture_seeds(root, work, target)?);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    let output = cmd
        .output()
        .with_context(|| format!("running {}", binary(work, target.name).display()))?;
    let log = String::from_utf8_lossy(&output.stderr);
    let log_path = work.join(format!("{}.log", target.name));
    std::fs::write(&log_path, log.as_bytes())?;
    let found = (!output.status.success()).then(|| match saved_input(&log) {
        Some(input) => Failure::Input(input),
        None => Failure::Died {
            status: format!("exited with {}", output.status),
            log: log_path,
        },
    });
    Ok(Outcome {
        name: target.name,
        executions: final_stat(&log, "stat::number_of_executed_units"),
        corpus: std::fs::read_dir(&corpus)?.count(),
        peak_rss_mb: final_stat(&log, "stat::peak_rss_mb"),
        found,
    })
}

/// A directory of the target's fixture files as seeds (made afresh each run).
fn fixture_seeds(root: &Path, work: &Path, target: &Target) -> anyhow::Result<PathBuf> {
    let dir = work.join("fixture-seeds").join(target.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for fixture in target.fixtures {
        for entry in std::fs::read_dir(root.join(fixture.dir))? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != fixture.extension) {
                continue;
            }
            let mut seed = fixture.prefix.to_vec();
            seed.extend(std::fs::read(&path)?);
            seed.extend_from_slice(fixture.suffix);
            let name = path.file_name().context("a fixture file name")?;
            std::fs::write(dir.join(name), seed)?;
        }
    }
    Ok(dir)
}

/// The input libFuzzer saved for the failure it reported (`Test unit written to …`). Only
/// the log says which: an older file in the artifacts directory is a past run's.
fn saved_input(log: &str) -> Option<PathBuf> {
    log.lines()
        .filter_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
        .map(PathBuf::from)
        .next_back()
}

/// A number libFuzzer prints with `-print_final_stats=1` (`stat::name: N`).
fn final_stat(log: &str, name: &str) -> u64 {
    log.lines()
        .filter_map(|l| {
            l.strip_prefix(name)?
                .trim_start_matches(':')
                .trim()
                .parse()
                .ok()
        })
        .next_back()
        .unwrap_or(0)
}

fn print_table(outcomes: &[Outcome], seconds: u64) {
    println!("\nfuzz: {seconds} s per target (sanitizer none, debug assertions on)");
    println!(
        "{:<15} {:>12} {:>10} {:>8} {:>9}  result",
        "target", "executions", "per s", "corpus", "peak MiB"
    );
    for o in outcomes {
        let result = match &o.found {
            None => "ok".to_owned(),
            Some(Failure::Input(input)) => format!("FAILED: {}", input.display()),
            Some(Failure::Died { status, .. }) => format!("DIED: {status}, no input saved"),
        };
        println!(
            "{:<15} {:>12} {:>10} {:>8} {:>9}  {result}",
            o.name,
            o.executions,
            o.executions / seconds.max(1),
            o.corpus,
            o.peak_rss_mb
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_a_harness_and_seeds() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
        for target in TARGETS {
            let harness = root.join(format!("fuzz/fuzz_targets/{}.rs", target.name));
            assert!(harness.is_file(), "{} has no harness", target.name);
            assert!(
                manifest.contains(&format!("name = \"{}\"", target.name)),
                "{} is not a [[bin]] of fuzz/Cargo.toml",
                target.name
            );
            let seeds = std::fs::read_dir(root.join("fuzz/seeds").join(target.name))
                .map(Iterator::count)
                .unwrap_or(0);
            let fixtures = target.fixtures.len();
            assert!(seeds + fixtures > 0, "{} has no seeds", target.name);
        }
        let harnesses = std::fs::read_dir(root.join("fuzz/fuzz_targets"))
            .unwrap()
            .count();
        assert_eq!(
            harnesses,
            TARGETS.len(),
            "a harness that xtask does not run"
        );
    }

    #[test]
    fn the_final_stats_are_read_from_libfuzzers_log() {
        let log =
            "#1234 DONE cov: 10\nstat::number_of_executed_units: 98765\nstat::peak_rss_mb: 77\n";
        assert_eq!(final_stat(log, "stat::number_of_executed_units"), 98765);
        assert_eq!(final_stat(log, "stat::peak_rss_mb"), 77);
        assert_eq!(final_stat(log, "stat::missing"), 0);
        let crash = "==1== ERROR: libFuzzer: deadly signal\nartifact_prefix='a/'; Test unit written to a/crash-1f\n";
        assert_eq!(saved_input(crash), Some(PathBuf::from("a/crash-1f")));
    }

    #[test]
    fn an_unknown_target_is_named_with_the_known_ones() {
        let err = chosen(&["rosters".to_owned()]).err().unwrap().to_string();
        assert!(
            err.contains("`rosters`") && err.contains("roster, config"),
            "{err}"
        );
    }
}
