//! `vault serve | start | stop | status | routes | list | clean | install | uninstall |
//! passphrase`: the token broker daemon, the credential store behind it, its systemd user
//! service, and where its key comes from.

use miette::IntoDiagnostic;
use terok_executor::{RouteTable, RoutesWritten, VaultReport, VaultStart};

use crate::Status;
use crate::args::{
    VaultArgs, VaultCleanArgs, VaultCommand, VaultInstallArgs, VaultListArgs, VaultLockArgs,
    VaultRoutesArgs, VaultServeArgs, VaultUnlockArgs,
};
use crate::context::Context;

/// `vault serve --sidecar`: one task's vault in its Pod.
fn serve_sidecar(ctx: &Context, args: &VaultServeArgs) -> miette::Result<Status> {
    let VaultServeArgs {
        sidecar: _,
        bundle,
        socket,
        state,
        until,
    } = args;
    let (Some(bundle), Some(socket), Some(state)) = (bundle, socket, state) else {
        return Err(miette::miette!(
            "--sidecar needs --bundle, --socket and --state"
        ));
    };
    let options = terok_executor::SidecarOptions::new(bundle, socket, state, until.clone());
    ctx.block_on(terok_executor::serve_vault_sidecar(options))??;
    Ok(Status::Ok)
}
use crate::output::table;

pub fn run(ctx: &Context, args: &VaultArgs) -> miette::Result<Status> {
    // A Pod's sidecar has no configuration, home or state of a user: no session.
    if let VaultCommand::Serve(serve) = &args.command
        && serve.sidecar
    {
        return serve_sidecar(ctx, serve);
    }
    let executor = ctx.executor()?;
    match &args.command {
        VaultCommand::Serve(_) => {
            ctx.block_on(executor.serve_vault())??;
            Ok(Status::Ok)
        }
        VaultCommand::Start => start(ctx),
        VaultCommand::Stop => {
            let was_running = ctx.block_on(executor.stop_vault())??;
            println!(
                "{}",
                if was_running {
                    "Vault stopped."
                } else {
                    "Vault is not running."
                }
            );
            Ok(Status::Ok)
        }
        VaultCommand::Status => {
            print_status(&ctx.block_on(executor.vault_report())??);
            Ok(Status::Ok)
        }
        VaultCommand::Routes(routes_args) => routes(ctx, routes_args),
        VaultCommand::List(list_args) => list(ctx, list_args),
        VaultCommand::Clean(clean_args) => clean(ctx, clean_args),
        VaultCommand::Install(install_args) => install(ctx, install_args),
        VaultCommand::Uninstall => uninstall_unit(ctx),
        VaultCommand::Passphrase => {
            print!("{}", key_chain_text(&executor.key_chain()));
            Ok(Status::Ok)
        }
        VaultCommand::Unlock(unlock_args) => unlock(ctx, unlock_args),
        VaultCommand::Lock(lock_args) => lock(ctx, lock_args),
    }
}

/// `vault unlock [--for DURATION] [--passphrase-stdin]`.
fn unlock(ctx: &Context, args: &VaultUnlockArgs) -> miette::Result<Status> {
    let VaultUnlockArgs {
        lifetime,
        passphrase_stdin,
    } = args;
    let executor = ctx.executor()?;
    if executor.vault_key_is_protected()? != Some(true) {
        // Nothing to ask for: say where the key comes from.
        if let terok_executor::Unlocked::NotProtected(source) = executor.unlock_vault(None, None)? {
            match source {
                Some(source) => println!(
                    "The vault key is not protected by a passphrase (it comes from {source}); nothing to unlock."
                ),
                None => println!("There is no vault key yet; nothing to unlock."),
            }
            eprintln!(
                "hint: protect it with `terok-executor setup --passphrase-tier kernel-keyring`"
            );
        }
        return Ok(Status::Ok);
    }
    let passphrase =
        crate::commands::key_tier::read_passphrase(*passphrase_stdin, "Vault passphrase: ")?;
    executor
        .unlock_vault(passphrase.as_deref(), lifetime.0)
        .map_err(|err| match err {
            terok_executor::ExecutorError::Key(
                terok_executor::errors::KeyError::NeedsPassphrase { .. },
            ) => miette::miette!(
                help = "on a terminal it is asked for; else pipe it in (`… | terok-executor vault unlock --passphrase-stdin`) or set TEROK_VAULT_PASSPHRASE",
                "{err}"
            ),
            other => other.into(),
        })?;
    match lifetime.0 {
        Some(d) => println!(
            "Unlocked: the vault key is cached in your kernel keyring for {}, or until `terok-executor vault lock`.",
            duration_words(d)
        ),
        None => println!(
            "Unlocked: the vault key is cached in your kernel keyring until `terok-executor vault lock` or a reboot."
        ),
    }
    Ok(Status::Ok)
}

