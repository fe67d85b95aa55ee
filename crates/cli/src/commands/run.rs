//! `run AGENT [REPO]`: the flags become [`RunOptions`], the preflight asks what it must, the
//! executor launches, and the process exits with the agent's exit code.

use std::io::{IsTerminal, Write};
use std::time::Duration;
use terok_core::text::printable;

use terok_executor::{
    BuildRequest, CredentialState, Executor, GateMode, ImageSource, LaunchedTask, LogFormat,
    LogSource, Mode, PodmanCli, Rejection, RunOptions, STOP_GRACE_SECS, SetupVerdict, StopReason,
    TaskEvent, TaskRuntime, WaitOptions, WebOptions, gpu_request, host_git_identity,
    render_stream_json_line,
};

use crate::Status;
use crate::args::{GateModeArg, OutputFormat, RunArgs, RuntimeArg, ShieldMode};
use crate::commands::build::image_choice;
use crate::commands::run_events::show_event;
use crate::commands::tasks::report_vault_start;
use crate::commands::web::{WEB_READY_LIMIT, print_web_access};
use crate::context::Context;
use crate::progress::BuildProgress;
use crate::prompt;

/// Exit status of "setup needed" (the Python terok-executor's contract).
pub(crate) const SETUP_NEEDED: u8 = 3;
/// Exit status of "setup last ran with a newer version" (the Python terok-executor's contract).
pub(crate) const DOWNGRADED: u8 = 4;
/// How long an interactive container may take to say it is ready.
const READY_LIMIT: Duration = Duration::from_secs(120);

/// The setup-stamp gate of `run` and `run-tool` (`verb`): `None` when `setup` completed with
/// this version; otherwise the reason is printed and the exit status returned — 3 when setup
/// is needed (never ran, an update, an unreadable stamp), 4 after a downgrade.
pub(crate) fn setup_stamp_gate(executor: &Executor, verb: &str) -> Option<Status> {
    let reason = match executor.setup_verdict() {
        SetupVerdict::Current => return None,
        SetupVerdict::FirstRun => {
            "no setup stamp found — terok-executor hasn't been initialised".to_owned()
        }
        SetupVerdict::Updated { stamped } => format!(
            "package versions changed since the last setup ({} {stamped} → {}) — re-run to apply",
            terok_core::setup_stamp::PACKAGE,
            terok_core::setup_stamp::VERSION
        ),
        SetupVerdict::Unreadable { reason } => format!(
            "setup stamp is unreadable ({}) — re-run setup to refresh it",
            printable(&reason)
        ),
        SetupVerdict::Downgraded { stamped } => {
            eprintln!(
                "terok-executor: refusing to run — downgrade detected ({} {stamped} → {}).",
                terok_core::setup_stamp::PACKAGE,
                terok_core::setup_stamp::VERSION
            );
            eprintln!(
                "  Fix:    install terok-executor {stamped} or newer again, or accept this \
                 version: terok-executor setup"
            );
            eprintln!(
                "  Or:     rm {}   (forget the newer setup)",
                executor.paths().setup_stamp().display()
            );
            return Some(Status::Code(DOWNGRADED));
        }
    };
    eprintln!("terok-executor: {reason}.");
    eprintln!("  Fix:    terok-executor setup");
    eprintln!("  Or:     terok-executor {verb} --no-preflight ...   (skip the gate)");
    Some(Status::Code(SETUP_NEEDED))
}

/// What `run` does besides the launch itself.
struct Presentation {
    /// Ask nothing, build what is missing.
    yes: bool,
    /// Keep waiting when the model API refuses the credential.
    no_fail_fast: bool,
    /// Skip the preflight.
    no_preflight: bool,
    /// Render the agent's stream-json as text.
    output: OutputFormat,
    /// `--emit kube`: the task is written, with its Secret in this file, not run.
    kube_secret: Option<std::path::PathBuf>,
}

