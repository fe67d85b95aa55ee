//! `doctor TASK`'s checks inside a running task, as the Python terok-executor runs them: the
//! bridges to the host's services are alive, the credential files and the environment hold
//! phantom tokens (never a real key), and the base URLs lead to the vault. Each check is a
//! probe run in the container through the runtime and a rule that judges its answer; the
//! bridges can be repaired in place (`--fix`).
//!
//! The container's answers are the agent's to shape: they are parsed, never printed whole, and
//! a credential the container holds is named by its kind only, never shown.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use terok_credentials::is_phantom_token;
use terok_credentials::vendor::real_secret_kind;
use terok_podman::{ContainerRuntime, ExecOutput};
use terok_roster::Roster;

use crate::doctor::{DoctorCheck, Verdict};
use crate::error::ExecutorError;
use crate::session::Executor;
use crate::task::TaskRecord;

/// Re-starts the bridges that are not running (they check their own pidfiles).
const BRIDGE_FIX: &str = "source /usr/local/bin/ensure-bridges.sh";

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
    /// The probe prints a credential file: missing or empty is fine, a real key is an error.
    CredentialFile,
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
    /// The command run in the container (`None`: judged from the container's environment).
    pub probe: Option<Vec<String>>,
    /// The command that repairs it, when it can be repaired in place.
    pub fix: Option<Vec<String>>,
    /// How the answer is judged.
    pub rule: ProbeRule,
}

/// `sh -c <line>` for a probe: not bash, whose `BASH_ENV` (the image's `terok-env.sh`) would
/// start the missing bridges before the probe looks.
fn probe_shell(line: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), line.into()]
}

/// `bash -c <line>` for a fix.
fn fix_shell(line: &str) -> Vec<String> {
    vec!["bash".into(), "-c".into(), line.into()]
}

/// The checks of a task whose container environment is `env`, serving `providers`.
pub fn container_checks(
    roster: &Roster,
    providers: &[String],
    env: &BTreeMap<String, String>,
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
            label: format!("{} holds no real credential", path),
            probe: Some(vec!["cat".into(), "--".into(), path]),
            fix: None,
            rule: ProbeRule::CredentialFile,
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
            "p=$(cat /tmp/.terok/{name}.pid) && s=$(cut -d' ' -f3 /proc/$p/stat) \
             && [ -n \"$s\" ] && [ \"$s\" != Z ]"
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
            Self::CredentialFile => judge_credential_file(out),
            Self::PhantomEnv { var } => judge_phantom(env.get(var).map(String::as_str)),
            Self::BaseUrl { var, host } => judge_base_url(env.get(var).map(String::as_str), host),
        }
    }
}

fn judge_credential_file(out: Option<&ExecOutput>) -> (Verdict, String) {
    let Some(out) = out else {
        return (Verdict::Warn, "could not be read".into());
    };
    if out.status != 0 {
        return if out.stderr.contains("No such file") {
            (Verdict::Ok, "none".into())
        } else {
            (Verdict::Warn, "could not be read".into())
        };
    }
    if out.stdout.trim().is_empty() {
        return (Verdict::Ok, "empty".into());
    }
    match real_secret_kind(&out.stdout) {
        Some(kind) => (
            Verdict::Error,
            format!(
                "holds a real-looking credential ({kind}…): stop the task and remove the file from its config directory"
            ),
        ),
        None => (Verdict::Ok, "phantom".into()),
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

/// The container's environment from `env`'s output (`NAME=value` lines; a value with a
/// newline keeps its first line, which is all a check reads).
fn parse_env(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
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
        let env_out = runtime.exec(&record.name, &["env".to_owned()]).await?;
        let env = parse_env(&env_out.stdout);
        let checks = container_checks(self.roster()?, &record.providers, &env);
        let mut results = Vec::with_capacity(checks.len());
        for check in &checks {
            let mut outcome = self.run_probe(record, check, &env).await;
            if fix
                && outcome.0 != Verdict::Ok
                && let Some(fix) = &check.fix
            {
                let _ = runtime.exec(&record.name, fix).await;
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
        let out = match &check.probe {
            Some(probe) => self.runtime().exec(&record.name, probe).await.ok(),
            None => None,
        };
        check.rule.judge(out.as_ref(), env)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn out(status: i32, stdout: &str, stderr: &str) -> ExecOutput {
        ExecOutput {
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn credential_files_are_judged_by_what_they_hold() {
        let judge = |o: ExecOutput| judge_credential_file(Some(&o)).0;
        assert_eq!(
            judge(out(1, "", "cat: x: No such file or directory")),
            Verdict::Ok
        );
        assert_eq!(
            judge(out(1, "", "cat: x: Permission denied")),
            Verdict::Warn
        );
        assert_eq!(judge(out(0, "  \n", "")), Verdict::Ok);
        assert_eq!(
            judge(out(
                0,
                r#"{"accessToken":"terok-p-0123456789abcdef0123456789abcdef"}"#,
                ""
            )),
            Verdict::Ok
        );
        let (verdict, detail) =
            judge_credential_file(Some(&out(0, r#"{"key":"sk-ant-api03-REALKEY"}"#, "")));
        assert_eq!(verdict, Verdict::Error);
        assert!(!detail.contains("REALKEY"), "{detail}");
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
    fn the_environment_reads_as_names_and_values() {
        let env = parse_env("A=1\nB=x=y\nnot a line\n=nameless\nC=\n");
        assert_eq!(env.get("A").unwrap(), "1");
        assert_eq!(env.get("B").unwrap(), "x=y");
        assert_eq!(env.get("C").unwrap(), "");
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn a_task_gets_the_checks_of_its_bridges_and_providers() {
        let roster = terok_roster::RosterLoader::bundled().load().unwrap();
        let env = parse_env(
            "TEROK_VAULT_LOOPBACK_PORT=9419\nANTHROPIC_API_KEY=terok-p-x\nTEROK_GATE_SOCKET=/run/terok/gate/gate.sock\n",
        );
        let checks = container_checks(&roster, &["claude".to_owned()], &env);
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
