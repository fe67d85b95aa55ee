//! The bundled roster, user overrides layered over it, projections, selections, and the
//! headless command lines of the bundled agents.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use insta::assert_snapshot;
use terok_roster::model::{AuthHeader, AuthMode, CredentialType};
use terok_roster::{
    AgentKind, HeadlessOptions, Roster, RosterError, RosterLoader, headless_command,
};

fn bundled() -> Roster {
    RosterLoader::bundled().load().unwrap()
}

struct Overrides {
    dir: tempfile::TempDir,
}

impl Overrides {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn file(self, name: &str, text: &str) -> Self {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        self
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn load(&self) -> Result<Roster, RosterError> {
        RosterLoader::bundled()
            .with_override_dir(self.path())
            .load()
    }
}

#[test]
fn every_bundled_entry_loads_with_the_python_kinds_and_labels() {
    let roster = bundled();
    assert!(roster.warnings().is_empty(), "{:?}", roster.warnings());
    let listing: Vec<String> = roster
        .entries()
        .map(|a| format!("{} {} {}", a.name, a.kind.as_str(), a.label))
        .collect();
    assert_eq!(
        listing,
        [
            "blablador harness Helmholtz Blablador",
            "caddy infra Caddy",
            "claude native Claude",
            "coderabbit tool CodeRabbit",
            "codex native Codex",
            "copilot native GitHub Copilot",
            "gh tool GitHub CLI",
            "glab tool GitLab CLI",
            "kisski harness KISSKI",
            "opencode harness OpenCode",
            "openrouter harness OpenRouter",
            "pi harness Pi",
            "sonar tool SonarCloud",
            "toad frontend Toad",
            "vibe native Mistral Vibe",
        ]
    );
}

#[test]
fn claude_projects_into_a_provider_with_its_vault_route() {
    let roster = bundled();
    let claude = roster.agent("claude").unwrap();
    assert_eq!(claude.provider.as_deref(), Some("claude"));
    let p = roster.provider_for(claude).unwrap();
    assert_eq!(p.route_prefix, "claude");
    assert_eq!(p.upstream, "https://api.anthropic.com");
    assert_eq!(p.auth_header, AuthHeader::Dynamic);
    assert_eq!(p.auth_prefix, "");
    assert_eq!(p.credential_type, CredentialType::Oauth);
    assert_eq!(p.credential_file.as_deref(), Some(".credentials.json"));
    assert_eq!(p.phantom_env, ["ANTHROPIC_API_KEY"]);
    assert_eq!(p.oauth_phantom_env, ["CLAUDE_CODE_OAUTH_TOKEN"]);
    assert_eq!(p.base_url_env.as_deref(), Some("ANTHROPIC_BASE_URL"));
    assert_eq!(p.socket_env.as_deref(), Some("ANTHROPIC_UNIX_SOCKET"));
    assert_eq!(p.oauth_extra_headers["anthropic-beta"], "oauth-2025-04-20");
    assert_eq!(
        p.oauth_refresh.as_ref().unwrap().client_id,
        "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
    );
    assert_eq!(claude.git_identity.email, "noreply@anthropic.com");
    assert_eq!(claude.refuse_subcommands, ["setup-token"]);
    assert!(claude.capabilities.agents_json && claude.session.supports_hook);
}

#[test]
fn every_provider_has_a_unique_route_and_https_upstream() {
    let roster = bundled();
    let routes: Vec<(String, String)> = roster
        .providers()
        .map(|p| (p.name.clone(), p.route_prefix.clone()))
        .collect();
    assert_eq!(
        routes,
        [
            ("blablador", "blablador"),
            ("claude", "claude"),
            ("coderabbit", "coderabbit"),
            ("codex", "codex"),
            ("gh", "gh"),
            ("glab", "gl"),
            ("kisski", "kisski"),
            ("openrouter", "openrouter"),
            ("sonar", "sonar"),
            ("vibe", "vibe"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert!(
        roster
            .providers()
            .all(|p| p.upstream.starts_with("https://"))
    );
    let codex = roster.provider("codex").unwrap();
    assert_eq!(codex.path_upstreams["/backend-api/"], "https://chatgpt.com");
    assert_eq!(
        codex.shared_config_patch.as_ref().unwrap().file,
        "config.toml"
    );
    let glab = roster.provider("glab").unwrap();
    assert_eq!(glab.auth_header, AuthHeader::Named("PRIVATE-TOKEN".into()));
    assert_eq!(roster.provider("gh").unwrap().auth_prefix, "token ");
}

#[test]
fn auth_providers_include_ones_derived_from_opencode_sections() {
    let roster = bundled();
    let names: Vec<(String, bool)> = roster
        .auth_providers()
        .into_iter()
        .map(|p| (p.name, p.derived))
        .collect();
    assert_eq!(
        names,
        [
            ("blablador", true),
            ("claude", false),
            ("coderabbit", false),
            ("codex", false),
            ("gh", false),
            ("glab", false),
            ("kisski", true),
            ("openrouter", true),
            ("sonar", false),
            ("vibe", false),
        ]
        .map(|(a, b)| (a.to_owned(), b))
    );
    let kisski = roster.auth_provider("kisski").unwrap();
    assert_eq!(kisski.spec.host_dir, "_kisski-config");
    assert_eq!(kisski.spec.container_mount, "/home/dev/.kisski");
    assert_eq!(kisski.spec.modes, [AuthMode::ApiKey]);
    assert!(
        kisski
            .spec
            .api_key_hint
            .unwrap()
            .starts_with("Get your API key at: https://")
    );
    let claude = roster.auth_provider("claude").unwrap();
    assert_eq!(claude.spec.modes, [AuthMode::Oauth, AuthMode::ApiKey]);
    assert_eq!(
        claude.spec.post_capture_state[".claude.json"]["hasCompletedOnboarding"],
        true
    );
    let err = roster.auth_provider("claud").unwrap_err().to_string();
    assert!(
        err.starts_with(
            "unknown auth provider `claud` (did you mean `claude`?). Available: blablador, claude"
        ),
        "{err}"
    );
}

#[test]
fn shared_mounts_carry_credential_overlays_and_are_deduplicated() {
    let roster = bundled();
    let mounts: Vec<String> = roster
        .shared_mounts()
        .iter()
        .map(|m| {
            format!(
                "{} -> {} [{}]{}",
                m.host_dir,
                m.container_path,
                m.label,
                m.credential_file
                    .as_ref()
                    .map(|f| format!(" ro:{f}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_snapshot!(mounts.join("\n"), @"
    _blablador-config -> /home/dev/.blablador [Helmholtz Blablador config] ro:config.json
    _claude-config -> /home/dev/.claude [Claude config] ro:.credentials.json
    _coderabbit-config -> /home/dev/.coderabbit [CodeRabbit config]
    _codex-config -> /home/dev/.codex [Codex config] ro:auth.json
    _gh-config -> /home/dev/.config/gh [GitHub CLI config] ro:hosts.yml
    _glab-config -> /home/dev/.config/glab-cli [GitLab CLI config] ro:config.yml
    _kisski-config -> /home/dev/.kisski [KISSKI config] ro:config.json
    _opencode-config -> /home/dev/.config/opencode [OpenCode config]
    _opencode-data -> /home/dev/.local/share/opencode [OpenCode data]
    _opencode-state -> /home/dev/.local/state [OpenCode state]
    _openrouter-config -> /home/dev/.openrouter [OpenRouter config] ro:config.json
    _pi-config -> /home/dev/.pi [Pi config]
    _sonar-config -> /home/dev/.sonar [SonarCloud config]
    _toad-config -> /home/dev/.config/toad [Toad config]
    _vibe-config -> /home/dev/.vibe [Mistral Vibe config] ro:.env
    ");
}

#[test]
fn sidecars_install_specs_help_and_web_ingress() {
    let roster = bundled();
    let (tool, sidecar) = roster.sidecar("coderabbit").unwrap();
    assert_eq!(tool.kind, AgentKind::Tool);
    assert_eq!(sidecar.env_map["CODERABBIT_API_KEY"], "key");
    assert!(roster.sidecar("sonar").is_err());
    let installable: Vec<&str> = roster.installable().map(|(a, _)| a.name.as_str()).collect();
    assert!(!installable.contains(&"coderabbit"));
    assert_eq!(
        roster
            .get("toad")
            .unwrap()
            .install
            .as_ref()
            .unwrap()
            .depends_on,
        ["caddy"]
    );
    let web: Vec<&str> = roster.web_ingress().map(|a| a.name.as_str()).collect();
    assert_eq!(web, ["toad"]);
    let (agents, tools) = roster.help_lines(&["claude".into(), "gh".into(), "codex".into()]);
    assert_eq!(agents.len(), 2);
    assert!(agents[0].starts_with("claude"));
    assert!(tools[0].starts_with("gh"));
    let env = roster.all_auto_approve_env();
    assert_eq!(env["VIBE_BYPASS_TOOL_PERMISSIONS"], "true");
    assert_eq!(env["COPILOT_ALLOW_ALL"], "true");
    assert_eq!(env["OPENCODE_PERMISSION"], r#"{"*":"allow"}"#);
    let oc: Vec<String> = roster
        .opencode_env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(
        oc.contains(&"TEROK_OC_KISSKI_BASE_URL=https://chat-ai.academiccloud.de/v1".to_owned()),
        "{oc:?}"
    );
    assert_eq!(oc.len(), 18);
}

#[test]
fn selections_expand_dependencies_and_honour_exclusions() {
    let roster = bundled();
    assert_eq!(roster.resolve_selection("claude").unwrap(), ["claude"]);
    assert_eq!(
        roster.resolve_selection("kisski,claude").unwrap(),
        ["claude", "kisski", "opencode"]
    );
    assert_eq!(roster.resolve_selection("toad").unwrap(), ["caddy", "toad"]);
    let all = roster.resolve_selection("all").unwrap();
    assert_eq!(
        all.join(","),
        "blablador,caddy,claude,codex,copilot,gh,glab,kisski,opencode,openrouter,pi,sonar,toad,vibe"
    );
    let without_vibe = roster.resolve_selection("all,-vibe").unwrap();
    assert!(!without_vibe.contains(&"vibe".to_owned()) && without_vibe.len() == all.len() - 1);
    assert_eq!(roster.resolve_selection("-vibe").unwrap(), without_vibe);
    assert_eq!(roster.resolve_selection(" ").unwrap(), all);
    let err = roster
        .resolve_selection("claude,nope")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "unknown agent in selection `claude,nope`: `nope`");
    let err = roster
        .resolve_selection("coderabbit")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "`coderabbit` cannot be installed into an image (no install section)"
    );
    let err = roster
        .resolve_selection("kisski,-opencode")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "cannot exclude `opencode`: `kisski` depends on it");
}

fn headless(roster: &Roster, name: &str, model: Option<&str>, turns: Option<u32>) -> String {
    let options = HeadlessOptions {
        timeout_secs: 1800,
        model: model.map(str::to_owned),
        max_turns: turns,
    };
    headless_command(roster.agent(name).unwrap(), &options).to_shell()
}

#[test]
fn headless_commands_of_the_bundled_agents() {
    let roster = bundled();
    let mut out = String::new();
    for name in [
        "claude",
        "codex",
        "vibe",
        "copilot",
        "opencode",
        "blablador",
        "pi",
    ] {
        out.push_str(&format!(
            "{name}:\n  {}\n",
            headless(&roster, name, None, None)
        ));
        out.push_str(&format!(
            "  {}\n",
            headless(&roster, name, Some("big model"), Some(7))
        ));
    }
    assert_snapshot!(out, @r#"
    claude:
      claude --terok-timeout 1800 --output-format stream-json --verbose -p "$(cat /home/dev/.terok/prompt.txt)"
      claude --terok-timeout 1800 --model 'big model' --max-turns 7 --output-format stream-json --verbose -p "$(cat /home/dev/.terok/prompt.txt)"
    codex:
      codex --terok-timeout 1800 exec "$(cat /home/dev/.terok/prompt.txt)"
      codex --terok-timeout 1800 exec --model 'big model' "$(cat /home/dev/.terok/prompt.txt)"
    vibe:
      vibe --terok-timeout 1800 --prompt "$(cat /home/dev/.terok/prompt.txt)"
      vibe --terok-timeout 1800 --max-turns 7 --prompt "$(cat /home/dev/.terok/prompt.txt)"
    copilot:
      copilot --terok-timeout 1800 -p "$(cat /home/dev/.terok/prompt.txt)"
      copilot --terok-timeout 1800 --model 'big model' -p "$(cat /home/dev/.terok/prompt.txt)"
    opencode:
      opencode --terok-timeout 1800 run "$(cat /home/dev/.terok/prompt.txt)"
      opencode --terok-timeout 1800 run --model 'big model' "$(cat /home/dev/.terok/prompt.txt)"
    blablador:
      blablador --terok-timeout 1800 run "$(cat /home/dev/.terok/prompt.txt)"
      blablador --terok-timeout 1800 run "$(cat /home/dev/.terok/prompt.txt)"
    pi:
      pi --terok-timeout 1800 --mode json "$(cat /home/dev/.terok/prompt.txt)"
      pi --terok-timeout 1800 --model 'big model' --mode json "$(cat /home/dev/.terok/prompt.txt)"
    "#);
}

#[test]
fn unsupported_model_and_turns_become_warnings_and_a_prompt_instruction() {
    let roster = bundled();
    let overrides = terok_roster::RunOverrides {
        model: Some("x".into()),
        max_turns: Some(3),
        timeout_secs: None,
        subagents: true,
    };
    let s = terok_roster::apply_provider_config(
        roster.agent("blablador").unwrap(),
        &overrides,
        &terok_roster::AgentSettings::default(),
    );
    assert_eq!(s.model, None);
    assert_eq!(s.max_turns, None);
    assert_eq!(s.timeout_secs, 1800);
    assert_eq!(
        s.prompt_prefix,
        ["Important: complete this task in no more than 3 steps."]
    );
    assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
    let config: terok_roster::AgentSettings = serde_json::from_value(
        serde_json::json!({"model": {"claude": "opus", "_default": "sonnet"}, "timeout": 60}),
    )
    .unwrap();
    let s = terok_roster::apply_provider_config(
        roster.agent("claude").unwrap(),
        &terok_roster::RunOverrides::default(),
        &config,
    );
    assert_eq!((s.model.as_deref(), s.timeout_secs), (Some("opus"), 60));
    assert!(s.warnings.is_empty());
}

// ---- layering -------------------------------------------------------------------------------

#[test]
fn an_override_of_one_field_keeps_the_rest() {
    let o = Overrides::new().file("claude.yaml", "label: My Claude\n");
    let roster = o.load().unwrap();
    let claude = roster.agent("claude").unwrap();
    assert_eq!(claude.label, "My Claude");
    assert_eq!(claude.binary, "claude");
    assert_eq!(
        roster.provider("claude").unwrap().upstream,
        "https://api.anthropic.com"
    );
    let origins: Vec<String> = roster
        .origins("claude")
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(origins[0], "bundled claude.yaml");
    assert_eq!(PathBuf::from(&origins[1]), o.path().join("claude.yaml"));
}

#[test]
fn null_deletes_a_key() {
    let o = Overrides::new().file(
        "claude.yaml",
        "vault:\n  oauth_extra_headers: null\nhelp: null\n",
    );
    let roster = o.load().unwrap();
    assert!(
        roster
            .provider("claude")
            .unwrap()
            .oauth_extra_headers
            .is_empty()
    );
    assert!(roster.agent("claude").unwrap().help.is_none());
}

#[test]
fn inherit_in_a_list_splices_the_bundled_items() {
    let o = Overrides::new().file(
        "opencode.yaml",
        "mounts:\n  - host_dir: _opencode-extra\n    container_path: /home/dev/.extra\n  - _inherit\n",
    );
    let roster = o.load().unwrap();
    let dirs: Vec<&str> = roster
        .agent("opencode")
        .unwrap()
        .mounts
        .iter()
        .map(|m| m.host_dir.as_str())
        .collect();
    assert_eq!(
        dirs,
        [
            "_opencode-extra",
            "_opencode-config",
            "_opencode-data",
            "_opencode-state"
        ]
    );
    let o = Overrides::new().file(
        "codex.yaml",
        "auth:\n  modes: [_inherit]\nwrapper:\n  refuse_subcommands: [_inherit, exec]\n",
    );
    let roster = o.load().unwrap();
    let codex = roster.agent("codex").unwrap();
    assert_eq!(
        codex.auth.as_ref().unwrap().modes,
        [AuthMode::Oauth, AuthMode::ApiKey]
    );
    assert_eq!(codex.refuse_subcommands, ["login", "logout", "exec"]);
}

#[test]
fn a_user_only_agent_appears() {
    let o = Overrides::new().file(
        "myagent.yaml",
        "kind: native\nlabel: My Agent\nheadless:\n  prompt_flag: --prompt\ninstall:\n  run_as_dev: RUN true\n",
    );
    let roster = o.load().unwrap();
    let names: Vec<&str> = roster.listed(false).map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"myagent"), "{names:?}");
    assert_eq!(
        headless(&roster, "myagent", None, None),
        r#"myagent --terok-timeout 1800 --prompt "$(cat /home/dev/.terok/prompt.txt)""#
    );
    assert!(roster.resolve_selection("myagent").is_ok());
}

#[test]
fn a_newer_roster_version_warns_and_loads() {
    let o = Overrides::new().file("claude.yaml", "roster_version: 4\nlabel: Four\n");
    let roster = o.load().unwrap();
    assert_eq!(roster.agent("claude").unwrap().label, "Four");
    assert_eq!(roster.warnings().len(), 1);
    assert!(roster.warnings()[0].ends_with("roster_version 4 is newer than this terok-executor understands (3); loading it as version 3"), "{:?}", roster.warnings());
    let o = Overrides::new().file("claude.yaml", "roster_version: one\nlabel: Two\n");
    let roster = o.load().unwrap();
    assert!(
        roster.warnings()[0].contains("`one` is not an integer"),
        "{:?}",
        roster.warnings()
    );
}

#[test]
fn a_python_shaped_file_with_kind_bridge_loads() {
    let o = Overrides::new().file(
        "oldbridge.yaml",
        "kind: bridge\nlabel: Old Bridge\nheadless:\n  subcommand: run\n  prompt_flag: \"\"\nopencode:\n  display_name: Old\n  base_url: https://old.example/v1\n  preferred_model: a\n  fallback_model: b\n  env_var_prefix: OLD\n  config_dir: .old\n  auth_key_url: https://old.example/keys\n",
    )
    .file("oldopencode.yaml", "kind: opencode\n");
    let roster = o.load().unwrap();
    assert_eq!(roster.agent("oldbridge").unwrap().kind, AgentKind::Harness);
    assert_eq!(
        roster.agent("oldopencode").unwrap().kind,
        AgentKind::Harness
    );
    assert!(roster.auth_provider("oldbridge").unwrap().derived);
}

#[test]
fn empty_files_and_yml_files_are_skipped() {
    let o = Overrides::new()
        .file("claude.yaml", "roster_version: 1\n")
        .file("codex.yml", "label: X\n");
    let roster = o.load().unwrap();
    assert_eq!(roster.agent("claude").unwrap().label, "Claude");
    assert_eq!(roster.agent("codex").unwrap().label, "Codex");
    assert_eq!(roster.warnings().len(), 1);
    assert!(roster.warnings()[0].ends_with("codex.yml: ignored; roster files must end in .yaml"));
}

fn error_of(file: &str, text: &str) -> terok_core::yaml::YamlError {
    match Overrides::new().file(file, text).load() {
        Err(RosterError::Invalid(e)) => e,
        other => panic!("expected one located error, got {other:?}"),
    }
}

#[test]
fn errors_point_at_file_line_column_and_field() {
    let e = error_of("claude.yaml", "label: x\nlable: y\n");
    assert_eq!(
        (e.line, e.column, e.field_path.as_deref()),
        (Some(2), Some(1), Some("lable"))
    );
    let e = error_of(
        "claude.yaml",
        "vault:\n  upstream: https://x\n  upstreem: y\n",
    );
    assert_eq!(
        (e.line, e.column, e.field_path.as_deref()),
        (Some(3), Some(3), Some("vault.upstreem"))
    );
    let e = error_of(
        "claude.yaml",
        "mounts:\n  - host_dir: ../etc\n    container_path: /x\n",
    );
    assert_eq!(
        (e.line, e.column, e.field_path.as_deref()),
        (Some(2), Some(15), Some("mounts[0].host_dir"))
    );
    assert!(e.file.ends_with("claude.yaml"));
    let e = error_of(
        "mine.yaml",
        "vault:\n  route_prefix: claude\n  upstream: https://example.com\n",
    );
    assert!(
        e.message.starts_with("duplicate route prefix `claude`"),
        "{}",
        e.message
    );
    assert_eq!((e.line, e.column), (Some(2), Some(17)));
    let e = error_of("mine.yaml", "vault:\n  route_prefix: mine\n");
    assert_eq!(e.message, "missing required field `upstream` in `vault`");
    assert_eq!((e.line, e.column), (Some(1), Some(1)));
}

#[test]
fn a_file_that_does_not_parse_is_an_error_not_a_skip() {
    let e = error_of("claude.yaml", "label: [unclosed\n");
    assert!(e.file.ends_with("claude.yaml"));
    assert!(e.line.is_some());
}

#[test]
fn min_python_is_a_quoted_major_minor_version() {
    let roster = bundled();
    let vibe = roster.get("vibe").unwrap().install.as_ref().unwrap();
    assert_eq!(
        vibe.min_python.map(|v| v.to_string()).as_deref(),
        Some("3.12")
    );
    let e = error_of("vibe.yaml", "install:\n  min_python: \"3\"\n");
    assert_eq!(
        (e.line, e.column, e.field_path.as_deref()),
        (Some(2), Some(15), Some("install.min_python"))
    );
    assert_eq!(e.message, "`3` is not a Python version like \"3.12\"");
    // Unquoted, YAML reads 3.10 as the number 3.1: the file must say what it means.
    let e = error_of("vibe.yaml", "install:\n  min_python: 3.10\n");
    assert_eq!(
        (e.line, e.field_path.as_deref()),
        (Some(2), Some("install.min_python"))
    );
    assert!(e.message.contains("expected a string"), "{}", e.message);
}
