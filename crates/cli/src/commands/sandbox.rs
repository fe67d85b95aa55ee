//! `sandbox …`: the Python terok-executor 0.5.0's verb tree. Its verbs that name a command of
//! ours run that command; `prepare | run | cleanup` sandbox a container of the user's own.

use std::io::IsTerminal;

use miette::IntoDiagnostic;
use terok_executor::{PreparedSandbox, SandboxRequest};

use crate::Status;
use crate::args::{
    SandboxArgs, SandboxCleanupArgs, SandboxCommand, SandboxOptions, SandboxPrepareArgs,
    SandboxRunArgs,
};
use crate::context::Context;

pub fn run(ctx: &Context, args: SandboxArgs) -> miette::Result<Status> {
    match args.command {
        SandboxCommand::Prepare(prepare_args) => prepare(ctx, &prepare_args),
        SandboxCommand::Run(run_args) => run_container(ctx, run_args),
        SandboxCommand::Cleanup(cleanup_args) => cleanup(ctx, &cleanup_args),
        other => {
            // The aliases are resolved before dispatch; should one arrive, it is that command.
            let command = crate::args::Command::Sandbox(SandboxArgs { command: other })
                .without_sandbox_alias();
            crate::commands::dispatch(ctx, command)
        }
    }
}

fn request(name: String, options: &SandboxOptions) -> SandboxRequest {
    let SandboxOptions {
        credentials,
        shield,
    } = options;
    let mut request = SandboxRequest::new(name);
    request.credentials = credentials.clone();
    request.egress = shield.map(|s| s.egress());
    request
}

/// `sandbox prepare NAME [--credential P]… [--shield MODE] [--json]`.
fn prepare(ctx: &Context, args: &SandboxPrepareArgs) -> miette::Result<Status> {
    let SandboxPrepareArgs {
        name,
        sandbox,
        json,
    } = args;
    let executor = ctx.executor()?;
    let prepared = ctx
        .block_on(executor.prepare_sandbox(&request(name.clone(), sandbox)))?
        .map_err(with_remedy)?;
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&prepared).into_diagnostic()?
        );
        return Ok(Status::Ok);
    }
    println!("{}", command_line(&prepared));
    if prepared.egress == "allowlist" {
        eprintln!(
            "The firewall loads only when podman runs the container with the line's --hooks-dir: \
             use it as it is (a `podman create` and a later `start` without it is not shielded)."
        );
    }
    eprintln!(
        "Sandbox for `{name}` ready ({} egress; tokens for: {}). Add your image and command to \
         the line above; `terok-executor sandbox cleanup {name}` takes the sandbox back.",
        prepared.egress,
        if prepared.providers.is_empty() {
            "none".to_owned()
        } else {
            prepared.providers.join(", ")
        }
    );
    Ok(Status::Ok)
}

/// The error, with the command that gets past it.
fn with_remedy(err: terok_executor::ExecutorError) -> miette::Report {
    match &err {
        terok_executor::ExecutorError::SandboxExists { name } => miette::miette!(
            help = format!("`terok-executor sandbox cleanup {name}` takes the old one back first"),
            "{err}"
        ),
        terok_executor::ExecutorError::NameTaken { .. } => {
            miette::miette!(help = "choose another name", "{err}")
        }
        terok_executor::ExecutorError::NoStoredCredential { provider } => miette::miette!(
            help = format!("store one first: `terok-executor auth {provider}`"),
            "{err}"
        ),
        _ => err.into(),
    }
}

/// `podman <global> run <options>`, each word quoted for a POSIX shell where it needs it.
fn command_line(prepared: &PreparedSandbox) -> String {
    std::iter::once("podman")
        .chain(prepared.global_args.iter().map(String::as_str))
        .chain(std::iter::once("run"))
        .chain(prepared.run_args.iter().map(String::as_str))
        .map(shell_word)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `sandbox run [--name N] [--credential P]… [--shield MODE] IMAGE [COMMAND…]`.
fn run_container(ctx: &Context, args: SandboxRunArgs) -> miette::Result<Status> {
    let SandboxRunArgs {
        name,
        sandbox,
        image,
        command,
    } = args;
    let name = match name {
        Some(name) => name,
        None => {
            // Unique enough for a name: this process and the clock's nanoseconds.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            format!("terok-sandbox-{:x}{:08x}", std::process::id(), nanos)
        }
    };
    let executor = ctx.executor()?;
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let code = ctx
        .block_on(async {
            // Ctrl-C, a closed terminal or a TERM reach podman (and through it the container);
            // this process stays to take the sandbox back when the container has gone.
            let _held = hold_signals();
            executor
                .run_sandbox(&request(name, &sandbox), &image, &command, tty)
                .await
        })?
        .map_err(with_remedy)?;
    Ok(match code {
        0 => Status::Ok,
        code => Status::Code(u8::try_from(code).unwrap_or(1)),
    })
}

/// Handlers for SIGINT, SIGTERM and SIGHUP while they are held: the signals no longer end
/// this process.
fn hold_signals() -> Vec<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .into_iter()
    .filter_map(|kind| signal(kind).ok())
    .collect()
}

/// `sandbox cleanup NAME`.
fn cleanup(ctx: &Context, args: &SandboxCleanupArgs) -> miette::Result<Status> {
    let SandboxCleanupArgs { name } = args;
    let executor = ctx.executor()?;
    let done = ctx.block_on(executor.cleanup_sandbox(name))??;
    if done.revoked == 0 && !done.removed_dir {
        println!("No sandbox for `{name}`; nothing to clean up.");
    } else {
        println!(
            "Sandbox of `{name}` taken back: {} token(s) revoked{}.",
            done.revoked,
            if done.removed_dir {
                ", its directory removed"
            } else {
                ""
            }
        );
    }
    Ok(Status::Ok)
}
