//! One client connection: the proxy answers `initialize` and `session/new` itself (one
//! session, every agent's models as `agent:model`), binds the session to an agent when the
//! client picks a model (or sends anything else first: then the first model), and from then on
//! forwards frames both ways, rewriting session and model ids. When the client leaves, or the
//! agent's server ends, the agent's server is torn down.

use std::sync::Arc;
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema as acp;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::catalog::Catalog;
use crate::error::AgentError;
use crate::frame::{self, Frame};
use crate::link::AgentLink;
use crate::models::{self, MODEL_OPTION_ID, PROXY_SESSION_ID, split_model};
use crate::probe::{AgentSession, WORKSPACE, handshake};

/// How long each request of the bind handshake may take: a cold agent server (a Python one
/// importing its SDK) on a busy two-core host has taken more than 15 s to answer `initialize`.
pub const BIND_REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// Serves one client on `reader` / `writer` until it leaves, the bound agent's server ends, or
/// `shutdown` turns true; the agent's server is ended before this returns.
pub async fn serve_connection(
    catalog: Arc<Catalog>,
    reader: impl AsyncRead + Send + Unpin,
    writer: impl AsyncWrite + Send + Unpin + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let (to_client, outgoing) = mpsc::channel(256);
    let writing = tokio::spawn(write_client(writer, outgoing));
    let mut connection = Connection::new(catalog, to_client);
    let mut lines = BufReader::new(reader).lines();
    loop {
        let stopping = async {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let agent_ended = connection.agent_ended();
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => match frame::parse(&line) {
                    Some(frame) => {
                        tracing::trace!(frame = %line, "acp: client → proxy");
                        connection.handle(frame).await;
                    }
                    None => tracing::debug!("acp: ignored a client line that is not a JSON object"),
                },
                _ => break,
            },
            () = agent_ended => {
                tracing::info!("acp: the agent's ACP server ended; closing the connection");
                break;
            }
            () = stopping => break,
        }
    }
    connection.teardown().await;
    // The writer ends once the last sender (the connection's) is gone.
    drop(connection);
    let _ = writing.await;
}

