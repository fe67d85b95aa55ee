//! `sandbox prepare | run | cleanup`: a container of the user's own image, in real podman,
//! gets phantom tokens and the vault's socket for the credentials asked, the hardening of a
//! task and `--shield offline`; its requests reach the upstream with the real key; cleanup
//! takes it all back.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use terok_testkit::IsolatedEnv;
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::cli::{CliRun as Run, run_cli};
use terok_testkit::upstream::MockUpstream;

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");
const REAL_KEY: &str = "sk-ant-api03-REAL-key-of-the-sandbox-test-77d2";

fn run_in(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_cli(env, BIN, args)
}

/// Stops the test's vault however the test ends (a failed assertion included).
struct StopsVault<'a>(&'a IsolatedEnv);

impl Drop for StopsVault<'_> {
    fn drop(&mut self) {
        run_in(self.0, &["vault", "stop"]);
    }
}

/// A host whose Claude route (by its v3 name) leads to `upstream`, with the key stored.
fn host(upstream: &MockUpstream) -> IsolatedEnv {
    let env = IsolatedEnv::new().unwrap();
    let providers = env.user_config_dir().join("agent/providers");
    std::fs::create_dir_all(&providers).unwrap();
    std::fs::write(
        providers.join("anthropic.yaml"),
        format!("roster_version: 3\nupstream: {}\n", upstream.url()),
    )
    .unwrap();
    terok_testkit::cli::store_key(&env, BIN, "claude", REAL_KEY);
    env
}

/// What the container runs: its view of the sandbox, then one request over the vault's
/// socket with its phantom token (perl is in every Debian base).
const PROBE: &str = r#"echo "KEY=$ANTHROPIC_API_KEY"; echo "SOCKET=$ANTHROPIC_UNIX_SOCKET";
test -S /run/terok/vault/vault.sock && echo socket-ok;
grep NoNewPrivs /proc/self/status; echo "MAP=$(head -n1 /proc/self/uid_map | tr -s ' ')";
echo "NET=$(ls /sys/class/net | tr '\n' ' ')";
perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Peer => "/run/terok/vault/vault.sock") or die "connect: $!";
print $s "POST /v1/messages HTTP/1.0\r\nHost: vault\r\nx-api-key: $ENV{ANTHROPIC_API_KEY}\r\nContent-Length: 2\r\n\r\n{}";
my $status = <$s>; print "STATUS=$status";'"#;

#[test]
fn a_users_container_gets_phantom_tokens_the_vault_socket_and_a_tasks_hardening() {
    if !terok_testkit::podman::require_podman("sandbox run") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let upstream = MockUpstream::start().unwrap();
    let env = host(&upstream);
    let _vault = StopsVault(&env);
    let name = format!("terok-sbx-test-{}", std::process::id());
    let r = run_in(
        &env,
        &[
            "sandbox",
            "run",
            "--name",
            &name,
            "--credential",
            "anthropic",
            "--shield",
            "offline",
            BASE_IMAGE,
            "sh",
            "-c",
            PROBE,
        ],
    );
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let line = |key: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {}", r.stdout))
            .trim()
            .to_owned()
    };
    assert!(line("KEY=").starts_with("terok-p-"), "{}", r.stdout);
    assert_eq!(line("SOCKET="), "/run/terok/vault/vault.sock");
    assert!(r.stdout.contains("socket-ok"), "{}", r.stdout);
    assert_eq!(line("NoNewPrivs:"), "1");
    // Rootful: the container's root is an unprivileged id on the host; rootless: keep-id.
    let map_line = line("MAP=");
    let map: Vec<&str> = map_line.split(' ').filter(|w| !w.is_empty()).collect();
    assert!(
        map.len() == 3 && (map[0] != "0" || map[1] != "0"),
        "{map:?}"
    );
    assert_eq!(line("NET="), "lo");
    assert!(
        line("STATUS=").starts_with("HTTP/1.0 200") || line("STATUS=").starts_with("HTTP/1.1 200"),
        "{}",
        r.stdout
    );
    // The upstream got the real key; the container never saw it.
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("x-api-key"), Some(REAL_KEY));
    assert!(!r.stdout.contains(REAL_KEY) && !r.stderr.contains(REAL_KEY));
    // Cleaned up: no token, no directory, no container.
    let tokens = run_in(&env, &["vault", "list", "--tokens"]);
    assert!(!tokens.stdout.contains(&name), "{}", tokens.stdout);
    assert!(
        !env.state_root()
            .join(format!("executor/sandboxes/{name}"))
            .exists()
    );
    let exists = std::process::Command::new("podman")
        .args(["container", "exists", &name])
        .status()
        .unwrap();
    assert_eq!(exists.code(), Some(1));
    // The container's status is the command's.
    let r = run_in(
        &env,
        &[
            "sandbox", "run", "--shield", "offline", BASE_IMAGE, "sh", "-c", "exit 7",
        ],
    );
    assert_eq!(r.code, 7, "{}", r.stderr);
}

