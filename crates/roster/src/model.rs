//! The resolved roster model: what the rest of terok works with once every layer is merged,
//! defaults are applied and the entry is validated. Unlike [`crate::schema`], nothing here is
//! optional unless it is optional for the agent itself.
//!
//! A [`Provider`] (who holds the credential and where requests go) is its own value, apart from
//! the [`Agent`] that uses it. Roster v1 files describe both in one file: an agent's `vault:`
//! section becomes a provider named after the agent. Roster v3 files separate the two (an
//! agent's `provider:` names a provider file) and produce the same values; several agents can
//! then share one provider and its one stored credential.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::schema::{AgentKind, AuthMode, CredentialType, HelpSection, LogFormat};

/// One roster entry: an agent, a tool or a runtime component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    /// The entry name (the file name without `.yaml`).
    pub name: String,
    /// What kind of entry this is.
    pub kind: AgentKind,
    /// Display name.
    pub label: String,
    /// The command inside the container.
    pub binary: String,
    /// Identity the agent commits with.
    pub git_identity: GitIdentity,
    /// The non-interactive command line.
    pub headless: HeadlessSpec,
    /// Env and flags applied to unrestricted runs.
    pub auto_approve: AutoApprove,
    /// Session resume support.
    pub session: SessionSpec,
    /// Optional CLI features.
    pub capabilities: Capabilities,
    /// Subcommands the in-container wrapper refuses.
    pub refuse_subcommands: Vec<String>,
    /// Variables the wrapper exports while the agent runs.
    pub wrapper_env: BTreeMap<String, String>,
    /// Flags the wrapper adds to every invocation.
    pub wrapper_flags: Vec<String>,
    /// A command the wrapper runs before the agent.
    pub wrapper_prepare: Option<String>,
    /// The agent's ACP server, when it has one.
    pub acp: Option<AcpSpec>,
    /// OpenCode provider settings, for OpenCode-based entries.
    pub opencode: Option<OpencodeSpec>,
    /// How `auth` obtains a credential (as written in the file; see
    /// [`crate::Roster::auth_providers`] for the derived ones too).
    pub auth: Option<AuthSpec>,
    /// The credential provider this entry's requests go through, if any (its canonical name,
    /// under which the credential is stored).
    pub provider: Option<String>,
    /// The API protocol the agent speaks (roster v3 `protocol:`).
    pub protocol: Option<String>,
    /// Sidecar tool settings.
    pub sidecar: Option<SidecarSpec>,
    /// How the entry is installed into L1.
    pub install: Option<InstallSpec>,
    /// The `hilfe` line.
    pub help: Option<HelpSpec>,
    /// Extra shared directories.
    pub mounts: Vec<MountSpec>,
    /// Serves a web UI behind the ingress proxy.
    pub web_ingress: bool,
}

/// An agent's ACP server (see [`crate::schema::AcpFile`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcpSpec {
    /// The command line inside the container (never empty).
    pub command: Vec<String>,
    /// Variables exported for the server.
    pub env: BTreeMap<String, String>,
    /// A command run before it.
    pub prepare: Option<String>,
    /// The `authenticate` method the proxy selects, when the server requires one.
    pub auth_method: Option<String>,
}

/// Git author identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitIdentity {
    /// Author name.
    pub name: String,
    /// Author email.
    pub email: String,
}

/// How the agent is run without a human.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeadlessSpec {
    /// Subcommand placed first (`exec`, `run`).
    pub subcommand: Option<String>,
    /// Flag before the prompt; `None` passes the prompt positionally.
    pub prompt_flag: Option<String>,
    /// Flag selecting a model.
    pub model_flag: Option<String>,
    /// Flag limiting turns.
    pub max_turns_flag: Option<String>,
    /// Flag for verbose output.
    pub verbose_flag: Option<String>,
    /// Flags selecting the output format.
    pub output_format_flags: Vec<String>,
}

/// Auto-approval for unrestricted runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AutoApprove {
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Flags.
    pub flags: Vec<String>,
}

/// Session resume support.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionSpec {
    /// Whether sessions can be resumed.
    pub supports_resume: bool,
    /// Flag resuming a session by id.
    pub resume_flag: Option<String>,
    /// Flag continuing the last session.
    pub continue_flag: Option<String>,
    /// File under `/home/dev/.terok/` holding the session id.
    pub session_file: Option<String>,
    /// Whether a SessionStart hook records the id.
    pub supports_hook: bool,
}

/// Optional CLI features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Accepts `--agents` JSON.
    pub agents_json: bool,
    /// Accepts `--add-dir`.
    pub add_dir: bool,
    /// Output stream format.
    pub log_format: LogFormat,
}

/// An OpenAI-compatible provider run through OpenCode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpencodeSpec {
    /// Display name.
    pub display_name: String,
    /// API base URL.
    pub base_url: String,
    /// Preferred model.
    pub preferred_model: String,
    /// Fallback model.
    pub fallback_model: String,
    /// Env var prefix.
    pub env_var_prefix: String,
    /// Config dir under `/home/dev`.
    pub config_dir: String,
    /// Where to get a key.
    pub auth_key_url: String,
    /// Hint shown when asking for a key.
    pub api_key_hint: Option<String>,
}

