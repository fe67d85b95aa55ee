//! Where a TCP listener binds, and where a task's TCP listeners are recorded (the data of
//! `services.mode: tcp`, apart from deciding it).

use std::net::IpAddr;

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
