//! The assembled environment and mounts of claude and codex tasks (fixed task id, paths
//! filtered), the rendered wrapper file, and the wrapper functions run by a real bash.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use insta::assert_snapshot;
use terok_container_env::{
    AgentConfigSpec, ContainerEnv, ContainerEnvSpec, VaultTransport, VaultWiring, Workspace,
    assemble_container_env, prepare_agent_config, render_wrappers,
};
use terok_roster::{Roster, RosterLoader};

const TASK: &str = "0123456789ab";
const CLAUDE_TOKEN: &str = "terok-p-11111111111111111111111111111111";
const CODEX_TOKEN: &str = "terok-p-22222222222222222222222222222222";

fn roster() -> Roster {
    RosterLoader::bundled().load().unwrap()
}

fn spec(root: &Path, agent: &str) -> ContainerEnvSpec {
    let mut spec = ContainerEnvSpec::new(
        TASK,
        agent,
        root.join("state/executor/tasks").join(TASK),
        root.join("state/sandbox-live/mounts"),
    );
    spec.workspace = Workspace::Host(root.join("project"));
    spec.timezone = Some("Europe/Prague".into());
    spec.vault = Some(VaultWiring {
        transport: VaultTransport::Socket {
            host_socket_dir: root.join("run/vault/c/terok-executor-0123456789ab"),
            container_socket_dir: "/run/terok/vault".into(),
            socket_name: "vault.sock".into(),
            loopback_port: 9419,
        },
        tokens: BTreeMap::from([
            ("claude".to_owned(), CLAUDE_TOKEN.to_owned()),
            ("codex".to_owned(), CODEX_TOKEN.to_owned()),
        ]),
        kinds: BTreeMap::from([
            ("claude".to_owned(), "api_key".to_owned()),
            ("codex".to_owned(), "oauth".to_owned()),
        ]),
    });
    spec
}

fn render(assembled: &ContainerEnv, root: &Path) -> String {
    let root = root.to_string_lossy();
    let mut out = String::from("env:\n");
    for (k, v) in &assembled.env {
        out.push_str(&format!("  {k}={v}\n"));
    }
    out.push_str("volumes:\n");
    for v in &assembled.volumes {
        out.push_str(&format!(
            "  {} -> {} {:?}{}\n",
            v.host.display(),
            v.container,
            v.relabel,
            if v.read_only { " ro" } else { "" }
        ));
    }
    out.replace(root.as_ref(), "[TMP]")
}

