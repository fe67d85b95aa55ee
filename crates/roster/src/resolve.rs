//! Turns a merged [`AgentFile`] into the resolved [`Agent`], and a merged provider (a `vault:`
//! section, or the same fields gathered from roster v3 files) into its [`Provider`], applying
//! defaults and checking what the schema alone cannot: required fields of present sections,
//! single-segment host directories, absolute container paths, upstream URLs.

use std::collections::BTreeMap;

use crate::model::*;
use crate::schema::{AcpFile, AgentFile, AuthFile, ListItem, VaultFile};

/// One problem with a merged entry, at a field path such as `vault.upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted field path within the entry.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// A hint, when there is a useful one.
    pub help: Option<String>,
}

impl Issue {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            help: None,
        }
    }

    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    fn missing(section: &str, field: &str) -> Self {
        Self::new(
            format!("{section}.{field}"),
            format!("missing required field `{field}` in `{section}`"),
        )
    }
}

/// Whether `name` is usable as an entry name (it ends up in image tags, paths and env names).
pub fn valid_entry_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Resolves one merged entry, or returns every issue. Which provider it uses is decided with
/// the providers ([`crate::providers`]); it is `None` here.
pub fn resolve_agent(name: &str, file: &AgentFile) -> Result<Agent, Vec<Issue>> {
    let mut issues = Vec::new();
    let session = resolve_session(file, &mut issues);
    let opencode = resolve_opencode(file, &mut issues);
    let auth = file.auth.as_ref().map(|a| resolve_auth(a, &mut issues));
    if let Some(protocol) = &file.protocol
        && !valid_entry_name(protocol)
    {
        issues.push(Issue::new(
            "protocol",
            format!("`{protocol}` is not a protocol name (lowercase letters, digits, `-`, `_`)"),
        ));
    }
    let help = resolve_help(file, &mut issues);
    let mounts = resolve_mounts(file, &mut issues);
    let install = resolve_install(file, &mut issues);
    let acp = file.acp.as_ref().map(|a| resolve_acp(a, &mut issues));
    let wrapper = file.wrapper.clone().unwrap_or_default();
    let wrapper_env = wrapper.env.unwrap_or_default();
    for var in wrapper_env.keys().filter(|v| !is_env_name(v)) {
        issues.push(Issue::new(
            format!("wrapper.env.{var}"),
            format!("`{var}` is not a variable name (capital letters, digits and `_`, not starting with a digit)"),
        ));
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    let agent = Agent {
        name: name.to_owned(),
        kind: file.kind.unwrap_or_default(),
        label: file.label.clone().unwrap_or_else(|| name.to_owned()),
        binary: file.binary.clone().unwrap_or_else(|| name.to_owned()),
        git_identity: resolve_git_identity(name, file),
        headless: resolve_headless(file),
        auto_approve: resolve_auto_approve(file),
        session,
        capabilities: resolve_capabilities(file),
        refuse_subcommands: wrapper.refuse_subcommands.unwrap_or_default(),
        wrapper_env,
        wrapper_flags: wrapper.flags.unwrap_or_default(),
        wrapper_prepare: wrapper.prepare.filter(|p| !p.trim().is_empty()),
        acp,
        opencode,
        auth,
        provider: None,
        protocol: file.protocol.clone(),
        sidecar: file.sidecar.as_ref().map(|s| SidecarSpec {
            tool_name: s.tool_name.clone().unwrap_or_else(|| name.to_owned()),
            env_map: s.env_map.clone().unwrap_or_default(),
            install: s.install.clone().filter(|i| !i.trim().is_empty()),
        }),
        install,
        help,
        mounts,
        web_ingress: file.web_ingress.unwrap_or(false),
    };
    Ok(agent)
}

/// The ACP server: a command is required, env names must be variable names.
fn resolve_acp(file: &AcpFile, issues: &mut Vec<Issue>) -> AcpSpec {
    let command = file.command.clone().unwrap_or_default();
    if command.first().is_none_or(|word| word.trim().is_empty()) {
        issues.push(Issue::missing("acp", "command").with_help(
            "the ACP server's command line inside the container, e.g. `command: [opencode, acp]`",
        ));
    }
    let env = file.env.clone().unwrap_or_default();
    for var in env.keys().filter(|v| !is_env_name(v)) {
        issues.push(Issue::new(
            format!("acp.env.{var}"),
            format!("`{var}` is not a variable name (capital letters, digits and `_`, not starting with a digit)"),
        ));
    }
    AcpSpec {
        command,
        env,
        prepare: file.prepare.clone().filter(|p| !p.trim().is_empty()),
        auth_method: file.auth_method.clone().filter(|m| !m.trim().is_empty()),
    }
}

/// The identity the agent commits with: `Name <noreply@name.ai>` unless the file says.
fn resolve_git_identity(name: &str, file: &AgentFile) -> GitIdentity {
    let git = file.git_identity.clone().unwrap_or_default();
    GitIdentity {
        name: git.name.unwrap_or_else(|| capitalize(name)),
        email: git.email.unwrap_or_else(|| format!("noreply@{name}.ai")),
    }
}

/// The headless command line's flags; an empty flag means "none" (`-p` is the default
/// prompt flag).
fn resolve_headless(file: &AgentFile) -> HeadlessSpec {
    let h = file.headless.clone().unwrap_or_default();
    HeadlessSpec {
        subcommand: h.subcommand.filter(|s| !s.is_empty()),
        prompt_flag: match h.prompt_flag {
            None => Some("-p".to_owned()),
            Some(flag) if flag.is_empty() => None,
            Some(flag) => Some(flag),
        },
        model_flag: h.model_flag.filter(|s| !s.is_empty()),
        max_turns_flag: h.max_turns_flag.filter(|s| !s.is_empty()),
        verbose_flag: h.verbose_flag.filter(|s| !s.is_empty()),
        output_format_flags: h.output_format_flags.unwrap_or_default(),
    }
}

fn resolve_auto_approve(file: &AgentFile) -> AutoApprove {
    let a = file.auto_approve.clone().unwrap_or_default();
    AutoApprove {
        env: a.env.unwrap_or_default(),
        flags: a.flags.unwrap_or_default(),
    }
}

/// Session resume support; the session file must be a plain name in `/home/dev/.terok/`.
fn resolve_session(file: &AgentFile, issues: &mut Vec<Issue>) -> SessionSpec {
    let s = file.session.clone().unwrap_or_default();
    if let Some(file_name) = &s.session_file
        && !is_single_segment(file_name)
    {
        issues.push(
            Issue::new(
                "session.session_file",
                format!("`{file_name}` must be a plain file name"),
            )
            .with_help("the session file lives in /home/dev/.terok/; give only its name"),
        );
    }
    SessionSpec {
        supports_resume: s.supports_resume.unwrap_or(false),
        resume_flag: s.resume_flag,
        continue_flag: s.continue_flag,
        session_file: s.session_file,
        supports_hook: s.supports_hook.unwrap_or(false),
    }
}

fn resolve_capabilities(file: &AgentFile) -> Capabilities {
    let c = file.capabilities.clone().unwrap_or_default();
    Capabilities {
        agents_json: c.agents_json.unwrap_or(false),
        add_dir: c.add_dir.unwrap_or(false),
        log_format: c.log_format.unwrap_or_default(),
    }
}

/// The OpenCode provider settings: every field required, the prefix a valid env name, the
/// base URL http(s).
fn resolve_opencode(file: &AgentFile, issues: &mut Vec<Issue>) -> Option<OpencodeSpec> {
    let o = file.opencode.as_ref()?;
    let mut req = |field: &str, value: &Option<String>| required(issues, "opencode", field, value);
    let spec = OpencodeSpec {
        display_name: req("display_name", &o.display_name),
        base_url: req("base_url", &o.base_url),
        preferred_model: req("preferred_model", &o.preferred_model),
        fallback_model: req("fallback_model", &o.fallback_model),
        env_var_prefix: req("env_var_prefix", &o.env_var_prefix),
        config_dir: req("config_dir", &o.config_dir),
        auth_key_url: req("auth_key_url", &o.auth_key_url),
        api_key_hint: o.api_key_hint.clone(),
    };
    if !spec.env_var_prefix.is_empty() && !is_env_name(&spec.env_var_prefix) {
        issues.push(Issue::new(
            "opencode.env_var_prefix",
            format!(
                "`{}` is not a valid environment variable prefix (A-Z, 0-9, _)",
                spec.env_var_prefix
            ),
        ));
    }
    check_http_url(issues, "opencode.base_url", &spec.base_url);
    Some(spec)
}

fn resolve_install(file: &AgentFile, issues: &mut Vec<Issue>) -> Option<InstallSpec> {
    file.install.as_ref().map(|i| InstallSpec {
        depends_on: i
            .depends_on
            .as_ref()
            .map(|d| d.to_vec())
            .unwrap_or_default(),
        run_as_root: i.run_as_root.clone().filter(|s| !s.trim().is_empty()),
        run_as_dev: i.run_as_dev.clone().filter(|s| !s.trim().is_empty()),
        smoke: i.smoke.clone().filter(|s| !s.trim().is_empty()),
        min_node: i.min_node,
        min_python: i
            .min_python
            .as_deref()
            .and_then(|v| python_version(issues, v)),
    })
}

fn python_version(issues: &mut Vec<Issue>, written: &str) -> Option<PythonVersion> {
    let parsed = written.trim().parse().ok();
    if parsed.is_none() {
        issues.push(
            Issue::new(
                "install.min_python",
                format!("`{written}` is not a Python version like \"3.12\""),
            )
            .with_help("write the major and minor version in quotes, e.g. min_python: \"3.12\""),
        );
    }
    parsed
}

fn resolve_help(file: &AgentFile, issues: &mut Vec<Issue>) -> Option<HelpSpec> {
    let h = file.help.as_ref()?;
    match &h.label {
        Some(label) => Some(HelpSpec {
            label: label.clone(),
            section: h.section.unwrap_or_default(),
        }),
        None => {
            issues.push(Issue::missing("help", "label"));
            None
        }
    }
}

/// Extra shared directories: a safe relative host dir, an absolute container path.
fn resolve_mounts(file: &AgentFile, issues: &mut Vec<Issue>) -> Vec<MountSpec> {
    let mut mounts = Vec::new();
    for (i, item) in file.mounts.iter().flatten().enumerate() {
        let Some(m) = item.item() else { continue };
        let path = format!("mounts[{i}]");
        let host_dir = required(issues, &path, "host_dir", &m.host_dir);
        let container_path = required(issues, &path, "container_path", &m.container_path);
        check_host_dir(issues, &format!("{path}.host_dir"), &host_dir);
        check_container_path(issues, &format!("{path}.container_path"), &container_path);
        mounts.push(MountSpec {
            host_dir,
            container_path,
            label: m.label.clone(),
        });
    }
    mounts
}

fn resolve_auth(a: &AuthFile, issues: &mut Vec<Issue>) -> AuthSpec {
    let host_dir = required(issues, "auth", "host_dir", &a.host_dir);
    let container_mount = required(issues, "auth", "container_mount", &a.container_mount);
    check_host_dir(issues, "auth.host_dir", &host_dir);
    check_container_path(issues, "auth.container_mount", &container_mount);
    let auth_key = a.auth_key.as_ref().map(|k| AuthKeySpec {
        label: k.label.clone(),
        key_url: required(issues, "auth.auth_key", "key_url", &k.key_url),
        env_var: required(issues, "auth.auth_key", "env_var", &k.env_var),
        config_path: required(issues, "auth.auth_key", "config_path", &k.config_path),
        printf_template: required(
            issues,
            "auth.auth_key",
            "printf_template",
            &k.printf_template,
        ),
        tool_name: k.tool_name.clone(),
    });
    let mut modes: Vec<AuthMode> = a
        .modes
        .iter()
        .flatten()
        .filter_map(ListItem::item)
        .copied()
        .collect();
    modes.dedup();
    if modes.is_empty() {
        modes.push(AuthMode::ApiKey);
    }
    let mut post_capture_state = BTreeMap::new();
    for (file, state) in a.post_capture_state.iter().flatten() {
        if !is_relative_inside(file) {
            issues.push(Issue::new(
                format!("auth.post_capture_state.{file}"),
                format!("`{file}` must be a relative path without `..`"),
            ));
        }
        post_capture_state.insert(file.clone(), state.clone().unwrap_or_default());
    }
    AuthSpec {
        host_dir,
        container_mount,
        command: a.command.clone().filter(|c| !c.is_empty()),
        auth_key,
        banner_hint: a.banner_hint.clone(),
        extra_run_args: a.extra_run_args.clone().unwrap_or_default(),
        modes,
        api_key_hint: a.api_key_hint.clone(),
        post_capture_state,
    }
}

/// Resolves one merged provider (in the vocabulary of a `vault:` section), or returns every
/// issue, at `vault.<field>` paths.
pub(crate) fn resolve_provider(name: &str, v: &VaultFile) -> Result<Provider, Vec<Issue>> {
    let mut issues = Vec::new();
    let provider = provider_fields(name, v, &mut issues);
    if issues.is_empty() {
        Ok(provider)
    } else {
        Err(issues)
    }
}

fn provider_fields(name: &str, v: &VaultFile, issues: &mut Vec<Issue>) -> Provider {
    let route_prefix = required(issues, "vault", "route_prefix", &v.route_prefix);
    if !route_prefix.is_empty() && !valid_entry_name(&route_prefix) {
        issues.push(Issue::new(
            "vault.route_prefix",
            format!(
                "`{route_prefix}` is not a valid route name (lowercase letters, digits, `-`, `_`)"
            ),
        ));
    }
    let upstream = required(issues, "vault", "upstream", &v.upstream);
    check_http_url(issues, "vault.upstream", &upstream);
    let path_upstreams = v.path_upstreams.clone().unwrap_or_default();
    for (prefix, url) in &path_upstreams {
        if !prefix.starts_with('/') {
            issues.push(Issue::new(
                format!("vault.path_upstreams.{prefix}"),
                format!("path prefix `{prefix}` must start with `/`"),
            ));
        }
        check_http_url(issues, &format!("vault.path_upstreams.{prefix}"), url);
    }
    let auth_header = match v.auth_header.as_deref() {
        None | Some("") => AuthHeader::Named("Authorization".to_owned()),
        Some("dynamic") => AuthHeader::Dynamic,
        Some(header) => {
            if !is_header_name(header) {
                issues.push(Issue::new(
                    "vault.auth_header",
                    format!("`{header}` is not a valid HTTP header name"),
                ));
            }
            AuthHeader::Named(header.to_owned())
        }
    };
    let enabled = |map: &Option<BTreeMap<String, bool>>, field: &str, issues: &mut Vec<Issue>| {
        let vars: Vec<String> = map
            .iter()
            .flatten()
            .filter(|(_, on)| **on)
            .map(|(var, _)| var.clone())
            .collect();
        for var in &vars {
            if !is_env_name(var) {
                issues.push(Issue::new(
                    format!("vault.{field}.{var}"),
                    format!("`{var}` is not a valid environment variable name"),
                ));
            }
        }
        vars
    };
    let phantom_env = enabled(&v.phantom_env, "phantom_env", issues);
    let oauth_phantom_env = enabled(&v.oauth_phantom_env, "oauth_phantom_env", issues);
    let shared_config_patch = v.shared_config_patch.as_ref().map(|p| {
        let file = required(issues, "vault.shared_config_patch", "file", &p.file);
        if !file.is_empty() && !is_relative_inside(&file) {
            issues.push(Issue::new(
                "vault.shared_config_patch.file",
                format!("`{file}` must be a relative path inside the shared directory (no `..`)"),
            ));
        }
        if p.yaml_set.is_none() && p.toml_set.is_none() {
            issues.push(Issue::new(
                "vault.shared_config_patch",
                "a patch needs `yaml_set` or `toml_set`",
            ));
        }
        SharedConfigPatch {
            file,
            yaml_set: p.yaml_set.clone().unwrap_or_default(),
            toml_set: p.toml_set.clone().unwrap_or_default(),
            toml_table: p.toml_table.clone(),
            toml_match: p.toml_match.clone().unwrap_or_default(),
        }
    });
    let oauth_refresh = v.oauth_refresh.as_ref().map(|r| OauthRefresh {
        token_url: required(issues, "vault.oauth_refresh", "token_url", &r.token_url),
        client_id: required(issues, "vault.oauth_refresh", "client_id", &r.client_id),
        scope: r.scope.clone(),
    });
    let deny = v.deny.clone().unwrap_or_default();
    for (i, rule) in deny.iter().enumerate() {
        if let Err(why) = check_deny_rule(rule) {
            issues.push(Issue::new(format!("vault.deny[{i}]"), why));
        }
    }
    let redirect_hosts = v.redirect_hosts.clone().unwrap_or_default();
    for (i, host) in redirect_hosts.iter().enumerate() {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if bare.is_empty()
            || !bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            issues.push(Issue::new(
                format!("vault.redirect_hosts[{i}]"),
                format!("`{host}` is not a host name (or `*.` and a domain)"),
            ));
        }
    }
    if let Some(file) = &v.credential_file
        && !is_single_segment(file)
    {
        issues.push(Issue::new(
            "vault.credential_file",
            format!("`{file}` must be a plain file name inside the shared directory"),
        ));
    }
    let aliases = v.aliases.clone().unwrap_or_default();
    for (i, alias) in aliases.iter().enumerate() {
        if !valid_entry_name(alias) {
            issues.push(Issue::new(
                format!("vault.aliases[{i}]"),
                format!("`{alias}` is not a provider name (lowercase letters, digits, `-`, `_`)"),
            ));
        }
    }
    let oauth_credential_headers = v.oauth_credential_headers.clone().unwrap_or_default();
    for (header, field) in &oauth_credential_headers {
        if !is_header_name(header) {
            issues.push(Issue::new(
                format!("vault.oauth_credential_headers.{header}"),
                format!("`{header}` is not a valid HTTP header name"),
            ));
        }
        if !CREDENTIAL_FIELDS.contains(&field.as_str()) {
            issues.push(Issue::new(
                format!("vault.oauth_credential_headers.{header}"),
                format!(
                    "`{field}` is not a field of a stored OAuth credential ({})",
                    CREDENTIAL_FIELDS.join(", ")
                ),
            ));
        }
    }
    let serves = v.serves.clone().unwrap_or_default();
    for protocol in serves.keys().filter(|p| !valid_entry_name(p)) {
        issues.push(Issue::new(
            format!("vault.serves.{protocol}"),
            format!("`{protocol}` is not a protocol name (lowercase letters, digits, `-`, `_`)"),
        ));
    }
    for (protocol, path) in &serves {
        if !path.starts_with('/') || path.contains("..") || path.contains(char::is_whitespace) {
            issues.push(Issue::new(
                format!("vault.serves.{protocol}"),
                format!("`{path}` must be an absolute URL path such as `/v1`"),
            ));
        }
    }
    Provider {
        name: name.to_owned(),
        label: v.label.clone(),
        aliases,
        route_prefix,
        upstream,
        path_upstreams,
        oauth_extra_headers: v.oauth_extra_headers.clone().unwrap_or_default(),
        oauth_credential_headers,
        serves,
        base_url_path: String::new(),
        auth_header,
        auth_prefix: v
            .auth_prefix
            .clone()
            .unwrap_or_else(|| "Bearer ".to_owned()),
        credential_type: v.credential_type.unwrap_or_default(),
        credential_file: v.credential_file.clone(),
        phantom_env,
        oauth_phantom_env,
        base_url_env: v.base_url_env.clone(),
        socket_env: v.socket_env.clone(),
        shared_config_patch,
        oauth_refresh,
        deny,
        redirect_hosts,
    }
}

