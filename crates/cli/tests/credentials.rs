//! `auth` and `vault` as users see them: storing keys, refusing empty ones, and the vault's
//! status and listings (never showing a secret).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use insta::assert_snapshot;
use terok_testkit::IsolatedEnv;
use terok_testkit::cli::{CliRun as Run, run_cli, run_cli_with_stdin};

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

fn run_with_stdin(env: &IsolatedEnv, args: &[&str], stdin: &str) -> Run {
    run_cli_with_stdin(env, BIN, args, stdin)
}

fn run(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_cli(env, BIN, args)
}

#[test]
fn an_empty_key_from_stdin_is_refused_and_nothing_is_stored() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_with_stdin(&env, &["auth", "claude", "--api-key", "-"], "  \n");
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x API key cannot be empty.
    help: pipe the key in with --api-key - (or pass --api-key KEY)
    ");
    let list = run(&env, &["vault", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_snapshot!(list.stdout, @"No credentials stored. Add one with `terok-executor auth <agent>`.");
}

#[test]
fn a_key_from_stdin_is_stored_and_listed_but_never_shown() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_with_stdin(
        &env,
        &["auth", "claude", "--api-key", "-"],
        "sk-ant-api03-secret-value\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"API key stored for claude (set: default)");
    let list = run(&env, &["vault", "list", "--tokens"]);
    assert!(
        list.stdout.contains("claude          api_key"),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains("secret-value"));
    let status = run(&env, &["vault", "status"]);
    assert!(
        status.stdout.contains("Credentials:   claude (api_key)"),
        "{}",
        status.stdout
    );
    assert!(!status.stdout.contains("secret-value"));
    // The database and key file are private.
    use std::os::unix::fs::PermissionsExt;
    let vault = env.state_root().join("vault");
    for file in ["credentials.db", "vault.key"] {
        let mode = std::fs::metadata(vault.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}

#[test]
fn auth_of_an_unknown_agent_lists_the_choices() {
    let env = IsolatedEnv::new().unwrap();
    let r = run(&env, &["auth", "claud", "--api-key", "x"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"  x unknown auth provider `claud` (did you mean `claude`?). Available: blablador, claude, coderabbit, codex, gh, glab, kisski, openrouter, sonar, vibe");
}

#[test]
fn a_key_for_a_patched_agent_writes_its_vault_config() {
    let env = IsolatedEnv::new().unwrap();
    let r = run(&env, &["auth", "codex", "--api-key", "sk-proj-x"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A key on argv works, with a word on why piping it in is better.
    assert_snapshot!(r.stderr, @"warning: a key on the command line is visible to every user in the process list and stays in your shell history; next time pipe it in: `terok-executor auth AGENT --api-key - < keyfile`");
    assert_snapshot!(r.stdout, @"
    API key stored for codex (set: default)
    Vault config written to [TMP]/state/sandbox-live/mounts/_codex-config/config.toml
    ");
    let config = std::fs::read_to_string(
        env.state_root()
            .join("sandbox-live/mounts/_codex-config/config.toml"),
    )
    .unwrap();
    assert!(
        config.contains("openai_base_url = \"http://localhost:9419/v1\""),
        "{config}"
    );
}

#[test]
fn vault_status_of_a_fresh_install() {
    let env = IsolatedEnv::new().unwrap();
    let r = run(&env, &["vault", "status"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"
    Mode:          socket (one socket per container)
    Status:        stopped
    Control:       [TMP]/run/terok/vault/control.sock
    DB:            [TMP]/state/vault/credentials.db
    Routes:        [TMP]/state/vault/routes.json (missing; run `terok-executor vault routes`)
    Credentials:   none stored (no database yet)
    Hint:          start it with `terok-executor vault start`
    ");
}

#[test]
fn vault_routes_writes_the_table_and_stop_without_a_daemon_is_fine() {
    let env = IsolatedEnv::new().unwrap();
    let r = run(&env, &["vault", "routes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @r"
    Routes written to [TMP]/state/vault/routes.json (10 configured)

    Routes (written; the vault is not running):
    NAME             UPSTREAM                                       HEADER
    blablador        https://api.helmholtz-blablador.fz-juelich.de  Authorization: Bearer <credential>
    claude           https://api.anthropic.com                      x-api-key (OAuth: Authorization: Bearer)
    coderabbit       https://app.coderabbit.ai                      Authorization: Bearer <credential>
    codex            https://api.openai.com                         Authorization: Bearer <credential>
      /backend-api/  https://chatgpt.com
    gh               https://api.github.com                         Authorization: token <credential>
    glab             https://gitlab.com                             PRIVATE-TOKEN: <credential>
    kisski           https://chat-ai.academiccloud.de               Authorization: Bearer <credential>
    openrouter       https://openrouter.ai/api                      Authorization: Bearer <credential>
    sonar            https://sonarcloud.io                          Authorization: Bearer <credential>
    vibe             https://api.mistral.ai                         Authorization: Bearer <credential>
    ");
    let table: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.state_root().join("vault/routes.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(table["claude"]["upstream"], "https://api.anthropic.com");
    let json = run(&env, &["vault", "routes", "--json"]);
    let printed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(printed, table, "--json prints the table as served");
    let r = run(&env, &["vault", "stop"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "Vault is not running.\n"));
}

/// The vault key set in the environment reaches the daemon through a pipe: the daemon opens the
/// database sealed with it, and its environment (readable in /proc by any process of the
/// user) does not hold it.
#[test]
fn the_vault_key_never_sits_in_the_daemons_environment() {
    let env = IsolatedEnv::new().unwrap();
    let key = "7f".repeat(32);
    let with_key = |args: &[&str], stdin: &str| {
        let mut child = env
            .command(BIN)
            .env("TEROK_VAULT_KEY", &key)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    with_key(&["auth", "claude", "--api-key", "-"], "sk-ant-stored");
    let started = with_key(&["vault", "start"], "");
    let pid: u32 = started
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {started:?}"));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        !environ.contains(&key) && !environ.contains("TEROK_VAULT_KEY="),
        "{environ}"
    );
    assert!(!String::from_utf8_lossy(&cmdline).contains(&key));
    let status = with_key(&["vault", "status"], "");
    assert!(status.contains(&format!("running (pid {pid})")), "{status}");
    assert!(
        status.contains("Credentials:   claude (api_key)"),
        "{status}"
    );
    with_key(&["vault", "stop"], "");
}

#[test]
fn the_vault_starts_once_and_stops() {
    let env = IsolatedEnv::new().unwrap();
    let r = run(&env, &["vault", "start"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Vault started (pid "), "{}", r.stdout);
    let again = run(&env, &["vault", "start"]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("Vault is already running"),
        "{}",
        again.stderr
    );
    // An override edited while the daemon runs: status and setup --check say so.
    let agents = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("claude.yaml"),
        "vault:\n  upstream: http://127.0.0.1:9\n",
    )
    .unwrap();
    let status = run(&env, &["vault", "status"]);
    assert!(
        status.stdout.contains(
            "the vault serves an older roster: claude (upstream); the next run updates it, or \
             `terok-executor vault routes` now"
        ),
        "{}",
        status.stdout
    );
    let check = run(&env, &["setup", "--check", "--no-images"]);
    assert_eq!(check.code, 1);
    assert!(
        check
            .stdout
            .contains("vault routes           FAIL (an older roster's: claude (upstream))"),
        "{}",
        check.stdout
    );
    let routes = run(&env, &["vault", "routes"]);
    assert!(routes.stdout.contains("Running vault reloaded its routes."));
    assert!(
        routes
            .stdout
            .contains("Routes (served by the running vault):")
            && routes
                .stdout
                .contains("claude           http://127.0.0.1:9"),
        "{}",
        routes.stdout
    );
    let status = run(&env, &["vault", "status"]);
    assert!(!status.stdout.contains("older roster"), "{}", status.stdout);
    assert!(
        status.stdout.contains("Status:        running"),
        "{}",
        status.stdout
    );
    let stop = run(&env, &["vault", "stop"]);
    assert_eq!((stop.code, stop.stdout.as_str()), (0, "Vault stopped.\n"));
}
