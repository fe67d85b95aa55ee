//! A test ACP client written with the agent-client-protocol crate's client side, as an editor
//! drives an agent: initialize, open a session, pick a model, prompt, follow the session's
//! updates, allow what the agent asks to do, and read the stop reason.

use std::sync::{Arc, Mutex};

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    ContentBlock, InitializeRequest, NewSessionRequest, PermissionOptionKind, PromptRequest,
    RequestPermissionOutcome, RequestPermissionRequest, RequestPermissionResponse,
    SelectedPermissionOutcome, SessionConfigKind, SessionConfigOptionCategory,
    SessionConfigSelectOptions, SessionNotification, SessionUpdate, SetSessionConfigOptionRequest,
    StopReason, TextContent,
};
use agent_client_protocol::{Agent, ByteStreams, Client};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// What the client saw.
#[derive(Debug, Default)]
pub struct Transcript {
    /// The agent's name in its `initialize` answer.
    pub agent_name: String,
    /// The model ids the session offered.
    pub models: Vec<String>,
    /// The stop reason of the prompt.
    pub stop_reason: Option<StopReason>,
    /// How many permissions the agent asked for (each was allowed).
    pub permissions: usize,
}

/// The session's updates as they arrive (shared, so a test can act on one mid-prompt).
pub type Updates = Arc<Mutex<Vec<SessionUpdate>>>;

/// Connects over `reader` / `writer`, opens a session, picks `model` (the first model offered
/// whose id starts with it), and prompts `prompt`; `updates` receives every session update.
pub async fn prompt_once(
    reader: impl AsyncRead + Send + Unpin + 'static,
    writer: impl AsyncWrite + Send + Unpin + 'static,
    model: &str,
    prompt: &str,
    updates: Updates,
) -> Result<Transcript, agent_client_protocol::Error> {
    let transport = ByteStreams::new(writer.compat_write(), reader.compat());
    let permissions = Arc::new(Mutex::new(0usize));
    let asked = Arc::clone(&permissions);
    let model = model.to_owned();
    let prompt = prompt.to_owned();
    Client
        .v1()
        .name("terok-acp-e2e")
        .on_receive_notification(
            async move |notification: SessionNotification, _cx| {
                updates.lock().unwrap().push(notification.update);
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .on_receive_request(
            async move |request: RequestPermissionRequest, responder, _cx| {
                *asked.lock().unwrap() += 1;
                let allow = request.options.iter().find(|o| {
                    matches!(
                        o.kind,
                        PermissionOptionKind::AllowOnce | PermissionOptionKind::AllowAlways
                    )
                });
                let outcome = match allow {
                    Some(option) => RequestPermissionOutcome::Selected(
                        SelectedPermissionOutcome::new(option.option_id.clone()),
                    ),
                    None => RequestPermissionOutcome::Cancelled,
                };
                responder.respond(RequestPermissionResponse::new(outcome))
            },
            agent_client_protocol::on_receive_request!(),
        )
        .connect_with(transport, async move |cx: ConnectionTo<Agent>| {
            let init = cx
                .send_request(InitializeRequest::new(ProtocolVersion::V1))
                .block_task()
                .await?;
            let session = cx
                .send_request(NewSessionRequest::new("/home/someone/project"))
                .block_task()
                .await?;
            let models = offered_models(&session.config_options.unwrap_or_default());
            let chosen = models
                .iter()
                .find(|m| m.starts_with(&model))
                .cloned()
                .unwrap_or_else(|| panic!("no model {model} among {models:?}"));
            cx.send_request(SetSessionConfigOptionRequest::new(
                session.session_id.clone(),
                "model",
                agent_client_protocol::v1::schema::SessionConfigValueId::new(chosen),
            ))
            .block_task()
            .await?;
            let answer = cx
                .send_request(PromptRequest::new(
                    session.session_id,
                    vec![ContentBlock::Text(TextContent::new(prompt))],
                ))
                .block_task()
                .await?;
            Ok(Transcript {
                agent_name: init.agent_info.map(|i| i.name).unwrap_or_default(),
                models,
                stop_reason: Some(answer.stop_reason),
                permissions: 0,
            })
        })
        .await
        .map(|mut transcript| {
            transcript.permissions = *permissions.lock().unwrap();
            transcript
        })
}

/// The ids of the model option's choices.
fn offered_models(
    options: &[agent_client_protocol::v1::schema::SessionConfigOption],
) -> Vec<String> {
    let Some(option) = options
        .iter()
        .find(|o| o.category == Some(SessionConfigOptionCategory::Model))
    else {
        return Vec::new();
    };
    let SessionConfigKind::Select(select) = &option.kind else {
        return Vec::new();
    };
    match &select.options {
        SessionConfigSelectOptions::Ungrouped(choices) => {
            choices.iter().map(|c| c.value.to_string()).collect()
        }
        SessionConfigSelectOptions::Grouped(groups) => groups
            .iter()
            .flat_map(|g| g.options.iter().map(|c| c.value.to_string()))
            .collect(),
        _ => Vec::new(),
    }
}
