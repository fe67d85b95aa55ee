//! Errors of image building.

use terok_podman::PodmanError;

use crate::base_runtime::Unsuited;
use crate::install_watch::InstallCause;
use crate::layer::Layer;

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
    /// Entries of the selection cannot work on the base image (found before podman runs).
    #[error("cannot build for {base}: {}", unsuited_text(unsuited))]
    UnsuitableBase {
        /// The base image.
        base: String,
        /// The entries and why.
        unsuited: Vec<Unsuited>,
    },
    /// An agent's install steps failed in the build of the L1 image.
    #[error(
        "installing `{agent}` into {image} failed{}{}",
        cause_text(cause),
        last_lines(tail)
    )]
    AgentInstall {
        /// The agent (or tool) of the roster.
        agent: String,
        /// The image being built.
        image: String,
        /// Which layer: [`Layer::Sidecar`] for a sidecar tool, [`Layer::L1`] for an entry.
        layer: Layer,
        /// The step that failed (`RUN …`), when podman named it.
        step: Option<String>,
        /// Why, as far as its output tells.
        cause: InstallCause,
        /// The last lines the build printed.
        tail: Vec<String>,
    },
    /// podman failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Podman(#[from] PodmanError),
    /// The selection or roster is unusable.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Roster(#[from] terok_roster::RosterError),
    /// A sidecar image was asked for by a request that names no sidecar tool.
    #[error("the build request names no sidecar tool")]
    NoSidecarRequested,
}

fn cause_text(cause: &InstallCause) -> String {
    match cause {
        InstallCause::Unreachable { host: Some(host) } => {
            format!(": {host} cannot be reached from here")
        }
        InstallCause::Unreachable { host: None } => {
            ": a host it downloads from cannot be reached from here".to_owned()
        }
        InstallCause::Failed => String::new(),
    }
}

/// The last lines of a failed step, indented under the message, escapes made visible.
fn last_lines(tail: &[String]) -> String {
    tail.iter()
        .map(|line| format!("\n    {}", terok_core::text::printable(line)))
        .collect()
}

fn unsuited_text(unsuited: &[Unsuited]) -> String {
    let reasons: Vec<String> = unsuited
        .iter()
        .map(|u| {
            format!(
                "`{}` needs {} {} or newer, it has {}",
                u.agent, u.runtime, u.needs, u.base_has
            )
        })
        .collect();
    reasons.join("; ")
}
