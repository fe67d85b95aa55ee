//! Response helpers every wire format of the scripted model shares: JSON bodies, error bodies
//! with a status, and server-sent events sent whole (a complete body with its length, so no
//! client waits for more).

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// `value` as an `application/json` 200 response.
pub fn json_response(value: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// `value` as a JSON error response with `status` (400 when it is not a valid status).
pub fn error_response(status: u16, value: &Value) -> Response {
    let mut response = json_response(value);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    response
}

/// One server-sent event: an optional `event:` line and its `data:` line.
pub fn sse_event(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// A complete `text/event-stream` response.
pub fn sse_response(text: String) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
