//! The probe: start an agent's ACP server, `initialize`, open a session, read the models it
//! offers, end the server. The whole exchange is bounded by one configurable limit.

use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema as acp;
use serde_json::{Value, json};

use crate::error::AgentError;
use crate::link::{AgentLink, Launcher};
use crate::models::offered_models;

/// Where an agent works inside a task container.
pub const WORKSPACE: &str = "/workspace";

/// The `initialize` params the proxy sends an agent: protocol version 1 and no client
/// capabilities — the editor's files are on the host, not where the agent runs, so the
/// agent reads and writes the container's files with its own tools.
pub fn initialize_params() -> Value {
    serde_json::to_value(acp::InitializeRequest::new(ProtocolVersion::V1)).unwrap_or(Value::Null)
}

/// The `session/new` params of a probe.
pub fn new_session_params() -> Value {
    serde_json::to_value(acp::NewSessionRequest::new(WORKSPACE)).unwrap_or(Value::Null)
}

/// The `authenticate` params for `method` (the agent's API-key method: its key is the
/// phantom token the vault swaps on the way out).
pub fn authenticate_params(method: &str) -> Value {
    json!({ "methodId": method })
}

/// An agent's ACP server, initialized, with a session open in the task's workspace: what a
/// probe leaves, and what binding a client's session needs.
pub struct AgentSession {
    /// The link to the server.
    pub link: AgentLink,
    /// The `session/new` params it was opened with.
    pub params: Value,
    /// The agent's `session/new` result.
    pub session: Value,
}

/// `initialize`, `authenticate` when `auth_method` is set, then `session/new` with `params`:
/// each request may take `limit`.
pub async fn handshake(
    link: &AgentLink,
    auth_method: Option<&str>,
    params: Value,
    limit: Duration,
) -> Result<Value, AgentError> {
    link.request("initialize", initialize_params(), limit)
        .await?;
    if let Some(method) = auth_method {
        link.request("authenticate", authenticate_params(method), limit)
            .await?;
    }
    let session = link.request("session/new", params, limit).await?;
    match session.get("sessionId") {
        Some(Value::String(_)) => Ok(session),
        _ => Err(AgentError::Malformed {
            agent: link.agent().to_owned(),
            method: "session/new".to_owned(),
            missing: "a sessionId".to_owned(),
        }),
    }
}

/// The models `agent` offers, found by starting its ACP server; `auth_method` is sent with
/// `authenticate` before the session when the agent needs it. Takes at most `limit`.
pub async fn probe(
    launcher: &dyn Launcher,
    agent: &str,
    auth_method: Option<&str>,
    limit: Duration,
) -> Result<Vec<String>, AgentError> {
    let (models, opened) = probe_keeping(launcher, agent, auth_method, limit).await?;
    opened.link.close().await;
    Ok(models)
}

/// As [`probe`], and the server stays up with its session open (for a client to come).
pub async fn probe_keeping(
    launcher: &dyn Launcher,
    agent: &str,
    auth_method: Option<&str>,
    limit: Duration,
) -> Result<(Vec<String>, AgentSession), AgentError> {
    let link = AgentLink::start(launcher, agent)?;
    let params = new_session_params();
    let outcome =
        tokio::time::timeout(limit, handshake(&link, auth_method, params.clone(), limit)).await;
    match outcome {
        Ok(Ok(session)) => Ok((
            offered_models(&session),
            AgentSession {
                link,
                params,
                session,
            },
        )),
        Ok(Err(err)) => {
            link.close().await;
            Err(err)
        }
        Err(_) => {
            link.close().await;
            Err(AgentError::Timeout {
                agent: agent.to_owned(),
                method: "initialize and session/new".to_owned(),
                secs: limit.as_secs(),
            })
        }
    }
}
