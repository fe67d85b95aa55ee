//! The git gate against real podman and real git (issue: the git gate). The "remote" is a
//! bare repository on this machine, reached by the host only; the stand-in agent runs its
//! prompt as a bash script, so what an agent does with git in its container is scripted here.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Host, announced_name, text};
use terok_testkit::podman::require_podman;

/// A host with a bare "remote" holding one commit on `main`.
struct GateHost {
    host: Host,
    remote: PathBuf,
}

impl GateHost {
    fn new() -> Self {
        let host = Host::new();
        let remote = host.env.work_dir().join("remote.git");
        let gate = Self { host, remote };
        let seed = gate.host.env.work_dir().join("seed");
        gate.git(
            None,
            &["init", "-q", "--bare", "-b", "main", &path(&gate.remote)],
        );
        gate.git(None, &["init", "-q", "-b", "main", &path(&seed)]);
        std::fs::write(seed.join("README.md"), "# widget\n").unwrap();
        gate.git(Some(&seed), &["add", "."]);
        gate.git(Some(&seed), &["commit", "-q", "-m", "first"]);
        gate.git(Some(&seed), &["push", "-q", &path(&gate.remote), "main"]);
        gate
    }

    fn url(&self) -> String {
        format!("file://{}", path(&self.remote))
    }

