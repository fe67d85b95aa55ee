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
    /// The command of its ACP server (shell-quoted), whose presence gives the image a
    /// `terok-<name>-acp`.
    pub acp_server: Option<String>,
    /// The name people know it by (`Claude Code`), for front ends that list it.
    pub label: String,
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
    .map(|s| mount_build_cache(s.trim_end()))
}

/// Where install steps keep package managers' caches (the L1 template points npm, uv and pip
/// there): a tmpfs mounted on each step of an install snippet, so no layer ever holds one.
pub const BUILD_CACHE_DIR: &str = "/tmp/terok-build-cache";

/// `snippet` with each of its `RUN` instructions given the build-cache tmpfs. A line that
/// continues the previous one (`\`), or a comment, is not an instruction.
fn mount_build_cache(snippet: &str) -> String {
    let mount = format!("--mount=type=tmpfs,target={BUILD_CACHE_DIR}");
    let mut out = String::with_capacity(snippet.len() + 64);
    let mut continued = false;
    for line in snippet.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let is_run = trimmed
            .get(..4)
            .is_some_and(|word| word.eq_ignore_ascii_case("RUN "));
        if !continued && is_run && !trimmed[4..].trim_start().starts_with(&mount) {
            out.push_str(&format!(
                "{indent}RUN {mount} {}",
                trimmed[4..].trim_start()
            ));
        } else {
            out.push_str(line);
        }
        out.push('\n');
        if !trimmed.starts_with('#') {
            continued = trimmed.trim_end().ends_with('\\');
        }
    }
    out.truncate(out.trim_end().len());
    out
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
    // With Toad in the image, each agent that has an ACP server becomes one of Toad's agents
    // (`name=label` words for terok-toad-agents).
    let toad_agents = input.agents.iter().any(|a| a.name == "toad").then(|| {
        input
            .agents
            .iter()
            .filter(|a| a.acp_server.is_some())
            .map(|a| terok_roster::shell_quote(&format!("{}={}", a.name, a.label)))
            .collect::<Vec<_>>()
            .join(" ")
    });
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
            toad_agents => toad_agents,
            bashrc => bashrc,
            user_snippet => input.user_snippet.as_deref().map(str::trim_end),
        },
    )
}

/// The sidecar Dockerfile for `tool_name`.
pub fn render_sidecar(
    family: PackageFamily,
    tool_name: &str,
    install: Option<&str>,
) -> Result<String, ImageBuildError> {
    let install = install
        .map(|snippet| render_snippet(tool_name, "sidecar", snippet, family))
        .transpose()?;
    render(
        "L1.sidecar.Dockerfile.j2",
        SIDECAR_TEMPLATE,
        minijinja::context! { family => family.as_str(), tool_name => tool_name, install => install },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_of_a_snippet_gets_the_build_cache_and_nothing_else_does() {
        let snippet = "# installs x\nRUN npm install -g x \\\n # a comment inside\n && echo RUN not an instruction\n  run true\nCOPY a b\nENV A=1";
        let mounted = mount_build_cache(snippet);
        assert_eq!(
            mounted,
            "# installs x\n\
             RUN --mount=type=tmpfs,target=/tmp/terok-build-cache npm install -g x \\\n \
             # a comment inside\n \
             && echo RUN not an instruction\n  \
             RUN --mount=type=tmpfs,target=/tmp/terok-build-cache true\n\
             COPY a b\nENV A=1"
        );
        // Rendering twice does not mount twice.
        assert_eq!(mount_build_cache(&mounted), mounted);
    }

    #[test]
    fn snippets_see_the_family_and_undefined_names_fail() {
        let s = "{% if family == \"deb\" %}COPY apt{% else %}COPY dnf{% endif %}";
        assert_eq!(
            render_snippet("x", "root", s, PackageFamily::Deb).unwrap(),
            "COPY apt"
        );
        assert_eq!(
            render_snippet("x", "root", s, PackageFamily::Rpm).unwrap(),
            "COPY dnf"
        );
        let err = render_snippet("x", "root", "RUN {{ distro }}", PackageFamily::Deb).unwrap_err();
        assert!(
            err.to_string().contains("the root install snippet of `x`"),
            "{err}"
        );
    }
}
