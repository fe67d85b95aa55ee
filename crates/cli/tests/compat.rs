//! Drop-in behaviour for users of the Python terok-executor 0.5.0: the setup-stamp gate of
//! `run` and `run-tool` (exit 3 when setup is needed, 4 after a downgrade), `setup` recording
//! it and `uninstall` taking it back.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use insta::assert_snapshot;
use terok_testkit::IsolatedEnv;
use terok_testkit::cli::{CliRun as Run, run_cli, run_cli_with_stdin};

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

fn run_in(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_cli(env, BIN, args)
}

/// A headless run whose preflight cannot reach podman (`--connection` to a name podman does
/// not know): past the gate it stops at the preflight's podman row, touching no engine.
const RUN: &[&str] = &[
    "run",
    "claude",
    ".",
    "-p",
    "x",
    "--connection",
    "terok-test-none",
];

fn stamp_with(env: &IsolatedEnv, packages: &str) {
    std::fs::write(
        env.setup_stamp(),
        format!(
            r#"{{"version": 1, "completed_at": "2026-01-01T00:00:00Z", "packages": {packages}}}"#
        ),
    )
    .unwrap();
}

/// Past the gate: the preflight's podman row answered.
fn passed_the_gate(r: &Run) -> bool {
    r.stderr.contains("podman") && r.stderr.contains("FAIL") && !r.stderr.contains("setup stamp")
}