    /// git on the host, as the test's isolated user.
    fn git(&self, dir: Option<&Path>, args: &[&str]) -> String {
        let mut cmd = self.host.env.command("git");
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        let out = cmd
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn tip(&self, repo: &Path, reference: &str) -> Option<String> {
        let out = self
            .host
            .env
            .command("git")
            .arg("-C")
            .arg(repo)
            .args(["rev-parse", "--verify", "--quiet", reference])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.host.run(args)
    }

    fn gate_list(&self) -> serde_json::Value {
        let out = self.run(&["gate", "list", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The mirror's directory (there is one per source).
    fn mirror(&self, name: &str) -> PathBuf {
        self.host
            .env
            .state_root()
            .join(format!("sandbox/gate/{name}.git"))
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The container's environment, as `KEY=value` strings.
fn container_env(host: &Host, name: &str) -> Vec<String> {
    let out = host
        .env
        .command("podman")
        .args(["container", "inspect", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    value[0]["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn mount_sources(host: &Host, name: &str) -> Vec<(String, String)> {
    let out = host
        .env
        .command("podman")
        .args(["container", "inspect", name])
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    value[0]["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Source"].as_str().unwrap_or("").to_owned(),
                m["Destination"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn env_value(env: &[String], key: &str) -> Option<String> {
    env.iter()
        .find_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

#[test]
fn a_gatekept_push_lands_in_the_mirror_and_only_promote_reaches_the_remote() {
    if !require_podman("a_gatekept_push_lands_in_the_mirror_and_only_promote_reaches_the_remote") {
        return;
    }
    let g = GateHost::new();
    let remote_main = g.tip(&g.remote, "refs/heads/main").unwrap();
    // The agent commits, pushes a branch, then rewrites it and force-pushes.
    let script = "set -e; cd /workspace; git checkout -q -b agent/fix; \
                  echo fixed > fix.txt; git add fix.txt; git commit -q -m 'fix it'; \
                  git push -q origin agent/fix; git rev-parse HEAD > /tmp/first; \
                  git commit -q --amend -m \"fix it better$(printf '\\033[2K')\"; \
                  git push -q --force origin agent/fix; \
                  echo ORIGIN=$(git remote get-url origin | sed 's/terok-g-[0-9a-f]*/TOKEN/')";
    let out = g.run(&[
        "run",
        "scripted",
        &g.url(),
        "-p",
        script,
        "--timeout",
        "120",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let name = announced_name(&out);
    let all = text(&out);
    assert!(
        all.contains("ORIGIN=http://TOKEN@localhost:9418/remote-"),
        "origin is the gate: {all}"
    );

    // The container was given the gate, not the remote.
    let env = container_env(&g.host, &name);
    let code_repo = env_value(&env, "CODE_REPO").unwrap();
    assert!(code_repo.starts_with("http://terok-g-"), "{code_repo}");
    assert!(!code_repo.contains(&path(&g.remote)), "{code_repo}");
    assert_eq!(
        env_value(&env, "TEROK_GATE_SOCKET").as_deref(),
        Some("/run/terok/gate/gate-server.sock")
    );
    assert!(
        !mount_sources(&g.host, &name)
            .iter()
            .any(|(source, _)| source.contains("remote.git") || source.contains("sandbox/gate")),
        "neither the remote nor the mirrors are mounted"
    );

    // The branch is in the mirror; the remote is untouched.
    let listed = g.gate_list();
    let repo = &listed[0];
    let mirror_name = repo["name"].as_str().unwrap().to_owned();
    let mirror = g.mirror(&mirror_name);
    let pushed = g
        .tip(&mirror, "refs/heads/agent/fix")
        .expect("pushed to the mirror");
    assert_eq!(g.tip(&g.remote, "refs/heads/agent/fix"), None);
    assert_eq!(g.tip(&g.remote, "refs/heads/main").unwrap(), remote_main);
    assert!(
        repo["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == name.as_str()),
        "{repo}"
    );
    let pushes = repo["pushes"].as_array().unwrap();
    assert_eq!(pushes.len(), 2, "the push and the force-push: {repo}");
    assert!(pushes.iter().all(|p| p["task"] == name.as_str()));

    // The force-pushed-over tip is kept under refs/terok/backup/.
    let backups = g.git(Some(&mirror), &["for-each-ref", "refs/terok/backup/"]);
    assert_eq!(backups.lines().count(), 1, "{backups}");
    assert!(
        !backups.contains(&pushed),
        "the backup is the old tip: {backups}"
    );

    // Review, then promotion with the user's own git: the one way to the remote.
    let out = g.run(&["gate", "diff", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let diff = text(&out);
    assert!(
        diff.contains("# agent/fix") && diff.contains("+fixed"),
        "{diff}"
    );
    let out = g.run(&["gate", "promote", &name, "agent/fix", "--to", "review/fix"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        g.tip(&g.remote, "refs/heads/review/fix").as_deref(),
        Some(pushed.as_str())
    );

    // The task ended: its token is revoked, and its gate server, seeing that, removed its
    // socket (it looks every second).
    let socket = g
        .host
        .env
        .root()
        .join("run/terok/gate")
        .join(&name)
        .join("gate-server.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!socket.exists(), "the ended task's gate socket is gone");
    let out = g.run(&["rm", &name]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_task_reaches_only_its_own_repository_with_its_own_token() {
    if !require_podman("a_task_reaches_only_its_own_repository_with_its_own_token") {
        return;
    }
    let g = GateHost::new();
    // Task A waits, gated on the remote.
    let out = g.run(&["run", "scripted", &g.url(), "--interactive"]);
    assert!(out.status.success(), "{}", text(&out));
    let a = announced_name(&out);
    let a_env = container_env(&g.host, &a);
    let a_token = env_value(&a_env, "TEROK_GATE_TOKEN").unwrap();
    let a_repo = env_value(&a_env, "CODE_REPO")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();

    // Task B, on another repository, tries its way into A's.
    let other = g.host.env.work_dir().join("other.git");
    g.git(
        None,
        &["clone", "-q", "--bare", &path(&g.remote), &path(&other)],
    );
    let probe = format!(
        "code() {{ curl -s -o /dev/null -w '%{{http_code}}' \"$@\"; }}; \
         refs=info/refs?service=git-upload-pack; \
         echo NONE=$(code http://localhost:9418/{a_repo}/$refs); \
         echo FORGED=$(code -u terok-g-00000000000000000000000000000000: http://localhost:9418/{a_repo}/$refs); \
         echo OTHER_REPO=$(code -u $TEROK_GATE_TOKEN: http://localhost:9418/{a_repo}/$refs); \
         echo A_TOKEN=$(code -u {a_token}: http://localhost:9418/{a_repo}/$refs); \
         echo ROUTE=$(code -u $TEROK_GATE_TOKEN: http://localhost:9418/{a_repo}/config); \
         echo OWN=$(code -u $TEROK_GATE_TOKEN: http://localhost:9418${{CODE_REPO#http://*@localhost:9418}}/$refs)"
    );
    let out = g.run(&[
        "run",
        "scripted",
        &format!("file://{}", path(&other)),
        "-p",
        &probe,
        "--timeout",
        "60",
        "--rm",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    for (probe, status) in [
        ("NONE", "401"),
        ("FORGED", "403"),
        ("OTHER_REPO", "403"),
        ("A_TOKEN", "403"),
        ("ROUTE", "404"),
        ("OWN", "200"),
    ] {
        assert!(all.contains(&format!("{probe}={status}")), "{probe}: {all}");
    }

    // A stopped task's token is refused; started again, the same token works.
    let tokens =
        terok_gate::TokenStore::new(g.host.env.state_root().join("sandbox/gate/tokens.json"));
    assert!(tokens.lookup(&a_token).unwrap().is_some());
    let out = g.run(&["stop", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        tokens.lookup(&a_token).unwrap().is_none(),
        "revoked at stop"
    );
    let out = g.run(&["start", &a]);
    assert!(out.status.success(), "{}", text(&out));
    let fetch = g
        .host
        .env
        .command("podman")
        .args([
            "exec",
            "-u",
            "dev",
            &a,
            "git",
            "-C",
            "/workspace",
            "fetch",
            "origin",
        ])
        .output()
        .unwrap();
    assert!(
        fetch.status.success(),
        "fetch after start: {}",
        text(&fetch)
    );
    // Removed: its token is gone for good.
    let out = g.run(&["rm", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tokens.lookup(&a_token).unwrap().is_none(), "revoked at rm");
}

#[test]
fn no_gate_clones_directly_and_online_keeps_the_real_origin() {
    if !require_podman("no_gate_clones_directly_and_online_keeps_the_real_origin") {
        return;
    }
    let g = GateHost::new();
    // --no-gate: the container is given the remote itself (here unreachable from inside).
    let out = g.run(&[
        "run",
        "scripted",
        &g.url(),
        "--no-gate",
        "-p",
        "true",
        "--timeout",
        "60",
    ]);
    let name = announced_name(&out);
    let env = container_env(&g.host, &name);
    assert_eq!(env_value(&env, "CODE_REPO"), Some(g.url()));
    assert_eq!(env_value(&env, "TEROK_GATE_SOCKET"), None);
    assert!(
        !mount_sources(&g.host, &name)
            .iter()
            .any(|(_, dest)| dest == "/run/terok/gate")
    );
    assert!(g.gate_list().as_array().unwrap().is_empty(), "no mirror");
    let _ = g.run(&["rm", &name]);

    // online: cloned through the gate, origin the real remote.
    let out = g.run(&[
        "run",
        "scripted",
        &g.url(),
        "--gate-mode",
        "online",
        "-p",
        "echo ORIGIN=$(git -C /workspace remote get-url origin); git -C /workspace log --format=LOG=%s -1",
        "--timeout",
        "60",
        "--rm",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains(&format!("ORIGIN={}", g.url())), "{all}");
    assert!(all.contains("LOG=first"), "{all}");
}

#[test]
fn a_gated_directory_is_cloned_through_the_gate_and_never_mounted() {
    if !require_podman("a_gated_directory_is_cloned_through_the_gate_and_never_mounted") {
        return;
    }
    let g = GateHost::new();
    let project = g.host.env.work_dir().join("project");
    g.git(None, &["init", "-q", "-b", "main", &path(&project)]);
    g.git(Some(&project), &["add", "."]);
    g.git(Some(&project), &["commit", "-q", "-m", "local"]);
    let before = g.git(Some(&project), &["for-each-ref"]);
    let script = "set -e; cd /workspace; git checkout -q -b agent/dir; echo x > x.txt; \
                  git add x.txt; git commit -q -m x; git push -q origin agent/dir; \
                  echo PUSHED";
    let out = g.run(&[
        "run",
        "scripted",
        "project",
        "--gate",
        "-p",
        script,
        "--timeout",
        "60",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("PUSHED"));
    let name = announced_name(&out);
    let project_text = path(&project.canonicalize().unwrap());
    assert!(
        !mount_sources(&g.host, &name)
            .iter()
            .any(|(source, _)| source.starts_with(&project_text)),
        "the host repository is not mounted"
    );
    // The commit is in the mirror, the host repository is as it was.
    let listed = g.gate_list();
    let mirror = g.mirror(listed[0]["name"].as_str().unwrap());
    assert!(g.tip(&mirror, "refs/heads/agent/dir").is_some());
    assert_eq!(g.git(Some(&project), &["for-each-ref"]), before);
    // Promoted into the local repository as a branch of its own.
    let out = g.run(&["gate", "promote", &name, "agent/dir"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(g.tip(&project, "refs/heads/agent/dir").is_some());
    let _ = g.run(&["rm", &name]);
}

/// `podman exec` of `script` in `task` as `dev`, through a login shell (which reads the
/// task's current `vault.env`); its output.
fn exec_login(host: &Host, task: &str, script: &str) -> Output {
    host.env
        .command("podman")
        .args(["exec", "-u", "dev", task, "bash", "-lc", script])
        .output()
        .unwrap()
}

/// `services.mode: tcp`: the vault and the gate each listen on a TCP port where the engine's
/// containers reach this host (rootful the bridge's gateway, rootless the loopback through
/// slirp4netns); the agent reaches the model through the vault with its phantom (over HTTP
/// and through the in-container socket bridge) and clones and fetches through the gate;
/// another port of the same host address is refused by the task's firewall; a restart opens
/// both listeners where the container was told they are.
#[test]
fn over_tcp_the_task_reaches_its_vault_and_gate_and_no_other_port_of_the_host() {
    if !require_podman("over_tcp_the_task_reaches_its_vault_and_gate_and_no_other_port_of_the_host")
    {
        return;
    }
    let g = GateHost::new();
    let upstream = terok_testkit::upstream::MockUpstream::start().unwrap();
    let config_dir = g.host.env.user_config_dir();
    std::fs::write(
        config_dir.join("agent/agents/claude.yaml"),
        format!("vault:\n  upstream: {}\n", upstream.url()),
    )
    .unwrap();
    // The firewall's profile allows nothing: only the task's own listeners are reachable.
    std::fs::create_dir_all(config_dir.join("shield/profiles")).unwrap();
    std::fs::write(config_dir.join("shield/profiles/none.txt"), "# nothing\n").unwrap();
    let config = std::fs::read_to_string(config_dir.join("config.yml")).unwrap();
    g.host
        .env
        .write_user_config(&format!(
            "{config}\nservices:\n  mode: tcp\nshield:\n  profiles: [none]\n"
        ))
        .unwrap();

    let out = g.run(&[
        "run",
        "scripted",
        &g.url(),
        "--credential",
        "claude",
        "--interactive",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let name = announced_name(&out);
    let env = container_env(&g.host, &name);
    let port = env_value(&env, "TEROK_TOKEN_BROKER_PORT").expect("a TCP vault port");
    let base = env_value(&env, "ANTHROPIC_BASE_URL").unwrap();
    assert_eq!(base, format!("http://host.containers.internal:{port}"));
    let code_repo = env_value(&env, "CODE_REPO").unwrap();
    assert!(
        code_repo.contains("@host.containers.internal:"),
        "{code_repo}"
    );
    assert_eq!(env_value(&env, "TEROK_GATE_SOCKET"), None);
    assert!(
        !mount_sources(&g.host, &name)
            .iter()
            .any(|(_, d)| d.starts_with("/run/terok/vault") || d.starts_with("/run/terok/gate")),
        "no socket directory is mounted"
    );

    let probe = "code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 \"$@\"; }; \
                 echo HTTP=$(code -H \"x-api-key: $ANTHROPIC_API_KEY\" -d '{}' \"$ANTHROPIC_BASE_URL/v1/messages\"); \
                 echo SOCKET=$(code --unix-socket /tmp/terok-vault.sock -H \"x-api-key: $ANTHROPIC_API_KEY\" -d '{}' http://vault/v1/messages); \
                 echo README=$(cat /workspace/README.md); \
                 git -C /workspace fetch -q origin && echo FETCH=ok";
    let expect_reachable = |when: &str| {
        let out = exec_login(&g.host, &name, probe);
        let all = text(&out);
        for line in ["HTTP=200", "SOCKET=200", "README=# widget", "FETCH=ok"] {
            assert!(all.contains(line), "{when}: {line}: {all}");
        }
    };
    expect_reachable("launched");
    let calls = upstream.requests();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        assert_eq!(call.header("x-api-key"), Some(common::REAL_KEY));
    }

    // Another port of the host address the listeners are on: the task's firewall refuses it
    // (read back from the shield's record of refusals, not inferred from the connect).
    let other: u16 = port.parse::<u16>().unwrap() - 1;
    let out = exec_login(
        &g.host,
        &name,
        &format!("curl -s --max-time 5 http://host.containers.internal:{other}/; echo EXIT=$?"),
    );
    assert!(text(&out).contains("EXIT=7"), "{}", text(&out));
    let status = g.run(&["shield", "status", &name, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let denials = status["live"]["denials"].as_array().unwrap();
    assert!(
        denials
            .iter()
            .any(|d| d["port"] == u64::from(other) && d["protocol"] == "tcp"),
        "{status}"
    );

    // Restarted, with fresh tokens, on the same ports.
    let out = g.run(&["stop", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let out = g.run(&["start", &name]);
    assert!(out.status.success(), "{}", text(&out));
    expect_reachable("restarted");
    let out = g.run(&["rm", &name]);
    assert!(out.status.success(), "{}", text(&out));
}
