//! Where a task's vault listener is under `services.mode: tcp`: the address it binds to, the
//! address the container reaches it at, and the network the container joins for that
//! (docs/scale.md).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use terok_core::config::{ServicesMode, TerokConfig};
use terok_podman::ContainerRuntime;
use terok_vault::control::PortRange;

use crate::error::{ExecutorError, RemoteRefusal, TcpRefusal};
use crate::launch::options::{Egress, Mode};
use crate::listen::{TcpListen, TcpRecord};
use crate::session::Executor;

/// The host as slirp4netns shows it to a container when it may reach the host's loopback.
const SLIRP_HOST_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
/// The rootless network that maps [`SLIRP_HOST_LOOPBACK`] to this host's loopback.
const SLIRP_WITH_HOST_LOOPBACK: &str = "slirp4netns:allow_host_loopback=true";
/// The network a rootful container joins unless told otherwise.
const DEFAULT_ROOTFUL_NETWORK: &str = "podman";

/// A TCP vault listener's place, decided before it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpPlace {
    /// The address the listener binds to on this host.
    pub bind: IpAddr,
    /// The address the container connects to (its `host.containers.internal`).
    pub seen_as: IpAddr,
    /// The network the container joins instead of `--network`'s, when the place needs one.
    pub network: Option<String>,
    /// The ports the vault listener may take (`vault.port`, else `network.port_range_*`).
    pub ports: PortRange,
    /// The ports the gate server may take (`gate_server.port`, else `network.port_range_*`).
    pub gate_ports: PortRange,
}

impl TcpPlace {
    /// Where its vault listener binds.
    pub fn listen(&self) -> TcpListen {
        self.listen_on(self.ports)
    }

    /// Where its gate server binds.
    pub fn listen_gate(&self) -> TcpListen {
        self.listen_on(self.gate_ports)
    }

    fn listen_on(&self, ports: PortRange) -> TcpListen {
        TcpListen {
            address: self.bind,
            first_port: ports.start,
            last_port: ports.end,
        }
    }

    /// The one address and port the container's firewall must let through to a listener.
    pub fn service(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.seen_as, port)
    }

    /// The record of its listeners, once open.
    pub fn record(&self, vault_port: Option<u16>, gate_port: Option<u16>) -> TcpRecord {
        TcpRecord {
            bind: self.bind,
            seen_as: self.seen_as,
            vault_port,
            gate_port,
        }
    }
}

/// The ports a listener may take: its fixed port (`vault.port`, `gate_server.port`) alone,
/// else the configured range.
fn port_range(config: &TerokConfig, fixed: Option<u16>) -> PortRange {
    match fixed {
        Some(port) => PortRange {
            start: port,
            end: port,
        },
        None => PortRange {
            start: config.network.port_range_start,
            end: config.network.port_range_end,
        },
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// Whether tasks reach the vault over TCP (`services.mode: tcp`).
    pub(crate) fn services_over_tcp(&self) -> bool {
        self.config.config.services.mode == ServicesMode::Tcp
    }

    /// Refuses what a remote engine cannot run: its containers see no socket of this host,
    /// no hook of this host loads their firewall, and a port it publishes is on its host.
    pub(crate) fn check_remote_launch(
        &self,
        egress: Egress,
        mode: &Mode,
        krun: bool,
    ) -> Result<(), ExecutorError> {
        let Some(engine) = self.runtime.remote_engine() else {
            return Ok(());
        };
        let refused = |reason| ExecutorError::RemoteEngineRefused {
            engine: engine.clone(),
            reason,
        };
        let config = &self.config.config;
        if config.services.mode != ServicesMode::Tcp {
            return Err(refused(RemoteRefusal::Sockets));
        }
        if config.services.address.is_none() {
            return Err(refused(RemoteRefusal::NoAddress));
        }
        if egress == Egress::Allowlist {
            return Err(refused(RemoteRefusal::Firewall));
        }
        match mode {
            Mode::Web(_) => return Err(refused(RemoteRefusal::Mode("a web UI"))),
            Mode::Tool { .. } => return Err(refused(RemoteRefusal::Mode("a sidecar tool"))),
            Mode::Headless { .. } | Mode::Interactive { .. } => {}
        }
        if krun {
            return Err(refused(RemoteRefusal::Mode("a krun microVM")));
        }
        Ok(())
    }

    /// Where a task's TCP listener goes: `services.address` when set (a remote engine's
    /// containers reach this host there); rootful, the gateway of the container's bridge;
    /// rootless, this host's loopback, which slirp4netns maps into the container — only
    /// behind the firewall, which lets the one port through and nothing else of the loopback.
    pub(crate) async fn tcp_place(
        &self,
        egress: Egress,
        network: Option<&str>,
        rootful: bool,
    ) -> Result<TcpPlace, ExecutorError> {
        let refused = |reason| ExecutorError::TcpServicesRefused { reason };
        if egress == Egress::Offline {
            return Err(refused(TcpRefusal::Offline));
        }
        let config = &self.config.config;
        let ports = port_range(config, config.vault.port);
        let gate_ports = port_range(config, config.gate_server.port);
        if let Some(address) = config.services.address {
            return Ok(TcpPlace {
                bind: address,
                seen_as: address,
                network: None,
                ports,
                gate_ports,
            });
        }
        if rootful {
            let network = network.unwrap_or(DEFAULT_ROOTFUL_NETWORK);
            let gateway = self
                .runtime
                .network_gateway(network)
                .await?
                .ok_or_else(|| refused(TcpRefusal::NoGateway(network.to_owned())))?;
            return Ok(TcpPlace {
                bind: gateway,
                seen_as: gateway,
                network: None,
                ports,
                gate_ports,
            });
        }
        if network.is_some() {
            return Err(refused(TcpRefusal::RootlessNetwork));
        }
        if egress == Egress::Open {
            return Err(refused(TcpRefusal::RootlessOpen));
        }
        Ok(TcpPlace {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seen_as: SLIRP_HOST_LOOPBACK,
            network: Some(SLIRP_WITH_HOST_LOOPBACK.to_owned()),
            ports,
            gate_ports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_port_is_a_range_of_one() {
        let mut config = TerokConfig::default();
        assert_eq!(
            port_range(&config, None),
            PortRange {
                start: 18700,
                end: 32700
            }
        );
        assert_eq!(
            port_range(&config, Some(19000)),
            PortRange {
                start: 19000,
                end: 19000
            }
        );
        config.network.port_range_start = 20000;
        assert_eq!(port_range(&config, None).start, 20000);
    }
}
