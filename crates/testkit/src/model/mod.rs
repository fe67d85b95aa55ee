//! A scripted model server, so the agents' real CLIs can run end to end without a model. It
//! speaks one vendor API per server ([`Protocol`]): the Anthropic Messages API (Claude Code,
//! Pi), the OpenAI Responses API (Codex) or OpenAI-compatible Chat Completions (OpenCode and
//! its providers, Mistral Vibe). Every request is recorded with its headers; a request outside
//! the protocol gets a 404 naming what is served, and is listed in
//! [`ScriptedModel::unanswered`].
//!
//! The conversation follows a [`ModelScript`] (the same format for every protocol): the agent's
//! n-th turn gets the script's n-th reply — text, tool calls, or both. A turn may name text the
//! request must contain (the tool result it expects); a request that does not match gets a text
//! reply saying so, and is counted in [`ScriptedModel::mismatches`]. Side requests without tools
//! (titles, topic checks) get a short text answer.

mod anthropic;
mod chat;
mod responses;
mod script;
mod wire;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use chat::MODEL_ID;
pub use script::{ModelScript, Refusal, Reply, RequestView, ScriptTurn, ToolUse};

use crate::server::BackgroundServer;
use crate::upstream::RecordedRequest;

/// The vendor API a scripted model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Anthropic Messages: `POST /v1/messages` (and `count_tokens`).
    Anthropic,
    /// OpenAI Responses: `POST /v1/responses`.
    Responses,
    /// OpenAI-compatible Chat Completions: `POST …/v1/chat/completions`, `GET …/v1/models`.
    Chat,
}

impl Protocol {
    /// Every protocol, by its name on the command line.
    pub const ALL: [(&'static str, Protocol); 3] = [
        ("anthropic", Protocol::Anthropic),
        ("responses", Protocol::Responses),
        ("chat", Protocol::Chat),
    ];

    /// The protocol called `name` (`anthropic`, `responses`, `chat`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("anthropic", |(n, _)| n)
    }

    /// How `script` answers the model request `request` in this protocol: refused (no reply),
    /// or the script's reply rendered with the response id made of `id`.
    pub fn answer(
        self,
        script: &ModelScript,
        request: &Value,
        id: &str,
    ) -> (Option<Reply>, Response) {
        if let Some(refusal) = &script.reject {
            let refused = match self {
                Protocol::Anthropic => anthropic::refused(refusal),
                Protocol::Responses => responses::refused(refusal),
                Protocol::Chat => chat::refused(refusal),
            };
            return (None, refused);
        }
        let view = match self {
            Protocol::Anthropic => anthropic::view(request),
            Protocol::Responses => responses::view(request),
            Protocol::Chat => chat::view(request),
        };
        let reply = script.reply(&view);
        let response = match self {
            Protocol::Anthropic => anthropic::render(&reply, request, &format!("msg_{id}")),
            Protocol::Responses => responses::render(&reply, request, &format!("resp_{id}")),
            Protocol::Chat => chat::render(&reply, request, &format!("chatcmpl-{id}")),
        };
        (Some(reply), response)
    }

    /// The endpoints it serves, for the answer to a request outside them.
    fn endpoints(self) -> &'static str {
        match self {
            Protocol::Anthropic => "POST /v1/messages, POST /v1/messages/count_tokens",
            Protocol::Responses => "POST /v1/responses (a WebSocket upgrade gets 426)",
            Protocol::Chat => "POST …/v1/chat/completions, GET …/v1/models",
        }
    }

    /// What a request is, for this protocol.
    fn endpoint(self, method: &Method, path: &str, upgrade: bool) -> Endpoint {
        let path = path.trim_end_matches('/');
        match (self, method) {
            (_, &Method::HEAD) => Endpoint::Health,
            (_, &Method::GET) if path.is_empty() => Endpoint::Health,
            (Protocol::Anthropic, &Method::POST) if path.ends_with("/v1/messages") => {
                Endpoint::Model
            }
            (Protocol::Anthropic, &Method::POST) if path.ends_with("/v1/messages/count_tokens") => {
                Endpoint::CountTokens
            }
            (Protocol::Responses, &Method::POST) if path.ends_with("/v1/responses") => {
                Endpoint::Model
            }
            (Protocol::Responses, &Method::GET) if upgrade && path.ends_with("/v1/responses") => {
                Endpoint::WebSocket
            }
            (Protocol::Chat, &Method::POST) if path.ends_with("/v1/chat/completions") => {
                Endpoint::Model
            }
            (Protocol::Chat, &Method::GET) if path.ends_with("/v1/models") => Endpoint::Models,
            _ => Endpoint::Unknown,
        }
    }
}