pub fn run(ctx: &Context, args: RunArgs) -> miette::Result<Status> {
    let executor = ctx.executor()?;
    // An unknown agent or a mistyped path fails now, before preflight starts services or
    // builds images.
    executor.agent_log_format(&args.agent)?;
    let (options, presentation) = settings(executor, args)?;
    executor.check_launch(&options)?;
    if let Some(secret_file) = &presentation.kube_secret {
        return crate::commands::kube::emit(ctx, &options, secret_file);
    }
    let ImageSource::Ensure(request) = &options.image else {
        return Err(miette::miette!(
            "run always builds its image from a request"
        ));
    };
    if !presentation.no_preflight
        && let Some(status) = setup_stamp_gate(executor, "run")
    {
        return Ok(status);
    }
    if !presentation.no_preflight
        && let Some(status) = ssh_key_preflight(executor, &options, presentation.yes)?
    {
        return Ok(status);
    }
    if !presentation.no_preflight
        && let Some(status) = preflight(ctx, &options.agent, request, presentation.yes)?
    {
        return Ok(status);
    }
    let render = renders_text(executor, &options.agent, presentation.output)?;
    let wait = if presentation.no_fail_fast {
        WaitOptions::never_stop_early()
    } else {
        WaitOptions::default()
    };
    let verbose = ctx.verbose > 0;
    ctx.block_on(async {
        let mut progress = BuildProgress::quiet_when_current(verbose);
        let task = executor
            .launch(&options, &mut |event| show_event(&mut progress, event))
            .await?;
        match options.mode {
            Mode::Headless { .. } => follow_headless(task, render, &wait).await,
            Mode::Web(_) => wait_web(task).await,
            _ => wait_interactive(executor, task).await,
        }
    })?
}

/// The launch's options and how to present it, from the flags (every flag is named here, so
/// a new one cannot be forgotten).
fn settings(executor: &Executor, args: RunArgs) -> miette::Result<(RunOptions, Presentation)> {
    let RunArgs {
        agent,
        repo,
        prompt,
        interactive,
        web,
        port,
        public_url,
        model,
        max_turns,
        timeout,
        name,
        branch,
        workspace,
        rm,
        restricted,
        gpus,
        gpu,
        memory,
        cpus,
        git_identity_from_host,
        shared_dir,
        shared_mount,
        timezone,
        image,
        yes,
        no_preflight,
        output,
        raw_output,
        credentials,
        no_fail_fast,
        shield,
        network,
        gate,
        no_gate,
        gate_mode,
        runtime,
        emit,
        kube_secret,
    } = args;
    let mode = match (prompt, interactive, web) {
        (Some(prompt), _, _) => Mode::Headless { prompt },
        (None, true, _) => Mode::Interactive {
            initial_prompt: None,
        },
        (None, false, true) => {
            let mut web = WebOptions::default();
            web.port = port;
            web.public_url = public_url;
            Mode::Web(web)
        }
        (None, false, false) => {
            return Err(miette::miette!(
                help = "e.g. terok-executor run claude . -p \"fix the failing test\"",
                "Specify --prompt for headless mode, --interactive for a container to log into, \
                 or --web for Toad in the browser."
            ));
        }
    };
    terok_executor::classify_repo(
        &repo,
        executor.env(),
        std::env::current_dir().ok().as_deref(),
    )?;
    let mut choice = image_choice(image);
    if matches!(mode, Mode::Web(_)) {
        // The UI is Toad's: a web task's image has it whatever the selection says.
        choice.also.push("toad".to_owned());
    }
    let request = executor.build_request(&choice)?;
    let mut options = RunOptions::new(agent, repo, mode, ImageSource::Ensure(request));
    options.model = model;
    options.max_turns = max_turns;
    options.timeout_secs = Some(timeout);
    options.name = name;
    options.branch = branch;
    options.workspace_dir = workspace;
    options.remove_on_exit = rm;
    options.restricted = restricted;
    options.gpus = match (gpus, gpu) {
        (Some(spec), _) => Some(gpu_request(&spec)?),
        (None, true) => Some(gpu_request("all")?),
        (None, false) => None,
    };
    options.memory = memory;
    options.cpus = cpus;
    options.human_identity = git_identity_from_host.then(git_identity).flatten();
    options.shared_dir = shared_dir;
    options.shared_mount = Some(shared_mount);
    options.timezone = timezone;
    options.extra_credentials = credentials;
    options.egress = shield.map(ShieldMode::egress);
    options.network = network;
    options.gate = crate::args::gate_choice(gate, no_gate);
    options.gate_mode = match gate_mode {
        GateModeArg::Gatekeeping => GateMode::Gatekeeping,
        GateModeArg::Online => GateMode::Online,
    };
    options.runtime = runtime.map(|runtime| match runtime {
        RuntimeArg::Podman => TaskRuntime::Podman,
        RuntimeArg::Krun => TaskRuntime::Krun(executor.krun_options()),
    });
    let presentation = Presentation {
        yes,
        no_fail_fast,
        no_preflight,
        output: if raw_output {
            OutputFormat::Raw
        } else {
            output
        },
        kube_secret: emit.and(kube_secret),
    };
    Ok((options, presentation))
}

