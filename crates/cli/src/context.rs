//! What every verb needs from the invocation: the host environment, the chosen config source,
//! and (loaded on first use) the configuration, paths and roster.

use std::cell::OnceCell;

use terok_core::config::{ConfigSource, LoadedConfig, load_config};
use terok_core::env::HostEnv;
use terok_core::paths::TerokPaths;
use terok_roster::{Roster, RosterLoader};

use crate::args::GlobalArgs;

/// The invocation's environment, resolved lazily and at most once.
pub struct Context {
    /// The process environment.
    pub env: HostEnv,
    /// Which config files to read (`--config`, `--raw`, or the layers).
    pub config_source: ConfigSource,
    /// `-v` count.
    pub verbose: u8,
    /// `--connection`.
    pub connection: Option<String>,
    config: OnceCell<LoadedConfig>,
    paths: OnceCell<TerokPaths>,
    roster: OnceCell<Roster>,
}

impl Context {
    /// Captures the process environment and the global flags.
    pub fn new(global: &GlobalArgs) -> Self {
        Self {
            env: HostEnv::from_process(),
            config_source: ConfigSource::from_flags(global.config.clone(), global.raw),
            verbose: global.verbose,
            connection: global.connection.clone(),
            config: OnceCell::new(),
            paths: OnceCell::new(),
            roster: OnceCell::new(),
        }
    }

    /// The validated, merged configuration.
    pub fn config(&self) -> miette::Result<&LoadedConfig> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let loaded = load_config(&self.config_source, &self.env)?;
        Ok(self.config.get_or_init(|| loaded))
    }

    /// Host paths (they depend on `paths.root` in the configuration).
    pub fn paths(&self) -> miette::Result<&TerokPaths> {
        if let Some(paths) = self.paths.get() {
            return Ok(paths);
        }
        let root = self.config()?.config.paths.root.clone();
        let paths = TerokPaths::resolve(&self.env, root.as_deref())?;
        Ok(self.paths.get_or_init(|| paths))
    }

    /// The roster: bundled entries with the system and user overrides. Load warnings are
    /// printed once, here.
    pub fn roster(&self) -> miette::Result<&Roster> {
        if let Some(roster) = self.roster.get() {
            return Ok(roster);
        }
        let roster = RosterLoader::for_paths(self.paths()?).load()?;
        for warning in roster.warnings() {
            eprintln!("warning: {warning}");
        }
        Ok(self.roster.get_or_init(|| roster))
    }

    /// The vault's files and sockets.
    pub fn vault_paths(&self) -> miette::Result<terok_vault::VaultPaths> {
        let mut paths = terok_vault::VaultPaths::from_terok(self.paths()?);
        paths.db_override = self
            .config()?
            .config
            .credentials
            .db_path
            .as_ref()
            .map(|p| terok_core::paths::expand_tilde(p, &self.env));
        Ok(paths)
    }

    /// Where the credential key comes from.
    pub fn key_options(&self) -> miette::Result<terok_credentials::KeyOptions> {
        let mut options =
            terok_credentials::KeyOptions::new(self.vault_paths()?.vault_dir, self.env.clone());
        options.passphrase_command = self.config()?.config.credentials.passphrase_command.clone();
        Ok(options)
    }

    /// Opens the credential database (creating it and its key on first use).
    pub fn open_db(&self) -> miette::Result<terok_credentials::CredentialDb> {
        let paths = self.vault_paths()?;
        let (key, source) = terok_credentials::resolve_key(&self.key_options()?, &paths.db())?;
        Ok(terok_credentials::CredentialDb::open(
            &paths.db(),
            key,
            &source.to_string(),
        )?)
    }

    /// Opens the credential database if it exists (read-only verbs must not create it).
    pub fn open_existing_db(&self) -> miette::Result<Option<terok_credentials::CredentialDb>> {
        if !self.vault_paths()?.db().exists() {
            return Ok(None);
        }
        self.open_db().map(Some)
    }

    /// The podman runtime, honouring `--connection`. One invocation is short-lived, so image
    /// inspections are remembered (preflight and the build check ask podman once).
    pub fn podman(&self) -> terok_podman::PodmanCli {
        terok_podman::PodmanCli::new()
            .with_connection(self.connection.clone())
            .with_image_memo()
    }

    /// Runs a future to completion on a single-threaded runtime (the CLI does one thing at a time).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> miette::Result<F::Output> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))?;
        Ok(runtime.block_on(future))
    }

    /// The config file that writes go to: `--config`, else `TEROK_CONFIG_FILE`, else the user's.
    pub fn writable_config_file(&self) -> miette::Result<std::path::PathBuf> {
        match &self.config_source {
            ConfigSource::File(path) => Ok(path.clone()),
            ConfigSource::Nothing => Err(miette::miette!(
                help = "drop --raw, or name the file with --config PATH",
                "--raw reads no config file, so there is none to write to"
            )),
            ConfigSource::Layered => {
                match self.env.path_var(terok_core::paths::vars::CONFIG_FILE) {
                    Some(path) => Ok(path),
                    None => Ok(self.paths()?.user_config_file()),
                }
            }
        }
    }
}