/// Fields of a stored OAuth credential a header can be filled from.
const CREDENTIAL_FIELDS: [&str; 2] = ["account_id", "access_token"];

fn is_header_name(header: &str) -> bool {
    !header.is_empty()
        && header
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `POST /api/v4/user/keys`: an HTTP method (or `*`), one space, an absolute path whose
/// segments are names, `*`, or a final `**`.
fn check_deny_rule(rule: &str) -> Result<(), String> {
    let (method, path) = rule
        .split_once(' ')
        .ok_or_else(|| format!("`{rule}` must be `METHOD /path`"))?;
    if method != "*" && !method.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "`{method}` is not an HTTP method in capitals (or `*`)"
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`{path}` must start with `/`"));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() || (segment.contains('*') && *segment != "*" && *segment != "**") {
            return Err(format!(
                "`{path}`: segment `{segment}` must be a name, `*` or a final `**`"
            ));
        }
        if *segment == "**" && i + 1 != segments.len() {
            return Err(format!("`{path}`: `**` may only end the path"));
        }
    }
    Ok(())
}

fn required(issues: &mut Vec<Issue>, section: &str, field: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => v.clone(),
        None => {
            issues.push(Issue::missing(section, field));
            String::new()
        }
    }
}

fn check_host_dir(issues: &mut Vec<Issue>, path: &str, host_dir: &str) {
    if !host_dir.is_empty() && !is_single_segment(host_dir) {
        issues.push(
            Issue::new(
                path,
                format!("host_dir `{host_dir}` must be a single directory name under the mounts directory"),
            )
            .with_help("no `/`, no `..`, not absolute: for example `_claude-config`"),
        );
    }
}

