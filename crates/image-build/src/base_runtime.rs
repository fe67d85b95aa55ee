//! The Node.js and Python that L1 installs on a known base (its distribution's `nodejs` and
//! `python3` packages), so a build can refuse, before podman runs, an entry that needs newer
//! ones. A base this table does not know is not judged: the entry's own install and smoke
//! check tell.

use std::fmt;

use terok_roster::Roster;

use crate::reference::split_reference;

/// A runtime an entry may need a minimum version of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Node.js (`install.min_node`), judged by major version.
    NodeJs,
    /// Python (`install.min_python`), judged by major and minor version.
    Python,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NodeJs => "Node.js",
            Self::Python => "Python",
        })
    }
}

/// A runtime version: a Node.js major (`minor` is `None`) or a Python `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuntimeVersion {
    /// Major version.
    pub major: u32,
    /// Minor version, where it matters.
    pub minor: Option<u32>,
}

impl RuntimeVersion {
    const fn node(major: u32) -> Self {
        Self { major, minor: None }
    }

    const fn python(major: u32, minor: u32) -> Self {
        Self {
            major,
            minor: Some(minor),
        }
    }
}

impl fmt::Display for RuntimeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            Some(minor) => write!(f, "{}.{minor}", self.major),
            None => write!(f, "{}", self.major),
        }
    }
}

/// A release this table knows, and what L1 installs on it.
struct Release {
    distribution: &'static str,
    /// The names and version numbers its image tags use.
    tags: &'static [&'static str],
    node: RuntimeVersion,
    /// `None`: not judged.
    python: Option<RuntimeVersion>,
}

const fn release(
    distribution: &'static str,
    tags: &'static [&'static str],
    node: u32,
    python: Option<(u32, u32)>,
) -> Release {
    Release {
        distribution,
        tags,
        node: RuntimeVersion::node(node),
        python: match python {
            Some((major, minor)) => Some(RuntimeVersion::python(major, minor)),
            None => None,
        },
    }
}

/// Debian's unstable moves: its Node.js is the oldest it has had since Node 22 entered it, and
/// its Python is not judged (it changes within a release cycle).
const KNOWN: &[Release] = &[
    release("debian", &["bookworm", "12"], 18, Some((3, 11))),
    release("debian", &["trixie", "13"], 20, Some((3, 13))),
    release("debian", &["sid", "unstable"], 22, None),
    release("ubuntu", &["jammy", "22.04"], 12, Some((3, 10))),
    release("ubuntu", &["noble", "24.04"], 18, Some((3, 12))),
    release("fedora", &["40"], 20, Some((3, 12))),
    release("fedora", &["41", "42"], 22, Some((3, 13))),
    release("fedora", &["43"], 22, Some((3, 14))),
];

/// The known release `base` names, when it is one.
fn release_of(base: &str) -> Option<&'static Release> {
    let (name, tag) = split_reference(base.trim());
    let distribution = name.rsplit('/').next()?.to_ascii_lowercase();
    let tag = tag?.to_ascii_lowercase();
    // `bookworm-slim`, `12.5`, `24.04` and `bookworm-20250101` name the same release.
    let release = tag.split('-').next()?;
    let release_major = release.split('.').next()?;
    KNOWN.iter().find(|known| {
        known.distribution == distribution
            && known
                .tags
                .iter()
                .any(|t| *t == release || *t == release_major)
    })
}

/// The version of `runtime` L1 installs on `base`, when the base is a known release.
pub fn runtime_on(base: &str, runtime: Runtime) -> Option<RuntimeVersion> {
    let known = release_of(base)?;
    match runtime {
        Runtime::NodeJs => Some(known.node),
        Runtime::Python => known.python,
    }
}

/// An entry that cannot work on a base: it needs a newer runtime than the base installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuited {
    /// The roster entry.
    pub agent: String,
    /// The runtime it needs a newer version of.
    pub runtime: Runtime,
    /// The oldest version it runs on (`install.min_node`, `install.min_python`).
    pub needs: RuntimeVersion,
    /// The base image.
    pub base: String,
    /// The version L1 installs on that base.
    pub base_has: RuntimeVersion,
}

impl fmt::Display for Unsuited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` needs {runtime} {} or newer; {} installs {runtime} {}",
            self.agent,
            self.needs,
            self.base,
            self.base_has,
            runtime = self.runtime,
        )
    }
}

/// The entries of `selection` that cannot work on `base`, in selection order (an entry that
/// needs newer Node.js and Python is listed once per runtime).
pub fn unsuited(roster: &Roster, base: &str, selection: &[String]) -> Vec<Unsuited> {
    let mut found = Vec::new();
    for name in selection {
        let Some(install) = roster.get(name).and_then(|a| a.install.as_ref()) else {
            continue;
        };
        let needs = [
            (Runtime::NodeJs, install.min_node.map(RuntimeVersion::node)),
            (
                Runtime::Python,
                install
                    .min_python
                    .map(|v| RuntimeVersion::python(v.major, v.minor)),
            ),
        ];
        for (runtime, needs) in needs {
            let (Some(needs), Some(base_has)) = (needs, runtime_on(base, runtime)) else {
                continue;
            };
            if needs > base_has {
                found.push(Unsuited {
                    agent: name.clone(),
                    runtime,
                    needs,
                    base: base.trim().to_owned(),
                    base_has,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_known_by_name_number_and_variant() {
        for (base, node, python) in [
            ("localhost/debian:bookworm", Some(18), Some("3.11")),
            (
                "docker.io/library/debian:bookworm-slim",
                Some(18),
                Some("3.11"),
            ),
            ("debian:12.5", Some(18), Some("3.11")),
            ("debian:trixie-20250101", Some(20), Some("3.13")),
            ("localhost/debian:sid", Some(22), None),
            ("ubuntu:24.04", Some(18), Some("3.12")),
            ("my.registry:5000/mirror/fedora:41", Some(22), Some("3.13")),
            ("debian", None, None),
            ("debian:forky", None, None),
            ("localhost/custom:bookworm", None, None),
        ] {
            let seen = (
                runtime_on(base, Runtime::NodeJs).map(|v| v.major),
                runtime_on(base, Runtime::Python).map(|v| v.to_string()),
            );
            assert_eq!(seen, (node, python.map(str::to_owned)), "{base}");
        }
    }

    #[test]
    fn python_minor_versions_compare_as_numbers() {
        assert!(RuntimeVersion::python(3, 10) > RuntimeVersion::python(3, 9));
        assert!(RuntimeVersion::python(3, 12) > RuntimeVersion::python(3, 11));
    }
}
