//! Request handling (sandbox.md §2.2): find the token, check it belongs to this listener's
//! container, find the provider's route and credential, forward to the upstream with the real
//! credential in place of the phantom, and stream the answer back — audited once the response
//! has been delivered (or abandoned).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use terok_credentials::routes::Route;
use terok_credentials::{Credential, TokenRecord};

use crate::audit::{AuditEntry, Outcome, now_ts};
use crate::state::Shared;
use crate::tls::UpstreamClient;

/// Largest request body forwarded (requests with large images or files stay well below).
pub const MAX_BODY: usize = 128 * 1024 * 1024;
const MAX_REDIRECTS: usize = 5;

/// What a listener knows: the shared state, and the container it serves (`None` accepts any
/// container's token; used only by tests and single-tenant setups).
#[derive(Clone)]
pub struct ListenerCtx {
    /// Shared daemon state.
    pub shared: Arc<Shared>,
    /// The container whose tokens this listener accepts.
    pub container: Option<Arc<str>>,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const AUTH_HEADERS: &[&str] = &["authorization", "x-api-key", "private-token"];

/// The phantom token presented: the first non-empty of `Authorization`, `x-api-key`,
/// `private-token`; for `Bearer x` / `token x`, the part after the space.
pub fn extract_token(headers: &HeaderMap) -> Option<String> {
    AUTH_HEADERS.iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?.trim();
        if value.is_empty() {
            return None;
        }
        let token = value.split_once(' ').map_or(value, |(_, rest)| rest.trim());
        (!token.is_empty()).then(|| token.to_owned())
    })
}

/// The upstream base for `path`: the longest `path_upstreams` prefix that matches on a segment
/// boundary, else the route's upstream.
pub fn pick_upstream<'r>(route: &'r Route, path: &str) -> &'r str {
    route
        .path_upstreams
        .iter()
        .filter(|(prefix, _)| {
            let bare = prefix.trim_end_matches('/');
            path == bare || path.starts_with(&format!("{bare}/")) || bare.is_empty()
        })
        .max_by_key(|(prefix, _)| prefix.trim_end_matches('/').len())
        .map_or(route.upstream.as_str(), |(_, url)| url.as_str())
}

/// Request headers to send upstream: without hop-by-hop headers, headers named in
/// `Connection`, `Host`, and every header that can carry the phantom.
pub fn forward_headers(incoming: &HeaderMap) -> HeaderMap {
    let connection_listed: Vec<String> = incoming
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || AUTH_HEADERS.contains(&n)
            || n == "host"
            || n == "content-length"
            || connection_listed.iter().any(|c| c == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The credential (or a route's header name) cannot be expressed as an HTTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHeader;

/// Puts the real credential into `headers` as the route says.
pub fn inject_credential(
    headers: &mut HeaderMap,
    route: &Route,
    credential: &Credential,
) -> Result<(), BadHeader> {
    let value = credential.upstream_value().expose();
    let sensitive = |text: &str| {
        HeaderValue::from_str(text).map(|mut v| {
            v.set_sensitive(true);
            v
        })
    };
    if credential.is_oauth() {
        headers.insert(
            header::AUTHORIZATION,
            sensitive(&format!("Bearer {value}")).map_err(|_| BadHeader)?,
        );
        for (name, extra) in &route.oauth_extra_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| BadHeader)?;
            let merged = merge_comma_list(headers.get(&name).and_then(|v| v.to_str().ok()), extra);
            headers.insert(name, HeaderValue::from_str(&merged).map_err(|_| BadHeader)?);
        }
        return Ok(());
    }
    if route.auth_header == "dynamic" {
        headers.insert(
            HeaderName::from_static("x-api-key"),
            sensitive(value).map_err(|_| BadHeader)?,
        );
        return Ok(());
    }
    let name = HeaderName::from_bytes(route.auth_header.as_bytes()).map_err(|_| BadHeader)?;
    headers.insert(
        name,
        sensitive(&format!("{}{value}", route.auth_prefix)).map_err(|_| BadHeader)?,
    );
    Ok(())
}

/// `a, b` + `b, c` → `a, b, c`.
fn merge_comma_list(existing: Option<&str>, extra: &str) -> String {
    let mut items: Vec<String> = Vec::new();
    for item in existing
        .into_iter()
        .chain(std::iter::once(extra))
        .flat_map(|s| s.split(','))
    {
        let item = item.trim();
        if !item.is_empty() && !items.iter().any(|i| i == item) {
            items.push(item.to_owned());
        }
    }
    items.join(",")
}

fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || headers.contains_key("idempotency-key")
}

