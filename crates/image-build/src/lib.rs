//! terok-image-build: the container images agents run in (docs/compatibility.md#6).
//!
//! - **L0** (`terok-l0:<base>`): the base development layer — user `dev` (uid 1000), git, ssh,
//!   locales, the host's extra CA certificates, the container-side scripts.
//! - **L1** (`terok-l1-cli:<base>-<agents>`): the agent CLIs of a roster selection, installed
//!   from their install snippets; labelled `ai.terok.agents` and described in
//!   `/etc/terok/installed.env`.
//! - **sidecar** (`terok-l1-sidecar:<base>`): a tool image for `run-tool`.
//!
//! Every image carries `ai.terok.content-hash`, a SHA-256 over everything that feeds it (the
//! rendered Dockerfile with its install snippets, every staged file, the layer below). An image
//! whose label matches is reused without calling `podman build`; a stale one is rebuilt.
//! The Python terok-executor only checks that the tag exists (docs/decisions.md#3.13).

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod base_runtime;
mod builder;
mod context;
mod error;
mod family;
mod install_watch;
mod layer;
mod reference;
mod tags;
mod templates;

pub use base_runtime::{Runtime, RuntimeVersion, Unsuited, runtime_on, unsuited};
pub use builder::{
    BuildEvent, BuildRequest, BuiltImage, BuiltImages, ImageBuilder, VAULT_PROGRAM, stamp_file,
    vault_tag,
};
pub use context::{CaSource, collect_ca_certificates, decode_help_escapes};
pub use error::ImageBuildError;
pub use family::detect_family;
pub use install_watch::{INSTALLING_ARG, InstallCause};
pub use layer::Layer;
pub use reference::split_reference;
pub use tags::{TagSet, base_fragment};
pub use templates::{
    RenderInput, SnippetAgent, render_l0, render_l1, render_sidecar, render_snippet,
};

/// Label on every image terok builds: the layer (`l0`, `l1`, `sidecar`).
pub const LABEL_LAYER: &str = "ai.terok.image";
/// Label holding the content hash of an image's inputs.
pub const LABEL_CONTENT_HASH: &str = "ai.terok.content-hash";
/// Label listing the roster entries installed in an L1 image.
pub const LABEL_AGENTS: &str = "ai.terok.agents";
