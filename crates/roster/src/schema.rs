//! The shape of one roster file (docs/compatibility.md#5.2), as read from YAML and as published in
//! the JSON Schema. Every section rejects unknown keys. Every field is optional here because a file
//! may be an override that changes one field of a bundled agent; what a complete agent must have is
//! checked after the layers are merged ([`crate::resolve`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The newest roster format version this build understands: 1 (one file per entry, the route in
/// `vault:`) and 3 (agents name a `provider:`, providers have files of their own) load side by
/// side; the bundled files are version 1.
pub const ROSTER_VERSION: u64 = 3;

/// One roster file: `resources/agents/<name>.yaml` or a user override of the same name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "terok agent roster entry",
    description = "One agent, tool or runtime of the terok roster, in either shape: roster_version 1 \
                   (the route in `vault:`) or 3 (`protocol:` and `provider:` naming a provider file). A \
                   file named like a bundled entry is deep-merged over it: `null` deletes a key, \
                   `_inherit` in a list splices in the bundled items."
)]
pub struct AgentFile {
    /// Format version of this file (1 or 3). Newer versions load with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>")]
    pub roster_version: Option<Value>,
    /// What the entry is: `native` and `harness` agents can be run; `tool`s are helpers
    /// (gh, glab, sidecars); `frontend`s (toad) and `infra` (caddy) are image components
    /// that are not run as agents (`runtime` is the older name of both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AgentKind>,
    /// Display name (default: the file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The command inside the container (default: the file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// Git author identity the agent commits with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_identity: Option<GitIdentityFile>,
    /// How to run the agent without a human (`run -p`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless: Option<HeadlessFile>,
    /// Environment and flags that switch off the agent's own permission prompts (unrestricted runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve: Option<AutoApproveFile>,
    /// Session resume support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionFile>,
    /// Optional features of the agent CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilitiesFile>,
    /// Behaviour of the in-container wrapper function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapper: Option<WrapperFile>,
    /// The agent's ACP server (Agent Client Protocol), for editors through `terok-executor acp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acp: Option<AcpFile>,
    /// Makes the entry an OpenCode provider (an OpenAI-compatible endpoint run through OpenCode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opencode: Option<OpencodeFile>,
    /// How `terok-executor auth` obtains a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthFile>,
    /// The vault route: where requests go and how the real credential is injected (roster v1;
    /// a v3 file names a `provider:` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultFile>,
    /// Roster v3: the API protocol the agent speaks (`anthropic-messages`,
    /// `openai-responses` …); the provider's `serves:` maps it to the path of the base URL the
    /// agent is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Roster v3: the provider the agent's requests go through and how the agent receives its
    /// phantom credential (instead of `vault:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<AgentProviderFile>,
    /// Runs the entry as a sidecar tool (`run-tool`) with the real credential in its env.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<SidecarFile>,
    /// How the entry is installed into the L1 image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallFile>,
    /// The line shown by `hilfe` inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<HelpFile>,
    /// Extra host directories shared with containers (under the mounts dir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<ListItem<MountFile>>>,
    /// Serves a web UI behind the ingress proxy (`run --web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_ingress: Option<bool>,
}

/// Kinds of roster entries (the Python terok-executor 0.5.0's names; `opencode` and `bridge` are
/// older spellings of `harness`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// A coding agent with its own model access (claude, codex, copilot, vibe).
    #[default]
    Native,
    /// An agent harness driving other providers' models (opencode and its providers, pi).
    #[serde(alias = "opencode", alias = "bridge")]
    Harness,
    /// A helper CLI (gh, glab) or sidecar tool (coderabbit).
    Tool,
    /// A user interface in front of the agents (toad).
    Frontend,
    /// Infrastructure inside the image (caddy).
    Infra,
    /// An image component that is not run directly: the roster v1 name of `frontend` and
    /// `infra`.
    Runtime,
}

impl AgentKind {
    /// The name shown in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Harness => "harness",
            Self::Tool => "tool",
            Self::Frontend => "frontend",
            Self::Infra => "infra",
            Self::Runtime => "runtime",
        }
    }

    /// Whether entries of this kind can be run as agents.
    pub fn is_agent(self) -> bool {
        matches!(self, Self::Native | Self::Harness)
    }
}

