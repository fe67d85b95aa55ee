//! The daemon: control socket, per-container socket listeners bound to their container's tokens,
//! revocation on close, sweeps, a single instance, and socket hygiene
//! (docs/compatibility.md#13.4).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use terok_core::env::HostEnv;
use terok_credentials::routes::{Route, RouteTable, write_routes};
use terok_credentials::{Credential, KeyOptions};
use terok_testkit::upstream::MockUpstream;
use terok_vault::control::{ControlRequest, ControlResponse, Opened, call};
use terok_vault::{VaultConfig, VaultError, VaultPaths, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(dir: &Path) -> VaultConfig {
    let paths = VaultPaths {
        vault_dir: dir.join("vault"),
        runtime_dir: dir.join("run"),
        db_override: None,
    };
    VaultConfig {
        key: KeyOptions {
            vault_dir: paths.vault_dir.clone(),
            env: HostEnv::from_vars::<&str, &str>([], 1000),
            passphrase_command: None,
            use_keyring: false,
        },
        paths,
        live_containers: None,
        refresh_interval: Duration::from_secs(300),
        sweep_interval: Duration::from_secs(60),
        limits: terok_vault::listener::ListenerLimits::default(),
    }
}

async fn start(dir: &Path, upstream: &MockUpstream) -> VaultConfig {
    start_with(config(dir), upstream).await
}

async fn start_with(cfg: VaultConfig, upstream: &MockUpstream) -> VaultConfig {
    let table: RouteTable = [(
        "claude".to_owned(),
        Route {
            upstream: upstream.url(),
            auth_header: "dynamic".into(),
            auth_prefix: String::new(),
            path_upstreams: Default::default(),
            oauth_extra_headers: Default::default(),
            oauth_refresh: None,
            ..Route::default()
        },
    )]
    .into();
    write_routes(&cfg.paths.routes(), &table).unwrap();
    {
        let (key, _) = terok_credentials::resolve_key(&cfg.key, &cfg.paths.db()).unwrap();
        let db = terok_credentials::CredentialDb::open(&cfg.paths.db(), key, "test").unwrap();
        db.store_credential("default", "claude", &Credential::api_key("sk-ant-real"))
            .unwrap();
    }
    let run = cfg.clone();
    tokio::spawn(async move {
        let _ = serve(run).await;
    });
    for _ in 0..100 {
        if call(&cfg.paths.control_socket(), &ControlRequest::Status)
            .await
            .is_ok()
        {
            return cfg;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the daemon did not come up");
}

async fn open(cfg: &VaultConfig, container: &str) -> Opened {
    open_with_ssh(cfg, container, None).await
}

async fn open_with_ssh(cfg: &VaultConfig, container: &str, ssh_scope: Option<&str>) -> Opened {
    let request = ControlRequest::Open {
        container: container.into(),
        providers: vec!["claude".into()],
        scope: "standalone".into(),
        uid: None,
        stored_only: false,
        ssh_scope: ssh_scope.map(str::to_owned),
    };
    match call(&cfg.paths.control_socket(), &request).await.unwrap() {
        ControlResponse::Opened(opened) => opened,
        other => panic!("{other:?}"),
    }
}

/// One HTTP/1.1 request over a Unix socket; returns the status code.
async fn status_over(socket: &Path, token: &str) -> u16 {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nHost: vault\r\nx-api-key: {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn each_container_gets_a_private_socket_that_only_accepts_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    assert_eq!(mode(&cfg.paths.control_socket()), 0o600);
    let a = open(&cfg, "terok-executor-aaa").await;
    let b = open(&cfg, "terok-executor-bbb").await;
    let sock_a: PathBuf = a.socket_dir.unwrap().join("vault.sock");
    let sock_b: PathBuf = b.socket_dir.unwrap().join("vault.sock");
    assert_eq!(mode(&sock_a), 0o600);
    let token_a = &a.tokens["claude"];
    assert_eq!(status_over(&sock_a, token_a).await, 200);
    assert_eq!(
        status_over(&sock_b, token_a).await,
        401,
        "A's token on B's listener"
    );
    assert_eq!(upstream.requests().len(), 1);

    // Close revokes A's tokens and removes its socket; B is unaffected.
    match call(
        &cfg.paths.control_socket(),
        &ControlRequest::Close {
            container: "terok-executor-aaa".into(),
        },
    )
    .await
    .unwrap()
    {
        ControlResponse::Revoked { tokens, .. } => assert_eq!(tokens, 1),
        other => panic!("{other:?}"),
    }
    assert!(!sock_a.exists());
    assert_eq!(status_over(&sock_b, &b.tokens["claude"]).await, 200);

    // A sweep spares young tokens (their container may be being created)…
    match call(
        &cfg.paths.control_socket(),
        &ControlRequest::Sweep {
            live: vec![],
            grace_secs: None,
        },
    )
    .await
    .unwrap()
    {
        ControlResponse::Revoked { containers, .. } => assert!(containers.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(status_over(&sock_b, &b.tokens["claude"]).await, 200);
    // …and revokes the containers that no longer run once they are old enough.
    match call(
        &cfg.paths.control_socket(),
        &ControlRequest::Sweep {
            live: vec![],
            grace_secs: Some(0),
        },
    )
    .await
    .unwrap()
    {
        ControlResponse::Revoked { containers, .. } => {
            assert_eq!(containers, ["terok-executor-bbb"])
        }
        other => panic!("{other:?}"),
    }
    assert!(!sock_b.exists());

    // A second daemon is refused while this one runs.
    let err = serve(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, VaultError::AlreadyRunning { .. }), "{err}");

    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !cfg.paths.control_socket().exists(),
        "the control socket is removed on stop"
    );
}

/// A task launched without a credential gets a listener holding no token. A sweep that runs
/// while its container is being created (the one at daemon start runs beside launches) must
/// not close it: podman would find its socket directory gone.
#[tokio::test]
async fn a_sweep_spares_a_young_listener_that_holds_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let request = ControlRequest::Open {
        container: "terok-executor-ccc".into(),
        providers: vec!["codex".into()],
        scope: "standalone".into(),
        uid: None,
        stored_only: true,
        ssh_scope: None,
    };
    let opened = match call(&cfg.paths.control_socket(), &request).await.unwrap() {
        ControlResponse::Opened(opened) => opened,
        other => panic!("{other:?}"),
    };
    assert!(opened.tokens.is_empty(), "{:?}", opened.tokens);
    let socket_dir = opened.socket_dir.unwrap();
    assert!(socket_dir.is_dir());

    let sweep = |grace_secs| ControlRequest::Sweep {
        live: vec![],
        grace_secs,
    };
    match call(&cfg.paths.control_socket(), &sweep(None))
        .await
        .unwrap()
    {
        ControlResponse::Revoked { containers, .. } => assert!(containers.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(socket_dir.is_dir(), "a young listener stays");
    match call(&cfg.paths.control_socket(), &sweep(Some(0)))
        .await
        .unwrap()
    {
        ControlResponse::Revoked { containers, .. } => {
            assert_eq!(containers, ["terok-executor-ccc"])
        }
        other => panic!("{other:?}"),
    }
    assert!(!socket_dir.exists(), "without a grace period it goes");
}

/// The daemon serves every container from one worker thread. A database call that waits for
/// another process's lock (opening a listener writes tokens) hands the worker's other tasks to
/// a new thread, so the requests of containers already served go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_database_locked_by_another_process_stalls_no_containers_requests() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let a = open(&cfg, "terok-executor-aaa").await;
    let sock_a = a.socket_dir.unwrap().join("vault.sock");
    let token = a.tokens["claude"].clone();
    assert_eq!(status_over(&sock_a, &token).await, 200);

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let db = cfg.paths.db();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let waiting = cfg.clone();
    let opening = tokio::spawn(async move { open(&waiting, "terok-executor-bbb").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!opening.is_finished(), "the open waits for the lock");

    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(status_over(&sock_a, &token).await, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "A's requests waited {:?} behind B's database call",
        started.elapsed()
    );
    let b = opening.await.unwrap();
    assert!(b.tokens.contains_key("claude"));
    holder.join().unwrap();
}

/// A container holding thousands of idle connections to its socket: the daemon keeps serving
/// the other containers and answering its control socket, and closes the idle connections once
/// the request-head deadline passes (a connection over the limit at once).
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_on_one_socket_starve_neither_other_containers_nor_control() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.header_timeout = Duration::from_secs(3);
    let cfg = start_with(cfg, &upstream).await;
    let a = open(&cfg, "terok-executor-aaa").await;
    let b = open(&cfg, "terok-executor-bbb").await;
    let sock_a = a.socket_dir.unwrap().join("vault.sock");
    let sock_b = b.socket_dir.unwrap().join("vault.sock");

    let mut idle = Vec::new();
    while idle.len() < 2000 {
        match tokio::net::UnixStream::connect(&sock_a).await {
            Ok(stream) => idle.push(stream),
            // A full backlog: the daemon has not caught up yet.
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(err) => panic!("connection {} to A: {err}", idle.len()),
        }
    }

    let answered = tokio::time::timeout(
        Duration::from_secs(2),
        status_over(&sock_b, &b.tokens["claude"]),
    )
    .await
    .expect("B's socket answers while A's is flooded");
    assert_eq!(answered, 200);
    let status = tokio::time::timeout(
        Duration::from_secs(2),
        call(&cfg.paths.control_socket(), &ControlRequest::Status),
    )
    .await
    .expect("the control socket answers while A's is flooded");
    assert!(
        matches!(status, Ok(ControlResponse::Status(_))),
        "{status:?}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    for (index, stream) in idle.iter_mut().enumerate() {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout_at(deadline, stream.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "idle connection {index} is still open after the deadline: {read:?}"
        );
    }
}

/// `Close` names a directory under the runtime dir: a name that climbs out of it removes
/// nothing there.
#[tokio::test(flavor = "multi_thread")]
async fn close_refuses_a_name_that_is_not_a_container() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join(".listener.json"), "{}").unwrap();
    let request = ControlRequest::Close {
        container: "../../victim".into(),
    };
    let err = call(&cfg.paths.control_socket(), &request)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid container name"), "{err}");
    assert!(victim.join(".listener.json").exists());
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
}

/// A daemon that accepts and then says nothing makes a control call fail, not hang.
#[tokio::test]
async fn a_control_call_to_a_silent_daemon_fails_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let held = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let err = terok_vault::control::call_within(
        &socket,
        &ControlRequest::Status,
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no answer within 300 ms"), "{err}");
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_daemon_reopens_live_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let a = open(&cfg, "terok-executor-ccc").await;
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cfg = start(dir.path(), &upstream).await;
    let socket = a.socket_dir.unwrap().join("vault.sock");
    for _ in 0..50 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_over(&socket, &a.tokens["claude"]).await, 200);
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
}

