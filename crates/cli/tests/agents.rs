//! `agents list | show | set | schema` as users see them, and the errors for bad roster files.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use insta::assert_snapshot;
use terok_testkit::IsolatedEnv;
use terok_testkit::cli::{CliRun as Run, run_cli};

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

fn run_in(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_cli(env, BIN, args)
}

fn with_override(name: &str, text: &str) -> IsolatedEnv {
    let env = IsolatedEnv::new().unwrap();
    let dir = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
    env
}

fn error_for(name: &str, text: &str) -> String {
    let env = with_override(name, text);
    let r = run_in(&env, &["agents", "list"]);
    assert_eq!(r.code, 1, "stdout: {}", r.stdout);
    assert_eq!(r.stdout, "");
    r.stderr
}

#[test]
fn list_shows_agents_sorted_by_name() {
    let r = run_in(&IsolatedEnv::new().unwrap(), &["agents", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"
    NAME        LABEL                TYPE
    blablador   Helmholtz Blablador  harness
    claude      Claude               native
    codex       Codex                native
    copilot     GitHub Copilot       native
    kisski      KISSKI               harness
    opencode    OpenCode             harness
    openrouter  OpenRouter           harness
    pi          Pi                   harness
    vibe        Mistral Vibe         native
    ");
}

#[test]
fn list_all_adds_every_other_kind() {
    let r = run_in(&IsolatedEnv::new().unwrap(), &["agents", "list", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"
    NAME        LABEL                TYPE
    blablador   Helmholtz Blablador  harness
    caddy       Caddy                infra
    claude      Claude               native
    coderabbit  CodeRabbit           tool
    codex       Codex                native
    copilot     GitHub Copilot       native
    gh          GitHub CLI           tool
    glab        GitLab CLI           tool
    kisski      KISSKI               harness
    opencode    OpenCode             harness
    openrouter  OpenRouter           harness
    pi          Pi                   harness
    sonar       SonarCloud           tool
    toad        Toad                 frontend
    vibe        Mistral Vibe         native
    ");
    // The upstream spelling without `list` still works.
    let old = run_in(&IsolatedEnv::new().unwrap(), &["agents", "--all"]);
    assert_eq!(old.stdout, r.stdout);
}

#[test]
fn list_json_is_machine_readable() {
    let r = run_in(&IsolatedEnv::new().unwrap(), &["agents", "list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let compact: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}",
                r["name"].as_str().unwrap(),
                r["label"].as_str().unwrap(),
                r["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_snapshot!(compact.join("\n"), @"
    blablador|Helmholtz Blablador|harness
    claude|Claude|native
    codex|Codex|native
    copilot|GitHub Copilot|native
    kisski|KISSKI|harness
    opencode|OpenCode|harness
    openrouter|OpenRouter|harness
    pi|Pi|harness
    vibe|Mistral Vibe|native
    ");
}

#[test]
fn show_prints_the_merged_entry_and_its_files() {
    let env = with_override(
        "claude.yaml",
        "# my override\nlabel: Claude (work)\nheadless:\n  verbose_flag: null\n",
    );
    let r = run_in(&env, &["agents", "show", "claude"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @r#"
    # claude: merged from
    #   bundled claude.yaml
    #   [TMP]/home/.config/terok/agent/agents/claude.yaml
    kind: native
    label: Claude (work)
    binary: claude
    git_identity:
      name: Claude
      email: noreply@anthropic.com
    headless:
      prompt_flag: -p
      model_flag: --model
      max_turns_flag: --max-turns
      output_format_flags:
      - --output-format
      - stream-json
    session:
      supports_resume: true
      resume_flag: --resume
      continue_flag: --continue
      session_file: claude-session.txt
      supports_hook: true
    capabilities:
      agents_json: true
      add_dir: true
      log_format: claude-stream-json
    wrapper:
      refuse_subcommands:
      - setup-token
    auth:
      host_dir: _claude-config
      container_mount: /home/dev/.claude
      command:
      - claude
      modes:
      - oauth
      - api_key
      api_key_hint: Create an API key at https://console.anthropic.com/settings/keys
      banner_hint: Log in with your Claude account, then type /exit.
      post_capture_state:
        .claude.json:
          hasCompletedOnboarding: true
    vault:
      route_prefix: claude
      aliases:
      - anthropic
      upstream: https://api.anthropic.com
      auth_header: dynamic
      auth_prefix: ""
      credential_type: oauth
      credential_file: .credentials.json
      phantom_env:
        ANTHROPIC_API_KEY: true
      oauth_phantom_env:
        CLAUDE_CODE_OAUTH_TOKEN: true
      base_url_env: ANTHROPIC_BASE_URL
      socket_env: ANTHROPIC_UNIX_SOCKET
      oauth_extra_headers:
        anthropic-beta: oauth-2025-04-20
      oauth_refresh:
        token_url: https://platform.claude.com/v1/oauth/token
        client_id: 9d1c250a-e61b-44d9-88ed-5944d1962f5e
        scope: >-
          user:profile user:inference user:sessions:claude_code user:mcp_servers
          user:file_upload
    acp:
      command:
      - claude-agent-acp
      env:
        CLAUDE_CODE_EXECUTABLE: /usr/local/bin/terok-claude-for-acp
    install:
      run_as_root: |
        # Managed settings live here; the init script writes bypassPermissions when unrestricted.
        RUN install -d -o dev -g dev -m 0755 /etc/claude-code \
         && install -m 0755 /tmp/terok-scripts/terok-claude-for-acp /usr/local/bin/terok-claude-for-acp
      run_as_dev: |
        RUN npm install -g @anthropic-ai/claude-code@latest \
         && rm -rf "$(npm root -g)"/@anthropic-ai/claude-code/node_modules/@anthropic-ai/claude-code-linux-*-musl \
         && claude --version \
         && if [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 22 ]; then \
              npm install -g @agentclientprotocol/claude-agent-acp@latest \
              && rm -rf "$(npm root -g)"/@agentclientprotocol/claude-agent-acp/node_modules/@anthropic-ai/claude-agent-sdk-*-* \
              && command -v claude-agent-acp; \
            else echo "claude: no ACP adapter here, it needs Node.js 22 (this base has $(node --version))"; fi
    help:
      label: claude      Claude Code (Anthropic)
      section: agent
    "#);
}

#[test]
fn show_of_an_unknown_name_suggests_one() {
    let r = run_in(&IsolatedEnv::new().unwrap(), &["agents", "show", "claud"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"  x unknown roster entry `claud` (did you mean `claude`?). Available: blablador, caddy, claude, coderabbit, codex, copilot, gh, glab, kisski, opencode, openrouter, pi, sonar, toad, vibe");
}

#[test]
fn a_new_user_agent_is_listed() {
    let env = with_override("myagent.yaml", "kind: native\nlabel: My Agent\n");
    let r = run_in(&env, &["agents", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("\nmyagent     My Agent             native\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_newer_roster_version_is_a_warning() {
    let env = with_override("claude.yaml", "roster_version: 4\nlabel: Claude 4\n");
    let r = run_in(&env, &["agents", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Claude 4"));
    assert_snapshot!(r.stderr, @"warning: [TMP]/home/.config/terok/agent/agents/claude.yaml: roster_version 4 is newer than this terok-executor understands (3); loading it as version 3");
}

#[test]
fn error_unknown_top_level_key() {
    assert_snapshot!(error_for("claude.yaml", "label: Claude\nlable: typo\n"), @r"
     x [TMP]/home/.config/terok/agent/agents/claude.yaml:2:1: lable: unknown field `lable`, expected one of roster_version, kind, label, binary, git_identity, headless, auto_approve, session, capabilities, wrapper, acp, opencode, auth, vault, protocol, provider, sidecar, install, help, mounts, web_ingress
      ,-[[TMP]/home/.config/terok/agent/agents/claude.yaml:2:1]
    1 | label: Claude
    2 | lable: typo
      : ^^|^^
      :   `-- unknown field `lable`
      `----
     help: did you mean `label`? Allowed keys here: roster_version, kind, label, binary, git_identity, headless, auto_approve, session, capabilities, wrapper, acp, opencode, auth, vault, protocol, provider, sidecar, install, help, mounts, web_ingress
    ");
}

#[test]
fn error_unknown_nested_key() {
    assert_snapshot!(error_for("claude.yaml", "vault:\n  upstream: https://proxy.example\n  upstreem: https://typo\n"), @"
     x [TMP]/home/.config/terok/agent/agents/claude.yaml:3:3: vault.upstreem: unknown field `upstreem`, expected one of route_prefix, aliases, label, upstream, path_upstreams, oauth_extra_headers, auth_header, auth_prefix, credential_type, credential_file, phantom_env, oauth_phantom_env, base_url_env, socket_env, shared_config_patch, oauth_refresh, deny, redirect_hosts, oauth_credential_headers, serves
      ,-[[TMP]/home/.config/terok/agent/agents/claude.yaml:3:3]
    2 |   upstream: https://proxy.example
    3 |   upstreem: https://typo
      :   ^^^^|^^^
      :       `-- unknown field `upstreem`
      `----
     help: did you mean `upstream`? Allowed keys here: route_prefix, aliases, label, upstream, path_upstreams, oauth_extra_headers, auth_header, auth_prefix, credential_type, credential_file, phantom_env, oauth_phantom_env, base_url_env, socket_env, shared_config_patch, oauth_refresh, deny, redirect_hosts, oauth_credential_headers, serves
    ");
}

#[test]
fn error_wrong_type() {
    assert_snapshot!(error_for("codex.yaml", "session:\n  supports_resume: sometimes\n"), @"
     x [TMP]/home/.config/terok/agent/agents/codex.yaml:2:20: session.supports_resume: expected true or false, found `sometimes`
      ,-[[TMP]/home/.config/terok/agent/agents/codex.yaml:2:20]
    1 | session:
    2 |   supports_resume: sometimes
      :                    ^^^^|^^^^
      :                        `-- expected true or false
      `----
    ");
}

#[test]
fn error_bad_enum_value() {
    assert_snapshot!(error_for("codex.yaml", "kind: agent\n"), @"
     x [TMP]/home/.config/terok/agent/agents/codex.yaml:1:7: kind: unknown variant `agent`, expected one of native, bridge, harness, opencode, tool, frontend, infra, runtime
      ,-[[TMP]/home/.config/terok/agent/agents/codex.yaml:1:7]
    1 | kind: agent
      :       ^^|^^
      :         `-- unknown variant `agent`
      `----
     help: allowed values here: native, bridge, harness, opencode, tool, frontend, infra, runtime
    ");
}

#[test]
fn error_host_dir_with_parent_segments() {
    assert_snapshot!(error_for("claude.yaml", "auth:\n  host_dir: ../../etc\n"), @"
     x [TMP]/home/.config/terok/agent/agents/claude.yaml:2:13: auth.host_dir: host_dir `../../etc` must be a single directory name under the mounts directory
      ,-[[TMP]/home/.config/terok/agent/agents/claude.yaml:2:13]
    1 | auth:
    2 |   host_dir: ../../etc
      :             ^^^^|^^^^
      :                 `-- host_dir `../../etc` must be a single directory name under the mounts directory
      `----
     help: no `/`, no `..`, not absolute: for example `_claude-config`
    ");
}

#[test]
fn error_duplicate_route_prefix() {
    assert_snapshot!(
        error_for("mine.yaml", "kind: native\nvault:\n  route_prefix: claude\n  upstream: https://llm.example\n"),
        @"
     x [TMP]/home/.config/terok/agent/agents/mine.yaml:3:17: vault.route_prefix: duplicate route prefix `claude`: `claude` already uses it
      ,-[[TMP]/home/.config/terok/agent/agents/mine.yaml:3:17]
    2 | vault:
    3 |   route_prefix: claude
      :                 ^^^|^^
      :                    `-- duplicate route prefix `claude`: `claude` already uses it
    4 |   upstream: https://llm.example
      `----
     help: every vault route needs its own route_prefix
    "
    );
}

#[test]
fn error_yaml_syntax() {
    assert_snapshot!(error_for("claude.yaml", "label: \"unterminated\nkind: native\n"), @r#"
     x [TMP]/home/.config/terok/agent/agents/claude.yaml:1:8: unclosed quote
      ,-[[TMP]/home/.config/terok/agent/agents/claude.yaml:1:8]
    1 | label: "unterminated
      :        ^^^^^^|^^^^^^
      :              `-- unclosed quote
    2 | kind: native
      `----
    "#);
}

#[test]
fn error_removed_socket_path_key() {
    assert_snapshot!(error_for("claude.yaml", "vault:\n  socket_path: /tmp/x.sock\n"), @"
     x [TMP]/home/.config/terok/agent/agents/claude.yaml:2:16: vault.socket_path: `socket_path` is no longer configurable: every container gets its own vault socket
      ,-[[TMP]/home/.config/terok/agent/agents/claude.yaml:2:16]
    1 | vault:
    2 |   socket_path: /tmp/x.sock
      :                ^^^^^|^^^^^
      :                     `-- `socket_path` is no longer configurable: every container gets its own vault socket
      `----
     help: remove this key
    ");
}

#[test]
fn set_writes_image_agents_and_keeps_comments() {
    let env = IsolatedEnv::new().unwrap();
    let config = env
        .write_user_config("# Team settings\nimage:\n  # our mirror of Ubuntu\n  base_image: localhost/ubuntu:24.04  # pinned\n  agents: all\n\n# vault port\nvault:\n  port: 18777\n")
        .unwrap();
    let r = run_in(&env, &["agents", "set", "Claude, codex"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"
    image.agents = claude,codex (written to [TMP]/home/.config/terok/config.yml)
    L1 images will contain: claude, codex
    ");
    assert_snapshot!(std::fs::read_to_string(&config).unwrap(), @"
    # Team settings
    image:
      # our mirror of Ubuntu
      base_image: localhost/ubuntu:24.04  # pinned
      agents: claude,codex

    # vault port
    vault:
      port: 18777
    ");
    let shown = run_in(&env, &["agents", "set"]);
    assert_snapshot!(shown.stdout, @"
    image.agents: claude,codex
    L1 images contain: claude, codex
    Change it with: terok-executor agents set <all | name,name | all,-name>
    ");
}

#[test]
fn set_rejects_unknown_names_and_writes_nothing() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_in(&env, &["agents", "set", "claude,nope"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x unknown agent in selection `claude,nope`: `nope`
    help: available: blablador, caddy, claude, codex, copilot, gh, glab, kisski, opencode, openrouter, pi, sonar, toad, vibe
    ");
    assert!(!env.user_config_dir().join("config.yml").exists());
}

#[test]
fn schema_is_json_schema_with_strict_sections() {
    let r = run_in(&IsolatedEnv::new().unwrap(), &["agents", "schema"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let schema: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(schema["title"], "terok agent roster entry");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["$defs"]["VaultFile"]["additionalProperties"], false);
    assert!(
        schema["$defs"]["VaultFile"]["properties"]
            .get("socket_path")
            .is_none()
    );
}
