//! What every verb needs from the invocation: the host environment and the chosen config source.

use terok_core::config::{ConfigError, ConfigSource, LoadedConfig, load_config};
use terok_core::env::HostEnv;

use crate::args::GlobalArgs;

/// The invocation's environment, resolved once.
pub struct Context {
    /// The process environment.
    pub env: HostEnv,
    /// Which config files to read (`--config`, `--raw`, or the layers).
    pub config_source: ConfigSource,
}

impl Context {
    /// Captures the process environment and the global flags.
    pub fn new(global: &GlobalArgs) -> Self {
        Self {
            env: HostEnv::from_process(),
            config_source: ConfigSource::from_flags(global.config.clone(), global.raw),
        }
    }

    /// Loads and validates the configuration.
    pub fn load_config(&self) -> Result<LoadedConfig, ConfigError> {
        load_config(&self.config_source, &self.env)
    }
}
