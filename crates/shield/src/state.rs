//! A task's shield directory (`<task dir>/shield/`): what the task may reach (`state.json`),
//! the ruleset the launch hook loads (`ruleset.nft`, always rendered from that state), and the
//! stamp the hook leaves once the ruleset is loaded and verified (`stamp/applied`), which the
//! container checks before anything else runs in it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use terok_core::secure_fs;

use crate::error::ShieldError;
use crate::profile::Network;
use crate::ruleset::{Policy, ruleset};

/// The files of one task's shield.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShieldDir {
    path: PathBuf,
}

/// What a task may reach, as saved for the hook, live changes and `shield status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShieldState {
    /// The profiles it was made from.
    pub profiles: Vec<String>,
    /// The profiles' domains (their addresses are in the policy).
    pub domains: Vec<String>,
    /// The policy, with every live `allow` and `deny` applied.
    pub policy: Policy,
    /// Whether the hook starts the DNS forwarder that keeps the domains' addresses current.
    pub forwarder: bool,
}

/// `state.json` on disk.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    profiles: Vec<String>,
    domains: Vec<String>,
    allowed: Vec<String>,
    denied: Vec<String>,
    resolvers: Vec<IpAddr>,
    audit: bool,
    #[serde(default)]
    forwarder: bool,
}

const STATE: &str = "state.json";
const RULESET: &str = "ruleset.nft";
const STAMP_DIR: &str = "stamp";
const STAMP: &str = "applied";

impl ShieldDir {
    /// The shield directory `path` (`<task dir>/shield`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ruleset file the hook loads.
    pub fn ruleset_file(&self) -> PathBuf {
        self.path.join(RULESET)
    }

    /// The directory mounted read-only into the container, holding the hook's stamp.
    pub fn stamp_dir(&self) -> PathBuf {
        self.path.join(STAMP_DIR)
    }

    /// The stamp: the network namespace the ruleset was loaded into.
    pub fn stamp_file(&self) -> PathBuf {
        self.stamp_dir().join(STAMP)
    }

    /// Writes `state` and the ruleset rendered from it, each replaced whole.
    pub fn save(&self, state: &ShieldState) -> Result<(), ShieldError> {
        let write_err = |err: secure_fs::SecureFsError| ShieldError::Write {
            path: self.path.clone(),
            detail: err.to_string(),
        };
        secure_fs::ensure_private_dir(&self.path).map_err(write_err)?;
        // The container's users read the stamp through a read-only mount.
        secure_fs::ensure_dir_with_mode(&self.stamp_dir(), 0o755).map_err(write_err)?;
        let file = StateFile {
            profiles: state.profiles.clone(),
            domains: state.domains.clone(),
            allowed: state
                .policy
                .allowed
                .iter()
                .map(Network::to_string)
                .collect(),
            denied: state.policy.denied.iter().map(Network::to_string).collect(),
            resolvers: state.policy.resolvers.clone(),
            audit: state.policy.audit,
            forwarder: state.forwarder,
        };
        let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
        secure_fs::write_atomic(&self.path.join(STATE), &json, 0o600).map_err(write_err)?;
        let rules = ruleset(&state.policy);
        secure_fs::write_atomic(&self.ruleset_file(), rules.as_bytes(), 0o600).map_err(write_err)
    }

