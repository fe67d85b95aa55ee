//! `auth <agent>`: store an API key, or log in through an auth container and capture the
//! result into the credential database. Real credentials never go to a shared mount.

use terok_credentials::auth::{apply_post_capture_state, auth_container, capture, store_api_key};
use terok_credentials::patch::{self, VaultAddress};
use terok_roster::AuthProvider;
use terok_roster::model::AuthMode;
use terok_vault::paths::{CONTAINER_SOCKET, LOOPBACK_PORT};

use crate::Status;
use crate::args::{AuthArgs, ImageArgs};
use crate::commands::build::{EnsureOptions, ensure_images};
use crate::context::Context;
use crate::prompt;

pub fn run(ctx: &Context, args: &AuthArgs) -> miette::Result<Status> {
    let roster = ctx.roster()?;
    let provider = roster.auth_provider(&args.agent)?;
    let status = match args.api_key.as_deref() {
        Some("-") => {
            let key = prompt::read_all_stdin()
                .map_err(|e| miette::miette!("cannot read the key from stdin: {e}"))?;
            store_key(ctx, &provider, &key)?
        }
        Some(key) => store_key(ctx, &provider, key)?,
        None => interactive(ctx, &provider, args)?,
    };
    if status == Status::Ok {
        write_vault_config(ctx, &provider)?;
    }
    Ok(status)
}

fn store_key(ctx: &Context, provider: &AuthProvider, key: &str) -> miette::Result<Status> {
    let db = ctx.open_db()?;
    store_api_key(&db, &provider.name, key)?;
    apply_post_capture_state(provider, &ctx.paths()?.mounts_dir)?;
    println!("API key stored for {} (set: default)", provider.name);
    Ok(Status::Ok)
}

fn interactive(ctx: &Context, provider: &AuthProvider, args: &AuthArgs) -> miette::Result<Status> {
    let modes = &provider.spec.modes;
    let oauth = modes.contains(&AuthMode::Oauth) && provider.spec.command.is_some();
    let api_key = modes.contains(&AuthMode::ApiKey);
    if !prompt::stdin_is_tty() {
        // Not interactive: take the key from stdin when that is the only way.
        if !api_key {
            return Err(miette::miette!(
                help = "run it in a terminal",
                "{} needs an interactive login",
                provider.label
            ));
        }
        let key = prompt::read_line("").map_err(|e| miette::miette!("cannot read stdin: {e}"))?;
        return store_key(ctx, provider, key.as_deref().unwrap_or(""));
    }
    let use_oauth = match (oauth, api_key) {
        (true, true) => {
            eprintln!("How do you want to authenticate {}?", provider.label);
            eprintln!("  1. OAuth / interactive login (launches a container)");
            eprintln!("  2. API key (paste a key, no container needed)");
            let choice = prompt::read_line("Choose [1/2]: ").map_err(|e| miette::miette!("{e}"))?;
            choice.as_deref().map(str::trim) != Some("2")
        }
        (true, false) => true,
        (false, _) => false,
    };
    if !use_oauth {
        if let Some(hint) = &provider.spec.api_key_hint {
            eprintln!("{hint}");
        }
        let Some(key) = prompt::read_secret(&format!("{} API key: ", provider.label))
            .map_err(|e| miette::miette!("{e}"))?
        else {
            return Err(miette::miette!("No API key entered."));
        };
        return store_key(ctx, provider, &key);
    }
    oauth_login(ctx, provider, args)
}

fn oauth_login(ctx: &Context, provider: &AuthProvider, args: &AuthArgs) -> miette::Result<Status> {
    let image = ImageArgs {
        base: args.base_image.clone(),
        family: None,
    };
    let built = ensure_images(
        ctx,
        &image,
        &EnsureOptions {
            agents: Some(provider.name.clone()),
            ..EnsureOptions::default()
        },
    )?;
    let paths = ctx.paths()?;
    let work = paths.executor_state_dir.join("auth");
    terok_core::secure_fs::ensure_private_dir(&work)?;
    let login_dir = tempfile_dir(&work, &provider.name)?;
    let user_mapping = terok_podman::UserMapping::for_invoking_user(ctx.env.is_root());
    let spec = auth_container(provider, &built.l1.tag, &login_dir, user_mapping)
        .ok_or_else(|| miette::miette!("{} has no login command; use --api-key", provider.label))?;
    eprintln!("Authenticating {} (host-wide)", provider.label);
    if let Some(hint) = &provider.spec.banner_hint {
        eprintln!("{hint}");
    }
    eprintln!("$ {}", spec.command.join(" "));
    let podman = ctx.podman();
    let code = ctx.block_on(async {
        use terok_podman::ContainerRuntime;
        podman.remove(&spec.name).await?;
        podman.run_attached(&spec, &work).await
    })??;
    let result = match code {
        130 => {
            eprintln!("Authentication container stopped.");
            Ok(Status::Code(130))
        }
        0 => {
            let db = ctx.open_db()?;
            let captured = capture(&db, provider, &login_dir, &paths.mounts_dir)?;
            println!(
                "{} credential stored for {} (set: default)",
                captured.kind, provider.name
            );
            Ok(Status::Ok)
        }
        other => Err(miette::miette!(
            "Auth failed: the login container exited with {other}"
        )),
    };
    let _ = std::fs::remove_dir_all(&login_dir);
    result
}

fn tempfile_dir(parent: &std::path::Path, name: &str) -> miette::Result<std::path::PathBuf> {
    for n in 0..100 {
        let dir = parent.join(format!("login-{name}-{}-{n}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    Err(miette::miette!(
        "cannot create a login directory under {}",
        parent.display()
    ))
}

/// Points the agent's own config file at the vault, if its route has a patch.
fn write_vault_config(ctx: &Context, provider: &AuthProvider) -> miette::Result<()> {
    let roster = ctx.roster()?;
    let Some(route) = roster.provider(&provider.name) else {
        return Ok(());
    };
    let Some(config_patch) = &route.shared_config_patch else {
        return Ok(());
    };
    let shared = ctx.paths()?.mounts_dir.join(&provider.spec.host_dir);
    let address = VaultAddress {
        url: format!("http://localhost:{LOOPBACK_PORT}"),
        socket: CONTAINER_SOCKET.to_owned(),
    };
    patch::apply(&shared, &provider.name, config_patch, &address, false)?;
    println!(
        "Vault config written to {}",
        shared.join(&config_patch.file).display()
    );
    Ok(())
}
