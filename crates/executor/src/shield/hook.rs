//! The program podman runs as the shield's OCI hook, as a session is given it, and what that
//! program does.

use std::path::{Path, PathBuf};

use crate::error::ExecutorError;

/// The program (and arguments) podman runs as the shield's OCI hook: for the `terok-executor`
/// binary, `terok-executor shield hook`. It reads the container's state on stdin and calls
/// [`terok_shield::hook::load_into`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShieldHook {
    program: PathBuf,
    args: Vec<String>,
}

impl ShieldHook {
    /// `program` with `args`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

impl ShieldHook {
    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }
}

/// The shield's OCI hook, given the container state podman wrote to its stdin: loads the
/// task's ruleset into the container's network namespace, verifies it and stamps it. Returns
/// the stamp. Needs no session: podman runs it with an empty environment.
pub fn run_shield_hook(state_json: &str) -> Result<String, ExecutorError> {
    let container = terok_shield::hook::ContainerState::parse(state_json)?;
    Ok(terok_shield::hook::run(&container)?)
}
