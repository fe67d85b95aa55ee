//! Finding, validating and merging the config.yml layers.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::schema::{KNOWN_SECTIONS, TerokConfig};
use crate::env::HostEnv;
use crate::merge::deep_merge;
use crate::paths::{self, PathsError};
use crate::yaml::{self, YamlError};

/// Which config files to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `/etc/terok/config.yml` then the user's, unless `TEROK_CONFIG_FILE` names a single file.
    Layered,
    /// Only this file (`--config PATH`); it must exist.
    File(PathBuf),
    /// No file at all (`--raw`): built-in defaults only.
    Nothing,
}

impl ConfigSource {
    /// The source selected by the global `--config` / `--raw` flags.
    pub fn from_flags(config: Option<PathBuf>, raw: bool) -> Self {
        match (raw, config) {
            (true, _) => Self::Nothing,
            (false, Some(path)) => Self::File(path),
            (false, None) => Self::Layered,
        }
    }
}

/// One file that was (or would have been) read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLayer {
    /// Where the layer lives.
    pub path: PathBuf,
    /// Whether the file existed.
    pub present: bool,
}

/// The result of loading: the typed view plus the merged document it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed, validated configuration with defaults applied.
    pub config: TerokConfig,
    /// The merged document, including top-level sections this schema does not know.
    pub document: Value,
    /// The layers in the order they were merged.
    pub layers: Vec<ConfigLayer>,
}