#[test]
fn the_setup_stamp_gates_run_and_run_tool_with_upstreams_exit_statuses() {
    let env = IsolatedEnv::new().unwrap();
    std::fs::remove_file(env.setup_stamp()).unwrap();
    let r = run_in(&env, RUN);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_snapshot!(r.stderr, @"
    terok-executor: no setup stamp found — terok-executor hasn't been initialised.
      Fix:    terok-executor setup
      Or:     terok-executor run --no-preflight ...   (skip the gate)
    ");
    let r = run_in(
        &env,
        &[
            "run-tool",
            "coderabbit",
            ".",
            "--connection",
            "terok-test-none",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("run-tool --no-preflight"), "{}", r.stderr);

    // A stamp the Python release wrote: none of its versions are ours to compare.
    stamp_with(
        &env,
        r#"{"terok-executor": "0.5.0", "terok-sandbox": "0.5.0", "terok-shield": "0.5.0"}"#,
    );
    let r = run_in(&env, RUN);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("hasn't been initialised"), "{}", r.stderr);

    // Setup ran with an older version: 3, until setup runs again.
    stamp_with(&env, r#"{"terok-executor-rs": "0.0.1"}"#);
    let r = run_in(&env, RUN);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_snapshot!(r.stderr, @"
    terok-executor: package versions changed since the last setup (terok-executor-rs 0.0.1 → 0.1.0) — re-run to apply.
      Fix:    terok-executor setup
      Or:     terok-executor run --no-preflight ...   (skip the gate)
    ");
    let r = run_in(&env, &["setup", "--no-sandbox", "--no-images"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(&env, RUN);
    assert!(passed_the_gate(&r), "{}", r.stderr);
    let stamp = std::fs::read_to_string(env.setup_stamp()).unwrap();
    assert!(stamp.contains(r#""terok-executor-rs": "0.1.0""#), "{stamp}");

    // Setup ran with a newer version: 4, naming both.
    stamp_with(&env, r#"{"terok-executor-rs": "99.0.0"}"#);
    let r = run_in(&env, RUN);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_snapshot!(r.stderr, @"
    terok-executor: refusing to run — downgrade detected (terok-executor-rs 99.0.0 → 0.1.0).
      Fix:    install terok-executor 99.0.0 or newer again, or accept this version: terok-executor setup
      Or:     rm [TMP]/state/setup.stamp   (forget the newer setup)
    ");
    // --no-preflight skips the gate.
    let mut skipped = RUN.to_vec();
    skipped.push("--no-preflight");
    let r = run_in(&env, &skipped);
    assert!(
        r.code != 4 && !r.stderr.contains("downgrade"),
        "{}",
        r.stderr
    );

    // An unreadable stamp: 3, saying so.
    std::fs::write(env.setup_stamp(), "{half a stamp").unwrap();
    let r = run_in(&env, RUN);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("setup stamp is unreadable"),
        "{}",
        r.stderr
    );
}

#[test]
fn uninstall_forgets_the_setup_unless_the_host_services_stay() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_in(&env, &["uninstall", "--keep-images", "--no-sandbox"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        env.setup_stamp().exists(),
        "--no-sandbox keeps setup recorded"
    );
    let r = run_in(&env, &["uninstall", "--keep-images"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!env.setup_stamp().exists());
    let r = run_in(&env, RUN);
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[test]
fn the_vault_unit_verifies_with_systemd_and_carries_no_secret() {
    let env = IsolatedEnv::new().unwrap();
    let mut command = env.command(BIN);
    command
        .args(["vault", "install", "--print"])
        .env("TEROK_VAULT_PASSPHRASE", "a-passphrase-that-stays-out");
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let unit = String::from_utf8(out.stdout).unwrap();
    assert!(unit.contains("vault\" \"serve\""), "{unit}");
    assert!(
        unit.contains(&format!(
            "Environment=\"TEROK_ROOT={}\"",
            env.state_root().display()
        )),
        "{unit}"
    );
    assert!(!unit.contains("a-passphrase-that-stays-out"), "{unit}");
    assert!(!unit.contains("TEROK_VAULT_PASSPHRASE"), "{unit}");

    // systemd's own check of the unit (the program must exist and run).
    let dir = env.root().join("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let verify = |text: &str| {
        let path = dir.join("terok-vault.service");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(&path)
            .env("XDG_RUNTIME_DIR", env.root().join("run"))
            .output()
            .expect("systemd-analyze (Debian's systemd package)")
    };
    let checked = verify(&unit);
    assert!(checked.status.success(), "{checked:?}\n{unit}");
    // The same check refuses a unit whose program is gone.
    let broken = unit.replacen("ExecStart=\"", "ExecStart=\"/nonexistent", 1);
    assert!(!verify(&broken).status.success(), "{broken}");
}

#[test]
fn the_vault_service_needs_a_user_session_and_writes_nothing_without_one() {
    let env = IsolatedEnv::new().unwrap();
    let mut command = env.command(BIN);
    // No user bus: the user manager is out of reach.
    command
        .args(["vault", "install"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let out = command.output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // A host with a user session: the test must not install a service for the real user.
        panic!("vault install reached a user session from an isolated test: {said}");
    }
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("no systemd user session"), "{said}");
    assert!(said.contains("vault start"), "{said}");
    assert!(
        !env.home()
            .join(".config/systemd/user/terok-vault.service")
            .exists()
    );
    let r = run_in(&env, &["vault", "uninstall"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"No vault service is installed.");
}

#[test]
fn the_sandbox_tree_of_0_5_0_answers_with_the_same_commands() {
    let env = IsolatedEnv::new().unwrap();
    for path in [
        &["sandbox"][..],
        &["sandbox", "setup"],
        &["sandbox", "uninstall"],
        &["sandbox", "vault"],
        &["sandbox", "vault", "start"],
        &["sandbox", "vault", "status"],
        &["sandbox", "vault", "install"],
        &["sandbox", "gate"],
        &["sandbox", "shield"],
        &["sandbox", "ssh"],
        &["sandbox", "credentials"],
        &["sandbox", "doctor"],
    ] {
        let mut args = path.to_vec();
        args.push("--help");
        let r = run_in(&env, &args);
        assert_eq!(r.code, 0, "{path:?}: {}", r.stderr);
    }
    // The alias runs the command itself.
    let alias = run_in(&env, &["sandbox", "credentials"]);
    let itself = run_in(&env, &["vault", "list"]);
    assert_eq!(alias.code, itself.code);
    assert_eq!(alias.stdout, itself.stdout);
    assert_eq!(alias.stderr, itself.stderr);
}

#[test]
fn vault_passphrase_says_where_the_key_comes_from() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_in(&env, &["vault", "passphrase"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"
    The vault's key, from the first of these that has it:
      1. systemd credential $CREDENTIALS_DIRECTORY/terok-vault-key: not set
      2. $TEROK_VAULT_KEY: not set
      3. kernel keyring (vault unlock): not cached
      4. OS keyring (Secret Service): no desktop session to ask
      5. key file [TMP]/state/vault/vault.key.cred sealed by systemd-creds: none
      6. key file [TMP]/state/vault/vault.key: none yet (made on first use)
    None has it yet: the first command that needs the vault makes a key file (protected by TEROK_VAULT_PASSPHRASE or credentials.passphrase_command when one is set).
    ");
    terok_testkit::cli::store_key(&env, BIN, "claude", "sk-ant-api03-passphrase-test");
    let r = run_in(&env, &["vault", "passphrase"]);
    assert!(
        r.stdout
            .contains("vault.key: present, not protected by a passphrase  <- in use"),
        "{}",
        r.stdout
    );
}

/// Runs the CLI in `env` with `vars` added and `stdin` on its standard input.
fn run_with(env: &IsolatedEnv, args: &[&str], vars: &[(&str, &str)], stdin: &str) -> Run {
    use std::io::Write;
    let mut command = env.command(BIN);
    command
        .args(args)
        .envs(vars.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: env.redact(&String::from_utf8_lossy(&out.stdout)),
        stderr: env.redact(&String::from_utf8_lossy(&out.stderr)),
    }
}

/// The line of `vault passphrase` for the source starting with `source`.
fn chain_line(env: &IsolatedEnv, source: &str) -> String {
    let r = run_in(env, &["vault", "passphrase"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .find(|l| {
            l.trim_start()
                .get(3..)
                .is_some_and(|rest| rest.starts_with(source))
        })
        .unwrap_or_else(|| panic!("no {source} in {}", r.stdout))
        .to_owned()
}

const SETUP_KEY_ONLY: &[&str] = &["setup", "--no-images", "--no-sandbox", "--passphrase-tier"];

#[test]
fn the_kernel_keyring_tier_protects_the_key_and_lock_and_unlock_guard_it() {
    let env = IsolatedEnv::new().unwrap();
    // A key stored before: the tier protects the same key in place.
    terok_testkit::cli::store_key(&env, BIN, "claude", "sk-ant-api03-kernel-keyring-tier");
    let pass = [("TEROK_VAULT_PASSPHRASE", "correct horse battery")];
    let args: Vec<&str> = SETUP_KEY_ONLY
        .iter()
        .copied()
        .chain(["kernel-keyring"])
        .collect();
    let r = run_with(&env, &args, &pass, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("protected by a passphrase and unlocked for 8 hours"),
        "{}",
        r.stdout
    );
    assert!(chain_line(&env, "kernel keyring").ends_with("cached  <- in use"));
    let key_file = std::fs::read_to_string(env.state_root().join("vault/vault.key")).unwrap();
    assert!(key_file.contains(" argon2id "), "{key_file}");
    // Unlocked: no passphrase needed to read the vault.
    let r = run_in(&env, &["vault", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("claude"), "{}", r.stdout);
    // Locked: the vault cannot be opened without it, and says how.
    let r = run_in(&env, &["vault", "lock"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "Locked: the cached vault key is gone."),
        "{}",
        r.stderr
    );
    let r = run_in(&env, &["vault", "list"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("protected by a passphrase, and none was given"),
        "{}",
        r.stderr
    );
    let r = run_in(&env, &["vault", "lock"]);
    assert_eq!(r.stdout.trim(), "No cached vault key; nothing to lock.");
    // A wrong passphrase caches nothing; the right one does, for as long as asked.
    let r = run_with(
        &env,
        &["vault", "unlock", "--passphrase-stdin"],
        &[],
        "wrong\n",
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    assert!(chain_line(&env, "kernel keyring").ends_with("not cached"));
    let r = run_with(
        &env,
        &["vault", "unlock", "--passphrase-stdin", "--for", "90m"],
        &[],
        "correct horse battery\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"Unlocked: the vault key is cached in your kernel keyring for 90 minutes, or until `terok-executor vault lock`.");
    let r = run_in(&env, &["vault", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A bad duration is refused before anything happens; `0` alone means no expiry.
    let r = run_with(&env, &["vault", "unlock", "--for", "soon"], &[], "");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("`soon` is not a duration like 90s, 30m, 8h or 2d"),
        "{}",
        r.stderr
    );
    let r = run_with(&env, &["vault", "unlock", "--for", "0s"], &[], "");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`0` alone means"), "{}", r.stderr);
    // Without a terminal or a passphrase: the way to give one.
    run_in(&env, &["vault", "lock"]);
    let r = run_in(&env, &["vault", "unlock"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--passphrase-stdin"), "{}", r.stderr);
    // Moving to another tier while unlocked takes the protected key file (and its cached
    // copy) away: one place holds the key afterwards.
    let r = run_with(
        &env,
        &["vault", "unlock", "--passphrase-stdin"],
        &[],
        "correct horse battery\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let secret = env.root().join("credential.secret");
    let machine = [("SYSTEMD_CREDENTIAL_SECRET", secret.to_str().unwrap())];
    let args: Vec<&str> = SETUP_KEY_ONLY
        .iter()
        .copied()
        .chain(["systemd-creds"])
        .collect();
    let r = run_with(&env, &args, &machine, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!env.state_root().join("vault/vault.key").exists());
    assert!(chain_line(&env, "kernel keyring").ends_with("not cached"));
    let r = run_with(&env, &["vault", "list"], &machine, "");
    assert!(r.stdout.contains("claude"), "{}", r.stderr);
}

#[test]
fn the_systemd_creds_tier_seals_the_key_to_the_machine() {
    let env = IsolatedEnv::new().unwrap();
    terok_testkit::cli::store_key(&env, BIN, "claude", "sk-ant-api03-systemd-creds-tier");
    // The machine's credential secret of this test, not the host's.
    let secret = env.root().join("credential.secret");
    let machine = [("SYSTEMD_CREDENTIAL_SECRET", secret.to_str().unwrap())];
    let args: Vec<&str> = SETUP_KEY_ONLY
        .iter()
        .copied()
        .chain(["systemd-creds"])
        .collect();
    let r = run_with(&env, &args, &machine, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("sealed by systemd-creds in [TMP]/state/vault/vault.key.cred"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Removed the key file it replaces"),
        "{}",
        r.stdout
    );
    assert!(!env.state_root().join("vault/vault.key").exists());
    let r = run_with(&env, &["vault", "list"], &machine, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("claude"), "{}", r.stdout);
    // Another machine's secret opens nothing.
    let other = env.root().join("other.secret");
    let r = run_with(
        &env,
        &["vault", "list"],
        &[("SYSTEMD_CREDENTIAL_SECRET", other.to_str().unwrap())],
        "",
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("could not unseal the vault key"),
        "{}",
        r.stderr
    );
    // Unlock has nothing to do for a sealed key.
    let r = run_with(&env, &["vault", "unlock"], &machine, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("not protected by a passphrase"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_keyring_tier_without_a_desktop_session_changes_nothing() {
    let env = IsolatedEnv::new().unwrap();
    terok_testkit::cli::store_key(&env, BIN, "claude", "sk-ant-api03-keyring-tier");
    let before = std::fs::read(env.state_root().join("vault/vault.key")).unwrap();
    let args: Vec<&str> = SETUP_KEY_ONLY.iter().copied().chain(["keyring"]).collect();
    let r = run_in(&env, &args);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("the OS keyring (Secret Service) cannot be reached"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(env.state_root().join("vault/vault.key")).unwrap(),
        before
    );
}

#[test]
fn a_roster_v3_provider_takes_its_key_by_its_name_or_an_agents() {
    let env = IsolatedEnv::new().unwrap();
    let agent = env.user_config_dir().join("agent");
    for dir in ["agents", "providers"] {
        std::fs::create_dir_all(agent.join(dir)).unwrap();
    }
    std::fs::write(
        agent.join("providers/myllm.yaml"),
        "roster_version: 3\nlabel: My LLM\nupstream: https://api.myllm.example\n",
    )
    .unwrap();
    for name in ["writer", "reviewer"] {
        std::fs::write(
            agent.join(format!("agents/{name}.yaml")),
            "roster_version: 3\nprovider:\n  default: myllm\n  token_env:\n    _default: MYLLM_API_KEY\n",
        )
        .unwrap();
    }
    let r = run_cli_with_stdin(
        &env,
        BIN,
        &["auth", "writer", "--api-key", "-"],
        "sk-myllm-1\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "API key stored for myllm (set: default)");
    let r = run_cli_with_stdin(
        &env,
        BIN,
        &["auth", "myllm", "--api-key", "-"],
        "sk-myllm-2\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // One credential for the provider, whichever name stored it; by its v3 name, Claude's.
    let r = run_cli_with_stdin(
        &env,
        BIN,
        &["auth", "anthropic", "--api-key", "-"],
        "sk-ant-api03-x\n",
    );
    assert_eq!(
        r.stdout.trim(),
        "API key stored for claude (set: default)",
        "{}",
        r.stderr
    );
    let r = run_in(&env, &["vault", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let providers: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        providers.iter().filter(|p| **p == "myllm").count(),
        1,
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("writer") && !r.stdout.contains("anthropic"),
        "{}",
        r.stdout
    );
}

#[test]
fn uninstall_base_removes_only_the_images_of_that_base() {
    if !terok_testkit::podman::require_podman("uninstall_base_removes_only_the_images_of_that_base")
    {
        return;
    }
    terok_testkit::base_image::ensure_base_image(&mut |_| {}).unwrap();
    let env = IsolatedEnv::new().unwrap();
    // Two bases whose tag fragments begin alike: `terok-test-<pid>` and `…-sid`.
    let base = format!("terok-test-{}", std::process::id());
    let other = format!("{base}-sid");
    let context = env.root().join("image");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Containerfile"),
        format!(
            "FROM {}\nLABEL ai.terok.image=l0\n",
            terok_testkit::base_image::BASE_IMAGE
        ),
    )
    .unwrap();
    let build = |fragment: &str| {
        let out = std::process::Command::new("podman")
            .args([
                "build",
                "-q",
                "-t",
                &format!("localhost/terok-l0:{fragment}"),
            ])
            .arg(&context)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    build(&base);
    build(&other);
    let exists = |fragment: &str| {
        std::process::Command::new("podman")
            .args(["image", "exists", &format!("localhost/terok-l0:{fragment}")])
            .status()
            .unwrap()
            .success()
    };
    let r = run_in(&env, &["uninstall", "--base", &base, "--no-sandbox"]);
    let gone = !exists(&base);
    let kept = exists(&other);
    let _ = std::process::Command::new("podman")
        .args(["rmi", "-f", &format!("localhost/terok-l0:{other}")])
        .output();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(gone, "{}", r.stdout);
    assert!(kept, "another base's image stays: {}", r.stdout);
    assert!(
        r.stdout.contains(&format!("terok-l0:{base}")),
        "{}",
        r.stdout
    );
}

#[test]
fn setup_shows_the_selinux_policy_before_anything_privileged_runs() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_in(&env, &["setup", "selinux", "--show"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown = r
        .stdout
        .replacen("(enforcing here)", "(not enforcing here)", 1);
    assert_snapshot!(shown, @"
    SELinux (not enforcing here): a container (container_t) may not connect to a socket of a host process; the vault, gate and SSH signer run unconfined, so the policy module terok_socket lets containers connect to unconfined processes' sockets. That is every container of this host, and every such socket a container can reach: terok mounts only its own into tasks

    /run/terok-selinux/terok_socket.cil is written:
    ; terok_socket: a container may connect to a Unix socket of an unconfined process (the vault,
    ; the gate, the SSH signer) that it can reach; terok mounts only its own sockets into tasks.
    (allow container_t unconfined_t (unix_stream_socket (connectto)))
    (allow container_t unconfined_service_t (unix_stream_socket (connectto)))

    Then, as root:
      semodule -i /run/terok-selinux/terok_socket.cil
    ");
    // Where SELinux does not enforce (this machine), nothing is installed.
    if std::fs::read_to_string("/sys/fs/selinux/enforce").map_or(true, |m| m.trim() != "1") {
        let r = run_in(&env, &["setup", "selinux"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout
                .ends_with("SELinux is not enforcing on this host: nothing to install.\n"),
            "{}",
            r.stdout
        );
        assert!(!std::path::Path::new("/run/terok-selinux").exists());
    }
    let r = run_in(&env, &["setup", "apparmor"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("terok installs no AppArmor profile"),
        "{}",
        r.stdout
    );
    let r = run_in(&env, &["setup", "--show"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // A component is set up alone: other flags are refused, not ignored.
    let r = run_in(&env, &["setup", "selinux", "--root"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn setup_root_installs_the_shield_hook_for_every_podman_and_uninstall_root_removes_only_it() {
    let env = IsolatedEnv::new().unwrap();
    let hooks = env.root().join("system-hooks.d");
    let dir = hooks.to_str().unwrap();
    let vars = [("TEROK_SYSTEM_HOOKS_DIR", dir)];
    let r = run_with(&env, &["setup", "--root", "--no-images"], &vars, "");
    // `setup` started the vault; this test needs it no more.
    run_in(&env, &["vault", "stop"]);
    if !terok_core_is_root() {
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("needs root"), "{}", r.stderr);
        return;
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hook = hooks.join("terok-shield.json");
    let text = std::fs::read_to_string(&hook).unwrap();
    assert!(text.contains(r#""^ai\\.terok\\.shield$""#), "{text}");
    assert!(
        r.stdout.contains("for every podman of this host is"),
        "{}",
        r.stdout
    );
    let r = run_with(
        &env,
        &["uninstall", "--root", "--keep-images", "--no-sandbox"],
        &vars,
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!hook.exists());
    // A file of that name that is not terok's stays.
    std::fs::write(&hook, "{\"version\": \"1.0.0\"}").unwrap();
    let r = run_with(
        &env,
        &["uninstall", "--root", "--keep-images", "--no-sandbox"],
        &vars,
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(hook.exists());
}

fn terok_core_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// Every verb path of the Python terok-executor 0.5.0's command line (its `--help` of every
/// verb, but `sandbox supervisor | supervise-child`, internal to that implementation) answers
/// `--help` here: exit 0 and what it does.
#[test]
fn every_0_5_0_verb_path_answers_help() {
    const PATHS: &[&str] = &[
        "run",
        "run-tool",
        "auth",
        "agents",
        "agents list",
        "agents set",
        "build",
        "setup",
        "uninstall",
        "list",
        "start",
        "stop",
        "rm",
        "show-config",
        "acp",
        "sandbox",
        "sandbox setup",
        "sandbox uninstall",
        "sandbox gate",
        "sandbox shield",
        "sandbox vault",
        "sandbox ssh",
        "sandbox credentials",
        "sandbox prepare",
        "sandbox run",
        "sandbox cleanup",
        "sandbox doctor",
        "vault",
        "vault status",
        "vault unlock",
        "vault lock",
        "vault list",
        "vault passphrase",
        "vault routes",
        "vault clean",
        "vault start",
        "vault stop",
        "vault install",
        "vault uninstall",
    ];
    let env = IsolatedEnv::new().unwrap();
    let mut rows = Vec::new();
    for path in PATHS {
        let mut args: Vec<&str> = path.split(' ').collect();
        args.push("--help");
        let r = run_in(&env, &args);
        let about = r.stdout.lines().next().unwrap_or_default();
        rows.push(format!("{path} → {}: {about}", r.code));
    }
    assert_snapshot!(rows.join("\n"), @"
    run → 0: Run an agent in a new container on a directory or a git URL
    run-tool → 0: Run a sidecar tool (e.g. coderabbit) once on a directory or a git URL, with its real credential, in
    auth → 0: Store a credential for an agent: an API key, or an OAuth login in an auth container
    agents → 0: List, inspect and select the agents of the roster
    agents list → 0: List the agents (NAME, LABEL, TYPE), sorted by name
    agents set → 0: Choose the agents baked into the L1 image (writes image.agents to config.yml)
    build → 0: Build the container images (L0 base layer, L1 agent layer; reused when current)
    setup → 0: Prepare this host: vault routes, the vault daemon, the container images (idempotent)
    uninstall → 0: Remove what setup and build created: every image terok built
    list → 0: List tasks: containers terok started (and task directories whose container is gone)
    start → 0: Start a stopped task again (with fresh phantom tokens)
    stop → 0: Stop a running task; it stays for a later `start` (its tokens are revoked)
    rm → 0: Remove tasks: container, task directory and tokens
    show-config → 0: Print the effective configuration: every config.yml layer merged, defaults filled in
    acp → 0: Serve a running task's agents to an editor (Zed, Toad) over ACP, the Agent Client Protocol.
    sandbox → 0: The Python terok-executor 0.5.0's `sandbox` verbs, kept for its scripts: the same commands as
    sandbox setup → 0: Prepare this host's services (same as `terok-executor setup`)
    sandbox uninstall → 0: Remove what setup made (same as `terok-executor uninstall`)
    sandbox gate → 0: The git gate (same as `terok-executor gate`)
    sandbox shield → 0: A task's egress firewall (same as `terok-executor shield`)
    sandbox vault → 0: The token broker (same as `terok-executor vault`)
    sandbox ssh → 0: SSH keys in the vault (same as `terok-executor ssh`)
    sandbox credentials → 0: Stored credentials, never their values (same as `terok-executor vault list`)
    sandbox prepare → 0: Sandbox a container of your own: tokens and a vault socket for the credentials asked, the hardening
    sandbox run → 0: Run an image of your own in the sandbox (prepared, attached to this terminal, and cleaned up when it
    sandbox cleanup → 0: Take a sandbox back: revoke its tokens, close its vault socket, drop the firewall's state (the
    sandbox doctor → 0: Check this host and its tasks (same as `terok-executor doctor`)
    vault → 0: The token broker that keeps real credentials on the host
    vault status → 0: Show the vault's state: daemon, database, routes, credentials, listeners, leaks
    vault unlock → 0: Cache the vault key in the kernel keyring, so a passphrase-protected key asks for its passphrase
    vault lock → 0: Forget the cached vault key: the next command that opens the vault asks for the passphrase again
    vault list → 0: List stored credentials (never their values); with --tokens, live tokens by container
    vault passphrase → 0: Where the vault's key (and its passphrase) comes from: each source in the order they are asked, and
    vault routes → 0: Regenerate routes.json from the roster, reload a running daemon, and show what it serves
    vault clean → 0: Remove leaked credential files and revoke the tokens of containers that no longer run
    vault start → 0: Start the vault daemon in the background
    vault stop → 0: Stop the vault daemon
    vault install → 0: Run the vault as a systemd user service (terok-vault.service): it starts with your login session and
    vault uninstall → 0: Stop and remove the vault's systemd user service
    ");
}