/// `8 hours`, `30 minutes`, `90 seconds`: the largest unit that divides it.
fn duration_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = [(86_400, "day"), (3600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(size, _)| secs.is_multiple_of(*size))
        .map_or((secs, "second"), |(size, unit)| (secs / size, unit));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `vault lock [--stop]`.
fn lock(ctx: &Context, args: &VaultLockArgs) -> miette::Result<Status> {
    let VaultLockArgs { stop } = args;
    let executor = ctx.executor()?;
    let removed = executor.lock_vault()?;
    println!(
        "{}",
        if removed {
            "Locked: the cached vault key is gone."
        } else {
            "No cached vault key; nothing to lock."
        }
    );
    if *stop {
        if ctx.block_on(executor.stop_vault())?? {
            println!("Vault stopped.");
        }
    } else if ctx.block_on(executor.vault_client().is_running())? {
        eprintln!(
            "hint: the running vault keeps its key in memory until it stops: `terok-executor vault stop` (or `vault lock --stop`)"
        );
    }
    Ok(Status::Ok)
}

/// The key's sources in order, the one in use marked.
fn key_chain_text(chain: &[terok_executor::KeyLink]) -> String {
    let mut out = String::from("The vault's key, from the first of these that has it:\n");
    for (n, link) in chain.iter().enumerate() {
        let mark = if link.in_use { "  <- in use" } else { "" };
        out.push_str(&format!(
            "  {}. {}: {}{mark}\n",
            n + 1,
            link.source,
            link.state
        ));
    }
    if let Some(keyring) = chain.iter().find(|l| l.may_hold) {
        out.push_str(&format!(
            "{} is asked before the sources after it: if it holds a key, that one is used.\n",
            keyring.source
        ));
    } else if !chain.iter().any(|l| l.in_use) {
        out.push_str(
            "None has it yet: the first command that needs the vault makes a key file (protected \
             by TEROK_VAULT_PASSPHRASE or credentials.passphrase_command when one is set).\n",
        );
    }
    out
}

/// `vault install [--print]`.
fn install(ctx: &Context, args: &VaultInstallArgs) -> miette::Result<Status> {
    let VaultInstallArgs { print } = args;
    let executor = ctx.executor()?;
    if *print {
        print!("{}", executor.vault_unit()?.text);
        return Ok(Status::Ok);
    }
    ctx.block_on(executor.update_routes())??;
    match ctx.block_on(executor.install_vault_unit())? {
        Ok(unit) => {
            println!("Vault service installed: {}", unit.path.display());
            println!(
                "It runs now and with every login (systemctl --user status {}).",
                terok_executor::VAULT_UNIT
            );
            Ok(Status::Ok)
        }
        Err(terok_executor::ExecutorError::NoUserSession { detail }) => {
            eprintln!("Cannot install the vault service: no systemd user session ({detail}).");
            eprintln!(
                "Run the vault without it: terok-executor vault start   (or review the unit: \
                 terok-executor vault install --print)"
            );
            Ok(Status::Failure)
        }
        Err(err) => Err(err.into()),
    }
}

/// `vault uninstall`.
fn uninstall_unit(ctx: &Context) -> miette::Result<Status> {
    match ctx.executor()?.uninstall_vault_unit()? {
        Some(path) => println!("Vault service stopped and removed: {}", path.display()),
        None => println!("No vault service is installed."),
    }
    Ok(Status::Ok)
}

/// `Routes written to …`, and whether a running daemon reread them.
pub fn print_routes(written: &RoutesWritten) {
    println!(
        "Routes written to {} ({} configured)",
        written.path.display(),
        written.routes
    );
    if written.reloaded {
        println!("Running vault reloaded its routes.");
    }
}

fn routes(ctx: &Context, args: &VaultRoutesArgs) -> miette::Result<Status> {
    let VaultRoutesArgs { json } = args;
    let written = ctx.block_on(ctx.executor()?.update_routes())??;
    // What the daemon serves now; the file's table when no daemon runs.
    let (served, source) = match &written.served {
        Some(served) => (served.routes.clone(), "served by the running vault"),
        None => (
            ctx.executor()?.roster_routes()?,
            "written; the vault is not running",
        ),
    };
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&served).into_diagnostic()?
        );
        return Ok(Status::Ok);
    }
    print_routes(&written);
    println!();
    println!("Routes ({source}):");
    print!("{}", routes_table(&served));
    Ok(Status::Ok)
}