impl JsonSchema for AgentKind {
    fn schema_name() -> Cow<'static, str> {
        "AgentKind".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "native | harness | tool | frontend | infra (`opencode` and `bridge` are accepted as older names of `harness`, `runtime` as the older name of `frontend` and `infra`)",
            "type": "string",
            "enum": ["native", "harness", "tool", "frontend", "infra", "runtime", "opencode", "bridge"]
        })
    }
}

/// A list item that is either a value or the `_inherit` marker (splice in the base list here).
#[derive(Debug, Clone, PartialEq)]
pub enum ListItem<T> {
    /// The `_inherit` marker.
    Inherit,
    /// A real item.
    Item(T),
}

impl<T> ListItem<T> {
    /// The item, unless this is the marker.
    pub fn item(&self) -> Option<&T> {
        match self {
            Self::Inherit => None,
            Self::Item(item) => Some(item),
        }
    }
}

impl<T: Serialize> Serialize for ListItem<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Inherit => serializer.serialize_str(terok_core::merge::INHERIT),
            Self::Item(item) => item.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListItem<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ItemVisitor<T> {
            type Value = ListItem<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list item or `_inherit`")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                if value == terok_core::merge::INHERIT {
                    return Ok(ListItem::Inherit);
                }
                T::deserialize(value.into_deserializer()).map(ListItem::Item)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ListItem::Item)
            }
        }

        deserializer.deserialize_any(ItemVisitor(std::marker::PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for ListItem<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("ListItem_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let item = generator.subschema_for::<T>();
        json_schema!({
            "anyOf": [item, {"const": "_inherit", "description": "Splice in the items of the layer below here."}]
        })
    }
}

/// A string, or a list of strings (`depends_on: opencode` or `depends_on: [a, b]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single name.
    One(String),
    /// Several names.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The names as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one.clone()],
            Self::Many(many) => many.clone(),
        }
    }
}

macro_rules! section {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Merge sentinel (`_inherit: true`): keep the keys of the layer below. Mappings are
            /// merged key by key anyway, so this is accepted for compatibility only.
            #[serde(rename = "_inherit", default, skip_serializing)]
            pub inherit_marker: Option<bool>,
        }
    };
}

section!(
    /// `git_identity:` — who the agent's commits are authored by.
    GitIdentityFile {
        /// Author name (default: the entry name, capitalised).
        name: String,
        /// Author email (default: `noreply@<name>.ai`).
        email: String,
    }
);

section!(
    /// `headless:` — the non-interactive command line.
    HeadlessFile {
        /// A subcommand placed before the other flags (`exec` for codex, `run` for opencode).
        subcommand: String,
        /// The flag that carries the prompt (default `-p`; `""` passes the prompt positionally).
        prompt_flag: String,
        /// The flag that selects a model (models are dropped with a warning when absent).
        model_flag: String,
        /// The flag that limits agent turns (otherwise the limit becomes a prompt instruction).
        max_turns_flag: String,
        /// A flag that makes output verbose.
        verbose_flag: String,
        /// Flags that select a machine-readable output format.
        output_format_flags: Vec<String>,
    }
);

section!(
    /// `auto_approve:` — applied only to unrestricted runs.
    AutoApproveFile {
        /// Environment variables set in the container.
        env: BTreeMap<String, String>,
        /// Flags added to every invocation.
        flags: Vec<String>,
    }
);

section!(
    /// `session:` — resuming earlier conversations.
    SessionFile {
        /// Whether the agent can resume a session.
        supports_resume: bool,
        /// Flag that resumes a session by id.
        resume_flag: String,
        /// Flag that continues the most recent session.
        continue_flag: String,
        /// File under `/home/dev/.terok/` where the session id is kept.
        session_file: String,
        /// Whether a SessionStart hook records the session id (Claude).
        supports_hook: bool,
    }
);

/// How the agent's log output is formatted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Plain text.
    #[default]
    Plain,
    /// Claude Code's `--output-format stream-json`.
    ClaudeStreamJson,
}

section!(
    /// `capabilities:` — optional features.
    CapabilitiesFile {
        /// Accepts sub-agent definitions as JSON (`--agents`).
        agents_json: bool,
        /// Accepts `--add-dir /`.
        add_dir: bool,
        /// Format of the agent's output stream.
        log_format: LogFormat,
    }
);

