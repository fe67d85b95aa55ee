//! A task's shield directory (`<task dir>/shield/`): what the task may reach (`state.json`),
//! the ruleset the launch hook loads (`ruleset.nft`, always rendered from that state), and the
//! stamp the hook leaves once the ruleset is loaded and verified, which the
//! container checks before anything else runs in it.

use std::net::{IpAddr, SocketAddr};
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ingress_ports: Vec<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    host_services: Vec<SocketAddr>,
}

const STATE: &str = "state.json";
const RULESET: &str = "ruleset.nft";
/// The start permit: made by terok right before it starts the container, mounted into it,
/// taken (renamed) by the hook as its first step.
const PERMIT_DIR: &str = "stamp";
/// The permit once the hook took it: the same directory, still mounted in the container.
const TAKEN_DIR: &str = "stamp.taken";
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

    /// The start permit: the directory mounted read-only into the container (at
    /// [`crate::hook::STAMP_MOUNT`]). It exists only from terok's start of the container until
    /// the hook takes it, so a start without terok — without the hook — fails at its mounts.
    pub fn stamp_dir(&self) -> PathBuf {
        self.path.join(PERMIT_DIR)
    }

    /// The permit once the hook took it.
    fn taken_dir(&self) -> PathBuf {
        self.path.join(TAKEN_DIR)
    }

    /// The stamp: the network namespace the ruleset was loaded into.
    pub fn stamp_file(&self) -> PathBuf {
        self.taken_dir().join(STAMP)
    }

    /// Writes `state` and the ruleset rendered from it, each replaced whole.
    pub fn save(&self, state: &ShieldState) -> Result<(), ShieldError> {
        let write_err = |err: secure_fs::SecureFsError| ShieldError::Write {
            path: self.path.clone(),
            detail: err.to_string(),
        };
        secure_fs::ensure_private_dir(&self.path).map_err(write_err)?;
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
            ingress_ports: state.policy.ingress_ports.clone(),
            host_services: state.policy.host_services.clone(),
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
                ingress_ports: file.ingress_ports,
                host_services: file.host_services,
            },
            forwarder: file.forwarder,
        })
    }

    /// Right before terok starts the container: a fresh, empty permit (what an earlier start
    /// left is removed).
    pub fn prepare_start(&self) -> Result<(), ShieldError> {
        self.retire();
        // The container's users read the stamp through the read-only mount.
        secure_fs::ensure_dir_with_mode(&self.stamp_dir(), 0o755).map_err(|err| {
            ShieldError::Write {
                path: self.stamp_dir(),
                detail: err.to_string(),
            }
        })
    }

    /// The hook's first step: the permit taken, so no later start without the hook can mount
    /// it. The container, whose mounts are made already, keeps seeing it.
    pub fn take_permit(&self) -> Result<(), ShieldError> {
        fs_err::rename(self.stamp_dir(), self.taken_dir()).map_err(|err| ShieldError::Firewall {
            step: "taking the start permit (a shielded container is started by terok-executor)"
                .into(),
            detail: err.to_string(),
        })
    }

    /// Removes the permit and the stamp: when the container has stopped, or a start failed
    /// before the hook took the permit.
    pub fn retire(&self) {
        let _ = fs_err::remove_dir_all(self.taken_dir());
        let _ = fs_err::remove_dir_all(self.stamp_dir());
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
        // The permit: made, taken by the hook (once), stamped, and gone with the next start.
        assert!(
            shield.take_permit().is_err(),
            "no permit before terok's start"
        );
        shield.prepare_start().unwrap();
        shield.take_permit().unwrap();
        assert!(!shield.stamp_dir().exists());
        assert!(shield.take_permit().is_err(), "a permit is taken once");
        shield.write_stamp("net:[1] 42").unwrap();
        assert!(shield.stamp_file().is_file());
        shield.prepare_start().unwrap();
        assert!(!shield.stamp_file().exists() && shield.stamp_dir().is_dir());
    }

    #[test]
    fn a_damaged_state_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE), "{").unwrap();
        let err = ShieldDir::new(dir.path()).load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