/// The audit line of one request, written exactly once: when the response is complete, when
/// it fails, or when the client goes away (dropped unfinished).
pub struct AuditGuard {
    shared: Arc<Shared>,
    entry: Option<AuditEntry>,
    started: Instant,
}

impl AuditGuard {
    fn new(shared: Arc<Shared>, method: &Method, path: &str) -> Self {
        Self {
            shared,
            entry: Some(AuditEntry {
                ts: now_ts(),
                scope: None,
                subject: None,
                credential_set: None,
                provider: None,
                method: method.as_str().to_owned(),
                path: path.to_owned(),
                status: 0,
                outcome: Outcome::ClientDisconnected,
                duration_ms: 0.0,
            }),
            started: Instant::now(),
        }
    }

    fn bind(&mut self, record: &TokenRecord) {
        if let Some(entry) = self.entry.as_mut() {
            entry.scope = Some(record.scope.clone());
            entry.subject = Some(record.subject.clone());
            entry.credential_set = Some(record.credential_set.clone());
            entry.provider = Some(record.provider.clone());
        }
    }

    pub(crate) fn status(&mut self, status: StatusCode) {
        if let Some(entry) = self.entry.as_mut() {
            entry.status = status.as_u16();
        }
    }

    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if let Some(mut entry) = self.entry.take() {
            entry.outcome = outcome;
            entry.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            self.shared.audit.write(&entry);
        }
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        // Still unfinished: the client stopped reading (or never got) the response.
        self.finish(Outcome::ClientDisconnected);
    }
}

