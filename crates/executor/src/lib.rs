//! terok-executor: the library an orchestrator embeds to run an AI coding agent in a hardened
//! Podman container, with the real credentials kept on the host. The `terok-executor` binary
//! is a thin layer on top: it parses its arguments, calls one method of [`Executor`] and
//! prints the result.
//!
//! - [`Executor`]: the session — configuration, paths, the roster, a container runtime and
//!   the vault, opened once with [`Executor::builder`].
//! - Launching: [`Executor::launch`] with [`RunOptions`] (a typed field for every `run` flag)
//!   returns a [`LaunchedTask`] the caller owns; [`LaunchedTask::wait_with`] streams the output
//!   and ends with a [`RunOutcome`] (the agent's exit code; 124 when the timeout fired, which
//!   the host enforces too).
//! - Tasks: [`Executor::list_tasks`], [`Executor::start_task`], [`Executor::stop_task`],
//!   [`Executor::remove_task`].
//! - Images: [`Executor::build_request`], [`Executor::ensure_images`],
//!   [`Executor::missing_images`], [`Executor::remove_images`].
//! - Credentials and the vault: [`Executor::store_api_key`], [`Executor::oauth_login`],
//!   [`Executor::ensure_vault`], [`Executor::serve_vault`], [`Executor::vault_report`],
//!   [`Executor::clean_vault`].
//! - Host checks as data: [`Executor::setup_checks`], [`Executor::credential_state`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), terok_executor::ExecutorError> {
//! use terok_executor::{Executor, ImageChoice, ImageSource, RunEvent, RunOptions};
//!
//! let executor = Executor::builder(terok_core::HostEnv::from_process())
//!     .cwd("/srv/projects")
//!     .build()?;
//! let request = executor.build_request(&ImageChoice::default())?;
//! let options = RunOptions::headless(
//!     "claude",
//!     "sample-project",
//!     "fix the failing test",
//!     ImageSource::Ensure(request),
//! );
//! let task = executor
//!     .launch(&options, &mut |event: RunEvent| eprintln!("{event:?}"))
//!     .await?;
//! // The task owns what it needs: it can be moved into a spawned task.
//! let outcome = tokio::spawn(async move {
//!     task.wait_with(|line| println!("{}", line.line), std::future::pending())
//!         .await
//! })
//! .await
//! .expect("the run's task panicked")?;
//! std::process::exit(outcome.exit_code);
//! # }
//! ```
//!
//! `examples/headless.rs` is the same as a program.

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod acp;
mod agents;
mod auth;
mod checks;
mod container_user;
mod copy_back;
mod doctor;
mod error;
mod gate;
mod host;
mod images;
mod krun;
mod kube;
mod launch;
mod launched;
mod lifecycle;
mod listen;
mod origin;
mod ownership;
mod repo;
mod sandbox;
mod security_modules;
mod services;
mod session;
mod settings_check;
mod setup;
mod shield;
mod ssh;
mod storage;
mod stream;
mod task;
mod task_doctor;
mod tool;
mod vault;
mod vault_service;
mod vault_unit;
mod web;