/// NAME  UPSTREAM  HEADER, one route per line (path upstreams indented below their route).
fn routes_table(routes: &RouteTable) -> String {
    let rows: Vec<[String; 3]> = routes
        .iter()
        .flat_map(|(name, route)| {
            let header = match route.auth_header.as_str() {
                "dynamic" => "x-api-key (OAuth: Authorization: Bearer)".to_owned(),
                named => format!("{named}: {}<credential>", route.auth_prefix),
            };
            std::iter::once([name.clone(), route.upstream.clone(), header]).chain(
                route
                    .path_upstreams
                    .iter()
                    .map(|(prefix, url)| [format!("  {prefix}"), url.clone(), String::new()]),
            )
        })
        .collect();
    let cells: Vec<[&str; 3]> = rows
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str()])
        .collect();
    table(["NAME", "UPSTREAM", "HEADER"], &cells)
}

fn start(ctx: &Context) -> miette::Result<Status> {
    let executor = ctx.executor()?;
    ctx.block_on(async {
        if let Some(status) = executor.vault_client().status().await {
            eprintln!("Vault is already running (pid {}).", status.pid);
            return Ok(Status::Failure);
        }
        print_routes(&executor.update_routes().await?);
        if let VaultStart::Started { pid } | VaultStart::AlreadyRunning { pid } =
            executor.ensure_vault().await?
        {
            println!("Vault started (pid {pid}).");
        }
        Ok::<_, terok_executor::ExecutorError>(Status::Ok)
    })?
    .map_err(Into::into)
}

