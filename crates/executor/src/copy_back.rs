//! A remote engine's task works on a copy of the workspace; when it ends, what the agent left
//! there is merged back into the user's directory — its files and directories only: never a
//! `.git` at any depth (what git on the host would execute, a submodule's gitlink included),
//! never a symbolic link, never through one, and never a set-id or world-writable bit. A file
//! that cannot come back is said so and skipped; the others still come back.

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
/// `workspace`. Files the agent deleted stay; files it changed or made are written whole;
/// files it left as they were are not touched.
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
    // What the agent left unreadable is still ours to read (the staging copy is private).
    make_walkable(from)?;
    let mut entries: Vec<_> = fs_err::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs_err::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let rel = relative.join(&name);
        // git on the host runs what a `.git` holds or points at (hooks, config, a gitlink):
        // none comes back, at any depth, in any case.
        if name.to_string_lossy().eq_ignore_ascii_case(".git") {
            done.skipped.push(format!(
                "{}: git's own files never come back",
                rel.display()
            ));
            continue;
        }
        if let Err(err) = merge_entry(&entry.path(), &to.join(&name), &rel, owner, done) {
            done.skipped.push(format!("{}: {err}", rel.display()));
        }
    }
    Ok(())
}

/// One entry of the copy: a directory merged, a changed file written, anything else skipped.
fn merge_entry(
    source: &Path,
    target: &Path,
    rel: &Path,
    owner: &std::fs::Metadata,
    done: &mut CopiedBack,
) -> std::io::Result<()> {
    let kind = fs_err::symlink_metadata(source)?.file_type();
    let existing = std::fs::symlink_metadata(target).ok();
    if existing
        .as_ref()
        .is_some_and(|m| m.file_type().is_symlink())
    {
        done.skipped.push(format!(
            "{}: a symbolic link in the workspace is never written through",
            rel.display()
        ));
        return Ok(());
    }
    if kind.is_dir() {
        match &existing {
            None => {
                fs_err::create_dir(target)?;
                hand_to_owner(target, owner)?;
            }
            Some(m) if m.is_dir() => {}
            Some(_) => {
                done.skipped
                    .push(format!("{}: not a directory here", rel.display()));
                return Ok(());
            }
        }
        merge_dir(source, target, rel, owner, done)
    } else if kind.is_file() {
        if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
            done.skipped
                .push(format!("{}: a directory here", rel.display()));
        } else if existing.is_none() || !same_contents(source, target)? {
            write_file(source, target, owner)?;
            done.written.push(rel.to_path_buf());
        }
        Ok(())
    } else {
        done.skipped.push(format!(
            "{}: only files and directories come back",
            rel.display()
        ));
        Ok(())
    }
}

/// Gives the owner of the staging directory `dir` read, write and search on it.
fn make_walkable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs_err::symlink_metadata(dir)?.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode((mode | 0o700) & 0o777))?;
    }
    Ok(())
}

/// Whether files `a` and `b` hold the same bytes (read in blocks: a file may be large).
fn same_contents(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    if fs_err::metadata(a)?.len() != fs_err::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut a, mut b) = (fs_err::File::open(a)?, fs_err::File::open(b)?);
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

/// `source`'s contents at `target`, replaced whole (streamed: a file may be large), with its
/// permission bits but no set-id, sticky or world-writable bit, owned as the workspace is.
fn write_file(source: &Path, target: &Path, owner: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs_err::metadata(source)?.permissions().mode() & 0o775;
    let mut reader = fs_err::File::open(source)?;
    secure_fs::write_atomic_from(target, &mut reader, mode).map_err(std::io::Error::other)?;
    hand_to_owner(target, owner)
}

/// As root, what is written into a user's workspace is theirs.
fn hand_to_owner(path: &Path, owner: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    // The path itself, never what a link put there since would point at.
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(owner.uid())),
        Some(rustix::fs::Gid::from_raw(owner.gid())),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn files_come_back_but_not_git_links_or_set_id_bits() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, workspace) = (dir.path().join("staging"), dir.path().join("workspace"));
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        write(&staging.join(".git/hooks/pre-commit"), "#!/bin/sh\nevil\n");
        // A submodule's gitlink pointed elsewhere, in any case: git would run what it finds.
        write(&staging.join("sub/.git"), "gitdir: ../evil\n");
        write(
            &staging.join("sub/.GIT/config"),
            "[core]\n\tfsmonitor = evil\n",
        );
        write(&workspace.join("sub/.git"), "gitdir: ../.git/modules/sub\n");
        write(&staging.join("calc.py"), "return a + b\n");
        write(&staging.join("src/new.py"), "new\n");
        write(&staging.join("same.txt"), "unchanged\n");
        write(&workspace.join("same.txt"), "unchanged\n");
        write(&staging.join("tool"), "#!/bin/sh\n");
        std::fs::set_permissions(
            staging.join("tool"),
            std::fs::Permissions::from_mode(0o6777),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", staging.join("passwd")).unwrap();
        // A link the user has in the workspace is never written through.
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), workspace.join("linked")).unwrap();
        write(&staging.join("linked/x"), "x");
        // A file where the workspace has a directory: skipped, and the rest still comes back.
        write(&staging.join("a-dir"), "file\n");
        std::fs::create_dir_all(workspace.join("a-dir")).unwrap();
        // What the agent made unreadable is still read.
        write(&staging.join("locked/inside.txt"), "inside\n");
        std::fs::set_permissions(
            staging.join("locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        write(&workspace.join("kept.txt"), "kept");

        let done = merge(&staging, &workspace).unwrap();
        assert_eq!(
            done.written,
            [
                PathBuf::from("calc.py"),
                PathBuf::from("locked/inside.txt"),
                PathBuf::from("src/new.py"),
                PathBuf::from("tool")
            ],
            "{:?}",
            done.skipped
        );
        assert_eq!(done.skipped.len(), 6, "{:?}", done.skipped);
        assert_eq!(
            std::fs::read_to_string(workspace.join("calc.py")).unwrap(),
            "return a + b\n"
        );
        assert!(!workspace.join(".git").exists());
        assert_eq!(
            std::fs::read_to_string(workspace.join("sub/.git")).unwrap(),
            "gitdir: ../.git/modules/sub\n"
        );
        assert!(!workspace.join("sub/.GIT").exists());
        assert!(!workspace.join("passwd").exists());
        assert!(!dir.path().join("elsewhere/x").exists());
        let mode = std::fs::metadata(workspace.join("tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o7777,
            0o775,
            "no set-id, sticky or world-writable bit"
        );
        assert!(workspace.join("a-dir").is_dir());
        assert_eq!(
            std::fs::read_to_string(workspace.join("kept.txt")).unwrap(),
            "kept"
        );
    }
}