/// A TCP listener too comes back after a restart, at the address and port its container was
/// told, and its token still works there.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_daemon_reopens_tcp_listeners_where_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let opened = open_tcp_with(&cfg, "terok-executor-tcp", None, None)
        .await
        .unwrap();
    let addr = std::net::SocketAddr::new(opened.address.unwrap(), opened.port.unwrap());
    let token = &opened.tokens["claude"];
    assert_eq!(status_over_tcp(addr, token).await, Some(200));
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        status_over_tcp(addr, token).await,
        None,
        "stopped with the daemon"
    );
    let cfg = start(dir.path(), &upstream).await;
    let mut answer = None;
    for _ in 0..50 {
        answer = status_over_tcp(addr, token).await;
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer, Some(200));
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Someone else takes the port while the daemon is down: the container still sends its
    // requests there, so the restarted daemon revokes its tokens rather than leave them
    // worth something to whoever listens.
    let squatter = std::net::TcpListener::bind(addr).unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let mut live = usize::MAX;
    for _ in 0..50 {
        live = live_tokens(&cfg, "terok-executor-tcp");
        if live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live, 0, "the squatted listener's tokens are revoked");
    drop(squatter);
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
}

/// How many tokens `container` holds in the vault of `cfg`.
fn live_tokens(cfg: &VaultConfig, container: &str) -> usize {
    let (key, _) = terok_credentials::resolve_key(&cfg.key, &cfg.paths.db()).unwrap();
    let db = terok_credentials::CredentialDb::open(&cfg.paths.db(), key, "test").unwrap();
    db.list_tokens()
        .unwrap()
        .into_iter()
        .filter(|t| t.subject == container)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_sockets_are_removed_but_other_files_never_are() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    std::fs::create_dir_all(&cfg.paths.runtime_dir).unwrap();
    // A file that is not a socket where the control socket goes: refuse, keep it.
    std::fs::write(cfg.paths.control_socket(), "precious").unwrap();
    let err = serve(cfg.clone()).await.unwrap_err();
    assert!(matches!(err, VaultError::NotASocket { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(cfg.paths.control_socket()).unwrap(),
        "precious"
    );
    std::fs::remove_file(cfg.paths.control_socket()).unwrap();
    // A dead socket left behind by a crash: removed, and the daemon starts.
    drop(std::os::unix::net::UnixListener::bind(cfg.paths.control_socket()).unwrap());
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
}

/// A WebSocket keeps its connection's place under the listener's limit: a container cannot
/// hold more connections open than the limit by upgrading each one.
#[tokio::test(flavor = "multi_thread")]
async fn upgraded_websockets_count_against_the_connection_limit() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_connections = 3;
    let cfg = start_with(cfg, &upstream).await;
    let a = open(&cfg, "terok-executor-aaa").await;
    let socket = a.socket_dir.unwrap().join("vault.sock");
    let token = &a.tokens["claude"];
    let mut held = Vec::new();
    for _ in 0..3 {
        let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        let mut request = "ws://vault/ws".into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-api-key", token.parse().unwrap());
        let (ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        held.push(ws);
    }
    // Each upgraded connection is now relayed, not served: the next one finds no place.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nHost: vault\r\nx-api-key: {token}\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a fourth connection was served: {}",
        String::from_utf8_lossy(&answer)
    );
    // A closed WebSocket gives its place back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_over(&socket, token).await, 200);
}

/// A client that declares a body and sends it slowly gets 408 at the deadline instead of
/// holding its share of the vault's body budget for as long as it likes.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.header_timeout = Duration::from_secs(1);
    let cfg = start_with(cfg, &upstream).await;
    let a = open(&cfg, "terok-executor-aaa").await;
    let socket = a.socket_dir.unwrap().join("vault.sock");
    let token = &a.tokens["claude"];
    let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let head = format!(
        "GET /v1/files HTTP/1.1\r\nHost: vault\r\nx-api-key: {token}\r\nContent-Length: 1000\r\n\r\nstart"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await;
    let n = read.expect("the vault answers at its deadline").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(upstream.requests().is_empty());
}

/// One ssh-agent request over `socket` after the handshake with `token`: the answer's type
/// byte and body, or `None` when the signer closed the connection.
async fn agent_request(socket: &Path, token: &str, request: &[u8]) -> Option<Vec<u8>> {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let mut out = Vec::new();
    terok_credentials::ssh::put_string(&mut out, token.as_bytes());
    terok_credentials::ssh::put_string(&mut out, request);
    // A signer that closed the connection on accept (its connection cap) answers nothing.
    stream.write_all(&out).await.ok()?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// With SSH keys for its agent, a container gets a signer socket beside its vault socket and
/// an `ssh` token; the socket answers its own token only, lists the agent's keys (not another
/// agent's), and goes away with the container's listener.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_with_ssh_keys_gets_a_signer_that_answers_only_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let own = terok_credentials::ssh::SshPrivateKey::generate_ed25519().unwrap();
    let other = terok_credentials::ssh::SshPrivateKey::generate_ed25519().unwrap();
    {
        let (key, _) = terok_credentials::resolve_key(&cfg.key, &cfg.paths.db()).unwrap();
        let db = terok_credentials::CredentialDb::open(&cfg.paths.db(), key, "test").unwrap();
        db.add_ssh_key("mine", &own, "mine").unwrap();
        db.assign_ssh_key("mine", "claude").unwrap();
        db.add_ssh_key("theirs", &other, "theirs").unwrap();
        db.assign_ssh_key("theirs", "codex").unwrap();
    }
    let without = open(&cfg, "terok-executor-nokeys").await;
    assert!(!without.tokens.contains_key("ssh"));
    assert!(!without.socket_dir.unwrap().join("ssh-agent.sock").exists());
    let nothing = open_with_ssh(&cfg, "terok-executor-pi", Some("pi")).await;
    assert!(!nothing.tokens.contains_key("ssh"), "pi has no keys");

    let opened = open_with_ssh(&cfg, "terok-executor-ssh", Some("claude")).await;
    let socket = opened.socket_dir.clone().unwrap().join("ssh-agent.sock");
    assert_eq!(mode(&socket), 0o600);
    let token = &opened.tokens["ssh"];
    let listed = agent_request(&socket, token, &[11]).await.unwrap();
    assert_eq!(listed[0], 12);
    assert_eq!(&listed[1..5], &1u32.to_be_bytes(), "only claude's key");
    let blob = own.public_blob().unwrap();
    assert!(listed.windows(blob.len()).any(|w| w == blob.as_slice()));
    // The container's Claude token, or another container's ssh token: closed unanswered.
    assert_eq!(
        agent_request(&socket, &opened.tokens["claude"], &[11]).await,
        None
    );
    let elsewhere = open_with_ssh(&cfg, "terok-executor-else", Some("claude")).await;
    assert_eq!(
        agent_request(&socket, &elsewhere.tokens["ssh"], &[11]).await,
        None
    );

    let close = ControlRequest::Close {
        container: "terok-executor-ssh".into(),
    };
    call(&cfg.paths.control_socket(), &close).await.unwrap();
    assert!(!socket.exists(), "the signer socket goes with the listener");
}

/// A container that opens connections to its signer and says nothing holds at most the cap:
/// the next connection is closed at once, and a well-behaved one works again when the idle
/// ones are dropped by the handshake limit.
#[tokio::test(flavor = "multi_thread")]
async fn idle_signer_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    {
        let (key, _) = terok_credentials::resolve_key(&cfg.key, &cfg.paths.db()).unwrap();
        let db = terok_credentials::CredentialDb::open(&cfg.paths.db(), key, "test").unwrap();
        let k = terok_credentials::ssh::SshPrivateKey::generate_ed25519().unwrap();
        db.add_ssh_key("k", &k, "").unwrap();
        db.assign_ssh_key("k", "%all").unwrap();
    }
    let opened = open_with_ssh(&cfg, "terok-executor-busy", Some("claude")).await;
    let socket = opened.socket_dir.clone().unwrap().join("ssh-agent.sock");
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(tokio::net::UnixStream::connect(&socket).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut byte))
        .await
        .expect("closed at once, not left waiting");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    drop(idle);
    // The handshake limit frees the slots of connections that never spoke; then it serves.
    let mut served = None;
    for _ in 0..40 {
        served = agent_request(&socket, &opened.tokens["ssh"], &[11]).await;
        if served.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(served.map(|a| a[0]), Some(12));
}

