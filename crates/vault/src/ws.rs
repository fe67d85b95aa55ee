//! WebSocket upgrades: the client's connection is upgraded here and relayed message by message
//! to the upstream, opened with the real credential. Extensions are not negotiated (no
//! permessage-deflate on either leg); an upstream failure closes the client side with 1011.

use crate::listener::ConnectionSlot;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use terok_credentials::Credential;
use terok_credentials::routes::Route;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TsCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self as ts};

use crate::audit::Outcome;
use crate::request::{AuditGuard, forward_headers, inject_credential, pick_upstream};

/// Whether the request asks for a WebSocket upgrade.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn to_upstream(m: ws::Message) -> Option<ts::Message> {
    Some(match m {
        ws::Message::Text(t) => ts::Message::Text(ts::Utf8Bytes::try_from(Bytes::from(t)).ok()?),
        ws::Message::Binary(b) => ts::Message::Binary(b),
        ws::Message::Ping(b) => ts::Message::Ping(b),
        ws::Message::Pong(b) => ts::Message::Pong(b),
        ws::Message::Close(Some(cf)) => ts::Message::Close(Some(TsCloseFrame {
            code: CloseCode::from(cf.code),
            reason: cf.reason.as_str().into(),
        })),
        ws::Message::Close(None) => ts::Message::Close(None),
    })
}

fn to_client(m: ts::Message) -> Option<ws::Message> {
    Some(match m {
        ts::Message::Text(t) => ws::Message::Text(ws::Utf8Bytes::try_from(Bytes::from(t)).ok()?),
        ts::Message::Binary(b) => ws::Message::Binary(b),
        ts::Message::Ping(b) => ws::Message::Ping(b),
        ts::Message::Pong(b) => ws::Message::Pong(b),
        ts::Message::Close(Some(cf)) => ws::Message::Close(Some(ws::CloseFrame {
            code: u16::from(cf.code),
            reason: cf.reason.as_str().into(),
        })),
        ts::Message::Close(None) => ws::Message::Close(None),
        ts::Message::Frame(_) => return None,
    })
}

fn close_1011(reason: &str) -> ws::Message {
    let reason: String = reason.chars().take(100).collect();
    ws::Message::Close(Some(ws::CloseFrame {
        code: 1011,
        reason: reason.into(),
    }))
}

/// The largest message (and frame) relayed from a container: a model session's messages are
/// far smaller, and each one is held whole while it is relayed.
const MAX_MESSAGE: usize = 16 << 20;

/// Upgrades the client connection and relays it to the upstream.
pub async fn relay(
    mut parts: Parts,
    route: &Route,
    credential: &Credential,
    mut guard: AuditGuard,
) -> Response {
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            guard.status(StatusCode::BAD_REQUEST);
            guard.finish(Outcome::UpstreamError);
            return rejection.into_response();
        }
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let base = pick_upstream(route, parts.uri.path());
    let ws_base = base
        .strip_prefix("https://")
        .map(|rest| format!("wss://{rest}"))
        .or_else(|| {
            base.strip_prefix("http://")
                .map(|rest| format!("ws://{rest}"))
        })
        .unwrap_or_else(|| base.to_owned());
    let url = format!("{}{}", ws_base.trim_end_matches('/'), path_and_query);
    let mut request = match url.into_client_request() {
        Ok(r) => r,
        Err(_) => {
            guard.status(StatusCode::BAD_GATEWAY);
            guard.finish(Outcome::UpstreamError);
            return (StatusCode::BAD_GATEWAY, "bad upstream URL").into_response();
        }
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &forward_headers(&parts.headers) {
        if !name.as_str().starts_with("sec-websocket-") {
            headers.append(name.clone(), value.clone());
        }
    }
    if inject_credential(&mut headers, route, credential).is_err() {
        guard.status(StatusCode::BAD_GATEWAY);
        guard.finish(Outcome::CredentialMisconfigured);
        return (StatusCode::BAD_GATEWAY, "credential cannot be sent").into_response();
    }
    for (name, value) in &headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    // The upstream is connected before the client is upgraded: when it declines (426 so the
    // client uses HTTP, 401 for a refused key), the client gets that answer, as it would
    // without the vault in between.
    let connector = crate::tls::websocket_connector();
    let upstream =
        match tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
            .await
        {
            Ok((stream, _)) => stream,
            Err(ts::Error::Http(declined)) => {
                let status = declined.status();
                guard.status(status);
                guard.finish(Outcome::Ok);
                let body = declined.body().clone().unwrap_or_default();
                return (status, body).into_response();
            }
            Err(_) => {
                guard.status(StatusCode::BAD_GATEWAY);
                guard.finish(Outcome::UpstreamError);
                return (StatusCode::BAD_GATEWAY, "upstream connection failed").into_response();
            }
        };
    guard.status(StatusCode::SWITCHING_PROTOCOLS);
    // The relay outlives the request: it keeps the connection's slot under the listener's limit.
    let slot = parts.extensions.remove::<ConnectionSlot>();
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let outcome = pump(socket, upstream).await;
            guard.finish(outcome);
        })
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn pump(client: WebSocket, upstream: Upstream) -> Outcome {
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = upstream.split();
    loop {
        tokio::select! {
            m = c_rx.next() => match m {
                Some(Ok(msg)) => {
                    let closing = matches!(msg, ws::Message::Close(_));
                    if let Some(msg) = to_upstream(msg)
                        && u_tx.send(msg).await.is_err()
                    {
                        let _ = c_tx.send(close_1011("upstream write failed")).await;
                        return Outcome::UpstreamDisconnected;
                    }
                    if closing {
                        return Outcome::Ok;
                    }
                }
                Some(Err(_)) | None => {
                    let _ = u_tx.send(ts::Message::Close(None)).await;
                    return Outcome::ClientDisconnected;
                }
            },
            m = u_rx.next() => match m {
                Some(Ok(msg)) => {
                    let closing = matches!(msg, ts::Message::Close(_));
                    if let Some(msg) = to_client(msg)
                        && c_tx.send(msg).await.is_err()
                    {
                        return Outcome::ClientDisconnected;
                    }
                    if closing {
                        return Outcome::Ok;
                    }
                }
                Some(Err(_)) => {
                    let _ = c_tx.send(close_1011("upstream error")).await;
                    return Outcome::UpstreamError;
                }
                None => {
                    let _ = c_tx.send(close_1011("upstream closed")).await;
                    return Outcome::UpstreamDisconnected;
                }
            },
        }
    }
}
