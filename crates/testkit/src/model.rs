//! A scripted model server speaking the Anthropic Messages API, so the real Claude Code CLI can
//! run end to end without a model: `POST /v1/messages` (streaming SSE or one JSON message),
//! `POST /v1/messages/count_tokens`, `HEAD /` and `GET /`. Every request is recorded with its
//! headers.
//!
//! The conversation follows a [`ModelScript`]: the agent's n-th turn (a request carrying tools
//! and n assistant messages so far) gets the script's n-th reply — text, tool calls, or both.
//! A turn may name text the request must contain (the tool result it expects); a request that
//! does not match gets a text reply saying so, and is counted in [`ScriptedModel::mismatches`].
//! Side requests without tools (titles, topic checks) get a short text answer.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::BackgroundServer;
use crate::upstream::RecordedRequest;

/// What the model says in one turn.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptTurn {
    /// Text the request (usually the last tool result) must contain for this turn to apply.
    #[serde(default)]
    pub expect: Option<String>,
    /// Text of the reply.
    #[serde(default)]
    pub text: Option<String>,
    /// Tool calls of the reply, in order.
    #[serde(default)]
    pub tool_uses: Vec<ToolUse>,
}

/// One tool call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolUse {
    /// Tool name (`Read`, `Edit`, `Bash`, …).
    pub name: String,
    /// Its input.
    pub input: Value,
}

/// The turns of a conversation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelScript {
    /// One reply per agent turn.
    pub turns: Vec<ScriptTurn>,
    /// Answer to requests without tools (default `OK`).
    #[serde(default)]
    pub side_answer: Option<String>,
    /// Refuse every Messages request instead (a key the API does not accept).
    #[serde(default)]
    pub reject: Option<Refusal>,
}

/// An API refusing the credential: the status and the error type of its error body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// 401 or 403.
    pub status: u16,
    /// `authentication_error`, `permission_error`, …
    pub error_type: String,
}

impl ModelScript {
    /// A script that refuses every request with `status` and `error_type`.
    pub fn refusing(status: u16, error_type: &str) -> Self {
        Self {
            turns: Vec::new(),
            side_answer: None,
            reject: Some(Refusal {
                status,
                error_type: error_type.to_owned(),
            }),
        }
    }

    /// Reads a script from YAML (or JSON) text; `file` names it in errors.
    pub fn parse(text: &str, file: &std::path::Path) -> Result<Self, String> {
        terok_core::yaml::parse_typed(text, file).map_err(|e| format!("{e:?}"))
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    mismatches: Vec<String>,
    turns_served: usize,
}

#[derive(Clone)]
struct Shared {
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
    /// Serves `script` on `addr` (`127.0.0.1:0` for any free port).
    pub fn start(script: ModelScript, addr: &str) -> std::io::Result<Self> {
        let shared = Shared {
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
        format!("http://127.0.0.1:{}", self.server.addr().port())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.with(|i| i.requests.clone())
    }

    /// Requests that did not match the turn they were expected to be.
    pub fn mismatches(&self) -> Vec<String> {
        self.shared.with(|i| i.mismatches.clone())
    }

    /// How many scripted turns were answered.
    pub fn turns_served(&self) -> usize {
        self.shared.with(|i| i.turns_served)
    }
}

async fn respond(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    shared.with(|i| i.requests.push(RecordedRequest::new(&parts, &body)));
    let path = parts.uri.path();
    match (&parts.method, path) {
        (&Method::HEAD, _) | (&Method::GET, "/") => StatusCode::OK.into_response(),
        (&Method::POST, "/v1/messages/count_tokens") => {
            let chars = body.len() as u64;
            json_response(&json!({ "input_tokens": (chars / 4).max(1) }))
        }
        (&Method::POST, "/v1/messages") => match &shared.script.reject {
            Some(refusal) => refused(refusal),
            None => messages(&shared, &parts.headers, &body),
        },
        _ => {
            let mut response = json_response(&json!({
                "type": "error",
                "error": {"type": "not_found_error", "message": format!("scripted model: no {path}")}
            }));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// The Messages API's answer to a key it does not accept.
fn refused(refusal: &Refusal) -> Response {
    let mut response = json_response(&json!({
        "type": "error",
        "error": {"type": refusal.error_type, "message": "invalid x-api-key"}
    }));
    *response.status_mut() =
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNAUTHORIZED);
    response
}

fn json_response(value: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The reply to one Messages request, as content blocks and a stop reason.
fn reply_for(shared: &Shared, request: &Value) -> (Vec<Value>, &'static str) {
    let has_tools = request["tools"].as_array().is_some_and(|t| !t.is_empty());
    if !has_tools {
        let text = shared
            .script
            .side_answer
            .clone()
            .unwrap_or_else(|| "OK".to_owned());
        return (vec![json!({"type": "text", "text": text})], "end_turn");
    }
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let Some(step) = shared.script.turns.get(turn) else {
        let note = format!("scripted model: no turn {turn} in the script");
        shared.with(|i| i.mismatches.push(note.clone()));
        return (vec![json!({"type": "text", "text": note})], "end_turn");
    };
    if let Some(expected) = &step.expect {
        let last = messages.last().map(Value::to_string).unwrap_or_default();
        // Tool results arrive JSON-encoded inside the message: compare both spellings.
        let encoded = serde_json::to_string(expected).unwrap_or_default();
        let encoded = encoded.trim_matches('"');
        if !last.contains(expected.as_str()) && !last.contains(encoded) {
            let note = format!("scripted model: turn {turn} expected `{expected}` in the request");
            shared.with(|i| i.mismatches.push(note.clone()));
            return (vec![json!({"type": "text", "text": note})], "end_turn");
        }
    }
    shared.with(|i| i.turns_served += 1);
    let mut content = Vec::new();
    if let Some(text) = &step.text {
        content.push(json!({"type": "text", "text": text}));
    }
    for (n, tool) in step.tool_uses.iter().enumerate() {
        content.push(json!({
            "type": "tool_use",
            "id": format!("toolu_scripted_{turn}_{n}"),
            "name": tool.name,
            "input": tool.input,
        }));
    }
    let stop = if step.tool_uses.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    (content, stop)
}

fn messages(shared: &Shared, _headers: &HeaderMap, body: &Bytes) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let model = request["model"]
        .as_str()
        .unwrap_or("scripted-model")
        .to_owned();
    let (content, stop_reason) = reply_for(shared, &request);
    let id = format!("msg_scripted_{}", shared.with(|i| i.requests.len()));
    let usage = json!({"input_tokens": 100, "output_tokens": 20});
    if request["stream"] != true {
        return json_response(&json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage,
        }));
    }
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 1}
        }}),
    )];
    for (index, block) in content.iter().enumerate() {
        if block["type"] == "text" {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                       "content_block": {"type": "text", "text": ""}}),
            ));
            events.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                       "delta": {"type": "text_delta", "text": block["text"]}}),
            ));
        } else {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                       "content_block": {"type": "tool_use", "id": block["id"],
                                         "name": block["name"], "input": {}}}),
            ));
            events.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                       "delta": {"type": "input_json_delta",
                                 "partial_json": block["input"].to_string()}}),
            ));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push((
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": 20}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    let mut text = String::new();
    for (event, data) in events {
        text.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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

    fn post(model: &ScriptedModel, body: &Value) -> (u16, String) {
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
            let request = axum::http::Request::post("/v1/messages")
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
}
