//! `doctor TASK`'s checks of a running task, as the Python terok-executor runs them: the
//! bridges to the host's services are alive, the credential files and the environment hold
//! phantom tokens (never a real key), and the base URLs lead to the vault; the bridges can be
//! repaired in place (`--fix`).
//!
//! What the agent could forge is not asked of the container: the environment comes from
//! podman's record of the container (what runs inside cannot change it) and the credential
//! files from their host side (the task directory). Only the bridges are probed inside, with
//! absolute paths and a fixed `PATH` (the agent can write to directories early in the image's
//! `PATH`), each under a time limit. A credential found is named by its kind only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use terok_container_env::TaskLayout;
use terok_core::secure_fs;
use terok_credentials::is_phantom_token;
use terok_credentials::vendor::{is_phantom_content, real_secret_kind};
use terok_podman::{ContainerRuntime, ExecOutput};
use terok_roster::Roster;

use crate::doctor::{DoctorCheck, Verdict};
use crate::error::ExecutorError;
use crate::session::Executor;
use crate::task::TaskRecord;

/// Re-starts the bridges that are not running (they check their own pidfiles).
const BRIDGE_FIX: &str = "PATH=/usr/bin:/bin; source /usr/local/bin/ensure-bridges.sh";
/// How long one probe or fix in a task may take (a task can make one wait for ever).
const PROBE_LIMIT: Duration = Duration::from_secs(10);
/// The most of a credential file read.
const CREDENTIAL_FILE_LIMIT: u64 = 1024 * 1024;

/// What a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CheckCategory {
    /// An in-container bridge to a host service.
    Bridge,
    /// A credential file in a mounted config directory.
    Mount,
    /// An environment variable.
    Env,
}

/// How a probe's answer is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
#[non_exhaustive]
pub enum ProbeRule {
    /// The probe must succeed (exit 0).
    Succeeds,
    /// A credential file, read on the host (the first of `files` that exists): missing, empty
    /// or a phantom is fine, a real-looking key is an error.
    CredentialFile {
        /// Its host side: the task's phantom file, then its copy of the config directory.
        files: Vec<PathBuf>,
    },
    /// The variable must hold a phantom token.
    PhantomEnv {
        /// The variable.
        var: String,
    },
    /// The variable must be a URL on `host` (the vault's loopback bridge).
    BaseUrl {
        /// The variable.
        var: String,
        /// `localhost:9419`.
        host: String,
    },
}

/// One check run inside a task's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ContainerCheck {
    /// Stable id (`bridge.vault`, `mount._claude-config`, `env.ANTHROPIC_API_KEY`,
    /// `base-url.ANTHROPIC_BASE_URL`).
    pub id: String,
    /// What it looks at.
    pub category: CheckCategory,
    /// What it checks, for people.
    pub label: String,
    /// The command run in the container (`None`: judged on the host).
    pub probe: Option<Vec<String>>,
    /// The command that repairs it, when it can be repaired in place.
    pub fix: Option<Vec<String>>,
    /// How the answer is judged.
    pub rule: ProbeRule,
}

/// `/bin/sh -c <line>` for a probe, with a `PATH` of system directories only: not bash, whose
/// `BASH_ENV` (the image's `terok-env.sh`) would start the missing bridges before the probe
/// looks.
fn probe_shell(line: &str) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("PATH=/usr/bin:/bin; {line}"),
    ]
}

/// `/bin/bash -c <line>` for a fix.
fn fix_shell(line: &str) -> Vec<String> {
    vec!["/bin/bash".into(), "-c".into(), line.into()]
}

