//! `auth` and `vault` as users see them: storing keys, refusing empty ones, and the vault's
//! status and listings (never showing a secret).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Stdio;

use insta::assert_snapshot;
use terok_testkit::IsolatedEnv;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_with_stdin(env: &IsolatedEnv, args: &[&str], stdin: &str) -> Run {
    let mut child = env
        .command(env!("CARGO_BIN_EXE_terok-executor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: env.redact(&String::from_utf8_lossy(&out.stdout)),
        stderr: env.redact(&String::from_utf8_lossy(&out.stderr)),
    }
}

fn run(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_with_stdin(env, args, "")
}

#[test]
fn an_empty_key_from_stdin_is_refused_and_nothing_is_stored() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_with_stdin(&env, &["auth", "claude", "--api-key", "-"], "  \n");
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x API key cannot be empty.
    help: pass the key with --api-key KEY, or pipe it in with --api-key -
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
    assert_snapshot!(r.stdout, @"Routes written to [TMP]/state/vault/routes.json (10 configured)");
    let table: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.state_root().join("vault/routes.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(table["claude"]["upstream"], "https://api.anthropic.com");
    let r = run(&env, &["vault", "stop"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "Vault is not running.\n"));
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
    let status = run(&env, &["vault", "status"]);
    assert!(
        status.stdout.contains("Status:        running"),
        "{}",
        status.stdout
    );
    let stop = run(&env, &["vault", "stop"]);
    assert_eq!((stop.code, stop.stdout.as_str()), (0, "Vault stopped.\n"));
}