#[test]
fn claude_env_and_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let assembled = assemble_container_env(&roster(), &spec(dir.path(), "claude")).unwrap();
    assert_snapshot!(render(&assembled, dir.path()), @r#"
    env:
      TASK_ID=0123456789ab
      REPO_ROOT=/workspace
      GIT_RESET_MODE=none
      TEROK_CONTAINER_PROTOCOL=1
      CLAUDE_CONFIG_DIR=/home/dev/.claude
      TZ=Europe/Prague
      TEROK_OC_BLABLADOR_BASE_URL=https://api.helmholtz-blablador.fz-juelich.de/v1
      TEROK_OC_BLABLADOR_PREFERRED_MODEL=alias-huge
      TEROK_OC_BLABLADOR_FALLBACK_MODEL=alias-code
      TEROK_OC_BLABLADOR_DISPLAY_NAME=Helmholtz Blablador
      TEROK_OC_BLABLADOR_ENV_VAR_PREFIX=BLABLADOR
      TEROK_OC_BLABLADOR_CONFIG_DIR=.blablador
      TEROK_OC_KISSKI_BASE_URL=https://chat-ai.academiccloud.de/v1
      TEROK_OC_KISSKI_PREFERRED_MODEL=devstral-2-123b-instruct-2512
      TEROK_OC_KISSKI_FALLBACK_MODEL=mistral-large-3-675b-instruct-2512
      TEROK_OC_KISSKI_DISPLAY_NAME=KISSKI
      TEROK_OC_KISSKI_ENV_VAR_PREFIX=KISSKI
      TEROK_OC_KISSKI_CONFIG_DIR=.kisski
      TEROK_OC_OPENROUTER_BASE_URL=https://openrouter.ai/api/v1
      TEROK_OC_OPENROUTER_PREFERRED_MODEL=anthropic/claude-sonnet-4.5
      TEROK_OC_OPENROUTER_FALLBACK_MODEL=anthropic/claude-3.5-sonnet
      TEROK_OC_OPENROUTER_DISPLAY_NAME=OpenRouter
      TEROK_OC_OPENROUTER_ENV_VAR_PREFIX=OPENROUTER
      TEROK_OC_OPENROUTER_CONFIG_DIR=.openrouter
      GIT_AUTHOR_NAME=Claude
      GIT_AUTHOR_EMAIL=noreply@anthropic.com
      GIT_COMMITTER_NAME=Claude
      GIT_COMMITTER_EMAIL=noreply@anthropic.com
      TEROK_GIT_AUTHORSHIP=agent
      HUMAN_GIT_NAME=Nobody
      HUMAN_GIT_EMAIL=nobody@localhost
      ANTHROPIC_API_KEY=terok-p-11111111111111111111111111111111
      ANTHROPIC_UNIX_SOCKET=/run/terok/vault/vault.sock
      ANTHROPIC_BASE_URL=http://localhost:9419
      TEROK_VAULT_LOOPBACK_PORT=9419
      TEROK_UNRESTRICTED=1
      COPILOT_ALLOW_ALL=true
      OPENCODE_PERMISSION={"*":"allow"}
      VIBE_BYPASS_TOOL_PERMISSIONS=true
    volumes:
      [TMP]/project -> /workspace None
      [TMP]/state/executor/tasks/0123456789ab/config/_blablador-config -> /home/dev/.blablador Private
      [TMP]/state/executor/tasks/0123456789ab/config/_claude-config -> /home/dev/.claude Private
      [TMP]/state/executor/tasks/0123456789ab/config/_coderabbit-config -> /home/dev/.coderabbit Private
      [TMP]/state/executor/tasks/0123456789ab/config/_codex-config -> /home/dev/.codex Private
      [TMP]/state/executor/tasks/0123456789ab/config/_gh-config -> /home/dev/.config/gh Private
      [TMP]/state/executor/tasks/0123456789ab/config/_glab-config -> /home/dev/.config/glab-cli Private
      [TMP]/state/executor/tasks/0123456789ab/config/_kisski-config -> /home/dev/.kisski Private
      [TMP]/state/executor/tasks/0123456789ab/config/_opencode-config -> /home/dev/.config/opencode Private
      [TMP]/state/executor/tasks/0123456789ab/config/_opencode-data -> /home/dev/.local/share/opencode Private
      [TMP]/state/executor/tasks/0123456789ab/config/_opencode-state -> /home/dev/.local/state Private
      [TMP]/state/executor/tasks/0123456789ab/config/_openrouter-config -> /home/dev/.openrouter Private
      [TMP]/state/executor/tasks/0123456789ab/config/_pi-config -> /home/dev/.pi Private
      [TMP]/state/executor/tasks/0123456789ab/config/_sonar-config -> /home/dev/.sonar Private
      [TMP]/state/executor/tasks/0123456789ab/config/_toad-config -> /home/dev/.config/toad Private
      [TMP]/state/executor/tasks/0123456789ab/config/_vibe-config -> /home/dev/.vibe Private
      [TMP]/state/executor/tasks/0123456789ab/credentials/_blablador-config/config.json -> /home/dev/.blablador/config.json Private ro
      [TMP]/state/executor/tasks/0123456789ab/credentials/_claude-config/.credentials.json -> /home/dev/.claude/.credentials.json Private ro
      [TMP]/state/executor/tasks/0123456789ab/credentials/_codex-config/auth.json -> /home/dev/.codex/auth.json Private ro
      [TMP]/state/executor/tasks/0123456789ab/credentials/_gh-config/hosts.yml -> /home/dev/.config/gh/hosts.yml Private ro
      [TMP]/state/executor/tasks/0123456789ab/credentials/_glab-config/config.yml -> /home/dev/.config/glab-cli/config.yml Private ro
      [TMP]/state/executor/tasks/0123456789ab/credentials/_kisski-config/config.json -> /home/dev/.kisski/config.json Private ro
      [TMP]/state/executor/tasks/0123456789ab/credentials/_openrouter-config/config.json -> /home/dev/.openrouter/config.json Private ro
      [TMP]/state/executor/tasks/0123456789ab/credentials/_vibe-config/.env -> /home/dev/.vibe/.env Private ro
      [TMP]/state/executor/tasks/0123456789ab/agent-config -> /home/dev/.terok Private
      [TMP]/run/vault/c/terok-executor-0123456789ab -> /run/terok/vault Private ro
    "#);
}

