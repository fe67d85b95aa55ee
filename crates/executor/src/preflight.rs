//! Preflight (executor.md §9.1, simplified): what a launch needs from this host, as data. The
//! CLI decides what to ask, fix or print.

use terok_image_build::{BuildRequest, ImageBuilder, LABEL_CONTENT_HASH, LABEL_LAYER};
use terok_podman::ContainerRuntime;

/// One image a launch needs and whether it exists (built by terok, with its content hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageState {
    /// `L0` or `L1`.
    pub layer: &'static str,
    /// Tag.
    pub tag: String,
    /// Whether it exists.
    pub present: bool,
}

/// Whether podman answers; `Err` carries its message.
pub async fn podman_status<R: ContainerRuntime>(runtime: &R) -> Result<(), String> {
    runtime
        .images_with_label(LABEL_LAYER)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The L0 and L1 images of `request` and whether each exists (terok-built, with a content
/// hash). One podman call, which also asks about the base image, so that a runtime with an
/// image memo answers the build check that follows without asking again.
pub async fn image_states<R: ContainerRuntime>(
    runtime: &R,
    request: &BuildRequest,
) -> Result<Vec<ImageState>, terok_podman::PodmanError> {
    let tags = ImageBuilder::<R>::tags(request);
    let found = runtime
        .image_inspect_many(&[request.base_image.clone(), tags.l0.clone(), tags.l1.clone()])
        .await?;
    Ok([("L0", tags.l0), ("L1", tags.l1)]
        .into_iter()
        .zip(found.into_iter().skip(1))
        .map(|((layer, tag), info)| ImageState {
            layer,
            tag,
            present: info.is_some_and(|img| img.labels.contains_key(LABEL_CONTENT_HASH)),
        })
        .collect())
}
