//! Tasks in KVM microVMs (podman's `krun` runtime), the host's side: whether this host can
//! start them, and a launch's context — the vault's `%host` keypair written for `ssh -i` and
//! the launch arguments (see terok-krun).

use std::path::Path;

use terok_krun::{KrunHost, KrunSupport, detect, ensure_host_keypair, installed_runtimes};
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::session::Executor;

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
}
