//! The typed schema of `config.yml` (docs/compatibility.md#3): the sandbox-owned sections and
//! the executor-owned `image:` section. Each section rejects unknown keys; unknown
//! top-level sections are tolerated because other tools (terok's `tui:`, `logs:` …) share the file.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// The base image used when neither `--base` nor `image.base_image` says otherwise.
pub const DEFAULT_BASE_IMAGE: &str = "ubuntu:24.04";

/// Top-level sections this schema knows; anything else passes through untouched.
pub const KNOWN_SECTIONS: &[&str] = &[
    "credentials",
    "paths",
    "shield",
    "services",
    "vault",
    "gate_server",
    "network",
    "ssh",
    "image",
    "container",
];

/// Reads an optional value and falls back to the default for `null` (an empty `section:` line).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The whole effective configuration. Unknown top-level sections are ignored here (they are kept
/// in [`super::LoadedConfig::document`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TerokConfig {
    /// Where credentials are stored and how the store is unlocked.
    #[serde(deserialize_with = "nullable")]
    pub credentials: CredentialsSection,
    /// Overrides of the state directories.
    #[serde(deserialize_with = "nullable")]
    pub paths: PathsSection,
    /// The egress firewall.
    #[serde(deserialize_with = "nullable")]
    pub shield: ShieldSection,
    /// How host services (vault, gate) are reached from containers.
    #[serde(deserialize_with = "nullable")]
    pub services: ServicesSection,
    /// The token broker.
    #[serde(deserialize_with = "nullable")]
    pub vault: VaultSection,
    /// The git gate server.
    #[serde(deserialize_with = "nullable")]
    pub gate_server: GateServerSection,
    /// Host port allocation.
    #[serde(deserialize_with = "nullable")]
    pub network: NetworkSection,
    /// SSH key handling.
    #[serde(deserialize_with = "nullable")]
    pub ssh: SshSection,
    /// Container images: base image, package family, agent selection, snippets.
    #[serde(deserialize_with = "nullable")]
    pub image: ImageSection,
    /// How task containers run (terok's own; the Python original has no such section).
    #[serde(deserialize_with = "nullable")]
    pub container: ContainerSection,
}

/// `credentials:` — the credential store.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialsSection {
    /// Path of the credential database (default: `<vault dir>/credentials.db`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_path: Option<PathBuf>,
    /// A command whose stdout is the passphrase that unlocks the store's key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_command: Option<String>,
}

/// `paths:` — state directory overrides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsSection {
    /// The state namespace root (below `TEROK_ROOT`, above the built-in defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Accepted for compatibility with terok's config.yml; not used by the executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_dir: Option<PathBuf>,
    /// Accepted for compatibility with terok's config.yml; not used by the executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_projects_dir: Option<PathBuf>,
    /// Accepted for compatibility with terok's config.yml; not used by the executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_presets_dir: Option<PathBuf>,
}

/// `shield:` — the egress firewall (read by the shield layer).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShieldSection {
    /// Run containers without any egress filtering. Loudly reported at every launch.
    #[serde(deserialize_with = "nullable")]
    pub bypass_firewall_no_protection: bool,
    /// Allow-list profiles to load (empty: the default set).
    #[serde(deserialize_with = "nullable")]
    pub profiles: Vec<String>,
    /// Whether blocked and allowed connections are written to the audit log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<bool>,
    /// The DNS server the per-container resolver forwards to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_dns: Option<String>,
}

/// How host services are exposed to containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServicesMode {
    /// Unix sockets mounted into the container (the default).
    #[default]
    Socket,
    /// TCP ports on the host loopback.
    Tcp,
}

/// `services:` — transport of host services.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesSection {
    /// `socket` (default) or `tcp`.
    #[serde(deserialize_with = "nullable")]
    pub mode: ServicesMode,
    /// With `tcp`: the address of this host the listeners bind to, which the engine's
    /// containers reach (a remote engine's). Unset: the bridge's gateway (rootful) or this
    /// host's loopback through slirp4netns (rootless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::IpAddr>,
}

/// `vault:` — the token broker.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultSection {
    /// Fixed TCP port for `services.mode: tcp` (default: allocated from `network`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Fixed TCP port of the SSH signer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_signer_port: Option<u16>,
    /// Providers every task gets a phantom token for besides its agent's own (`[gh]` for
    /// tasks that open pull requests). Each token is a way for the agent to act as you there.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub task_credentials: Vec<String>,
}

/// `gate_server:` — the git gate.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateServerSection {
    /// Fixed TCP port of the gate server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Where the gate keeps its bare mirrors (default: `<sandbox state>/gate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repos_dir: Option<PathBuf>,
}

/// `network:` — host port allocation range.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSection {
    /// First port that may be allocated.
    pub port_range_start: u16,
    /// Last port that may be allocated.
    pub port_range_end: u16,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            port_range_start: 18700,
            port_range_end: 32700,
        }
    }
}

/// `ssh:` — SSH key handling.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshSection {
    /// Use the user's own SSH agent instead of a per-scope key from the vault.
    #[serde(deserialize_with = "nullable")]
    pub use_personal: bool,
}

/// What a task runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskRuntimeKind {
    /// A container, with podman's configured OCI runtime (the default).
    #[default]
    Podman,
    /// A KVM microVM: podman's `krun` runtime, reached over SSH.
    Krun,
}

/// `container:` — how task containers run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerSection {
    /// `podman` (default) or `krun`; `run --runtime` wins.
    #[serde(deserialize_with = "nullable")]
    pub runtime: TaskRuntimeKind,
}

/// The package family of a base image: which package manager the Dockerfiles use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFamily {
    /// Debian, Ubuntu and derivatives (apt).
    Deb,
    /// Fedora, RHEL, UBI and derivatives (dnf).
    Rpm,
}

impl PackageFamily {
    /// The name used in config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deb => "deb",
            Self::Rpm => "rpm",
        }
    }
}

impl std::fmt::Display for PackageFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `image:` — the executor-owned section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSection {
    /// The base image L0 is built on.
    #[serde(deserialize_with = "nullable_base_image")]
    pub base_image: String,
    /// `deb` or `rpm`; detected from the base image name when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<PackageFamily>,
    /// Agent selection baked into L1: `all`, or a comma list with `-name` exclusions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<String>,
    /// A Dockerfile fragment appended to L1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_snippet_inline: Option<String>,
    /// A file whose contents are appended to L1 as a Dockerfile fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_snippet_file: Option<PathBuf>,
    /// Extra CA certificates installed into L0: `*.crt` files and directories searched for
    /// them (default: `/usr/local/share/ca-certificates`; `[]` installs none). Needed behind
    /// TLS-inspecting proxies, where nothing https works without the proxy's CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<Vec<PathBuf>>,
}

impl Default for ImageSection {
    fn default() -> Self {
        Self {
            base_image: DEFAULT_BASE_IMAGE.to_owned(),
            family: None,
            agents: None,
            user_snippet_inline: None,
            user_snippet_file: None,
            ca_certificates: None,
        }
    }
}

fn nullable_base_image<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_owned()))
}
