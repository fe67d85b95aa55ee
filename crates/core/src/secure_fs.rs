//! Writes that cannot be redirected or observed half-done: atomic replace through a temporary
//! file opened with `O_EXCL | O_NOFOLLOW`, owner-only modes for secrets, and directories that
//! are checked not to be symbolic links.
//!
//! Architecture Invariant: everything terok writes into a container-visible mount, and every
//! file holding a secret, goes through [`write_atomic`] or [`write_sensitive`].

// The one module that may write raw: everything else calls it.
#![allow(clippy::disallowed_methods)]

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
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
    /// A regular file was expected (a FIFO, a device or a socket is not read: reading one could
    /// block for ever or never end).
    #[error("{} is not a regular file", path.display())]
    NotARegularFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than what is read from it.
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The most that is read.
        limit: u64,
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
    let file = open_lock_file(path)?;
    file.lock().map_err(io_err("lock", path))?;
    Ok(file)
}

/// Opens (creating it 0600, with missing parents) the file at `path` that a caller locks
/// itself — with `try_lock` when waiting is wrong. A symbolic link at `path`, or as its
/// directory, is refused: the file is opened relative to the directory's descriptor, so a
/// link swapped in meanwhile cannot redirect it.
pub fn open_lock_file(path: &Path) -> Result<File, SecureFsError> {
    let (parent, name) = split_file_path(path)?;
    let (dir, _) = open_dir_creating(parent, PRIVATE_DIR_MODE)?;
    let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(SECRET_FILE_MODE))
        .map_err(|err| symlink_or(err.into(), "open", path))?;
    Ok(File::from(fd))
}

/// Copies the regular file `from` to the new file `to` (which must not exist) with `mode`,
/// streaming; a symbolic link at either end is refused rather than followed.
pub fn copy_file_nofollow(from: &Path, to: &Path, mode: u32) -> Result<u64, SecureFsError> {
    let mut source = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow_flag())
        .open(from)
        .map_err(|err| symlink_or(err, "open", from))?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nofollow_flag())
        .open(to)
        .map_err(|err| symlink_or(err, "create", to))?;
    let copied = io::copy(&mut source, &mut target).map_err(io_err("copy to", to))?;
    target
        .set_permissions(Permissions::from_mode(mode))
        .map_err(io_err("change the mode of", to))?;
    Ok(copied)
}

/// Renames `from` to `to` (a file or a directory, on one file system). rename(2) moves a link
/// at either end rather than following it; it lives here so that every write terok makes goes
/// through this module.
pub fn rename(from: &Path, to: &Path) -> Result<(), SecureFsError> {
    std::fs::rename(from, to).map_err(io_err("rename to", to))
}

/// Removes the file (or link) at `path`; unlink(2) never follows a link. Nothing there is not
/// an error.
pub fn remove_file(path: &Path) -> Result<(), SecureFsError> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(err)),
        _ => Ok(()),
    }
}

/// Opens `path` for appending (a log), creating it with mode 0600; a symbolic link at `path`
/// is refused rather than followed.
pub fn open_append(path: &Path) -> Result<File, SecureFsError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(SECRET_FILE_MODE)
        .custom_flags(nofollow_flag())
        .open(path)
        .map_err(|err| symlink_or(err, "open", path))
}

/// Creates the file `path`, which must not exist yet, mode 0600, for reading and writing (a
/// scratch file: a request body spooled to disk); a symbolic link at `path` is refused.
pub fn create_new_private(path: &Path) -> Result<File, SecureFsError> {
    OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .mode(SECRET_FILE_MODE)
        .custom_flags(nofollow_flag())
        .open(path)
        .map_err(|err| symlink_or(err, "create", path))
}

/// Opens the existing regular file `path` to be rewritten in place (truncated; its inode, and
/// so any bind mount of it, stays), never through a symlink.
pub fn open_truncate_existing(path: &Path) -> Result<File, SecureFsError> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(nofollow_flag())
        .open(path)
        .map_err(|err| symlink_or(err, "open", path))?;
    let is_file = file
        .metadata()
        .map_err(io_err("inspect", path))?
        .file_type()
        .is_file();
    if !is_file {
        return Err(SecureFsError::Io {
            op: "rewrite",
            path: path.to_path_buf(),
            source: io::Error::other("not a regular file"),
        });
    }
    file.set_len(0).map_err(io_err("truncate", path))?;
    Ok(file)
}

