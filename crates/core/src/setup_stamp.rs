//! The setup stamp (`<root>/setup.stamp`): which version of terok last completed `setup`, so
//! a launch can tell a first run, an update and a downgrade apart before it starts anything.
//!
//! The file is the Python terok-executor's: `{"version": 1, "completed_at": …, "packages":
//! {name: version}}`. Ours records one package, [`PACKAGE`]; the Python packages a stamp may
//! also hold (`terok-executor`, `terok-sandbox`, `terok-shield`) are kept as they are when we
//! write it and never compared — their versions count differently from ours, so comparing
//! them would call every user who comes from Python a downgrade.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::secure_fs::{self, SecureFsError};

/// The package this implementation records in the stamp.
pub const PACKAGE: &str = "terok-executor-rs";
/// Its version: the one this binary was built as.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The stamp's format version.
const FORMAT: u32 = 1;
/// The largest stamp read (a few package names and versions).
const STAMP_LIMIT: u64 = 64 * 1024;

/// What the stamp says about this installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupVerdict {
    /// `setup` ran at this version.
    Current,
    /// No stamp, or one without this implementation's package (`setup` never ran here).
    FirstRun,
    /// `setup` last ran at an older version.
    Updated {
        /// The version the stamp records.
        stamped: String,
    },
    /// The stamp cannot be read or parsed.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// `setup` last ran at a newer version than this binary.
    Downgraded {
        /// The version the stamp records.
        stamped: String,
    },
}

impl SetupVerdict {
    /// Whether a launch may go on.
    pub fn is_current(&self) -> bool {
        matches!(self, Self::Current)
    }
}

/// The stamp's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stamp {
    version: u32,
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    packages: BTreeMap<String, String>,
}

/// What the stamp at `path` says about this binary.
pub fn verdict(path: &Path) -> SetupVerdict {
    let stamp = match read(path) {
        Ok(None) => return SetupVerdict::FirstRun,
        Ok(Some(stamp)) => stamp,
        Err(reason) => return SetupVerdict::Unreadable { reason },
    };
    let Some(stamped) = stamp.packages.get(PACKAGE) else {
        return SetupVerdict::FirstRun;
    };
    match compare_versions(stamped, VERSION) {
        Ordering::Equal => SetupVerdict::Current,
        Ordering::Less => SetupVerdict::Updated {
            stamped: stamped.clone(),
        },
        Ordering::Greater => SetupVerdict::Downgraded {
            stamped: stamped.clone(),
        },
    }
}

/// Records that `setup` completed at this version, `now` being an RFC 3339 time; other
/// packages already in the stamp are kept. An unreadable stamp is replaced.
pub fn record(path: &Path, now: &str) -> Result<(), SecureFsError> {
    let mut stamp = read(path).ok().flatten().unwrap_or_default();
    stamp.version = FORMAT;
    stamp.completed_at = Some(now.to_owned());
    stamp
        .packages
        .insert(PACKAGE.to_owned(), VERSION.to_owned());
    let mut text = serde_json::to_string_pretty(&stamp).unwrap_or_default();
    text.push('\n');
    write(path, text.as_bytes())
}

/// Removes this implementation's package from the stamp (the file goes when nothing else is
/// in it). Nothing to remove is not an error.
pub fn forget(path: &Path) -> Result<(), SecureFsError> {
    // An unreadable stamp (or none) is simply removed.
    let Ok(Some(mut stamp)) = read(path) else {
        return secure_fs::remove_file(path);
    };
    stamp.packages.remove(PACKAGE);
    if stamp.packages.is_empty() {
        return secure_fs::remove_file(path);
    }
    let mut text = serde_json::to_string_pretty(&stamp).unwrap_or_default();
    text.push('\n');
    write(path, text.as_bytes())
}

fn write(path: &Path, contents: &[u8]) -> Result<(), SecureFsError> {
    // The state root may be a link the user made (to another disk): used as it is, made only
    // when missing.
    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
        secure_fs::create_dir_if_missing(parent, 0o700)?;
    }
    secure_fs::write_atomic(path, contents, 0o644)
}

/// The stamp, `None` when there is none; `Err` says why it cannot be used.
fn read(path: &Path) -> Result<Option<Stamp>, String> {
    let bytes = match secure_fs::read_nofollow_limited(path, STAMP_LIMIT) {
        Ok(bytes) => bytes,
        Err(SecureFsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(err) => return Err(err.to_string()),
    };
    serde_json::from_slice::<Stamp>(&bytes)
        .map(Some)
        .map_err(|err| format!("{}: {err}", path.display()))
}

/// Orders two versions by their dotted numeric parts (`0.10.0` after `0.9.3`); a part that is
/// not a number counts as 0, and a pre-release suffix (`-rc.1`) is ignored.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['-', '+'])
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stamp_with(dir: &Path, packages: &str) -> std::path::PathBuf {
        let path = dir.join("setup.stamp");
        std::fs::write(
            &path,
            format!(r#"{{"version": 1, "completed_at": "2026-01-01T00:00:00Z", "packages": {packages}}}"#),
        )
        .unwrap();
        path
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert_eq!(compare_versions("0.10.0", "0.9.3"), Ordering::Greater);
        assert_eq!(compare_versions("1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("0.1.0-rc.1", "0.1.0"), Ordering::Equal);
        assert_eq!(compare_versions("0.0.9", "0.1.0"), Ordering::Less);
    }

    #[test]
    fn each_state_of_the_stamp_has_its_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("setup.stamp");
        assert_eq!(verdict(&path), SetupVerdict::FirstRun);
        // A Python stamp: nothing of ours in it, whatever its versions.
        let python = stamp_with(
            dir.path(),
            r#"{"terok-executor": "0.5.0", "terok-sandbox": "0.5.0", "terok-shield": "0.5.0"}"#,
        );
        assert_eq!(verdict(&python), SetupVerdict::FirstRun);
        record(&path, "2026-12-06T20:00:00Z").unwrap();
        assert_eq!(verdict(&path), SetupVerdict::Current);
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains(r#""terok-sandbox": "0.5.0""#), "{written}");
        stamp_with(dir.path(), r#"{"terok-executor-rs": "0.0.1"}"#);
        assert_eq!(
            verdict(&path),
            SetupVerdict::Updated {
                stamped: "0.0.1".into()
            }
        );
        stamp_with(dir.path(), r#"{"terok-executor-rs": "99.0.0"}"#);
        assert_eq!(
            verdict(&path),
            SetupVerdict::Downgraded {
                stamped: "99.0.0".into()
            }
        );
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(verdict(&path), SetupVerdict::Unreadable { .. }));
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        assert!(matches!(verdict(&path), SetupVerdict::Unreadable { .. }));
    }

    #[test]
    fn forgetting_keeps_the_python_packages() {
        let dir = tempfile::tempdir().unwrap();
        let path = stamp_with(
            dir.path(),
            r#"{"terok-executor": "0.5.0", "terok-executor-rs": "0.1.0"}"#,
        );
        forget(&path).unwrap();
        let left = std::fs::read_to_string(&path).unwrap();
        assert!(
            left.contains("terok-executor\"") && !left.contains(PACKAGE),
            "{left}"
        );
        record(&path, "now").unwrap();
        std::fs::write(
            &path,
            r#"{"version": 1, "packages": {"terok-executor-rs": "0.1.0"}}"#,
        )
        .unwrap();
        forget(&path).unwrap();
        assert!(!path.exists());
        forget(&path).unwrap();
    }
}
