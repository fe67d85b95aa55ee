//! `run`, `list`, `rm` against real podman and a real vault daemon (issue: run an agent). The
//! launches use the local debian base, Claude Code from npm, and a stand-in agent whose binary
//! runs its prompt as a bash script (terok_testkit::agents), so exit codes, timeouts and
//! cleanup are checked on real containers.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::network::TestNetwork;
use common::{BIN, Host, REAL_KEY, announced_name, text};
use terok_testkit::IsolatedEnv;
use terok_testkit::podman::require_podman;

fn podman_inspect(name: &str) -> serde_json::Value {
    let out = Command::new("podman")
        .args(["container", "inspect", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "inspect {name}: {}", text(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}

fn container_exists(name: &str) -> bool {
    Command::new("podman")
        .args(["container", "exists", name])
        .status()
        .unwrap()
        .success()
}

#[test]
fn claude_gets_only_phantom_tokens_and_the_local_dir_as_workspace() {
    if !require_podman("claude_gets_only_phantom_tokens_and_the_local_dir_as_workspace") {
        return;
    }
    let host = Host::new();
    // No model API is reachable: Claude fails to get an answer, which is beside the point here.
    let out = host.run(&[
        "run",
        "claude",
        "project",
        "-p",
        "say hi",
        "--timeout",
        "20",
    ]);
    let name = announced_name(&out);
    let info = podman_inspect(&name);
    let env: Vec<String> = info["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let key = env
        .iter()
        .find_map(|e| e.strip_prefix("ANTHROPIC_API_KEY="))
        .unwrap_or_else(|| panic!("no ANTHROPIC_API_KEY in {env:?}"));
    assert!(
        key.starts_with("terok-p-") && key.len() == "terok-p-".len() + 32,
        "{key}"
    );
    assert!(env.contains(&"ANTHROPIC_BASE_URL=http://localhost:9419".to_owned()));
    let whole = info.to_string();
    assert!(!whole.contains(REAL_KEY), "the real key reached podman");
    let workspace = info["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/workspace")
        .unwrap();
    assert_eq!(
        workspace["Source"].as_str().unwrap(),
        host.env
            .work_dir()
            .join("project")
            .canonicalize()
            .unwrap()
            .to_str()
            .unwrap()
    );
    // The vault socket directory is mounted read-only where the bridge expects it.
    assert!(
        info["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| { m["Destination"] == "/run/terok/vault" && m["RW"] == false })
    );
    // Nothing in the task directory holds the real key either.
    let grep = Command::new("grep")
        .args(["-r", "-l", REAL_KEY])
        .arg(host.tasks_dir())
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "{}", text(&grep));
}

#[test]
fn the_exit_code_is_the_agents_and_rm_cleans_up() {
    if !require_podman("the_exit_code_is_the_agents_and_rm_cleans_up") {
        return;
    }
    let host = Host::new();
    let out = host.run(&[
        "run",
        "scripted",
        "project",
        "-p",
        "echo out-$TASK_ID; echo err >&2; touch /workspace/made-by-agent; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("out-"), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Agent exited with code 3"));
    // The agent's file belongs to the user who ran terok.
    let made = host.env.work_dir().join("project/made-by-agent");
    assert!(made.exists());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&made).unwrap().uid(),
        rustix::process::geteuid().as_raw()
    );

    // Without --rm the task stays: list shows it, its tokens are revoked (it exited).
    let name = announced_name(&out);
    assert!(
        host.list().iter().any(|(n, s)| n == &name && s == "exited"),
        "{:?}",
        host.list()
    );
    assert!(!host.token_holders().contains(&name));
    assert_eq!(host.task_dirs().len(), 1);

    // rm removes container and task directory.
    let out = host.run(&["rm", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!container_exists(&name));
    assert!(host.task_dirs().is_empty());
    assert!(host.list().is_empty());
    // rm of something unknown fails precisely.
    let out = host.run(&["rm", "terok-executor-000000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("Container not found: terok-executor-000000000000"));
}

#[test]
fn the_agent_cannot_write_what_git_on_the_host_executes() {
    if !require_podman("the_agent_cannot_write_what_git_on_the_host_executes") {
        return;
    }
    let host = Host::new();
    let project = host.env.work_dir().join("project");
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&project)
        .status()
        .unwrap();
    assert!(git.success());
    let config_before = std::fs::read_to_string(project.join(".git/config")).unwrap();
    // What a hostile agent tries: a command in the repository config and a hook, both run by
    // the user's next `git status` / `git commit` on the host.
    let attack = "git config core.fsmonitor 'touch /tmp/pwned' && echo wrote-config; \
                  printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > .git/hooks/pre-commit && echo wrote-hook; \
                  echo '[core]' >> .git/config && echo appended-config; \
                  mv .git .git-moved && echo moved-git; \
                  mv .git/hooks .git/hooks-moved && echo moved-hooks; \
                  ln -sf /tmp/evil .git/config && echo linked-config; \
                  touch .git/agent-was-here && echo git-writable; \
                  touch /workspace/still-writable; exit 0";
    let out = host.run(&["run", "scripted", "project", "-p", attack, "--rm"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for said in [
        "wrote-config",
        "wrote-hook",
        "appended-config",
        "moved-git",
        "moved-hooks",
        "linked-config",
    ] {
        assert!(!stdout.contains(said), "{said}: {}", text(&out));
    }
    assert_eq!(
        std::fs::read_to_string(project.join(".git/config")).unwrap(),
        config_before
    );
    assert!(!project.join(".git/hooks/pre-commit").exists());
    assert!(!project.join(".git-moved").exists());
    assert!(
        stdout.contains("git-writable"),
        "the agent still commits: {}",
        text(&out)
    );
    assert!(
        project.join("still-writable").exists(),
        "the workspace itself stays writable"
    );
}

/// Every entry under `dir` (links not followed): path, uid, mode.
fn owners_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        out.push((path, meta.uid(), meta.mode()));
    }
    out
}

/// The setuid trick, as `dev` and as the container's root (through sudo): nothing it leaves in
/// the workspace runs as host root, or as anyone but the workspace's owner. With podman as
/// root, `dev` used to be host root.
#[test]
fn the_agent_leaves_no_setuid_file_that_runs_as_someone_else() {
    if !require_podman("the_agent_leaves_no_setuid_file_that_runs_as_someone_else") {
        return;
    }
    let host = Host::new();
    let project = host.env.work_dir().join("project");
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&project).unwrap().uid()
    };
    let attack = "cp /bin/bash /workspace/.x && chmod 4755 /workspace/.x && echo dev-copied; \
                  sudo -n cp /bin/bash /workspace/.y && sudo -n chmod 6755 /workspace/.y \
                  && echo root-copied; sudo -n mkdir /workspace/made-by-root; \
                  echo \"host-uid-of-dev=$(stat -c %u /workspace/.x)\"; exit 0";
    let out = host.run(&["run", "scripted", "project", "-p", attack, "--rm"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("dev-copied") && stdout.contains("root-copied"),
        "{}",
        text(&out)
    );
    for (path, uid, mode) in owners_under(&project) {
        assert_eq!(uid, owner, "{} is not the owner's", path.display());
        assert_eq!(mode & 0o6000, 0, "{} keeps a set-id bit", path.display());
    }
    assert!(project.join(".x").exists() && project.join("made-by-root").exists());
}

/// As root, on a workspace a user owns, and as a user through sudo: the container starts
/// (podman 4.3 could not mount the image for the mapping that made `dev` that user), the agent
/// writes its files, and afterwards everything in the workspace is the owner's again, with no
/// set-id bit. Rootless podman maps `dev` to the invoking user and has nothing to check here.
#[test]
fn a_workspace_a_user_owns_works_as_root_and_comes_back_to_its_owner() {
    if !require_podman("a_workspace_a_user_owns_works_as_root_and_comes_back_to_its_owner") {
        return;
    }
    if !terok_core::env::HostEnv::from_process().is_root() {
        eprintln!("SKIPPED: rootful only (this run is rootless)");
        return;
    }
    let host = Host::new();
    let project = host.env.work_dir().join("project");
    let (user, group) = (1001, 1001);
    for (path, _, _) in owners_under(&project) {
        std::os::unix::fs::lchown(&path, Some(user), Some(group)).unwrap();
    }
    let attack = "echo made > /workspace/by-the-agent && cp /bin/bash /workspace/.x \
                  && chmod 4755 /workspace/.x && echo dev-wrote; exit 0";
    let out = host.run(&["run", "scripted", "project", "-p", attack, "--rm"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dev-wrote"),
        "{}",
        text(&out)
    );
    for (path, uid, mode) in owners_under(&project) {
        assert_eq!(uid, user, "{} is not the owner's", path.display());
        assert_eq!(mode & 0o6000, 0, "{} keeps a set-id bit", path.display());
    }
    // Through sudo (root's own workspace): the container starts too.
    for (path, _, _) in owners_under(&project) {
        std::os::unix::fs::lchown(&path, Some(0), Some(0)).unwrap();
    }
    let out = host
        .command(&["run", "scripted", "project", "-p", "echo sudo-ran", "--rm"])
        .env("SUDO_UID", "1001")
        .env("SUDO_GID", "1001")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sudo-ran"));
    for (path, uid, _) in owners_under(&project) {
        assert_eq!(uid, 0, "{} is not root's again", path.display());
    }
}

#[test]
fn timeout_ends_with_124_and_rm_flag_leaves_nothing() {
    if !require_podman("timeout_ends_with_124_and_rm_flag_leaves_nothing") {
        return;
    }
    let host = Host::new();
    let started = Instant::now();
    let out = host.run(&[
        "run",
        "scripted",
        "project",
        "-p",
        "sleep 120",
        "--timeout",
        "5",
        "--rm",
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
    // Well before the agent's own 120 s: the timeout, not the agent, ended the run.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let name = announced_name(&out);
    assert!(!container_exists(&name), "--rm left the container");
    assert!(host.task_dirs().is_empty(), "--rm left the task directory");
    assert!(host.token_holders().is_empty(), "--rm left tokens");
}

#[test]
fn four_runs_at_once_get_their_own_names_dirs_sockets_and_tokens() {
    if !require_podman("four_runs_at_once_get_their_own_names_dirs_sockets_and_tokens") {
        return;
    }
    let host = Host::new();
    let script = "echo token=$ANTHROPIC_API_KEY; echo socket=$(ls -i /run/terok/vault/vault.sock); \
                  curl -s -o /dev/null -w 'vault=%{http_code}\\n' http://127.0.0.1:9419/v1/models \
                  -H \"x-api-key: $ANTHROPIC_API_KEY\" || true";
    let children: Vec<Child> = (0..4)
        .map(|_| {
            // The stand-in agent routes no provider: it gets Claude's token only when asked.
            host.spawn(&[
                "run",
                "scripted",
                "project",
                "-p",
                script,
                "--credential",
                "claude",
            ])
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut names = std::collections::BTreeSet::new();
    let mut tokens = std::collections::BTreeSet::new();
    for out in &outputs {
        assert!(out.status.success(), "{}", text(out));
        names.insert(announced_name(out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let token = stdout
            .lines()
            .find_map(|l| l.strip_prefix("token="))
            .unwrap()
            .to_owned();
        assert!(token.starts_with("terok-p-"), "{stdout}");
        tokens.insert(token);
        assert!(stdout.contains("socket="), "{stdout}");
    }
    assert_eq!(names.len(), 4);
    assert_eq!(tokens.len(), 4);
    assert_eq!(host.task_dirs().len(), 4);
    // Each had its own socket directory, named after its container.
    for name in &names {
        let dir = podman_inspect(name)["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == "/run/terok/vault")
            .map(|m| m["Source"].as_str().unwrap().to_owned())
            .unwrap();
        assert!(dir.ends_with(name.as_str()), "{dir}");
    }
    assert!(
        host.token_holders().is_empty(),
        "every run revoked its tokens"
    );
}

#[test]
fn a_killed_cli_leaves_a_task_that_rm_and_the_sweep_clean() {
    if !require_podman("a_killed_cli_leaves_a_task_that_rm_and_the_sweep_clean") {
        return;
    }
    let host = Host::new();
    let wait_running = |host: &Host, before: usize| -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let running: Vec<String> = host
                .list()
                .into_iter()
                .filter(|(_, s)| s == "running")
                .map(|(n, _)| n)
                .collect();
            if running.len() > before {
                return running.last().unwrap().clone();
            }
            assert!(Instant::now() < deadline, "the task never ran");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // kill -9 mid-run: the container keeps running and keeps its tokens; rm cleans it all.
    let mut cli = host.spawn(&[
        "run",
        "scripted",
        "project",
        "-p",
        "sleep 300",
        "--credential",
        "claude",
    ]);
    let first = wait_running(&host, 0);
    cli.kill().unwrap();
    cli.wait().unwrap();
    assert!(
        host.list()
            .iter()
            .any(|(n, s)| n == &first && s == "running")
    );
    assert!(host.token_holders().contains(&first));
    let out = host.run(&["rm", &first]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!container_exists(&first));
    assert!(!host.token_holders().contains(&first));
    assert!(host.task_dirs().is_empty());

    // kill -9, then the agent finishes on its own: the next sweep revokes its tokens.
    let mut cli = host.spawn(&[
        "run",
        "scripted",
        "project",
        "-p",
        "sleep 3",
        "--credential",
        "claude",
    ]);
    let second = wait_running(&host, 0);
    cli.kill().unwrap();
    cli.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while host
        .list()
        .iter()
        .any(|(n, s)| n == &second && s == "running")
    {
        assert!(Instant::now() < deadline, "the agent did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(host.token_holders().contains(&second), "nobody revoked yet");
    let out = host.run(&["vault", "clean", "--grace", "0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&second), "{}", text(&out));
    assert!(!host.token_holders().contains(&second));
    assert!(host.list().iter().any(|(n, _)| n == &second));
    let out = host.run(&["rm", &second]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(host.list().is_empty());
}

#[test]
fn interactive_task_stops_and_starts_with_fresh_tokens() {
    if !require_podman("interactive_task_stops_and_starts_with_fresh_tokens") {
        return;
    }
    let host = Host::new();
    let out = host.run(&[
        "run",
        "scripted",
        "project",
        "--interactive",
        "--credential",
        "claude",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Container ready. Login with:"), "{stdout}");
    let name = announced_name(&out);
    let token_in = |name: &str| -> String {
        let out = host
            .env
            .command("podman")
            .args(["exec", name, "bash", "-lc", "echo $ANTHROPIC_API_KEY"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let first = token_in(&name);
    assert!(first.starts_with("terok-p-"), "{first}");
    assert!(host.token_holders().contains(&name));

    let out = host.run(&["stop", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(host.list().iter().any(|(n, s)| n == &name && s == "exited"));
    assert!(!host.token_holders().contains(&name), "stop revokes");

    let out = host.run(&["start", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let second = token_in(&name);
    assert!(
        second.starts_with("terok-p-") && second != first,
        "{first} / {second}"
    );
    assert!(host.token_holders().contains(&name));

    let out = host.run(&["rm", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(host.list().is_empty());
    assert!(!host.token_holders().contains(&name));
}

#[test]
fn missing_images_without_a_terminal_exit_3_with_the_remedies() {
    if !require_podman("missing_images_without_a_terminal_exit_3_with_the_remedies") {
        return;
    }
    let env = IsolatedEnv::new().unwrap();
    std::fs::create_dir_all(env.work_dir().join("project")).unwrap();
    let out = env
        .command(BIN)
        .args([
            "run",
            "claude",
            "project",
            "-p",
            "x",
            "--base",
            "localhost/terok-no-such-base:1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @"
    Setup needed: images missing (L0 terok-l0:localhost-terok-no-such-base-1, L1 terok-l1-cli:localhost-terok-no-such-base-1-b29ec749c386), and stdin is not a terminal to ask.
    Fix it with one of:
      terok-executor setup                    prepare this host once (images, vault)
      terok-executor run ... --yes            build what is missing without asking
      terok-executor run ... --no-preflight   skip these checks (images are built anyway)
    ");
    // Nothing was started or written on the way.
    assert!(!env.state_root().join("executor/tasks").exists());
}

#[test]
fn setup_is_idempotent_and_check_reports_what_is_missing() {
    if !require_podman("setup_is_idempotent_and_check_reports_what_is_missing") {
        return;
    }
    let env = IsolatedEnv::new().unwrap();
    env.write_user_config(
        "image:\n  base_image: localhost/terok-no-such-base:1\n  agents: claude\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        env.command(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // No id range reserved yet (as root, `setup` reserves one; rootless has no row).
    let root = terok_core::env::HostEnv::from_process().is_root();
    for name in ["subuid", "subgid"] {
        std::fs::write(env.host_ids_dir().join(name), "").unwrap();
    }
    let out = run(&["setup", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ids, rows): (Vec<&str>, Vec<&str>) =
        stdout.lines().partition(|l| l.contains("container ids"));
    if root {
        assert_eq!(ids.len(), 1, "{stdout}");
        assert!(
            ids[0].contains("FAIL (") && ids[0].contains("free, not reserved"),
            "{stdout}"
        );
    } else {
        assert!(ids.is_empty(), "{stdout}");
    }
    insta::assert_snapshot!(rows.join("\n"), @"
    terok-executor status:
      podman                 ok (answers)
      storage                ok (overlay)
      vault                  FAIL (not running)
      shield                 ok (allowlist: nft, nsenter and the hook are here; dnsmasq keeps domains current)
      gate                   ok (git, git-http-backend and prlimit are here)
      image L0               FAIL (terok-l0:localhost-terok-no-such-base-1 not built)
      image L1               FAIL (terok-l1-cli:localhost-terok-no-such-base-1-claude not built)
    Run: terok-executor setup
    ");

    let out = run(&["setup", "--no-images"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Vault started"), "{}", text(&out));
    if root {
        assert!(text(&out).contains("Reserved ids "), "{}", text(&out));
        let subuid = std::fs::read_to_string(env.host_ids_dir().join("subuid")).unwrap();
        assert!(subuid.starts_with("terok:"), "{subuid}");
    }
    let out = run(&["setup", "--no-images"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Vault is running."), "{}", text(&out));
    let out = run(&["setup", "--check", "--no-images"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("All prerequisites met."));
    let _ = run(&["vault", "stop"]);
}

/// Podman on `vfs` storage (where rootless podman falls back when overlay is not set up):
/// `setup --check` says what it costs and how to change it. The storage is a temporary one.
#[test]
fn setup_check_warns_about_vfs_storage_with_the_fix() {
    if !require_podman("setup_check_warns_about_vfs_storage_with_the_fix") {
        return;
    }
    let env = IsolatedEnv::new().unwrap();
    let storage = env.root().join("vfs-storage");
    std::fs::create_dir_all(&storage).unwrap();
    let conf = storage.join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n\
             rootless_storage_path = \"{0}/graph\"\n",
            storage.display()
        ),
    )
    .unwrap();
    let out = env
        .command(BIN)
        .args(["setup", "--check", "--no-images", "--no-sandbox"])
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.contains("container ids"))
        .collect();
    insta::assert_snapshot!(rows.join("\n"), @r#"
    terok-executor status:
      podman                 ok (answers)
      storage                ok (vfs)
                             warning: podman stores images with vfs, which copies every layer in full: a first build takes several times longer and images take several times the disk
        To use overlay (native on Linux 5.13 and later; else install fuse-overlayfs), write
        ~/.config/containers/storage.conf (as root: /etc/containers/storage.conf):
          [storage]
          driver = "overlay"
        then run `podman system reset` (it removes every image and container of this user) and
        `terok-executor setup`. See the README's rootless section.
      shield                 ok (allowlist: nft, nsenter and the hook are here; dnsmasq keeps domains current)
      gate                   ok (git, git-http-backend and prlimit are here)
    All prerequisites met.
    "#);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// `--shield offline`: the container has no network interface but loopback, and the agent
/// still reaches the vault through its socket.
#[test]
fn an_offline_task_has_only_loopback_and_still_reaches_the_vault() {
    if !require_podman("an_offline_task_has_only_loopback_and_still_reaches_the_vault") {
        return;
    }
    let host = Host::new();
    let script = "ls /sys/class/net | tr '\\n' ' '; echo; \
                  curl -s -o /dev/null -w 'vault:%{http_code}\\n' \
                    -H 'x-api-key: not-a-phantom' \"$ANTHROPIC_BASE_URL/v1/models\"; \
                  exit 0";
    let out = host.run(&[
        "run",
        "scripted",
        "project",
        "--credential",
        "claude",
        "--shield",
        "offline",
        "--rm",
        "-p",
        script,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.trim() == "lo"), "{stdout}");
    // The vault answered through its socket: its own 401 for a key that is no phantom, so
    // no request leaves this machine.
    assert!(stdout.lines().any(|l| l == "vault:401"), "{}", text(&out));
    assert!(
        !text(&out).contains("egress is open"),
        "an offline run does not say egress is open: {}",
        text(&out)
    );
}

/// `curl` from inside `task` to `http://ADDR:8080/`: (exit code, HTTP status).
fn curl_from(host: &Host, task: &str, addr: &str) -> (i32, String) {
    let out = host
        .env
        .command("podman")
        .args([
            "exec",
            task,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg(format!("http://{addr}:8080/"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `shield status --json` of `task`.
fn shield_status(host: &Host, task: &str) -> serde_json::Value {
    let out = host.run(&["shield", "status", task, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Copies this host's `nft` and the libraries it needs into `task` (an attacker brings their
/// own tools) and runs `nft ARGS` there as root; its output.
fn nft_inside_as_root(host: &Host, task: &str, args: &[&str]) -> Output {
    let kit = host.env.root().join("nftkit");
    std::fs::create_dir_all(&kit).unwrap();
    let ldd = Command::new("ldd").arg("/usr/sbin/nft").output().unwrap();
    let mut files = vec![std::path::PathBuf::from("/usr/sbin/nft")];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        files.extend(
            line.split_whitespace()
                .filter(|w| w.starts_with('/'))
                .map(Into::into),
        );
    }
    for file in &files {
        std::fs::copy(file, kit.join(file.file_name().unwrap())).unwrap();
    }
    let out = host
        .env
        .command("podman")
        .args([
            "cp",
            &format!("{}/.", kit.display()),
            &format!("{task}:/tmp/nftkit"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let loader = files
        .iter()
        .find(|f| f.to_string_lossy().contains("ld-linux"))
        .unwrap();
    host.env
        .command("podman")
        .args(["exec", "-u", "root", task])
        .arg(format!(
            "/tmp/nftkit/{}",
            loader.file_name().unwrap().to_string_lossy()
        ))
        .args(["--library-path", "/tmp/nftkit", "/tmp/nftkit/nft"])
        .args(args)
        .output()
        .unwrap()
}

/// The default mode, `allowlist`: an allowed server answers, another is refused at once (a TCP
/// reset, not a timeout), the refusal shows in `shield status`, root inside cannot flush the
/// rules, the private and metadata rejects are in the container's ruleset, and `shield allow`
/// and `shield deny` open and close a server while the task runs.
#[test]
fn an_allowlisted_task_reaches_only_what_is_allowed() {
    if !require_podman("an_allowlisted_task_reaches_only_what_is_allowed") {
        return;
    }
    let host = Host::new();
    let mut network = TestNetwork::new(&host, "allow");
    let allowed = network.server();
    let other = network.server();
    let profiles = host.env.user_config_dir().join("shield/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("lab.txt"),
        format!("# the test's server\n{allowed}\n"),
    )
    .unwrap();
    let config = std::fs::read_to_string(host.env.user_config_dir().join("config.yml")).unwrap();
    host.env
        .write_user_config(&format!("{config}\nshield:\n  profiles: [lab]\n"))
        .unwrap();

    let out = host.run(&[
        "run",
        "scripted",
        "project",
        "--interactive",
        "--network",
        &network.name,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("egress is open"), "{}", text(&out));
    let task = announced_name(&out);

    assert_eq!(curl_from(&host, &task, &allowed), (0, "200".to_owned()));
    // Refused with a reset: curl's "connection refused" (7), never its timeout (28).
    assert_eq!(curl_from(&host, &task, &other).0, 7);
    // UDP is refused too (and remembered): a datagram to the other server's port 9.
    let out = host
        .env
        .command("podman")
        .args(["exec", &task, "bash", "-c"])
        .arg(format!("echo x > /dev/udp/{other}/9"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the send is refused: {}", text(&out));

    let status = shield_status(&host, &task);
    assert_eq!(status["mode"], "allowlist", "{status}");
    assert_eq!(status["applied"], true, "{status}");
    let denials = status["live"]["denials"].as_array().unwrap();
    assert!(
        denials
            .iter()
            .any(|d| d["address"] == other.as_str() && d["port"] == 8080 && d["protocol"] == "tcp"),
        "{status}"
    );
    assert!(
        denials
            .iter()
            .any(|d| d["address"] == other.as_str() && d["port"] == 9 && d["protocol"] == "udp"),
        "{status}"
    );

    // Root inside, with its own nft, cannot touch the rules: NET_ADMIN is dropped.
    let flush = nft_inside_as_root(&host, &task, &["flush", "ruleset"]);
    assert!(!flush.status.success(), "{}", text(&flush));
    assert!(
        text(&flush).contains("Operation not permitted"),
        "{}",
        text(&flush)
    );
    assert_eq!(curl_from(&host, &task, &other).0, 7, "the rules survive");

    // The ruleset, read from the container's network namespace: private, link-local and
    // metadata ranges are refused, IPv6 and every protocol included (read, not tried).
    let pid = podman_inspect_env(&host, &task)["State"]["Pid"]
        .as_i64()
        .unwrap();
    let rules = host
        .env
        .command("podman")
        .args([
            "unshare",
            "nsenter",
            &format!("--net=/proc/{pid}/ns/net"),
            "/usr/sbin/nft",
            "list",
            "table",
            "inet",
            "terok_shield",
        ])
        .output()
        .unwrap();
    let rules = if rules.status.success() {
        String::from_utf8_lossy(&rules.stdout).into_owned()
    } else {
        // As root, podman has no `unshare`: enter the namespace directly.
        let out = Command::new("nsenter")
            .args([
                &format!("--net=/proc/{pid}/ns/net"),
                "nft",
                "list",
                "table",
                "inet",
                "terok_shield",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for needle in [
        "10.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        // fe80::/10, fec0::/10 and ff00::/8 are adjacent: the kernel keeps them as one range.
        "fe80::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "policy drop",
        "reject with icmpx admin-prohibited",
        "reject with icmpv6 admin-prohibited",
        "reject with tcp reset",
    ] {
        assert!(rules.contains(needle), "{needle} missing:\n{rules}");
    }

    // Live changes, no restart.
    let out = host.run(&["shield", "allow", &task, &other]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(curl_from(&host, &task, &other), (0, "200".to_owned()));
    let out = host.run(&["shield", "deny", &task, &other]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(curl_from(&host, &task, &other).0, 7);
    assert_eq!(curl_from(&host, &task, &allowed), (0, "200".to_owned()));
    let out = host.run(&["rm", &task]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `podman inspect` of `name` in the CLI's environment (rootless tests have their own podman).
fn podman_inspect_env(host: &Host, name: &str) -> serde_json::Value {
    let out = host
        .env
        .command("podman")
        .args(["inspect", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}

/// Fail closed: a ruleset the kernel refuses stops the start with the reason and leaves no
/// running container; a container started without the hook (plain `podman start`) runs
/// nothing.
#[test]
fn a_shield_that_cannot_load_leaves_nothing_running() {
    if !require_podman("a_shield_that_cannot_load_leaves_nothing_running") {
        return;
    }
    let host = Host::new();
    let out = host.run(&["run", "scripted", "project", "--interactive"]);
    assert!(out.status.success(), "{}", text(&out));
    let task = announced_name(&out);
    let out = host.run(&["stop", &task]);
    assert!(out.status.success(), "{}", text(&out));

    // Started behind terok's back, without the hook: the stamp directory went away when the
    // container stopped, so podman cannot even mount it.
    let task_id = host.task_dirs().into_iter().next().unwrap();
    let shield_dir = host.tasks_dir().join(&task_id).join("shield");
    assert!(!shield_dir.join("stamp").exists());
    let out = host
        .env
        .command("podman")
        .args(["start", &task])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(podman_inspect_env(&host, &task)["State"]["Running"], false);
    // Even with every mount source back (an empty stamp directory, a stand-in for the vault
    // socket), the container's first command finds no stamp and stops.
    for mount in podman_inspect_env(&host, &task)["Mounts"]
        .as_array()
        .unwrap()
    {
        let source = std::path::Path::new(mount["Source"].as_str().unwrap());
        if !source.exists() {
            std::fs::create_dir_all(source).unwrap();
        }
    }
    let podman = |args: &[&str]| host.env.command("podman").args(args).output().unwrap();
    let out = podman(&["start", &task]);
    assert!(out.status.success(), "{}", text(&out));
    let out = podman(&["wait", &task]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "97",
        "{}",
        text(&out)
    );
    let out = podman(&["logs", &task]);
    assert!(
        text(&out).contains("egress firewall is not loaded"),
        "{}",
        text(&out)
    );
    assert_eq!(podman_inspect_env(&host, &task)["State"]["Running"], false);

    // A damaged ruleset: the hook fails, podman refuses the start.
    let ruleset = shield_dir.join("ruleset.nft");
    let rules = std::fs::read_to_string(&ruleset).unwrap();
    std::fs::write(&ruleset, rules.replace("policy drop;", "policy dropp;")).unwrap();
    let out = host.run(&["start", &task]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("egress firewall was not loaded"),
        "{}",
        text(&out)
    );
    assert_eq!(podman_inspect_env(&host, &task)["State"]["Running"], false);
    let out = host.run(&["rm", &task]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A DNS server for one name, in Python, for a test container: `lab.terok.test` has the
/// address given as its first argument; other names do not exist.
const TEST_DNS_SERVER: &str = r#"
import socket, struct, sys
address, name = sys.argv[1], "lab.terok.test"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while q[i] != 0:
        labels.append(q[i + 1:i + 1 + q[i]].decode().lower())
        i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    known = ".".join(labels) == name
    found = known and qtype == 1
    answer = struct.pack(">HHHLH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address) if found else b""
    flags = b"\x81\x80" if known else b"\x81\x83"
    header = q[:2] + flags + struct.pack(">HHHH", 1, 1 if found else 0, 0, 0)
    s.sendto(header + q[12:i + 5] + answer, peer)
"#;

impl TestNetwork<'_> {
    /// Starts [`TEST_DNS_SERVER`] on this network answering `lab.terok.test` with `address`;
    /// the server's own address.
    fn dns_server(&mut self, address: &str) -> String {
        let image = self.agent_image();
        self.container(
            "dns",
            &["--user", "root"],
            &image,
            &["python3", "-c", TEST_DNS_SERVER, address],
        )
    }
}

/// Processes on this host whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

/// A profile's domain is allowed at the addresses the container's own lookups return: the
/// task's DNS forwarder adds them to the firewall as it answers (nothing is resolved on the
/// host), and it goes away with the container.
#[test]
fn a_profile_domain_is_allowed_where_the_container_resolves_it() {
    if !require_podman("a_profile_domain_is_allowed_where_the_container_resolves_it") {
        return;
    }
    let host = Host::new();
    // Without the forwarder a launch would resolve the profile's domain on this host: this
    // test must never ask this host's name servers anything.
    let check = host.run(&["setup", "--check", "--no-images"]);
    assert!(
        text(&check).contains("dnsmasq keeps domains current"),
        "dnsmasq with nftset is needed (cargo xtask host-setup): {}",
        text(&check)
    );
    let mut network = TestNetwork::new(&host, "dns");
    let lab = network.server();
    let other = network.server();
    let dns = network.dns_server(&lab);
    let profiles = host.env.user_config_dir().join("shield/profiles");
    std::fs::write(profiles.join("lab.txt"), "lab.terok.test\n").unwrap();
    let config = std::fs::read_to_string(host.env.user_config_dir().join("config.yml")).unwrap();
    host.env
        .write_user_config(&format!(
            "{config}\nshield:\n  profiles: [lab]\n  upstream_dns: {dns}\n"
        ))
        .unwrap();

    let out = host.run(&[
        "run",
        "scripted",
        "project",
        "--interactive",
        "--network",
        &network.name,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let task = announced_name(&out);
    let status = shield_status(&host, &task);
    assert_eq!(status["live"]["learned"], serde_json::json!([]), "{status}");

    let out = host
        .env
        .command("podman")
        .args([
            "exec",
            &task,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["--max-time", "10", "http://lab.terok.test:8080/"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stdout) != "200" {
        let look = host
            .env
            .command("podman")
            .args(["exec", &task, "bash", "-c"])
            .arg("cat /etc/resolv.conf; getent hosts lab.terok.test; echo rc=$?")
            .output()
            .unwrap();
        panic!(
            "curl: {}\ninside: {}\nstatus: {}",
            text(&out),
            text(&look),
            shield_status(&host, &task)
        );
    }
    let status = shield_status(&host, &task);
    assert_eq!(
        status["live"]["learned"],
        serde_json::json!([lab]),
        "{status}"
    );
    assert_eq!(
        curl_from(&host, &task, &other).0,
        7,
        "only what the name resolved to"
    );

    let task_id = host.task_dirs().into_iter().next().unwrap();
    let conf = host.tasks_dir().join(&task_id).join("shield/dnsmasq.conf");
    let conf = conf.display().to_string();
    assert_eq!(processes_mentioning(&conf).len(), 1, "the forwarder runs");
    // Sandboxed: no new privileges, and a bounding set of the five capabilities it needs.
    let pid = std::fs::read_to_string(host.tasks_dir().join(&task_id).join("shield/dnsmasq.pid"))
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(bounding.count_ones(), 5, "{status}");
    let out = host.run(&["rm", &task]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        processes_mentioning(&conf).is_empty(),
        "the forwarder went with the container"
    );
}

/// An agent whose install fails in the L1 build is named, with the last lines of its step and
/// what to do. glab's install is replaced here by one that fails as the real one does where
/// gitlab.com cannot be reached — without sending anything anywhere.
#[test]
fn a_failing_agent_install_names_the_agent_and_the_remedy() {
    if !require_podman("a_failing_agent_install_names_the_agent_and_the_remedy") {
        return;
    }
    terok_testkit::base_image::ensure_base_image(&mut |_| {}).unwrap();
    let env = IsolatedEnv::new().unwrap();
    env.write_user_config(terok_testkit::agents::LAUNCH_TEST_CONFIG)
        .unwrap();
    let dir = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("glab.yaml"),
        "install:\n  run_as_root: |\n    RUN echo 'E: Unable to locate package glab' \
         && echo 'curl: (6) Could not resolve host: gitlab.com' && exit 6\n",
    )
    .unwrap();
    let out = {
        let _lock = terok_testkit::agents::machine_lock("launch-images").unwrap();
        env.command(BIN)
            .args(["build", "--agents", "glab"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // From the error on: the build's own progress before it varies with the cache.
    let error = &stderr[stderr.find("installing `glab`").unwrap_or(0)..];
    insta::assert_snapshot!(error, @r#"
    installing `glab` into terok-l1-cli:localhost-debian-bookworm-glab failed: gitlab.com cannot be reached from here
      |     STEP 19/32: RUN --mount=type=tmpfs,target=/tmp/terok-build-cache echo 'E: Unable to locate package glab' && echo 'curl: (6) Could not resolve host: gitlab.com' && exit 6
      |     E: Unable to locate package glab
      |     curl: (6) Could not resolve host: gitlab.com
      |     Error: building at STEP "RUN --mount=type=tmpfs,target=/tmp/terok-build-cache echo 'E: Unable to locate package glab' && echo 'curl: (6) Could not resolve host: gitlab.com' && exit 6": while running runtime: exit status 6
      help: build without it: `terok-executor agents set all,-glab` (writes image.agents to config.yml), or `terok-executor build --agents all,-glab` for one build; or let the build reach gitlab.com (a proxy in podman's environment, HTTPS_PROXY) and run it again
    "#);
}

#[test]
fn an_entry_the_base_cannot_run_is_refused_with_the_remedy_before_podman_runs() {
    let env = IsolatedEnv::new().unwrap();
    let out = env
        .command(BIN)
        .args([
            "build",
            "--agents",
            "claude,pi,vibe",
            "--base",
            "localhost/debian:bookworm",
        ])
        .env("PATH", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    x cannot build for localhost/debian:bookworm: `pi` needs Node.js 20 or newer, it has 18; `vibe` needs Python 3.12 or newer, it has 3.11
    help: build on a base with Node.js 20 and Python 3.12 or newer (--base, or image.base_image in config.yml), or without them: `terok-executor build --agents all,-pi,-vibe`
    ");
}
