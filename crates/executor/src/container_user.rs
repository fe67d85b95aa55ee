//! How a session maps a container's users: keep-id rootless; rootful, every container id —
//! `dev` included, see [`RootfulTask::decide`] — onto terok's subordinate range, reserved in
//! `/etc/subuid` and `/etc/subgid` by `setup`.

use std::path::Path;

use terok_core::subids::{IdRange, IdReservation, id_reservation, reserve_ids};
use terok_podman::{ContainerRuntime, UserMapping};

use crate::error::ExecutorError;
use crate::ownership::RootfulTask;
use crate::session::Executor;

/// Who a container's users are on the host, as a launch (or a caller starting a container of
/// its own) maps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUser {
    /// The mapping podman gets.
    pub mapping: UserMapping,
    /// Rootful: `dev`'s host ids and the workspace lent to it; `None` rootless (keep-id makes
    /// `dev` the invoking user).
    pub rootful: Option<RootfulTask>,
    /// Rootful, and the subordinate range is not reserved in `/etc/subuid` and `/etc/subgid`:
    /// the range used, which an account added later could take.
    pub unreserved: Option<IdRange>,
}

impl ContainerUser {
    /// The uid the vault hands the container's socket to (`None`: the daemon's own user).
    pub fn socket_uid(&self) -> Option<u32> {
        self.rootful.as_ref().map(|r| r.dev_uid)
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// How a container on `workspace` (the user's directory, or `None` for one terok makes)
    /// maps its users: keep-id rootless; rootful, `dev` as [`RootfulTask::decide`] says.
    pub fn container_user(&self, workspace: Option<&Path>) -> Result<ContainerUser, ExecutorError> {
        if !self.env.is_root() {
            return Ok(ContainerUser {
                mapping: UserMapping::KeepId,
                rootful: None,
                unreserved: None,
            });
        }
        let reservation = id_reservation(&self.paths.host_ids_dir);
        let task = RootfulTask::decide(workspace, reservation.range).map_err(ExecutorError::io(
            format!(
                "cannot inspect the workspace {}",
                workspace.unwrap_or(Path::new("")).display()
            ),
        ))?;
        Ok(ContainerUser {
            mapping: UserMapping::Rootful(task.ids()),
            rootful: Some(task),
            unreserved: (!reservation.reserved).then_some(reservation.range),
        })
    }

    /// Whether terok's subordinate id range is reserved (rootful only; `None` rootless, where
    /// podman's own keep-id mapping is used).
    pub fn id_reservation(&self) -> Option<IdReservation> {
        self.env
            .is_root()
            .then(|| id_reservation(&self.paths.host_ids_dir))
    }

    /// Reserves terok's subordinate id range in `/etc/subuid` and `/etc/subgid` when it is
    /// not yet (rootful only); returns the range when it was added.
    pub fn reserve_id_range(&self) -> Result<Option<IdRange>, ExecutorError> {
        match self.id_reservation() {
            Some(found) if !found.reserved => {
                reserve_ids(&self.paths.host_ids_dir, found.range)?;
                Ok(Some(found.range))
            }
            _ => Ok(None),
        }
    }
}
