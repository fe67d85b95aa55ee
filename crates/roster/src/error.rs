//! Errors of the roster: located problems in roster files, and failed lookups.

use std::path::PathBuf;

use terok_core::yaml::YamlError;

/// Why the roster could not be loaded or a lookup failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RosterError {
    /// A roster file is not valid YAML, does not match the schema, or describes an entry that
    /// is incomplete or inconsistent.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] YamlError),
    /// Several such problems.
    #[error("{} problems in the agent roster", problems.len())]
    Problems {
        /// Each problem, located in its file.
        #[related]
        problems: Vec<YamlError>,
    },
    /// A roster directory or file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No entry of that name.
    #[error("unknown {what} `{name}`{}. Available: {}", suggestion_text(suggestion), available.join(", "))]
    Unknown {
        /// "agent", "auth provider", "sidecar tool".
        what: &'static str,
        /// The name asked for.
        name: String,
        /// Names that would have worked.
        available: Vec<String>,
        /// The closest available name.
        suggestion: Option<String>,
    },
    /// An agent selection (`--agents`, `agents set`, `image.agents`) is not satisfiable.
    #[error("{message}")]
    #[diagnostic(help("{help}"))]
    Selection {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },
    /// Two entries set the same auto-approve variable to different values.
    #[error(
        "auto_approve.env.{var} is `{first_value}` in {first} but `{second_value}` in {second}; \
         all agents share one container environment"
    )]
    AutoApproveConflict {
        /// The variable.
        var: String,
        /// First entry.
        first: String,
        /// Its value.
        first_value: String,
        /// Second entry.
        second: String,
        /// Its value.
        second_value: String,
    },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

impl RosterError {
    pub(crate) fn unknown(what: &'static str, name: &str, available: Vec<String>) -> Self {
        let suggestion = available
            .iter()
            .map(|a| (terok_core::yaml::edit_distance(name, a), a))
            .filter(|(d, a)| *d <= (a.len() / 3).max(2))
            .min()
            .map(|(_, a)| a.clone());
        Self::Unknown {
            what,
            name: name.to_owned(),
            available,
            suggestion,
        }
    }
}
