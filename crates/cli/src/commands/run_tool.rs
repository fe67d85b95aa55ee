//! `run-tool TOOL [REPO] [-- ARGS]`: the flags become [`RunOptions`] of a tool run, the
//! preflight builds the tool's image when asked, the executor launches, and the process exits
//! with the tool's exit code.

use terok_executor::{BuildRequest, Executor, ImageSource, RunOptions, SidecarChoice, WaitOptions};

use crate::Status;
use crate::args::{RunToolArgs, ShieldMode};
use crate::commands::build::image_choice;
use crate::commands::run::{SETUP_NEEDED, build_missing, follow_headless, setup_stamp_gate};
use crate::commands::run_events::show_event;
use crate::context::Context;
use crate::progress::BuildProgress;

pub fn run(ctx: &Context, args: RunToolArgs) -> miette::Result<Status> {
    let executor = ctx.executor()?;
    let (options, yes, no_preflight) = settings(executor, args)?;
    executor.check_launch(&options)?;
    let ImageSource::Ensure(request) = &options.image else {
        return Err(miette::miette!(
            "run-tool always builds its image from a request"
        ));
    };
    if !no_preflight && let Some(status) = setup_stamp_gate(executor, "run-tool") {
        return Ok(status);
    }
    if !no_preflight && let Some(status) = preflight(ctx, request, yes)? {
        return Ok(status);
    }
    let verbose = ctx.verbose > 0;
    ctx.block_on(async {
        let mut progress = BuildProgress::quiet_when_current(verbose);
        let task = executor
            .launch(&options, &mut |event| show_event(&mut progress, event))
            .await?;
        follow_headless(task, false, &WaitOptions::never_stop_early()).await
    })?
}

/// The tool run's options from the flags (every flag is named here, so a new one cannot be
/// forgotten), and the preflight's `--yes` and `--no-preflight`.
fn settings(executor: &Executor, args: RunToolArgs) -> miette::Result<(RunOptions, bool, bool)> {
    let RunToolArgs {
        tool,
        repo,
        args,
        timeout,
        name,
        branch,
        timezone,
        image,
        yes,
        no_preflight,
        shield,
        network,
        gate,
        no_gate,
    } = args;
    terok_executor::classify_repo(
        &repo,
        executor.env(),
        std::env::current_dir().ok().as_deref(),
    )?;
    let mut choice = image_choice(image);
    choice.sidecar = Some(SidecarChoice::Named(tool.clone()));
    let request = executor.build_request(&choice)?;
    let mut options = RunOptions::tool(tool, repo, args, ImageSource::Ensure(request));
    options.timeout_secs = Some(timeout);
    options.name = name;
    options.branch = branch;
    options.timezone = timezone;
    options.egress = shield.map(ShieldMode::egress);
    options.network = network;
    options.gate = crate::args::gate_choice(gate, no_gate);
    Ok((options, yes, no_preflight))
}

/// The preflight of a tool run: podman, and the tool's images (asked on a terminal, `--yes`,
/// else exit 3). A tool needs no vault: it gets its real credential.
fn preflight(ctx: &Context, request: &BuildRequest, yes: bool) -> miette::Result<Option<Status>> {
    let executor = ctx.executor()?;
    let missing = match ctx.block_on(executor.missing_tool_images(request))? {
        Ok(missing) => missing,
        Err(err) => {
            eprintln!("  {:<22} FAIL ({err})", "podman");
            eprintln!(
                "Install podman (https://podman.io/docs/installation), then run: terok-executor setup"
            );
            return Ok(Some(Status::Code(SETUP_NEEDED)));
        }
    };
    if missing.is_empty() {
        return Ok(None);
    }
    let what: Vec<String> = missing
        .iter()
        .map(|s| format!("{} {}", s.layer, s.tag))
        .collect();
    Ok((!build_missing(&what.join(", "), yes)?).then_some(Status::Code(SETUP_NEEDED)))
}
