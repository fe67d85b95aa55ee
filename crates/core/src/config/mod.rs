//! The layered `config.yml`: its strict typed sections and how the layers are found and merged.
//!
//! Layers are `/etc/terok/config.yml` then `~/.config/terok/config.yml`, or only the file named by
//! `TEROK_CONFIG_FILE` / `--config`, or none at all with `--raw`. Every layer is validated on its
//! own against the typed schema, so an error points into the file that has it; the layers are
//! then deep-merged with the `_inherit` / `null` rules of [`crate::merge`].

pub mod edit;
mod load;
mod schema;

pub use load::{ConfigError, ConfigLayer, ConfigSource, LoadedConfig, load_config};
pub use schema::{
    ContainerSection, CredentialsSection, DEFAULT_BASE_IMAGE, GateServerSection, ImageSection,
    KNOWN_SECTIONS, NetworkSection, PackageFamily, PathsSection, ServicesMode, ServicesSection,
    ShieldSection, SshSection, TaskRuntimeKind, TerokConfig, VaultSection,
};