/// What an SSH client signs to log in as `user` with the key `blob` (RFC 4252 §7).
fn login_payload(user: &str, blob: &[u8]) -> Vec<u8> {
    use terok_credentials::ssh::put_string;
    let mut data = Vec::new();
    put_string(&mut data, b"session id");
    data.push(50);
    put_string(&mut data, user.as_bytes());
    put_string(&mut data, b"ssh-connection");
    put_string(&mut data, b"publickey");
    data.push(1);
    put_string(&mut data, b"ssh-ed25519");
    put_string(&mut data, blob);
    data
}

/// A connection that is open when its container is closed answers nothing more (its token is
/// revoked and its task stopped); what it signed before, and what it was refused, are in the
/// audit log with the container and the key's fingerprint, never the key or the token.
#[tokio::test(flavor = "multi_thread")]
async fn a_signer_connection_dies_with_its_container_and_its_signatures_are_audited() {
    use terok_credentials::ssh::put_string;
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let blob = store_claude_ssh_key(&cfg);
    let opened = open_with_ssh(&cfg, "terok-executor-held", Some("claude")).await;
    let socket = opened.socket_dir.clone().unwrap().join("ssh-agent.sock");
    let token = opened.tokens["ssh"].clone();
    let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut hello = Vec::new();
    put_string(&mut hello, token.as_bytes());
    stream.write_all(&hello).await.unwrap();
    let ask = |data: &[u8]| {
        let mut request = vec![13];
        put_string(&mut request, &blob);
        put_string(&mut request, data);
        request.extend_from_slice(&0u32.to_be_bytes());
        let mut frame = Vec::new();
        put_string(&mut frame, &request);
        frame
    };
    async fn answer(stream: &mut tokio::net::UnixStream) -> Option<Vec<u8>> {
        let mut head = [0u8; 4];
        stream.read_exact(&mut head).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    }
    stream
        .write_all(&ask(&login_payload("git", &blob)))
        .await
        .unwrap();
    assert_eq!(
        answer(&mut stream).await.map(|a| a[0]),
        Some(14),
        "a login is signed"
    );
    stream.write_all(&ask(b"SSHSIG a commit")).await.unwrap();
    assert_eq!(answer(&mut stream).await, Some(vec![5]), "a commit is not");

    let close = ControlRequest::Close {
        container: "terok-executor-held".into(),
    };
    call(&cfg.paths.control_socket(), &close).await.unwrap();
    // Written or not (the peer may be gone), the request gets no answer.
    let _ = stream.write_all(&ask(&login_payload("git", &blob))).await;
    let after = tokio::time::timeout(Duration::from_secs(5), answer(&mut stream))
        .await
        .expect("the connection ends, it is not left hanging");
    assert_eq!(after, None, "signed after the container was closed");

    // The audit log is written behind the request path: wait for its lines.
    let signer_lines = || {
        let log = std::fs::read_to_string(cfg.paths.audit_log()).unwrap_or_default();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|l: &serde_json::Value| l["method"] == "SSH-SIGN")
            .collect();
        (log, lines)
    };
    let mut waited = 0;
    while signer_lines().1.len() < 2 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let (log, lines) = signer_lines();
    let fingerprint = terok_credentials::ssh::fingerprint(&blob);
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(lines[0]["subject"], "terok-executor-held");
    assert_eq!(lines[0]["path"], format!("login git with {fingerprint}"));
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[1]["outcome"], "denied");
    assert!(!log.contains(&token), "no token in the audit log");
}

