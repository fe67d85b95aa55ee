//! The stored credential shapes (docs/compatibility.md#12.1), with secrets that never show in
//! `Debug` output or error messages.

use serde::{Deserialize, Serialize};

/// A secret string: serialized as-is (for the sealed store), but never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call sites are few and obvious on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty or whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A credential as stored for one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credential {
    /// An API key.
    ApiKey {
        /// The key.
        key: Secret,
    },
    /// OAuth tokens; the refresh token never leaves the host.
    Oauth {
        /// Access token sent upstream.
        access_token: Secret,
        /// Refresh token, used by the vault to renew the access token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_token: Option<Secret>,
        /// Expiry, seconds since the epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<f64>,
        /// Granted scopes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scopes: Option<serde_json::Value>,
        /// Claude subscription type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subscription_type: Option<String>,
        /// Claude rate-limit tier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate_limit_tier: Option<String>,
        /// OpenAI id token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id_token: Option<Secret>,
        /// OpenAI/ChatGPT account id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account_id: Option<String>,
    },
    /// A long-lived OAuth token (gh).
    OauthToken {
        /// The token.
        token: Secret,
        /// The host it is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// A personal access token (glab).
    Pat {
        /// The token.
        token: Secret,
        /// The host it is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
}

impl Credential {
    /// An API key credential.
    pub fn api_key(key: impl Into<String>) -> Self {
        Self::ApiKey {
            key: Secret::new(key),
        }
    }

    /// What a Pod's vault sidecar may hold of it: everything but an OAuth refresh token,
    /// which never leaves this host (renewing it elsewhere would also make this host's copy
    /// stale where the provider rotates it).
    pub fn without_refresh_token(&self) -> Self {
        match self {
            Self::Oauth { .. } => {
                let mut copy = self.clone();
                if let Self::Oauth { refresh_token, .. } = &mut copy {
                    *refresh_token = None;
                }
                copy
            }
            other => other.clone(),
        }
    }

    /// When an OAuth access token expires (seconds since the epoch), if it says.
    pub fn expires_at(&self) -> Option<f64> {
        match self {
            Self::Oauth { expires_at, .. } => *expires_at,
            _ => None,
        }
    }

    /// The `type` name as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey { .. } => "api_key",
            Self::Oauth { .. } => "oauth",
            Self::OauthToken { .. } => "oauth_token",
            Self::Pat { .. } => "pat",
        }
    }

    /// Whether this is an OAuth credential (Bearer + OAuth headers upstream).
    pub fn is_oauth(&self) -> bool {
        matches!(self, Self::Oauth { .. })
    }

    /// The value sent upstream: the access token, token or key.
    pub fn upstream_value(&self) -> &Secret {
        match self {
            Self::ApiKey { key } => key,
            Self::Oauth { access_token, .. } => access_token,
            Self::OauthToken { token, .. } | Self::Pat { token, .. } => token,
        }
    }

    /// A field of the credential by name (for sidecar `env_map`: `key`, `token`, `access_token`).
    pub fn field(&self, name: &str) -> Option<&str> {
        match (self, name) {
            (Self::ApiKey { key }, "key") => Some(key.expose()),
            (Self::Oauth { access_token, .. }, "access_token" | "token" | "key") => {
                Some(access_token.expose())
            }
            (Self::OauthToken { token, .. } | Self::Pat { token, .. }, "token" | "key") => {
                Some(token.expose())
            }
            (Self::OauthToken { host, .. } | Self::Pat { host, .. }, "host") => host.as_deref(),
            (Self::Oauth { account_id, .. }, "account_id") => account_id.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets_and_json_keeps_the_python_shape() {
        let c = Credential::api_key("sk-ant-very-secret");
        assert!(!format!("{c:?}").contains("very-secret"));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"type": "api_key", "key": "sk-ant-very-secret"})
        );
        let parsed: Credential = serde_json::from_value(serde_json::json!({
            "type": "oauth", "access_token": "a", "refresh_token": "r", "expires_at": 1.0e9
        }))
        .unwrap();
        assert!(parsed.is_oauth());
        assert_eq!(parsed.upstream_value().expose(), "a");
    }
}
