//! What a launch needs from the shield: the task's state made from its profiles (domains
//! resolved on the host), and the podman arguments that have the hook load it — the
//! annotation that selects the hook, the stamp mount, the DNS server.

use std::net::IpAddr;

use std::path::{Path, PathBuf};

use terok_podman::{RunSpec, Sharing, VolumeSpec};

use crate::hook::{ANNOTATION, STAMP_MOUNT, guarded_command};
use crate::profile::{Destination, Profile};
use crate::ruleset::Policy;
use crate::state::{ShieldDir, ShieldState};

/// A task's shield state from `profiles`, each domain resolved by `resolve`.
pub fn state_from_profiles(
    profiles: &[Profile],
    settings: &Settings,
    resolve: &mut dyn FnMut(&str) -> Vec<IpAddr>,
) -> ShieldState {
    let mut policy = Policy::from_profiles(profiles, resolve);
    policy.audit = settings.audit;
    policy.resolvers = settings.upstream_dns.into_iter().collect();
    let mut domains: Vec<String> = profiles
        .iter()
        .flat_map(|p| &p.destinations)
        .filter_map(|d| match d {
            Destination::Domain(domain) => Some(domain.clone()),
            Destination::Network(_) => None,
        })
        .collect();
    domains.sort();
    domains.dedup();
    ShieldState {
        profiles: profiles.iter().map(|p| p.name.clone()).collect(),
        forwarder: settings.forwarder && !domains.is_empty(),
        domains,
        policy,
    }
}

/// How config.yml's `shield:` section and the host shape a task's firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Remember and log refused traffic (`shield.audit`, default on).
    pub audit: bool,
    /// The name server DNS goes to (`shield.upstream_dns`); default: the container's own.
    pub upstream_dns: Option<IpAddr>,
    /// Start the DNS forwarder that keeps the domains' addresses current (when this host's
    /// dnsmasq can).
    pub forwarder: bool,
}

/// The podman arguments of a shielded container, besides the hooks directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerArgs {
    /// `--annotation` pairs.
    pub annotations: Vec<(String, String)>,
    /// The stamp directory, read-only.
    pub volumes: Vec<VolumeSpec>,
    /// `--dns` servers (the configured upstream, when there is no forwarder to take it).
    pub dns: Vec<String>,
    /// The directory of the hook's definition (`--hooks-dir`).
    pub hooks_dir: PathBuf,
}

impl ContainerArgs {
    /// Makes `spec` a shielded container running `shell_command` (a login shell's command
    /// line) behind the stamp check ([`guarded_command`]), with these arguments.
    pub fn apply(&self, spec: &mut RunSpec, shell_command: &str) {
        spec.command = guarded_command(shell_command);
        spec.annotations.extend(self.annotations.iter().cloned());
        spec.volumes.extend(self.volumes.iter().cloned());
        spec.dns.extend(self.dns.iter().cloned());
        spec.hooks_dirs.push(self.hooks_dir.clone());
    }
}

/// The podman arguments that have the hook in `hooks_dir` load `dir`'s ruleset (with
/// `state`'s DNS server: the forwarder's upstream when there is one, else the container's).
pub fn container_args(dir: &ShieldDir, state: &ShieldState, hooks_dir: &Path) -> ContainerArgs {
    let dns = if state.forwarder {
        Vec::new()
    } else {
        state
            .policy
            .resolvers
            .iter()
            .map(IpAddr::to_string)
            .collect()
    };
    ContainerArgs {
        annotations: vec![(ANNOTATION.to_owned(), dir.path().display().to_string())],
        volumes: vec![VolumeSpec {
            host: dir.stamp_dir(),
            container: STAMP_MOUNT.to_owned(),
            sharing: Sharing::Private,
            read_only: true,
        }],
        dns,
        hooks_dir: hooks_dir.to_path_buf(),
    }
}
