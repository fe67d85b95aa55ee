//! routes.json (docs/compatibility.md#12.4): the vault's routing table, written by the executor
//! from the roster and read by the vault daemon. Keyed by provider; `route_prefix` is not emitted
//! but must be unique (the roster enforces that).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use terok_roster::Roster;
use terok_roster::model::AuthHeader;

/// How to reach one provider's upstream and present its credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Default upstream base URL.
    pub upstream: String,
    /// Header carrying the credential; `dynamic` = Bearer for OAuth, `x-api-key` for keys.
    pub auth_header: String,
    /// Text before the credential.
    pub auth_prefix: String,
    /// Upstreams for path prefixes (longest segment-boundary match wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub path_upstreams: BTreeMap<String, String>,
    /// Headers added to requests carrying an OAuth credential (comma-merged with the client's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub oauth_extra_headers: BTreeMap<String, String>,
    /// Headers set on requests carrying an OAuth credential from a field of that credential
    /// (`ChatGPT-Account-ID` ← `account_id`); the client's own value is dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub oauth_credential_headers: BTreeMap<String, String>,
    /// How the vault refreshes OAuth access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_refresh: Option<RefreshRoute>,
    /// `METHOD /path` patterns refused without forwarding (endpoints that mint, rotate or
    /// reveal credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Hosts besides the upstream's that a followed redirect may lead to (https only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_hosts: Vec<String>,
}

/// OAuth refresh endpoint of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRoute {
    /// Token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The whole table.
pub type RouteTable = BTreeMap<String, Route>;

/// Why routes.json could not be read or written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RoutesError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid route table.
    #[error("{} is not a valid route table: {detail}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Writing failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Write(#[from] terok_core::secure_fs::SecureFsError),
}

/// The route table of `roster`.
pub fn routes_from_roster(roster: &Roster) -> RouteTable {
    roster
        .providers()
        .map(|p| {
            let route = Route {
                upstream: p.upstream.clone(),
                auth_header: match &p.auth_header {
                    AuthHeader::Dynamic => "dynamic".to_owned(),
                    AuthHeader::Named(name) => name.clone(),
                },
                auth_prefix: p.auth_prefix.clone(),
                path_upstreams: p.path_upstreams.clone(),
                oauth_extra_headers: p.oauth_extra_headers.clone(),
                oauth_credential_headers: p.oauth_credential_headers.clone(),
                oauth_refresh: p.oauth_refresh.as_ref().map(|r| RefreshRoute {
                    token_url: r.token_url.clone(),
                    client_id: r.client_id.clone(),
                    scope: r.scope.clone(),
                }),
                deny: p.deny.clone(),
                redirect_hosts: p.redirect_hosts.clone(),
            };
            (p.name.clone(), route)
        })
        .collect()
}

/// routes.json text: keys sorted, indent 2, trailing newline.
pub fn routes_json(table: &RouteTable) -> String {
    let mut text = serde_json::to_string_pretty(table).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

/// The fingerprint of `table`: SHA-256 of its routes.json text. The daemon reports the
/// fingerprint of the table it serves, so a launch knows in one comparison whether the
/// roster's routes are the served ones.
pub fn routes_hash(table: &RouteTable) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(routes_json(table).as_bytes()))
}

/// How one provider's served route differs from the route the roster gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum RouteChange {
    /// The roster has a route the daemon does not serve.
    Added {
        /// The provider.
        provider: String,
    },
    /// The daemon serves a route the roster no longer has.
    Removed {
        /// The provider.
        provider: String,
    },
    /// Both have the route, with different fields.
    Changed {
        /// The provider.
        provider: String,
        /// The fields that differ (`upstream`, `auth_header`, …).
        fields: Vec<&'static str>,
    },
}

impl std::fmt::Display for RouteChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Added { provider } => write!(f, "{provider} (not served)"),
            Self::Removed { provider } => write!(f, "{provider} (no longer in the roster)"),
            Self::Changed { provider, fields } => write!(f, "{provider} ({})", fields.join(", ")),
        }
    }
}

/// What differs between the `served` table and the `wanted` one, by provider.
pub fn route_changes(served: &RouteTable, wanted: &RouteTable) -> Vec<RouteChange> {
    let mut out = Vec::new();
    for (provider, want) in wanted {
        match served.get(provider) {
            None => out.push(RouteChange::Added {
                provider: provider.clone(),
            }),
            Some(have) if have != want => out.push(RouteChange::Changed {
                provider: provider.clone(),
                fields: changed_fields(have, want),
            }),
            Some(_) => {}
        }
    }
    out.extend(
        served
            .keys()
            .filter(|p| !wanted.contains_key(*p))
            .map(|p| RouteChange::Removed {
                provider: p.clone(),
            }),
    );
    out
}

