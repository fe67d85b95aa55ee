//! OpenAI-compatible Chat Completions for the scripted model (OpenCode's providers, Mistral
//! Vibe, OpenRouter, Pi's OpenAI-compatible providers): `POST …/v1/chat/completions` answered as
//! one completion or as its `data:` chunks ending in `[DONE]`, with `tool_calls`; and
//! `GET …/v1/models`, a list with the one scripted model.

use axum::response::Response;
use serde_json::{Value, json};

use super::script::{Refusal, Reply, RequestView};
use super::wire::{error_response, json_response, sse_event, sse_response};

/// The id `GET /v1/models` lists.
pub const MODEL_ID: &str = "scripted-model";

/// What a Chat Completions request shows of the conversation.
pub fn view(request: &Value) -> RequestView {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let tool_calls = messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["tool_calls"].as_array())
        .map(Vec::len)
        .sum();
    RequestView {
        has_tools: request["tools"].as_array().is_some_and(|t| !t.is_empty()),
        tool_calls,
        // Some agents (Pi) append a system message after the user's: the newest input is
        // the last user message or tool result.
        last_input: messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user" || m["role"] == "tool")
            .cloned()
            .unwrap_or(Value::Null),
    }
}

/// `GET /v1/models`.
pub fn models() -> Response {
    json_response(&json!({
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 1_700_000_000, "owned_by": "terok"}],
    }))
}

/// The API's answer to a key it does not accept.
pub fn refused(refusal: &Refusal) -> Response {
    error_response(
        refusal.status,
        &json!({"error": {"type": refusal.error_type, "code": refusal.status,
                          "message": "Invalid API key"}}),
    )
}

/// The assistant message of `reply` and its finish reason.
fn message(reply: &Reply) -> (Value, &'static str) {
    let (text, tool_uses, turn) = reply.parts();
    let calls: Vec<Value> = tool_uses
        .iter()
        .enumerate()
        .map(|(n, tool)| {
            json!({"id": format!("call_scripted_{turn}_{n}"), "type": "function",
                   "function": {"name": tool.name, "arguments": tool.input.to_string()}})
        })
        .collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    (message, finish)
}

/// `reply` as the API sends it: one completion, or its chunks when the request asked for
/// `stream`.
pub fn render(reply: &Reply, request: &Value, id: &str) -> Response {
    let model = request["model"].as_str().unwrap_or(MODEL_ID);
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120});
    let (message, finish) = message(reply);
    if request["stream"] != true {
        return json_response(&json!({
            "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }));
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": message["content"]}),
        None,
    )];
    if let Some(calls) = message["tool_calls"].as_array() {
        for (index, call) in calls.iter().enumerate() {
            let mut call = call.clone();
            call["index"] = json!(index);
            chunks.push(chunk(json!({"tool_calls": [call]}), None));
        }
    }
    let mut last = chunk(json!({}), Some(finish));
    last["usage"] = usage;
    chunks.push(last);
    let mut text: String = chunks.iter().map(|c| sse_event(None, c)).collect();
    text.push_str("data: [DONE]\n\n");
    sse_response(text)
}