/// The checks of the task in `layout`, whose container environment is `env`, serving
/// `providers`.
pub fn container_checks(
    roster: &Roster,
    providers: &[String],
    env: &BTreeMap<String, String>,
    layout: &TaskLayout,
) -> Vec<ContainerCheck> {
    let mut checks = bridge_checks(env);
    let wanted: BTreeSet<&str> = providers.iter().map(String::as_str).collect();
    for mount in roster.shared_mounts() {
        let (Some(file), Some(provider)) = (&mount.credential_file, &mount.provider) else {
            continue;
        };
        if !wanted.contains(provider.as_str()) {
            continue;
        }
        let path = format!("{}/{file}", mount.container_path.trim_end_matches('/'));
        checks.push(ContainerCheck {
            id: format!("mount.{}", mount.host_dir),
            category: CheckCategory::Mount,
            label: format!("{path} holds no real credential"),
            probe: None,
            fix: None,
            rule: ProbeRule::CredentialFile {
                files: vec![
                    layout.phantom_file(&mount.host_dir, file),
                    layout.config_copy(&mount.host_dir).join(file),
                ],
            },
        });
    }
    let mut seen = BTreeSet::new();
    for name in providers {
        let Some(provider) = roster.provider(name) else {
            continue;
        };
        let token_vars = provider
            .phantom_env
            .iter()
            .chain(&provider.oauth_phantom_env);
        // A provider's API-key and OAuth variables: the task gets the ones of its credential's
        // kind, so only those set are checked — unless none is.
        let set: Vec<&String> = token_vars
            .clone()
            .filter(|v| env.contains_key(*v))
            .collect();
        let checked: Vec<&String> = if set.is_empty() {
            token_vars.take(1).collect()
        } else {
            set
        };
        for var in checked {
            if seen.insert(var.clone()) {
                checks.push(env_check(
                    format!("env.{var}"),
                    format!("{var} is a phantom token"),
                    ProbeRule::PhantomEnv { var: var.clone() },
                ));
            }
        }
        if let Some(var) = &provider.base_url_env
            && seen.insert(var.clone())
        {
            let port = env
                .get("TEROK_VAULT_LOOPBACK_PORT")
                .map_or("9419", String::as_str);
            checks.push(env_check(
                format!("base-url.{var}"),
                format!("{var} leads to the vault"),
                ProbeRule::BaseUrl {
                    var: var.clone(),
                    host: format!("localhost:{port}"),
                },
            ));
        }
    }
    checks
}

fn env_check(id: String, label: String, rule: ProbeRule) -> ContainerCheck {
    ContainerCheck {
        id,
        category: CheckCategory::Env,
        label,
        probe: None,
        fix: None,
        rule,
    }
}

/// The bridges the task's environment says it has.
fn bridge_checks(env: &BTreeMap<String, String>) -> Vec<ContainerCheck> {
    // Runs: the pidfile's process exists and is not a zombie (a dead bridge stays one, its
    // parent never reaps it, and `kill -0` still succeeds on it).
    let alive = |name: &str| {
        format!(
            "p=$(cat /tmp/.terok/{name}.pid) || exit 1; case $p in ''|*[!0-9]*) exit 1;; esac; \
             s=$(cut -d' ' -f3 /proc/$p/stat) && [ -n \"$s\" ] && [ \"$s\" != Z ]"
        )
    };
    let mut bridges = Vec::new();
    if env.contains_key("TEROK_VAULT_LOOPBACK_PORT") {
        bridges.push((
            "vault",
            "the vault bridge (127.0.0.1 → the task's vault socket) runs".to_owned(),
            format!(
                "test -S /run/terok/vault/vault.sock && {}",
                alive("vault-loopback")
            ),
        ));
    }
    if env.contains_key("TEROK_SSH_SIGNER_TOKEN") {
        bridges.push((
            "ssh-agent",
            "the SSH agent bridge (/tmp/ssh-agent.sock → the signer) runs".to_owned(),
            format!("test -S /tmp/ssh-agent.sock && {}", alive("ssh-agent")),
        ));
    }
    if env.contains_key("TEROK_GATE_SOCKET") {
        bridges.push((
            "gate",
            "the gate bridge (127.0.0.1:9418 → the task's gate socket) runs".to_owned(),
            alive("gate"),
        ));
    }
    bridges
        .into_iter()
        .map(|(name, label, line)| ContainerCheck {
            id: format!("bridge.{name}"),
            category: CheckCategory::Bridge,
            label,
            probe: Some(probe_shell(&line)),
            fix: Some(fix_shell(BRIDGE_FIX)),
            rule: ProbeRule::Succeeds,
        })
        .collect()
}

