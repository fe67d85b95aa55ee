//! Allow-list profiles: named lists of destinations a task may reach — a domain, an address, or
//! an address with a prefix length, one per line, `#` starting a comment. Bundled profiles can
//! be replaced or added to by files of the same name in the user's profile directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::ShieldError;

/// The profiles bundled with terok, by name.
pub const BUNDLED: [(&str, &str); 5] = [
    ("base", include_str!("../profiles/base.txt")),
    ("dev-standard", include_str!("../profiles/dev-standard.txt")),
    ("dev-python", include_str!("../profiles/dev-python.txt")),
    ("dev-node", include_str!("../profiles/dev-node.txt")),
    ("nvidia-hpc", include_str!("../profiles/nvidia-hpc.txt")),
];

/// The profiles used when config.yml's `shield.profiles` names none.
pub const DEFAULT_PROFILES: [&str; 1] = ["dev-standard"];

/// An address block: an address and how many of its leading bits are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Network {
    /// The address (bits past the prefix are zero).
    pub addr: IpAddr,
    /// Leading bits that are fixed (32 or 128 for one address).
    pub prefix: u8,
}

impl Network {
    /// The block `addr/prefix`, with the bits past the prefix cleared; `None` when `prefix` is
    /// longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            _ => return None,
        };
        Some(Self { addr, prefix })
    }

    /// One address.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once('/') {
            Some((addr, prefix)) => Self::new(addr.parse().ok()?, prefix.parse().ok()?),
            None => text.parse().ok().map(Self::host),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One destination of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A host name, resolved when the policy is made.
    Domain(String),
    /// An address block.
    Network(Network),
}

/// A named list of destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name (`dev-python`).
    pub name: String,
    /// Where it was read from: a file, or `bundled` for terok's own.
    pub source: String,
    /// What it allows.
    pub destinations: Vec<Destination>,
}

impl Profile {
    /// Parses the text of profile `name` read from `source`.
    pub fn parse(name: &str, source: &str, text: &str) -> Result<Self, ShieldError> {
        let mut destinations = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let destination = if let Some(network) = Network::parse(line) {
                Destination::Network(network)
            } else if is_domain(line) {
                Destination::Domain(line.to_ascii_lowercase())
            } else {
                return Err(ShieldError::ProfileLine {
                    source_name: source.to_owned(),
                    line: index + 1,
                    text: line.to_owned(),
                });
            };
            if !destinations.contains(&destination) {
                destinations.push(destination);
            }
        }
        Ok(Self {
            name: name.to_owned(),
            source: source.to_owned(),
            destinations,
        })
    }

    /// Profile `name`: the user's `<user_dir>/<name>.txt` when there is one, else the bundled
    /// one of that name.
    pub fn load(name: &str, user_dir: &Path) -> Result<Self, ShieldError> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(ShieldError::UnknownProfile {
                name: name.to_owned(),
                known: known_names(user_dir),
            });
        }
        let user_file = user_dir.join(format!("{name}.txt"));
        match fs_err::read_to_string(&user_file) {
            Ok(text) => return Self::parse(name, &user_file.display().to_string(), &text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(ShieldError::Read {
                    path: user_file,
                    source: err,
                });
            }
        }
        let (_, text) = BUNDLED
            .iter()
            .find(|(bundled, _)| *bundled == name)
            .ok_or_else(|| ShieldError::UnknownProfile {
                name: name.to_owned(),
                known: known_names(user_dir),
            })?;
        Self::parse(name, "bundled", text)
    }

    /// The profiles `names` (the default set when empty), in order.
    pub fn load_all(names: &[String], user_dir: &Path) -> Result<Vec<Self>, ShieldError> {
        if names.is_empty() {
            return DEFAULT_PROFILES
                .iter()
                .map(|name| Self::load(name, user_dir))
                .collect();
        }
        names
            .iter()
            .map(|name| Self::load(name, user_dir))
            .collect()
    }
}

/// The bundled profile names and those of the user's files, sorted.
fn known_names(user_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = BUNDLED.iter().map(|(n, _)| (*n).to_owned()).collect();
    if let Ok(entries) = std::fs::read_dir(user_dir) {
        names.extend(entries.flatten().filter_map(|entry| {
            let path: PathBuf = entry.path();
            (path.extension()? == "txt").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        }));
    }
    names.sort();
    names.dedup();
    names
}

/// Whether `text` is a host name: dot-separated labels of letters, digits and inner hyphens.
pub(crate) fn is_domain(text: &str) -> bool {
    text.len() <= 253
        && text.contains('.')
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_profile_parses() {
        for (name, text) in BUNDLED {
            let profile = Profile::parse(name, "bundled", text).unwrap();
            assert!(!profile.destinations.is_empty(), "{name}");
        }
    }

    #[test]
    fn lines_are_domains_addresses_or_blocks_and_anything_else_is_refused() {
        let text = "# comment\nPyPI.org\n10.89.0.0/16 # a test network\n2001:db8::1\n\n";
        let profile = Profile::parse("mine", "mine.txt", text).unwrap();
        assert_eq!(
            profile.destinations,
            [
                Destination::Domain("pypi.org".into()),
                Destination::Network(Network::parse("10.89.0.0/16").unwrap()),
                Destination::Network(Network::host("2001:db8::1".parse().unwrap())),
            ]
        );
        let err = Profile::parse("mine", "mine.txt", "pypi.org\n10.0.0.0/33\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "mine.txt line 2: `10.0.0.0/33` is not a domain, an address or an address/prefix"
        );
        assert!(Profile::parse("mine", "mine.txt", "http://x.org\n").is_err());
    }

    #[test]
    fn a_block_keeps_only_its_prefix_bits() {
        let block = Network::parse("192.168.7.9/16").unwrap();
        assert_eq!(block.to_string(), "192.168.0.0/16");
        assert_eq!(
            Network::parse("fe80::1/10").unwrap().to_string(),
            "fe80::/10"
        );
    }

    #[test]
    fn a_users_file_replaces_the_bundled_profile_and_unknown_names_list_the_known() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev-node.txt"), "registry.example.org\n").unwrap();
        std::fs::write(dir.path().join("lab.txt"), "10.1.0.0/16\n").unwrap();
        let node = Profile::load("dev-node", dir.path()).unwrap();
        assert_eq!(
            node.destinations,
            [Destination::Domain("registry.example.org".into())]
        );
        assert!(Profile::load("lab", dir.path()).is_ok());
        let err = Profile::load("nope", dir.path()).unwrap_err();
        assert!(err.to_string().contains("lab"), "{err}");
        assert!(Profile::load("../etc/passwd", dir.path()).is_err());
        let default = Profile::load_all(&[], dir.path()).unwrap();
        assert_eq!(default[0].name, "dev-standard");
    }
}