fn check_container_path(issues: &mut Vec<Issue>, path: &str, container_path: &str) {
    if !container_path.is_empty()
        && (!container_path.starts_with('/') || container_path.split('/').any(|s| s == ".."))
    {
        issues.push(Issue::new(
            path,
            format!("`{container_path}` must be an absolute path in the container, without `..`"),
        ));
    }
}

fn check_http_url(issues: &mut Vec<Issue>, path: &str, url: &str) {
    if url.is_empty() {
        return;
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        issues.push(Issue::new(
            path,
            format!("`{url}` is not an http:// or https:// URL with a host"),
        ));
    }
}

/// A plain name: not empty, no `/`, not `.` or `..`.
fn is_single_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".." && !s.contains('\0')
}

fn is_relative_inside(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('/') && !s.split('/').any(|p| p == "..")
}

pub(crate) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert!(valid_entry_name("claude"));
        assert!(valid_entry_name("my-agent_2"));
        assert!(!valid_entry_name("Claude"));
        assert!(!valid_entry_name("-x"));
        assert!(!valid_entry_name(""));
        assert!(!valid_entry_name("a.b"));
    }

    #[test]
    fn defaults_follow_the_python_terok_executor() {
        let agent = resolve_agent("myagent", &AgentFile::default()).unwrap();
        assert_eq!(agent.kind, AgentKind::Native);
        assert_eq!(agent.label, "myagent");
        assert_eq!(agent.binary, "myagent");
        assert_eq!(agent.git_identity.name, "Myagent");
        assert_eq!(agent.git_identity.email, "noreply@myagent.ai");
        assert_eq!(agent.headless.prompt_flag.as_deref(), Some("-p"));
        assert!(agent.provider.is_none());
    }

    #[test]
    fn missing_required_fields_are_all_reported() {
        let issues = resolve_provider("x", &VaultFile::default()).unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["vault.route_prefix", "vault.upstream"]);
    }
}
