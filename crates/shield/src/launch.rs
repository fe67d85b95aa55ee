//! What a launch needs from the shield: the task's state made from its profiles (domains
//! resolved on the host), and the podman arguments that have the hook load it — the
//! annotation that selects the hook, the stamp mount, the DNS server.

use std::net::IpAddr;

use terok_podman::{Sharing, VolumeSpec};

use crate::hook::{ANNOTATION, STAMP_MOUNT};
use crate::profile::{Destination, Profile};
use crate::ruleset::Policy;
use crate::state::{ShieldDir, ShieldState};

/// A task's shield state from `profiles`, each domain resolved by `resolve`.
pub fn state_from_profiles(
    profiles: &[Profile],
    audit: bool,
    resolve: &mut dyn FnMut(&str) -> Vec<IpAddr>,
) -> ShieldState {
    let mut policy = Policy::from_profiles(profiles, resolve);
    policy.audit = audit;
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
        domains,
        policy,
    }
}

/// The podman arguments of a shielded container, besides the hooks directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerArgs {
    /// `--annotation` pairs.
    pub annotations: Vec<(String, String)>,
    /// The stamp directory, read-only.
    pub volumes: Vec<VolumeSpec>,
    /// `--dns` servers (the configured upstream, when there is one).
    pub dns: Vec<String>,
}

/// The podman arguments that have the hook load `dir`'s ruleset.
pub fn container_args(dir: &ShieldDir, upstream_dns: Option<IpAddr>) -> ContainerArgs {
    ContainerArgs {
        annotations: vec![(ANNOTATION.to_owned(), dir.path().display().to_string())],
        volumes: vec![VolumeSpec {
            host: dir.stamp_dir(),
            container: STAMP_MOUNT.to_owned(),
            sharing: Sharing::Private,
            read_only: true,
        }],
        dns: upstream_dns.iter().map(IpAddr::to_string).collect(),
    }
}
