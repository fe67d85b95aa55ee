//! `run AGENT [REPO]`: preflight, then a headless or interactive launch through
//! [`terok_executor::AgentRunner`]; the process exits with the agent's exit code.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use terok_executor::{
    AgentRunner, ImageSource, LaunchedTask, Mode, RunEvent, RunOptions, VaultClient, preflight,
    render_stream_json_line,
};
use terok_podman::{GpuRequest, LogSource, PodmanCli};
use terok_roster::model::LogFormat;

use crate::Status;
use crate::args::{OutputFormat, RunArgs};
use crate::commands::build::{EnsureOptions, build_request};
use crate::commands::vault::ensure_vault_running;
use crate::context::Context;
use crate::progress::BuildProgress;
use crate::prompt;

/// Exit status of "setup needed" (upstream's contract).
const SETUP_NEEDED: u8 = 3;
/// How long an interactive container may take to say it is ready.
const READY_LIMIT: Duration = Duration::from_secs(120);

pub fn run(ctx: &Context, args: &RunArgs) -> miette::Result<Status> {
    let roster = ctx.roster()?;
    let agent = roster.agent(&args.agent)?;
    let mode = match (&args.prompt, args.interactive) {
        (Some(prompt), _) => Mode::Headless {
            prompt: prompt.clone(),
        },
        (None, true) => Mode::Interactive {
            initial_prompt: None,
        },
        (None, false) => {
            return Err(miette::miette!(
                help = "e.g. terok-executor run claude . -p \"fix the failing test\"",
                "Specify --prompt for headless mode or --interactive for a container to log into."
            ));
        }
    };
    // A mistyped path fails now, before preflight starts services or builds images.
    let cwd = std::env::current_dir()
        .map_err(|e| miette::miette!("cannot read the current directory: {e}"))?;
    terok_executor::classify_repo(&args.repo, &ctx.env, &cwd)?;
    if args.gate {
        eprintln!("note: the git gate is not available yet; git URLs are cloned directly");
    }
    let request = build_request(ctx, &args.image, &EnsureOptions::default())?;
    let podman = ctx.podman();

    if !args.no_preflight
        && let Some(status) = preflight(ctx, &podman, args, &request)?
    {
        return Ok(status);
    }

    let gpus = match (&args.gpus, args.gpu) {
        (Some(spec), _) => Some(GpuRequest::parse(spec, &cdi_vendors())?),
        (None, true) => Some(GpuRequest::parse("all", &cdi_vendors())?),
        (None, false) => None,
    };
    let human_identity = if args.git_identity_from_host {
        host_git_identity()
    } else {
        None
    };
    let options = RunOptions {
        agent: args.agent.clone(),
        repo: args.repo.clone(),
        mode,
        image: ImageSource::Ensure(request),
        model: args.model.clone(),
        max_turns: args.max_turns,
        timeout_secs: Some(args.timeout),
        name: args.name.clone(),
        branch: args.branch.clone(),
        restricted: args.restricted,
        gpus,
        memory: args.memory.clone(),
        cpus: args.cpus.clone(),
        human_identity,
        shared_dir: args.shared_dir.clone(),
        shared_mount: Some(args.shared_mount.clone()),
        timezone: args.timezone.clone(),
        workspace_dir: args.workspace.clone(),
        remove_on_exit: args.rm,
        vault_required: false,
    };
    let paths = ctx.paths()?;
    let runner = AgentRunner::new(&podman, roster, paths, ctx.env.clone())
        .with_vault(VaultClient::new(ctx.vault_paths()?.control_socket()))
        .with_lock_dir(paths.state_root.join("locks"))
        .with_image_stamps(paths.state_root.join("images"));
    let render = agent.capabilities.log_format == LogFormat::ClaudeStreamJson
        && !args.raw_output
        && match args.output {
            OutputFormat::Text => true,
            OutputFormat::Raw => false,
            OutputFormat::Auto => std::io::stdout().is_terminal(),
        };
    let verbose = ctx.verbose > 0;

    ctx.block_on(async {
        let mut progress = BuildProgress::quiet_when_current(verbose);
        let task = runner
            .launch(&options, &mut |event| match event {
                RunEvent::Image(event) => progress.event(event),
                RunEvent::Warning(text) => eprintln!("warning: {text}"),
                RunEvent::VaultWired { providers } if providers.is_empty() => {
                    eprintln!(
                        "Vault: no credential stored for any agent; the agent runs without one"
                    );
                }
                RunEvent::VaultWired { providers } => {
                    eprintln!("Vault: phantom tokens for {}", providers.join(", "));
                }
                RunEvent::Launching { name, .. } => eprintln!("Container: {name}"),
            })
            .await?;
        match options.mode {
            Mode::Headless { .. } => follow_headless(task, render).await,
            Mode::Interactive { .. } => wait_interactive(task).await,
        }
    })?
}