/// Writes frames to the client, one per line.
async fn write_client(mut writer: impl AsyncWrite + Unpin, mut frames: mpsc::Receiver<Value>) {
    while let Some(frame) = frames.recv().await {
        let mut line = frame.to_string();
        tracing::trace!(frame = %line, "acp: proxy → client");
        line.push('\n');
        if writer.write_all(line.as_bytes()).await.is_err() || writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

/// The session the client opened.
struct Session {
    params: Value,
    models: Vec<String>,
}

/// The agent a session is bound to.
struct Bound {
    link: AgentLink,
    session_id: String,
    switch: ModelSwitch,
}

/// How the bound agent's server changes model.
#[derive(Clone)]
enum ModelSwitch {
    /// `session/set_config_option` with this option id (today's adapters).
    ConfigOption(String),
    /// `session/set_model` (older adapters with a `models` block).
    SetModel,
    /// It has no model choice.
    None,
}

/// How the client asked for a model, which decides the shape of the answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    SetModel,
    ConfigOption,
}

struct Connection {
    catalog: Arc<Catalog>,
    to_client: mpsc::Sender<Value>,
    session: Option<Session>,
    bound: Option<Bound>,
}

impl Connection {
    fn new(catalog: Arc<Catalog>, to_client: mpsc::Sender<Value>) -> Self {
        Self {
            catalog,
            to_client,
            session: None,
            bound: None,
        }
    }

    /// Resolves when the bound agent's server has ended; never while unbound.
    fn agent_ended(&self) -> impl std::future::Future<Output = ()> + use<> {
        let ended = self.bound.as_ref().map(|b| b.link.ended());
        async move {
            match ended {
                Some(mut ended) => {
                    let _ = ended.wait_for(|ended| *ended).await;
                }
                None => std::future::pending().await,
            }
        }
    }

    async fn teardown(&mut self) {
        if let Some(bound) = self.bound.take() {
            bound.link.close().await;
        }
    }

    async fn handle(&mut self, frame: Frame) {
        let Some(method) = frame::method(&frame).map(str::to_owned) else {
            // A client's answer to an agent's request (a permission, a file read).
            self.forward(frame).await;
            return;
        };
        let id = frame::id(&frame).cloned();
        let params = frame::params(&frame).clone();
        let reply = match method.as_str() {
            "initialize" => Ok(initialize_result()),
            "session/new" => self.new_session(params).await,
            "session/set_model" => {
                let id = frame::param_str(&params, &["modelId", "model_id"]).map(str::to_owned);
                self.choose_model(id.as_deref(), Asked::SetModel).await
            }
            "session/set_config_option" if is_model_option(&params) => {
                let value = frame::param_str(&params, &["value"]).map(str::to_owned);
                self.choose_model(value.as_deref(), Asked::ConfigOption)
                    .await
            }
            "session/set_config_option" if self.bound.is_none() => Err(frame::invalid_request(
                "no agent bound — pick a model first",
            )),
            _ => {
                if self.bound.is_none()
                    && id.is_some()
                    && let Err(error) = self.bind_default().await
                {
                    self.reply(id.as_ref(), Err(error)).await;
                    return;
                }
                self.forward(frame).await;
                return;
            }
        };
        self.reply(id.as_ref(), reply).await;
    }

    /// Answers request `id` (a notification gets no answer).
    async fn reply(&self, id: Option<&Value>, reply: Result<Value, acp::Error>) {
        let Some(id) = id else { return };
        let frame = match reply {
            Ok(result) => frame::result(id, &result),
            Err(error) => frame::error(id, &error),
        };
        let _ = self.to_client.send(frame).await;
    }

    /// Sends a client frame on to the bound agent, in its session; dropped while unbound.
    async fn forward(&self, mut frame: Frame) {
        let Some(bound) = &self.bound else {
            tracing::debug!("acp: dropped a client frame sent before any agent was bound");
            return;
        };
        if let Some(Value::Object(params)) = frame.get_mut("params")
            && params.get("sessionId").and_then(Value::as_str) == Some(PROXY_SESSION_ID)
        {
            params.insert("sessionId".into(), Value::from(bound.session_id.clone()));
        }
        bound.link.send(Value::Object(frame)).await;
    }

    async fn new_session(&mut self, params: Value) -> Result<Value, acp::Error> {
        if self.session.is_some() {
            return Err(frame::invalid_request(
                "proxy supports one session per connection (v1)",
            ));
        }
        let models = self.catalog.available_models().await;
        let mut result = serde_json::to_value(acp::NewSessionResponse::new(PROXY_SESSION_ID))
            .unwrap_or_else(|_| json!({ "sessionId": PROXY_SESSION_ID }));
        if let (Some(current), Value::Object(result)) = (models.first(), &mut result) {
            let option = models::model_option(&models, current);
            result.insert("configOptions".into(), json!([option]));
            result.insert("models".into(), models::models_block(&models, current));
        }
        self.session = Some(Session { params, models });
        Ok(result)
    }

    /// The session's models (a client that skipped `session/new` gets them now).
    async fn models(&mut self) -> Vec<String> {
        match &self.session {
            Some(session) => session.models.clone(),
            None => self.catalog.available_models().await,
        }
    }

    async fn choose_model(
        &mut self,
        chosen: Option<&str>,
        asked: Asked,
    ) -> Result<Value, acp::Error> {
        let Some((agent, model)) = chosen.and_then(split_model) else {
            return Err(frame::invalid_params("model id must be 'agent:model'"));
        };
        let chosen = format!("{agent}:{model}");
        let models = self.models().await;
        if !models
            .iter()
            .any(|m| split_model(m).is_some_and(|(a, _)| a == agent))
        {
            return Err(frame::invalid_params(format!(
                "no agent '{agent}' in this task; its models are: {}",
                models.join(", ")
            )));
        }
        match &self.bound {
            None => self
                .bind(agent, model)
                .await
                .map_err(|err| frame::internal_error(err.to_string()))?,
            Some(bound) if bound.link.agent() != agent => {
                return Err(frame::invalid_params(format!(
                    "this session runs {}; a model of {agent} needs a new session",
                    bound.link.agent()
                )));
            }
            Some(bound) => switch_model(bound, model)
                .await
                .map_err(|err| frame::internal_error(err.to_string()))?,
        }
        Ok(match asked {
            Asked::SetModel => json!({}),
            Asked::ConfigOption => {
                json!({ "configOptions": [models::model_option(&models, &chosen)] })
            }
        })
    }

    /// Binds to the first model, for a client that went on without choosing.
    async fn bind_default(&mut self) -> Result<(), acp::Error> {
        let models = self.models().await;
        let Some((agent, model)) = models.first().and_then(|m| split_model(m)) else {
            return Err(frame::invalid_request(
                "no agent available in this task: none of its agents has a working ACP server",
            ));
        };
        let (agent, model) = (agent.to_owned(), model.to_owned());
        self.bind(&agent, &model)
            .await
            .map_err(|err| frame::internal_error(err.to_string()))
    }

    /// Binds the session to `agent` (its warm server, or one started now) with the client's
    /// params (in the task's workspace), and selects `model`.
    async fn bind(&mut self, agent: &str, model: &str) -> Result<(), AgentError> {
        // On failure the link is dropped, which ends the server.
        let AgentSession {
            link,
            session: opened,
            ..
        } = self.open_agent_session(agent).await?;
        let owner = agent.to_owned();
        let forward = Box::new(move |mut frame: Frame| {
            models::to_client(&mut frame, &owner);
            Some(Value::Object(frame))
        });
        link.attach(forward, self.to_client.clone()).await;
        let session_id = opened
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| AgentError::Malformed {
                agent: agent.to_owned(),
                method: "session/new".to_owned(),
                missing: "a sessionId".to_owned(),
            })?
            .to_owned();
        let switch = match models::model_option_of(&opened) {
            Some(option) => option
                .get("id")
                .and_then(Value::as_str)
                .map_or(ModelSwitch::None, |id| {
                    ModelSwitch::ConfigOption(id.to_owned())
                }),
            None if opened.get("models").is_some() => ModelSwitch::SetModel,
            None => ModelSwitch::None,
        };
        let bound = Bound {
            link,
            session_id,
            switch,
        };
        switch_model(&bound, model).await?;
        self.bound = Some(bound);
        self.announce_options(&opened, agent, model).await;
        Ok(())
    }

    /// `agent`'s server with a session open for the client: the warm one when it has one
    /// (its session too, when the client's params are those it was opened with), else a new
    /// one.
    async fn open_agent_session(&self, agent: &str) -> Result<AgentSession, AgentError> {
        let params = self.session_params();
        match self.catalog.take_warm(agent).await {
            Some(warm) if warm.params == params => {
                tracing::debug!(agent, "acp: bound to the warm server and its session");
                Ok(warm)
            }
            Some(warm) => {
                tracing::debug!(
                    agent,
                    "acp: bound to the warm server, in a session of its own"
                );
                warm.link.discard_held().await;
                let session = warm
                    .link
                    .request("session/new", params.clone(), BIND_REQUEST_LIMIT)
                    .await?;
                Ok(AgentSession {
                    link: warm.link,
                    params,
                    session,
                })
            }
            None => {
                let link = AgentLink::start(self.catalog.launcher(), agent)?;
                let auth_method = self.catalog.auth_method(agent);
                let session =
                    handshake(&link, auth_method, params.clone(), BIND_REQUEST_LIMIT).await?;
                Ok(AgentSession {
                    link,
                    params,
                    session,
                })
            }
        }
    }

    /// The client's `session/new` params with the task's workspace as `cwd` (the client's
    /// directory is on the host) and the servers list the protocol requires.
    fn session_params(&self) -> Value {
        let mut params = match self.session.as_ref().map(|s| &s.params) {
            Some(Value::Object(params)) => params.clone(),
            _ => Map::new(),
        };
        params.insert("cwd".into(), Value::from(WORKSPACE));
        params.entry("mcpServers").or_insert_with(|| json!([]));
        Value::Object(params)
    }

    /// Tells the client the bound agent's other options (mode, effort …), beside the model
    /// picker over every agent.
    async fn announce_options(&self, opened: &Value, agent: &str, model: &str) {
        let Some(options) = opened.get("configOptions").and_then(Value::as_array) else {
            return;
        };
        let Some(session) = &self.session else { return };
        let mut announced = vec![json!(models::model_option(
            &session.models,
            &format!("{agent}:{model}")
        ))];
        announced.extend(
            options
                .iter()
                .filter(|option| option.get("category").and_then(Value::as_str) != Some("model"))
                .cloned(),
        );
        let update = json!({
            "sessionId": PROXY_SESSION_ID,
            "update": { "sessionUpdate": "config_option_update", "configOptions": announced },
        });
        let _ = self
            .to_client
            .send(frame::notification("session/update", &update))
            .await;
    }
}

/// Whether a `session/set_config_option` is about the model (`configId`, `config_id` or
/// `category` is `model`).
fn is_model_option(params: &Value) -> bool {
    frame::param_str(params, &["configId", "config_id", "category"]) == Some(MODEL_OPTION_ID)
}

/// The proxy's own `initialize` answer.
fn initialize_result() -> Value {
    let response = acp::InitializeResponse::new(ProtocolVersion::V1)
        .agent_info(acp::Implementation::new("terok-acp", "1").title("Terok ACP host-proxy"));
    serde_json::to_value(response).unwrap_or(Value::Null)
}

/// Selects `model` in the bound agent's session.
async fn switch_model(bound: &Bound, model: &str) -> Result<(), AgentError> {
    let session = bound.session_id.clone();
    let (method, params) = match &bound.switch {
        ModelSwitch::ConfigOption(option) => (
            "session/set_config_option",
            json!({ "sessionId": session, "configId": option, "value": model }),
        ),
        ModelSwitch::SetModel => (
            "session/set_model",
            json!({ "sessionId": session, "modelId": model }),
        ),
        ModelSwitch::None => return Ok(()),
    };
    bound
        .link
        .request(method, params, BIND_REQUEST_LIMIT)
        .await
        .map(drop)
}