#[test]
fn prepare_prints_the_podman_line_and_cleanup_takes_the_tokens_back() {
    let upstream = MockUpstream::start().unwrap();
    let env = host(&upstream);
    let _vault = StopsVault(&env);
    let r = run_in(
        &env,
        &[
            "sandbox",
            "prepare",
            "mybox",
            "--credential",
            "claude",
            "--shield",
            "offline",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let prepared: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let args: Vec<&str> = prepared["run_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .map(|i| args[i + 1])
            .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
    };
    assert_eq!(after("--name"), "mybox");
    assert_eq!(after("--security-opt"), "no-new-privileges");
    assert_eq!(after("--network"), "none");
    assert!(after("--volume").contains(":/run/terok/vault:"), "{args:?}");
    assert!(after("--volume").ends_with("ro"), "{args:?}");
    // The env file holds the phantom, never the key, and only its owner reads it.
    let env_file = after("--env-file").replace("[TMP]", &env.root().display().to_string());
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains("ANTHROPIC_API_KEY=terok-p-"), "{text}");
    assert!(!text.contains(REAL_KEY));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(prepared["providers"], serde_json::json!(["claude"]));
    let tokens = run_in(&env, &["vault", "list", "--tokens"]);
    assert!(tokens.stdout.contains("mybox"), "{}", tokens.stdout);
    // A prepared sandbox's container may not run yet: its tokens outlive a sweep.
    let clean = run_in(&env, &["vault", "clean", "--grace", "0"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    let tokens = run_in(&env, &["vault", "list", "--tokens"]);
    assert!(tokens.stdout.contains("mybox"), "{}", tokens.stdout);
    // Cleaning up another name touches nothing of it.
    let r = run_in(&env, &["sandbox", "cleanup", "otherbox"]);
    assert_eq!(
        r.stdout.trim(),
        "No sandbox for `otherbox`; nothing to clean up."
    );
    let tokens = run_in(&env, &["vault", "list", "--tokens"]);
    assert!(tokens.stdout.contains("mybox"), "{}", tokens.stdout);
    // Twice is refused; cleanup takes it back; a second cleanup has nothing to do.
    let again = run_in(&env, &["sandbox", "prepare", "mybox"]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("sandbox cleanup mybox"),
        "{}",
        again.stderr
    );
    let r = run_in(&env, &["sandbox", "cleanup", "mybox"]);
    assert_eq!(
        r.stdout.trim(),
        "Sandbox of `mybox` taken back: 1 token(s) revoked, its directory removed.",
        "{}",
        r.stderr
    );
    let tokens = run_in(&env, &["vault", "list", "--tokens"]);
    assert!(!tokens.stdout.contains("mybox"), "{}", tokens.stdout);
    let r = run_in(&env, &["sandbox", "cleanup", "mybox"]);
    assert_eq!(
        r.stdout.trim(),
        "No sandbox for `mybox`; nothing to clean up."
    );
    // Bad input: a name podman would refuse, a provider nobody has.
    let r = run_in(&env, &["sandbox", "prepare", "bad/name"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not a container name"), "{}", r.stderr);
    let r = run_in(
        &env,
        &[
            "sandbox",
            "prepare",
            "box2",
            "--credential",
            "nobody",
            "--shield",
            "offline",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(!env.state_root().join("executor/sandboxes/box2").exists());
}

/// `--shield allowlist` without terok's shell in the image: the hook loads the ruleset before
/// the command starts (the stamp it leaves names the container's network namespace) and the
/// container resolves names through the task's forwarder.
#[test]
fn an_allowlisted_users_container_starts_behind_the_firewall() {
    if !terok_testkit::podman::require_podman("sandbox run --shield allowlist") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let env = IsolatedEnv::new().unwrap();
    let _vault = StopsVault(&env);
    let setup = run_in(&env, &["setup", "--no-images"]);
    assert_eq!(setup.code, 0, "{}", setup.stderr);
    let r = run_in(
        &env,
        &[
            "sandbox",
            "run",
            "--shield",
            "allowlist",
            BASE_IMAGE,
            "sh",
            "-c",
            "echo \"STAMP=$(cat /run/terok-shield/applied)\"; echo \"NETNS=$(readlink /proc/self/ns/net)\"",
        ],
    );
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let value = |key: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .to_owned()
    };
    let netns = value("NETNS=");
    assert!(netns.starts_with("net:["), "{}", r.stdout);
    assert!(value("STAMP=").starts_with(&netns), "{}", r.stdout);
}

/// Ctrl-C at `sandbox run` (SIGINT to its process group, as a terminal sends it) ends the
/// container and still takes the sandbox back: no token, no directory, no container.
#[test]
fn an_interrupted_sandbox_run_still_cleans_up() {
    use std::os::unix::process::CommandExt;
    if !terok_testkit::podman::require_podman("sandbox run interrupted") {
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let upstream = MockUpstream::start().unwrap();
    let env = host(&upstream);
    let _vault = StopsVault(&env);
    let name = format!("terok-sbx-int-{}", std::process::id());
    let mut child = env
        .command(BIN)
        .args([
            "sandbox",
            "run",
            "--name",
            &name,
            "--credential",
            "claude",
            "--shield",
            "offline",
            BASE_IMAGE,
            "sleep",
            "120",
        ])
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the container runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let running = std::process::Command::new("podman")
            .args([
                "container",
                "inspect",
                "--format",
                "{{.State.Running}}",
                &name,
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&running.stdout).trim() == "true" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let group = format!("-{}", child.id());
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "it waited for the sleep"
    );
    assert!(!status.success());
    assert!(
        !env.state_root()
            .join(format!("executor/sandboxes/{name}"))
            .exists()
    );
    let tokens = run_in(&env, &["vault", "list", "--tokens"]);
    assert!(!tokens.stdout.contains(&name), "{}", tokens.stdout);
    let exists = std::process::Command::new("podman")
        .args(["container", "exists", &name])
        .status()
        .unwrap();
    if exists.success() {
        let _ = std::process::Command::new("podman")
            .args(["rm", "-f", &name])
            .status();
        panic!("the container outlived its sandbox");
    }
}
