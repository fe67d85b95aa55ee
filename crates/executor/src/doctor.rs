//! `doctor`: what is wrong with this host and its tasks, as a list of checks with verdicts —
//! podman, the vault and the routes it serves, the stored credentials the model APIs refuse,
//! and tasks whose agent cannot work because of such a refusal.

use serde::Serialize;
use terok_podman::ContainerRuntime;

use crate::checks::SetupScope;
use crate::error::ExecutorError;
use crate::session::Executor;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but something deserves attention.
    Warn,
    /// Something does not work.
    Error,
}

/// One check of `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DoctorCheck {
    /// What was checked (`podman`, `vault`, `credential claude`, `task NAME`, `NAME:
    /// bridge.vault`).
    pub name: String,
    /// The id of the check inside a task it was (`bridge.vault` …), `None` for the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// Whether `--fix` can repair it in place.
    pub fixable: bool,
}

impl DoctorCheck {
    fn new(name: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            id: None,
            verdict,
            detail: detail.into(),
            fixable: false,
        }
    }
}

/// `401 authentication_error`.
fn refusal_text(status: u16, error_type: Option<&str>) -> String {
    match error_type {
        Some(kind) => format!("{status} {kind}"),
        None => status.to_string(),
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// The checks of this host, then of `task` (a container name or task id) or of every
    /// running task — inside each running one too; with `fix`, what can be repaired in a task
    /// is repaired and checked again.
    pub async fn doctor(
        &self,
        task: Option<&str>,
        fix: bool,
    ) -> Result<Vec<DoctorCheck>, ExecutorError> {
        let scope = SetupScope {
            vault: true,
            ..SetupScope::default()
        };
        let mut checks: Vec<DoctorCheck> = self
            .setup_checks(&scope)
            .await
            .into_iter()
            .map(|row| match row.outcome {
                Ok(detail) => DoctorCheck::new(row.name, Verdict::Ok, detail),
                Err(detail) => DoctorCheck::new(row.name, Verdict::Error, detail),
            })
            .collect();
        checks.extend(
            self.inert_settings()
                .into_iter()
                .map(|said| DoctorCheck::new("config.yml", Verdict::Warn, said)),
        );
        checks.push(DoctorCheck::new(
            "egress",
            Verdict::Warn,
            crate::settings_check::EGRESS_OPEN,
        ));
        checks.extend(self.credential_checks().await?);
        checks.extend(self.task_checks(task, fix).await?);
        Ok(checks)
    }

    /// Stored credentials the model APIs refused, unless stored again since.
    async fn credential_checks(&self) -> Result<Vec<DoctorCheck>, ExecutorError> {
        let stored = self.stored_credentials()?.unwrap_or_default();
        let refused = self
            .vault
            .status()
            .await
            .map(|s| s.rejected)
            .unwrap_or_default();
        Ok(stored
            .iter()
            .map(|credential| {
                let name = format!("credential {}", credential.provider);
                match refused.iter().find(|r| {
                    r.provider == credential.provider && r.last_unix >= credential.updated_at
                }) {
                    Some(r) => DoctorCheck::new(
                        name,
                        Verdict::Error,
                        format!(
                            "the API refused it ({}) at {}, {} time(s) in a row",
                            refusal_text(r.status, r.error_type.as_deref()),
                            terok_core::time::utc_minutes(r.last_unix),
                            r.count
                        ),
                    ),
                    None => DoctorCheck::new(name, Verdict::Ok, credential.kind.clone()),
                }
            })
            .collect())
    }

    /// Each task: whether the API refuses its credential, and the checks inside it.
    async fn task_checks(
        &self,
        task: Option<&str>,
        fix: bool,
    ) -> Result<Vec<DoctorCheck>, ExecutorError> {
        let tasks = self.list_tasks().await?;
        let wanted: Vec<_> = match task {
            Some(name) => {
                let found: Vec<_> = tasks
                    .into_iter()
                    .filter(|t| t.name == name || t.task_id == name)
                    .collect();
                if found.is_empty() {
                    return Err(ExecutorError::TaskNotFound(name.to_owned()));
                }
                found
            }
            None => tasks.into_iter().filter(|t| t.state == "running").collect(),
        };
        let mut checks = Vec::new();
        for t in wanted {
            let name = format!("task {}", t.name);
            checks.push(match &t.credential_rejected {
                Some(provider) => DoctorCheck::new(
                    name,
                    Verdict::Error,
                    format!("the API refuses the credential of {provider}: the agent cannot work"),
                ),
                None => DoctorCheck::new(name, Verdict::Ok, t.state.clone()),
            });
            if t.state == "running"
                && let Some(record) = self.task_store().find(&t.name)
            {
                checks.extend(self.inside_task(&record, fix).await?);
            }
        }
        Ok(checks)
    }

    /// The checks inside a running task (a krun guest is reached over SSH, not by them).
    async fn inside_task(
        &self,
        record: &crate::task::TaskRecord,
        fix: bool,
    ) -> Result<Vec<DoctorCheck>, ExecutorError> {
        if record.krun.is_some() {
            return Ok(vec![DoctorCheck::new(
                format!("{}: checks inside the task", record.name),
                Verdict::Warn,
                "not run in a krun guest (log in over SSH to look)",
            )]);
        }
        self.container_doctor(record, fix).await
    }
}
