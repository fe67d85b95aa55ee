//! The vault daemon: one per user. It owns the credential database, serves the control socket
//! through which the executor opens and closes a listener per container, sweeps tokens of
//! containers that are gone, and refreshes OAuth tokens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use terok_credentials::routes::{RouteTable, read_routes};
use terok_credentials::{CredentialDb, DEFAULT_SET, KeyOptions, resolve_key};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};

use crate::audit::AuditLog;
use crate::control::{ControlRequest, ControlResponse, DaemonStatus, Opened, ServedRoutes};
use crate::listener::ListenerLimits;
use crate::paths::{VaultPaths, is_socket};
use crate::proxy::ListenerCtx;
use crate::signer::{SSH_PROVIDER, serve_signer, signer_socket};
use crate::state::Shared;

/// What an `Open` asks for.
#[derive(Clone, Copy)]
struct OpenUnix<'a> {
    container: &'a str,
    providers: &'a [String],
    scope: &'a str,
    uid: Option<u32>,
    stored_only: bool,
    ssh_scope: Option<&'a str>,
}

/// Seconds a freshly minted token is safe from sweeps: the runner mints before podman creates
/// the container, and `start` mints before the container runs again.
pub const SWEEP_GRACE_SECS: i64 = 60;

/// Returns the names of the containers that run now (the embedding binary asks podman).
/// Tokens of containers that stopped or vanished are revoked by sweeps (docs/decisions.md#3.3:
/// a token lives while its container runs).
pub type LiveContainers = Arc<dyn Fn() -> LiveContainersFuture + Send + Sync>;

/// What a [`LiveContainers`] call returns: the names, or why they could not be listed.
pub type LiveContainersFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<BTreeSet<String>, String>> + Send>>;

/// How to run the daemon.
#[derive(Clone)]
pub struct VaultConfig {
    /// Files and sockets.
    pub paths: VaultPaths,
    /// Where the data key comes from.
    pub key: KeyOptions,
    /// Lists running containers, for sweeps at start and every `sweep_interval`.
    pub live_containers: Option<LiveContainers>,
    /// How often OAuth credentials are checked for refresh.
    pub refresh_interval: Duration,
    /// How often tokens of containers that stopped without telling the vault are revoked.
    pub sweep_interval: Duration,
    /// What one container's listener may use.
    pub limits: ListenerLimits,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum VaultError {
    /// Another daemon holds the pidfile.
    #[error("the vault is already running{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning {
        /// Its pid, if readable.
        pid: Option<u32>,
    },
    /// Something that is not a socket sits where the control socket goes.
    #[error("refusing to remove {}: it is not a socket", path.display())]
    #[diagnostic(help("move the file away; the vault only ever removes stale sockets"))]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The key or database could not be opened.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Key(#[from] terok_credentials::key::KeyError),
    /// The database refused.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Db(#[from] terok_credentials::DbError),
    /// routes.json is invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Routes(#[from] terok_credentials::routes::RoutesError),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up TLS for upstreams: {0}")]
    Tls(String),
    /// A sidecar's bundle is unusable.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VaultError {
    let context = context.into();
    move |source| VaultError::Io { context, source }
}

/// Saved beside a container's socket so a restarted daemon can reopen it.
#[derive(Debug, Serialize, Deserialize)]
struct ListenerRecord {
    uid: Option<u32>,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ssh_scope: Option<String>,
    /// A TCP listener's address (a socket listener has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<std::net::SocketAddr>,
}

const LISTENER_RECORD: &str = ".listener.json";

/// How long a control connection may stay silent before it is closed.
const CONTROL_IDLE: Duration = Duration::from_secs(30);