    /// Reads the saved state.
    pub fn load(&self) -> Result<ShieldState, ShieldError> {
        let path = self.path.join(STATE);
        let bytes = secure_fs::read_nofollow(&path).map_err(|source| ShieldError::ReadState {
            path: path.clone(),
            detail: source.to_string(),
        })?;
        let file: StateFile =
            serde_json::from_slice(&bytes).map_err(|e| ShieldError::ReadState {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        // The domains go into the forwarder's configuration: nothing but host names.
        if let Some(bad) = file.domains.iter().find(|d| !crate::profile::is_domain(d)) {
            return Err(ShieldError::ReadState {
                path: path.clone(),
                detail: format!("`{bad}` is not a domain"),
            });
        }
        let networks = |texts: &[String]| -> Result<Vec<Network>, ShieldError> {
            texts
                .iter()
                .map(|text| {
                    Network::parse(text).ok_or_else(|| ShieldError::ReadState {
                        path: path.clone(),
                        detail: format!("`{text}` is not an address block"),
                    })
                })
                .collect()
        };
        Ok(ShieldState {
            profiles: file.profiles,
            domains: file.domains,
            policy: Policy {
                allowed: networks(&file.allowed)?,
                denied: networks(&file.denied)?,
                resolvers: file.resolvers,
                audit: file.audit,
            },
            forwarder: file.forwarder,
        })
    }

    /// Before the container starts: the stamp directory there (the container mounts it) and
    /// empty (the hook writes the stamp when it has loaded the rules).
    pub fn prepare_start(&self) -> Result<(), ShieldError> {
        secure_fs::ensure_dir_with_mode(&self.stamp_dir(), 0o755).map_err(|err| {
            ShieldError::Write {
                path: self.stamp_dir(),
                detail: err.to_string(),
            }
        })?;
        self.clear_stamp()
    }

    /// When the container has stopped: the stamp directory removed, so that a start other
    /// than terok's (which makes it again) fails at its mounts before anything runs.
    pub fn retire_stamp_dir(&self) {
        let _ = self.clear_stamp();
        let _ = fs_err::remove_dir(self.stamp_dir());
    }

    /// Removes the stamp of an earlier start (a missing one is fine): the hook writes a new
    /// one when it has loaded the rules.
    pub fn clear_stamp(&self) -> Result<(), ShieldError> {
        match fs_err::remove_file(self.stamp_file()) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(ShieldError::Write {
                path: self.stamp_file(),
                detail: err.to_string(),
            }),
        }
    }

    /// Records that the ruleset is loaded in network namespace `netns` (`net:[4026532…]`).
    pub fn write_stamp(&self, netns: &str) -> Result<(), ShieldError> {
        secure_fs::write_atomic(&self.stamp_file(), netns.as_bytes(), 0o644).map_err(|err| {
            ShieldError::Write {
                path: self.stamp_file(),
                detail: err.to_string(),
            }
        })
    }
}

impl ShieldState {
    /// Allows `network` from now on: out of the denied blocks, into the allowed ones.
    pub fn allow(&mut self, network: Network) {
        self.policy.denied.retain(|n| *n != network);
        if !self.policy.allowed.contains(&network) {
            self.policy.allowed.push(network);
            self.policy.allowed.sort();
        }
    }

    /// Refuses `network` from now on, even where a profile allows it.
    pub fn deny(&mut self, network: Network) {
        self.policy.allowed.retain(|n| *n != network);
        if !self.policy.denied.contains(&network) {
            self.policy.denied.push(network);
            self.policy.denied.sort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_round_trip_and_the_ruleset_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let shield = ShieldDir::new(dir.path().join("shield"));
        let mut state = ShieldState {
            profiles: vec!["dev-python".into()],
            domains: vec!["pypi.org".into()],
            policy: Policy {
                allowed: vec![Network::parse("151.101.0.223").unwrap()],
                audit: true,
                ..Policy::default()
            },
            forwarder: true,
        };
        state.deny(Network::parse("151.101.0.223").unwrap());
        state.allow(Network::parse("10.89.0.0/24").unwrap());
        shield.save(&state).unwrap();
        assert_eq!(shield.load().unwrap(), state);
        let rules = std::fs::read_to_string(shield.ruleset_file()).unwrap();
        assert!(rules.contains("elements = { 10.89.0.0/24 }"), "{rules}");
        shield.write_stamp("net:[1]").unwrap();
        shield.clear_stamp().unwrap();
        assert!(!shield.stamp_file().exists());
    }

    #[test]
    fn a_damaged_state_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE), "{").unwrap();
        let err = ShieldDir::new(dir.path()).load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