fn error_response(
    mut guard: AuditGuard,
    status: StatusCode,
    outcome: Outcome,
    message: &str,
) -> Response {
    guard.status(status);
    guard.finish(outcome);
    let body = serde_json::json!({"type": "error", "error": {"type": "terok_vault_error", "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The handler of every request on a listener.
pub async fn handle(State(ctx): State<ListenerCtx>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path() == "/-/health" {
        return (StatusCode::OK, "ok\n").into_response();
    }
    let mut guard = AuditGuard::new(ctx.shared.clone(), &parts.method, parts.uri.path());
    let Some(token) = extract_token(&parts.headers) else {
        return error_response(
            guard,
            StatusCode::UNAUTHORIZED,
            Outcome::MissingToken,
            "Missing authentication",
        );
    };
    let record = match ctx.shared.lookup_token(&token) {
        Some(record) if ctx.container.as_deref().is_none_or(|c| c == record.subject) => record,
        _ => {
            return error_response(
                guard,
                StatusCode::UNAUTHORIZED,
                Outcome::InvalidToken,
                "Invalid token",
            );
        }
    };
    guard.bind(&record);
    let Some(route) = ctx.shared.route(&record.provider) else {
        let msg = format!("No route for provider {}", record.provider);
        return error_response(guard, StatusCode::NOT_FOUND, Outcome::NoRoute, &msg);
    };
    let credential = match ctx
        .shared
        .credential(&record.credential_set, &record.provider)
    {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            let msg = format!(
                "No credential stored for {}; run `terok-executor auth {}` on the host",
                record.provider, record.provider
            );
            return error_response(
                guard,
                StatusCode::BAD_GATEWAY,
                Outcome::CredentialMissing,
                &msg,
            );
        }
        Err(_) => {
            return error_response(
                guard,
                StatusCode::BAD_GATEWAY,
                Outcome::CredentialMisconfigured,
                "Credential store unavailable",
            );
        }
    };
    if credential.upstream_value().is_blank() {
        let msg = format!("The stored credential for {} is empty", record.provider);
        return error_response(
            guard,
            StatusCode::BAD_GATEWAY,
            Outcome::CredentialMisconfigured,
            &msg,
        );
    }

    if crate::ws::is_upgrade(&parts.headers) {
        return crate::ws::relay(parts, &route, &credential, guard).await;
    }

    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(
                guard,
                StatusCode::PAYLOAD_TOO_LARGE,
                Outcome::BodyTooLarge,
                "Request body too large",
            );
        }
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let base = pick_upstream(&route, parts.uri.path());
    let Ok(mut uri) = format!("{}{}", base.trim_end_matches('/'), path_and_query).parse::<Uri>()
    else {
        return error_response(
            guard,
            StatusCode::BAD_GATEWAY,
            Outcome::UpstreamError,
            "Bad upstream URL",
        );
    };
    let mut headers = forward_headers(&parts.headers);
    if inject_credential(&mut headers, &route, &credential).is_err() {
        return error_response(
            guard,
            StatusCode::BAD_GATEWAY,
            Outcome::CredentialMisconfigured,
            "The stored credential cannot be sent as a header",
        );
    }
    let idempotent = is_idempotent(&parts.method, &parts.headers);
    let mut method = parts.method.clone();
    let mut redirects = 0;
    let response = loop {
        let sent = send(&ctx.shared.client, &method, &uri, &headers, &body).await;
        let response = match sent {
            Ok(r) => r,
            // A pooled connection that died before answering: retry once, when that is safe.
            Err(_) if idempotent => {
                match send(&ctx.shared.client, &method, &uri, &headers, &body).await {
                    Ok(r) => r,
                    Err(_) => {
                        return error_response(
                            guard,
                            StatusCode::BAD_GATEWAY,
                            Outcome::UpstreamError,
                            "Upstream unreachable",
                        );
                    }
                }
            }
            Err(_) => {
                return error_response(
                    guard,
                    StatusCode::BAD_GATEWAY,
                    Outcome::UpstreamError,
                    "Upstream unreachable",
                );
            }
        };
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| resolve_location(&uri, loc));
        match location {
            Some(next)
                if response.status().is_redirection()
                    && idempotent
                    && redirects < MAX_REDIRECTS =>
            {
                // Followed here, without the credential: it is for the upstream, not for
                // wherever the upstream points.
                redirects += 1;
                uri = next;
                for name in AUTH_HEADERS {
                    headers.remove(*name);
                }
                for name in route.oauth_extra_headers.keys() {
                    headers.remove(name.as_str());
                }
                if response.status() == StatusCode::SEE_OTHER && method != Method::HEAD {
                    method = Method::GET;
                }
            }
            _ => break response,
        }
    };
    let (upstream_parts, upstream_body) = response.into_parts();
    guard.status(upstream_parts.status);
    let mut out_headers = HeaderMap::with_capacity(upstream_parts.headers.len());
    for (name, value) in &upstream_parts.headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "content-length" || n == "location" {
            continue;
        }
        out_headers.append(name.clone(), value.clone());
    }
    let mut audited = AuditedBody {
        inner: upstream_body,
        guard: Some(guard),
    };
    if audited.inner.is_end_stream()
        && let Some(mut guard) = audited.guard.take()
    {
        // An empty body is never polled.
        guard.finish(Outcome::Ok);
    }
    let mut out = Response::new(Body::new(audited));
    *out.status_mut() = upstream_parts.status;
    *out.headers_mut() = out_headers;
    out
}

async fn send(
    client: &UpstreamClient,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error> {
    let mut request = hyper::Request::new(Full::new(body.clone()));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    client.request(request).await
}

/// Resolves a `Location` against the URL that answered with it.
fn resolve_location(current: &Uri, location: &str) -> Option<Uri> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().ok();
    }
    let scheme = current.scheme_str()?;
    let authority = current.authority()?.as_str();
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}").parse().ok();
    }
    let dir = current.path().rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
        .parse()
        .ok()
}

/// The upstream body, passed through frame by frame; audits the request when it ends.
struct AuditedBody {
    inner: Incoming,
    guard: Option<AuditGuard>,
}

