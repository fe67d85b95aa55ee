//! `build`: the L0 and L1 (and sidecar) images for a base image and agent selection.

use terok_core::config::PackageFamily;
use terok_executor::{BuildRequest, BuiltImages, ImageChoice, SidecarChoice};

use crate::Status;
use crate::args::{BuildArgs, FamilyArg, ImageArgs};
use crate::context::Context;
use crate::progress::BuildProgress;

pub fn run(ctx: &Context, args: BuildArgs) -> miette::Result<Status> {
    let BuildArgs {
        image,
        agents,
        rebuild,
        full_rebuild,
        sidecar,
    } = args;
    let mut choice = image_choice(image);
    choice.agents = agents;
    choice.rebuild = rebuild;
    choice.full_rebuild = full_rebuild;
    choice.sidecar = sidecar.map(|tool| match tool.as_str() {
        "" => SidecarChoice::TheOnlyOne,
        _ => SidecarChoice::Named(tool),
    });
    let request = ctx.executor()?.build_request(&choice)?;
    match ensure_images(ctx, &request)? {
        Some(built) => {
            print_tags(&built);
            Ok(Status::Ok)
        }
        None => Ok(interrupted()),
    }
}

/// Exit status and message of a build stopped by SIGINT or SIGTERM.
pub fn interrupted() -> Status {
    eprintln!(
        "Interrupted: podman was told to stop the build; images built before it stay, nothing          half-built was tagged. `terok-executor build` goes on from its cache."
    );
    Status::Code(130)
}

/// The image choice of the flags shared by `build`, `setup` and `run`.
pub fn image_choice(args: ImageArgs) -> ImageChoice {
    let ImageArgs { base, family } = args;
    let mut choice = ImageChoice::default();
    choice.base = base;
    choice.family = family.map(|f| match f {
        FamilyArg::Deb => PackageFamily::Deb,
        FamilyArg::Rpm => PackageFamily::Rpm,
    });
    choice
}

/// Builds what is missing or stale of `request`, with progress on the terminal; `None` when
/// SIGINT or SIGTERM stopped it (the podman build running then is told to stop).
pub fn ensure_images(ctx: &Context, request: &BuildRequest) -> miette::Result<Option<BuiltImages>> {
    let mut progress = BuildProgress::new(ctx.verbose > 0);
    let executor = ctx.executor()?;
    let mut on_event = |event| progress.event(event);
    let built = ctx.block_on(async {
        tokio::select! {
            built = executor.ensure_images(request, &mut on_event) => Some(built),
            () = crate::signals::interrupted() => None,
        }
    })?;
    Ok(built.transpose()?)
}

pub fn print_tags(built: &BuiltImages) {
    println!("L0: {}", built.l0.tag);
    println!("L1: {}", built.l1.tag);
    if let Some(sidecar) = &built.sidecar {
        println!("L1 (sidecar): {}", sidecar.tag);
    }
}