enum Endpoint {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

/// Tokens minted for a container and the kinds of the credentials behind them.
struct Minted {
    tokens: BTreeMap<String, String>,
    kinds: BTreeMap<String, String>,
}

struct Listener {
    endpoint: Endpoint,
    /// When it was opened: a sweep spares a young one, whose container may be being created.
    opened: std::time::Instant,
    stop: Option<oneshot::Sender<()>>,
    /// The container's SSH signer, when it has one.
    signer: Option<tokio::task::AbortHandle>,
}

/// The running daemon's state.
pub struct Daemon {
    shared: Arc<Shared>,
    limits: ListenerLimits,
    listeners: Mutex<HashMap<String, Listener>>,
    stop: watch::Sender<bool>,
}

/// Where a TCP listener goes.
#[derive(Debug, Clone, Copy)]
struct TcpPlace {
    bind: std::net::IpAddr,
    ports: Option<crate::control::PortRange>,
}

impl TcpPlace {
    fn bind(self) -> Result<TcpListener, String> {
        crate::listener::bind_tcp(self.bind, self.ports)
    }
}

fn valid_container(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Opens the database, the audit log and the routes, without any socket (tests and
/// benchmarks use this directly; [`serve`] adds the sockets).
pub fn open_shared(config: &VaultConfig) -> Result<Arc<Shared>, VaultError> {
    let paths = &config.paths;
    let db_path = paths.db();
    let (key, source) = resolve_key(&config.key, &db_path)?;
    let db = CredentialDb::open(&db_path, key, &source.to_string())?;
    let routes = match read_routes(&paths.routes()) {
        Ok(routes) => routes,
        Err(terok_credentials::routes::RoutesError::Read { source: e, .. })
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::warn!(
                "{} does not exist; no routes until it is written and the daemon reloads",
                paths.routes().display()
            );
            RouteTable::new()
        }
        Err(err) => return Err(err.into()),
    };
    let client = crate::tls::upstream_client().map_err(|e| VaultError::Tls(e.to_string()))?;
    let audit = AuditLog::open(&paths.audit_log()).map_err(io_err(format!(
        "cannot open {}",
        paths.audit_log().display()
    )))?;
    Ok(Arc::new(
        Shared::new(db, routes, client, audit, paths.clone(), source.to_string())
            .with_body_deadline(config.limits.header_timeout),
    ))
}

/// A listener's handler, whose requests are checked against `container`'s tokens.
pub fn listener_app(shared: Arc<Shared>, container: Option<&str>) -> ListenerCtx {
    ListenerCtx {
        shared,
        container: container.map(Arc::from),
    }
}

/// Runs the daemon in the foreground until `Stop`, SIGTERM or SIGINT.
pub async fn serve(config: VaultConfig) -> Result<(), VaultError> {
    let paths = config.paths.clone();
    terok_core::secure_fs::ensure_private_dir(&paths.runtime_dir).map_err(|e| VaultError::Io {
        context: "runtime directory".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let _pidfile = lock_pidfile(&paths.pidfile())?;
    // Each container may hold up to `ListenerLimits::max_connections` connections; the
    // default soft limit would let a handful of busy containers starve the others.
    if let Err(err) = terok_core::limits::raise_open_file_limit() {
        tracing::warn!("cannot raise the open-file limit: {err}");
    }
    let control_path = paths.control_socket();
    clear_stale_socket(&control_path).await?;

    let shared = open_shared(&config)?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let daemon = Arc::new(Daemon {
        shared: shared.clone(),
        limits: config.limits,
        listeners: Mutex::new(HashMap::new()),
        stop: stop_tx,
    });

    daemon.reopen_listeners();

    let control = UnixListener::bind(&control_path).map_err(io_err(format!(
        "cannot listen on {}",
        control_path.display()
    )))?;
    set_mode(&control_path, 0o600)?;

    let refresh_shared = shared.clone();
    let interval = config.refresh_interval;
    tokio::spawn(async move {
        loop {
            for (provider, result) in crate::refresh::refresh_due(&refresh_shared).await {
                tracing::info!(provider, ?result, "OAuth refresh");
            }
            tokio::time::sleep(interval).await;
        }
    });

    tokio::spawn(crate::memory::release_after_bursts());
    tokio::spawn(keep_a_timer_due_soon());

    // The first sweep takes the tokens of containers that stopped while we were not running.
    // It runs beside the control socket, not before it: listing containers can take podman
    // seconds on a busy host, and a client waiting for the daemon to answer would give up.
    if let Some(live) = config.live_containers.clone() {
        let sweeper = daemon.clone();
        let interval = config.sweep_interval;
        tokio::spawn(async move {
            loop {
                sweeper.sweep_with(&live).await;
                tokio::time::sleep(interval).await;
            }
        });
    }

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io_err("cannot watch SIGTERM"))?;
    tracing::info!("vault serving; control socket {}", control_path.display());
    let mut failures = 0u32;
    loop {
        tokio::select! {
            accepted = control.accept() => match accepted {
                Ok((stream, _)) => {
                    failures = 0;
                    let daemon = daemon.clone();
                    tokio::spawn(async move { daemon.control_connection(stream).await });
                }
                Err(err) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!("control socket: accept failed: {err}");
                    tokio::time::sleep(crate::listener::accept_backoff(failures)).await;
                    failures = failures.saturating_add(1);
                }
            },
            _ = stop_rx.changed() => break,
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    daemon.close_all();
    let _ = std::fs::remove_file(&control_path);
    tracing::info!("vault stopped");
    Ok(())
}

/// Keeps a timer due within [`TIMER_FLOOR`] for the life of the daemon. tokio wakes its
/// sleeping driver (an eventfd write and another `epoll_wait` round) whenever a timer is armed
/// earlier than the one the driver last went to sleep towards, and every request arms one:
/// hyper's 30 s deadline for the next request head. Between requests the driver slept
/// towards the sweep, a minute away, so every request paid that wake-up (`strace`: one
/// eventfd write per request). With this timer always nearer than 30 s, request timers never
/// come first: one wake-up every 20 s instead of one per request.
async fn keep_a_timer_due_soon() {
    loop {
        tokio::time::sleep(TIMER_FLOOR).await;
    }
}

/// See [`keep_a_timer_due_soon`]: below every per-request deadline (30 s).
const TIMER_FLOOR: Duration = Duration::from_secs(20);

/// Locks the pidfile for the daemon's lifetime and writes our pid into it.
fn lock_pidfile(path: &Path) -> Result<std::fs::File, VaultError> {
    let mut file = terok_core::secure_fs::open_lock_file(path).map_err(|e| VaultError::Io {
        context: format!("cannot open {}", path.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    if file.try_lock().is_err() {
        let pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        return Err(VaultError::AlreadyRunning { pid });
    }
    file.set_len(0).map_err(io_err("pidfile"))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err("pidfile"))?;
    Ok(file)
}

/// Removes a socket nobody answers on; never removes anything that is not a socket.
async fn clear_stale_socket(path: &Path) -> Result<(), VaultError> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(_) if !is_socket(path) => Err(VaultError::NotASocket {
            path: path.to_path_buf(),
        }),
        Ok(_) => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(VaultError::AlreadyRunning { pid: None });
            }
            std::fs::remove_file(path)
                .map_err(io_err(format!("cannot remove stale {}", path.display())))
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// Hands `path` to `uid`; a symbolic link is changed itself, never followed (the container
/// sees its directory read-only, but root does not chown through links on principle).
fn chown(path: &Path, uid: u32) -> Result<(), VaultError> {
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(uid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| VaultError::Io {
        context: format!("chown {}", path.display()),
        source: e.into(),
    })
}

impl Daemon {
    async fn control_connection(self: Arc<Self>, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        // A client that connects and says nothing does not hold a task for ever.
        while let Ok(Ok(Some(line))) = tokio::time::timeout(CONTROL_IDLE, lines.next_line()).await {
            let response = match serde_json::from_str::<ControlRequest>(&line) {
                Ok(request) => self.clone().execute(request).await,
                Err(err) => ControlResponse::Error {
                    message: format!("bad request: {err}"),
                },
            };
            let mut text = serde_json::to_string(&response)
                .unwrap_or_else(|_| "{\"result\":\"error\",\"message\":\"encoding\"}".into());
            text.push('\n');
            if write.write_all(text.as_bytes()).await.is_err() {
                break;
            }
        }
    }

    async fn execute(self: Arc<Self>, request: ControlRequest) -> ControlResponse {
        let result = match request {
            ControlRequest::Open {
                container,
                providers,
                scope,
                uid,
                stored_only,
                ssh_scope,
            } => {
                let opening = OpenUnix {
                    container: &container,
                    providers: &providers,
                    scope: &scope,
                    uid,
                    stored_only,
                    ssh_scope: ssh_scope.as_deref(),
                };
                self.open_unix(&opening).await
            }
            ControlRequest::OpenTcp {
                container,
                providers,
                scope,
                bind,
                ports,
            } => {
                let place = TcpPlace {
                    bind: bind.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
                    ports,
                };
                self.open_tcp(&container, &providers, &scope, place).await
            }
            // The name becomes a path: one that is not a container name closes nothing.
            ControlRequest::Close { container } if !valid_container(&container) => Err(format!(
                "invalid container name `{}`",
                container.escape_debug()
            )),
            ControlRequest::Close { container } => Ok(self.close(&container)),
            ControlRequest::Sweep { live, grace_secs } => self.sweep(
                &live.into_iter().collect(),
                grace_secs.unwrap_or(SWEEP_GRACE_SECS),
            ),
            ControlRequest::Reload => read_routes(&self.shared.paths.routes())
                .map(|routes| {
                    self.shared.set_routes(routes);
                    ControlResponse::Ok
                })
                .map_err(|e| e.to_string()),
            ControlRequest::Routes => Ok(ControlResponse::Routes(ServedRoutes {
                hash: self.shared.routes_hash(),
                routes: self.shared.routes(),
            })),
            ControlRequest::Rejections { container } => Ok(ControlResponse::Rejections {
                rejections: self.shared.rejections.current(container.as_deref()),
            }),
            ControlRequest::Status => Ok(ControlResponse::Status(self.status())),
            ControlRequest::Stop => {
                let _ = self.stop.send(true);
                Ok(ControlResponse::Ok)
            }
        };
        result.unwrap_or_else(|message| ControlResponse::Error { message })
    }

    fn status(&self) -> DaemonStatus {
        let mut listeners: Vec<String> = self
            .listeners
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        listeners.sort();
        DaemonStatus {
            pid: std::process::id(),
            listeners,
            routes: self.shared.route_count(),
            routes_hash: self.shared.routes_hash(),
            rejected: self.shared.rejections.last_by_provider(),
            db: self.shared.paths.db(),
            key_source: self.shared.key_source.clone(),
        }
    }

    /// Mints a token per provider; with `stored_only`, only for providers that have a stored
    /// credential. Returns the tokens and the kinds of the stored credentials.
    fn mint(
        &self,
        container: &str,
        providers: &[String],
        scope: &str,
        stored_only: bool,
    ) -> Result<Minted, String> {
        let kinds: BTreeMap<String, String> = self
            .shared
            .with_db(|db| db.list_credentials(DEFAULT_SET))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| providers.contains(&c.provider))
            .map(|c| (c.provider, c.kind))
            .collect();
        let mut tokens = BTreeMap::new();
        for provider in providers {
            if stored_only && !kinds.contains_key(provider) {
                continue;
            }
            let token = self
                .shared
                .with_db(|db| db.mint_token(scope, container, DEFAULT_SET, provider))
                .map_err(|e| e.to_string())?;
            tokens.insert(provider.clone(), token);
        }
        self.shared.invalidate();
        Ok(Minted { tokens, kinds })
    }

    async fn open_unix(&self, opening: &OpenUnix<'_>) -> Result<ControlResponse, String> {
        let OpenUnix {
            container,
            providers,
            scope,
            uid,
            stored_only,
            ssh_scope,
        } = *opening;
        if !valid_container(container) {
            return Err(format!("invalid container name `{container}`"));
        }
        let dir = self.shared.paths.container_dir(container);
        let already = self
            .listeners
            .lock()
            .map(|l| l.contains_key(container))
            .unwrap_or(false);
        if !already {
            self.bind_unix(container, uid, scope, ssh_scope)
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut minted = self.mint(container, providers, scope, stored_only)?;
        if let Some(ssh_scope) = ssh_scope
            && self.has_ssh_keys(ssh_scope)
        {
            self.bind_signer(container, uid, ssh_scope)
                .await
                .map_err(|e| e.to_string())?;
            let token = self
                .shared
                .with_db(|db| db.mint_token(scope, container, DEFAULT_SET, SSH_PROVIDER))
                .map_err(|e| e.to_string())?;
            self.shared.invalidate();
            minted.tokens.insert(SSH_PROVIDER.to_owned(), token);
        }
        Ok(ControlResponse::Opened(Opened {
            socket_dir: Some(dir),
            port: None,
            address: None,
            tokens: minted.tokens,
            kinds: minted.kinds,
            routes_hash: self.shared.routes_hash(),
        }))
    }

    /// Whether SSH keys are stored for `ssh_scope` (its own or every scope's).
    fn has_ssh_keys(&self, ssh_scope: &str) -> bool {
        self.shared
            .with_db(|db| db.ssh_keys_for(ssh_scope))
            .is_ok_and(|keys| !keys.is_empty())
    }

    /// The container's SSH signer socket beside its vault socket (once).
    async fn bind_signer(
        &self,
        container: &str,
        uid: Option<u32>,
        ssh_scope: &str,
    ) -> Result<(), VaultError> {
        let bound = self
            .listeners
            .lock()
            .map(|l| l.get(container).is_some_and(|x| x.signer.is_some()))
            .unwrap_or(false);
        if bound {
            return Ok(());
        }
        let socket = signer_socket(&self.shared.paths.container_dir(container));
        clear_stale_socket(&socket).await?;
        let listener = UnixListener::bind(&socket)
            .map_err(io_err(format!("cannot listen on {}", socket.display())))?;
        set_mode(&socket, 0o600)?;
        if let Some(uid) = uid
            && rustix::process::geteuid().is_root()
            && uid != 0
        {
            chown(&socket, uid)?;
        }
        let handle = serve_signer(self.shared.clone(), container, ssh_scope, listener);
        match self.listeners.lock() {
            Ok(mut listeners) => match listeners.get_mut(container) {
                Some(entry) => entry.signer = Some(handle),
                None => handle.abort(),
            },
            Err(_) => handle.abort(),
        }
        Ok(())
    }

    async fn bind_unix(
        &self,
        container: &str,
        uid: Option<u32>,
        scope: &str,
        ssh_scope: Option<&str>,
    ) -> Result<(), VaultError> {
        let dir = self.shared.paths.container_dir(container);
        terok_core::secure_fs::ensure_private_dir(&dir).map_err(|e| VaultError::Io {
            context: format!("cannot create {}", dir.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
        let socket = self.shared.paths.container_socket(container);
        clear_stale_socket(&socket).await?;
        let listener = UnixListener::bind(&socket)
            .map_err(io_err(format!("cannot listen on {}", socket.display())))?;
        set_mode(&socket, 0o600)?;
        // The container's `dev` must be able to connect: as root, hand the socket to its uid.
        if let Some(uid) = uid
            && rustix::process::geteuid().is_root()
            && uid != 0
        {
            chown(&dir, uid)?;
            chown(&socket, uid)?;
        }
        let record = serde_json::to_vec(&ListenerRecord {
            uid,
            scope: scope.to_owned(),
            ssh_scope: ssh_scope.map(str::to_owned),
            tcp: None,
        })
        .unwrap_or_default();
        let _ = terok_core::secure_fs::write_atomic(&dir.join(LISTENER_RECORD), &record, 0o600);
        self.serve_container(container, listener, Endpoint::Unix(socket));
        Ok(())
    }

    /// Serves `container`'s router on `listener` and records it, so closing the container
    /// stops it.
    fn serve_container<L: crate::listener::Accept>(
        &self,
        container: &str,
        listener: L,
        endpoint: Endpoint,
    ) {
        let (tx, rx) = oneshot::channel();
        let app = listener_app(self.shared.clone(), Some(container));
        tokio::spawn(crate::listener::serve(listener, app, self.limits, rx));
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.insert(
                container.to_owned(),
                Listener {
                    endpoint,
                    opened: std::time::Instant::now(),
                    stop: Some(tx),
                    signer: None,
                },
            );
        }
    }

    async fn open_tcp(
        &self,
        container: &str,
        providers: &[String],
        scope: &str,
        place: TcpPlace,
    ) -> Result<ControlResponse, String> {
        if !valid_container(container) {
            return Err(format!("invalid container name `{container}`"));
        }
        let existing =
            self.listeners
                .lock()
                .ok()
                .and_then(|l| match l.get(container).map(|x| &x.endpoint) {
                    Some(Endpoint::Tcp(addr)) => Some(*addr),
                    _ => None,
                });
        let addr = match existing {
            Some(addr) => addr,
            None => {
                let listener = place.bind()?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                self.record_tcp(container, scope, addr)?;
                self.serve_container(container, listener, Endpoint::Tcp(addr));
                addr
            }
        };
        let minted = self.mint(container, providers, scope, false)?;
        Ok(ControlResponse::Opened(Opened {
            socket_dir: None,
            port: Some(addr.port()),
            address: Some(addr.ip()),
            tokens: minted.tokens,
            kinds: minted.kinds,
            routes_hash: self.shared.routes_hash(),
        }))
    }

    /// Saves where `container`'s TCP listener is, so a restarted daemon opens it again there.
    fn record_tcp(
        &self,
        container: &str,
        scope: &str,
        addr: std::net::SocketAddr,
    ) -> Result<(), String> {
        let dir = self.shared.paths.container_dir(container);
        terok_core::secure_fs::ensure_private_dir(&dir).map_err(|e| e.to_string())?;
        let record = serde_json::to_vec(&ListenerRecord {
            uid: None,
            scope: scope.to_owned(),
            ssh_scope: None,
            tcp: Some(addr),
        })
        .unwrap_or_default();
        terok_core::secure_fs::write_atomic(&dir.join(LISTENER_RECORD), &record, 0o600)
            .map_err(|e| e.to_string())
    }

    /// Revokes `container`'s tokens and closes its listener.
    fn close(&self, container: &str) -> ControlResponse {
        let revoked = self
            .shared
            .with_db(|db| db.revoke_subject(container))
            .unwrap_or(0);
        self.shared.invalidate();
        self.shared.rejections.forget(container);
        self.stop_listener(container);
        ControlResponse::Revoked {
            containers: vec![container.to_owned()],
            tokens: revoked,
        }
    }

    fn stop_listener(&self, container: &str) {
        let listener = self
            .listeners
            .lock()
            .ok()
            .and_then(|mut l| l.remove(container));
        let dir = self.shared.paths.container_dir(container);
        if let Some(mut listener) = listener {
            if let Some(stop) = listener.stop.take() {
                let _ = stop.send(());
            }
            if let Some(signer) = listener.signer.take() {
                signer.abort();
                let _ = std::fs::remove_file(signer_socket(&dir));
            }
            if let Endpoint::Unix(socket) = listener.endpoint {
                let _ = std::fs::remove_file(&socket);
            }
        }
        let _ = std::fs::remove_file(dir.join(LISTENER_RECORD));
        let _ = std::fs::remove_dir(&dir);
    }

    /// Asks `live` which containers run and sweeps the rest (errors are logged: a sweep is
    /// housekeeping and retried on the next tick).
    async fn sweep_with(&self, live: &LiveContainers) {
        match live().await {
            Ok(live) => match self.sweep(&live, SWEEP_GRACE_SECS) {
                Ok(ControlResponse::Revoked { containers, .. }) if !containers.is_empty() => {
                    tracing::info!(
                        "swept tokens of stopped containers: {}",
                        containers.join(", ")
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!("sweep failed: {err}"),
            },
            Err(err) => tracing::warn!("cannot list containers for a sweep: {err}"),
        }
    }

    fn sweep(&self, live: &BTreeSet<String>, grace_secs: i64) -> Result<ControlResponse, String> {
        let revoked = self
            .shared
            .with_db(|db| db.sweep(live, grace_secs))
            .map_err(|e| e.to_string())?;
        let mut closed: BTreeSet<String> = revoked.iter().cloned().collect();
        // A listener opened within the grace period belongs to a container being created —
        // one launched without a credential holds no token to be spared by.
        let grace = std::time::Duration::from_secs(u64::try_from(grace_secs).unwrap_or(0));
        let open: Vec<String> = self
            .listeners
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(_, listener)| listener.opened.elapsed() >= grace)
                    .map(|(container, _)| container.clone())
                    .collect()
            })
            .unwrap_or_default();
        // A listener without tokens serves nobody; one whose tokens are still in their grace
        // period belongs to a container being created.
        let holding: BTreeSet<String> = self
            .shared
            .with_db(|db| db.list_tokens())
            .map(|t| t.into_iter().map(|t| t.subject).collect())
            .unwrap_or_default();
        closed.extend(
            open.into_iter()
                .filter(|c| !live.contains(c) && !holding.contains(c)),
        );
        for container in &closed {
            self.stop_listener(container);
        }
        self.shared.invalidate();
        Ok(ControlResponse::Revoked {
            tokens: revoked.len(),
            containers: closed.into_iter().collect(),
        })
    }

    /// Reopens the listeners of containers that still hold tokens (after a daemon restart).
    fn reopen_listeners(self: &Arc<Self>) {
        let subjects: BTreeSet<String> = self
            .shared
            .with_db(|db| db.list_tokens())
            .map(|tokens| tokens.into_iter().map(|t| t.subject).collect())
            .unwrap_or_default();
        for container in subjects {
            let record_path = self
                .shared
                .paths
                .container_dir(&container)
                .join(LISTENER_RECORD);
            let Ok(text) = std::fs::read(&record_path) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<ListenerRecord>(&text) else {
                continue;
            };
            let daemon = self.clone();
            if let Some(addr) = record.tcp {
                tokio::spawn(async move {
                    // The same address and port: the container was told them.
                    let place = TcpPlace {
                        bind: addr.ip(),
                        ports: Some(crate::control::PortRange {
                            start: addr.port(),
                            end: addr.port(),
                        }),
                    };
                    match place.bind() {
                        Ok(listener) => {
                            daemon.serve_container(&container, listener, Endpoint::Tcp(addr));
                        }
                        // Someone else may hold the port now, and the container still
                        // sends its requests there: its tokens must be worth nothing.
                        Err(err) => {
                            let revoked = daemon
                                .shared
                                .with_db(|db| db.revoke_subject(&container))
                                .unwrap_or(0);
                            tracing::warn!(
                                "cannot reopen the listener of {container} at {addr}: {err}; \
                                 its {revoked} token(s) are revoked"
                            );
                        }
                    }
                });
                continue;
            }
            tokio::spawn(async move {
                let ssh_scope = record.ssh_scope.as_deref();
                if let Err(err) = daemon
                    .bind_unix(&container, record.uid, &record.scope, ssh_scope)
                    .await
                {
                    tracing::warn!("cannot reopen the listener of {container}: {err}");
                }
                if let Some(ssh_scope) = ssh_scope
                    && daemon.has_ssh_keys(ssh_scope)
                    && let Err(err) = daemon.bind_signer(&container, record.uid, ssh_scope).await
                {
                    tracing::warn!("cannot reopen the SSH signer of {container}: {err}");
                }
            });
        }
    }

    fn close_all(&self) {
        let names: Vec<String> = self
            .listeners
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        for name in names {
            // Keep the tokens and the record: containers outlive a daemon restart.
            if let Some(mut listener) = self.listeners.lock().ok().and_then(|mut l| l.remove(&name))
            {
                if let Some(stop) = listener.stop.take() {
                    let _ = stop.send(());
                }
                if let Some(signer) = listener.signer.take() {
                    signer.abort();
                }
                if let Endpoint::Unix(socket) = listener.endpoint {
                    let _ = std::fs::remove_file(socket);
                }
            }
        }
    }
}
