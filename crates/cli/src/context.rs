//! What every verb needs from the invocation: the global flags, the [`Executor`] session
//! (opened on first use), and the one async runtime of the process.

use std::cell::{Cell, OnceCell};
use std::ffi::OsString;

use terok_core::config::ConfigSource;
use terok_core::env::HostEnv;
use terok_executor::{Executor, ServeCommand, ShieldHook};

use crate::args::{Command, GlobalArgs, VaultCommand};

/// The invocation: flags, the session and the runtime, each made at most once.
pub struct Context {
    /// The process environment.
    pub env: HostEnv,
    /// `-v` count.
    pub verbose: u8,
    global: GlobalArgs,
    /// The subcommands this command tree is mounted under (empty for `terok-executor`).
    mount_path: Vec<String>,
    /// `vault serve` runs a daemon: it needs worker threads, and no memory of image checks.
    daemon: bool,
    executor: OnceCell<Executor>,
    runtime: OnceCell<tokio::runtime::Runtime>,
    warned: Cell<bool>,
}

impl Context {
    /// Captures the process environment and the global flags.
    pub fn new(global: GlobalArgs, mount_path: &[&str], command: &Command) -> Self {
        let daemon =
            matches!(command, Command::Vault(v) if matches!(v.command, VaultCommand::Serve(_)));
        let mut env = HostEnv::from_process();
        if daemon {
            // A daemon started by a session gets the vault key through a pipe, not its
            // environment.
            env = terok_executor::receive_handed_secrets(env, std::io::stdin().lock());
        }
        Self {
            env,
            verbose: global.verbose,
            global,
            mount_path: mount_path.iter().map(|s| (*s).to_owned()).collect(),
            daemon,
            executor: OnceCell::new(),
            runtime: OnceCell::new(),
            warned: Cell::new(false),
        }
    }

    /// Which config files to read (`--config`, `--raw`, or the layers).
    pub fn config_source(&self) -> ConfigSource {
        ConfigSource::from_flags(self.global.config.clone(), self.global.raw)
    }

    /// The session, opened on first use.
    pub fn executor(&self) -> miette::Result<&Executor> {
        if let Some(executor) = self.executor.get() {
            return Ok(executor);
        }
        let mut builder = Executor::builder(self.env.clone())
            .config(self.config_source())
            .connection(self.global.connection.clone())
            // One command is short-lived: a check followed by a build asks podman once.
            .remember_image_checks(!self.daemon)
            .vault_launcher(self.serve_command(&["vault", "serve"])?)
            .vault_sidecar_launcher(self.sidecar_command()?)
            .gate_launcher(self.serve_command(&["gate", "serve-task"])?)
            .acp_launcher(self.serve_command(&["acp"])?)
            .shield_hook(self.shield_hook()?);
        if let Ok(cwd) = std::env::current_dir() {
            builder = builder.cwd(cwd);
        }
        let executor = builder.build()?;
        Ok(self.executor.get_or_init(|| executor))
    }

    /// Loads the roster (a broken override file fails here, with its diagnostic) and prints
    /// its warnings, once.
    pub fn load_roster(&self) -> miette::Result<()> {
        let executor = self.executor()?;
        executor.roster()?;
        if !self.warned.replace(true) {
            for warning in executor.warnings() {
                crate::output::warn(warning);
            }
        }
        Ok(())
    }

    /// This very program, reached the way it was invoked, running `verb` (a service served in
    /// the foreground: the vault, a task's gate).
    fn serve_command(&self, verb: &[&str]) -> miette::Result<ServeCommand> {
        let program = std::env::current_exe()
            .map_err(|e| miette::miette!("cannot find this program's path: {e}"))?;
        let mut args: Vec<OsString> = self.mount_path.iter().map(OsString::from).collect();
        match self.config_source() {
            ConfigSource::File(path) => args.extend(["--config".into(), path.into_os_string()]),
            ConfigSource::Nothing => args.push("--raw".into()),
            ConfigSource::Layered => {}
        }
        if let Some(connection) = &self.global.connection {
            args.extend(["--connection".into(), connection.into()]);
        }
        args.extend(verb.iter().map(OsString::from));
        Ok(ServeCommand::new(program, args))
    }

    /// This very program serving a Pod's vault sidecar: the verb path only — this host's
    /// `--config` and `--connection` mean nothing in a Pod, and are not shown there.
    fn sidecar_command(&self) -> miette::Result<ServeCommand> {
        let program = std::env::current_exe()
            .map_err(|e| miette::miette!("cannot find this program's path: {e}"))?;
        let mut args: Vec<OsString> = self.mount_path.iter().map(OsString::from).collect();
        args.extend(["vault", "serve", "--sidecar"].map(OsString::from));
        Ok(ServeCommand::new(program, args))
    }

    /// This very program, as podman runs it for the shield's OCI hook.
    fn shield_hook(&self) -> miette::Result<ShieldHook> {
        let program = std::env::current_exe()
            .map_err(|e| miette::miette!("cannot find this program's path: {e}"))?;
        let mut args = self.mount_path.clone();
        args.extend(["shield".to_owned(), "hook".to_owned()]);
        Ok(ShieldHook::new(program, args))
    }

    /// Runs `future` to completion on the process's one async runtime (made on first use:
    /// single-threaded for a command, two workers for the vault daemon).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> miette::Result<F::Output> {
        if self.runtime.get().is_none() {
            let built = if self.daemon {
                // One worker: a request is handed between threads nowhere (no futex wake-ups,
                // no cross-thread unparking), which cost a second worker several times the
                // CPU of the proxying itself (cargo xtask bench). Multi-thread all the same,
                // so a database call that blocks moves the worker's other tasks to a new
                // thread (`block_in_place`) instead of stalling every container.
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))?;
            let _ = self.runtime.set(built);
        }
        let runtime = self
            .runtime
            .get()
            .ok_or_else(|| miette::miette!("the async runtime is gone"))?;
        Ok(runtime.block_on(future))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_mounted_tree_serves_the_vault_through_its_own_path() {
        let cli = crate::args::Cli::parse_from([
            "terok-executor",
            "--config",
            "/etc/x.yml",
            "--connection",
            "remote",
            "vault",
            "status",
        ]);
        let command = cli.command.unwrap();
        let ctx = Context::new(cli.global, &["executor"], &command);
        let launcher = ctx.serve_command(&["vault", "serve"]).unwrap();
        assert_eq!(
            launcher.args(),
            [
                "executor",
                "--config",
                "/etc/x.yml",
                "--connection",
                "remote",
                "vault",
                "serve"
            ]
            .map(OsString::from)
        );
        assert_eq!(launcher.program(), std::env::current_exe().unwrap());
    }
}