/// The host's git identity, said aloud (or that there is none).
fn git_identity() -> Option<terok_executor::GitIdentity> {
    let identity = host_git_identity();
    match &identity {
        Some(id) => eprintln!("Git identity from host: {} <{}>", id.name, id.email),
        None => {
            eprintln!("warning: --git-identity-from-host: no user.name in your global git config");
        }
    }
    identity
}

/// Whether Claude's stream-json is shown as readable lines: asked for, or on a terminal.
fn renders_text(executor: &Executor, agent: &str, output: OutputFormat) -> miette::Result<bool> {
    Ok(
        executor.agent_log_format(agent)? == LogFormat::ClaudeStreamJson
            && match output {
                OutputFormat::Text => true,
                OutputFormat::Raw => false,
                OutputFormat::Auto => std::io::stdout().is_terminal(),
            },
    )
}

/// Why the run is being stopped, in the words of the `Stopping` line.
fn stop_reason_text(reason: StopReason) -> &'static str {
    match reason {
        StopReason::TimedOut => "timed out",
        StopReason::Interrupted => "interrupted",
        StopReason::CredentialRejected => "the API keeps refusing the credential",
        _ => "stopped by the host",
    }
}

/// Relays a headless task's output until it ends, stopping its container on SIGINT or
/// SIGTERM. Until then (during the launch) the signals keep their default action: a launch
/// cut short leaves what `rm` and `vault clean` tidy, never a CLI that ignores them.
pub(crate) async fn follow_headless(
    task: LaunchedTask<PodmanCli>,
    render: bool,
    wait: &WaitOptions,
) -> miette::Result<Status> {
    let name = task.name().to_owned();
    let stdout = std::io::stdout();
    let mut told = false;
    let outcome = task
        .watch(
            wait,
            |event| match event {
                TaskEvent::Line(line) => show_line(&stdout, line, render),
                TaskEvent::CredentialRejected(rejection) if !told => {
                    told = true;
                    eprintln!("{}", printable(&rejected_text(rejection)));
                }
                // Said at once: the stop takes up to the grace period, and until the run is
                // over a second signal is caught, not fatal.
                TaskEvent::Stopping(reason) => eprintln!(
                    "Stopping {name} ({}): the agent gets {STOP_GRACE_SECS} s to end before it \
                     is killed.",
                    stop_reason_text(reason)
                ),
                _ => {}
            },
            crate::signals::interrupted(),
        )
        .await?;
    for warning in &outcome.cleanup_warnings {
        crate::output::warn(warning);
    }
    if let Some(copied) = &outcome.copied_back {
        eprintln!(
            "Copied back from the remote engine: {} file(s) into the workspace.",
            copied.written.len()
        );
        for skipped in &copied.skipped {
            crate::output::warn(format!("not copied back: {}", printable(skipped)));
        }
    }
    if outcome.timed_out {
        eprintln!("Timed out: the container was stopped.");
    } else if outcome.interrupted {
        eprintln!("Interrupted: the container was stopped.");
    } else if let (true, Some(r)) = (outcome.stopped_for_rejection, &outcome.rejected) {
        eprintln!(
            "Stopped: the API refused the credential {} times in a row (--no-fail-fast keeps \
             waiting for the agent).",
            r.count
        );
    }
    if outcome.exit_code != 0 {
        eprintln!("Agent exited with code {}", outcome.exit_code);
    }
    if outcome.removed {
        eprintln!("Removed: {name}");
    } else {
        eprintln!("Container: {name} (kept; `terok-executor rm {name}` removes it)");
    }
    Ok(match outcome.exit_code {
        0 => Status::Ok,
        code => Status::Code(u8::try_from(code).unwrap_or(1)),
    })
}

