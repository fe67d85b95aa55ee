//! A mock upstream HTTP server that records every request (method, raw path and query, headers,
//! body) and answers the shapes a vault must relay: JSON, server-sent events, redirects, error
//! statuses, large and compressed bodies, an OAuth token endpoint, and a WebSocket echo.
//! It runs on a [`BackgroundServer`], so sync and async tests can use it alike.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};

use crate::server::BackgroundServer;

/// One request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Raw path and query, as sent.
    pub path_and_query: String,
    /// Headers (names lowercased), in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl RecordedRequest {
    /// The record of a request with these parts and body.
    pub fn new(parts: &axum::http::request::Parts, body: &[u8]) -> Self {
        Self {
            method: parts.method.to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
            at: std::time::Instant::now(),
        }
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any header value or the body contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.headers.iter().any(|(_, v)| v.contains(needle))
            || String::from_utf8_lossy(&self.body).contains(needle)
            || self.path_and_query.contains(needle)
    }
}

#[derive(Default)]
struct Inner {
    quiet: bool,
    requests: Vec<RecordedRequest>,
    token_status: Option<u16>,
    token_answer: Option<serde_json::Value>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        match self.0.lock() {
            Ok(mut inner) => f(&mut inner),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// The running mock upstream; stops when dropped.
pub struct MockUpstream {
    server: BackgroundServer,
    shared: Shared,
}

impl MockUpstream {
    /// Starts a server on 127.0.0.1 (any free port).
    pub fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0")
    }

    /// Starts a server that records nothing, on one thread: a cheap peer for benchmarks.
    pub fn start_quiet() -> std::io::Result<Self> {
        let upstream = Self::start_with("127.0.0.1:0", 1)?;
        upstream.shared.with(|i| i.quiet = true);
        Ok(upstream)
    }

    /// Starts a server on `addr` (`0.0.0.0:0` to be reachable from containers).
    pub fn start_on(addr: &str) -> std::io::Result<Self> {
        Self::start_with(addr, 2)
    }

    fn start_with(addr: &str, threads: usize) -> std::io::Result<Self> {
        let shared = Shared::default();
        let app = Router::new().fallback(respond).with_state(shared.clone());
        Ok(Self {
            server: BackgroundServer::start(addr, threads, app)?,
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

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.with(|i| i.requests.clone())
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.shared.with(|i| i.requests.clear());
    }

    /// Scripts the OAuth token endpoint (`POST /oauth/token`): status and JSON answer.
    pub fn set_token_answer(&self, status: u16, answer: serde_json::Value) {
        self.shared.with(|i| {
            i.token_status = Some(status);
            i.token_answer = Some(answer);
        });
    }
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn headers_json(headers: &HeaderMap) -> serde_json::Value {
    let map: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    serde_json::json!(map)
}

async fn respond(State(shared): State<Shared>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    if path == "/ws" {
        let headers = headers_json(&parts.headers);
        shared.with(|i| {
            if !i.quiet {
                i.requests.push(RecordedRequest::new(&parts, &[]));
            }
        });
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade.on_upgrade(move |socket| async move {
                let (mut tx, mut rx) = socket.split();
                // First message: what the upstream saw in the handshake.
                let _ = tx.send(Message::Text(headers.to_string().into())).await;
                while let Some(Ok(msg)) = rx.next().await {
                    match msg {
                        Message::Close(_) => break,
                        other => {
                            if tx.send(other).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }),
            Err(rejection) => rejection.into_response(),
        };
    }
    let body = axum::body::to_bytes(body, 512 * 1024 * 1024)
        .await
        .unwrap_or_default();
    shared.with(|i| {
        if !i.quiet {
            i.requests.push(RecordedRequest::new(&parts, &body));
        }
    });
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"error": {"message": format!("scripted {code}"), "secret_echo": "refresh-token-echoed-by-server"}});
        return (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    match path.as_str() {
        "/sse" => {
            let events: u32 = query_param(&query, "events")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3);
            let delay: u64 = query_param(&query, "delay_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(50);
            let stamped = query_param(&query, "ts") == Some("1");
            // With die_after=K the server drops the connection after K events, as an upstream
            // that crashes or loses its network mid-answer would.
            let die_after: Option<u32> =
                query_param(&query, "die_after").and_then(|v| v.parse().ok());
            let stream = futures_util::stream::unfold(0u32, move |n| async move {
                if n >= events {
                    return None;
                }
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if die_after == Some(n) {
                    let died = std::io::Error::other("the mock upstream died mid-stream");
                    return Some((Err(died), n + 1));
                }
                // With ts=1 each event says when it was sent (µs since the epoch), so a client
                // in the same process can measure how long it took to arrive.
                let sent = if stamped {
                    let micros = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros())
                        .unwrap_or(0);
                    format!(",\"sent_us\":{micros}")
                } else {
                    String::new()
                };
                let chunk = Bytes::from(format!("event: tick\ndata: {{\"n\":{n}{sent}}}\n\n"));
                Some((Ok::<_, std::io::Error>(chunk), n + 1))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(stream))
                .unwrap_or_default()
        }
        "/redirect" => {
            let to = query_param(&query, "to").unwrap_or("/json").to_owned();
            let status = query_param(&query, "status")
                .and_then(|v| v.parse().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::FOUND);
            (status, [(header::LOCATION, to)]).into_response()
        }
        "/gzip" => {
            // Bytes that are *labelled* gzip: a proxy must pass them on untouched.
            let raw: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef];
            (
                [
                    (header::CONTENT_ENCODING, "gzip"),
                    (header::CONTENT_TYPE, "application/json"),
                ],
                raw.to_vec(),
            )
                .into_response()
        }
        "/big" => {
            let n: usize = query_param(&query, "bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1 << 20);
            vec![b'x'; n].into_response()
        }
        "/oauth/token" => {
            let (status, answer) = shared.with(|i| (i.token_status, i.token_answer.clone()));
            let status = status
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::OK);
            let answer = answer.unwrap_or_else(
                || serde_json::json!({"access_token": "refreshed-access", "expires_in": 3600}),
            );
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
        _ => {
            let mut answer = serde_json::json!({
                "ok": true,
                "method": parts.method.as_str(),
                "path": path_and_query,
                "body_len": body.len(),
            });
            // Only /echo reflects the request headers (a real upstream never sends a key back).
            if path == "/echo" {
                answer["headers"] = headers_json(&parts.headers);
            }
            (
                [(header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
    }
}
