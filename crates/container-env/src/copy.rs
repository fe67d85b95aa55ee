//! Copying a directory tree that a container may have written: directories and regular files
//! only, read without following links, so a link planted in the tree cannot make terok copy a
//! host file; and moving aside a config file terok cannot parse instead of failing or
//! overwriting it.

use std::path::{Path, PathBuf};

/// What a copy left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Symbolic links (never followed, never copied).
    pub links: usize,
}

/// Copies the tree `from` into `to` (created): directories, and regular files opened without
/// following links with their permission bits (setuid, setgid and sticky bits dropped). Entries
/// for which `leave_out` says so (given their path relative to `from`), and every symbolic
/// link, are not copied; `empty` names files copied as empty files (a mount point for an
/// overlay, without the content).
pub fn copy_tree_nofollow(
    from: &Path,
    to: &Path,
    leave_out: &dyn Fn(&Path) -> bool,
    empty: &dyn Fn(&Path) -> bool,
) -> std::io::Result<Skipped> {
    let mut skipped = Skipped::default();
    copy_below(
        from,
        to,
        Path::new(""),
        &Filters { leave_out, empty },
        &mut skipped,
    )?;
    Ok(skipped)
}

/// What [`copy_tree_nofollow`] leaves out or empties.
struct Filters<'a> {
    leave_out: &'a dyn Fn(&Path) -> bool,
    empty: &'a dyn Fn(&Path) -> bool,
}

/// Copies the directory `from` (at `relative` in the tree) into `to`.
fn copy_below(
    from: &Path,
    to: &Path,
    relative: &Path,
    filters: &Filters<'_>,
    skipped: &mut Skipped,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        // DirEntry::file_type does not follow a link.
        let kind = entry.file_type()?;
        let inner = relative.join(entry.file_name());
        if (filters.leave_out)(&inner) {
            continue;
        }
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            skipped.links += 1;
        } else if kind.is_dir() {
            copy_below(&entry.path(), &target, &inner, filters, skipped)?;
        } else if kind.is_file() {
            let mode = entry.metadata()?.permissions().mode() & 0o777;
            if (filters.empty)(&entry.path()) {
                terok_core::secure_fs::write_atomic(&target, b"", mode & 0o700)
                    .map_err(std::io::Error::other)?;
            } else {
                terok_core::secure_fs::copy_file_nofollow(&entry.path(), &target, mode)
                    .map_err(std::io::Error::other)?;
            }
        }
    }
    Ok(())
}

/// Moves the file at `path`, which does not parse, aside to `<name>.unparseable-<time>` (kept
/// for the user to look at) so a fresh one can take its place. Returns the warning to show.
pub fn back_up_unparseable(
    path: &Path,
    why: &str,
) -> Result<String, terok_core::secure_fs::SecureFsError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let backup: PathBuf = path.with_file_name(format!(
        "{name}.unparseable-{}",
        terok_core::time::unix_now()
    ));
    terok_core::secure_fs::rename(path, &backup)?;
    Ok(format!(
        "{} could not be read ({why}); it was moved to {} and a fresh one written",
        path.display(),
        backup.display()
    ))
}