/// One line of the agent's output: stdout (rendered or raw) to stdout, stderr to stderr —
/// with the control characters shown, not obeyed (the agent does not drive the terminal).
pub(crate) fn show_line(stdout: &std::io::Stdout, line: &terok_executor::LogLine, render: bool) {
    match line.source {
        LogSource::Stdout => {
            let text = if render {
                render_stream_json_line(&line.line)
            } else {
                Some(line.line.clone())
            };
            if let Some(text) = text {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{}", printable(&text));
                let _ = out.flush();
            }
        }
        LogSource::Stderr => eprintln!("{}", printable(&line.line)),
    }
}

/// The API rejected the stored credential for claude (401 authentication_error) — store a new
/// one with terok-executor auth claude.
fn rejected_text(r: &Rejection) -> String {
    let kind = r
        .error_type
        .as_deref()
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    format!(
        "the API rejected the stored credential for {provider} ({status}{kind}) — store a new one \
         with terok-executor auth {provider}",
        provider = r.provider,
        status = r.status
    )
}

async fn wait_interactive(
    executor: &Executor,
    task: LaunchedTask<PodmanCli>,
) -> miette::Result<Status> {
    let name = task.name().to_owned();
    let guest = executor.guest_shell(task.record())?;
    let ready = task
        .wait_ready(READY_LIMIT, |line| eprintln!("{}", printable(&line.line)))
        .await;
    if !ready {
        return Err(miette::miette!(
            help = format!("see `podman logs {name}`"),
            "{name} did not become ready within {} s",
            READY_LIMIT.as_secs()
        ));
    }
    match guest {
        Some(guest) => println!("Guest ready. Login with:\n  {}", guest.login_line()),
        None => println!("Container ready. Login with:\n  podman exec -it {name} bash -l"),
    }
    Ok(Status::Ok)
}

/// Web: the link once the UI answers; the task keeps running.
async fn wait_web(task: LaunchedTask<PodmanCli>) -> miette::Result<Status> {
    let name = task.name().to_owned();
    let access = task
        .wait_web(WEB_READY_LIMIT, |line| {
            eprintln!("{}", printable(&line.line));
        })
        .await
        .map_err(|err| miette::Report::from(err).wrap_err(format!("see `podman logs {name}`")))?;
    print_web_access(&name, &access);
    Ok(Status::Ok)
}

/// The preflight: podman and the images (asked on a terminal, `--yes`, else exit 3), the
/// vault started, the credential checked. Returns a status to exit with when the launch
/// cannot go on.
fn preflight(
    ctx: &Context,
    agent: &str,
    request: &BuildRequest,
    yes: bool,
) -> miette::Result<Option<Status>> {
    let executor = ctx.executor()?;
    let missing = match ctx.block_on(executor.missing_images(request))? {
        Ok(missing) => missing,
        Err(err) => {
            eprintln!("  {:<22} FAIL ({err})", "podman");
            eprintln!(
                "Install podman (https://podman.io/docs/installation), then run: terok-executor setup"
            );
            return Ok(Some(Status::Code(SETUP_NEEDED)));
        }
    };
    if !missing.is_empty() {
        if let Some(warning) = ctx.block_on(executor.storage_check())?.warning {
            crate::output::warn(warning);
            eprintln!(
                "{}",
                crate::remedy::indented(crate::remedy::VFS_STORAGE_FIX, 2)
            );
        }
        let what: Vec<String> = missing
            .iter()
            .map(|s| format!("{} {}", s.layer, s.tag))
            .collect();
        if !build_missing(&what.join(", "), yes)? {
            return Ok(Some(Status::Code(SETUP_NEEDED)));
        }
    }
    report_vault_start(ctx.block_on(executor.ensure_vault())??);
    if let CredentialState::Missing { provider } = executor.credential_state(agent)? {
        eprintln!(
            "No credential stored for {provider}: the agent will ask you to log in. Store one \
             with `terok-executor auth {provider}`."
        );
    }
    Ok(None)
}