section!(
    /// `wrapper:` — the in-container wrapper function.
    WrapperFile {
        /// Subcommands the wrapper refuses (logins happen on the host with `terok-executor auth`).
        refuse_subcommands: Vec<String>,
        /// Variables exported while the agent runs: settings that stop its start-up calls to
        /// its vendor (update checks, telemetry, model catalogues), so it also runs behind a
        /// firewall.
        env: BTreeMap<String, String>,
        /// Flags added to every invocation, before the caller's arguments.
        flags: Vec<String>,
        /// A command run before the agent, with the agent's environment (e.g. to point its
        /// config at the vault); the agent does not start when it fails.
        prepare: String,
    }
);

section!(
    /// `acp:` — the agent's ACP server, started in the task container as
    /// `terok-<name>-acp` (with the task's git identity, instructions and wrapper env).
    AcpFile {
        /// The server's command line inside the container; the image gets `terok-<name>-acp`
        /// only when its first word is installed. Required once the layers are merged.
        command: Vec<String>,
        /// Variables exported for the server.
        env: BTreeMap<String, String>,
        /// A command run before the server, with its environment (e.g. to hand it the task's
        /// instructions); its output goes to stderr, as stdout carries the protocol.
        prepare: String,
        /// The ACP `authenticate` method the proxy selects before opening a session, for
        /// servers that require one (an API-key method: the key is the task's phantom token).
        auth_method: String,
    }
);

section!(
    /// `opencode:` — an OpenAI-compatible provider run through OpenCode. Every field but
    /// `api_key_hint` is required once the layers are merged.
    OpencodeFile {
        /// Provider name shown by OpenCode.
        display_name: String,
        /// Base URL of the OpenAI-compatible API (ending in `/v1`).
        base_url: String,
        /// Model tried first.
        preferred_model: String,
        /// Model used when the preferred one is not offered.
        fallback_model: String,
        /// Prefix of the provider's environment variables (`<PREFIX>_API_KEY`).
        env_var_prefix: String,
        /// Directory under `/home/dev` holding the provider's config.
        config_dir: String,
        /// Where users get an API key.
        auth_key_url: String,
        /// Hint shown when asking for the key.
        api_key_hint: String,
    }
);

/// Ways `auth` can obtain a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// An interactive login in an auth container.
    Oauth,
    /// A pasted API key.
    ApiKey,
}

section!(
    /// `auth:` — obtaining a credential. `host_dir` and `container_mount` are required once the
    /// layers are merged.
    AuthFile {
        /// Directory under the mounts dir (one path segment) shared with containers.
        host_dir: String,
        /// Where that directory is mounted in the container.
        container_mount: String,
        /// The login command run in the auth container.
        command: Vec<String>,
        /// How to ask for an API key when there is no login command.
        auth_key: AuthKeyFile,
        /// A hint printed in the auth container's banner.
        banner_hint: String,
        /// Extra `podman run` arguments for the auth container (such as a port mapping).
        extra_run_args: Vec<String>,
        /// Supported modes (default `[api_key]`).
        modes: Vec<ListItem<AuthMode>>,
        /// Where to get an API key.
        api_key_hint: String,
        /// JSON merged into files of the shared directory after a login (`~` means `{}`).
        post_capture_state: BTreeMap<String, Option<Map<String, Value>>>,
    }
);

section!(
    /// `auth.auth_key:` — an API key prompt. All fields but `label` and `tool_name` are required.
    AuthKeyFile {
        /// Provider name in the prompt.
        label: String,
        /// Where to get a key.
        key_url: String,
        /// Environment variable name shown in the prompt.
        env_var: String,
        /// File the key is written to in the container.
        config_path: String,
        /// printf template for that file (`%s` is the key).
        printf_template: String,
        /// Tool name in the closing message.
        tool_name: String,
    }
);

/// Type of the credential a route carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    /// An API key.
    #[default]
    ApiKey,
    /// OAuth access + refresh tokens.
    Oauth,
    /// A long-lived OAuth token (gh).
    OauthToken,
    /// A personal access token (glab).
    Pat,
}

