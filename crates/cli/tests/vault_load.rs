//! The vault daemon, a real process started by `vault start`, under load: 10,000 requests
//! through one container's listener, then twice 1,000 at once across 50 listeners. Every
//! request is answered, and the daemon keeps no memory per request: 10,000 requests leave it
//! where it started (within 10 %), and so does a burst of a thousand connections at once.
//! A request on a kept-alive connection costs the daemon three write calls and no more.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use terok_testkit::IsolatedEnv;
use terok_testkit::cli::{CliRun as Run, run_cli, store_key};
use terok_testkit::unix_http;
use terok_testkit::upstream::MockUpstream;
use terok_vault::control::{ControlRequest, ControlResponse, call};

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");
const KEY: &str = "sk-ant-api03-REAL-load-test-key-0123456789";

fn run_in(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_cli(env, BIN, args)
}

/// A listener the daemon opened: its socket and the phantom token that works there.
struct Listener {
    socket: PathBuf,
    token: String,
}

/// `path` somewhere under `dir`.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            return Some(path);
        }
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(found) = find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

async fn open(control: &Path, container: &str) -> Listener {
    let request = ControlRequest::Open {
        container: container.to_owned(),
        providers: vec!["claude".to_owned()],
        scope: "standalone".to_owned(),
        uid: None,
        stored_only: false,
        ssh_scope: None,
    };
    let ControlResponse::Opened(opened) = call(control, &request).await.unwrap() else {
        panic!("open {container} was refused");
    };
    Listener {
        socket: opened.socket_dir.unwrap().join("vault.sock"),
        token: opened.tokens["claude"].clone(),
    }
}

/// One model list through `listener`: its status.
async fn request(listener: &Listener) -> u16 {
    let headers = [("x-api-key", listener.token.as_str())];
    match unix_http::request(&listener.socket, "GET", "/v1/models", &headers, "").await {
        Ok(answer) => answer.status,
        Err(_) => 0,
    }
}

/// `count` requests one after another on one keep-alive connection to `listener`, as an
/// agent's HTTP client sends them; how many were not answered 200.
async fn keep_alive_requests(listener: &Listener, count: usize) -> usize {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::UnixStream::connect(&listener.socket)
        .await
        .unwrap();
    let mut stream = tokio::io::BufReader::new(stream);
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nHost: vault\r\nx-api-key: {}\r\n\r\n",
        listener.token
    );
    let mut failures = 0;
    for _ in 0..count {
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut status = String::new();
        stream.read_line(&mut status).await.unwrap();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        if status.split_whitespace().nth(1) != Some("200") {
            failures += 1;
        }
    }
    failures
}

/// The write-family system calls process `pid` has made so far (`write`, `writev`; sends on
/// sockets by `sendmsg` would not count, and the daemon makes none).
fn write_calls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn daemon_pid(env: &IsolatedEnv) -> u32 {
    let status = run_in(env, &["vault", "status"]);
    status
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Status:        running (pid "))
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .expect("the vault runs")
}

/// Sends `count` requests at once, spread over `listeners`; how many failed.
async fn burst(listeners: &std::sync::Arc<Vec<Listener>>, count: usize) -> usize {
    let requests: Vec<_> = (0..count)
        .map(|n| {
            let listeners = listeners.clone();
            tokio::spawn(async move { request(&listeners[n % listeners.len()]).await })
        })
        .collect();
    let mut failures = 0;
    for answer in requests {
        if answer.await.unwrap() != 200 {
            failures += 1;
        }
    }
    failures
}

/// Resident memory of `pid` once the audit lines are written and connections closed.
async fn settled_rss_kib(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_secs(3)).await;
    rss_kib(pid)
}

/// A thousand client sockets and the mock upstream's thousand accepted connections live in
/// this process at once: more than the usual soft limit of 1024 descriptors.
fn allow_many_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).unwrap();
}

/// Stops the test's daemon however the test ends: a failed assertion must not leave it running.
struct StopOnDrop<'a>(&'a IsolatedEnv);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = run_in(self.0, &["vault", "stop"]);
    }
}

#[test]
fn the_daemon_answers_every_request_under_load_and_keeps_no_memory_per_request() {
    allow_many_open_files();
    let env = IsolatedEnv::new().unwrap();
    let upstream = MockUpstream::start_quiet().unwrap();
    let overrides = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&overrides).unwrap();
    std::fs::write(
        overrides.join("claude.yaml"),
        format!("vault:\n  upstream: {}\n", upstream.url()),
    )
    .unwrap();
    store_key(&env, BIN, "claude", KEY);
    let started = run_in(&env, &["vault", "start"]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    let _stop = StopOnDrop(&env);
    let pid = daemon_pid(&env);
    let control = find(env.root(), "control.sock").expect("a control socket");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut listeners = Vec::new();
        for n in 0..50 {
            listeners.push(open(&control, &format!("terok-executor-load-{n}")).await);
        }
        // Warm up: the first requests fill pools and caches the rest reuse — every listener
        // has its token looked up once, as a daemon's containers have had theirs.
        for _ in 0..200 {
            assert_eq!(request(&listeners[0]).await, 200);
        }
        for listener in &listeners {
            assert_eq!(request(listener).await, 200);
        }
        let start = settled_rss_kib(pid).await;

        let mut failures = 0;
        for _ in 0..10_000 {
            if request(&listeners[0]).await != 200 {
                failures += 1;
            }
        }
        assert_eq!(failures, 0, "of 10,000 requests through one listener");

        // A request's writes are its answer, the request upstream and its audit line. A
        // fourth was tokio waking its own timer driver (an eventfd write) for the deadline
        // hyper arms for the next request on a kept-alive connection; docs/vault.md, "Cost
        // per request".
        let writes_before = write_calls(pid);
        assert_eq!(
            keep_alive_requests(&listeners[1], 10_000).await,
            0,
            "of 10,000 requests on one keep-alive connection"
        );
        let writes = write_calls(pid) - writes_before;
        eprintln!("write calls: {writes} for 10,000 requests on one connection");
        assert!(
            writes <= 10_000 * 33 / 10,
            "{writes} write calls for 10,000 requests on one connection: more than 3 each"
        );
        let sequential = settled_rss_kib(pid).await;
        assert!(
            sequential * 10 <= start * 11,
            "10,000 requests took the daemon from {start} KiB to {sequential} KiB"
        );

        // A thousand connections at once, twice: once they have closed the daemon gives the
        // memory they used back (docs/vault.md, "Memory under load"); what stays is the idle
        // upstream connections it keeps for reuse.
        let listeners = std::sync::Arc::new(listeners);
        for burst_number in 1..=2 {
            assert_eq!(
                burst(&listeners, 1_000).await,
                0,
                "of burst {burst_number}: 1,000 requests at once"
            );
            let after = settled_rss_kib(pid).await;
            eprintln!("RSS: start {start} KiB, after 10,000 {sequential} KiB, after burst {burst_number} {after} KiB");
            assert!(
                after * 10 <= start * 11,
                "burst {burst_number} of 1,000 connections took the daemon from {start} KiB to {after} KiB"
            );
        }
    });
    let stopped = run_in(&env, &["vault", "stop"]);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
}