/// A container that has its signer sign (or refuse) in a loop cannot rotate the audit log's
/// earlier lines away: its signer writes at most its budget of lines per window, and a login
/// name is logged cut short.
#[tokio::test(flavor = "multi_thread")]
async fn a_signer_flood_writes_a_bounded_number_of_audit_lines() {
    const REQUESTS: usize = 120;
    use terok_credentials::ssh::put_string;
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let blob = store_claude_ssh_key(&cfg);
    let opened = open_with_ssh(&cfg, "terok-executor-flood", Some("claude")).await;
    let socket = opened.socket_dir.clone().unwrap().join("ssh-agent.sock");
    let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut handshake = Vec::new();
    put_string(&mut handshake, opened.tokens["ssh"].as_bytes());
    stream.write_all(&handshake).await.unwrap();
    let long_user = "u".repeat(100_000);
    let began = std::time::Instant::now();
    for i in 0..REQUESTS {
        let data = if i % 2 == 0 {
            login_payload(&long_user, &blob)
        } else {
            b"SSHSIG".to_vec()
        };
        let mut request = vec![13];
        put_string(&mut request, &blob);
        put_string(&mut request, &data);
        request.extend_from_slice(&0u32.to_be_bytes());
        let mut frame = Vec::new();
        put_string(&mut frame, &request);
        stream.write_all(&frame).await.unwrap();
        let mut head = [0u8; 4];
        stream.read_exact(&mut head).await.unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
        stream.read_exact(&mut body).await.unwrap();
    }
    let took = began.elapsed();
    eprintln!("{REQUESTS} requests in {took:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = std::fs::read_to_string(cfg.paths.audit_log()).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["method"] == "SSH-SIGN")
        .collect();
    // The signer's window is 10 s: in one window exactly its budget, over more a budget each.
    let windows = 1 + (took.as_secs() / 10) as usize;
    assert!(
        lines.len() >= 20 && lines.len() <= 20 * windows,
        "{} lines in {took:?}",
        lines.len()
    );
    let first = lines[0]["path"].as_str().unwrap();
    assert!(
        first.starts_with(&format!("login {} with SHA256:", "u".repeat(64))),
        "{first}"
    );
    assert!(log.len() < 20_000, "{} bytes", log.len());
}

/// Stores a new Ed25519 key `k` for Claude's tasks; returns its public blob.
fn store_claude_ssh_key(cfg: &VaultConfig) -> Vec<u8> {
    let key = terok_credentials::ssh::SshPrivateKey::generate_ed25519().unwrap();
    let (dbkey, _) = terok_credentials::resolve_key(&cfg.key, &cfg.paths.db()).unwrap();
    let db = terok_credentials::CredentialDb::open(&cfg.paths.db(), dbkey, "test").unwrap();
    db.add_ssh_key("k", &key, "").unwrap();
    db.assign_ssh_key("k", "claude").unwrap();
    key.public_blob().unwrap()
}

/// One HTTP/1.1 request over TCP to `addr`; the status code, or `None` when nothing listens.
async fn status_over_tcp(addr: std::net::SocketAddr, token: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nHost: vault\r\nx-api-key: {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

async fn open_tcp_with(
    cfg: &VaultConfig,
    container: &str,
    bind: Option<std::net::IpAddr>,
    ports: Option<terok_vault::control::PortRange>,
) -> Result<Opened, String> {
    let request = ControlRequest::OpenTcp {
        container: container.into(),
        providers: vec!["claude".into()],
        scope: "standalone".into(),
        bind,
        ports,
    };
    match call(&cfg.paths.control_socket(), &request).await {
        Ok(ControlResponse::Opened(opened)) => Ok(opened),
        Err(refused) => Err(refused.to_string()),
        other => panic!("{other:?}"),
    }
}

/// Where the TCP listener of an [`open_tcp_with`] answers.
async fn open_tcp(
    cfg: &VaultConfig,
    container: &str,
    bind: Option<std::net::IpAddr>,
    ports: Option<terok_vault::control::PortRange>,
) -> Result<std::net::SocketAddr, String> {
    let opened = open_tcp_with(cfg, container, bind, ports).await?;
    Ok(std::net::SocketAddr::new(
        opened.address.unwrap(),
        opened.port.unwrap(),
    ))
}

/// The token binding of the sockets holds on TCP listeners too: a token works only on its own
/// container's listener; closing one stops it and leaves the other alone; listeners take the
/// address and the port range they are given.
#[tokio::test(flavor = "multi_thread")]
async fn tcp_listeners_accept_only_their_own_containers_tokens() {
    use terok_vault::control::PortRange;
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let cfg = start(dir.path(), &upstream).await;
    let a = open_tcp(&cfg, "terok-executor-aaa", None, None)
        .await
        .unwrap();
    assert!(a.ip().is_loopback(), "127.0.0.1 unless told: {a}");
    // Another loopback address, from a range (the first free port of it).
    let free = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let base = free.local_addr().unwrap().port();
    drop(free);
    let range = PortRange {
        start: base,
        end: base.saturating_add(5),
    };
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let b = open_tcp(&cfg, "terok-executor-bbb", Some(other), Some(range))
        .await
        .unwrap();
    assert_eq!(b.ip(), other);
    assert!((range.start..=range.end).contains(&b.port()), "{b}");
    // The tokens.
    let tokens = |container: &str| live_tokens(&cfg, container);
    assert_eq!(
        (tokens("terok-executor-aaa"), tokens("terok-executor-bbb")),
        (1, 1)
    );
    let again = open_tcp_with(&cfg, "terok-executor-aaa", None, None)
        .await
        .unwrap();
    // Opening again keeps the listener: same port.
    assert_eq!(again.port, Some(a.port()));
    let token_a = again.tokens["claude"].clone();
    assert_eq!(status_over_tcp(a, &token_a).await, Some(200));
    assert_eq!(
        status_over_tcp(b, &token_a).await,
        Some(401),
        "A's token on B's listener"
    );
    assert_eq!(upstream.requests().len(), 1);
    // Only the address it was bound to answers.
    let on_other = std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), b.port());
    assert_eq!(status_over_tcp(on_other, &token_a).await, None);
    // A range with no free port is an error that says so.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let err = open_tcp(
        &cfg,
        "terok-executor-ccc",
        None,
        Some(PortRange {
            start: port,
            end: port,
        }),
    )
    .await
    .unwrap_err();
    assert!(err.contains("no free port"), "{err}");
    // Never every address at once.
    for everywhere in ["0.0.0.0", "::", "::ffff:0.0.0.0", "255.255.255.255"] {
        let err = open_tcp(
            &cfg,
            "terok-executor-ddd",
            Some(everywhere.parse().unwrap()),
            None,
        )
        .await
        .unwrap_err();
        assert!(err.contains("is not one address"), "{err}");
    }
    // An address this host does not have yet (a rootful engine's bridge before its first
    // container) is taken: the listener waits for it. Nothing is sent to it.
    let later = open_tcp(
        &cfg,
        "terok-executor-eee",
        Some("198.51.100.7".parse().unwrap()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(later.ip().to_string(), "198.51.100.7");
    // Close stops A's listener and revokes its tokens; B answers as before.
    call(
        &cfg.paths.control_socket(),
        &ControlRequest::Close {
            container: "terok-executor-aaa".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(status_over_tcp(a, &token_a).await, None);
    assert_eq!(status_over_tcp(b, &token_a).await, Some(401));
    call(&cfg.paths.control_socket(), &ControlRequest::Stop)
        .await
        .unwrap();
}
