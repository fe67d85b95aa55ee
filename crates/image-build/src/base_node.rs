//! The Node.js that L1 installs on a known base (its distribution's `nodejs` package), so a
//! build can refuse, before podman runs, an entry that needs a newer one. A base this table
//! does not know is not judged: the entry's own install and smoke check tell.

use std::fmt;

use terok_roster::Roster;

use crate::reference::split_reference;

/// The Node.js major version each known release installs: (distribution, tags, major).
/// Debian's unstable moves; its entry is the oldest it has had since Node 22 entered it.
const KNOWN: &[(&str, &[&str], u32)] = &[
    ("debian", &["bookworm", "12"], 18),
    ("debian", &["trixie", "13"], 20),
    ("debian", &["sid", "unstable"], 22),
    ("ubuntu", &["jammy", "22.04"], 12),
    ("ubuntu", &["noble", "24.04"], 18),
    ("fedora", &["40"], 20),
    ("fedora", &["41", "42", "43"], 22),
];

/// The Node.js major version L1 installs on `base`, when the base is a known release.
pub fn node_major_on(base: &str) -> Option<u32> {
    let (name, tag) = split_reference(base.trim());
    let distribution = name.rsplit('/').next()?.to_ascii_lowercase();
    let tag = tag?.to_ascii_lowercase();
    // `bookworm-slim`, `12.5`, `24.04` and `bookworm-20250101` name the same release.
    let release = tag.split('-').next()?;
    let release_major = release.split('.').next()?;
    KNOWN
        .iter()
        .find(|(d, tags, _)| {
            *d == distribution && tags.iter().any(|t| *t == release || *t == release_major)
        })
        .map(|(_, _, major)| *major)
}

/// An entry that cannot work on a base: it needs a newer Node.js than the base installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuited {
    /// The roster entry.
    pub agent: String,
    /// The oldest Node.js major version it runs on (`install.min_node`).
    pub needs_node: u32,
    /// The base image.
    pub base: String,
    /// The Node.js major version L1 installs on that base.
    pub base_node: u32,
}

impl fmt::Display for Unsuited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` needs Node.js {} or newer; {} installs Node.js {}",
            self.agent, self.needs_node, self.base, self.base_node
        )
    }
}

/// The entries of `selection` that cannot work on `base`, in selection order.
pub fn unsuited(roster: &Roster, base: &str, selection: &[String]) -> Vec<Unsuited> {
    let Some(base_node) = node_major_on(base) else {
        return Vec::new();
    };
    selection
        .iter()
        .filter_map(|name| {
            let needs_node = roster.get(name)?.install.as_ref()?.min_node?;
            (needs_node > base_node).then(|| Unsuited {
                agent: name.clone(),
                needs_node,
                base: base.trim().to_owned(),
                base_node,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_known_by_name_number_and_variant() {
        for (base, major) in [
            ("localhost/debian:bookworm", Some(18)),
            ("docker.io/library/debian:bookworm-slim", Some(18)),
            ("debian:12.5", Some(18)),
            ("debian:trixie-20250101", Some(20)),
            ("localhost/debian:sid", Some(22)),
            ("ubuntu:24.04", Some(18)),
            ("my.registry:5000/mirror/fedora:41", Some(22)),
            ("debian", None),
            ("debian:forky", None),
            ("localhost/custom:bookworm", None),
        ] {
            assert_eq!(node_major_on(base), major, "{base}");
        }
    }
}
