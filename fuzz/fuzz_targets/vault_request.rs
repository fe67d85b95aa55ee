//! Raw bytes as one connection to a task's vault listener (the daemon's own accept loop and
//! connection settings, an in-memory stream): request line, headers, chunked and sized
//! bodies, token extraction, path policy, forwarding to a loopback upstream and relaying its
//! answer. Seeds write the task's live tokens as `@TOKEN@` (claude) and `@CODEX@`.
//!
//! Properties: the real key never reaches the client, and every connection ends unless it
//! switched protocols.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use terok_core::env::HostEnv;
use terok_credentials::routes::{Route, RouteTable, write_routes};
use terok_credentials::{Credential, KeyOptions};
use terok_fuzz::{Dialer, bounded_upstream, connections, substitute, switched_protocols};
use terok_testkit::server::BackgroundServer;
use terok_vault::listener::ListenerLimits;
use terok_vault::{VaultConfig, VaultPaths, listener_app, open_shared};

const REAL_KEY: &str = "sk-ant-api03-REAL-fuzz-key-0123456789";
const REAL_ACCESS: &str = "codex-REAL-fuzz-access";
const TASK: &str = "task-fuzz";

struct Harness {
    runtime: tokio::runtime::Runtime,
    dialer: Dialer,
    claude: String,
    codex: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
    _upstream: BackgroundServer,
}

fn route(upstream: &str, header: &str, prefix: &str) -> Route {
    Route {
        upstream: upstream.to_owned(),
        auth_header: header.to_owned(),
        auth_prefix: prefix.to_owned(),
        ..Route::default()
    }
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("scratch");
    let upstream = bounded_upstream();
    let url = format!("http://{}", upstream.addr());
    let paths = VaultPaths {
        vault_dir: dir.path().join("vault"),
        runtime_dir: dir.path().join("run"),
        db_override: None,
    };
    let mut codex = route(&url, "Authorization", "Bearer ");
    codex
        .path_upstreams
        .insert("/backend-api/".into(), format!("{url}/chatgpt"));
    codex.deny = vec!["/v1/files/**".to_owned()];
    let table: RouteTable = BTreeMap::from([
        ("claude".to_owned(), route(&url, "dynamic", "")),
        ("codex".to_owned(), codex),
    ]);
    write_routes(&paths.routes(), &table).expect("routes");
    let config = VaultConfig {
        paths: paths.clone(),
        key: KeyOptions {
            vault_dir: paths.vault_dir.clone(),
            env: HostEnv::from_vars::<&str, &str>([], 1000),
            passphrase_command: None,
            use_keyring: false,
        },
        live_containers: None,
        refresh_interval: Duration::from_secs(300),
        sweep_interval: Duration::from_secs(60),
        limits: ListenerLimits::default(),
    };
    let shared = open_shared(&config).expect("vault state");
    let (claude, codex) = shared.with_db(|db| {
        db.store_credential("default", "claude", &Credential::api_key(REAL_KEY))
            .expect("claude key");
        db.store_credential("default", "codex", &Credential::api_key(REAL_ACCESS))
            .expect("codex key");
        (
            db.mint_token("vault", TASK, "default", "claude")
                .expect("token"),
            db.mint_token("vault", TASK, "default", "codex")
                .expect("token"),
        )
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (accepting, dialer) = connections();
    let app = listener_app(shared, Some(TASK));
    let (stop_tx, stop) = tokio::sync::oneshot::channel();
    runtime.spawn(terok_vault::listener::serve(
        accepting,
        app,
        ListenerLimits::default(),
        stop,
    ));
    Harness {
        runtime,
        dialer,
        claude,
        codex,
        _stop: stop_tx,
        _dir: dir,
        _upstream: upstream,
    }
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(harness);
    let request = substitute(data, &[("@TOKEN@", &h.claude), ("@CODEX@", &h.codex)]);
    let answer = h
        .runtime
        .block_on(h.dialer.exchange(&request, Duration::from_secs(5)));
    assert!(
        !answer.timed_out || switched_protocols(&answer.bytes),
        "the connection did not end within 5 s"
    );
    let seen = String::from_utf8_lossy(&answer.bytes);
    assert!(!seen.contains(REAL_KEY), "the real key reached the client");
    assert!(
        !seen.contains(REAL_ACCESS),
        "the real key reached the client"
    );
});