impl ProbeRule {
    /// The verdict on a probe's answer (`out`), or on the container's environment `env`.
    pub fn judge(
        &self,
        out: Option<&ExecOutput>,
        env: &BTreeMap<String, String>,
    ) -> (Verdict, String) {
        match self {
            Self::Succeeds => match out {
                Some(out) if out.status == 0 => (Verdict::Ok, "running".into()),
                _ => (Verdict::Error, "not running".into()),
            },
            Self::CredentialFile { files } => judge_credential_file(files),
            Self::PhantomEnv { var } => judge_phantom(env.get(var).map(String::as_str)),
            Self::BaseUrl { var, host } => judge_base_url(env.get(var).map(String::as_str), host),
        }
    }
}

fn judge_credential_file(files: &[PathBuf]) -> (Verdict, String) {
    for file in files {
        let bytes = match secure_fs::read_nofollow_limited(file, CREDENTIAL_FILE_LIMIT) {
            Ok(bytes) => bytes,
            Err(secure_fs::SecureFsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            Err(err) => return (Verdict::Warn, format!("could not be read: {err}")),
        };
        return judge_credential_bytes(&bytes);
    }
    (Verdict::Ok, "none".into())
}

/// The verdict on a credential file's contents.
fn judge_credential_bytes(bytes: &[u8]) -> (Verdict, String) {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        return (Verdict::Ok, "empty".into());
    }
    if let Some(kind) = real_secret_kind(&text) {
        return (
            Verdict::Error,
            format!(
                "holds a real-looking credential ({kind}…): stop the task and remove it from \
                 the file"
            ),
        );
    }
    if is_phantom_content(bytes) {
        (Verdict::Ok, "phantom".into())
    } else {
        (
            Verdict::Warn,
            "holds something that is not a phantom token (a key of a kind terok does not \
             recognise?)"
                .into(),
        )
    }
}

fn judge_phantom(value: Option<&str>) -> (Verdict, String) {
    match value.map(str::trim) {
        None | Some("") => (Verdict::Warn, "not set".into()),
        Some(value) if is_phantom_token(value) => (Verdict::Ok, "phantom".into()),
        Some(value) => match real_secret_kind(value) {
            Some(kind) => (
                Verdict::Error,
                format!("holds a real-looking credential ({kind}…): restart the task"),
            ),
            None => (
                Verdict::Warn,
                "neither a phantom token nor a known key".into(),
            ),
        },
    }
}

fn judge_base_url(value: Option<&str>, host: &str) -> (Verdict, String) {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return (Verdict::Warn, "not set".into());
    };
    let authority = value
        .split_once("://")
        .map_or(value, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority == host {
        (Verdict::Ok, format!("http://{host}"))
    } else {
        (
            Verdict::Error,
            format!(
                "leads to {} instead of the vault (http://{host}): restart the task",
                terok_core::text::printable(authority)
            ),
        )
    }
}

