//! `setup` and `uninstall`: prepare this host (vault routes and daemon, container images) and
//! undo it.

use terok_image_build::{ImageBuilder, LABEL_CONTENT_HASH, LABEL_LAYER};
use terok_podman::ContainerRuntime;

use crate::Status;
use crate::args::{SetupArgs, UninstallArgs};
use crate::commands::build::{EnsureOptions, build_request, ensure_images, print_tags};
use crate::commands::vault::ensure_vault_running;
use crate::context::Context;

pub fn run(ctx: &Context, args: &SetupArgs) -> miette::Result<Status> {
    if args.check {
        return check(ctx, args);
    }
    if !args.no_sandbox {
        crate::commands::vault::routes(ctx)?;
        match ensure_vault_running(ctx)? {
            Some(pid) => println!("Vault started (pid {pid})."),
            None => println!("Vault is running."),
        }
    }
    if !args.no_images {
        let request = build_request(ctx, &args.image, &EnsureOptions::default())?;
        eprintln!(
            "Preparing images for {} with {} (the first build takes a few minutes)…",
            request.base_image,
            request.selection.join(", ")
        );
        let built = ensure_images(ctx, &args.image, &EnsureOptions::default())?;
        print_tags(&built);
    }
    println!("Setup complete.");
    println!("Try: terok-executor run <agent> . -p \"...\"   (agents: terok-executor agents)");
    Ok(Status::Ok)
}

fn row(name: &str, result: Result<String, String>) -> bool {
    match result {
        Ok(detail) => {
            println!("  {name:<22} ok ({detail})");
            true
        }
        Err(detail) => {
            println!("  {name:<22} FAIL ({detail})");
            false
        }
    }
}

fn check(ctx: &Context, args: &SetupArgs) -> miette::Result<Status> {
    println!("terok-executor status:");
    let podman = ctx.podman();
    let podman_ok = row(
        "podman",
        ctx.block_on(terok_executor::preflight::podman_status(&podman))?
            .map(|()| "answers".to_owned()),
    );
    let mut all_ok = podman_ok;
    if !args.no_sandbox {
        let socket = ctx.vault_paths()?.control_socket();
        let running = ctx.block_on(terok_executor::VaultClient::new(&socket).is_running())?;
        all_ok &= row(
            "vault",
            if running {
                Ok("running".to_owned())
            } else {
                Err("not running".to_owned())
            },
        );
    }
    if podman_ok && !args.no_images {
        let request = build_request(ctx, &args.image, &EnsureOptions::default())?;
        let tags = ImageBuilder::<terok_podman::PodmanCli>::tags(&request);
        for (name, tag) in [("image L0", &tags.l0), ("image L1", &tags.l1)] {
            let found = ctx.block_on(async { podman.image_inspect(tag).await })?;
            all_ok &= row(
                name,
                match found {
                    Ok(Some(img)) if img.labels.contains_key(LABEL_CONTENT_HASH) => Ok(tag.clone()),
                    Ok(_) => Err(format!("{tag} not built")),
                    Err(e) => Err(e.to_string()),
                },
            );
        }
    }
    if all_ok {
        println!("All prerequisites met.");
        Ok(Status::Ok)
    } else {
        println!("Run: terok-executor setup");
        Ok(Status::Failure)
    }
}

pub fn uninstall(ctx: &Context, args: &UninstallArgs) -> miette::Result<Status> {
    if !args.keep_images {
        let podman = ctx.podman();
        let images = ctx.block_on(async { podman.images_with_label(LABEL_LAYER).await })??;
        let mut kept = 0;
        for image in &images {
            // Removing every tag removes the image; by id podman refuses multi-tagged images.
            let refs = if image.tags.is_empty() {
                vec![image.id.clone()]
            } else {
                image.tags.clone()
            };
            let name = refs.first().cloned().unwrap_or_default();
            match ctx.block_on(async { podman.image_remove(&refs, false).await })? {
                Ok(()) => println!("Removed image {}", refs.join(", ")),
                Err(err) => {
                    kept += 1;
                    eprintln!("Kept image {name}: {err}");
                }
            }
        }
        // The recorded image checks describe images that are gone now.
        let _ = std::fs::remove_dir_all(ctx.paths()?.state_root.join("images"));
        if images.is_empty() {
            println!("No terok images to remove.");
        } else if kept > 0 {
            eprintln!(
                "{kept} image(s) could not be removed (see above); images used by containers stay \
                 until those containers are removed."
            );
        }
    }
    println!("Uninstall complete.");
    Ok(Status::Ok)
}
