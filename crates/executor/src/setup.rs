//! The setup stamp through the executor: what a launch checks first (a first run, an update,
//! a downgrade), what `setup` records and `uninstall` takes back.

use std::path::PathBuf;

use terok_core::setup_stamp;
pub use terok_core::setup_stamp::SetupVerdict;
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::session::Executor;

impl<R: ContainerRuntime> Executor<R> {
    /// What the setup stamp says about this version: [`SetupVerdict::Current`] once `setup`
    /// completed with it.
    pub fn setup_verdict(&self) -> SetupVerdict {
        setup_stamp::verdict(&self.paths().setup_stamp())
    }

    /// Records that `setup` completed with this version; returns the stamp's path.
    pub fn record_setup(&self) -> Result<PathBuf, ExecutorError> {
        let path = self.paths().setup_stamp();
        setup_stamp::record(
            &path,
            &terok_core::time::rfc3339(terok_core::time::unix_now()),
        )?;
        Ok(path)
    }

    /// Takes this version's record out of the setup stamp (the next launch needs `setup`).
    pub fn forget_setup(&self) -> Result<(), ExecutorError> {
        Ok(setup_stamp::forget(&self.paths().setup_stamp())?)
    }
}