/// A container that clones an SSH URL itself needs a key in the vault: on a terminal (or with
/// `--yes`) one is made for every task and its public half printed; otherwise the run stops
/// with the commands that make or import one.
fn ssh_key_preflight(
    executor: &Executor,
    options: &RunOptions,
    yes: bool,
) -> miette::Result<Option<Status>> {
    let Some(url) = executor.missing_ssh_key(options)? else {
        return Ok(None);
    };
    let agent = &options.agent;
    if !yes && !prompt::stdin_is_tty() {
        eprintln!(
            "Setup needed: the container clones {url} over SSH, and no SSH key is stored for \
             {agent} tasks.\nFix it with one of:\n  \
             terok-executor ssh keygen              make a key (then add its public key to the forge)\n  \
             terok-executor ssh import FILE         use a key you have\n  \
             terok-executor run ... --gate          clone through the gate, with your own git access"
        );
        return Ok(Some(Status::Code(SETUP_NEEDED)));
    }
    if !yes {
        let answer = prompt::read_line(&format!(
            "No SSH key is stored for {agent} tasks, and {url} is cloned over SSH.\nMake one now \
             (the private key stays in the vault)? [Y/n] "
        ))
        .map_err(|e| miette::miette!("cannot read the answer: {e}"))?;
        let make = answer.as_deref().map(str::trim).is_some_and(|a| {
            a.is_empty() || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")
        });
        if !make {
            eprintln!("Not making one; the clone will fail without a key the remote knows.");
            return Ok(None);
        }
    }
    let key = executor.ssh_keygen(
        &format!("{agent}-{}", terok_core::time::unix_now()),
        "terok",
        &terok_executor::KeyUsers::Agents(vec![agent.clone()]),
    )?;
    eprintln!(
        "SSH key {} made for {agent} tasks. Add its public key to the forge (e.g. as a deploy \
         key with write access) before the clone:",
        key.name
    );
    println!("{}", key.public_key);
    Ok(None)
}

/// Whether to build the missing images `what`: `--yes`, or the answer on a terminal; without
/// a terminal, the remedies are printed and the answer is no.
pub(crate) fn build_missing(what: &str, yes: bool) -> miette::Result<bool> {
    if yes {
        eprintln!("Images missing ({what}); building them (--yes).");
        return Ok(true);
    }
    if !prompt::stdin_is_tty() {
        eprintln!(
            "Setup needed: images missing ({what}), and stdin is not a terminal to ask.\n\
             Fix it with one of:\n  \
             terok-executor setup                    prepare this host once (images, vault)\n  \
             terok-executor run ... --yes            build what is missing without asking\n  \
             terok-executor run ... --no-preflight   skip these checks (images are built anyway)"
        );
        return Ok(false);
    }
    let answer = prompt::read_line(&format!(
        "Images missing: {what}.\nBuild container images now? (the first build takes a few minutes) [Y/n] "
    ))
    .map_err(|e| miette::miette!("cannot read the answer: {e}"))?;
    let build = answer.as_deref().map(str::trim).is_some_and(|a| {
        a.is_empty() || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")
    });
    if !build {
        eprintln!("Not building. Run `terok-executor setup` when you are ready.");
    }
    Ok(build)
}
