//! OAuth refresh (docs/compatibility.md#13.3): OAuth credentials whose access token expires within
//! ten minutes (or whose expiry is unknown) are renewed on the host, at start and every five
//! minutes. The refresh token never leaves the host; a failed refresh logs only the status (token
//! endpoints echo secrets in their error bodies). Concurrent refreshers of one credential are kept
//! apart by a non-blocking lock file per credential.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use terok_credentials::routes::RefreshRoute;
use terok_credentials::{Credential, DEFAULT_SET, Secret};

use crate::audit::now_ts;
use crate::state::Shared;

/// Refresh when the token expires within this many seconds.
pub const REFRESH_MARGIN_SECS: f64 = 600.0;
const DEFAULT_LIFETIME_SECS: f64 = 28_800.0;

/// What happened to one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshResult {
    /// Renewed.
    Refreshed,
    /// Still valid long enough.
    NotDue,
    /// Another process holds the lock.
    Busy,
    /// Nothing to refresh with (no refresh token, not OAuth).
    NotApplicable,
    /// The endpoint refused or could not be reached (HTTP status or transport error kind).
    Failed(String),
}

/// The lock file of one credential: a hash, so odd provider names cannot escape the directory.
pub fn lock_path(locks_dir: &Path, set: &str, provider: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(format!("{set}\0{provider}").as_bytes()));
    locks_dir.join(format!("refresh-{}.lock", &digest[..16]))
}

/// Refreshes every due OAuth credential that has a refresh route.
pub async fn refresh_due(shared: &Shared) -> Vec<(String, RefreshResult)> {
    let mut results = Vec::new();
    for (provider, route) in shared.routes() {
        let Some(refresh) = route.oauth_refresh else {
            continue;
        };
        let result = refresh_one(shared, &provider, &refresh, false).await;
        if result != RefreshResult::NotApplicable && result != RefreshResult::NotDue {
            results.push((provider, result));
        }
    }
    results
}

/// Refreshes `provider`'s credential if it is due (or always, with `force`).
pub async fn refresh_one(
    shared: &Shared,
    provider: &str,
    refresh: &RefreshRoute,
    force: bool,
) -> RefreshResult {
    let locks = shared.paths.locks_dir();
    if terok_core::secure_fs::ensure_private_dir(&locks).is_err() {
        return RefreshResult::Failed("cannot create the lock directory".to_owned());
    }
    let lock_file =
        match terok_core::secure_fs::open_lock_file(&lock_path(&locks, DEFAULT_SET, provider)) {
            Ok(f) => f,
            Err(_) => return RefreshResult::Failed("cannot open the lock file".to_owned()),
        };
    if lock_file.try_lock().is_err() {
        return RefreshResult::Busy;
    }
    // Re-read inside the lock: someone else may have refreshed just now.
    let current = shared
        .with_db(|db| db.load_credential(DEFAULT_SET, provider))
        .ok()
        .flatten();
    let Some(Credential::Oauth {
        refresh_token: Some(refresh_token),
        expires_at,
        scopes,
        subscription_type,
        rate_limit_tier,
        id_token,
        account_id,
        ..
    }) = current
    else {
        return RefreshResult::NotApplicable;
    };
    let due = expires_at.is_none_or(|at| at < now_ts() + REFRESH_MARGIN_SECS);
    if !due && !force {
        return RefreshResult::NotDue;
    }
    let mut body = json!({
        "grant_type": "refresh_token",
        "refresh_token": refresh_token.expose(),
        "client_id": refresh.client_id,
    });
    if let Some(scope) = &refresh.scope {
        body["scope"] = json!(scope);
    }
    let answer = match post_json(shared, &refresh.token_url, &body).await {
        Ok(answer) => answer,
        Err(failure) => {
            tracing::warn!(provider, "OAuth refresh failed: {failure}");
            return RefreshResult::Failed(failure);
        }
    };
    let Some(access) = answer.get("access_token").and_then(|v| v.as_str()) else {
        return RefreshResult::Failed("no access_token in the answer".to_owned());
    };
    let lifetime = answer
        .get("expires_in")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(DEFAULT_LIFETIME_SECS);
    let rotated = answer
        .get("refresh_token")
        .and_then(|v| v.as_str())
        .map(Secret::new)
        .unwrap_or(refresh_token);
    let renewed = Credential::Oauth {
        access_token: Secret::new(access),
        refresh_token: Some(rotated),
        expires_at: Some(now_ts() + lifetime),
        scopes,
        subscription_type,
        rate_limit_tier,
        id_token,
        account_id,
    };
    if shared
        .with_db(|db| db.store_credential(DEFAULT_SET, provider, &renewed))
        .is_err()
    {
        return RefreshResult::Failed("cannot store the renewed token".to_owned());
    }
    shared.invalidate();
    tracing::info!(provider, "OAuth access token refreshed");
    RefreshResult::Refreshed
}

/// POSTs `body` as JSON and returns the JSON answer of a 2xx response. The error says only
/// what happened (status, timeout), never what the endpoint answered.
async fn post_json(
    shared: &Shared,
    url: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    use http_body_util::BodyExt;
    let uri: hyper::Uri = url.parse().map_err(|_| "bad token URL".to_owned())?;
    let mut request = hyper::Request::new(crate::tls::UpstreamBody::Left(
        http_body_util::Full::new(axum::body::Bytes::from(body.to_string())),
    ));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    let exchange = async {
        let response = shared.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "the answer was cut off".to_owned())?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|_| "the token endpoint's answer is not JSON".to_owned())
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_cannot_traverse() {
        let dir = Path::new("/locks");
        let p = lock_path(dir, "default", "../../etc/passwd");
        assert_eq!(p.parent(), Some(dir));
        assert!(
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("refresh-")
        );
        assert_ne!(
            lock_path(dir, "default", "a"),
            lock_path(dir, "default", "b")
        );
    }
}
