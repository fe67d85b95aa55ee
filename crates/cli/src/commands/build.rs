//! `build`: the L0 and L1 (and sidecar) images for a base image and agent selection.

use terok_core::config::PackageFamily;
use terok_image_build::{BuildRequest, BuiltImages, CaSource, ImageBuilder};

use crate::Status;
use crate::args::{BuildArgs, FamilyArg, ImageArgs};
use crate::context::Context;
use crate::progress::BuildProgress;

/// What to ensure, beyond the base image: the selection and the rebuild flags.
#[derive(Debug, Default)]
pub struct EnsureOptions {
    pub agents: Option<String>,
    pub rebuild: bool,
    pub full_rebuild: bool,
    pub sidecar: Option<String>,
}

pub fn run(ctx: &Context, args: &BuildArgs) -> miette::Result<Status> {
    let built = ensure_images(
        ctx,
        &args.image,
        &EnsureOptions {
            agents: args.agents.clone(),
            rebuild: args.rebuild,
            full_rebuild: args.full_rebuild,
            sidecar: args.sidecar.clone(),
        },
    )?;
    print_tags(&built);
    Ok(Status::Ok)
}

pub fn print_tags(built: &BuiltImages) {
    println!("L0: {}", built.l0.tag);
    println!("L1: {}", built.l1.tag);
    if let Some(sidecar) = &built.sidecar {
        println!("L1 (sidecar): {}", sidecar.tag);
    }
}

/// Builds the request from flags and config.yml, then builds what is missing or stale.
pub fn ensure_images(
    ctx: &Context,
    image: &ImageArgs,
    options: &EnsureOptions,
) -> miette::Result<BuiltImages> {
    let request = build_request(ctx, image, options)?;
    let roster = ctx.roster()?;
    let lock_dir = ctx.paths()?.state_root.join("locks");
    let stamps = ctx.paths()?.state_root.join("images");
    let podman = ctx.podman();
    let mut progress = BuildProgress::new(ctx.verbose > 0);
    let built = ctx.block_on(async {
        ImageBuilder::new(&podman, roster)
            .with_lock_dir(lock_dir)
            .with_stamps(&stamps, None)
            .ensure(&request, &mut |event| progress.event(event))
            .await
    })??;
    Ok(built)
}

/// The build request: flags first, then config.yml's `image:` section, then defaults.
pub fn build_request(
    ctx: &Context,
    image: &ImageArgs,
    options: &EnsureOptions,
) -> miette::Result<BuildRequest> {
    let config = &ctx.config()?.config.image;
    let roster = ctx.roster()?;
    let selection_text = options
        .agents
        .clone()
        .or_else(|| config.agents.clone())
        .unwrap_or_else(|| "all".to_owned());
    let selection = roster.resolve_selection(&selection_text)?;
    let base = image
        .base
        .clone()
        .unwrap_or_else(|| config.base_image.clone());
    let family = image
        .family
        .map(|f| match f {
            FamilyArg::Deb => PackageFamily::Deb,
            FamilyArg::Rpm => PackageFamily::Rpm,
        })
        .or(config.family);
    let ca = match &config.ca_certificates {
        None => CaSource::default(),
        Some(paths) if paths.is_empty() => CaSource::None,
        Some(paths) => CaSource::Paths(
            paths
                .iter()
                .map(|p| terok_core::paths::expand_tilde(p, &ctx.env))
                .collect(),
        ),
    };
    let mut user_snippet = config.user_snippet_inline.clone().unwrap_or_default();
    if let Some(file) = &config.user_snippet_file {
        let path = terok_core::paths::expand_tilde(file, &ctx.env);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            miette::miette!(
                help = "fix or remove image.user_snippet_file in config.yml",
                "cannot read image.user_snippet_file {}: {e}",
                path.display()
            )
        })?;
        if !user_snippet.is_empty() {
            user_snippet.push('\n');
        }
        user_snippet.push_str(&text);
    }
    let sidecar = match options.sidecar.as_deref() {
        None => None,
        Some("") => {
            let tools: Vec<String> = roster.sidecars().map(|(a, _)| a.name.clone()).collect();
            match tools.as_slice() {
                [one] => Some(one.clone()),
                [] => return Err(miette::miette!("no roster entry has a sidecar section")),
                many => {
                    return Err(miette::miette!(
                        help = "name one: --sidecar=TOOL",
                        "several sidecar tools exist: {}",
                        many.join(", ")
                    ));
                }
            }
        }
        Some(tool) => Some(roster.sidecar(tool)?.1.tool_name.clone()),
    };
    Ok(BuildRequest {
        base_image: base,
        family,
        selection,
        rebuild: options.rebuild,
        full_rebuild: options.full_rebuild,
        sidecar,
        ca,
        user_snippet: Some(user_snippet).filter(|s| !s.trim().is_empty()),
    })
}
