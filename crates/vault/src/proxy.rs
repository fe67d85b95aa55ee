//! Request handling (docs/compatibility.md#13.1), in named steps: authorize (the token
//! belongs to this listener's container; the provider has a route and a credential), forward
//! to the upstream with the real credential in place of the phantom (following safe
//! redirects), and relay the answer as it streams — audited once the response has been
//! delivered (or abandoned).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use terok_credentials::routes::Route;
use terok_credentials::{Credential, TokenRecord};

use crate::audit::Outcome;
use crate::policy;
use crate::rejections::{ERROR_BODY_LIMIT, Rejections, error_type, is_refusal};
use crate::request::{
    AUTH_HEADERS, AuditGuard, HOP_BY_HOP, extract_token, forward_headers, inject_credential,
    pick_upstream,
};
use crate::tls::{UpstreamBody, UpstreamClient};

/// Largest request body forwarded (requests with large images or files stay well below).
pub const MAX_BODY: usize = 128 * 1024 * 1024;
/// Largest body of a request the vault reads whole before forwarding it (an idempotent one,
/// which it may send twice or redirect); every other body streams through.
pub const MAX_BUFFERED_BODY: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;

/// What a listener knows: the shared state, and the container it serves (`None` accepts any
/// container's token; used only by tests and single-tenant setups).
#[derive(Clone)]
pub struct ListenerCtx {
    /// Shared daemon state.
    pub shared: Arc<crate::state::Shared>,
    /// The container whose tokens this listener accepts.
    pub container: Option<Arc<str>>,
}

/// A request the vault answers itself, without the upstream.
struct Rejection {
    status: StatusCode,
    outcome: Outcome,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome,
            message: message.into(),
        }
    }

    /// A JSON error in the shape the agents' SDKs print, audited with its outcome.
    fn respond(self, mut guard: AuditGuard) -> Response {
        guard.status(self.status);
        guard.finish(self.outcome);
        let body = serde_json::json!({"type": "error", "error": {"type": "terok_vault_error", "message": self.message}});
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// What an authorized request may use: its token's record, the route and the credential of
/// the token's provider.
struct Grant {
    record: Arc<TokenRecord>,
    route: Arc<Route>,
    credential: Arc<Credential>,
}

impl crate::listener::App for ListenerCtx {
    fn call(&self, request: Request) -> impl Future<Output = Response> + Send + use<> {
        handle(self.clone(), request)
    }
}

/// The handler of every request on a listener.
pub async fn handle(ctx: ListenerCtx, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path() == "/-/health" {
        return (StatusCode::OK, "ok\n").into_response();
    }
    let mut guard = AuditGuard::new(ctx.shared.clone(), &parts.method, parts.uri.path());
    if policy::refused_method(&parts.method) {
        let rejection = Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Outcome::MethodNotAllowed,
            format!("The vault does not forward {} requests", parts.method),
        );
        return rejection.respond(guard);
    }
    let grant = match authorize(&ctx, &parts, &mut guard) {
        Ok(grant) => grant,
        Err(rejection) => return rejection.respond(guard),
    };
    if crate::ws::is_upgrade(&parts.headers) {
        // Boxed: the relay's future is large, and inline it would be moved with every request.
        return Box::pin(crate::ws::relay(
            parts,
            &grant.route,
            &grant.credential,
            guard,
        ))
        .await;
    }
    match forward(&ctx.shared, &parts, body, &grant).await {
        Ok(response) => answer(&ctx.shared.rejections, &grant, response, guard).await,
        Err(rejection) => rejection.respond(guard),
    }
}

/// The upstream's answer for the client. A refusal of the credential (401/403) is read — error
/// bodies are small —, recorded for the task's launcher, and passed on; anything else streams.
async fn answer(
    rejections: &Rejections,
    grant: &Grant,
    response: hyper::Response<Incoming>,
    guard: AuditGuard,
) -> Response {
    let (container, provider) = (&grant.record.subject, &grant.record.provider);
    let status = response.status();
    if !is_refusal(status.as_u16()) {
        if status.is_success() || status.is_redirection() {
            rejections.accepted(container, provider);
        }
        return relay(response, guard);
    }
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, ERROR_BODY_LIMIT)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    rejections.refused(container, provider, status.as_u16(), error_type(&body));
    relay_whole(parts, body, guard)
}

