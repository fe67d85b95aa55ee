//! The vendors' own credential files (docs/compatibility.md#12.3): reading what a login left
//! behind (extractors), and writing the phantom versions that containers see.
//!
//! Readers are lax about keys they do not use, and loud when a field they depend on has changed
//! type — naming the field, never printing its value.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::credential::{Credential, Secret};

/// Why a login's credentials could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum VendorError {
    /// None of the files the provider writes was found.
    #[error("no credentials found for {provider} in {} (looked for {expected})", dir.display())]
    NotFound {
        /// Provider.
        provider: String,
        /// Directory searched.
        dir: PathBuf,
        /// Files looked for.
        expected: String,
    },
    /// A field we depend on has an unexpected type: the vendor format may have changed.
    #[error("{}: field `{field}` should be {expected}; the vendor's file format may have changed", file.display())]
    FieldType {
        /// The file.
        file: PathBuf,
        /// Dotted field path.
        field: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The file is not valid JSON/YAML.
    #[error("{}: {detail}", file.display())]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// What the parser said (no content).
        detail: String,
    },
}

fn read_json(file: &Path) -> Result<Option<Value>, VendorError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) if text.trim().is_empty() => return Ok(None),
        Ok(text) => text,
        Err(_) => return Ok(None),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| VendorError::Unreadable {
            file: file.to_path_buf(),
            detail: format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        })
}

fn read_yaml(file: &Path) -> Result<Option<Value>, VendorError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) if text.trim().is_empty() => return Ok(None),
        Ok(text) => text,
        Err(_) => return Ok(None),
    };
    terok_core::yaml::parse_value(&text, file)
        .map(Some)
        .map_err(|e| VendorError::Unreadable {
            file: file.to_path_buf(),
            detail: format!("not valid YAML ({})", e.message),
        })
}

/// A string field at `path` in `value`: `Ok(None)` when absent or null, an error when present
/// with another type.
fn string_at(file: &Path, value: &Value, path: &str) -> Result<Option<String>, VendorError> {
    let mut current = value;
    for part in path.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    match current {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(VendorError::FieldType {
            file: file.to_path_buf(),
            field: path.to_owned(),
            expected: "a string",
        }),
    }
}

fn object_at<'v>(
    file: &Path,
    value: &'v Value,
    path: &str,
) -> Result<Option<&'v Map<String, Value>>, VendorError> {
    match value.get(path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(VendorError::FieldType {
            file: file.to_path_buf(),
            field: path.to_owned(),
            expected: "a mapping",
        }),
    }
}