impl LoadedConfig {
    /// The configuration with defaults filled in, followed by unknown top-level sections as
    /// they were written. This is what `show-config` prints.
    pub fn effective_document(&self) -> Result<Value, ConfigError> {
        let typed = serde_json::to_value(&self.config).map_err(|e| ConfigError::Merged {
            message: e.to_string(),
        })?;
        let mut out = match typed {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        if let Value::Object(doc) = &self.document {
            for (key, value) in doc {
                if !KNOWN_SECTIONS.contains(&key.as_str()) {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    /// A config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file named explicitly (`--config`, `TEROK_CONFIG_FILE`) does not exist.
    #[error("config file {} does not exist (named by {origin})", path.display())]
    #[diagnostic(code(terok::config::missing))]
    MissingExplicit {
        /// The file.
        path: PathBuf,
        /// `--config` or `TEROK_CONFIG_FILE`.
        origin: &'static str,
    },
    /// A layer is not valid YAML or does not match the schema.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] YamlError),
    /// The merged layers do not form a valid configuration.
    #[error("the merged config.yml layers are not a valid configuration: {message}")]
    Merged {
        /// What serde reported.
        message: String,
    },
    /// The config file locations could not be resolved.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Paths(#[from] PathsError),
}

/// Loads, validates and merges the configuration selected by `source`.
pub fn load_config(source: &ConfigSource, env: &HostEnv) -> Result<LoadedConfig, ConfigError> {
    let files: Vec<(PathBuf, Option<&'static str>)> = match source {
        ConfigSource::Nothing => Vec::new(),
        ConfigSource::File(path) => vec![(path.clone(), Some("--config"))],
        ConfigSource::Layered => match env.path_var(paths::vars::CONFIG_FILE) {
            Some(path) => vec![(path, Some(paths::vars::CONFIG_FILE))],
            None => {
                let (system, user) = paths::config_dirs(env)?;
                vec![
                    (system.join("config.yml"), None),
                    (user.join("config.yml"), None),
                ]
            }
        },
    };

    let mut merged = Value::Object(Map::new());
    let mut layers = Vec::with_capacity(files.len());
    for (path, explicit) in files {
        let text = match read_layer(&path, explicit)? {
            Some(text) => text,
            None => {
                layers.push(ConfigLayer {
                    path,
                    present: false,
                });
                continue;
            }
        };
        let layer = parse_layer(&text, &path)?;
        tracing::debug!(path = %path.display(), "merged config layer");
        merged = deep_merge(merged, layer);
        layers.push(ConfigLayer {
            path,
            present: true,
        });
    }

    let config: TerokConfig =
        serde_json::from_value(merged.clone()).map_err(|e| ConfigError::Merged {
            message: e.to_string(),
        })?;
    Ok(LoadedConfig {
        config,
        document: merged,
        layers,
    })
}

fn read_layer(path: &Path, explicit: Option<&'static str>) -> Result<Option<String>, ConfigError> {
    match fs_err::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == ErrorKind::NotFound => match explicit {
            Some(origin) => Err(ConfigError::MissingExplicit {
                path: path.to_path_buf(),
                origin,
            }),
            None => Ok(None),
        },
        Err(err) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source: err,
        }),
    }
}

/// Validates one layer against the schema (so errors point into this file) and returns its tree.
fn parse_layer(text: &str, path: &Path) -> Result<Value, ConfigError> {
    yaml::parse_typed::<TerokConfig>(text, path)?;
    match yaml::parse_value(text, path)? {
        Value::Null => Ok(Value::Object(Map::new())),
        value => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PackageFamily;
    use serde_json::json;

    struct Fixture {
        _dir: tempfile::TempDir,
        env: HostEnv,
        system: PathBuf,
        user: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("etc");
        let user = dir.path().join("home/.config/terok");
        std::fs::create_dir_all(&system).unwrap();
        std::fs::create_dir_all(&user).unwrap();
        let env = HostEnv::from_vars(
            [
                ("HOME", dir.path().join("home").into_os_string()),
                ("TEROK_SYSTEM_CONFIG_DIR", system.clone().into_os_string()),
            ],
            1000,
        );
        Fixture {
            _dir: dir,
            env,
            system: system.join("config.yml"),
            user: user.join("config.yml"),
        }
    }

    #[test]
    fn no_files_gives_defaults() {
        let f = fixture();
        let loaded = load_config(&ConfigSource::Layered, &f.env).unwrap();
        assert_eq!(loaded.config, TerokConfig::default());
        assert_eq!(loaded.config.image.base_image, "ubuntu:24.04");
        assert!(loaded.layers.iter().all(|l| !l.present));
    }

    #[test]
    fn user_layer_overrides_system_layer() {
        let f = fixture();
        std::fs::write(
            &f.system,
            "image:\n  base_image: fedora:44\n  agents: all\nvault:\n  port: 9000\n",
        )
        .unwrap();
        std::fs::write(
            &f.user,
            "image:\n  agents: claude\nvault:\n  port: null\ntui: {theme: dark}\n",
        )
        .unwrap();
        let loaded = load_config(&ConfigSource::Layered, &f.env).unwrap();
        assert_eq!(loaded.config.image.base_image, "fedora:44");
        assert_eq!(loaded.config.image.agents.as_deref(), Some("claude"));
        assert_eq!(loaded.config.vault.port, None);
        let effective = loaded.effective_document().unwrap();
        assert_eq!(effective["tui"], json!({"theme": "dark"}));
        assert_eq!(effective["network"]["port_range_start"], json!(18700));
    }

    #[test]
    fn config_file_env_replaces_the_layers() {
        let f = fixture();
        std::fs::write(&f.system, "image: {family: rpm}\n").unwrap();
        let only = f.user.with_file_name("only.yml");
        std::fs::write(&only, "image: {family: deb}\n").unwrap();
        let mut vars: Vec<(String, std::ffi::OsString)> = f
            .env
            .vars()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_owned()))
            .collect();
        vars.push(("TEROK_CONFIG_FILE".into(), only.clone().into_os_string()));
        let env = HostEnv::from_vars(vars, 1000);
        let loaded = load_config(&ConfigSource::Layered, &env).unwrap();
        assert_eq!(loaded.config.image.family, Some(PackageFamily::Deb));
        assert_eq!(loaded.layers.len(), 1);
    }

    #[test]
    fn raw_reads_nothing() {
        let f = fixture();
        std::fs::write(&f.user, "image: {family: rpm}\n").unwrap();
        let loaded = load_config(&ConfigSource::Nothing, &f.env).unwrap();
        assert_eq!(loaded.config.image.family, None);
        assert!(loaded.layers.is_empty());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let f = fixture();
        let err =
            load_config(&ConfigSource::File("/nonexistent/x.yml".into()), &f.env).unwrap_err();
        assert!(matches!(err, ConfigError::MissingExplicit { .. }), "{err}");
    }

    #[test]
    fn a_typo_in_a_known_section_points_into_its_file() {
        let f = fixture();
        std::fs::write(&f.user, "image:\n  base_image: x\n  familly: deb\n").unwrap();
        let err = load_config(&ConfigSource::Layered, &f.env).unwrap_err();
        let ConfigError::Invalid(yaml) = err else {
            panic!("wrong error: {err}")
        };
        assert_eq!(yaml.file, f.user);
        assert_eq!((yaml.line, yaml.column), (Some(3), Some(3)));
        assert_eq!(yaml.field_path.as_deref(), Some("image.familly"));
    }

    #[test]
    fn empty_sections_and_files_are_fine() {
        let f = fixture();
        std::fs::write(&f.system, "").unwrap();
        std::fs::write(&f.user, "image:\nshield:\n").unwrap();
        let loaded = load_config(&ConfigSource::Layered, &f.env).unwrap();
        assert_eq!(loaded.config, TerokConfig::default());
    }

    #[test]
    fn a_scalar_top_level_is_rejected() {
        let f = fixture();
        std::fs::write(&f.user, "just a string\n").unwrap();
        assert!(load_config(&ConfigSource::Layered, &f.env).is_err());
    }
}