/// How `auth` obtains a credential for one provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthSpec {
    /// Shared directory under the mounts dir.
    pub host_dir: String,
    /// Where it is mounted in containers.
    pub container_mount: String,
    /// Login command for the auth container.
    pub command: Option<Vec<String>>,
    /// API key prompt settings.
    pub auth_key: Option<AuthKeySpec>,
    /// Banner hint.
    pub banner_hint: Option<String>,
    /// Extra `podman run` arguments for the auth container.
    pub extra_run_args: Vec<String>,
    /// Supported modes.
    pub modes: Vec<AuthMode>,
    /// Where to get an API key.
    pub api_key_hint: Option<String>,
    /// JSON merged into files of the shared directory after a login.
    pub post_capture_state: BTreeMap<String, Map<String, Value>>,
}

/// An API key prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthKeySpec {
    /// Provider name in the prompt.
    pub label: Option<String>,
    /// Where to get a key.
    pub key_url: String,
    /// Env var shown in the prompt.
    pub env_var: String,
    /// File written in the container.
    pub config_path: String,
    /// printf template of that file.
    pub printf_template: String,
    /// Tool name in the closing message.
    pub tool_name: Option<String>,
}

/// Which header carries the real credential upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthHeader {
    /// `Authorization: Bearer …` for OAuth, `x-api-key: …` for keys (Anthropic).
    Dynamic,
    /// This header, with the route's prefix.
    Named(String),
}

/// A credential provider: who holds the credential and where requests go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    /// Provider name (for v1 files, the agent's name): the credential's name in the store.
    pub name: String,
    /// Display name, when the roster gives one.
    pub label: Option<String>,
    /// Other names that reach this provider (roster v3's provider names, `anthropic` for
    /// claude).
    pub aliases: Vec<String>,
    /// Unique route name.
    pub route_prefix: String,
    /// Default upstream base URL.
    pub upstream: String,
    /// Upstreams for path prefixes, longest match wins.
    pub path_upstreams: BTreeMap<String, String>,
    /// Headers added for OAuth credentials.
    pub oauth_extra_headers: BTreeMap<String, String>,
    /// Headers added for OAuth credentials from a field of the stored credential.
    pub oauth_credential_headers: BTreeMap<String, String>,
    /// Protocol → the path prefix the upstream serves it at.
    pub serves: BTreeMap<String, String>,
    /// The path the base-URL variable gets after the vault's URL (from `serves:` and the
    /// protocol of the agents using the provider; empty for none).
    pub base_url_path: String,
    /// Header carrying the credential.
    pub auth_header: AuthHeader,
    /// Prefix before the credential.
    pub auth_prefix: String,
    /// Stored credential type.
    pub credential_type: CredentialType,
    /// Vendor credential file in the shared directory.
    pub credential_file: Option<String>,
    /// Variables that receive the phantom token for API keys.
    pub phantom_env: Vec<String>,
    /// Variables that receive the phantom token for OAuth credentials.
    pub oauth_phantom_env: Vec<String>,
    /// Variable receiving the vault base URL.
    pub base_url_env: Option<String>,
    /// Variable receiving the vault socket path.
    pub socket_env: Option<String>,
    /// Patch to the agent's own config file.
    pub shared_config_patch: Option<SharedConfigPatch>,
    /// OAuth refresh endpoint.
    pub oauth_refresh: Option<OauthRefresh>,
    /// `METHOD /path` patterns the vault refuses without forwarding.
    pub deny: Vec<String>,
    /// Other hosts a followed redirect may lead to.
    pub redirect_hosts: Vec<String>,
}

/// A patch that points an agent's own config file at the vault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedConfigPatch {
    /// File relative to the shared directory.
    pub file: String,
    /// Top-level YAML keys.
    pub yaml_set: Map<String, Value>,
    /// TOML keys.
    pub toml_set: Map<String, Value>,
    /// Array-of-tables to update.
    pub toml_table: Option<String>,
    /// Keys selecting the table entry.
    pub toml_match: Map<String, Value>,
}

/// OAuth refresh endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OauthRefresh {
    /// Token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Scope.
    pub scope: Option<String>,
}

/// Sidecar tool settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SidecarSpec {
    /// Tool name.
    pub tool_name: String,
    /// Container variable → credential key.
    pub env_map: BTreeMap<String, String>,
    /// Dockerfile fragment run as root in the sidecar image that installs the tool.
    pub install: Option<String>,
}

/// Installation into L1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InstallSpec {
    /// Entries installed first.
    pub depends_on: Vec<String>,
    /// Dockerfile fragment run as root.
    pub run_as_root: Option<String>,
    /// Dockerfile fragment run as `dev`.
    pub run_as_dev: Option<String>,
    /// The check that the installed entry works (`None`: `<binary> --version`).
    pub smoke: Option<String>,
    /// The oldest Node.js major version the entry runs on.
    pub min_node: Option<u32>,
    /// The oldest Python the entry runs on.
    pub min_python: Option<PythonVersion>,
}

/// A Python release, `major.minor`; written and serialized as `"3.12"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonVersion {
    /// `3` in 3.12.
    pub major: u32,
    /// `12` in 3.12.
    pub minor: u32,
}

impl std::str::FromStr for PythonVersion {
    type Err = ();

    /// `"3.12"`; nothing else (no patch level, no spaces).
    fn from_str(s: &str) -> Result<Self, ()> {
        let (major, minor) = s.split_once('.').ok_or(())?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            part.parse::<u32>().map_err(|_| ())
        };
        Ok(Self {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

impl std::fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for PythonVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The `hilfe` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelpSpec {
    /// The line.
    pub label: String,
    /// Section.
    pub section: HelpSection,
}

/// A shared directory declared in `mounts:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSpec {
    /// Directory under the mounts dir.
    pub host_dir: String,
    /// Mount point in the container.
    pub container_path: String,
    /// Description.
    pub label: Option<String>,
}
