//! JSON-RPC frames as the proxy moves them: one JSON object per line, kept as JSON values so
//! that what the ACP schema does not model (a `models` block, `_meta`, vendor methods such as
//! `_auth/status_update`) passes through untouched; the replies the proxy makes itself are
//! built from the protocol crate's types.

use agent_client_protocol::v1::schema as acp;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// One frame: a request, a notification or a response.
pub type Frame = Map<String, Value>;

/// The frame on `line`, or `None` when the line is not a JSON object (such lines are skipped).
pub fn parse(line: &str) -> Option<Frame> {
    match serde_json::from_str::<Value>(line.trim()) {
        Ok(Value::Object(frame)) => Some(frame),
        _ => None,
    }
}

/// The frame's method, for requests and notifications.
pub fn method(frame: &Frame) -> Option<&str> {
    frame.get("method").and_then(Value::as_str)
}

/// The frame's id, for requests and responses.
pub fn id(frame: &Frame) -> Option<&Value> {
    frame.get("id").filter(|id| !id.is_null())
}

/// The frame's params (`null` when absent).
pub fn params(frame: &Frame) -> &Value {
    frame.get("params").unwrap_or(&Value::Null)
}

/// The first of `names` present in `params` — ACP clients spell some fields in camelCase and
/// some in snake_case (`modelId` / `model_id`).
pub fn param<'a>(params: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|name| params.get(*name))
}

/// [`param`] as a string.
pub fn param_str<'a>(params: &'a Value, names: &[&str]) -> Option<&'a str> {
    param(params, names).and_then(Value::as_str)
}

/// A successful response to request `id`.
pub fn result(id: &Value, result: &impl Serialize) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": to_value(result) })
}

/// An error response to request `id`.
pub fn error(id: &Value, error: &acp::Error) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": to_value(error) })
}

/// A request.
pub fn request(id: i64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// A notification.
pub fn notification(method: &str, params: &impl Serialize) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": to_value(params) })
}

/// `value` as JSON; the protocol types always serialize, so a failure becomes `null`.
fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// An `invalid request` error (−32600) with `message`.
pub fn invalid_request(message: impl Into<String>) -> acp::Error {
    acp::Error::new(i32::from(acp::ErrorCode::InvalidRequest), message)
}

/// An `invalid params` error (−32602) with `message`.
pub fn invalid_params(message: impl Into<String>) -> acp::Error {
    acp::Error::new(i32::from(acp::ErrorCode::InvalidParams), message)
}

/// An `internal error` (−32603) with `message`.
pub fn internal_error(message: impl Into<String>) -> acp::Error {
    acp::Error::new(i32::from(acp::ErrorCode::InternalError), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_objects_are_frames() {
        assert!(parse("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}").is_some());
        assert!(parse("  {\"id\":1}\r").is_some());
        assert!(parse("starting server…").is_none());
        assert!(parse("[1,2]").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn params_are_found_under_either_spelling() {
        let camel = json!({ "modelId": "a:b" });
        let snake = json!({ "model_id": "c:d" });
        let names = ["modelId", "model_id"];
        assert_eq!(param_str(&camel, &names), Some("a:b"));
        assert_eq!(param_str(&snake, &names), Some("c:d"));
        assert_eq!(param_str(&json!({}), &names), None);
        assert_eq!(param_str(&json!({ "modelId": 3 }), &names), None);
    }

    #[test]
    fn a_null_id_is_no_id() {
        let frame = parse("{\"id\":null,\"result\":{}}").unwrap();
        assert!(id(&frame).is_none());
        let frame = parse("{\"id\":\"x\",\"result\":{}}").unwrap();
        assert_eq!(id(&frame), Some(&json!("x")));
    }

    #[test]
    fn errors_carry_the_json_rpc_codes() {
        let reply = error(&json!(7), &invalid_params("model id must be 'agent:model'"));
        assert_eq!(reply["error"]["code"], -32602);
        assert_eq!(reply["error"]["message"], "model id must be 'agent:model'");
        assert_eq!(reply["id"], 7);
        assert_eq!(
            error(&json!(1), &invalid_request("x"))["error"]["code"],
            -32600
        );
        assert_eq!(
            error(&json!(1), &internal_error("x"))["error"]["code"],
            -32603
        );
    }
}
