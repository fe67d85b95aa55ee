//! Tasks in KVM microVMs (podman's `krun` runtime), the host's side: whether this host can
//! start them, a launch's plan and context — the vault's `%host` keypair written for `ssh -i`,
//! the launch arguments (see terok-krun) — and the shell that reaches a task's guest.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use terok_acp::{BoxFuture, ExecTransport};
use terok_core::config::TaskRuntimeKind;
use terok_krun::{
    GuestShell, KRUN_RUNTIME, KrunHost, KrunSupport, OUTPUT_LIMIT, bounded_output, detect,
    ensure_host_keypair, installed_runtimes,
};
use terok_podman::{ContainerRuntime, ExecOutput};
use tokio::process::Child;

use crate::error::ExecutorError;
use crate::launch::options::{Egress, KrunOptions, Mode, RunOptions, TaskRuntime};
use crate::session::Executor;
use crate::task::{KrunRecord, TaskRecord};
use crate::web::reserve_port;

/// Starts krun guests with another OCI runtime than `krun` (`runc`): the same guest as a
/// plain container, for hosts without libkrun.
pub const KRUN_OCI_RUNTIME_VAR: &str = "TEROK_KRUN_OCI_RUNTIME";
/// The file in a task's private directory that remembers its guest's SSH host key.
const KNOWN_HOSTS_FILE: &str = "krun_known_hosts";

impl<R: ContainerRuntime> Executor<R> {
    /// Whether this host can start krun microVMs (the runtime, `/dev/kvm`), and what is
    /// missing.
    pub fn krun_support(&self) -> KrunSupport {
        detect(&installed_runtimes(), Path::new("/dev/kvm"))
    }

    /// A krun launch's context: the `%host` keypair (made in the vault on first use) written
    /// to `$XDG_RUNTIME_DIR/terok/`.
    pub fn krun_host(&self) -> Result<KrunHost, ExecutorError> {
        let db = self.open_db()?;
        let runtime_dir = self.env.path_var("XDG_RUNTIME_DIR");
        let keypair = ensure_host_keypair(&db, runtime_dir.as_deref())?;
        Ok(KrunHost::new(keypair))
    }

    /// How krun guests start here: with `krun`, or the runtime `TEROK_KRUN_OCI_RUNTIME` names.
    pub fn krun_options(&self) -> KrunOptions {
        let mut options = KrunOptions::default();
        if let Some(runtime) = self
            .env
            .var_str(KRUN_OCI_RUNTIME_VAR)
            .filter(|r| !r.is_empty())
        {
            runtime.clone_into(&mut options.oci_runtime);
        }
        options
    }

    /// What a launch that asked for `asked` runs in (`None`: as config.yml's
    /// `container.runtime` says).
    pub fn task_runtime(&self, asked: Option<&TaskRuntime>) -> TaskRuntime {
        match asked {
            Some(runtime) => runtime.clone(),
            None => match self.config.config.container.runtime {
                TaskRuntimeKind::Podman => TaskRuntime::Podman,
                TaskRuntimeKind::Krun => TaskRuntime::Krun(self.krun_options()),
            },
        }
    }

    /// A krun launch's guest: refused in the modes that need `podman exec`, without a network,
    /// or — for the `krun` runtime itself — on a host that cannot start microVMs; its SSH
    /// port reserved on 127.0.0.1.
    pub(crate) fn plan_krun(
        &self,
        options: &RunOptions,
        egress: Egress,
    ) -> Result<Option<KrunRecord>, ExecutorError> {
        let TaskRuntime::Krun(krun) = self.task_runtime(options.runtime.as_ref()) else {
            return Ok(None);
        };
        match options.mode {
            Mode::Headless { .. } | Mode::Interactive { .. } => {}
            Mode::Web(_) => return Err(ExecutorError::KrunModeUnsupported { mode: "web" }),
            Mode::Tool { .. } => return Err(ExecutorError::KrunModeUnsupported { mode: "tool" }),
        }
        if egress == Egress::Offline {
            return Err(ExecutorError::KrunNeedsNetwork);
        }
        if krun.oci_runtime == KRUN_RUNTIME
            && let KrunSupport::Missing(missing) = self.krun_support()
        {
            return Err(ExecutorError::KrunUnavailable { missing });
        }
        Ok(Some(KrunRecord {
            oci_runtime: krun.oci_runtime,
            ssh_port: reserve_port(None)?,
        }))
    }

    /// The shell that reaches the guest of `record` (`None`: not a krun task).
    pub fn guest_shell(&self, record: &TaskRecord) -> Result<Option<GuestShell>, ExecutorError> {
        let Some(krun) = &record.krun else {
            return Ok(None);
        };
        let host = self.krun_host()?;
        let layout = self.task_store().layout(&record.id);
        Ok(Some(guest_shell(krun, &host, &layout.private_dir())))
    }
}

/// The shell that reaches the guest of `krun` with `host`'s key, its host key remembered in
/// the task's `private_dir`.
pub(crate) fn guest_shell(krun: &KrunRecord, host: &KrunHost, private_dir: &Path) -> GuestShell {
    let known_hosts: PathBuf = private_dir.join(KNOWN_HOSTS_FILE);
    GuestShell::new(krun.ssh_port, &host.keypair.private_key, &known_hosts)
}

/// Commands in a krun guest over SSH, in the task's environment: how the ACP proxy starts
/// agents' servers (and ends what they left) where `podman exec` cannot reach.
pub struct GuestExec(pub GuestShell);

impl GuestExec {
    /// ssh running `argv` in the guest's task environment.
    fn command(&self, argv: &[String]) -> tokio::process::Command {
        let line: Vec<String> = argv.iter().map(|a| terok_roster::shell_quote(a)).collect();
        tokio::process::Command::from(self.0.task_command(&line.join(" ")))
    }
}

impl ExecTransport for GuestExec {
    fn exec_piped(&self, argv: &[String]) -> Result<Child, String> {
        self.command(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run ssh: {e}"))
    }

    fn exec<'a>(&'a self, argv: &'a [String]) -> BoxFuture<'a, Result<ExecOutput, String>> {
        Box::pin(async move {
            bounded_output(self.command(argv), OUTPUT_LIMIT)
                .await
                .map_err(|e| format!("cannot run ssh: {e}"))
        })
    }

    fn describe(&self) -> String {
        format!("the krun guest on 127.0.0.1:{}", self.0.port)
    }
}