/// Reads the credential a login left in `dir` for `provider`.
pub fn extract(provider: &str, dir: &Path) -> Result<Credential, VendorError> {
    let not_found = |expected: &str| VendorError::NotFound {
        provider: provider.to_owned(),
        dir: dir.to_path_buf(),
        expected: expected.to_owned(),
    };
    match provider {
        "claude" => {
            let file = dir.join(".credentials.json");
            if let Some(doc) = read_json(&file)?
                && let Some(access) = string_at(&file, &doc, "claudeAiOauth.accessToken")?
            {
                let oauth = &doc["claudeAiOauth"];
                let expires_at = match oauth.get("expiresAt") {
                    Some(Value::Number(n)) => {
                        n.as_f64().map(|v| if v > 1e12 { v / 1000.0 } else { v })
                    }
                    _ => None,
                };
                return Ok(Credential::Oauth {
                    access_token: Secret::new(access),
                    refresh_token: string_at(&file, &doc, "claudeAiOauth.refreshToken")?
                        .filter(|s| !s.is_empty())
                        .map(Secret::new),
                    expires_at,
                    scopes: oauth.get("scopes").cloned().filter(|v| !v.is_null()),
                    subscription_type: string_at(&file, &doc, "claudeAiOauth.subscriptionType")?,
                    rate_limit_tier: string_at(&file, &doc, "claudeAiOauth.rateLimitTier")?,
                    id_token: None,
                    account_id: None,
                });
            }
            let config = dir.join("config.json");
            if let Some(doc) = read_json(&config)?
                && let Some(key) = string_at(&config, &doc, "api_key")?
            {
                return Ok(Credential::api_key(key));
            }
            Err(not_found(".credentials.json or config.json"))
        }
        "codex" => {
            let file = dir.join("auth.json");
            let doc = read_json(&file)?.ok_or_else(|| not_found("auth.json"))?;
            if let Some(tokens) = object_at(&file, &doc, "tokens")? {
                let tokens = Value::Object(tokens.clone());
                let field = |name: &str| {
                    string_at(&file, &tokens, name).map_err(|e| prefix_field(e, "tokens"))
                };
                let access = field("access_token")?.ok_or_else(|| VendorError::FieldType {
                    file: file.clone(),
                    field: "tokens.access_token".to_owned(),
                    expected: "a string",
                })?;
                return Ok(Credential::Oauth {
                    access_token: Secret::new(access),
                    refresh_token: field("refresh_token")?.map(Secret::new),
                    expires_at: None,
                    scopes: None,
                    subscription_type: None,
                    rate_limit_tier: None,
                    id_token: field("id_token")?.map(Secret::new),
                    account_id: field("account_id")?,
                });
            }
            match string_at(&file, &doc, "OPENAI_API_KEY")? {
                Some(key) => Ok(Credential::api_key(key)),
                None => Err(not_found("auth.json with tokens or OPENAI_API_KEY")),
            }
        }
        "vibe" => {
            let file = dir.join(".env");
            let text = std::fs::read_to_string(&file).map_err(|_| not_found(".env"))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                if let Some(value) = line.strip_prefix("MISTRAL_API_KEY=") {
                    let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                    if !value.is_empty() {
                        return Ok(Credential::api_key(value));
                    }
                }
            }
            Err(not_found(".env with MISTRAL_API_KEY"))
        }
        "gh" => {
            let file = dir.join("hosts.yml");
            let doc = read_yaml(&file)?.ok_or_else(|| not_found("hosts.yml"))?;
            let hosts = doc.as_object().ok_or_else(|| VendorError::FieldType {
                file: file.clone(),
                field: "(top level)".to_owned(),
                expected: "a mapping of hosts",
            })?;
            let mut names: Vec<&String> = hosts.keys().collect();
            names.sort_by_key(|h| (h.as_str() != "github.com", h.to_string()));
            for host in names {
                if let Some(token) = string_at(&file, &hosts[host.as_str()], "oauth_token")
                    .map_err(|e| prefix_field(e, host))?
                {
                    return Ok(Credential::OauthToken {
                        token: Secret::new(token),
                        host: Some(host.clone()),
                    });
                }
            }
            Err(not_found("hosts.yml with an oauth_token"))
        }
        "glab" => {
            let file = dir.join("config.yml");
            let doc = read_yaml(&file)?.ok_or_else(|| not_found("config.yml"))?;
            let hosts = object_at(&file, &doc, "hosts")?
                .ok_or_else(|| not_found("config.yml with hosts"))?;
            for (host, entry) in hosts {
                if let Some(token) = string_at(&file, entry, "token")
                    .map_err(|e| prefix_field(e, &format!("hosts.{host}")))?
                {
                    return Ok(Credential::Pat {
                        token: Secret::new(token),
                        host: Some(host.clone()),
                    });
                }
            }
            Err(not_found("config.yml with hosts.<host>.token"))
        }
        _ => {
            // blablador, kisski, openrouter and other OpenCode providers: config.json api_key.
            let file = dir.join("config.json");
            let doc = read_json(&file)?.ok_or_else(|| not_found("config.json"))?;
            match string_at(&file, &doc, "api_key")? {
                Some(key) => Ok(Credential::api_key(key)),
                None => Err(not_found("config.json with api_key")),
            }
        }
    }
}

fn prefix_field(err: VendorError, prefix: &str) -> VendorError {
    match err {
        VendorError::FieldType {
            file,
            field,
            expected,
        } => VendorError::FieldType {
            file,
            field: format!("{prefix}.{field}"),
            expected,
        },
        other => other,
    }
}

