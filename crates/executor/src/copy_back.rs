//! A remote engine's task works on a copy of the workspace; when it ends, what the agent left
//! there is merged back into the user's directory — its files and directories only: never
//! `.git` (what git on the host would execute), never a symbolic link, never through one, and
//! never a set-id bit.

use std::path::{Path, PathBuf};

use terok_core::secure_fs;

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopiedBack {
    /// Files written into the workspace (relative paths).
    pub written: Vec<PathBuf>,
    /// What was left out, with why (relative path: reason).
    pub skipped: Vec<String>,
}

/// Merges the directory `staging` (the container's `/workspace`, copied out) into
/// `workspace`. Files the agent deleted stay; files it changed or made are written whole.
pub fn merge(staging: &Path, workspace: &Path) -> std::io::Result<CopiedBack> {
    let owner = fs_err::metadata(workspace)?;
    let mut done = CopiedBack::default();
    merge_dir(staging, workspace, Path::new(""), &owner, &mut done)?;
    Ok(done)
}

fn merge_dir(
    from: &Path,
    to: &Path,
    relative: &Path,
    owner: &std::fs::Metadata,
    done: &mut CopiedBack,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs_err::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs_err::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let rel = relative.join(&name);
        // git on the host runs what `.git` holds (hooks, config): it never comes back.
        if relative.as_os_str().is_empty() && name == ".git" {
            continue;
        }
        let source = entry.path();
        let target = to.join(&name);
        let kind = fs_err::symlink_metadata(&source)?.file_type();
        let existing = std::fs::symlink_metadata(&target).ok();
        if existing
            .as_ref()
            .is_some_and(|m| m.file_type().is_symlink())
        {
            done.skipped.push(format!(
                "{}: a symbolic link in the workspace is never written through",
                rel.display()
            ));
            continue;
        }
        if kind.is_dir() {
            if existing.is_none() {
                fs_err::create_dir(&target)?;
                hand_to_owner(&target, owner)?;
            } else if !existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                done.skipped
                    .push(format!("{}: not a directory here", rel.display()));
                continue;
            }
            merge_dir(&source, &target, &rel, owner, done)?;
        } else if kind.is_file() {
            write_file(&source, &target, owner)?;
            done.written.push(rel);
        } else {
            done.skipped.push(format!(
                "{}: only files and directories come back",
                rel.display()
            ));
        }
    }
    Ok(())
}

/// `source`'s contents at `target`, replaced whole, with its permission bits but no set-id
/// or sticky bit, owned as the workspace is.
fn write_file(source: &Path, target: &Path, owner: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = fs_err::read(source)?;
    let mode = fs_err::metadata(source)?.permissions().mode() & 0o777;
    secure_fs::write_atomic(target, &bytes, mode).map_err(std::io::Error::other)?;
    hand_to_owner(target, owner)
}

/// As root, what is written into a user's workspace is theirs.
fn hand_to_owner(path: &Path, owner: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(owner.uid())),
        Some(rustix::fs::Gid::from_raw(owner.gid())),
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_back_but_not_git_links_or_set_id_bits() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (staging, workspace) = (dir.path().join("staging"), dir.path().join("workspace"));
        std::fs::create_dir_all(staging.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(staging.join("src")).unwrap();
        std::fs::create_dir_all(workspace.join("linked")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::write(staging.join(".git/hooks/pre-commit"), "#!/bin/sh\nevil\n").unwrap();
        std::fs::write(staging.join("calc.py"), "return a + b\n").unwrap();
        std::fs::write(staging.join("src/new.py"), "new\n").unwrap();
        std::fs::write(staging.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            staging.join("tool"),
            std::fs::Permissions::from_mode(0o6755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", staging.join("passwd")).unwrap();
        // A link the user has in the workspace is never written through.
        std::fs::remove_dir(workspace.join("linked")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), workspace.join("linked")).unwrap();
        std::fs::create_dir_all(staging.join("linked")).unwrap();
        std::fs::write(staging.join("linked/x"), "x").unwrap();
        std::fs::write(workspace.join("kept.txt"), "kept").unwrap();

        let done = merge(&staging, &workspace).unwrap();
        assert_eq!(
            done.written,
            [
                PathBuf::from("calc.py"),
                PathBuf::from("src/new.py"),
                PathBuf::from("tool")
            ]
        );
        assert_eq!(done.skipped.len(), 2, "{:?}", done.skipped);
        assert_eq!(
            std::fs::read_to_string(workspace.join("calc.py")).unwrap(),
            "return a + b\n"
        );
        assert!(!workspace.join(".git").exists());
        assert!(!workspace.join("passwd").exists());
        assert!(!dir.path().join("elsewhere/x").exists());
        let mode = std::fs::metadata(workspace.join("tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert_eq!(
            std::fs::read_to_string(workspace.join("kept.txt")).unwrap(),
            "kept"
        );
    }
}
