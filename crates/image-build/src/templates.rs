//! The L0 / L1 / sidecar Dockerfile templates (resources/templates, embedded) and their
//! rendering with minijinja in strict mode: an undefined variable is an error, not an empty
//! string. Install snippets are rendered on their own first, with `family` in scope.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use terok_core::config::PackageFamily;

use crate::error::ImageBuildError;

const L0_TEMPLATE: &str = include_str!("../../../resources/templates/L0.Dockerfile.j2");
const L1_TEMPLATE: &str = include_str!("../../../resources/templates/L1.cli.Dockerfile.j2");
const SIDECAR_TEMPLATE: &str =
    include_str!("../../../resources/templates/L1.sidecar.Dockerfile.j2");

/// One selected roster entry's install snippets, already rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnippetAgent {
    /// Entry name.
    pub name: String,
    /// Dockerfile fragment run as root.
    pub run_as_root: Option<String>,
    /// Dockerfile fragment run as `dev`.
    pub run_as_dev: Option<String>,
}

/// What the templates need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderInput {
    /// Package family.
    pub family: PackageFamily,
    /// The selected entries, in install order.
    pub agents: Vec<SnippetAgent>,
    /// The user's own fragment (config.yml `image.user_snippet_*`).
    pub user_snippet: Option<String>,
}

fn environment() -> Result<Environment<'static>, ImageBuildError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| ImageBuildError::Template {
            what: "the template syntax".to_owned(),
            detail: e.to_string(),
        })?;
    env.set_syntax(syntax);
    Ok(env)
}

fn render(name: &str, source: &str, ctx: minijinja::Value) -> Result<String, ImageBuildError> {
    environment()?
        .render_str(source, ctx)
        .map_err(|e| ImageBuildError::Template {
            what: name.to_owned(),
            detail: e.to_string(),
        })
}

/// Family-specific CA certificate locations: (directory, update command, bundle).
fn ca_paths(family: PackageFamily) -> (&'static str, &'static str, &'static str) {
    match family {
        PackageFamily::Deb => (
            "/usr/local/share/ca-certificates/terok",
            "update-ca-certificates",
            "/etc/ssl/certs/ca-certificates.crt",
        ),
        PackageFamily::Rpm => (
            "/etc/pki/ca-trust/source/anchors/terok",
            "update-ca-trust extract",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ),
    }
}

/// Renders one install snippet with `family` in scope.
pub fn render_snippet(
    agent: &str,
    which: &str,
    snippet: &str,
    family: PackageFamily,
) -> Result<String, ImageBuildError> {
    render(
        &format!("the {which} install snippet of `{agent}`"),
        snippet,
        minijinja::context! { family => family.as_str() },
    )
    .map(|s| s.trim_end().to_owned())
}

/// The L0 Dockerfile.
pub fn render_l0(family: PackageFamily) -> Result<String, ImageBuildError> {
    let (ca_dir, ca_update, ca_bundle) = ca_paths(family);
    render(
        "L0.Dockerfile.j2",
        L0_TEMPLATE,
        minijinja::context! {
            family => family.as_str(),
            ca_dir => ca_dir,
            ca_update => ca_update,
            ca_bundle => ca_bundle,
        },
    )
}

/// The L1 Dockerfile for `input`.
pub fn render_l1(input: &RenderInput) -> Result<String, ImageBuildError> {
    let agents_csv = input
        .agents
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let bashrc = match input.family {
        PackageFamily::Deb => "/etc/bash.bashrc",
        PackageFamily::Rpm => "/etc/bashrc",
    };
    render(
        "L1.cli.Dockerfile.j2",
        L1_TEMPLATE,
        minijinja::context! {
            family => input.family.as_str(),
            agents => minijinja::value::Serde(&input.agents),
            agents_csv => agents_csv,
            bashrc => bashrc,
            user_snippet => input.user_snippet.as_deref().map(str::trim_end),
        },
    )
}

/// The sidecar Dockerfile for `tool_name`.
pub fn render_sidecar(family: PackageFamily, tool_name: &str) -> Result<String, ImageBuildError> {
    render(
        "L1.sidecar.Dockerfile.j2",
        SIDECAR_TEMPLATE,
        minijinja::context! { family => family.as_str(), tool_name => tool_name },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_see_the_family_and_undefined_names_fail() {
        let s = "{% if family == \"deb\" %}RUN apt{% else %}RUN dnf{% endif %}";
        assert_eq!(
            render_snippet("x", "root", s, PackageFamily::Deb).unwrap(),
            "RUN apt"
        );
        assert_eq!(
            render_snippet("x", "root", s, PackageFamily::Rpm).unwrap(),
            "RUN dnf"
        );
        let err = render_snippet("x", "root", "RUN {{ distro }}", PackageFamily::Deb).unwrap_err();
        assert!(
            err.to_string().contains("the root install snippet of `x`"),
            "{err}"
        );
    }
}