/// The content of `provider`'s credential file (`file_name`) as a container sees it: the
/// vendor's format, carrying `token` (this task's phantom) where the secret would be. `None`
/// when terok has no phantom format for that file.
pub fn phantom_file(
    provider: &str,
    file_name: &str,
    credential: Option<&Credential>,
    token: &str,
) -> Option<Vec<u8>> {
    let pretty = |v: Value| {
        let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
        text.push('\n');
        text.into_bytes()
    };
    match (provider, file_name) {
        ("claude", ".credentials.json") => {
            let (scopes, subscription, tier) = match credential {
                Some(Credential::Oauth {
                    scopes,
                    subscription_type,
                    rate_limit_tier,
                    ..
                }) => (
                    scopes.clone().unwrap_or(Value::Array(Vec::new())),
                    subscription_type.clone(),
                    rate_limit_tier.clone(),
                ),
                _ => (Value::Array(Vec::new()), None, None),
            };
            Some(pretty(json!({
                "claudeAiOauth": {
                    "accessToken": token,
                    "refreshToken": "",
                    "expiresAt": null,
                    "scopes": scopes,
                    "subscriptionType": subscription,
                    "rateLimitTier": tier,
                }
            })))
        }
        ("codex", "auth.json") => {
            let account_id = match credential {
                Some(Credential::Oauth { account_id, .. }) => account_id.clone(),
                _ => None,
            };
            let mut tokens = json!({
                "id_token": synthetic_jwt(account_id.as_deref()),
                "access_token": token,
                "refresh_token": token,
            });
            if let Some(id) = account_id {
                tokens["account_id"] = Value::String(id);
            }
            Some(pretty(json!({
                "OPENAI_API_KEY": null,
                "tokens": tokens,
                "last_refresh": "9999-01-01T00:00:00Z",
            })))
        }
        ("vibe", ".env") => Some(format!("MISTRAL_API_KEY={token}\n").into_bytes()),
        ("gh", "hosts.yml") => Some(
            format!("github.com:\n    oauth_token: {token}\n    git_protocol: https\n")
                .into_bytes(),
        ),
        ("glab", "config.yml") => Some(
            format!(
                "hosts:\n    gitlab.com:\n        token: {token}\n        api_protocol: https\n"
            )
            .into_bytes(),
        ),
        (_, "config.json") => Some(pretty(json!({ "api_key": token }))),
        _ => None,
    }
}

/// The phantom credential file a task gets when only the kind of the stored credential is known
/// (the vault holds the credential itself): the vendor's OAuth format for OAuth credentials; for
/// an API key, Claude's file stays empty (the key travels as `ANTHROPIC_API_KEY`) and Codex gets
/// its API-key login format. `None` when terok has no phantom format for that file.
pub fn phantom_file_for_kind(
    provider: &str,
    file_name: &str,
    kind: &str,
    token: &str,
) -> Option<Vec<u8>> {
    match (provider, file_name, kind) {
        ("claude", ".credentials.json", k) if k != "oauth" => Some(Vec::new()),
        ("codex", "auth.json", k) if k != "oauth" => {
            let mut text = serde_json::to_string_pretty(&json!({ "OPENAI_API_KEY": token }))
                .unwrap_or_default();
            text.push('\n');
            Some(text.into_bytes())
        }
        _ => phantom_file(provider, file_name, None, token),
    }
}

/// A JWT Codex accepts as its id token: `alg: none`, far-future expiry, only the account
/// claims it reads. Signed by nobody; it carries no secret.
pub fn synthetic_jwt(account_id: Option<&str>) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let mut auth = Map::new();
    if let Some(id) = account_id {
        auth.insert(
            "chatgpt_account_id".to_owned(),
            Value::String(id.to_owned()),
        );
    }
    let header = json!({"alg": "none", "typ": "JWT"});
    let payload =
        json!({"exp": 253402300799_i64, "https://api.openai.com/auth": Value::Object(auth)});
    format!("{}.{}.terok", b64(&header), b64(&payload))
}

/// Whether a credential file's bytes are a terok phantom (or empty) rather than a real secret.
pub fn is_phantom_content(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        return true;
    }
    // A phantom file carries phantom tokens (or the Python terok-executor's static markers) and
    // nothing secret-looking.
    let has_phantom = text.contains(crate::token::TOKEN_PREFIX)
        || text.contains("terok-proxy-phantom-token:vault-handles-real-auth")
        || text.contains("terok-proxy-codex-oauth-marker:vault-handles-real-auth");
    has_phantom && !looks_like_real_secret(&text)
}

/// Prefixes of real credentials (Anthropic, OpenAI, GitHub, GitLab).
pub const REAL_SECRET_PREFIXES: &[&str] = &["sk-ant-", "sk-", "gho_", "ghp_", "ghs_", "glpat-"];

fn looks_like_real_secret(text: &str) -> bool {
    real_secret_kind(text).is_some()
}

/// The prefix of the first real-looking credential in `text` (`sk-ant-`, `ghp_` …), `None`
/// when there is none: enough to say what was found without showing it.
pub fn real_secret_kind(text: &str) -> Option<&'static str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '=' | ':' | ','))
        .filter(|word| !word.starts_with(crate::token::TOKEN_PREFIX))
        .find_map(|word| {
            // The longest prefix that matches (`sk-ant-` rather than `sk-`).
            REAL_SECRET_PREFIXES
                .iter()
                .filter(|p| word.starts_with(**p))
                .max_by_key(|p| p.len())
                .copied()
        })
}