section!(
    /// `vault:` — the route through the token broker. `route_prefix` and `upstream` are required
    /// once the layers are merged.
    VaultFile {
        /// Unique route name.
        route_prefix: String,
        /// Other names of this provider, such as the provider names of roster v3
        /// (`anthropic` for claude): a v3 agent or provider file naming one reaches this route,
        /// and the credential stays stored under the entry's own name.
        aliases: Vec<String>,
        /// The provider's display name.
        label: String,
        /// Base URL requests are forwarded to.
        upstream: String,
        /// Other upstreams for path prefixes (`/backend-api/: https://chatgpt.com`).
        path_upstreams: BTreeMap<String, String>,
        /// Headers added to requests that carry an OAuth credential.
        oauth_extra_headers: BTreeMap<String, String>,
        /// Header carrying the real credential (default `Authorization`; `dynamic`: Bearer for
        /// OAuth, `x-api-key` for keys).
        auth_header: String,
        /// Text before the credential in that header (default `"Bearer "`).
        auth_prefix: String,
        /// Type of the stored credential (default `api_key`).
        credential_type: CredentialType,
        /// The vendor's credential file in the shared directory (mounted read-only).
        credential_file: String,
        /// Variables that receive the phantom token for API keys.
        phantom_env: BTreeMap<String, bool>,
        /// Variables that receive the phantom token for OAuth credentials.
        oauth_phantom_env: BTreeMap<String, bool>,
        /// Variable that receives the vault's base URL.
        base_url_env: String,
        /// Variable that receives the vault's socket path.
        socket_env: String,
        /// A patch to the agent's own config file pointing it at the vault.
        shared_config_patch: SharedConfigPatchFile,
        /// How OAuth access tokens are refreshed on the host.
        oauth_refresh: OauthRefreshFile,
        /// Requests the vault refuses (403) without forwarding: `METHOD /path` patterns for
        /// endpoints that mint, rotate or reveal credentials (`*` is one path segment, a final
        /// `**` any rest; the method `*` is every method).
        deny: Vec<String>,
        /// Hosts besides the upstream's own that a redirect may lead to for the vault to follow
        /// it (https only; `*.example.com` for subdomains). Other redirects reach the client.
        redirect_hosts: Vec<String>,
        /// Headers added to requests carrying an OAuth credential, filled from a field of the
        /// stored credential (`ChatGPT-Account-ID: account_id`).
        oauth_credential_headers: BTreeMap<String, String>,
        /// The API protocols the upstream serves, each at a path prefix
        /// (`openai-responses: /v1`): an agent speaking one is given the vault URL with it.
        serves: BTreeMap<String, String>,
    }
);

section!(
    /// `provider:` of a roster v3 agent file — the provider it uses and how the agent receives
    /// the phantom credential.
    AgentProviderFile {
        /// The provider's name (a file in `providers/`, a bundled entry with a route, or one of
        /// its `aliases`).
        default: String,
        /// Credential type (`oauth`, `api_key`, `oauth_token`, `pat`, or `_default` for every
        /// type but OAuth) → the variable that receives the phantom token.
        token_env: BTreeMap<String, String>,
        /// Variable that receives the vault's base URL.
        base_url_env: String,
        /// Variable that receives the vault's socket path.
        socket_env: String,
        /// The vendor's credential file in the shared directory (mounted read-only).
        credential_file: String,
        /// Type of the stored credential (default `api_key`).
        credential_type: CredentialType,
        /// A patch to the agent's own config file pointing it at the vault.
        shared_config_patch: SharedConfigPatchFile,
    }
);