impl http_body::Body for AuditedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            // hyper stops polling once the body says it has ended, so a complete response is
            // recognised on its last frame as well as on the end marker.
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => {
                if let Some(mut guard) = self.guard.take() {
                    guard.finish(Outcome::Ok);
                }
            }
            Poll::Ready(None) => {
                if let Some(mut guard) = self.guard.take() {
                    guard.finish(Outcome::Ok);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut guard) = self.guard.take() {
                    guard.finish(Outcome::UpstreamDisconnected);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn route(prefixes: &[(&str, &str)]) -> Route {
        Route {
            upstream: "https://api.example".into(),
            auth_header: "Authorization".into(),
            auth_prefix: "Bearer ".into(),
            path_upstreams: prefixes
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect(),
            oauth_extra_headers: BTreeMap::from([(
                "anthropic-beta".to_owned(),
                "oauth-2025-04-20".to_owned(),
            )]),
            oauth_refresh: None,
        }
    }

    #[test]
    fn tokens_come_from_any_auth_header() {
        let mut h = HeaderMap::new();
        assert_eq!(extract_token(&h), None);
        h.insert("x-api-key", HeaderValue::from_static("terok-p-1"));
        assert_eq!(extract_token(&h).as_deref(), Some("terok-p-1"));
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer terok-p-2"),
        );
        assert_eq!(extract_token(&h).as_deref(), Some("terok-p-2"));
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("token terok-p-3"));
        assert_eq!(extract_token(&h).as_deref(), Some("terok-p-3"));
        let mut h = HeaderMap::new();
        h.insert("private-token", HeaderValue::from_static("terok-p-4"));
        assert_eq!(extract_token(&h).as_deref(), Some("terok-p-4"));
    }

    #[test]
    fn path_upstreams_match_on_segment_boundaries() {
        let r = route(&[
            ("/backend-api/", "https://chatgpt.com"),
            ("/v1", "https://v1.example"),
            ("/v1/files", "https://files.example"),
        ]);
        assert_eq!(
            pick_upstream(&r, "/backend-api/codex/responses"),
            "https://chatgpt.com"
        );
        assert_eq!(pick_upstream(&r, "/backend-api"), "https://chatgpt.com");
        assert_eq!(pick_upstream(&r, "/v1/files/x"), "https://files.example");
        assert_eq!(pick_upstream(&r, "/v1"), "https://v1.example");
        assert_eq!(pick_upstream(&r, "/v10/x"), "https://api.example");
        assert_eq!(pick_upstream(&r, "/other"), "https://api.example");
    }

    #[test]
    fn hop_by_hop_connection_listed_host_and_auth_headers_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-custom"),
            ("x-custom", "1"),
            ("keep-alive", "5"),
            ("host", "vault"),
            ("authorization", "Bearer terok-p-1"),
            ("x-api-key", "terok-p-1"),
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let out = forward_headers(&h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "anthropic-version"]);
    }

    #[test]
    fn credentials_are_injected_per_route_rules() {
        let r = route(&[]);
        let mut h = HeaderMap::new();
        inject_credential(&mut h, &r, &Credential::api_key("sk-1")).unwrap();
        assert_eq!(h["authorization"], "Bearer sk-1");
        let mut dynamic = r.clone();
        dynamic.auth_header = "dynamic".into();
        let mut h = HeaderMap::new();
        inject_credential(&mut h, &dynamic, &Credential::api_key("sk-2")).unwrap();
        assert_eq!(h["x-api-key"], "sk-2");
        assert!(!h.contains_key("authorization"));
        let oauth = Credential::Oauth {
            access_token: terok_credentials::Secret::new("at"),
            refresh_token: None,
            expires_at: None,
            scopes: None,
            subscription_type: None,
            rate_limit_tier: None,
            id_token: None,
            account_id: None,
        };
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-beta",
            HeaderValue::from_static("tools-1, oauth-2025-04-20"),
        );
        inject_credential(&mut h, &dynamic, &oauth).unwrap();
        assert_eq!(h["authorization"], "Bearer at");
        assert_eq!(h["anthropic-beta"], "tools-1,oauth-2025-04-20");
        let mut gl = r.clone();
        gl.auth_header = "PRIVATE-TOKEN".into();
        gl.auth_prefix = String::new();
        let mut h = HeaderMap::new();
        inject_credential(&mut h, &gl, &Credential::api_key("glpat-1")).unwrap();
        assert_eq!(h["private-token"], "glpat-1");
    }
}
