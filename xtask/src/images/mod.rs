//! `cargo xtask images`: every installable roster entry (and sidecar tool) built into an image
//! of its own on each base, smoke-checked as `dev`, and reported as a table agent × base;
//! `--write-docs` keeps the table in docs/images.md.

mod probe;
mod table;

use std::time::Instant;

use anyhow::Context as _;
use terok_executor::{BuildRequest, Executor, ExecutorError, PodmanCli};
use terok_image_build::{ImageBuildError, InstallCause};
use terok_testkit::IsolatedEnv;
use terok_testkit::base_image::{ensure_suite_image, suite_image};
use tokio::runtime::Runtime;

pub use table::{Cell, Outcome};

/// What `cargo xtask images` was asked for.
#[derive(Debug)]
pub struct ImagesArgs {
    /// Debian suites.
    pub bases: Vec<String>,
    /// Roster entries; every installable entry and sidecar tool when empty.
    pub agents: Vec<String>,
    /// Print JSON instead of the table.
    pub json: bool,
    /// Write the table into docs/images.md.
    pub write_docs: bool,
    /// Fail unless every cell works.
    pub strict: bool,
}

/// One roster entry to build: into L1, or as a sidecar tool image.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    sidecar: bool,
    smoke: String,
}

pub fn run(args: ImagesArgs) -> anyhow::Result<()> {
    if !terok_testkit::podman::podman_works() {
        anyhow::bail!("podman does not answer; run `cargo xtask host-setup`");
    }
    let env = IsolatedEnv::new()?;
    let executor = Executor::builder(env.host_env()).build()?;
    let entries = entries(&executor, &args.agents)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut matrix = table::Matrix {
        bases: args.bases.clone(),
        agents: entries.iter().map(|e| e.name.clone()).collect(),
        shared: Vec::new(),
        cells: Vec::new(),
    };
    for suite in &args.bases {
        ensure_suite_image(suite, &mut |line| eprintln!("images: {line}"))?;
        let base = suite_image(suite);
        let shared = match build_shared(&runtime, &executor, suite, &base) {
            Ok(shared) => shared,
            Err(err) => {
                eprintln!("images: {suite}: {err:#}");
                let reason = format!("the shared layers failed: {}", table::first_line(&err));
                for entry in &entries {
                    let outcome = Outcome::Broken(reason.clone());
                    matrix.cells.push(Cell::new(suite, &entry.name, outcome));
                }
                continue;
            }
        };
        for entry in &entries {
            let cell = build_entry(&runtime, &executor, (suite, &base), entry, &shared);
            eprintln!("images: {}", table::progress_line(&cell));
            matrix.cells.push(cell);
        }
        matrix.shared.push(shared);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&matrix.to_json())?);
    } else {
        print!("{}", matrix.markdown());
    }
    if args.write_docs {
        table::write_docs(&matrix)?;
    }
    let failed = matrix.failed();
    if args.strict && !failed.is_empty() {
        anyhow::bail!(
            "{} of the cells do not work: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The entries to build: those named, or every installable entry and sidecar tool.
fn entries(executor: &Executor<PodmanCli>, names: &[String]) -> anyhow::Result<Vec<Entry>> {
    let roster = executor.roster()?;
    let mut all: Vec<Entry> = roster
        .installable()
        .map(|(agent, install)| Entry {
            name: agent.name.clone(),
            sidecar: false,
            smoke: probe::smoke_command(&agent.binary, install.smoke.as_deref()),
        })
        .chain(roster.sidecars().map(|(agent, spec)| Entry {
            name: agent.name.clone(),
            sidecar: true,
            smoke: probe::smoke_command(&spec.tool_name, None),
        }))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|name| {
            all.iter()
                .find(|e| &e.name == name)
                .cloned()
                .with_context(|| format!("`{name}` is neither installable nor a sidecar tool"))
        })
        .collect()
}

/// The images every entry of a base shares (L0 and the L1 with no entry): built first, so
/// that an entry's figures are its own.
fn build_shared(
    runtime: &Runtime,
    executor: &Executor<PodmanCli>,
    suite: &str,
    base: &str,
) -> anyhow::Result<probe::Shared> {
    eprintln!("images: {suite}: L0 and the shared L1 layers …");
    let started = Instant::now();
    let built = runtime
        .block_on(executor.ensure_images(&BuildRequest::new(base, Vec::new()), &mut |_| {}))
        .with_context(|| format!("building the shared layers on {base}"))?;
    let seconds = started.elapsed().as_secs_f64();
    probe::Shared::measure(suite, &built.l0.tag, &built.l1.tag, seconds)
}

/// Builds one entry's image on a base (suite and image), smoke-checks it and measures it.
fn build_entry(
    runtime: &Runtime,
    executor: &Executor<PodmanCli>,
    (suite, base): (&str, &str),
    entry: &Entry,
    shared: &probe::Shared,
) -> Cell {
    let request = match request_for(executor, base, entry) {
        Ok(request) => request,
        Err(err) => return Cell::new(suite, &entry.name, Outcome::Broken(err.to_string())),
    };
    eprintln!("images: {suite} × {} …", entry.name);
    let started = Instant::now();
    let built = runtime.block_on(executor.ensure_images(&request, &mut |_| {}));
    let seconds = started.elapsed().as_secs_f64();
    let image = match built {
        Ok(built) => built.sidecar.unwrap_or(built.l1),
        Err(err) => return Cell::new(suite, &entry.name, outcome_of(err)).took(seconds),
    };
    let outcome =
        probe::smoke(&image.tag, &entry.smoke).map_or_else(Outcome::SmokeFailed, Outcome::Works);
    let sizes = probe::Sizes::of(&image.tag, shared, entry.sidecar).ok();
    let cell = Cell::new(suite, &entry.name, outcome).sized(sizes);
    // A current image was reused: how long it once took to build is not known here.
    if image.reused {
        cell
    } else {
        cell.took(seconds)
    }
}

/// The build request of one entry on `base`: its L1 (with what it depends on), or its
/// sidecar image.
fn request_for(
    executor: &Executor<PodmanCli>,
    base: &str,
    entry: &Entry,
) -> Result<BuildRequest, ExecutorError> {
    let mut request = BuildRequest::new(base, Vec::new());
    if entry.sidecar {
        request.sidecar = Some(entry.name.clone());
    } else {
        request.selection = executor.roster()?.resolve_selection(&entry.name)?;
    }
    Ok(request)
}

/// What a failed build says about the entry.
fn outcome_of(err: ExecutorError) -> Outcome {
    let ExecutorError::Images(err) = err else {
        return Outcome::Broken(err.to_string());
    };
    match *err {
        ImageBuildError::AgentInstall { cause, tail, .. } => match cause {
            InstallCause::Unreachable { host } => Outcome::Unreachable(host),
            InstallCause::Failed => Outcome::InstallFailed(probe::last_words(&tail)),
        },
        ImageBuildError::UnsuitableBase { unsuited, .. } => {
            let reasons: Vec<String> = unsuited.iter().map(ToString::to_string).collect();
            Outcome::Refused(reasons.join("; "))
        }
        other => Outcome::Broken(other.to_string()),
    }
}
