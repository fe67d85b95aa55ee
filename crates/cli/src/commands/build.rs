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
    print_tags(&ensure_images(ctx, &request)?);
    Ok(Status::Ok)
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

/// Builds what is missing or stale of `request`, with progress on the terminal.
pub fn ensure_images(ctx: &Context, request: &BuildRequest) -> miette::Result<BuiltImages> {
    let mut progress = BuildProgress::new(ctx.verbose > 0);
    let executor = ctx.executor()?;
    Ok(ctx.block_on(executor.ensure_images(request, &mut |event| progress.event(event)))??)
}

pub fn print_tags(built: &BuiltImages) {
    println!("L0: {}", built.l0.tag);
    println!("L1: {}", built.l1.tag);
    if let Some(sidecar) = &built.sidecar {
        println!("L1 (sidecar): {}", sidecar.tag);
    }
}
