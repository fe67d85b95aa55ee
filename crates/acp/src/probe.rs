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

/// The models `agent` offers, found by starting its ACP server; `auth_method` is sent with
/// `authenticate` before the session when the agent needs it. Takes at most `limit`.
pub async fn probe(
    launcher: &dyn Launcher,
    agent: &str,
    auth_method: Option<&str>,
    limit: Duration,
) -> Result<Vec<String>, AgentError> {
    let link = AgentLink::start(launcher, agent, Box::new(|_| None), None)?;
    let exchange = async {
        link.request("initialize", initialize_params(), limit)
            .await?;
        if let Some(method) = auth_method {
            link.request("authenticate", authenticate_params(method), limit)
                .await?;
        }
        link.request("session/new", new_session_params(), limit)
            .await
    };
    let outcome = tokio::time::timeout(limit, exchange).await;
    link.close().await;
    match outcome {
        Ok(Ok(result)) if result.get("sessionId").is_some_and(Value::is_string) => {
            Ok(offered_models(&result))
        }
        Ok(Ok(_)) => Err(AgentError::Malformed {
            agent: agent.to_owned(),
            method: "session/new".to_owned(),
            missing: "a sessionId".to_owned(),
        }),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(AgentError::Timeout {
            agent: agent.to_owned(),
            method: "initialize and session/new".to_owned(),
            secs: limit.as_secs(),
        }),
    }
}