/// The token, bound to this listener's container; the route and credential of its provider.
/// The audit line names the token's subject as soon as it is known.
fn authorize(ctx: &ListenerCtx, parts: &Parts, guard: &mut AuditGuard) -> Result<Grant, Rejection> {
    let unauthorized =
        |outcome, message| Rejection::new(StatusCode::UNAUTHORIZED, outcome, message);
    let token = extract_token(&parts.headers)
        .ok_or_else(|| unauthorized(Outcome::MissingToken, "Missing authentication"))?;
    let record: Arc<TokenRecord> = ctx
        .shared
        .lookup_token(&token)
        .filter(|r| ctx.container.as_deref().is_none_or(|c| c == r.subject))
        .ok_or_else(|| unauthorized(Outcome::InvalidToken, "Invalid token"))?;
    guard.bind(&record);
    let route = ctx.shared.route(&record.provider).ok_or_else(|| {
        Rejection::new(
            StatusCode::NOT_FOUND,
            Outcome::NoRoute,
            format!("No route for provider {}", record.provider),
        )
    })?;
    if let Some(rule) = policy::denied_by(&route, &parts.method, parts.uri.path()) {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            Outcome::Denied,
            format!(
                "The vault does not forward requests that mint, rotate or reveal credentials \
                 ({rule})"
            ),
        ));
    }
    let misconfigured =
        |outcome, message: String| Rejection::new(StatusCode::BAD_GATEWAY, outcome, message);
    let credential = match ctx
        .shared
        .credential(&record.credential_set, &record.provider)
    {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            return Err(misconfigured(
                Outcome::CredentialMissing,
                format!(
                    "No credential stored for {}; run `terok-executor auth {}` on the host",
                    record.provider, record.provider
                ),
            ));
        }
        Err(_) => {
            return Err(misconfigured(
                Outcome::CredentialMisconfigured,
                "Credential store unavailable".to_owned(),
            ));
        }
    };
    if credential.upstream_value().is_blank() {
        return Err(misconfigured(
            Outcome::CredentialMisconfigured,
            format!("The stored credential for {} is empty", record.provider),
        ));
    }
    Ok(Grant {
        record,
        route,
        credential,
    })
}

/// Sends the request upstream with the real credential and returns the upstream's answer.
/// A small idempotent request is read whole, so a redirect can resend it; every other body
/// streams through as it arrives, so the vault holds none of it in memory.
async fn forward(
    shared: &crate::state::Shared,
    parts: &Parts,
    body: Body,
    grant: &Grant,
) -> Result<hyper::Response<Incoming>, Rejection> {
    let declared = declared_length(&parts.headers);
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(body_too_large());
    }
    let (uri, headers) = upstream_request(parts, grant)?;
    let small = match declared {
        Some(length) => length <= MAX_BUFFERED_BODY,
        // Neither a length nor chunks: HTTP/1.1 says the body is empty.
        None => !parts.headers.contains_key(header::TRANSFER_ENCODING),
    };
    let outgoing = Outgoing {
        method: parts.method.clone(),
        uri,
        headers,
        body: Bytes::new(),
    };
    if is_idempotent(parts) && small {
        // Boxed: redirects make its future large; every request's future would carry it.
        Box::pin(forward_whole(
            shared,
            outgoing,
            body,
            declared.unwrap_or(0),
            &grant.route,
        ))
        .await
    } else {
        forward_streaming(&shared.client, outgoing, body).await
    }
}

/// Forwards a body as it arrives; a redirect reaches the client as it is.
async fn forward_streaming(
    client: &UpstreamClient,
    outgoing: Outgoing,
    body: Body,
) -> Result<hyper::Response<Incoming>, Rejection> {
    let body = UpstreamBody::Right(http_body_util::Limited::new(body, MAX_BODY));
    let mut request = hyper::Request::new(body);
    *request.method_mut() = outgoing.method;
    *request.uri_mut() = outgoing.uri;
    *request.headers_mut() = outgoing.headers;
    client
        .request(request)
        .await
        .map_err(|err| upstream_failed(&err))
}

/// Reads a body of `length` bytes whole — from a budget every listener shares, so no
/// container can make the vault hold more than it — and forwards it, following redirects.
async fn forward_whole(
    shared: &crate::state::Shared,
    mut outgoing: Outgoing,
    body: Body,
    length: usize,
    route: &Route,
) -> Result<hyper::Response<Incoming>, Rejection> {
    let reserve = u32::try_from(length).unwrap_or(u32::MAX);
    let Ok(_permit) = shared.body_budget.try_acquire_many(reserve) else {
        return Err(Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Busy,
            "The vault is busy; try again",
        ));
    };
    let read = tokio::time::timeout(shared.body_deadline, axum::body::to_bytes(body, length));
    outgoing.body = match read.await {
        Ok(read) => read.map_err(|_| body_too_large())?,
        Err(_) => {
            return Err(Rejection::new(
                StatusCode::REQUEST_TIMEOUT,
                Outcome::BodyTimeout,
                "The request body did not arrive in time",
            ));
        }
    };
    follow_redirects(&shared.client, outgoing, route).await
}