/// The endpoints a scripted model tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Model,
    CountTokens,
    Models,
    WebSocket,
    Unknown,
}

#[derive(Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    mismatches: Vec<String>,
    unanswered: Vec<String>,
    turns_served: usize,
}

#[derive(Clone)]
struct Shared {
    protocol: Protocol,
    script: Arc<ModelScript>,
    inner: Arc<Mutex<Inner>>,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        match self.inner.lock() {
            Ok(mut inner) => f(&mut inner),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// The running server; stops when dropped.
pub struct ScriptedModel {
    server: BackgroundServer,
    shared: Shared,
}

impl ScriptedModel {
    /// Serves `script` over the Anthropic Messages API on `addr` (`127.0.0.1:0` for any free
    /// port).
    pub fn start(script: ModelScript, addr: &str) -> std::io::Result<Self> {
        Self::serve(Protocol::Anthropic, script, addr)
    }

    /// Serves `script` over `protocol` on `addr` (`127.0.0.1:0` for any free port).
    pub fn serve(protocol: Protocol, script: ModelScript, addr: &str) -> std::io::Result<Self> {
        let shared = Shared {
            protocol,
            script: Arc::new(script),
            inner: Arc::default(),
        };
        let app = Router::new().fallback(respond).with_state(shared.clone());
        Ok(Self {
            server: BackgroundServer::start(addr, 2, app)?,
            shared,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let addr = self.server.addr();
        // An unspecified address is reached at the loopback.
        match addr.ip() {
            ip if ip.is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
            ip => format!("http://{}", std::net::SocketAddr::new(ip, addr.port())),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// The protocol it speaks.
    pub fn protocol(&self) -> Protocol {
        self.shared.protocol
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.with(|i| i.requests.clone())
    }

    /// Requests that did not match the turn they were expected to be.
    pub fn mismatches(&self) -> Vec<String> {
        self.shared.with(|i| i.mismatches.clone())
    }

    /// Requests answered with an error because the protocol has no such endpoint or the body
    /// was not JSON: `STATUS METHOD PATH`.
    pub fn unanswered(&self) -> Vec<String> {
        self.shared.with(|i| i.unanswered.clone())
    }

    /// How many scripted turns were answered.
    pub fn turns_served(&self) -> usize {
        self.shared.with(|i| i.turns_served)
    }
}

fn is_websocket_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn respond(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    shared.with(|i| i.requests.push(RecordedRequest::new(&parts, &body)));
    let path = parts.uri.path();
    let upgrade = is_websocket_upgrade(&parts.headers);
    let protocol = shared.protocol;
    match protocol.endpoint(&parts.method, path, upgrade) {
        Endpoint::Health => StatusCode::OK.into_response(),
        Endpoint::CountTokens => anthropic::count_tokens(body.len()),
        Endpoint::Models => chat::models(),
        Endpoint::WebSocket => {
            shared.with(|i| i.unanswered.push(format!("426 GET {path} (WebSocket)")));
            responses::websocket_declined()
        }
        Endpoint::Model => model_call(&shared, &parts.method, path, &body),
        Endpoint::Unknown => {
            let method = &parts.method;
            shared.with(|i| i.unanswered.push(format!("404 {method} {path}")));
            let message = format!(
                "scripted model ({}): no {method} {path}; it serves {}",
                protocol.name(),
                protocol.endpoints()
            );
            wire::error_response(
                404,
                &json!({"type": "error", "error": {"type": "not_found_error", "message": message}}),
            )
        }
    }
}

/// One model request: refused, or answered from the script in the protocol's format.
fn model_call(shared: &Shared, method: &Method, path: &str, body: &Bytes) -> Response {
    let protocol = shared.protocol;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        shared.with(|i| {
            i.unanswered
                .push(format!("400 {method} {path} (body is not JSON)"))
        });
        return wire::error_response(
            400,
            &json!({"error": {"type": "invalid_request_error",
                              "message": "scripted model: the request body is not JSON"}}),
        );
    };
    let id = shared.with(|i| format!("scripted_{}", i.requests.len()));
    let (reply, response) = protocol.answer(&shared.script, &request, &id);
    shared.with(|i| match &reply {
        Some(Reply::Turn { .. }) => i.turns_served += 1,
        Some(Reply::Mismatch(note)) => i.mismatches.push(note.clone()),
        Some(Reply::Side(_)) | None => {}
    });
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;

    fn script() -> ModelScript {
        ModelScript::parse(
            r#"
turns:
  - tool_uses:
      - name: Read
        input: {file_path: /workspace/calc.py}
  - expect: "return a - b"
    text: "Fixed."
"#,
            std::path::Path::new("script.yaml"),
        )
        .unwrap()
    }

    /// Sends one request and returns its status and body.
    fn send(model: &ScriptedModel, method: &str, path: &str, body: &Value) -> (u16, String) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", model.port()))
                .await
                .unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let request = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(Body::new(response.into_body()), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        })
    }

    fn post(model: &ScriptedModel, body: &Value) -> (u16, String) {
        send(model, "POST", "/v1/messages", body)
    }

    #[test]
    fn turns_follow_the_conversation_and_check_expectations() {
        let model = ScriptedModel::start(script(), "127.0.0.1:0").unwrap();
        let tools = json!([{"name": "Read"}]);
        // A side request without tools consumes no turn.
        let (status, body) = post(
            &model,
            &json!({"messages": [{"role": "user", "content": "title?"}]}),
        );
        assert_eq!(status, 200);
        assert!(body.contains("\"OK\""), "{body}");
        // Turn 0: a tool call, streamed.
        let (_, body) = post(
            &model,
            &json!({"stream": true, "tools": tools, "messages": [{"role": "user", "content": "fix it"}]}),
        );
        assert!(body.starts_with("event: message_start"), "{body}");
        assert!(body.contains("\"input_json_delta\""), "{body}");
        assert!(body.contains("\"stop_reason\":\"tool_use\""), "{body}");
        assert!(
            body.trim_end()
                .ends_with(r#"data: {"type":"message_stop"}"#),
            "{body}"
        );
        // Turn 1: the expectation is checked against the tool result.
        let turn1 = |result: &str| {
            json!({"tools": tools, "messages": [
                {"role": "user", "content": "fix it"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": result}]}
            ]})
        };
        let (_, body) = post(&model, &turn1("def add(a, b):\n    return a + b"));
        assert!(body.contains("expected `return a - b`"), "{body}");
        assert_eq!(model.mismatches().len(), 1);
        let (_, body) = post(&model, &turn1("def add(a, b):\n    return a - b"));
        assert!(body.contains("\"text\":\"Fixed.\""), "{body}");
        assert!(body.contains("\"stop_reason\":\"end_turn\""), "{body}");
        assert_eq!(model.turns_served(), 2);
        assert_eq!(model.requests().len(), 4);
    }

    /// The `data:` payloads of an event stream, parsed.
    fn events(body: &str) -> Vec<Value> {
        body.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn the_responses_api_streams_function_and_custom_tool_calls() {
        let script = ModelScript::parse(
            r#"
turns:
  - text: Looking.
    tool_uses:
      - {name: exec_command, input: {cmd: cat calc.py}}
  - expect: "return a - b"
    tool_uses:
      - {name: apply_patch, input: "*** Begin Patch\n*** End Patch\n"}
  - text: Fixed.
"#,
            std::path::Path::new("codex.yaml"),
        )
        .unwrap();
        let model = ScriptedModel::serve(Protocol::Responses, script, "127.0.0.1:0").unwrap();
        let tools = json!([{"type": "function", "name": "exec_command"}]);
        let (status, body) = send(
            &model,
            "POST",
            "/v1/responses",
            &json!({"model": "gpt-5.5", "stream": true, "tools": tools,
                    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix"}]}]}),
        );
        assert_eq!(status, 200, "{body}");
        let turn0 = events(&body);
        let kinds: Vec<&str> = turn0.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"response.created"));
        assert_eq!(kinds.last(), Some(&"response.completed"));
        let done: Vec<&Value> = turn0
            .iter()
            .filter(|e| e["type"] == "response.output_item.done")
            .map(|e| &e["item"])
            .collect();
        assert_eq!(done[0]["content"][0]["text"], "Looking.");
        assert_eq!(done[1]["type"], "function_call");
        assert_eq!(done[1]["arguments"], r#"{"cmd":"cat calc.py"}"#);
        // Turn 1 follows the call's output; its free-form input becomes a custom tool call.
        let (_, body) = send(
            &model,
            "POST",
            "/v1/responses",
            &json!({"stream": true, "tools": tools, "input": [
                {"type": "message", "role": "user", "content": "fix"},
                done[1],
                {"type": "function_call_output", "call_id": done[1]["call_id"], "output": "return a - b"}
            ]}),
        );
        let item = events(&body)
            .into_iter()
            .find(|e| e["type"] == "response.output_item.done")
            .unwrap();
        assert_eq!(item["item"]["type"], "custom_tool_call");
        assert!(
            item["item"]["input"]
                .as_str()
                .unwrap()
                .starts_with("*** Begin Patch")
        );
        assert_eq!(model.turns_served(), 2);
        // A WebSocket upgrade is declined so Codex falls back to HTTP at once.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", model.port()))
                .await
                .unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let request = axum::http::Request::get("/v1/responses")
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(Body::empty())
                .unwrap();
            sender
                .send_request(request)
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        assert_eq!(status, 426);
    }

    #[test]
    fn chat_completions_stream_tool_calls_and_list_the_model() {
        let model = ScriptedModel::serve(Protocol::Chat, script(), "127.0.0.1:0").unwrap();
        let (status, body) = send(&model, "GET", "/api/v1/models", &Value::Null);
        assert_eq!(status, 200);
        assert!(body.contains(MODEL_ID), "{body}");
        let tools = json!([{"type": "function", "function": {"name": "read"}}]);
        let (_, body) = send(
            &model,
            "POST",
            "/v1/chat/completions",
            &json!({"stream": true, "tools": tools, "messages": [
                {"role": "user", "content": "fix"}, {"role": "system", "content": "be brief"}]}),
        );
        assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
        let chunks = events(&body);
        let call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "Read");
        assert_eq!(call["index"], 0);
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
        // The tool result arrives as a `tool` message, here JSON-encoded (Vibe's way).
        let (_, body) = send(
            &model,
            "POST",
            "/v1/chat/completions",
            &json!({"tools": tools, "messages": [
                {"role": "user", "content": "fix"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "{\"content\": \"return a - b\"}"}]}),
        );
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["choices"][0]["message"]["content"], "Fixed.");
        assert_eq!(reply["choices"][0]["finish_reason"], "stop");
        assert!(model.mismatches().is_empty(), "{:?}", model.mismatches());
    }

    #[test]
    fn a_request_outside_the_protocol_gets_a_404_naming_what_is_served() {
        let model = ScriptedModel::serve(Protocol::Chat, script(), "127.0.0.1:0").unwrap();
        let (status, body) = send(&model, "POST", "/v1/messages", &json!({}));
        assert_eq!(status, 404);
        assert!(
            body.contains("scripted model (chat): no POST /v1/messages"),
            "{body}"
        );
        let (status, _) = send(&model, "POST", "/v1/chat/completions", &json!("x"));
        assert_eq!(
            status, 200,
            "a JSON body that is not an object is still a request"
        );
        assert_eq!(model.unanswered(), ["404 POST /v1/messages"]);
    }

    #[test]
    fn a_refusing_script_answers_in_the_protocols_error_format() {
        let refusing = ModelScript::refusing(401, "authentication_error");
        let model = ScriptedModel::serve(Protocol::Responses, refusing, "127.0.0.1:0").unwrap();
        let (status, body) = send(&model, "POST", "/v1/responses", &json!({"input": "hi"}));
        assert_eq!(status, 401);
        assert!(body.contains("invalid_api_key"), "{body}");
    }
}
