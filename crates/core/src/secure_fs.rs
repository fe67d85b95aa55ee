//! Writes that cannot be redirected or observed half-done: atomic replace through a temporary
//! file opened with `O_EXCL | O_NOFOLLOW`, owner-only modes for secrets, and directories that
//! are checked not to be symbolic links.
//!
//! Architecture Invariant: everything terok writes into a container-visible mount, and every
//! file holding a secret, goes through [`write_atomic`] or [`write_sensitive`].

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of files that hold secrets.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode of directories that hold secrets.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// A file-system operation that was refused or failed; always names the path.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SecureFsError {
    /// The path is a symbolic link where a real file or directory is required.
    #[error("refusing to follow the symbolic link at {}", path.display())]
    #[diagnostic(help("remove the link; terok never writes through symbolic links"))]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A directory was expected.
    #[error("{} exists but is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The path has no parent directory or no file name.
    #[error("{} is not a path to a file", path.display())]
    NotAFilePath {
        /// The path.
        path: PathBuf,
    },
    /// An I/O operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", "rename to", …).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SecureFsError + 'a {
    move |source| SecureFsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn nofollow_flag() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Takes an exclusive advisory lock on `path` (created 0600 if missing), waiting for other
/// holders; the lock is released when the returned file is dropped. Used around
/// read-modify-write of files that several launches share.
pub fn lock_exclusive(path: &Path) -> Result<File, SecureFsError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(SECRET_FILE_MODE)
        .custom_flags(nofollow_flag())
        .open(path)
        .map_err(io_err("open", path))?;
    file.lock().map_err(io_err("lock", path))?;
    Ok(file)
}

/// Creates `dir` (and missing parents) and makes sure it is a real directory with mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), SecureFsError> {
    ensure_dir_with_mode(dir, PRIVATE_DIR_MODE)
}

/// Creates `dir` (and missing parents) and makes sure it is a real directory with `mode`.
/// An existing directory with a different mode is changed to `mode`.
pub fn ensure_dir_with_mode(dir: &Path, mode: u32) -> Result<(), SecureFsError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(SecureFsError::Symlink {
                path: dir.to_path_buf(),
            });
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(SecureFsError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(meta) => {
            if meta.permissions().mode() & 0o7777 != mode {
                std::fs::set_permissions(dir, Permissions::from_mode(mode))
                    .map_err(io_err("change the mode of", dir))?;
            }
            return Ok(());
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_err("inspect", dir)(err)),
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Someone else created it in the meantime: validate what is there now.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return ensure_dir_with_mode(dir, mode);
        }
        Err(err) => return Err(io_err("create", dir)(err)),
    }
    std::fs::set_permissions(dir, Permissions::from_mode(mode))
        .map_err(io_err("change the mode of", dir))
}

/// Replaces `path` with `contents` atomically: readers see the old or the new file, never a
/// mix. The temporary file is created with `O_EXCL | O_NOFOLLOW` and `mode`, fsynced, then
/// renamed over `path` (which replaces a symbolic link rather than writing through it).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), SecureFsError> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => {
            return Err(SecureFsError::NotAFilePath {
                path: path.to_path_buf(),
            });
        }
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let (tmp_path, mut file) = create_temp_beside(parent, name, mode)?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", &tmp_path))
        .and_then(|()| {
            // The mode given to open() is filtered by the umask; set it exactly.
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(io_err("change the mode of", &tmp_path))
        })
        .and_then(|()| std::fs::rename(&tmp_path, path).map_err(io_err("replace", path)));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(err);
    }
    // Make the rename itself durable; failure here does not undo the write.
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes a secret: the parent directory is made private (0700) and the file is written
/// atomically with mode 0600.
pub fn write_sensitive(path: &Path, contents: &[u8]) -> Result<(), SecureFsError> {
    let parent = path.parent().ok_or_else(|| SecureFsError::NotAFilePath {
        path: path.to_path_buf(),
    })?;
    ensure_private_dir(parent)?;
    write_atomic(path, contents, SECRET_FILE_MODE)
}

/// Reads a file without following a symbolic link at its final component.
pub fn read_nofollow(path: &Path) -> Result<Vec<u8>, SecureFsError> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow_flag())
        .open(path)
        .map_err(|err| symlink_or(err, "open", path))?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut file, &mut out).map_err(io_err("read", path))?;
    Ok(out)
}

fn symlink_or(err: io::Error, op: &'static str, path: &Path) -> SecureFsError {
    if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        SecureFsError::Symlink {
            path: path.to_path_buf(),
        }
    } else {
        io_err(op, path)(err)
    }
}

fn create_temp_beside(
    parent: &Path,
    name: &std::ffi::OsStr,
    mode: u32,
) -> Result<(PathBuf, File), SecureFsError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let unique = format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp_path = parent.join(unique);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nofollow_flag())
            .open(&tmp_path)
        {
            Ok(file) => return Ok((tmp_path, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(symlink_or(err, "create", &tmp_path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn sensitive_writes_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vault/secret.json");
        write_sensitive(&target, b"{}").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"{}");
        assert_eq!(mode_of(&target), 0o600);
        assert_eq!(mode_of(target.parent().unwrap()), 0o700);
    }

    #[test]
    fn atomic_write_replaces_a_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let link = dir.path().join("link");
        symlink(&victim, &link).unwrap();
        write_atomic(&link, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        assert_eq!(mode_of(&link), 0o644);
    }

    #[test]
    fn no_temporary_files_are_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        write_atomic(&target, b"1", 0o600).unwrap();
        write_atomic(&target, b"2", 0o600).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn reading_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "x").unwrap();
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        assert_eq!(read_nofollow(&real).unwrap(), b"x");
        assert!(matches!(
            read_nofollow(&link),
            Err(SecureFsError::Symlink { .. })
        ));
    }

    #[test]
    fn private_dirs_refuse_symlinks_and_tighten_modes() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&real).unwrap();
        assert_eq!(mode_of(&real), 0o700);
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        assert!(matches!(
            ensure_private_dir(&link),
            Err(SecureFsError::Symlink { .. })
        ));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            ensure_private_dir(&file),
            Err(SecureFsError::NotADirectory { .. })
        ));
    }
}