fn body_too_large() -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Outcome::BodyTooLarge,
        "Request body too large",
    )
}

/// The `Content-Length` a request declares, if any.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Why a request never got an answer from the upstream, for the client and the audit log: a
/// TLS handshake that failed (a certificate the system does not trust, a port that does not
/// speak TLS) is told apart from an upstream that could not be reached at all.
fn upstream_failed(err: &hyper_util::client::legacy::Error) -> Rejection {
    if is_tls_failure(err) {
        return Rejection::new(
            StatusCode::BAD_GATEWAY,
            Outcome::UpstreamTlsFailed,
            "Upstream TLS handshake failed",
        );
    }
    Rejection::new(
        StatusCode::BAD_GATEWAY,
        Outcome::UpstreamError,
        "Upstream unreachable",
    )
}

/// Whether a rustls error is somewhere in `err`'s chain. The TLS connector hands it on inside
/// `io::Error`s (nested), whose `source()` skips the error they wrap, so each is opened.
fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(current) = next {
        if current.is::<rustls::Error>() {
            return true;
        }
        let wrapped = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        next = match wrapped {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
}

/// The upstream URL and headers of a request: the route's (or a path's) upstream, the
/// client's headers without hop-by-hop ones and the phantom, the real credential injected.
fn upstream_request(parts: &Parts, grant: &Grant) -> Result<(Uri, HeaderMap), Rejection> {
    let bad_gateway =
        |outcome, message: &str| Rejection::new(StatusCode::BAD_GATEWAY, outcome, message);
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let base = pick_upstream(&grant.route, parts.uri.path());
    let uri = format!("{}{}", base.trim_end_matches('/'), path_and_query)
        .parse::<Uri>()
        .map_err(|_| bad_gateway(Outcome::UpstreamError, "Bad upstream URL"))?;
    let mut headers = forward_headers(&parts.headers);
    inject_credential(&mut headers, &grant.route, &grant.credential).map_err(|_| {
        bad_gateway(
            Outcome::CredentialMisconfigured,
            "The stored credential cannot be sent as a header",
        )
    })?;
    Ok((uri, headers))
}

/// One request as it goes upstream.
struct Outgoing {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Sends an idempotent `outgoing`, retrying once on a dead pooled connection, and follows up
/// to [`MAX_REDIRECTS`] redirects that [`policy::may_follow`]
/// allows — without the credential, which is for the upstream, not for wherever the upstream
/// points. Other redirects reach the client as they are.
async fn follow_redirects(
    client: &UpstreamClient,
    mut outgoing: Outgoing,
    route: &Route,
) -> Result<hyper::Response<Incoming>, Rejection> {
    let mut redirects = 0;
    loop {
        let response = match send(client, &outgoing).await {
            Ok(r) => r,
            // A pooled connection that died before answering: retry once (the request is
            // idempotent).
            Err(_) => send(client, &outgoing)
                .await
                .map_err(|err| upstream_failed(&err))?,
        };
        let next = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| resolve_location(&outgoing.uri, loc));
        let follow = match &next {
            Some(next) if response.status().is_redirection() => {
                redirects < MAX_REDIRECTS && policy::may_follow(route, &outgoing.uri, next).await
            }
            _ => false,
        };
        match next {
            Some(next) if follow => {
                redirects += 1;
                outgoing.uri = next;
                strip_credential(&mut outgoing.headers, route);
                if response.status() == StatusCode::SEE_OTHER && outgoing.method != Method::HEAD {
                    outgoing.method = Method::GET;
                }
            }
            _ => return Ok(response),
        }
    }
}

/// An upstream answer read whole, passed on as it is.
fn relay_whole(
    parts: hyper::http::response::Parts,
    body: Bytes,
    mut guard: AuditGuard,
) -> Response {
    guard.status(parts.status);
    guard.finish(Outcome::Ok);
    let mut headers = client_headers(&parts.headers);
    keep_bodiless_length(&mut headers, parts.status, &parts.headers, body.is_empty());
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers;
    out
}

/// The upstream's response headers the client gets: not the hop-by-hop ones, not a
/// `Location` the vault did not follow, and not the length: the vault re-frames the body.
fn client_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "content-length" || n == "location" {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Passes the upstream's `Content-Length` on where no body follows (the answer to a HEAD, a
/// 304): the length then describes no bytes the vault sends, and a HEAD asks for just that.
/// Only one well-formed length, and never on a 204 or 1xx, which may not carry one.
fn keep_bodiless_length(
    out: &mut HeaderMap,
    status: StatusCode,
    upstream: &HeaderMap,
    no_body: bool,
) {
    if !no_body || status == StatusCode::NO_CONTENT || status.is_informational() {
        return;
    }
    let mut lengths = upstream.get_all(header::CONTENT_LENGTH).iter();
    if let (Some(length), None) = (lengths.next(), lengths.next())
        && length.to_str().is_ok_and(|l| l.parse::<u64>().is_ok())
    {
        out.insert(header::CONTENT_LENGTH, length.clone());
    }
}

/// Removes every header that can carry the credential: the usual ones, the route's own
/// (whatever its name, `X-Goog-Api-Key` say), and its OAuth extras.
fn strip_credential(headers: &mut HeaderMap, route: &Route) {
    for name in AUTH_HEADERS {
        headers.remove(*name);
    }
    if route.auth_header != "dynamic" {
        headers.remove(route.auth_header.as_str());
    }
    for name in route
        .oauth_extra_headers
        .keys()
        .chain(route.oauth_credential_headers.keys())
    {
        headers.remove(name.as_str());
    }
}

fn is_idempotent(parts: &Parts) -> bool {
    matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        || parts.headers.contains_key("idempotency-key")
}

/// The upstream's answer, streamed to the client without hop-by-hop headers; the audit line
/// is written when the body ends (or the client goes away).
fn relay(response: hyper::Response<Incoming>, mut guard: AuditGuard) -> Response {
    let (upstream_parts, upstream_body) = response.into_parts();
    guard.status(upstream_parts.status);
    let mut out_headers = client_headers(&upstream_parts.headers);
    keep_bodiless_length(
        &mut out_headers,
        upstream_parts.status,
        &upstream_parts.headers,
        upstream_body.is_end_stream(),
    );
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
    outgoing: &Outgoing,
) -> Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error> {
    let mut request = hyper::Request::new(UpstreamBody::Left(Full::new(outgoing.body.clone())));
    *request.method_mut() = outgoing.method.clone();
    *request.uri_mut() = outgoing.uri.clone();
    *request.headers_mut() = outgoing.headers.clone();
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
    /// The size of the future an async fn of a listener's context and a request returns.
    fn future_size<F>(_: impl Fn(super::ListenerCtx, axum::extract::Request) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's future is moved (into its box, between tasks) as a whole: the rare,
    /// large paths — a WebSocket relay, redirects — are boxed so it stays small (it was 12.7
    /// KB, copied on every request: a fifth of the daemon's instructions).
    #[test]
    fn a_requests_future_stays_small() {
        let size = future_size(super::handle);
        assert!(size <= 4096, "the request future takes {size} bytes");
    }

    /// The length the client gets of an upstream answer with `lengths`.
    fn length_passed(status: u16, lengths: &[&str], no_body: bool) -> Option<String> {
        use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
        let mut upstream = HeaderMap::new();
        for length in lengths {
            upstream.append(
                header::CONTENT_LENGTH,
                HeaderValue::from_str(length).unwrap(),
            );
        }
        let mut out = super::client_headers(&upstream);
        let status = StatusCode::from_u16(status).unwrap();
        super::keep_bodiless_length(&mut out, status, &upstream, no_body);
        let passed = out.get_all(header::CONTENT_LENGTH).iter().count();
        assert!(passed <= 1, "{passed} lengths passed");
        out.get(header::CONTENT_LENGTH)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn only_one_well_formed_length_of_a_bodiless_answer_passes() {
        assert_eq!(length_passed(200, &["8"], true).as_deref(), Some("8"));
        assert_eq!(length_passed(304, &["512"], true).as_deref(), Some("512"));
        // A body follows: hyper frames it itself.
        assert_eq!(length_passed(200, &["8"], false), None);
        // Two lengths, even equal ones, or a malformed one: the client gets none.
        assert_eq!(length_passed(200, &["8", "8"], true), None);
        assert_eq!(length_passed(200, &["abc"], true), None);
        assert_eq!(length_passed(200, &["-1"], true), None);
        // A 204 may not carry one.
        assert_eq!(length_passed(204, &["8"], true), None);
    }
}
