//! `vault serve | start | stop | status | routes | list | clean`: the token broker daemon and
//! the credential store behind it.

use std::collections::BTreeSet;
use std::time::Duration;

use terok_credentials::leak;
use terok_credentials::routes::{routes_from_roster, write_routes};
use terok_podman::{ContainerRuntime, LABEL_EXECUTOR, PodmanCli};
use terok_vault::control::{ControlRequest, ControlResponse, call};
use terok_vault::{LiveContainers, VaultConfig};

use crate::Status;
use crate::args::{VaultArgs, VaultCleanArgs, VaultCommand, VaultListArgs};
use crate::context::Context;

pub fn run(ctx: &Context, args: &VaultArgs) -> miette::Result<Status> {
    match &args.command {
        VaultCommand::Serve => serve(ctx),
        VaultCommand::Start => start(ctx),
        VaultCommand::Stop => stop(ctx),
        VaultCommand::Status => status(ctx),
        VaultCommand::Routes => routes(ctx).map(|_| Status::Ok),
        VaultCommand::List(list_args) => list(ctx, list_args),
        VaultCommand::Clean(clean_args) => clean(ctx, clean_args),
    }
}

/// Containers of ours that run now: a token lives while its container runs.
pub fn live_containers(podman: &PodmanCli) -> Result<BTreeSet<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(podman.list(LABEL_EXECUTOR))
        .map(|list| {
            list.into_iter()
                .filter(|c| c.state == "running")
                .map(|c| c.name)
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// Writes routes.json from the roster; returns its path.
/// Writes routes.json from the roster, quietly; returns its path and the number of routes.
fn write_routes_file(ctx: &Context) -> miette::Result<(std::path::PathBuf, usize)> {
    let table = routes_from_roster(ctx.roster()?);
    let path = ctx.vault_paths()?.routes();
    write_routes(&path, &table)?;
    Ok((path, table.len()))
}

pub fn routes(ctx: &Context) -> miette::Result<std::path::PathBuf> {
    let (path, count) = write_routes_file(ctx)?;
    println!(
        "Routes written to {} ({} configured)",
        path.display(),
        count
    );
    let socket = ctx.vault_paths()?.control_socket();
    if let Ok(Ok(_)) = ctx.block_on(call(&socket, &ControlRequest::Reload)) {
        println!("Running vault reloaded its routes.");
    }
    Ok(path)
}

fn serve(ctx: &Context) -> miette::Result<Status> {
    // A daemon must not remember anything about images: it outlives their changes.
    let podman = PodmanCli::new().with_connection(ctx.connection.clone());
    let live: LiveContainers = std::sync::Arc::new(move || live_containers(&podman));
    let config = VaultConfig {
        paths: ctx.vault_paths()?,
        key: ctx.key_options()?,
        live_containers: Some(live),
        refresh_interval: Duration::from_secs(300),
        sweep_interval: Duration::from_secs(60),
    };
    // Two workers: one thread measured the same throughput (cargo xtask bench) but would stall
    // every container while a database call or TLS handshake runs.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))?;
    runtime.block_on(terok_vault::serve(config))?;
    Ok(Status::Ok)
}

fn running_pid(ctx: &Context) -> miette::Result<Option<u32>> {
    let socket = ctx.vault_paths()?.control_socket();
    Ok(
        match ctx.block_on(call(&socket, &ControlRequest::Status))? {
            Ok(ControlResponse::Status(status)) => Some(status.pid),
            _ => None,
        },
    )
}

/// Starts the vault (routes first) unless it runs; returns the new daemon's pid.
pub fn ensure_vault_running(ctx: &Context) -> miette::Result<Option<u32>> {
    if running_pid(ctx)?.is_some() {
        return Ok(None);
    }
    write_routes_file(ctx)?;
    spawn_daemon(ctx, &ctx.vault_paths()?).map(Some)
}

fn start(ctx: &Context) -> miette::Result<Status> {
    if let Some(pid) = running_pid(ctx)? {
        eprintln!("Vault is already running (pid {pid}).");
        return Ok(Status::Failure);
    }
    routes(ctx)?;
    let paths = ctx.vault_paths()?;
    let pid = spawn_daemon(ctx, &paths)?;
    println!("Vault started (pid {pid}).");
    Ok(Status::Ok)
}

/// Starts `terok-executor vault serve` in the background and waits until it answers.
pub fn spawn_daemon(ctx: &Context, paths: &terok_vault::VaultPaths) -> miette::Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| miette::miette!("cannot find this program's path: {e}"))?;
    terok_core::secure_fs::ensure_private_dir(&paths.vault_dir)?;
    let log_path = paths.log_file();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| miette::miette!("cannot open {}: {e}", log_path.display()))?;
    let mut command = std::process::Command::new(exe);
    match &ctx.config_source {
        terok_core::config::ConfigSource::File(path) => {
            command.arg("--config").arg(path);
        }
        terok_core::config::ConfigSource::Nothing => {
            command.arg("--raw");
        }
        terok_core::config::ConfigSource::Layered => {}
    }
    if let Some(connection) = &ctx.connection {
        command.arg("--connection").arg(connection);
    }
    command
        .args(["vault", "serve"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| miette::miette!("{e}"))?)
        .stderr(log)
        // Its own process group: closing this terminal does not take the daemon with it.
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| miette::miette!("cannot start the vault daemon: {e}"))?;
    for _ in 0..200 {
        if let Some(pid) = running_pid(ctx)? {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(10).collect();
    Err(miette::miette!(
        help = format!("see {}", log_path.display()),
        "the vault daemon (pid {}) did not come up:\n{}",
        child.id(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

fn stop(ctx: &Context) -> miette::Result<Status> {
    let socket = ctx.vault_paths()?.control_socket();
    if running_pid(ctx)?.is_none() {
        println!("Vault is not running.");
        return Ok(Status::Ok);
    }
    ctx.block_on(call(&socket, &ControlRequest::Stop))??;
    for _ in 0..200 {
        if !socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    println!("Vault stopped.");
    Ok(Status::Ok)
}

fn status(ctx: &Context) -> miette::Result<Status> {
    let paths = ctx.vault_paths()?;
    let socket = paths.control_socket();
    let daemon = match ctx.block_on(call(&socket, &ControlRequest::Status))? {
        Ok(ControlResponse::Status(status)) => Some(status),
        _ => None,
    };
    println!("Mode:          socket (one socket per container)");
    match &daemon {
        Some(d) => println!("Status:        running (pid {})", d.pid),
        None => println!("Status:        stopped"),
    }
    println!("Control:       {}", socket.display());
    println!("DB:            {}", paths.db().display());
    let table_len = terok_credentials::routes::read_routes(&paths.routes()).map(|t| t.len());
    match table_len {
        Ok(n) => println!(
            "Routes:        {} ({n} configured)",
            paths.routes().display()
        ),
        Err(_) => println!(
            "Routes:        {} (missing; run `terok-executor vault routes`)",
            paths.routes().display()
        ),
    }
    match ctx.open_existing_db() {
        Ok(None) => println!("Credentials:   none stored (no database yet)"),
        Ok(Some(db)) => {
            let stored = db.list_credentials(terok_credentials::DEFAULT_SET)?;
            if stored.is_empty() {
                println!("Credentials:   none stored");
            } else {
                let names: Vec<String> = stored
                    .iter()
                    .map(|c| format!("{} ({})", c.provider, c.kind))
                    .collect();
                println!("Credentials:   {}", names.join(", "));
            }
            let key = daemon.as_ref().map(|d| d.key_source.clone());
            if let Some(key) = key {
                println!("Key:           {key}");
            }
        }
        Err(err) => println!("Credentials:   unavailable ({err})"),
    }
    match &daemon {
        Some(d) if !d.listeners.is_empty() => println!("Listeners:     {}", d.listeners.join(", ")),
        Some(_) => println!("Listeners:     none"),
        None => println!("Hint:          start it with `terok-executor vault start`"),
    }
    let leaks = leak::scan(ctx.roster()?, &ctx.paths()?.mounts_dir);
    if !leaks.is_empty() {
        println!();
        println!(
            "WARNING: real credentials found in shared mounts (every container of that agent can read them):"
        );
        for leak in &leaks {
            println!("  {}: {}", leak.provider, leak.path.display());
        }
        println!("Run `terok-executor vault clean` to remove them.");
    }
    Ok(Status::Ok)
}

fn list(ctx: &Context, args: &VaultListArgs) -> miette::Result<Status> {
    let Some(db) = ctx.open_existing_db()? else {
        println!("No credentials stored. Add one with `terok-executor auth <agent>`.");
        return Ok(Status::Ok);
    };
    let stored = db.list_credentials(terok_credentials::DEFAULT_SET)?;
    if stored.is_empty() {
        println!("No credentials stored. Add one with `terok-executor auth <agent>`.");
    } else {
        println!("{:<16}{:<14}UPDATED", "PROVIDER", "TYPE");
        for c in &stored {
            println!(
                "{:<16}{:<14}{}",
                c.provider,
                c.kind,
                unix_date(c.updated_at)
            );
        }
    }
    if args.tokens {
        let tokens = db.list_tokens()?;
        println!();
        if tokens.is_empty() {
            println!("No live tokens.");
        } else {
            println!(
                "{:<36}{:<14}{:<14}{:<10}",
                "CONTAINER", "PROVIDER", "SCOPE", "TOKEN"
            );
            for t in &tokens {
                println!(
                    "{:<36}{:<14}{:<14}sha256:{}…",
                    t.subject,
                    t.provider,
                    t.scope,
                    &t.token_hash[..12]
                );
            }
        }
    }
    Ok(Status::Ok)
}

/// `2026-11-27 13:05 UTC` from seconds since the epoch (civil-from-days, no time crate needed).
fn unix_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn clean(ctx: &Context, args: &VaultCleanArgs) -> miette::Result<Status> {
    let leaks = leak::scan(ctx.roster()?, &ctx.paths()?.mounts_dir);
    if leaks.is_empty() {
        println!("No leaked credential files found.");
    }
    let mut failed = false;
    for (leak, result) in leaks.iter().zip(leak::clean(&leaks)) {
        match result {
            Ok(path) => println!("Removed {}: {}", leak.provider, path.display()),
            Err((path, err)) => {
                failed = true;
                eprintln!("Could not remove {}: {err}", path.display());
            }
        }
    }
    let podman = ctx.podman();
    let live = live_containers(&podman).map_err(|e| {
        miette::miette!(
            help = "the sweep needs podman to know which containers exist",
            "{e}"
        )
    })?;
    let socket = ctx.vault_paths()?.control_socket();
    let revoked = match ctx.block_on(call(
        &socket,
        &ControlRequest::Sweep {
            live: live.iter().cloned().collect(),
            grace_secs: Some(i64::from(args.grace)),
        },
    ))? {
        Ok(ControlResponse::Revoked { containers, .. }) => containers,
        _ => match ctx.open_existing_db()? {
            Some(db) => db.sweep(&live, i64::from(args.grace))?,
            None => Vec::new(),
        },
    };
    if revoked.is_empty() {
        println!("No tokens of stopped or removed containers.");
    } else {
        println!(
            "Revoked the tokens of stopped or removed containers: {}",
            revoked.join(", ")
        );
    }
    Ok(if failed { Status::Failure } else { Status::Ok })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(unix_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(unix_date(1_795_785_900), "2026-11-27 13:25 UTC");
    }
}
