//! The OpenAI Responses API of the scripted model (Codex): `POST /v1/responses` answered as one
//! response object or as its event stream, with function calls (`exec_command`) and free-form
//! custom tool calls (`apply_patch`, whose input is the patch text). A WebSocket upgrade of
//! `GET /v1/responses` is declined with 426, which makes Codex use plain HTTP at once.

use axum::response::Response;
use serde_json::{Value, json};

use super::script::{Refusal, Reply, RequestView, ToolUse};
use super::wire::{error_response, json_response, sse_event, sse_response};

/// Input items that are a call the model made.
const CALL_ITEMS: [&str; 3] = ["function_call", "custom_tool_call", "local_shell_call"];

/// What a Responses request shows of the conversation.
pub fn view(request: &Value) -> RequestView {
    let input = match &request["input"] {
        Value::Array(items) => items.clone(),
        other => vec![json!({"role": "user", "content": other})],
    };
    let tool_calls = input
        .iter()
        .filter(|item| CALL_ITEMS.iter().any(|kind| item["type"] == *kind))
        .count();
    let last_input = input
        .iter()
        .rev()
        .find(|item| {
            item["role"] == "user"
                || item["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("_output"))
        })
        .cloned()
        .unwrap_or(Value::Null);
    RequestView {
        has_tools: request["tools"].as_array().is_some_and(|t| !t.is_empty()),
        tool_calls,
        last_input,
    }
}

/// The API's answer to a key it does not accept.
pub fn refused(refusal: &Refusal) -> Response {
    error_response(
        refusal.status,
        &json!({"error": {"type": refusal.error_type, "code": "invalid_api_key",
                          "message": "Incorrect API key provided", "param": null}}),
    )
}

/// The answer to a WebSocket upgrade: not offered here, use HTTP.
pub fn websocket_declined() -> Response {
    error_response(
        426,
        &json!({"error": {"type": "invalid_request_error",
                          "message": "scripted model: WebSocket transport not offered; use HTTP"}}),
    )
}

/// The output item of one tool call: a function call with JSON arguments, or a custom tool
/// call whose input is the string itself.
fn call_item(tool: &ToolUse, turn: usize, n: usize) -> Value {
    let call_id = format!("call_scripted_{turn}_{n}");
    match &tool.input {
        Value::String(input) => json!({
            "type": "custom_tool_call", "id": format!("ctc_scripted_{turn}_{n}"),
            "call_id": call_id, "name": tool.name, "input": input, "status": "completed",
        }),
        input => json!({
            "type": "function_call", "id": format!("fc_scripted_{turn}_{n}"),
            "call_id": call_id, "name": tool.name, "arguments": input.to_string(),
            "status": "completed",
        }),
    }
}

/// The output items of `reply`: its message, then its calls.
fn output(reply: &Reply) -> Vec<Value> {
    let (text, tool_uses, turn) = reply.parts();
    let mut items = Vec::new();
    if let Some(text) = text {
        items.push(json!({
            "type": "message", "id": format!("msg_scripted_{turn}"), "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }));
    }
    for (n, tool) in tool_uses.iter().enumerate() {
        items.push(call_item(tool, turn, n));
    }
    items
}

/// An item as first announced, before its content streams in.
fn started(item: &Value) -> Value {
    let mut item = item.clone();
    item["status"] = json!("in_progress");
    match item["type"].as_str() {
        Some("message") => item["content"] = json!([]),
        Some("function_call") => item["arguments"] = json!(""),
        Some("custom_tool_call") => item["input"] = json!(""),
        _ => {}
    }
    item
}

/// The streamed events of one item at `index`: added, its content as one delta, done.
fn item_events(item: &Value, index: usize) -> Vec<Value> {
    let id = &item["id"];
    let mut events = vec![
        json!({"type": "response.output_item.added", "output_index": index, "item": started(item)}),
    ];
    match item["type"].as_str() {
        Some("message") => events.push(json!({
            "type": "response.output_text.delta", "item_id": id, "output_index": index,
            "content_index": 0, "delta": item["content"][0]["text"],
        })),
        Some("function_call") => events.push(json!({
            "type": "response.function_call_arguments.delta", "item_id": id,
            "output_index": index, "delta": item["arguments"],
        })),
        _ => {}
    }
    events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
    events
}

/// `reply` as the API sends it: one response object, or its event stream when the request
/// asked for `stream`.
pub fn render(reply: &Reply, request: &Value, id: &str) -> Response {
    let items = output(reply);
    let mut response = json!({
        "id": id, "object": "response", "created_at": 1_700_000_000, "status": "completed",
        "model": request["model"].as_str().unwrap_or("scripted-model"), "output": items.clone(),
        "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 120},
    });
    if request["stream"] != true {
        return json_response(&response);
    }
    let mut in_progress = response.clone();
    in_progress["status"] = json!("in_progress");
    in_progress["output"] = json!([]);
    let mut events = vec![json!({"type": "response.created", "response": in_progress})];
    for (index, item) in items.iter().enumerate() {
        events.extend(item_events(item, index));
    }
    response["output"] = Value::Array(items);
    events.push(json!({"type": "response.completed", "response": response}));
    let mut text = String::new();
    for (sequence, mut event) in events.into_iter().enumerate() {
        event["sequence_number"] = json!(sequence);
        let name = event["type"].as_str().unwrap_or_default().to_owned();
        text.push_str(&sse_event(Some(&name), &event));
    }
    sse_response(text)
}