pub use acp::{
    AcpDaemon, AcpError, AcpOpened, AcpOptions, AcpStopped, DEFAULT_PROBE_TIMEOUT,
    PROBE_TIMEOUT_VAR,
};
pub use agents::{
    AgentDocument, AgentSummary, ImageSelection, SelectionWritten, roster_provider_schema,
    roster_schema,
};
pub use auth::{AuthEvent, AuthOptions, LoginOutcome, Stored, auth_container};
pub use checks::{CredentialState, HostCheck, SetupScope};
pub use container_user::ContainerUser;
pub use copy_back::CopiedBack;
pub use doctor::{DoctorCheck, Verdict};
pub use error::{ExecutorError, KubeRefusal, RemoteRefusal, TcpRefusal};
pub use gate::{GateMode, GateRepo, TaskGate, gate_tools_missing};
pub use host::{GitIdentity, cdi_gpu_vendors, gpu_request, host_git_identity};
pub use images::{IMAGE_CHECK_TRUST, ImageChoice, ImageState, RemovedImages, SidecarChoice};
pub use kube::KubeTask;
pub use launch::options::{
    Egress, ImageSource, KrunOptions, Mode, RunEvent, RunOptions, TOOL_TIMEOUT_SECS, TaskRuntime,
    WebOptions,
};
pub use launch::{HOST_TIMEOUT_GRACE_SECS, OnRunEvent};
pub use launched::{
    CREDENTIAL_REJECTED_EXIT_CODE, INIT_COMPLETE, INTERRUPTED_EXIT_CODE, LaunchedTask,
    READY_MARKER, RunOutcome, STOP_GRACE_SECS, StopReason, TIMEOUT_EXIT_CODE, TaskEvent,
    WaitOptions,
};
pub use lifecycle::{Removed, TaskListing};
pub use listen::{RemoteRecord, TcpListen, TcpRecord};
pub use origin::origin_of;
pub use ownership::{RootfulTask, WorkspaceOwner};
pub use repo::{RepoSource, classify_repo};
pub use sandbox::{LABEL_SANDBOX, PreparedSandbox, SandboxCleanup, SandboxRequest};
pub use security_modules::{ModulePlan, SecurityModule};
pub use session::{Executor, ExecutorBuilder};
pub use settings_check::{EGRESS_OPEN, inert_settings};
pub use setup::SetupVerdict;
pub use shield::{
    ShieldChange, ShieldHook, ShieldStatus, missing_shield_tools, resolve_on_host, run_shield_hook,
};
pub use ssh::{KeyUsers, SshKeyInfo};
pub use storage::{ImageStorage, MountStorage, StorageReport, TaskStorage};
pub use stream::render_stream_json_line;
pub use task::{
    CONTAINER_PREFIX, TaskMode, TaskRecord, TaskStore, WebRecord, container_name, is_task_id,
    new_task_id,
};
pub use task_doctor::{CheckCategory, ContainerCheck, ProbeRule, container_checks};
pub use vault::{OpenListener, STANDALONE_SCOPE, ServeCommand, VaultClient, VaultLauncher};
pub use vault_service::{
    CleanReport, LeakedFile, RoutesWritten, SECRETS_ON_STDIN_VAR, VaultReport, VaultStart,
    receive_handed_secrets, running_containers, serve_vault, serve_vault_sidecar,
};
pub use vault_unit::{VAULT_UNIT, VaultUnit};
pub use web::{UI_CONTAINER_PORT, WebAccess, probe_ui};

// The lower layers' types that appear in this API, so a caller needs no other terok crate.
pub use krun::{GuestExec, KRUN_OCI_RUNTIME_VAR};
pub use terok_core::config::PackageFamily;
pub use terok_core::subids::{IdRange, IdReservation};
pub use terok_credentials::key::{KeyLink, KeySource, Sealed, Unlocked};
pub use terok_credentials::routes::{Route, RouteChange, RouteTable};
pub use terok_credentials::{CredentialSummary, TokenRecord};
pub use terok_gate::{BACKUP_PREFIX, Push};
pub use terok_image_build::{
    BuildEvent, BuildRequest, BuiltImage, BuiltImages, Layer, Runtime, RuntimeVersion, Unsuited,
};
pub use terok_krun::{GuestShell, KrunHost, KrunHostKeypair, KrunSupport};
pub use terok_kube::Manifests;
pub use terok_podman::userns::RootfulIds;
pub use terok_podman::{GpuRequest, LogLine, LogSource, PodmanCli, UserMapping};
pub use terok_roster::model::LogFormat;
pub use terok_roster::{
    AgentDefaults, AgentSettings, InstructionsConfig, InstructionsText, PerAgent,
    SubagentDefinition,
};
pub use terok_shield::live::{Denial, LiveSets};
pub use terok_shield::{Network, Policy, ShieldState};
pub use terok_vault::SidecarOptions;
pub use terok_vault::VaultConfig;
pub use terok_vault::control::{DaemonStatus, ServedRoutes};
pub use terok_vault::rejections::Rejection;

/// The errors of the lower layers an [`ExecutorError`] wraps, for callers that match on them.
pub mod errors {
    pub use terok_core::config::ConfigError;
    pub use terok_core::config::edit::ConfigEditError;
    pub use terok_core::secure_fs::SecureFsError;
    pub use terok_credentials::DbError;
    pub use terok_credentials::auth::AuthError;
    pub use terok_credentials::key::KeyError;
    pub use terok_credentials::routes::RoutesError;
    pub use terok_gate::GateError;
    pub use terok_image_build::{ImageBuildError, InstallCause};
    pub use terok_podman::PodmanError;
    pub use terok_roster::RosterError;
    pub use terok_shield::ShieldError;
    pub use terok_vault::VaultError;
    pub use terok_vault::control::ControlError;

    pub use crate::error::StopFailure;
}