async fn follow_headless(
    task: LaunchedTask<'_, PodmanCli>,
    render: bool,
) -> miette::Result<Status> {
    let name = task.name().to_owned();
    let stdout = std::io::stdout();
    let outcome = task
        .wait_with(
            |line| match line.source {
                LogSource::Stdout => {
                    let text = if render {
                        render_stream_json_line(&line.line)
                    } else {
                        Some(line.line.clone())
                    };
                    if let Some(text) = text {
                        let mut out = stdout.lock();
                        let _ = writeln!(out, "{text}");
                        let _ = out.flush();
                    }
                }
                LogSource::Stderr => eprintln!("{}", line.line),
            },
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    for warning in &outcome.cleanup_warnings {
        eprintln!("warning: {warning}");
    }
    if outcome.timed_out {
        eprintln!("Timed out: the container was stopped.");
    } else if outcome.interrupted {
        eprintln!("Interrupted: the container was stopped.");
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

async fn wait_interactive(task: LaunchedTask<'_, PodmanCli>) -> miette::Result<Status> {
    let name = task.name().to_owned();
    let ready = task
        .wait_ready(READY_LIMIT, |line| eprintln!("{}", line.line))
        .await?;
    if !ready {
        return Err(miette::miette!(
            help = format!("see `podman logs {name}`"),
            "{name} did not become ready within {} s",
            READY_LIMIT.as_secs()
        ));
    }
    println!("Container ready. Login with:\n  podman exec -it {name} bash -l");
    Ok(Status::Ok)
}

/// The preflight of executor.md §9.1, simplified: podman, images, vault, credential. Returns a
/// status to exit with when the launch cannot go on.
fn preflight(
    ctx: &Context,
    podman: &PodmanCli,
    args: &RunArgs,
    request: &terok_image_build::BuildRequest,
) -> miette::Result<Option<Status>> {
    // A check recorded moments ago (by build, setup or the last run) answers without podman.
    let stamps = ctx.paths()?.state_root.join("images");
    let recent = terok_image_build::ImageBuilder::new(podman, ctx.roster()?)
        .with_stamps(&stamps, Some(terok_executor::IMAGE_CHECK_TRUST))
        .recent_check(request)
        .is_some();
    let states = if recent {
        Vec::new()
    } else {
        match ctx.block_on(preflight::image_states(podman, request))? {
            Ok(states) => states,
            Err(err) => {
                eprintln!("  {:<22} FAIL ({err})", "podman");
                eprintln!(
                    "Install podman (https://podman.io/docs/installation), then run: terok-executor setup"
                );
                return Ok(Some(Status::Code(SETUP_NEEDED)));
            }
        }
    };
    let missing: Vec<String> = states
        .into_iter()
        .filter(|s| !s.present)
        .map(|s| format!("{} {}", s.layer, s.tag))
        .collect();
    if !missing.is_empty() {
        let what = missing.join(", ");
        if args.yes {
            eprintln!("Images missing ({what}); building them (--yes).");
        } else if prompt::stdin_is_tty() {
            let answer = prompt::read_line(&format!(
                "Images missing: {what}.\nBuild container images now? (the first build takes a few minutes) [Y/n] "
            ))
            .map_err(|e| miette::miette!("cannot read the answer: {e}"))?;
            let yes = answer.as_deref().map(str::trim).is_some_and(|a| {
                a.is_empty() || a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")
            });
            if !yes {
                eprintln!("Not building. Run `terok-executor setup` when you are ready.");
                return Ok(Some(Status::Code(SETUP_NEEDED)));
            }
        } else {
            eprintln!(
                "Setup needed: images missing ({what}), and stdin is not a terminal to ask.\n\
                 Fix it with one of:\n  \
                 terok-executor setup                    prepare this host once (images, vault)\n  \
                 terok-executor run ... --yes            build what is missing without asking\n  \
                 terok-executor run ... --no-preflight   skip these checks (images are built anyway)"
            );
            return Ok(Some(Status::Code(SETUP_NEEDED)));
        }
    }
    if let Some(pid) = ensure_vault_running(ctx)? {
        eprintln!("Vault started (pid {pid}).");
    }
    let agent = ctx.roster()?.agent(&args.agent)?;
    if let Some(provider) = ctx.roster()?.provider_for(agent) {
        let stored = match ctx.open_existing_db() {
            Ok(Some(db)) => db
                .list_credentials(terok_credentials::DEFAULT_SET)
                .map(|list| list.iter().any(|c| c.provider == provider.name))
                .unwrap_or(false),
            _ => false,
        };
        if !stored {
            eprintln!(
                "No credential stored for {0}: the agent will ask you to log in. Store one with \
                 `terok-executor auth {0}`.",
                provider.name
            );
        }
    }
    Ok(None)
}

/// CDI GPU vendors configured on this host (`/etc/cdi`, `/var/run/cdi`).
fn cdi_vendors() -> Vec<String> {
    let mut vendors = Vec::new();
    for dir in ["/etc/cdi", "/var/run/cdi"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            for vendor in ["nvidia", "amd", "intel"] {
                if name.contains(vendor) && !vendors.iter().any(|v| v == vendor) {
                    vendors.push(vendor.to_owned());
                }
            }
        }
    }
    vendors
}

/// `git config --global user.name/user.email` (5 s each), printed as upstream does.
fn host_git_identity() -> Option<(String, String)> {
    let read = |key: &str| -> Option<String> {
        let mut child = std::process::Command::new("git")
            .args(["config", "--global", key])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    return None;
                }
            }
        }
        let mut text = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut()?, &mut text).ok()?;
        Some(text.trim().to_owned()).filter(|t| !t.is_empty())
    };
    match read("user.name") {
        Some(name) => {
            let email = read("user.email").unwrap_or_else(|| "nobody@localhost".to_owned());
            eprintln!("Git identity from host: {name} <{email}>");
            Some((name, email))
        }
        None => {
            eprintln!("warning: --git-identity-from-host: no user.name in your global git config");
            None
        }
    }
}