/// Creates `dir` (and missing parents) and makes sure it is a real directory with mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), SecureFsError> {
    ensure_dir_with_mode(dir, PRIVATE_DIR_MODE)
}

/// Creates `dir` (and missing parents) and makes sure it is a real directory with `mode`.
/// An existing directory with a different mode is changed to `mode` — for directories terok
/// owns; a directory the user named goes through [`create_dir_if_missing`]. The mode is set
/// through the directory's descriptor, never by path, so a symbolic link swapped in after the
/// check cannot redirect it.
pub fn ensure_dir_with_mode(dir: &Path, mode: u32) -> Result<(), SecureFsError> {
    let (fd, created) = open_dir_creating(dir, mode)?;
    let current = rustix::fs::fstat(&fd)
        .map_err(|err| io_err("inspect", dir)(err.into()))?
        .st_mode
        & 0o7777;
    if created || current != mode {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|err| io_err("change the mode of", dir)(err.into()))?;
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with `mode` when it does not exist; an existing
/// directory keeps its mode — for directories the user names (`--shared-dir`, the database's
/// directory), whose modes are the user's business.
pub fn create_dir_if_missing(dir: &Path, mode: u32) -> Result<(), SecureFsError> {
    let (fd, created) = open_dir_creating(dir, mode)?;
    if created {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|err| io_err("change the mode of", dir)(err.into()))?;
    }
    Ok(())
}

/// Opens the directory `dir`, creating it and its missing parents (with `mode`, less the
/// umask); says whether `dir` was created. `dir` itself, and every directory created on the
/// way, is opened without following a symbolic link: each is created and opened relative to
/// its parent's descriptor.
fn open_dir_creating(dir: &Path, mode: u32) -> Result<(OwnedFd, bool), SecureFsError> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match rustix::fs::openat(rustix::fs::CWD, dir, flags, Mode::empty()) {
        Ok(fd) => return Ok((fd, false)),
        Err(Errno::NOENT) => {}
        Err(err) => return Err(not_a_dir_or(err, dir)),
    }
    let (parent, name) = split_file_path(dir)?;
    let (parent_fd, _) = open_dir_creating(parent, mode)?;
    let created = match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(mode)) {
        Ok(()) => true,
        // Someone else created it in the meantime: open what is there now.
        Err(Errno::EXIST) => false,
        Err(err) => return Err(io_err("create", dir)(err.into())),
    };
    let fd = rustix::fs::openat(&parent_fd, name, flags, Mode::empty())
        .map_err(|err| not_a_dir_or(err, dir))?;
    Ok((fd, created))
}

/// The error of opening `dir` as a directory without following a link.
fn not_a_dir_or(err: Errno, dir: &Path) -> SecureFsError {
    let is_link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
    match err {
        Errno::LOOP => SecureFsError::Symlink {
            path: dir.to_path_buf(),
        },
        Errno::NOTDIR if is_link => SecureFsError::Symlink {
            path: dir.to_path_buf(),
        },
        Errno::NOTDIR => SecureFsError::NotADirectory {
            path: dir.to_path_buf(),
        },
        other => io_err("open", dir)(other.into()),
    }
}

/// `path`'s directory (`.` for a bare name) and file name.
fn split_file_path(path: &Path) -> Result<(&Path, &std::ffi::OsStr), SecureFsError> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if parent.as_os_str().is_empty() => Ok((Path::new("."), name)),
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(SecureFsError::NotAFilePath {
            path: path.to_path_buf(),
        }),
    }
}

/// Replaces `path` with `contents` atomically: readers see the old or the new file, never a
/// mix. The temporary file is created with `O_EXCL | O_NOFOLLOW` and `mode`, fsynced, then
/// renamed over `path` (which replaces a symbolic link rather than writing through it).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), SecureFsError> {
    write_atomic_from(path, &mut &contents[..], mode)
}

