//! The Anthropic Messages API of the scripted model (Claude Code; Pi's `anthropic` provider):
//! `POST /v1/messages` answered as one JSON message or as its SSE stream, and
//! `POST /v1/messages/count_tokens`.

use axum::response::Response;
use serde_json::{Value, json};

use super::script::{Refusal, Reply, RequestView};
use super::wire::{error_response, json_response, sse_event, sse_response};

/// What a Messages request shows of the conversation.
pub fn view(request: &Value) -> RequestView {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let tool_calls = messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|block| block["type"] == "tool_use")
        .count();
    RequestView {
        has_tools: request["tools"].as_array().is_some_and(|t| !t.is_empty()),
        tool_calls,
        last_input: messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .cloned()
            .unwrap_or(Value::Null),
    }
}

/// `count_tokens`: a rough count from the body's size.
pub fn count_tokens(body_len: usize) -> Response {
    json_response(&json!({ "input_tokens": (body_len as u64 / 4).max(1) }))
}

/// The Messages API's answer to a key it does not accept.
pub fn refused(refusal: &Refusal) -> Response {
    error_response(
        refusal.status,
        &json!({"type": "error", "error": {"type": refusal.error_type, "message": "invalid x-api-key"}}),
    )
}

/// The content blocks and stop reason of `reply`.
fn content(reply: &Reply) -> (Vec<Value>, &'static str) {
    let (text, tool_uses, turn) = reply.parts();
    let mut blocks = Vec::new();
    if let Some(text) = text {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (n, tool) in tool_uses.iter().enumerate() {
        blocks.push(json!({
            "type": "tool_use",
            "id": format!("toolu_scripted_{turn}_{n}"),
            "name": tool.name,
            "input": tool.input,
        }));
    }
    let stop = if tool_uses.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    (blocks, stop)
}

/// `reply` as the API sends it: one message, or its event stream when the request asked for
/// `stream`.
pub fn render(reply: &Reply, request: &Value, id: &str) -> Response {
    let model = request["model"].as_str().unwrap_or("scripted-model");
    let (blocks, stop_reason) = content(reply);
    if request["stream"] != true {
        return json_response(&json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 20},
        }));
    }
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 1}
        }}),
    )];
    for (index, block) in blocks.iter().enumerate() {
        let (start, delta) = if block["type"] == "text" {
            (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": block["text"]}),
            )
        } else {
            (
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
            )
        };
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
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
    sse_response(
        events
            .iter()
            .map(|(event, data)| sse_event(Some(event), data))
            .collect(),
    )
}
