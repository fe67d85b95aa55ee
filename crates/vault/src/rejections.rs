//! Upstreams refusing a stored credential: every 401 or 403 an upstream answers to a request
//! the vault forwarded with a real credential, by container and provider, so the launcher of a
//! task can tell its user within seconds instead of after the agent's retries run out. The
//! vault's own 401s (a missing or wrong phantom token) never reach an upstream and are not
//! counted.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Largest error body read to find the upstream's error type (error bodies are small).
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// An upstream refused the stored credential of `provider` for requests of `container`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rejection {
    /// The container whose requests were refused.
    pub container: String,
    /// The provider whose credential was refused.
    pub provider: String,
    /// The upstream's status (401 or 403).
    pub status: u16,
    /// The upstream's error type or code (`authentication_error`, `invalid_api_key`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Refusals in a row (a request that gets through resets it).
    pub count: u32,
    /// When the first of them came, seconds since the epoch.
    pub first_unix: i64,
    /// When the last came.
    pub last_unix: i64,
}

/// Whether `status` is an upstream refusing the credential.
pub fn is_refusal(status: u16) -> bool {
    matches!(status, 401 | 403)
}

/// The error type an upstream names in its error body: `error.code`, `error.type`, `code` or
/// `type` (Anthropic: `authentication_error`; OpenAI: `invalid_api_key`).
pub fn error_type(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = &value["error"];
    [
        &error["code"],
        &error["type"],
        &value["code"],
        &value["type"],
    ]
    .into_iter()
    .find_map(|v| v.as_str())
    .filter(|t| *t != "error" && t.len() <= 80)
    .map(str::to_owned)
}

/// The refusals the daemon has seen.
#[derive(Debug, Default)]
pub struct Rejections {
    /// (container, provider) → its current run of refusals.
    current: Mutex<BTreeMap<(String, String), Rejection>>,
    /// provider → the last refusal of its credential (kept after its container is gone).
    last: Mutex<BTreeMap<String, Rejection>>,
}

impl Rejections {
    /// Records that the upstream refused `provider`'s credential for `container`.
    pub fn refused(
        &self,
        container: &str,
        provider: &str,
        status: u16,
        error_type: Option<String>,
    ) {
        let now = terok_core::time::unix_now();
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        let entry = current
            .entry((container.to_owned(), provider.to_owned()))
            .or_insert_with(|| Rejection {
                container: container.to_owned(),
                provider: provider.to_owned(),
                status,
                error_type: None,
                count: 0,
                first_unix: now,
                last_unix: now,
            });
        entry.count += 1;
        entry.status = status;
        entry.error_type = error_type;
        entry.last_unix = now;
        let snapshot = entry.clone();
        drop(current);
        if let Ok(mut last) = self.last.lock() {
            last.insert(provider.to_owned(), snapshot);
        }
    }

    /// A request of `container` with `provider`'s credential got through: its run ends.
    pub fn accepted(&self, container: &str, provider: &str) {
        if let Ok(mut current) = self.current.lock()
            && !current.is_empty()
        {
            current.remove(&(container.to_owned(), provider.to_owned()));
        }
    }

    /// Forgets `container` (its listener closed).
    pub fn forget(&self, container: &str) {
        if let Ok(mut current) = self.current.lock() {
            current.retain(|(c, _), _| c != container);
        }
    }

    /// The current runs of refusals, of `container` or of every container.
    pub fn current(&self, container: Option<&str>) -> Vec<Rejection> {
        self.current
            .lock()
            .map(|c| {
                c.values()
                    .filter(|r| container.is_none_or(|name| r.container == name))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last refusal of each provider's credential.
    pub fn last_by_provider(&self) -> Vec<Rejection> {
        self.last
            .lock()
            .map(|l| l.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_refusals_count_up_and_end_with_a_success() {
        let r = Rejections::default();
        r.refused("a", "claude", 401, Some("authentication_error".into()));
        r.refused("a", "claude", 401, Some("authentication_error".into()));
        r.refused("b", "claude", 403, None);
        let a = r.current(Some("a"));
        assert_eq!((a.len(), a[0].count, a[0].status), (1, 2, 401));
        assert_eq!(r.current(None).len(), 2);
        r.accepted("a", "claude");
        assert!(r.current(Some("a")).is_empty());
        assert_eq!(
            r.last_by_provider()[0].container,
            "b",
            "the last refusal is kept"
        );
        r.forget("b");
        assert!(r.current(None).is_empty());
        assert_eq!(r.last_by_provider().len(), 1);
    }

    #[test]
    fn error_types_of_the_usual_shapes() {
        let anthropic = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(
            error_type(anthropic).as_deref(),
            Some("authentication_error")
        );
        let openai = br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(error_type(openai).as_deref(), Some("invalid_api_key"));
        assert_eq!(error_type(b"<html>denied</html>"), None);
        assert!(is_refusal(401) && is_refusal(403) && !is_refusal(404));
    }
}
