//! Providers from both roster shapes: the `vault:` sections of roster v1 entries, roster v3
//! provider files (`providers/<name>.yaml`) and the `provider:` sections of the v3 agents using
//! them. Each piece is rewritten into the vocabulary of a `vault:` section, the pieces of one
//! provider are merged in layering order and resolved, and every agent is bound to its provider.
//!
//! A v3 name that is an alias of a v1 entry's route (`anthropic` for claude, see
//! `vault.aliases`) reaches that route, so the credential keeps its v1 name in the store and
//! every agent using the provider shares it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use terok_core::merge::deep_merge;
use terok_core::yaml::{YamlError, YamlIndex, parent_path};

use crate::layer::{Layer, locate, value_at};
use crate::model::{Agent, Provider};
use crate::resolve::{Issue, is_env_name, resolve_provider};
use crate::schema::VaultFile;

/// Keys of a provider file that describe the OpenCode-family agent of the same name, not the
/// route.
pub(crate) const AGENT_KEYS: [&str; 3] = ["opencode", "install", "help"];

/// Agent-side fields of a provider: a v3 agent sets them in its `provider:` section, and two
/// agents sharing a provider must agree on them.
const BINDING_FIELDS: [&str; 5] = [
    "base_url_env",
    "socket_env",
    "credential_file",
    "credential_type",
    "shared_config_patch",
];

/// How the fields of a piece's own file are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vocabulary {
    /// The `vault:` section of a v1 entry file.
    Vault,
    /// A v3 provider file.
    ProviderFile,
    /// The `provider:` section of a v3 agent file.
    Binding,
}

impl Vocabulary {
    /// Where the field at `path` (a `vault.…` path) is written in a file of this vocabulary.
    fn path_in_file(self, path: &str) -> Option<String> {
        let field = path
            .strip_prefix("vault.")
            .or((path == "vault").then_some(""))?;
        let key = field.split(['.', '[']).next().unwrap_or(field);
        let suffix = &field[key.len()..];
        let joined = |base: &str| format!("{base}{suffix}");
        match self {
            Self::Vault => Some(path.to_owned()),
            Self::ProviderFile => Some(match key {
                "auth_header" => joined("auth.api_key.header"),
                "auth_prefix" => joined("auth.api_key.prefix"),
                "oauth_extra_headers" => joined("auth.oauth.extra_headers"),
                "" => String::new(),
                _ => field.to_owned(),
            }),
            Self::Binding => match key {
                "phantom_env" | "oauth_phantom_env" => Some("provider.token_env".to_owned()),
                "" => Some("provider".to_owned()),
                k if BINDING_FIELDS.contains(&k) => Some(format!("provider.{field}")),
                _ => None,
            },
        }
    }
}

/// One file's contribution to a provider.
#[derive(Debug, Clone)]
struct Piece {
    /// The file, as written (for pointing at lines).
    layer: Layer,
    vocabulary: Vocabulary,
    /// Its contribution in the vocabulary of a `vault:` section.
    tree: Value,
}

/// What the assembly produced: the providers, the agents bound to them, and every problem.
pub(crate) struct Assembled {
    pub(crate) providers: BTreeMap<String, Provider>,
    pub(crate) problems: Vec<YamlError>,
}

/// Gathers, merges and resolves every provider and binds `agents` to theirs.
///
/// `agent_layers` are the entries' files (a v1 `vault:` section is a piece of the provider
/// named after the entry); `provider_layers` the v3 provider files by name.
pub(crate) fn assemble(
    agent_layers: &BTreeMap<String, Vec<Layer>>,
    provider_layers: &BTreeMap<String, Vec<Layer>>,
    agents: &mut BTreeMap<String, Agent>,
) -> Assembled {
    let mut problems = Vec::new();
    let mut pieces = v1_pieces(agent_layers);
    let aliases = alias_table(&pieces, &mut problems);
    entries_named_like_aliases(agent_layers, &aliases, &mut problems);
    add_provider_files(provider_layers, &aliases, &mut pieces, &mut problems);
    let routes: BTreeMap<String, Value> = pieces
        .iter()
        .map(|(name, p)| (name.clone(), merge_pieces(p)))
        .filter(|(_, merged)| merged.is_object())
        .collect();
    let bindings = bind_agents(agent_layers, agents, &aliases, &routes, &mut problems);
    check_bindings_agree(&bindings, &routes, agent_layers, &mut problems);
    add_binding_pieces(&bindings, &mut pieces);
    let mut providers = BTreeMap::new();
    for (name, provider_pieces) in &pieces {
        match resolve_pieces(name, provider_pieces) {
            Ok(Some(provider)) => {
                providers.insert(name.clone(), provider);
            }
            Ok(None) => {}
            Err(mut found) => problems.append(&mut found),
        }
    }
    for agent in agents.values_mut() {
        let bound = bindings.get(&agent.name);
        agent.provider = match bound {
            Some(Binding::V3 { provider, .. }) => Some(provider.clone()),
            Some(Binding::V1) => Some(agent.name.clone()),
            None => None,
        }
        .filter(|p| providers.contains_key(p));
    }
    base_url_paths(agent_layers, agents, &mut providers, &mut problems);
    duplicate_route_prefixes(&pieces, &providers, &mut problems);
    Assembled {
        providers,
        problems,
    }
}