/// [`write_atomic`] with the contents read from `contents` as they are written (a file may
/// be larger than memory).
pub fn write_atomic_from(
    path: &Path,
    contents: &mut dyn std::io::Read,
    mode: u32,
) -> Result<(), SecureFsError> {
    let (parent, name) = split_file_path(path)?;
    let (tmp_path, mut file) = create_temp_beside(parent, name, mode)?;
    // Errors name `path`: the temporary file is ours, removed below, and means nothing to
    // whoever reads the message.
    let written = std::io::copy(contents, &mut file)
        .map(drop)
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", path))
        .and_then(|()| {
            // The mode given to open() is filtered by the umask; set it exactly.
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(io_err("write", path))
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

/// The most [`read_nofollow`] reads: far above any file terok reads whole (configs, tokens,
/// credential files), far below what would hurt.
pub const READ_LIMIT: u64 = 16 * 1024 * 1024;

/// Reads a regular file of up to [`READ_LIMIT`] bytes without following a symbolic link at its
/// final component.
pub fn read_nofollow(path: &Path) -> Result<Vec<u8>, SecureFsError> {
    read_nofollow_limited(path, READ_LIMIT)
}

/// Reads a regular file of up to `limit` bytes without following a symbolic link at its final
/// component. Files a container can replace are read this way: a FIFO put in their place is
/// refused instead of blocking, and a huge file instead of filling memory.
pub fn read_nofollow_limited(path: &Path, limit: u64) -> Result<Vec<u8>, SecureFsError> {
    let file = OpenOptions::new()
        .read(true)
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
        .custom_flags(nofollow_flag() | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|err| symlink_or(err, "open", path))?;
    let metadata = file.metadata().map_err(io_err("inspect", path))?;
    if !metadata.is_file() {
        return Err(SecureFsError::NotARegularFile {
            path: path.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, limit + 1), &mut out)
        .map_err(io_err("read", path))?;
    if out.len() as u64 > limit {
        return Err(SecureFsError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
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
            // Named as the file being written: the temporary one is ours and means nothing
            // to whoever reads the message (a full disk can refuse even its creation).
            Err(err) => return Err(symlink_or(err, "write", &parent.join(name))),
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

    /// A container that can write the shared directory swaps a directory for a link to the
    /// user's files: the lock file is not created there.
    #[test]
    fn a_lock_file_is_never_created_through_a_linked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        symlink(&outside, shared.join("opencode")).unwrap();
        let err = open_lock_file(&shared.join("opencode/opencode.json.lock")).unwrap_err();
        assert!(matches!(err, SecureFsError::Symlink { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn missing_directories_are_created_below_a_link_never_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(&outside, Permissions::from_mode(0o755)).unwrap();
        symlink(&outside, dir.path().join("link")).unwrap();
        let err = ensure_dir_with_mode(&dir.path().join("link/made"), 0o700).unwrap_err();
        assert!(matches!(err, SecureFsError::Symlink { .. }), "{err}");
        assert!(!outside.join("made").exists());
        assert_eq!(mode_of(&outside), 0o755);
        // Without links, missing parents are created and the directory gets its mode.
        ensure_dir_with_mode(&dir.path().join("a/b/c"), 0o750).unwrap();
        assert_eq!(mode_of(&dir.path().join("a/b/c")), 0o750);
    }

    #[test]
    fn a_directory_the_user_named_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, Permissions::from_mode(0o775)).unwrap();
        create_dir_if_missing(&theirs, 0o700).unwrap();
        assert_eq!(mode_of(&theirs), 0o775);
        let new = dir.path().join("new");
        create_dir_if_missing(&new, 0o700).unwrap();
        assert_eq!(mode_of(&new), 0o700);
    }

    #[test]
    fn reads_refuse_a_fifo_a_device_and_a_file_over_the_limit_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read_nofollow(&fifo),
            Err(SecureFsError::NotARegularFile { .. })
        ));
        assert!(matches!(
            read_nofollow(Path::new("/dev/zero")),
            Err(SecureFsError::NotARegularFile { .. })
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, [b'x'; 65]).unwrap();
        assert!(matches!(
            read_nofollow_limited(&big, 64),
            Err(SecureFsError::TooLarge { limit: 64, .. })
        ));
        assert_eq!(read_nofollow_limited(&big, 65).unwrap().len(), 65);
    }
}
