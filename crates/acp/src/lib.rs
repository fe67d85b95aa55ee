//! The ACP host proxy (Agent Client Protocol): an editor (Zed, Toad) connects to one Unix
//! socket per task container and sees every agent of the task as one ACP agent whose models
//! are `agent:model`; choosing a model starts that agent's ACP server inside the container
//! (`podman exec -i … terok-<agent>-acp`) and from then on the proxy forwards frames both ways.
//! The agent runs like any task process: through the task's vault, shield and gate.
//!
//! [`Daemon`] serves the socket; [`serve_connection`] is one client; [`Catalog`] knows the
//! agents and their models ([`probe`], [`ModelCache`]); [`Launcher`] starts agents' servers
//! ([`ContainerLauncher`] in a container, anything else in tests).

mod cache;
mod catalog;
mod container;
mod daemon;
mod error;
pub mod frame;
mod link;
pub mod models;
mod probe;
mod proxy;
mod warm;

pub use cache::{CacheKey, ModelCache};
pub use catalog::{Catalog, CatalogSettings, GLOBAL_IDENTITY, agents_of_label};
pub use container::{ContainerLauncher, ExecTransport, PodmanExec, SESSION_MARK};
pub use daemon::{Daemon, DaemonSettings, LABEL_AGENTS, Opened, Stopped, answers};
pub use error::{AcpError, AgentError};
pub use link::{AgentLink, BoxFuture, FIRST_OWN_ID, Launcher, ServerProcess, Spawned};
pub use probe::{AgentSession, WORKSPACE, handshake, probe, probe_keeping};
pub use proxy::{BIND_REQUEST_LIMIT, serve_connection};