/// An entry named like an alias would make that name mean two things (`auth anthropic`: the
/// entry, or Claude's route?).
fn entries_named_like_aliases(
    agent_layers: &BTreeMap<String, Vec<Layer>>,
    aliases: &BTreeMap<String, String>,
    problems: &mut Vec<YamlError>,
) {
    for (alias, route) in aliases {
        if let Some(layers) = agent_layers.get(alias) {
            problems.push(locate(
                layers,
                &Issue {
                    path: String::new(),
                    message: format!(
                        "`{alias}` is another name of `{route}`'s route (its `vault.aliases`); an \
                         entry cannot have it too"
                    ),
                    help: Some("name the file differently".to_owned()),
                },
            ));
        }
    }
}

/// The provider files as pieces of their provider (an alias reaches its route), in layering
/// order among the v1 pieces. One provider may be described under one name only.
fn add_provider_files(
    provider_layers: &BTreeMap<String, Vec<Layer>>,
    aliases: &BTreeMap<String, String>,
    pieces: &mut BTreeMap<String, Vec<Piece>>,
    problems: &mut Vec<YamlError>,
) {
    let mut named_as: BTreeMap<String, &str> = BTreeMap::new();
    for (name, layers) in provider_layers {
        let canonical = aliases.get(name).cloned().unwrap_or_else(|| name.clone());
        if let Some(other) = named_as.insert(canonical.clone(), name) {
            problems.push(locate(
                layers,
                &Issue {
                    path: String::new(),
                    message: format!(
                        "providers/{other}.yaml and providers/{name}.yaml both describe `{canonical}`'s route"
                    ),
                    help: Some("keep one of the two names".to_owned()),
                },
            ));
            continue;
        }
        let entry = pieces.entry(canonical).or_default();
        for layer in layers {
            entry.push(Piece {
                tree: provider_file_tree(&layer.value),
                vocabulary: Vocabulary::ProviderFile,
                layer: layer.clone(),
            });
        }
        // Stable: at one level, the agent file's `vault:` comes before the provider file.
        entry.sort_by_key(|p| p.layer.level);
    }
}

/// The `vault:` section of every v1 file, as a piece of the provider named after its entry.
fn v1_pieces(agent_layers: &BTreeMap<String, Vec<Layer>>) -> BTreeMap<String, Vec<Piece>> {
    let mut pieces: BTreeMap<String, Vec<Piece>> = BTreeMap::new();
    for (name, layers) in agent_layers {
        for layer in layers {
            if let Some(vault) = layer.value.get("vault") {
                pieces.entry(name.clone()).or_default().push(Piece {
                    layer: layer.clone(),
                    vocabulary: Vocabulary::Vault,
                    tree: vault.clone(),
                });
            }
        }
    }
    pieces
}

/// Alias → provider, from the merged `aliases` of every v1 route. An alias may not be another
/// provider's name or claimed twice.
fn alias_table(
    pieces: &BTreeMap<String, Vec<Piece>>,
    problems: &mut Vec<YamlError>,
) -> BTreeMap<String, String> {
    let mut table = BTreeMap::new();
    for (name, provider_pieces) in pieces {
        let merged = merge_pieces(provider_pieces);
        let Some(aliases) = merged.get("aliases").and_then(Value::as_array) else {
            continue;
        };
        for (i, alias) in aliases.iter().filter_map(Value::as_str).enumerate() {
            let clash = if pieces.contains_key(alias) && alias != name {
                Some(format!(
                    "alias `{alias}` is the name of another provider's route"
                ))
            } else {
                table
                    .insert(alias.to_owned(), name.clone())
                    .filter(|other| other != name)
                    .map(|other| format!("alias `{alias}` is already an alias of `{other}`"))
            };
            if let Some(message) = clash {
                problems.push(locate_pieces(
                    provider_pieces,
                    &Issue {
                        path: format!("vault.aliases[{i}]"),
                        message,
                        help: Some("every provider name must lead to one route".to_owned()),
                    },
                ));
            }
        }
    }
    table
}