/// One roster v3 provider file: `providers/<name>.yaml`, layered like agent files.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "terok roster provider",
    description = "One credential provider of the terok roster (roster_version 3): where requests \
                   go and how the real credential is presented. Agents name it in `provider.default`; \
                   several agents share its one stored credential."
)]
pub struct ProviderFile {
    /// Format version of this file (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>")]
    pub roster_version: Option<Value>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Unique route name (default: the provider's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_prefix: Option<String>,
    /// Base URL requests are forwarded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// How the real credential is presented, per credential type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ProviderAuthFile>,
    /// Other upstreams for path prefixes (`/backend-api/: https://chatgpt.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_upstreams: Option<BTreeMap<String, String>>,
    /// Headers added to OAuth requests from a field of the stored credential
    /// (`ChatGPT-Account-ID: account_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_credential_headers: Option<BTreeMap<String, String>>,
    /// How OAuth access tokens are refreshed on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_refresh: Option<OauthRefreshFile>,
    /// Protocol → path prefix the upstream serves it at (`openai-responses: /v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves: Option<BTreeMap<String, String>>,
    /// Requests the vault refuses without forwarding (`METHOD /path`, as in `vault.deny`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// Hosts a followed redirect may lead to (as in `vault.redirect_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_hosts: Option<Vec<String>>,
    /// OpenCode family: makes the provider an agent run through OpenCode (the harness entry
    /// of the same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opencode: Option<OpencodeFile>,
    /// OpenCode family: how that agent is installed into the L1 image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallFile>,
    /// OpenCode family: that agent's `hilfe` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<HelpFile>,
}

section!(
    /// `auth:` of a provider file — how the real credential is presented upstream.
    ProviderAuthFile {
        /// OAuth access tokens: always `Authorization: Bearer …`; `extra_headers` are added.
        oauth: AuthHeaderFile,
        /// Every other credential type (API keys, tokens, personal access tokens).
        api_key: AuthHeaderFile,
    }
);

section!(
    /// One way of presenting a credential.
    AuthHeaderFile {
        /// Header name (`Authorization`, `x-api-key`, `PRIVATE-TOKEN` …).
        header: String,
        /// Text before the credential (`"Bearer "`).
        prefix: String,
        /// Headers added alongside (for OAuth, comma-merged with the client's).
        extra_headers: BTreeMap<String, String>,
    }
);

section!(
    /// `vault.shared_config_patch:` — values written into the agent's config file. Strings may
    /// contain `{vault_url}` and `{vault_socket}`.
    SharedConfigPatchFile {
        /// File relative to the shared directory (no `..`, not absolute).
        file: String,
        /// Top-level YAML keys to set.
        yaml_set: Map<String, Value>,
        /// TOML keys to set (top level, or in the matched table entry).
        toml_set: Map<String, Value>,
        /// Array-of-tables to update instead of the top level.
        toml_table: String,
        /// Keys that select the entry of `toml_table` to update.
        toml_match: Map<String, Value>,
    }
);

section!(
    /// `vault.oauth_refresh:` — refresh endpoint. `token_url` and `client_id` are required.
    OauthRefreshFile {
        /// Token endpoint.
        token_url: String,
        /// OAuth client id.
        client_id: String,
        /// Scope requested on refresh.
        scope: String,
    }
);

section!(
    /// `sidecar:` — running the entry as a tool container with the real credential.
    SidecarFile {
        /// Tool name (default: the entry name).
        tool_name: String,
        /// Container variable → key of the stored credential.
        env_map: BTreeMap<String, String>,
        /// Dockerfile fragment run as root in the sidecar image that installs the tool
        /// (rendered with `family` in scope).
        install: String,
    }
);

section!(
    /// `install:` — Dockerfile fragments for the L1 image (rendered with `family` in scope).
    InstallFile {
        /// Entries this one needs (installed first).
        depends_on: OneOrMany,
        /// Fragment run as root.
        run_as_root: String,
        /// Fragment run as the `dev` user.
        run_as_dev: String,
        /// A shell command, run as `dev` in the built image without a network, that exits 0
        /// when the entry works and prints its version first (default: `<binary> --version`).
        smoke: String,
        /// The oldest Node.js major version the entry runs on; a build on a base known to
        /// install an older one refuses the entry.
        min_node: u32,
        /// The oldest Python the entry runs on, as `"3.12"` (a string: `3.10` as a number is
        /// 3.1); a build on a base known to install an older `python3` refuses the entry.
        min_python: String,
    }
);

/// Which `hilfe` section an entry is listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HelpSection {
    /// Agents.
    #[default]
    Agent,
    /// Developer tools.
    DevTool,
}

section!(
    /// `help:` — the `hilfe` banner line.
    HelpFile {
        /// The line (may contain `\033[..m` escapes).
        label: String,
        /// `agent` (default) or `dev_tool`.
        section: HelpSection,
    }
);

section!(
    /// One entry of `mounts:`. `host_dir` and `container_path` are required.
    MountFile {
        /// Directory under the mounts dir (one path segment).
        host_dir: String,
        /// Where it is mounted in the container.
        container_path: String,
        /// Description shown in storage listings.
        label: String,
    }
);
