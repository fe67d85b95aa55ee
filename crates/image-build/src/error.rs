//! Errors of image building.

use terok_podman::PodmanError;

/// Why images could not be built.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImageBuildError {
    /// The package family of the base image is not known.
    #[error("cannot infer the package family of base image `{base}`")]
    UnknownFamily {
        /// The base image.
        base: String,
    },
    /// A Dockerfile template failed to render (a bug, or a broken install snippet).
    #[error("cannot render {what}: {detail}")]
    Template {
        /// Which template or snippet.
        what: String,
        /// minijinja's message.
        detail: String,
    },
    /// The build context could not be prepared.
    #[error("cannot prepare the build context: {0}")]
    Context(String),
    /// podman failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Podman(#[from] PodmanError),
    /// The selection or roster is unusable.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Roster(#[from] terok_roster::RosterError),
}
