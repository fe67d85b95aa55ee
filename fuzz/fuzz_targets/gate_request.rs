//! Raw bytes as one connection to a task's gate socket (the listener the executor serves it
//! on): git's smart-HTTP paths, Basic auth, the service query, sized and chunked bodies, and
//! `git http-backend` behind them for a mirror that exists. Seeds write the task's live gate
//! token as `@TOKEN@`, and a whole Basic credential for it (`token:x`, base64) as `@BASIC@`;
//! the mirror is `fuzzrepo`.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use terok_fuzz::{Dialer, connections, substitute};
use terok_gate::{GateLimits, MirrorStore, TokenStore, front};
use terok_vault::listener::ListenerLimits;

const TASK: &str = "task-fuzz";
const REPO: &str = "fuzzrepo";

struct Harness {
    runtime: tokio::runtime::Runtime,
    dialer: Dialer,
    token: String,
    basic: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _pipes: tokio::signal::unix::Signal,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("scratch");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // libFuzzer's C main, not Rust's, starts this process, so SIGPIPE still has its default
    // action: the gate writing a body to a `git http-backend` that already exited would kill
    // the fuzzer instead of failing that write as it does in terok's own binary. A handler
    // (one tokio installs safely) turns it back into the EPIPE error the gate handles.
    let pipes = runtime
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe()) })
        .expect("a SIGPIPE handler");
    let mirrors = MirrorStore::new(dir.path().join("gate")).with_user_env(vec![
        ("HOME".into(), home.into_os_string()),
        ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
    ]);
    runtime
        .block_on(mirrors.create_remoteless(REPO))
        .expect("a mirror");
    let tokens = TokenStore::new(dir.path().join("gate/tokens.json"));
    let token = tokens.mint(REPO, TASK).expect("a gate token");
    let limits = GateLimits {
        push: Duration::from_secs(4),
        body_idle: Duration::from_secs(2),
        lock_wait: Duration::from_secs(2),
    };
    let gate = front(mirrors, tokens, Some(TASK), limits);
    let (accepting, dialer) = connections();
    let (stop_tx, stop) = tokio::sync::oneshot::channel();
    runtime.spawn(terok_vault::listener::serve(
        accepting,
        gate.router,
        ListenerLimits::default(),
        stop,
    ));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{token}:x"));
    Harness {
        runtime,
        dialer,
        token,
        basic,
        _stop: stop_tx,
        _pipes: pipes,
        _dir: dir,
    }
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(harness);
    let request = substitute(data, &[("@TOKEN@", &h.token), ("@BASIC@", &h.basic)]);
    let answer = h
        .runtime
        .block_on(h.dialer.exchange(&request, Duration::from_secs(8)));
    assert!(!answer.timed_out, "the connection did not end within 8 s");
});
