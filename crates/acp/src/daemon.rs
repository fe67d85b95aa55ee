//! The proxy daemon of one task container: a Unix socket (owner-only) where each connection
//! is one ACP client with its own session; it stops when asked or when the container stops
//! running, ends every connection's agent server, and removes its socket.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use terok_podman::ContainerRuntime;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cache::ModelCache;
use crate::catalog::{Catalog, CatalogSettings, agents_of_label};
use crate::container::{ContainerLauncher, ExecTransport};
use crate::error::AcpError;
use crate::proxy::serve_connection;

/// The image label that names an image's agents.
pub const LABEL_AGENTS: &str = "ai.terok.agents";
/// How long a connect to an existing socket may take to count as a live daemon.
const LIVE_CHECK: Duration = Duration::from_millis(200);
/// How long stopping connections may take to end their agents' servers.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// How a daemon runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DaemonSettings {
    /// The socket.
    pub socket: PathBuf,
    /// The limit of one agent probe.
    pub probe_timeout: Duration,
    /// The ACP `authenticate` method per agent, for agents that need one.
    pub auth_methods: BTreeMap<String, String>,
    /// How often the daemon asks whether the container still runs.
    pub poll: Duration,
    /// Whether to keep one agent's server started ahead of the next session.
    pub keep_warm: bool,
    /// How the servers are started inside (`None`: `podman exec` into the container).
    pub transport: Option<Arc<dyn ExecTransport>>,
}

impl DaemonSettings {
    /// Settings with the socket at `socket`, a 30 s probe limit, a 2 s container poll and a
    /// warm server.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            probe_timeout: Duration::from_secs(30),
            auth_methods: BTreeMap::new(),
            poll: Duration::from_secs(2),
            keep_warm: true,
            transport: None,
        }
    }

    /// Starting the servers through `transport` instead of `podman exec` (a krun guest is
    /// reached over SSH).
    pub fn transport(mut self, transport: Arc<dyn ExecTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Whether to keep one agent's server started ahead of the next session (on by
    /// default).
    pub fn keep_warm(mut self, keep: bool) -> Self {
        self.keep_warm = keep;
        self
    }

    /// With this probe limit.
    pub fn probe_timeout(mut self, limit: Duration) -> Self {
        self.probe_timeout = limit;
        self
    }

    /// With these `authenticate` methods.
    pub fn auth_methods(mut self, methods: BTreeMap<String, String>) -> Self {
        self.auth_methods = methods;
        self
    }
}

/// What opening a daemon found.
#[non_exhaustive]
pub enum Opened<R: ContainerRuntime> {
    /// Another daemon answers on the socket already.
    AlreadyActive(PathBuf),
    /// This one is bound and ready to run.
    Ready(Daemon<R>),
}

/// Why a daemon stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// The container stopped running (or is gone).
    ContainerStopped,
    /// It was asked to stop.
    Shutdown,
}

/// A bound daemon.
pub struct Daemon<R: ContainerRuntime> {
    runtime: Arc<R>,
    container: String,
    listener: UnixListener,
    socket: PathBuf,
    agents: Vec<String>,
    catalog: Arc<Catalog>,
    poll: Duration,
}

impl<R: ContainerRuntime> Daemon<R> {
    /// Binds the socket for `container`, which must run; when another daemon answers there
    /// already, says so and binds nothing.
    pub async fn open(
        runtime: Arc<R>,
        container: &str,
        settings: DaemonSettings,
    ) -> Result<Opened<R>, AcpError> {
        let socket = settings.socket.clone();
        if answers(&socket).await {
            return Ok(Opened::AlreadyActive(socket));
        }
        let info = runtime
            .inspect(container)
            .await?
            .ok_or_else(|| AcpError::NoContainer(container.to_owned()))?;
        if !info.state.running {
            return Err(AcpError::NotRunning(container.to_owned()));
        }
        let image = runtime
            .image_inspect(&info.image)
            .await?
            .ok_or_else(|| AcpError::NoImage {
                container: container.to_owned(),
                image: info.image.clone(),
            })?;
        let agents = agents_of_label(image.labels.get(LABEL_AGENTS).map(String::as_str));
        let listener = bind(&socket)?;
        let launcher = Arc::new(match settings.transport {
            Some(transport) => ContainerLauncher::with_transport(transport),
            None => ContainerLauncher::new(Arc::clone(&runtime), &info.name),
        });
        let catalog = Catalog::new(
            CatalogSettings {
                image: image.id,
                agents: agents.clone(),
                auth_methods: settings.auth_methods,
                probe_timeout: settings.probe_timeout,
                keep_warm: settings.keep_warm,
            },
            Arc::new(ModelCache::new()),
            launcher,
        );
        Ok(Opened::Ready(Self {
            runtime,
            container: info.name,
            listener,
            socket,
            agents,
            catalog: Arc::new(catalog),
            poll: settings.poll,
        }))
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agents of the container's image (before the check for ACP servers).
    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    /// Serves clients until `shutdown` resolves or the container stops running; then ends
    /// every connection (and its agent's server) and removes the socket.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Stopped {
        let (stop, stopping) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut poll = tokio::time::interval(self.poll);
        tokio::pin!(shutdown);
        let stopped = loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (reader, writer) = stream.into_split();
                        connections.spawn(serve_connection(
                            Arc::clone(&self.catalog),
                            reader,
                            writer,
                            stopping.clone(),
                        ));
                    }
                    Err(err) => {
                        tracing::warn!("acp: accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = poll.tick() => if !self.container_runs().await {
                    tracing::info!(container = %self.container, "acp: the container stopped; stopping");
                    break Stopped::ContainerStopped;
                },
                () = &mut shutdown => break Stopped::Shutdown,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        };
        let _ = stop.send(true);
        let _ = tokio::time::timeout(DRAIN_LIMIT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        self.catalog.end_warm().await;
        let _ = fs_err::remove_file(&self.socket);
        stopped
    }

    /// Whether the container still runs; a podman that does not answer is asked again later.
    async fn container_runs(&self) -> bool {
        match self.runtime.inspect(&self.container).await {
            Ok(Some(info)) => info.state.running,
            Ok(None) => false,
            Err(err) => {
                tracing::warn!("acp: cannot inspect {}: {err}", self.container);
                true
            }
        }
    }
}

/// Whether a daemon answers on `socket`.
pub async fn answers(socket: &Path) -> bool {
    matches!(
        tokio::time::timeout(LIVE_CHECK, UnixStream::connect(socket)).await,
        Ok(Ok(_))
    )
}

/// Binds `socket` owner-only, replacing a dead daemon's socket file (never another file).
fn bind(socket: &Path) -> Result<UnixListener, AcpError> {
    if let Some(parent) = socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        terok_core::secure_fs::ensure_private_dir(parent)?;
    }
    if let Ok(meta) = fs_err::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            return Err(AcpError::NotASocket(socket.to_path_buf()));
        }
        fs_err::remove_file(socket).map_err(AcpError::io("cannot remove a stale ACP socket"))?;
    }
    let listener = UnixListener::bind(socket).map_err(AcpError::io(format!(
        "cannot listen on {}",
        socket.display()
    )))?;
    fs_err::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(AcpError::io("cannot make the ACP socket private"))?;
    Ok(listener)
}