/// A v3 provider file in the vocabulary of a `vault:` section (its agent keys left out).
fn provider_file_tree(value: &Value) -> Value {
    let mut out = Map::new();
    let Some(map) = value.as_object() else {
        return Value::Object(out);
    };
    for (key, value) in map {
        match key.as_str() {
            "roster_version" => {}
            k if AGENT_KEYS.contains(&k) => {}
            "auth" => auth_fields(value, &mut out),
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// `auth.api_key.{header,prefix}` → `auth_header`, `auth_prefix`; `auth.oauth.extra_headers` →
/// `oauth_extra_headers` (OAuth is always `Authorization: Bearer`, checked with the file).
/// `null` at any level deletes what it covers.
fn auth_fields(auth: &Value, out: &mut Map<String, Value>) {
    let section = |name: &str| match auth {
        Value::Null => Some(Value::Null),
        other => other.get(name).cloned(),
    };
    let field = |section: &Option<Value>, name: &str| match section {
        Some(Value::Null) => Some(Value::Null),
        Some(value) => value.get(name).cloned(),
        None => None,
    };
    let api_key = section("api_key");
    let oauth = section("oauth");
    for (target, value) in [
        ("auth_header", field(&api_key, "header")),
        ("auth_prefix", field(&api_key, "prefix")),
        ("oauth_extra_headers", field(&oauth, "extra_headers")),
    ] {
        if let Some(value) = value {
            out.insert(target.to_owned(), value);
        }
    }
}

/// How an entry reaches its provider.
#[derive(Debug, Clone)]
enum Binding {
    /// Its own `vault:` section (roster v1).
    V1,
    /// A `provider:` section naming `provider` (canonical name); `tree` is the section in the
    /// vocabulary of a `vault:` section, `layer` the file that last set it.
    V3 {
        provider: String,
        tree: Value,
        layer: Box<Layer>,
    },
}

/// Which provider each entry uses: the last of its files that says `vault:` or `provider:`
/// decides the shape; a v3 `provider.default` must name a provider (or an alias of one).
fn bind_agents(
    agent_layers: &BTreeMap<String, Vec<Layer>>,
    agents: &BTreeMap<String, Agent>,
    aliases: &BTreeMap<String, String>,
    routes: &BTreeMap<String, Value>,
    problems: &mut Vec<YamlError>,
) -> BTreeMap<String, Binding> {
    let mut bindings = BTreeMap::new();
    for (name, layers) in agent_layers {
        if !agents.contains_key(name) {
            continue;
        }
        let deciding = layers.iter().rev().find(|l| {
            ["vault", "provider"]
                .iter()
                .any(|k| l.value.get(k).is_some_and(|v| !v.is_null()))
        });
        let Some(deciding) = deciding else { continue };
        if deciding.value.get("provider").is_none_or(Value::is_null) {
            bindings.insert(name.clone(), Binding::V1);
            continue;
        }
        let merged = crate::layer::merge_layers(layers);
        let section = merged.get("provider").cloned().unwrap_or(Value::Null);
        let Some(default) = section.get("default").and_then(Value::as_str) else {
            problems.push(locate(
                layers,
                &Issue {
                    path: "provider".to_owned(),
                    message: "missing required field `default` in `provider`".to_owned(),
                    help: Some("name the provider, e.g. `default: anthropic`".to_owned()),
                },
            ));
            continue;
        };
        let provider = aliases
            .get(default)
            .cloned()
            .unwrap_or_else(|| default.to_owned());
        if !routes.contains_key(&provider) {
            let mut known: BTreeSet<String> = routes.keys().cloned().collect();
            known.extend(aliases.keys().cloned());
            problems.push(locate(
                layers,
                &Issue {
                    path: "provider.default".to_owned(),
                    message: format!(
                        "no provider `{default}` (known: {})",
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                    help: Some(format!(
                        "write it as providers/{default}.yaml beside the agents directory, or name a known one"
                    )),
                },
            ));
            continue;
        }
        match binding_tree(&section) {
            Ok(tree) => {
                bindings.insert(
                    name.clone(),
                    Binding::V3 {
                        provider,
                        tree,
                        layer: Box::new(deciding.clone()),
                    },
                );
            }
            Err(issue) => problems.push(locate(layers, &issue)),
        }
    }
    bindings
}

/// A v3 agent's `provider:` section in the vocabulary of a `vault:` section: `token_env`
/// becomes the phantom variables (OAuth's apart).
fn binding_tree(section: &Value) -> Result<Value, Issue> {
    let mut out = Map::new();
    for field in BINDING_FIELDS {
        if let Some(value) = section.get(field) {
            out.insert(field.to_owned(), value.clone());
        }
    }
    if let Some(token_env) = section.get("token_env").and_then(Value::as_object) {
        let (mut keys, mut oauth) = (Map::new(), Map::new());
        for (kind, var) in token_env {
            let Some(var) = var.as_str() else { continue };
            if !is_env_name(var) {
                return Err(Issue {
                    path: format!("provider.token_env.{kind}"),
                    message: format!("`{var}` is not a valid environment variable name"),
                    help: None,
                });
            }
            match kind.as_str() {
                "oauth" => oauth.insert(var.to_owned(), Value::Bool(true)),
                "api_key" | "oauth_token" | "pat" | "_default" => {
                    keys.insert(var.to_owned(), Value::Bool(true))
                }
                other => {
                    return Err(Issue {
                        path: format!("provider.token_env.{other}"),
                        message: format!(
                            "`{other}` is not a credential type (oauth, api_key, oauth_token, pat, _default)"
                        ),
                        help: None,
                    });
                }
            };
        }
        out.insert("phantom_env".to_owned(), Value::Object(keys));
        out.insert("oauth_phantom_env".to_owned(), Value::Object(oauth));
    }
    Ok(Value::Object(out))
}

/// Agents sharing a provider must give it the same agent-side settings: the container of any
/// of them gets the provider's one set. A v1 route's own settings count as its entry's (which
/// may change them by binding to its own route in a v3 file).
fn check_bindings_agree(
    bindings: &BTreeMap<String, Binding>,
    routes: &BTreeMap<String, Value>,
    agent_layers: &BTreeMap<String, Vec<Layer>>,
    problems: &mut Vec<YamlError>,
) {
    let mut first: BTreeMap<(String, &str), (String, Value)> = BTreeMap::new();
    let v3 = || {
        bindings.iter().filter_map(|(agent, b)| match b {
            Binding::V3 { provider, tree, .. } => Some((agent, provider, tree)),
            Binding::V1 => None,
        })
    };
    // The route's owner rebinding its own route sets the baseline, else the route itself.
    for (agent, provider, tree) in v3().filter(|(a, p, _)| a == p) {
        for field in BINDING_FIELDS {
            if let Some(value) = tree.get(field) {
                first.insert((provider.clone(), field), (agent.clone(), value.clone()));
            }
        }
    }
    for (name, route) in routes {
        for field in BINDING_FIELDS {
            if let Some(value) = route.get(field) {
                first
                    .entry((name.clone(), field))
                    .or_insert_with(|| (name.clone(), value.clone()));
            }
        }
    }
    for (agent, provider, tree) in v3().filter(|(a, p, _)| a != p) {
        for field in BINDING_FIELDS {
            let Some(value) = tree.get(field) else {
                continue;
            };
            match first.get(&(provider.clone(), field)) {
                Some((other, seen)) if seen != value => {
                    if let Some(layers) = agent_layers.get(agent) {
                        problems.push(locate(
                            layers,
                            &Issue {
                                path: format!("provider.{field}"),
                                message: format!(
                                    "`{agent}` and `{other}` both use provider `{provider}` but set \
                                     `{field}` differently"
                                ),
                                help: Some(
                                    "agents sharing a provider share its settings: make them agree, \
                                     or leave the field to one of them"
                                        .to_owned(),
                                ),
                            },
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    first.insert((provider.clone(), field), (agent.clone(), value.clone()));
                }
            }
        }
    }
}

/// Adds each v3 binding to its provider's pieces, after every file: the token variables of all
/// the agents using the provider add up (with the ones its v1 route names).
fn add_binding_pieces(
    bindings: &BTreeMap<String, Binding>,
    pieces: &mut BTreeMap<String, Vec<Piece>>,
) {
    for binding in bindings.values() {
        let Binding::V3 {
            provider,
            tree,
            layer,
        } = binding
        else {
            continue;
        };
        if let Some(entry) = pieces.get_mut(provider) {
            entry.push(Piece {
                layer: (**layer).clone(),
                vocabulary: Vocabulary::Binding,
                tree: tree.clone(),
            });
        }
    }
}

/// The pieces merged in order; a `null` piece (`vault: null`) removes the route below it.
fn merge_pieces(pieces: &[Piece]) -> Value {
    pieces.iter().fold(Value::Object(Map::new()), |acc, piece| {
        deep_merge(acc, piece.tree.clone())
    })
}

/// One provider from its pieces: `None` when they remove it.
fn resolve_pieces(name: &str, pieces: &[Piece]) -> Result<Option<Provider>, Vec<YamlError>> {
    let mut merged = merge_pieces(pieces);
    if merged.is_null() {
        return Ok(None);
    }
    // A provider file's route is named after the provider unless it says otherwise.
    if let Value::Object(map) = &mut merged
        && !map.contains_key("route_prefix")
        && pieces
            .iter()
            .any(|p| p.vocabulary == Vocabulary::ProviderFile)
    {
        map.insert("route_prefix".to_owned(), Value::String(name.to_owned()));
    }
    let file = match serde_path_to_error::deserialize::<_, VaultFile>(&merged) {
        Ok(file) => file,
        Err(err) => {
            let path = err.path().to_string();
            let issue = Issue {
                path: if path == "." {
                    "vault".to_owned()
                } else {
                    format!("vault.{path}")
                },
                message: format!("the merged provider `{name}` is invalid: {}", err.inner()),
                help: None,
            };
            return Err(vec![locate_pieces(pieces, &issue)]);
        }
    };
    resolve_provider(name, &file)
        .map(Some)
        .map_err(|issues| issues.iter().map(|i| locate_pieces(pieces, i)).collect())
}

/// The path each agent's base-URL variable gets after the vault URL: what its provider
/// `serves` for the agent's `protocol`.
fn base_url_paths(
    agent_layers: &BTreeMap<String, Vec<Layer>>,
    agents: &BTreeMap<String, Agent>,
    providers: &mut BTreeMap<String, Provider>,
    problems: &mut Vec<YamlError>,
) {
    let mut chosen: BTreeMap<String, (String, String)> = BTreeMap::new();
    for agent in agents.values() {
        let (Some(protocol), Some(provider)) = (
            &agent.protocol,
            agent.provider.as_ref().and_then(|p| providers.get(p)),
        ) else {
            continue;
        };
        if provider.serves.is_empty() {
            continue;
        }
        let issue = match provider.serves.get(protocol) {
            None => Some(format!(
                "provider `{}` serves {}, not `{protocol}`",
                provider.name,
                provider
                    .serves
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(path) => match chosen.get(&provider.name) {
                Some((other, other_path)) if other_path != path => Some(format!(
                    "`{}` speaks another protocol to provider `{}` than `{other}`; the provider's \
                     one base URL cannot serve both",
                    agent.name, provider.name
                )),
                _ => {
                    chosen.insert(provider.name.clone(), (agent.name.clone(), path.clone()));
                    None
                }
            },
        };
        if let (Some(message), Some(layers)) = (issue, agent_layers.get(&agent.name)) {
            problems.push(locate(
                layers,
                &Issue {
                    path: "protocol".to_owned(),
                    message,
                    help: None,
                },
            ));
        }
    }
    for (name, (_, path)) in chosen {
        if let Some(provider) = providers.get_mut(&name) {
            provider.base_url_path = path.trim_end_matches('/').to_owned();
        }
    }
}

/// Every route needs its own `route_prefix`.
fn duplicate_route_prefixes(
    pieces: &BTreeMap<String, Vec<Piece>>,
    providers: &BTreeMap<String, Provider>,
    problems: &mut Vec<YamlError>,
) {
    let mut prefixes: BTreeMap<&str, &str> = BTreeMap::new();
    for provider in providers.values() {
        let Some(first) = prefixes.insert(&provider.route_prefix, &provider.name) else {
            continue;
        };
        prefixes.insert(&provider.route_prefix, first);
        if let Some(provider_pieces) = pieces.get(&provider.name) {
            problems.push(locate_pieces(
                provider_pieces,
                &Issue {
                    path: "vault.route_prefix".to_owned(),
                    message: format!(
                        "duplicate route prefix `{}`: `{first}` already uses it",
                        provider.route_prefix
                    ),
                    help: Some("every vault route needs its own route_prefix".to_owned()),
                },
            ));
        }
    }
}

/// Points a provider issue (at a `vault.…` path) at the last file that sets the field, in that
/// file's own words (`auth.api_key.header` in a provider file for `vault.auth_header`).
fn locate_pieces(pieces: &[Piece], issue: &Issue) -> YamlError {
    let mut candidate = Some(issue.path.clone());
    while let Some(path) = candidate {
        for piece in pieces.iter().rev() {
            let Some(in_file) = piece.vocabulary.path_in_file(&path) else {
                continue;
            };
            if value_at(&piece.layer.value, &in_file).is_none() {
                continue;
            }
            let index = YamlIndex::build(&piece.layer.text);
            let offset = if path == issue.path {
                index.value_offset(&in_file)
            } else {
                index.nearest_offset(&in_file)
            };
            let field = piece
                .vocabulary
                .path_in_file(&issue.path)
                .unwrap_or_else(|| issue.path.clone());
            let message = match piece.vocabulary {
                // A provider file has no `vault:` section to speak of.
                Vocabulary::ProviderFile => issue.message.replace(" in `vault`", ""),
                _ => issue.message.clone(),
            };
            return YamlError::at_offset(
                &piece.layer.source.display_path(),
                &piece.layer.text,
                offset,
                Some(field).filter(|p| !p.is_empty()),
                message,
                issue.help.clone(),
            );
        }
        candidate = parent_path(&path);
    }
    let layers: Vec<Layer> = pieces.iter().map(|p| p.layer.clone()).collect();
    locate(&layers, issue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_provider_files_auth_is_rewritten_in_vault_words() {
        let tree = provider_file_tree(&json!({
            "roster_version": 3,
            "upstream": "https://api.example.com",
            "auth": {
                "oauth": {"header": "Authorization", "prefix": "Bearer ", "extra_headers": {"x-beta": "1"}},
                "api_key": {"header": "x-api-key", "prefix": ""}
            },
            "opencode": {"display_name": "X"},
            "serves": {"openai-responses": "/v1"}
        }));
        assert_eq!(
            tree,
            json!({
                "upstream": "https://api.example.com",
                "auth_header": "x-api-key",
                "auth_prefix": "",
                "oauth_extra_headers": {"x-beta": "1"},
                "serves": {"openai-responses": "/v1"}
            })
        );
        assert_eq!(
            provider_file_tree(&json!({"auth": null})),
            json!({"auth_header": null, "auth_prefix": null, "oauth_extra_headers": null})
        );
    }

    #[test]
    fn field_paths_are_translated_back_into_each_files_words() {
        use Vocabulary::*;
        assert_eq!(
            ProviderFile.path_in_file("vault.auth_header").as_deref(),
            Some("auth.api_key.header")
        );
        assert_eq!(
            ProviderFile
                .path_in_file("vault.path_upstreams./x")
                .as_deref(),
            Some("path_upstreams./x")
        );
        assert_eq!(
            ProviderFile.path_in_file("vault.deny[2]").as_deref(),
            Some("deny[2]")
        );
        assert_eq!(
            Binding.path_in_file("vault.phantom_env.X").as_deref(),
            Some("provider.token_env")
        );
        assert_eq!(
            Binding.path_in_file("vault.base_url_env").as_deref(),
            Some("provider.base_url_env")
        );
        assert_eq!(Binding.path_in_file("vault.upstream"), None);
        assert_eq!(
            Vault.path_in_file("vault.upstream").as_deref(),
            Some("vault.upstream")
        );
    }

    #[test]
    fn token_env_splits_oauth_from_every_other_type() {
        let tree = binding_tree(&json!({
            "default": "anthropic",
            "token_env": {"oauth": "CLAUDE_CODE_OAUTH_TOKEN", "_default": "ANTHROPIC_API_KEY"},
            "base_url_env": "ANTHROPIC_BASE_URL"
        }))
        .unwrap();
        assert_eq!(
            tree,
            json!({
                "base_url_env": "ANTHROPIC_BASE_URL",
                "phantom_env": {"ANTHROPIC_API_KEY": true},
                "oauth_phantom_env": {"CLAUDE_CODE_OAUTH_TOKEN": true}
            })
        );
        let err = binding_tree(&json!({"token_env": {"cookie": "X"}})).unwrap_err();
        assert_eq!(err.path, "provider.token_env.cookie");
    }
}
