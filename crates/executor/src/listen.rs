//! Where a TCP listener binds, where a task's TCP listeners are recorded, and what a remote
//! engine's task keeps (the data of `services.mode: tcp` and remote engines, apart from
//! deciding them).

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use terok_vault::control::PortRange;

/// Where a TCP listener binds: one address of this host and the ports it may take (the
/// first free one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpListen {
    /// The address.
    pub address: IpAddr,
    /// The first port it may take.
    pub first_port: u16,
    /// The last port it may take.
    pub last_port: u16,
}

impl TcpListen {
    /// The ports as the vault's control protocol takes them.
    pub(crate) fn ports(&self) -> PortRange {
        PortRange {
            start: self.first_port,
            end: self.last_port,
        }
    }
}

/// The TCP side of a task's record: where its listeners are, so a restart opens them where
/// the container (whose environment cannot change) was told they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpRecord {
    /// The address the listeners bind to.
    pub bind: IpAddr,
    /// The address the container reaches them at.
    pub seen_as: IpAddr,
    /// The vault listener's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_port: Option<u16>,
    /// The gate server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_port: Option<u16>,
}

impl TcpRecord {
    /// Where `port` is bound again.
    pub(crate) fn listen(&self, port: u16) -> TcpListen {
        TcpListen {
            address: self.bind,
            first_port: port,
            last_port: port,
        }
    }
}

/// A task on a remote engine: its files were copied into the container, not mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    /// The engine (connection name or `CONTAINER_HOST`).
    pub engine: String,
    /// The user's directory the workspace was copied from, and is merged back into when a
    /// headless run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// What was copied into the container from the task's own directory (host path →
    /// container path), copied again with fresh tokens when the task restarts.
    #[serde(default)]
    pub task_files: Vec<(PathBuf, String)>,
}
