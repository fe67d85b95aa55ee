//! `setup` and `uninstall`: prepare this host (vault routes and daemon, container images) and
//! undo it.

use terok_executor::{SecurityModule, SetupScope, VaultStart};

use crate::Status;
use crate::args::{SetupArgs, SetupComponent, UninstallArgs};
use crate::commands::build::{ensure_images, image_choice, print_tags};
use crate::commands::vault::print_routes;
use crate::context::Context;

pub fn run(ctx: &Context, args: SetupArgs) -> miette::Result<Status> {
    let SetupArgs {
        component,
        show,
        root,
        check: check_only,
        no_sandbox,
        no_images,
        passphrase_tier,
        image,
    } = args;
    let executor = ctx.executor()?;
    if let Some(component) = component {
        return security_module(executor, component, show);
    }
    let request = executor.build_request(&image_choice(image))?;
    if check_only {
        let mut scope = SetupScope::default();
        scope.vault = !no_sandbox;
        scope.images = (!no_images).then_some(request);
        return check(ctx, &scope);
    }
    if let Some(tier) = passphrase_tier {
        crate::commands::key_tier::apply(executor, tier)?;
    }
    if let Some(range) = executor.reserve_id_range()? {
        println!(
            "Reserved ids {}–{} for containers' users in subuid and subgid.",
            range.start,
            u64::from(range.start) + u64::from(range.count) - 1
        );
    }
    if !no_sandbox {
        match executor.install_shield_hook() {
            Ok(dir) => println!("Shield: the OCI hook is in {}.", dir.display()),
            Err(err) => crate::output::warn(format!(
                "{err}: tasks can run only `--shield offline` or `--shield open` until it is fixed"
            )),
        }
        if root {
            let file = executor.install_system_shield_hook()?;
            println!(
                "Shield: the OCI hook for every podman of this host is {}.",
                file.display()
            );
        }
        ctx.block_on(async {
            print_routes(&executor.update_routes().await?);
            match executor.ensure_vault().await? {
                VaultStart::Started { pid } => println!("Vault started (pid {pid})."),
                _ => println!("Vault is running."),
            }
            Ok::<_, terok_executor::ExecutorError>(())
        })??;
    }
    if !no_images {
        eprintln!(
            "Preparing images for {} with {} (the first build takes a few minutes)…",
            request.base_image,
            request.selection.join(", ")
        );
        match ensure_images(ctx, &request)? {
            Some(built) => print_tags(&built),
            None => return Ok(super::build::interrupted()),
        }
    }
    let stamp = executor.record_setup()?;
    if ctx.verbose > 0 {
        println!("Setup stamp: {}", stamp.display());
    }
    println!("Setup complete.");
    println!("Try: terok-executor run <agent> . -p \"...\"   (agents: terok-executor agents)");
    Ok(Status::Ok)
}

/// `setup selinux | apparmor [--show]`: what it takes, then (not with `--show`) doing it.
fn security_module(
    executor: &terok_executor::Executor<terok_executor::PodmanCli>,
    component: SetupComponent,
    show: bool,
) -> miette::Result<Status> {
    let (module, name) = match component {
        SetupComponent::Selinux => (SecurityModule::Selinux, "SELinux"),
        SetupComponent::Apparmor => (SecurityModule::Apparmor, "AppArmor"),
    };
    let plan = executor.security_module_plan(module);
    println!(
        "{name} ({}): {}",
        if plan.enabled {
            "enforcing here"
        } else {
            "not enforcing here"
        },
        plan.explanation
    );
    for (path, text) in &plan.files {
        println!("\n{} is written:\n{text}", path.display());
    }
    if !plan.commands.is_empty() {
        println!("Then, as root:");
        for argv in &plan.commands {
            println!("  {}", argv.join(" "));
        }
    }
    if show || plan.commands.is_empty() {
        return Ok(Status::Ok);
    }
    if !plan.enabled {
        println!("{name} is not enforcing on this host: nothing to install.");
        return Ok(Status::Ok);
    }
    executor.apply_security_module(&plan)?;
    println!("{name}: installed.");
    Ok(Status::Ok)
}

fn check(ctx: &Context, scope: &SetupScope) -> miette::Result<Status> {
    println!("terok-executor status:");
    let rows = ctx.block_on(ctx.executor()?.setup_checks(scope))?;
    for row in &rows {
        match &row.outcome {
            Ok(detail) => println!("  {:<22} ok ({detail})", row.name),
            Err(detail) => println!("  {:<22} FAIL ({detail})", row.name),
        }
        if let Some(warning) = &row.warning {
            println!("  {:<22} warning: {warning}", "");
            if row.name == "storage" {
                println!(
                    "{}",
                    crate::remedy::indented(crate::remedy::VFS_STORAGE_FIX, 4)
                );
            }
        }
    }
    if rows.iter().all(|r| r.ok()) {
        println!("All prerequisites met.");
        Ok(Status::Ok)
    } else {
        println!("Run: terok-executor setup");
        Ok(Status::Failure)
    }
}

pub fn uninstall(ctx: &Context, args: &UninstallArgs) -> miette::Result<Status> {
    let UninstallArgs {
        keep_images,
        no_sandbox,
        base,
        root,
    } = args;
    if *root {
        match ctx.executor()?.remove_system_shield_hook() {
            Ok(Some(file)) => println!("Removed the shield's system-wide hook {}.", file.display()),
            Ok(None) => {}
            // The rest of the uninstall goes on.
            Err(err) => crate::output::warn(err.to_string()),
        }
    }
    let executor = ctx.executor()?;
    if !keep_images {
        let report = match base {
            Some(base) => ctx.block_on(executor.remove_images_of(base))??,
            None => ctx.block_on(executor.remove_images())??,
        };
        for refs in &report.removed {
            println!("Removed image {}", refs.join(", "));
        }
        for (name, err) in &report.kept {
            eprintln!("Kept image {name}: {err}");
        }
        if report.removed.is_empty() && report.kept.is_empty() {
            println!("No terok images to remove.");
        } else if !report.kept.is_empty() {
            eprintln!(
                "{} image(s) could not be removed (see above); images used by containers stay \
                 until those containers are removed.",
                report.kept.len()
            );
        }
    }
    // The host services (unless --no-sandbox): the vault stops, and the next launch asks for
    // setup again. Stored credentials and tasks stay.
    if !no_sandbox {
        match executor.uninstall_vault_unit() {
            Ok(Some(path)) => println!("Vault service stopped and removed: {}", path.display()),
            Ok(None) => {}
            // The rest of the uninstall goes on; the unit is named with the way to remove it.
            Err(err) => crate::output::warn(format!(
                "the vault's systemd service stays ({err}); remove it in your login session: \
                 terok-executor vault uninstall"
            )),
        }
        if ctx.block_on(executor.stop_vault())?? {
            println!("Vault stopped.");
        }
        executor.forget_setup()?;
    }
    println!("Uninstall complete.");
    Ok(Status::Ok)
}
