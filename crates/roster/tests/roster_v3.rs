//! Roster v3 files (agents naming a `provider:`, provider files of their own) loaded beside the
//! bundled v1 roster: written by hand in the shape of the Python terok-executor 0.5.0's.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use terok_roster::model::AuthHeader;
use terok_roster::{AgentKind, Roster, RosterError, RosterLoader};

/// A user's roster: `agents/` and `providers/` as under ~/.config/terok/agent/, over a system
/// layer of the same shape.
struct UserRoster {
    dir: tempfile::TempDir,
}

impl UserRoster {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in [
            "etc/agents",
            "etc/providers",
            "user/agents",
            "user/providers",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    /// Writes `text` at `path` (`user/agents/x.yaml`, `etc/providers/y.yaml` …).
    fn file(self, path: &str, text: &str) -> Self {
        std::fs::write(self.dir.path().join(path), text).unwrap();
        self
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn load(&self) -> Result<Roster, RosterError> {
        RosterLoader::bundled()
            .with_override_dir(self.root().join("etc/agents"))
            .with_override_dir(self.root().join("user/agents"))
            .with_provider_dir(self.root().join("etc/providers"))
            .with_provider_dir(self.root().join("user/providers"))
            .load()
    }

    fn error(&self) -> terok_core::yaml::YamlError {
        match self.load() {
            Err(RosterError::Invalid(e)) => e,
            other => panic!("expected one located error, got {other:?}"),
        }
    }
}

const MYLLM: &str = r#"roster_version: 3
label: My LLM
upstream: https://api.myllm.example
auth:
  oauth:
    header: Authorization
    prefix: "Bearer "
    extra_headers:
      myllm-beta: oauth-1
  api_key:
    header: x-api-key
    prefix: ""
path_upstreams:
  /files/: https://files.myllm.example
oauth_credential_headers:
  MyLLM-Account: account_id
oauth_refresh:
  token_url: https://auth.myllm.example/token
  client_id: terok
serves:
  myllm-chat: /v2
  openai-chat: /openai/v1
"#;

const WRITER: &str = r#"roster_version: 3
kind: native
label: Writer
protocol: myllm-chat
provider:
  default: myllm
  token_env:
    oauth: WRITER_OAUTH_TOKEN
    _default: MYLLM_API_KEY
  base_url_env: MYLLM_BASE_URL
headless:
  prompt_flag: --prompt
"#;

const REVIEWER: &str = r#"roster_version: 3
kind: harness
label: Reviewer
protocol: myllm-chat
provider:
  default: myllm
  token_env:
    _default: MYLLM_API_KEY
  base_url_env: MYLLM_BASE_URL
"#;

/// The hand-written roster of the issue: a provider file with two agents using it, a v3
/// override pointing a bundled agent at a bundled provider by its v3 name, and a provider
/// override of that bundled route.
fn mixed() -> UserRoster {
    UserRoster::new()
        .file("etc/providers/myllm.yaml", MYLLM)
        .file("user/agents/writer.yaml", WRITER)
        .file("user/agents/reviewer.yaml", REVIEWER)
        // Pi has no route of its own: the v3 way to give it Anthropic's.
        .file(
            "user/agents/pi.yaml",
            "roster_version: 3\nprovider:\n  default: anthropic\n  token_env:\n    _default: ANTHROPIC_API_KEY\n  base_url_env: ANTHROPIC_BASE_URL\n",
        )
        // A v3 provider file over the bundled claude route, by its v3 name.
        .file(
            "user/providers/anthropic.yaml",
            "roster_version: 3\nupstream: http://127.0.0.1:8080\n",
        )
}

#[test]
fn both_shapes_load_together_into_one_model() {
    let roster = mixed().load().unwrap();
    assert!(roster.warnings().is_empty(), "{:?}", roster.warnings());
    // v1 entries are untouched.
    let codex = roster.agent("codex").unwrap();
    assert_eq!(codex.provider.as_deref(), Some("codex"));
    assert_eq!(roster.provider("openai").unwrap().name, "codex");
    // The provider file became a route like a v1 `vault:` section.
    let myllm = roster.provider("myllm").unwrap();
    assert_eq!(myllm.label.as_deref(), Some("My LLM"));
    assert_eq!(myllm.route_prefix, "myllm");
    assert_eq!(myllm.upstream, "https://api.myllm.example");
    assert_eq!(myllm.auth_header, AuthHeader::Named("x-api-key".to_owned()));
    assert_eq!(myllm.auth_prefix, "");
    assert_eq!(myllm.oauth_extra_headers["myllm-beta"], "oauth-1");
    assert_eq!(
        myllm.oauth_credential_headers["MyLLM-Account"],
        "account_id"
    );
    assert_eq!(
        myllm.path_upstreams["/files/"],
        "https://files.myllm.example"
    );
    assert_eq!(
        myllm.oauth_refresh.as_ref().unwrap().token_url,
        "https://auth.myllm.example/token"
    );
    // The agent side comes from the agents using it; the base URL from `serves`.
    assert_eq!(myllm.phantom_env, ["MYLLM_API_KEY"]);
    assert_eq!(myllm.oauth_phantom_env, ["WRITER_OAUTH_TOKEN"]);
    assert_eq!(myllm.base_url_env.as_deref(), Some("MYLLM_BASE_URL"));
    assert_eq!(myllm.base_url_path, "/v2");
    let writer = roster.agent("writer").unwrap();
    assert_eq!(writer.kind, AgentKind::Native);
    assert_eq!(writer.protocol.as_deref(), Some("myllm-chat"));
    assert_eq!(writer.headless.prompt_flag.as_deref(), Some("--prompt"));
}

#[test]
fn agents_of_one_provider_share_its_one_credential() {
    let roster = mixed().load().unwrap();
    // Two v3 agents of a provider file.
    let writer = roster.agent("writer").unwrap();
    let reviewer = roster.agent("reviewer").unwrap();
    assert_eq!(writer.provider.as_deref(), Some("myllm"));
    assert_eq!(reviewer.provider, writer.provider);
    // A v3 agent naming a bundled provider by its v3 name shares the v1 agent's credential,
    // stored under the v1 name as before.
    let pi = roster.agent("pi").unwrap();
    let claude = roster.agent("claude").unwrap();
    assert_eq!(pi.provider.as_deref(), Some("claude"));
    assert_eq!(claude.provider.as_deref(), Some("claude"));
    let anthropic = roster.provider("anthropic").unwrap();
    assert_eq!(anthropic.name, "claude");
    assert_eq!(roster.provider_for(pi), roster.provider_for(claude));
    // The provider file changed the upstream and nothing else of the bundled route.
    assert_eq!(anthropic.upstream, "http://127.0.0.1:8080");
    assert_eq!(anthropic.auth_header, AuthHeader::Dynamic);
    assert_eq!(
        anthropic.credential_file.as_deref(),
        Some(".credentials.json")
    );
    assert_eq!(
        anthropic.oauth_extra_headers["anthropic-beta"],
        "oauth-2025-04-20"
    );
    // Pi's token variable joins Claude's (one provider, one set of variables).
    assert_eq!(anthropic.phantom_env, ["ANTHROPIC_API_KEY"]);
}

#[test]
fn a_later_layer_can_move_an_agent_to_another_provider() {
    let roster = mixed()
        .file(
            "etc/agents/helper.yaml",
            "roster_version: 3\nkind: tool\nprovider:\n  default: anthropic\n",
        )
        .file(
            "user/agents/helper.yaml",
            "roster_version: 3\nprovider:\n  default: myllm\n",
        )
        .load()
        .unwrap();
    assert_eq!(
        roster.get("helper").unwrap().provider.as_deref(),
        Some("myllm")
    );
    // A v1 override over a v3 file takes the route back to its own `vault:`.
    let roster = mixed()
        .file(
            "etc/agents/helper.yaml",
            "roster_version: 3\nkind: tool\nprovider:\n  default: myllm\n",
        )
        .file(
            "user/agents/helper.yaml",
            "roster_version: 1\nvault:\n  route_prefix: helper\n  upstream: https://helper.example\n",
        )
        .load()
        .unwrap();
    let helper = roster.get("helper").unwrap();
    assert_eq!(helper.provider.as_deref(), Some("helper"));
    assert_eq!(
        roster.provider("helper").unwrap().upstream,
        "https://helper.example"
    );
}

#[test]
fn an_opencode_family_provider_file_is_also_its_agent() {
    let roster = UserRoster::new()
        .file(
            "user/providers/acme.yaml",
            r#"roster_version: 3
label: ACME AI
upstream: https://api.acme.example
auth:
  api_key:
    header: Authorization
    prefix: "Bearer "
opencode:
  display_name: ACME AI
  base_url: https://api.acme.example/v1
  preferred_model: big
  fallback_model: small
  env_var_prefix: ACME
  config_dir: .acme
  auth_key_url: https://acme.example/keys
help:
  label: "acme        ACME AI (OpenCode)"
"#,
        )
        .load()
        .unwrap();
    let acme = roster.agent("acme").unwrap();
    assert_eq!(acme.kind, AgentKind::Harness);
    assert_eq!(acme.label, "ACME AI");
    assert_eq!(acme.provider.as_deref(), Some("acme"));
    assert_eq!(acme.opencode.as_ref().unwrap().env_var_prefix, "ACME");
    assert_eq!(acme.acp.as_ref().unwrap().command, ["acme-acp"]);
    assert_eq!(acme.install.as_ref().unwrap().depends_on, ["opencode"]);
    assert!(acme.help.as_ref().unwrap().label.starts_with("acme "));
    assert_eq!(
        roster.provider("acme").unwrap().phantom_env,
        ["ACME_API_KEY"]
    );
    assert!(roster.auth_provider("acme").unwrap().derived);
    // A provider file for a bundled OpenCode provider overrides its agent part too.
    let roster = UserRoster::new()
        .file(
            "user/providers/blablador.yaml",
            "roster_version: 3\nopencode:\n  preferred_model: alias-large\n",
        )
        .load()
        .unwrap();
    let blablador = roster.agent("blablador").unwrap();
    assert_eq!(
        blablador.opencode.as_ref().unwrap().preferred_model,
        "alias-large"
    );
    assert_eq!(
        roster.provider("blablador").unwrap().upstream,
        "https://api.helmholtz-blablador.fz-juelich.de"
    );
}

#[test]
fn v3_mistakes_are_errors_at_their_line() {
    // An agent naming a provider nobody defines.
    let e = UserRoster::new()
        .file(
            "user/agents/writer.yaml",
            "roster_version: 3\nprovider:\n  default: nowhere\n",
        )
        .error();
    assert_eq!(
        (e.line, e.field_path.as_deref()),
        (Some(3), Some("provider.default"))
    );
    assert!(
        e.message.starts_with("no provider `nowhere` (known: "),
        "{}",
        e.message
    );
    assert!(e.message.contains("anthropic"), "{}", e.message);
    // A v3 agent file with a v1 route.
    let e = UserRoster::new()
        .file(
            "user/agents/writer.yaml",
            "roster_version: 3\nprovider:\n  default: myllm\nvault:\n  upstream: https://x.example\n",
        )
        .error();
    assert_eq!((e.line, e.field_path.as_deref()), (Some(4), Some("vault")));
    // A typo in a provider file.
    let e = UserRoster::new()
        .file(
            "user/providers/myllm.yaml",
            "upstream: https://x.example\nupstreem: y\n",
        )
        .error();
    assert_eq!(
        (e.line, e.field_path.as_deref()),
        (Some(2), Some("upstreem"))
    );
    // OAuth goes as a Bearer token; the vault cannot do otherwise.
    let e = UserRoster::new()
        .file(
            "user/providers/myllm.yaml",
            "upstream: https://x.example\nauth:\n  oauth:\n    header: X-Token\n",
        )
        .error();
    assert_eq!(
        (e.line, e.field_path.as_deref()),
        (Some(4), Some("auth.oauth.header"))
    );
    // A bad value in a provider file is reported in the provider file's own words.
    let e = UserRoster::new()
        .file(
            "user/providers/myllm.yaml",
            "upstream: https://x.example\nauth:\n  api_key:\n    header: \"bad header\"\n",
        )
        .error();
    assert!(
        e.file.ends_with("providers/myllm.yaml"),
        "{}",
        e.file.display()
    );
    assert_eq!(
        (e.line, e.field_path.as_deref()),
        (Some(4), Some("auth.api_key.header"))
    );
    // A new provider needs an upstream.
    let e = UserRoster::new()
        .file("user/providers/myllm.yaml", "label: Mine\n")
        .error();
    assert!(e.message.contains("`upstream`"), "{}", e.message);
    // Two agents of one provider that disagree on its settings.
    let e = mixed()
        .file(
            "user/agents/reviewer.yaml",
            &REVIEWER.replace("base_url_env: MYLLM_BASE_URL", "base_url_env: OTHER_URL"),
        )
        .error();
    assert!(e.file.ends_with("reviewer.yaml") || e.file.ends_with("writer.yaml"));
    assert_eq!(e.field_path.as_deref(), Some("provider.base_url_env"));
    // A protocol the provider does not serve.
    let e = mixed()
        .file(
            "user/agents/reviewer.yaml",
            &REVIEWER.replace("protocol: myllm-chat", "protocol: anthropic-messages"),
        )
        .error();
    assert_eq!(e.field_path.as_deref(), Some("protocol"));
    assert!(
        e.message.contains("serves myllm-chat, openai-chat"),
        "{}",
        e.message
    );
}

#[test]
fn a_name_means_one_thing() {
    // An entry named like an alias of a route.
    let e = UserRoster::new()
        .file(
            "user/agents/anthropic.yaml",
            "roster_version: 3\nprovider:\n  default: myllm\n",
        )
        .file("user/providers/myllm.yaml", "upstream: https://x.example\n")
        .error();
    assert!(
        e.file.ends_with("agents/anthropic.yaml"),
        "{}",
        e.file.display()
    );
    assert!(
        e.message.contains("another name of `claude`'s route"),
        "{}",
        e.message
    );
    // One route described under its name and its alias.
    let e = UserRoster::new()
        .file(
            "etc/providers/claude.yaml",
            "upstream: https://one.example\n",
        )
        .file(
            "user/providers/anthropic.yaml",
            "upstream: https://two.example\n",
        )
        .error();
    assert!(
        e.message.contains("both describe `claude`'s route"),
        "{}",
        e.message
    );
}

#[test]
fn system_and_user_files_layer_by_level_across_both_shapes() {
    // A user's v1 override beats a system provider file, whatever the shapes.
    let roster = UserRoster::new()
        .file(
            "etc/providers/anthropic.yaml",
            "upstream: https://system.example\n",
        )
        .file(
            "user/agents/claude.yaml",
            "vault:\n  upstream: https://user.example\n",
        )
        .load()
        .unwrap();
    assert_eq!(
        roster.provider("claude").unwrap().upstream,
        "https://user.example"
    );
    // And a user's provider file beats a system v1 override.
    let roster = UserRoster::new()
        .file(
            "etc/agents/claude.yaml",
            "vault:\n  upstream: https://system.example\n",
        )
        .file(
            "user/providers/anthropic.yaml",
            "upstream: https://user.example\n",
        )
        .load()
        .unwrap();
    assert_eq!(
        roster.provider("claude").unwrap().upstream,
        "https://user.example"
    );
    // A route removed by `vault: null` comes back from a provider file, named after it.
    let roster = UserRoster::new()
        .file("etc/agents/claude.yaml", "vault: null\n")
        .file(
            "user/providers/claude.yaml",
            "upstream: https://again.example\n",
        )
        .load()
        .unwrap();
    let claude = roster.provider("claude").unwrap();
    assert_eq!(
        (claude.route_prefix.as_str(), claude.upstream.as_str()),
        ("claude", "https://again.example")
    );
}

#[test]
fn a_v3_agent_cannot_quietly_change_a_v1_agents_route() {
    // Another agent on Claude's route with its own base-URL variable: an error naming both.
    let e = UserRoster::new()
        .file(
            "user/agents/writer.yaml",
            "roster_version: 3\nprovider:\n  default: anthropic\n  base_url_env: WRITER_URL\n",
        )
        .error();
    assert_eq!(e.field_path.as_deref(), Some("provider.base_url_env"));
    assert!(
        e.message
            .contains("`writer` and `claude` both use provider `claude`"),
        "{}",
        e.message
    );
    // Token variables add up: Claude keeps its own.
    let roster = UserRoster::new()
        .file(
            "user/agents/writer.yaml",
            "roster_version: 3\nprovider:\n  default: anthropic\n  token_env:\n    _default: WRITER_KEY\n",
        )
        .load()
        .unwrap();
    let claude = roster.provider("claude").unwrap();
    assert_eq!(claude.phantom_env, ["ANTHROPIC_API_KEY", "WRITER_KEY"]);
    assert_eq!(claude.oauth_phantom_env, ["CLAUDE_CODE_OAUTH_TOKEN"]);
    assert_eq!(claude.base_url_env.as_deref(), Some("ANTHROPIC_BASE_URL"));
    // Claude itself, rebinding its own route, may change its settings.
    let roster = UserRoster::new()
        .file(
            "user/agents/claude.yaml",
            "roster_version: 3\nprovider:\n  default: anthropic\n  base_url_env: MY_URL\n",
        )
        .load()
        .unwrap();
    assert_eq!(
        roster.provider("claude").unwrap().base_url_env.as_deref(),
        Some("MY_URL")
    );
}

#[test]
fn binding_mistakes_point_at_the_agent_that_made_them() {
    let e = mixed()
        .file(
            "user/agents/reviewer.yaml",
            &REVIEWER.replace("_default: MYLLM_API_KEY", "_default: \"BAD VAR\""),
        )
        .error();
    assert!(e.file.ends_with("reviewer.yaml"), "{}", e.file.display());
    assert_eq!(e.field_path.as_deref(), Some("provider.token_env._default"));
    // A route removed by `vault: null` is no provider to bind to.
    let e = UserRoster::new()
        .file("user/agents/claude.yaml", "vault: null\n")
        .file(
            "user/agents/writer.yaml",
            "roster_version: 3\nprovider:\n  default: claude\n  token_env:\n    _default: K\n",
        )
        .error();
    assert!(e.file.ends_with("writer.yaml"), "{}", e.file.display());
    assert!(
        e.message.starts_with("no provider `claude`"),
        "{}",
        e.message
    );
    // A provider file's missing field is said in its own words.
    let e = UserRoster::new()
        .file("user/providers/myllm.yaml", "label: Mine\n")
        .error();
    assert_eq!(e.message, "missing required field `upstream`");
    // A protocol name that no agent could speak.
    let e = UserRoster::new()
        .file(
            "user/providers/myllm.yaml",
            "upstream: https://x.example\nserves:\n  v1.chat: /v1\n",
        )
        .error();
    assert!(
        e.message.contains("is not a protocol name"),
        "{}",
        e.message
    );
}

#[test]
fn an_opencode_provider_without_opencode_makes_no_agent() {
    let roster = UserRoster::new()
        .file(
            "etc/providers/acme.yaml",
            "upstream: https://api.acme.example\nopencode:\n  display_name: ACME\n  base_url: https://api.acme.example/v1\n  preferred_model: a\n  fallback_model: b\n  env_var_prefix: ACME\n  config_dir: .acme\n  auth_key_url: https://acme.example\nhelp:\n  label: acme\n",
        )
        .file("user/providers/acme.yaml", "opencode: null\n")
        .load()
        .unwrap();
    assert!(roster.get("acme").is_none());
    assert!(roster.provider("acme").is_some());
    assert!(
        roster
            .warnings()
            .iter()
            .any(|w| w.contains("provider `acme` has no `opencode:` section")),
        "{:?}",
        roster.warnings()
    );
}

#[test]
fn agents_list_all_shows_every_kind_of_0_5_0() {
    let roster = RosterLoader::bundled().load().unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        roster.listed(true).map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["frontend", "harness", "infra", "native", "tool"]
    );
    let plain: Vec<&str> = roster.listed(false).map(|a| a.kind.as_str()).collect();
    assert!(
        plain.iter().all(|k| *k == "native" || *k == "harness"),
        "{plain:?}"
    );
    // `runtime`, the v1 name, still loads.
    let roster = UserRoster::new()
        .file("user/agents/widget.yaml", "kind: runtime\n")
        .load()
        .unwrap();
    assert_eq!(roster.get("widget").unwrap().kind, AgentKind::Runtime);
}
