//! `auth <agent>`: store an API key, or log in through an auth container; the choice between
//! them is asked here, on the terminal.

use terok_executor::{AuthEvent, AuthOptions, LoginOutcome, Stored};

use crate::Status;
use crate::args::AuthArgs;
use crate::context::Context;
use crate::progress::BuildProgress;
use crate::prompt;

pub fn run(ctx: &Context, args: AuthArgs) -> miette::Result<Status> {
    let AuthArgs {
        agent,
        api_key,
        base_image,
    } = args;
    let executor = ctx.executor()?;
    let options = executor.auth_options(&agent)?;
    match api_key.as_deref() {
        Some("-") => {
            let key = prompt::read_all_stdin()
                .map_err(|e| miette::miette!("cannot read the key from stdin: {e}"))?;
            store_key(ctx, &agent, &key)
        }
        Some(key) => {
            eprintln!("{ARGV_KEY_WARNING}");
            store_key(ctx, &agent, key)
        }
        None => interactive(ctx, &agent, &options, base_image),
    }
}

/// Why a key on the command line is a bad idea, and what to do instead.
const ARGV_KEY_WARNING: &str = "warning: a key on the command line is visible to every user in \
    the process list and stays in your shell history; next time pipe it in: \
    `terok-executor auth AGENT --api-key - < keyfile`";

fn store_key(ctx: &Context, agent: &str, key: &str) -> miette::Result<Status> {
    let stored = ctx.executor()?.store_api_key(agent, key)?;
    println!("API key stored for {} (set: default)", stored.provider);
    print_vault_config(&stored);
    Ok(Status::Ok)
}

fn print_vault_config(stored: &Stored) {
    if let Some(path) = &stored.vault_config {
        println!("Vault config written to {}", path.display());
    }
}

fn interactive(
    ctx: &Context,
    agent: &str,
    options: &AuthOptions,
    base_image: Option<String>,
) -> miette::Result<Status> {
    if !prompt::stdin_is_tty() {
        // Not interactive: take the key from stdin when that is the only way.
        if !options.api_key {
            return Err(miette::miette!(
                help = "run it in a terminal",
                "{} needs an interactive login",
                options.label
            ));
        }
        let key = prompt::read_line("").map_err(|e| miette::miette!("cannot read stdin: {e}"))?;
        return store_key(ctx, agent, key.as_deref().unwrap_or(""));
    }
    if !choose_login(options)? {
        if let Some(hint) = &options.api_key_hint {
            eprintln!("{hint}");
        }
        let Some(key) = prompt::read_secret(&format!("{} API key: ", options.label))
            .map_err(|e| miette::miette!("{e}"))?
        else {
            return Err(miette::miette!("No API key entered."));
        };
        return store_key(ctx, agent, &key);
    }
    login(ctx, agent, base_image)
}

/// Whether to log in (rather than paste a key): asked when both are possible.
fn choose_login(options: &AuthOptions) -> miette::Result<bool> {
    Ok(match (options.login, options.api_key) {
        (true, true) => {
            eprintln!("How do you want to authenticate {}?", options.label);
            eprintln!("  1. OAuth / interactive login (launches a container)");
            eprintln!("  2. API key (paste a key, no container needed)");
            let choice = prompt::read_line("Choose [1/2]: ").map_err(|e| miette::miette!("{e}"))?;
            choice.as_deref().map(str::trim) != Some("2")
        }
        (login, _) => login,
    })
}

fn login(ctx: &Context, agent: &str, base_image: Option<String>) -> miette::Result<Status> {
    let mut progress = BuildProgress::new(ctx.verbose > 0);
    let outcome = ctx.block_on(ctx.executor()?.oauth_login(
        agent,
        base_image,
        &mut |event| match event {
            AuthEvent::Image(event) => progress.event(event),
            AuthEvent::LoginStarting {
                label,
                banner_hint,
                command,
            } => {
                eprintln!("Authenticating {label} (host-wide)");
                if let Some(hint) = banner_hint {
                    eprintln!("{hint}");
                }
                eprintln!("$ {}", command.join(" "));
            }
            _ => {}
        },
    ))??;
    match outcome {
        LoginOutcome::Stored(stored) => {
            println!(
                "{} credential stored for {} (set: default)",
                stored.kind, stored.provider
            );
            print_vault_config(&stored);
            Ok(Status::Ok)
        }
        LoginOutcome::Cancelled => {
            eprintln!("Authentication container stopped.");
            Ok(Status::Code(130))
        }
        _ => Ok(Status::Failure),
    }
}
