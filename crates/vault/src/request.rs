//! The parts of handling one request that plain HTTP and WebSocket relays share: the phantom
//! token it presents, the upstream it goes to, the headers it carries there (with the real
//! credential in place of the phantom), and its audit line.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use terok_credentials::routes::Route;
use terok_credentials::{Credential, TokenRecord};

use crate::audit::{AuditEntry, Outcome, now_ts};
use crate::state::Shared;

/// Headers that concern one connection, never forwarded.
pub(crate) const HOP_BY_HOP: &[&str] = &[
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

/// Headers that can carry a phantom token (never forwarded; the credential replaces them).
pub(crate) const AUTH_HEADERS: &[&str] = &["authorization", "x-api-key", "private-token"];

/// Headers some frameworks read to treat a request as another method: dropped, so a `deny`
/// rule on a method cannot be dodged with a POST that says it is one.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

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
            || METHOD_OVERRIDES.contains(&n)
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
    // Headers only the vault may set: whatever the credential, the client's values go (the
    // account header says whose account this is; the route's own credential header could carry
    // the phantom).
    for name in route.oauth_credential_headers.keys() {
        headers.remove(name.as_str());
    }
    if route.auth_header != "dynamic" {
        headers.remove(route.auth_header.as_str());
    }
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
        for (name, field) in &route.oauth_credential_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| BadHeader)?;
            if let Some(value) = credential.field(field) {
                headers.insert(name, sensitive(value).map_err(|_| BadHeader)?);
            }
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

/// Characters of a path an authenticated request logs.
const MAX_LOGGED_PATH: usize = 1024;
/// Characters of a path a request without a valid token logs.
const MAX_UNAUTHENTICATED_PATH: usize = 64;

/// Characters of a method logged: HTTP allows any token, of any length.
const MAX_LOGGED_METHOD: usize = 16;

/// Cuts `text` to `keep` characters, marking the cut with `…`.
fn truncate_logged(text: &mut String, keep: usize) {
    if let Some((cut, _)) = text.char_indices().nth(keep) {
        text.truncate(cut);
        text.push('…');
    }
}

/// The audit line of one request, written exactly once: when the response is complete, when
/// it fails, or when the client goes away (dropped unfinished).
pub struct AuditGuard {
    shared: Arc<Shared>,
    entry: Option<AuditEntry>,
    started: Instant,
}

impl AuditGuard {
    pub(crate) fn new(shared: Arc<Shared>, method: &Method, path: &str) -> Self {
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

    pub(crate) fn bind(&mut self, record: &TokenRecord) {
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
            // Whoever holds no token writes little into the log; a container writes a bounded
            // path and method.
            let keep = if entry.subject.is_some() {
                MAX_LOGGED_PATH
            } else {
                MAX_UNAUTHENTICATED_PATH
            };
            truncate_logged(&mut entry.path, keep);
            truncate_logged(&mut entry.method, MAX_LOGGED_METHOD);
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
            ..Route::default()
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

    #[test]
    fn credential_headers_come_from_the_stored_credential_never_from_the_client() {
        let mut openai = route(&[]);
        openai.oauth_credential_headers =
            BTreeMap::from([("ChatGPT-Account-ID".to_owned(), "account_id".to_owned())]);
        let oauth = |account: Option<&str>| Credential::Oauth {
            access_token: terok_credentials::Secret::new("at"),
            refresh_token: None,
            expires_at: None,
            scopes: None,
            subscription_type: None,
            rate_limit_tier: None,
            id_token: None,
            account_id: account.map(str::to_owned),
        };
        // The agent names someone else's account: the stored one replaces it.
        let mut h = HeaderMap::new();
        h.insert("chatgpt-account-id", HeaderValue::from_static("victim"));
        inject_credential(&mut h, &openai, &oauth(Some("acct-1"))).unwrap();
        assert_eq!(h["chatgpt-account-id"], "acct-1");
        assert!(h["chatgpt-account-id"].is_sensitive());
        // No stored account: the client's value is still dropped.
        let mut h = HeaderMap::new();
        h.insert("chatgpt-account-id", HeaderValue::from_static("victim"));
        inject_credential(&mut h, &openai, &oauth(None)).unwrap();
        assert!(!h.contains_key("chatgpt-account-id"));
        // Nor with an API key, which has no account at all.
        let mut h = HeaderMap::new();
        h.insert("chatgpt-account-id", HeaderValue::from_static("victim"));
        inject_credential(&mut h, &openai, &Credential::api_key("sk-1")).unwrap();
        assert!(!h.contains_key("chatgpt-account-id"));
        // A route's own credential header from the client never passes beside an OAuth token.
        let mut goog = route(&[]);
        goog.auth_header = "X-Goog-Api-Key".into();
        let mut h = HeaderMap::new();
        h.insert(
            "x-goog-api-key",
            HeaderValue::from_static("terok-p-phantom"),
        );
        inject_credential(&mut h, &goog, &oauth(None)).unwrap();
        assert!(!h.contains_key("x-goog-api-key"));
        assert_eq!(h["authorization"], "Bearer at");
    }
}