fn changed_fields(a: &Route, b: &Route) -> Vec<&'static str> {
    [
        ("upstream", a.upstream != b.upstream),
        ("auth_header", a.auth_header != b.auth_header),
        ("auth_prefix", a.auth_prefix != b.auth_prefix),
        ("path_upstreams", a.path_upstreams != b.path_upstreams),
        (
            "oauth_extra_headers",
            a.oauth_extra_headers != b.oauth_extra_headers,
        ),
        (
            "oauth_credential_headers",
            a.oauth_credential_headers != b.oauth_credential_headers,
        ),
        ("oauth_refresh", a.oauth_refresh != b.oauth_refresh),
        ("deny", a.deny != b.deny),
        ("redirect_hosts", a.redirect_hosts != b.redirect_hosts),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

/// Writes `table` atomically to `path` (0600: it names the providers you use).
pub fn write_routes(path: &Path, table: &RouteTable) -> Result<(), RoutesError> {
    terok_core::secure_fs::write_sensitive(path, routes_json(table).as_bytes())?;
    Ok(())
}

/// Reads and checks routes.json: upstreams are http(s) URLs, path prefixes start with `/`.
pub fn read_routes(path: &Path) -> Result<RouteTable, RoutesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RoutesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_routes(&text, path)
}

/// Checks routes.json `text` read from `path` (which names it in errors).
pub fn parse_routes(text: &str, path: &Path) -> Result<RouteTable, RoutesError> {
    let invalid = |detail: String| RoutesError::Invalid {
        path: path.to_path_buf(),
        detail,
    };
    let table: RouteTable = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    for (name, route) in &table {
        let urls = std::iter::once(&route.upstream).chain(route.path_upstreams.values());
        for url in urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(format!(
                    "{name}: upstream `{url}` is not an http(s) URL"
                )));
            }
        }
        if let Some(prefix) = route.path_upstreams.keys().find(|k| !k.starts_with('/')) {
            return Err(invalid(format!(
                "{name}: path prefix `{prefix}` must start with `/`"
            )));
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_roster_gives_upstreams_shape() {
        let roster = terok_roster::RosterLoader::bundled().load().unwrap();
        let table = routes_from_roster(&roster);
        let claude = &table["claude"];
        assert_eq!(claude.auth_header, "dynamic");
        assert_eq!(claude.auth_prefix, "");
        assert_eq!(
            claude.oauth_extra_headers["anthropic-beta"],
            "oauth-2025-04-20"
        );
        assert_eq!(
            table["codex"].path_upstreams["/backend-api/"],
            "https://chatgpt.com"
        );
        assert_eq!(table["glab"].auth_header, "PRIVATE-TOKEN");
        let text = routes_json(&table);
        assert!(text.ends_with("}\n"));
        assert!(!text.contains("route_prefix"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault/routes.json");
        write_routes(&path, &table).unwrap();
        assert_eq!(read_routes(&path).unwrap(), table);
    }

    #[test]
    fn changes_name_the_provider_and_the_fields() {
        let roster = terok_roster::RosterLoader::bundled().load().unwrap();
        let wanted = routes_from_roster(&roster);
        assert!(route_changes(&wanted, &wanted).is_empty());
        assert_eq!(routes_hash(&wanted), routes_hash(&wanted.clone()));
        let mut served = wanted.clone();
        served.get_mut("claude").unwrap().upstream = "http://127.0.0.1:9".into();
        served.remove("codex");
        served.insert("gone".into(), wanted["glab"].clone());
        assert_ne!(routes_hash(&served), routes_hash(&wanted));
        let changes: Vec<String> = route_changes(&served, &wanted)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "claude (upstream)",
                "codex (not served)",
                "gone (no longer in the roster)"
            ]
        );
    }

    #[test]
    fn malformed_tables_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.json");
        for bad in [
            r#"{"x": {"upstream": "ftp://a", "auth_header": "A", "auth_prefix": ""}}"#,
            r#"{"x": {"upstream": "https://a", "auth_header": "A", "auth_prefix": "", "path_upstreams": {"api": "https://b"}}}"#,
            r#"{"x": {"upstream": "https://a"}}"#,
            r#"[1, 2]"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(read_routes(&path).is_err(), "{bad}");
        }
    }
}
