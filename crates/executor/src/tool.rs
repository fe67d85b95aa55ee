//! Tool runs (`run-tool`): a sidecar tool gets its provider's real credential — the one case
//! where a stored secret enters a container, which is why a tool's container gets nothing of
//! an agent's, lives for one run, and is removed when it ends.

use terok_credentials::DEFAULT_SET;
use terok_podman::ContainerRuntime;
use terok_roster::{Agent, SidecarSpec};

use crate::error::ExecutorError;
use crate::launch::options::RunEvent;
use crate::session::Executor;

/// The container variables of a tool's credential and, when one cannot be filled, what to
/// tell the caller.
pub(crate) type CredentialEnv = (Vec<(String, String)>, Option<RunEvent>);

impl<R: ContainerRuntime> Executor<R> {
    /// The tool's credential mapped through its `env_map` (variable → credential field), from
    /// the default credential set of its provider (the tool's own name when it has none).
    pub(crate) fn tool_credential_env(
        &self,
        agent: &Agent,
        tool: &SidecarSpec,
    ) -> Result<CredentialEnv, ExecutorError> {
        let provider = self
            .roster()?
            .provider_for(agent)
            .map_or_else(|| agent.name.clone(), |p| p.name.clone());
        let credential = match self.open_existing_db()? {
            Some(db) => db.load_credential(DEFAULT_SET, &provider)?,
            None => None,
        };
        let mut env = Vec::new();
        let mut missing = None;
        for (var, field) in &tool.env_map {
            match credential.as_ref().and_then(|c| c.field(field)) {
                Some(value) => env.push((var.clone(), value.to_owned())),
                None => {
                    missing.get_or_insert_with(|| RunEvent::ToolCredentialMissing {
                        tool: agent.name.clone(),
                        provider: provider.clone(),
                        field: field.clone(),
                    });
                }
            }
        }
        Ok((env, missing))
    }
}