#[test]
fn codex_differs_from_claude_only_in_its_git_identity() {
    let dir = tempfile::tempdir().unwrap();
    let of = |agent: &str| {
        let assembled = assemble_container_env(&roster(), &spec(dir.path(), agent)).unwrap();
        render(&assembled, dir.path())
    };
    let (claude, codex) = (of("claude"), of("codex"));
    assert_eq!(claude.lines().count(), codex.lines().count());
    let changed: Vec<String> = claude
        .lines()
        .zip(codex.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{} => {}", a.trim(), b.trim()))
        .collect();
    assert_snapshot!(changed.join("\n"), @r"
    GIT_AUTHOR_NAME=Claude => GIT_AUTHOR_NAME=Codex
    GIT_AUTHOR_EMAIL=noreply@anthropic.com => GIT_AUTHOR_EMAIL=noreply@openai.com
    GIT_COMMITTER_NAME=Claude => GIT_COMMITTER_NAME=Codex
    GIT_COMMITTER_EMAIL=noreply@anthropic.com => GIT_COMMITTER_EMAIL=noreply@openai.com
    ");
}

#[test]
fn phantom_files_and_patches_carry_only_this_tasks_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "codex");
    let mounts = dir.path().join("state/sandbox-live/mounts");
    // A real credential left in the shared directory is never what the container sees.
    std::fs::create_dir_all(mounts.join("_claude-config")).unwrap();
    std::fs::write(
        mounts.join("_claude-config/.credentials.json"),
        r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-real"}}"#,
    )
    .unwrap();
    assemble_container_env(&roster(), &spec).unwrap();
    let task = &spec.task_dir;
    let claude =
        std::fs::read_to_string(task.join("credentials/_claude-config/.credentials.json")).unwrap();
    assert_eq!(
        claude, "",
        "an API-key credential travels as ANTHROPIC_API_KEY only"
    );
    let codex: serde_json::Value = serde_json::from_slice(
        &std::fs::read(task.join("credentials/_codex-config/auth.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(codex["tokens"]["access_token"], CODEX_TOKEN);
    let vibe = std::fs::read_to_string(task.join("credentials/_vibe-config/.env")).unwrap();
    assert_eq!(vibe, "", "no vibe credential stored, no token");
    // The vendor file exists as a mount point (and the real one is left alone).
    assert!(mounts.join("_vibe-config/.env").exists());
    assert!(
        std::fs::read_to_string(mounts.join("_claude-config/.credentials.json"))
            .unwrap()
            .contains("sk-ant-oat01-real")
    );
    // Codex's config points at the vault.
    let config = std::fs::read_to_string(mounts.join("_codex-config/config.toml")).unwrap();
    assert!(
        config.contains(r#"openai_base_url = "http://localhost:9419/v1""#),
        "{config}"
    );
}

#[test]
fn over_tcp_the_container_is_pointed_at_the_listener_and_mounts_no_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), "codex");
    if let Some(wiring) = &mut spec.vault {
        wiring.transport = VaultTransport::Tcp { port: 18703 };
    }
    let assembled = assemble_container_env(&roster(), &spec).unwrap();
    let env: BTreeMap<_, _> = assembled.env.iter().cloned().collect();
    assert_eq!(
        env["ANTHROPIC_BASE_URL"],
        "http://host.containers.internal:18703"
    );
    assert_eq!(env["TEROK_TOKEN_BROKER_PORT"], "18703");
    assert_eq!(env["ANTHROPIC_UNIX_SOCKET"], "/tmp/terok-vault.sock");
    assert!(!env.contains_key("TEROK_VAULT_LOOPBACK_PORT"), "{env:?}");
    assert!(
        assembled
            .volumes
            .iter()
            .all(|v| !v.container.starts_with("/run/terok/vault")),
        "{:?}",
        assembled.volumes
    );
    let mounts = dir.path().join("state/sandbox-live/mounts");
    let config = std::fs::read_to_string(mounts.join("_codex-config/config.toml")).unwrap();
    assert!(
        config.contains(r#"openai_base_url = "http://host.containers.internal:18703/v1""#),
        "{config}"
    );
}

#[test]
fn shared_mount_must_be_absolute_without_colon() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), "claude");
    spec.shared_dir = Some(dir.path().join("shared"));
    spec.shared_mount = "relative".into();
    let err = assemble_container_env(&roster(), &spec).unwrap_err();
    assert_snapshot!(err.to_string(), @"--shared-mount must be an absolute path without ':' (got `relative`)");
    spec.shared_mount = "/data".into();
    let assembled = assemble_container_env(&roster(), &spec).unwrap();
    assert!(
        assembled
            .env
            .contains(&("TEROK_SHARED_DIR".to_owned(), "/data".to_owned()))
    );
    assert!(dir.path().join("shared").is_dir());
}