fn print_status(report: &VaultReport) {
    println!("Mode:          socket (one socket per container)");
    match &report.daemon {
        Some(d) => println!("Status:        running (pid {})", d.pid),
        None => println!("Status:        stopped"),
    }
    println!("Control:       {}", report.control.display());
    println!("DB:            {}", report.db.display());
    match report.routes {
        Some(n) => println!(
            "Routes:        {} ({n} configured)",
            report.routes_file.display()
        ),
        None => println!(
            "Routes:        {} (missing; run `terok-executor vault routes`)",
            report.routes_file.display()
        ),
    }
    if let Some(changes) = report.route_changes.as_ref().filter(|c| !c.is_empty()) {
        let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
        println!(
            "               the vault serves an older roster: {}; the next run updates it, or \
             `terok-executor vault routes` now",
            list.join(", ")
        );
    }
    match &report.credentials {
        Ok(None) => println!("Credentials:   none stored (no database yet)"),
        Ok(Some(stored)) if stored.is_empty() => println!("Credentials:   none stored"),
        Ok(Some(stored)) => {
            let names: Vec<String> = stored
                .iter()
                .map(|c| format!("{} ({})", c.provider, c.kind))
                .collect();
            println!("Credentials:   {}", names.join(", "));
        }
        Err(err) => println!("Credentials:   unavailable ({err})"),
    }
    if let (Ok(Some(_)), Some(daemon)) = (&report.credentials, &report.daemon) {
        println!("Key:           {}", daemon.key_source);
    }
    for r in report.daemon.iter().flat_map(|d| &d.rejected) {
        println!(
            "Rejected:      {} by its API: {}{} at {} ({} in a row, {})",
            r.provider,
            r.status,
            r.error_type
                .as_deref()
                .map(|t| format!(" {t}"))
                .unwrap_or_default(),
            terok_core::time::utc_minutes(r.last_unix),
            r.count,
            r.container
        );
    }
    match &report.daemon {
        Some(d) if !d.listeners.is_empty() => println!("Listeners:     {}", d.listeners.join(", ")),
        Some(_) => println!("Listeners:     none"),
        None => println!("Hint:          start it with `terok-executor vault start`"),
    }
    if !report.leaks.is_empty() {
        println!();
        println!(
            "WARNING: real credentials found in shared mounts (every container of that agent can read them):"
        );
        for leak in &report.leaks {
            println!("  {}: {}", leak.provider, leak.path.display());
        }
        println!("Run `terok-executor vault clean` to remove them.");
    }
}

fn list(ctx: &Context, args: &VaultListArgs) -> miette::Result<Status> {
    let VaultListArgs { tokens } = args;
    let executor = ctx.executor()?;
    match executor.stored_credentials()? {
        Some(stored) if !stored.is_empty() => {
            println!("{:<16}{:<14}UPDATED", "PROVIDER", "TYPE");
            for c in &stored {
                println!(
                    "{:<16}{:<14}{}",
                    c.provider,
                    c.kind,
                    terok_core::time::utc_minutes(c.updated_at)
                );
            }
        }
        _ => {
            println!("No credentials stored. Add one with `terok-executor auth <agent>`.");
            if executor.open_existing_db()?.is_none() {
                return Ok(Status::Ok);
            }
        }
    }
    if *tokens {
        let live = executor.live_tokens()?;
        println!();
        if live.is_empty() {
            println!("No live tokens.");
        } else {
            println!(
                "{:<36}{:<14}{:<14}{:<10}",
                "CONTAINER", "PROVIDER", "SCOPE", "TOKEN"
            );
            for t in &live {
                println!(
                    "{:<36}{:<14}{:<14}sha256:{}…",
                    t.subject,
                    t.provider,
                    t.scope,
                    t.token_hash.get(..12).unwrap_or(&t.token_hash)
                );
            }
        }
    }
    Ok(Status::Ok)
}

fn clean(ctx: &Context, args: &VaultCleanArgs) -> miette::Result<Status> {
    let VaultCleanArgs { grace } = args;
    let report = ctx.block_on(ctx.executor()?.clean_vault(*grace))??;
    if report.removed.is_empty() && report.not_removed.is_empty() {
        println!("No leaked credential files found.");
    }
    for leak in &report.removed {
        println!("Removed {}: {}", leak.provider, leak.path.display());
    }
    for (leak, err) in &report.not_removed {
        eprintln!("Could not remove {}: {err}", leak.path.display());
    }
    if report.revoked.is_empty() {
        println!("No tokens of stopped or removed containers.");
    } else {
        println!(
            "Revoked the tokens of stopped or removed containers: {}",
            report.revoked.join(", ")
        );
    }
    Ok(if report.not_removed.is_empty() {
        Status::Ok
    } else {
        Status::Failure
    })
}