/// The outcome of `check` inside the task `task`.
fn outcome_of(task: &str, check: &ContainerCheck, verdict: Verdict, detail: String) -> DoctorCheck {
    DoctorCheck {
        name: format!("{task}: {}", check.label),
        id: Some(check.id.clone()),
        verdict,
        detail,
        fixable: verdict != Verdict::Ok && check.fix.is_some(),
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// The checks inside the running task `record`, run (and, with `fix`, repaired where they
    /// can be, then run again).
    pub(crate) async fn container_doctor(
        &self,
        record: &TaskRecord,
        fix: bool,
    ) -> Result<Vec<DoctorCheck>, ExecutorError> {
        let runtime = self.runtime();
        let env = runtime
            .inspect(&record.name)
            .await?
            .map(|info| info.env)
            .unwrap_or_default();
        let layout = self.task_store().layout(&record.id);
        let checks = container_checks(self.roster()?, &record.providers, &env, &layout);
        let mut results = Vec::with_capacity(checks.len());
        for check in &checks {
            let mut outcome = self.run_probe(record, check, &env).await;
            if fix
                && outcome.0 != Verdict::Ok
                && let Some(fix) = &check.fix
            {
                let _ = tokio::time::timeout(PROBE_LIMIT, runtime.exec(&record.name, fix)).await;
                let (verdict, detail) = self.run_probe(record, check, &env).await;
                outcome = match verdict {
                    Verdict::Ok => (Verdict::Ok, format!("{detail} (fixed)")),
                    other => (other, format!("{detail} (the fix did not help)")),
                };
            }
            results.push(outcome_of(&record.name, check, outcome.0, outcome.1));
        }
        Ok(results)
    }

    async fn run_probe(
        &self,
        record: &TaskRecord,
        check: &ContainerCheck,
        env: &BTreeMap<String, String>,
    ) -> (Verdict, String) {
        let Some(probe) = &check.probe else {
            return check.rule.judge(None, env);
        };
        match tokio::time::timeout(PROBE_LIMIT, self.runtime().exec(&record.name, probe)).await {
            Ok(out) => check.rule.judge(out.ok().as_ref(), env),
            Err(_) => (
                Verdict::Warn,
                format!("no answer within {} s", PROBE_LIMIT.as_secs()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credential_files_are_judged_on_the_host_by_what_they_hold() {
        #![allow(clippy::disallowed_methods)]
        let dir = tempfile::tempdir().unwrap();
        let (phantom, copy) = (dir.path().join("phantom"), dir.path().join("copy"));
        let files = [phantom.clone(), copy.clone()];
        assert_eq!(judge_credential_file(&files).0, Verdict::Ok, "none at all");
        std::fs::write(&copy, "  \n").unwrap();
        assert_eq!(judge_credential_file(&files).1, "empty");
        std::fs::write(
            &phantom,
            r#"{"accessToken":"terok-p-0123456789abcdef0123456789abcdef"}"#,
        )
        .unwrap();
        assert_eq!(
            judge_credential_file(&files),
            (Verdict::Ok, "phantom".into())
        );
        std::fs::write(&phantom, r#"{"key":"sk-ant-api03-REALKEY"}"#).unwrap();
        let (verdict, detail) = judge_credential_file(&files);
        assert_eq!(verdict, Verdict::Error);
        assert!(!detail.contains("REALKEY"), "{detail}");
        // A key of a kind terok does not recognise is not taken for a phantom.
        std::fs::write(&phantom, "MISTRAL_API_KEY=abcdefabcdefabcdef\n").unwrap();
        assert_eq!(judge_credential_file(&files).0, Verdict::Warn);
        // A link (the container replaced the file) is not followed.
        std::fs::remove_file(&phantom).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", &phantom).unwrap();
        assert_eq!(judge_credential_file(&files).0, Verdict::Warn);
    }

    #[test]
    fn environment_values_are_judged_without_being_shown() {
        assert_eq!(judge_phantom(None).0, Verdict::Warn);
        assert_eq!(
            judge_phantom(Some("terok-p-0123456789abcdef0123456789abcdef")).0,
            Verdict::Ok
        );
        let (verdict, detail) = judge_phantom(Some("ghp_REALTOKENVALUE"));
        assert_eq!(verdict, Verdict::Error);
        assert!(!detail.contains("REALTOKENVALUE"), "{detail}");
        assert_eq!(judge_phantom(Some("something")).0, Verdict::Warn);
        assert_eq!(
            judge_base_url(Some("http://localhost:9419/v1"), "localhost:9419").0,
            Verdict::Ok
        );
        assert_eq!(judge_base_url(None, "localhost:9419").0, Verdict::Warn);
        let (verdict, detail) =
            judge_base_url(Some("https://evil.example/\u{1b}[2J"), "localhost:9419");
        assert_eq!(verdict, Verdict::Error);
        assert!(
            detail.contains("evil.example") && !detail.contains('\u{1b}'),
            "{detail}"
        );
    }

    #[test]
    fn a_task_gets_the_checks_of_its_bridges_and_providers() {
        let roster = terok_roster::RosterLoader::bundled().load().unwrap();
        let env: BTreeMap<String, String> = [
            ("TEROK_VAULT_LOOPBACK_PORT", "9419"),
            ("ANTHROPIC_API_KEY", "terok-p-x"),
            ("TEROK_GATE_SOCKET", "/run/terok/gate/gate.sock"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let layout = TaskLayout::new("/tasks/0123456789ab");
        let checks = container_checks(&roster, &["claude".to_owned()], &env, &layout);
        let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "bridge.vault",
                "bridge.gate",
                "mount._claude-config",
                "env.ANTHROPIC_API_KEY",
                "base-url.ANTHROPIC_BASE_URL"
            ]
        );
    }
}
