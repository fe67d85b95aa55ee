//! What can go wrong in the shield layer.

use std::path::PathBuf;

/// An error of the shield layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShieldError {
    /// A profile line that is neither a domain nor an address (block).
    #[error("{source_name} line {line}: `{text}` is not a domain, an address or an address/prefix")]
    ProfileLine {
        /// The file (or `bundled`).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
    },
    /// A profile name that is neither bundled nor a file of the user's.
    #[error("no shield profile `{name}` (profiles: {})", known.join(", "))]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// A profile file that exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A loaded ruleset that is not the one terok wrote.
    #[error("the firewall in the container's network namespace is not terok's: {0}")]
    NotLoaded(String),
    /// A file of the shield directory that cannot be written.
    #[error("cannot write {}: {detail}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A task's saved shield state that cannot be read or is damaged.
    #[error("cannot read the task's shield state {}: {detail}", path.display())]
    ReadState {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// What podman handed the launch hook is not what it expects.
    #[error("the shield hook's input: {0}")]
    HookInput(String),
    /// A step of loading or reading the firewall failed.
    #[error("{step}: {detail}")]
    Firewall {
        /// What was being done.
        step: String,
        /// What the tool said.
        detail: String,
    },
}