/// `--shared-dir` names the user's directory: created when missing, never re-moded.
#[test]
fn the_users_shared_dir_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("exchange");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let mut spec = spec(dir.path(), "claude");
    spec.shared_dir = Some(theirs.clone());
    assemble_container_env(&roster(), &spec).unwrap();
    let mode = std::fs::metadata(&theirs).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o2775);
}

#[test]
fn unknown_agent_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = assemble_container_env(&roster(), &spec(dir.path(), "nope")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn wrapper_file_snapshot_and_syntax() {
    let text = render_wrappers(&roster(), TASK).unwrap();
    assert_snapshot!("agent_wrappers", text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("terok-executor.sh");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `script` in bash with the wrappers sourced and a fake `claude` on PATH that prints its
/// arguments, one per line, then sleeps `$FAKE_SLEEP` and exits `$FAKE_EXIT`.
fn run_wrapped(script: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // The agent and its ACP server: both print what they were given.
    for name in ["claude", "claude-agent-acp"] {
        let fake = bin.join(name);
        std::fs::write(
            &fake,
            "#!/bin/bash\nprintf 'arg:%s\\n' \"$@\"\necho \"author:$GIT_AUTHOR_NAME\"\n[ -n \"${CLAUDE_CODE_EXECUTABLE:-}\" ] && echo \"cli:$CLAUDE_CODE_EXECUTABLE\"\nsleep \"${FAKE_SLEEP:-0}\"\nexit \"${FAKE_EXIT:-0}\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let wrappers = dir.path().join("terok-executor.sh");
    std::fs::write(&wrappers, render_wrappers(&roster(), TASK).unwrap()).unwrap();
    let full = format!(
        "_terok_apply_git_identity() {{ export GIT_AUTHOR_NAME=\"$1\"; }}\nsource {}\n{script}",
        wrappers.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(full)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("TEROK_UNRESTRICTED", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wrapper_functions_behave() {
    // Headless: the timeout is taken off the arguments, Claude's extras come first, the agent
    // runs under its own identity, and its exit code comes back.
    let (rc, out, _) = run_wrapped("FAKE_EXIT=3 claude --terok-timeout 30 -p 'fix it'");
    assert_eq!(rc, 3);
    assert_snapshot!(out, @r"
    arg:--add-dir
    arg:/
    arg:-p
    arg:fix it
    author:Claude
    ");
    // The timeout fires: 124, as `timeout` reports it.
    let (rc, _, _) = run_wrapped("FAKE_SLEEP=5 claude --terok-timeout 1 -p x");
    assert_eq!(rc, 124);
    // Login commands are refused inside a task.
    let (rc, out, err) = run_wrapped("claude setup-token");
    assert_eq!(rc, 1);
    assert_eq!(out, "");
    assert_snapshot!(err, @r"
    Login is unavailable inside a terok task.
    Run 'terok-executor auth claude' on the host instead.
    ");
    // The ACP server runs under the agent's identity, with its settings and the caller's
    // arguments, and none of the headless extras.
    let (rc, out, _) = run_wrapped("_terok_acp_claude --debug");
    assert_eq!(rc, 0);
    assert_snapshot!(out, @r"
    arg:--debug
    author:Claude
    cli:/usr/local/bin/terok-claude-for-acp
    ");
}

#[test]
fn agent_config_dir_contents() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent-config");
    let prepared = prepare_agent_config(
        &roster(),
        &AgentConfigSpec {
            task_id: TASK.into(),
            agent: "claude".into(),
            dir: config.clone(),
            instructions: String::new(),
            prompt: Some("fix the bug".into()),
            subagents: vec![
                serde_json::from_value(
                    serde_json::json!({"name": "reviewer", "prompt": "Review", "default": true}),
                )
                .unwrap(),
            ],
            vault_env: vec![("ANTHROPIC_API_KEY".into(), CLAUDE_TOKEN.into())],
            ..AgentConfigSpec::default()
        },
    )
    .unwrap();
    assert_eq!(
        prepared.files,
        [
            "terok-executor.sh",
            "instructions.md",
            "agents.json",
            "prompt.txt",
            "vault.env"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(config.join("instructions.md")).unwrap(),
        "Follow the project's coding conventions and existing patterns.\n"
    );
    assert_eq!(
        std::fs::read_to_string(config.join("prompt.txt")).unwrap(),
        "fix the bug"
    );
    assert_eq!(
        std::fs::read_to_string(config.join("vault.env")).unwrap(),
        format!(
            "# Phantom tokens of the current run of this task (rewritten when it starts again).\nANTHROPIC_API_KEY={CLAUDE_TOKEN}\n"
        )
    );
    // The edits of the shared configs happen when the container's environment is assembled.
    let warnings =
        terok_container_env::edit_shared_configs(&roster(), "claude", &dir.path().join("mounts"))
            .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let settings =
        std::fs::read_to_string(dir.path().join("mounts/_claude-config/settings.json")).unwrap();
    assert!(settings.contains("claude-session.txt"), "{settings}");
    assert!(
        dir.path()
            .join("mounts/_opencode-config/opencode.json")
            .exists()
    );

    // An agent without sub-agent support says so instead of failing.
    let prepared = prepare_agent_config(
        &roster(),
        &AgentConfigSpec {
            task_id: TASK.into(),
            agent: "codex".into(),
            dir: dir.path().join("codex-config"),
            subagents: vec![
                serde_json::from_value(serde_json::json!({"name": "x", "default": true})).unwrap(),
            ],
            ..AgentConfigSpec::default()
        },
    )
    .unwrap();
    assert_eq!(
        prepared.warnings,
        ["Codex does not support sub-agents; ignoring 1 definition(s)"]
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "protocol.file.allow=always"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// The git mounts of a repository with a submodule: every directory a hostile agent would
/// rename to put its own repository in place is a mount point, and what git executes — and
/// each `.git` file that says where a git directory is — is read-only.
#[test]
fn a_repository_s_git_directories_are_pinned_and_what_git_runs_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let project = dir.path().join("project");
    for repo in [&lib, &project] {
        std::fs::create_dir_all(repo).unwrap();
        git(repo, &["init", "-q"]);
        git(
            repo,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "init",
            ],
        );
    }
    git(
        &project,
        &[
            "submodule",
            "add",
            "-q",
            lib.to_str().unwrap(),
            "vendor/lib",
        ],
    );
    let assembled = assemble_container_env(&roster(), &spec(dir.path(), "claude")).unwrap();
    let git_mounts: Vec<String> = render(&assembled, dir.path())
        .lines()
        .filter(|l| l.contains(".git"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        git_mounts,
        [
            "  [TMP]/project/.git -> /workspace/.git None",
            "  [TMP]/project/.git/config -> /workspace/.git/config None ro",
            "  [TMP]/project/.git/hooks -> /workspace/.git/hooks None ro",
            "  [TMP]/project/.git/modules -> /workspace/.git/modules None",
            "  [TMP]/project/.git/modules/vendor -> /workspace/.git/modules/vendor None",
            "  [TMP]/project/.git/modules/vendor/lib -> /workspace/.git/modules/vendor/lib None",
            "  [TMP]/project/vendor/lib/.git -> /workspace/vendor/lib/.git None ro",
            "  [TMP]/project/.git/modules/vendor/lib/config -> /workspace/.git/modules/vendor/lib/config None ro",
            "  [TMP]/project/.git/modules/vendor/lib/hooks -> /workspace/.git/modules/vendor/lib/hooks None ro",
        ],
    );
}

/// A worktree's `.git` is a file naming its git directory: read-only, so the agent cannot
/// point it at a git directory of its own.
#[test]
fn a_git_file_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join(".git"),
        "gitdir: /elsewhere/.git/worktrees/x\n",
    )
    .unwrap();
    let assembled = assemble_container_env(&roster(), &spec(dir.path(), "claude")).unwrap();
    let rendered = render(&assembled, dir.path());
    assert!(
        rendered.contains("  [TMP]/project/.git -> /workspace/.git None ro\n"),
        "{rendered}"
    );
}
