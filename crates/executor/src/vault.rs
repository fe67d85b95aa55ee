//! The executor's side of the vault: opening a container's listener (which mints its phantom
//! tokens) before the container exists, and closing it (which revokes them) when it is done.

use std::path::PathBuf;

use terok_container_env::VaultWiring;
use terok_vault::control::{ControlError, ControlRequest, ControlResponse, call};
use terok_vault::paths::{CONTAINER_SOCKET_DIR, LOOPBACK_PORT, SOCKET_NAME};

/// Token scope of standalone launches.
pub const STANDALONE_SCOPE: &str = "standalone";

/// Talks to the vault daemon over its control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultClient {
    control: PathBuf,
}

impl VaultClient {
    /// A client for the daemon listening on `control` (`VaultPaths::control_socket`).
    pub fn new(control: impl Into<PathBuf>) -> Self {
        Self {
            control: control.into(),
        }
    }

    /// Whether the daemon answers.
    pub async fn is_running(&self) -> bool {
        matches!(
            call(&self.control, &ControlRequest::Status).await,
            Ok(ControlResponse::Status(_))
        )
    }

    /// Opens `container`'s socket listener and mints a token for every provider in `providers`
    /// that has a stored credential. `Ok(None)` when the daemon does not run.
    pub async fn open(
        &self,
        container: &str,
        providers: Vec<String>,
    ) -> Result<Option<VaultWiring>, ControlError> {
        let request = ControlRequest::Open {
            container: container.to_owned(),
            providers,
            scope: STANDALONE_SCOPE.to_owned(),
            // The container's `dev` is the daemon's own user: the invoking user with keep-id,
            // host root with the rootful mapping.
            uid: None,
            stored_only: true,
        };
        match call(&self.control, &request).await {
            Ok(ControlResponse::Opened(opened)) => {
                let host_socket_dir = opened.socket_dir.ok_or_else(|| ControlError::Protocol {
                    path: self.control.clone(),
                    detail: "the daemon opened no socket directory".to_owned(),
                })?;
                Ok(Some(VaultWiring {
                    host_socket_dir,
                    container_socket_dir: CONTAINER_SOCKET_DIR.to_owned(),
                    socket_name: SOCKET_NAME.to_owned(),
                    loopback_port: LOOPBACK_PORT,
                    tokens: opened.tokens,
                    kinds: opened.kinds,
                }))
            }
            Ok(other) => Err(ControlError::Protocol {
                path: self.control.clone(),
                detail: format!("unexpected answer to open: {other:?}"),
            }),
            Err(ControlError::NotRunning { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Closes `container`'s listener and revokes its tokens; returns how many were revoked.
    pub async fn close(&self, container: &str) -> Result<usize, ControlError> {
        match call(
            &self.control,
            &ControlRequest::Close {
                container: container.to_owned(),
            },
        )
        .await?
        {
            ControlResponse::Revoked { tokens, .. } => Ok(tokens),
            _ => Ok(0),
        }
    }
}
