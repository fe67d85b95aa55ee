//! Who the container's `dev` is on the host when podman runs as root, and the workspace lent
//! to it. `dev` is a uid of terok's subordinate range — never host root, never a real user —
//! so the container's ids map onto one unbroken stretch of the range. The workspace, whoever
//! owns it, is lent to `dev` for the run (its owner's entries handed over) and given back
//! afterwards; what the container wrote under its other ids is given back too — owned by the
//! workspace's owner, with setuid and setgid bits cleared, so the run leaves nothing that runs
//! as someone else.
//!
//! Why not make `dev` the workspace's owner (or the user who ran sudo)? That maps one
//! container id onto a user's uid between two stretches of the range, and podman 4.3's storage
//! cannot mount an image for such a split mapping (an idmapped mount of an ownership-changed
//! copy whose directories then have no owner): the container never starts.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Gid, Mode, OFlags, Stat, Uid, chownat, fchmod, fstat, openat,
    statat,
};
use rustix::io::Errno;

use serde::{Deserialize, Serialize};
use terok_podman::userns::{DEV_ID, IdRange, RootfulIds};

/// A host workspace's owner and what a run does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceOwner {
    /// Owner uid of the workspace before the run.
    pub uid: u32,
    /// Owner gid of the workspace before the run.
    pub gid: u32,
    /// Whether its entries owned by `uid` are handed to `dev` for the run.
    pub lent: bool,
}

/// How a rootful task's ids map, kept in its record: `start`, `stop` and `rm` hand over and
/// give back with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfulTask {
    /// `dev`'s host uid.
    pub dev_uid: u32,
    /// `dev`'s host gid.
    pub dev_gid: u32,
    /// First id of the subordinate range.
    pub range_start: u32,
    /// Ids in the range.
    pub range_count: u32,
    /// The user's workspace, when the task has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<(PathBuf, WorkspaceOwner)>,
}

impl RootfulTask {
    /// Decides `dev`'s host ids for a task on `workspace` (the user's directory, or `None`
    /// for one terok creates): the range's own `dev` id, with the workspace lent to it.
    pub fn decide(workspace: Option<&Path>, range: IdRange) -> io::Result<Self> {
        let dev = range.start + DEV_ID;
        let workspace = match workspace {
            None => None,
            Some(dir) => {
                let meta = fs_err::metadata(dir)?;
                let owner = WorkspaceOwner {
                    uid: meta.uid(),
                    gid: meta.gid(),
                    lent: true,
                };
                Some((dir.to_path_buf(), owner))
            }
        };
        Ok(Self {
            dev_uid: dev,
            dev_gid: dev,
            range_start: range.start,
            range_count: range.count,
            workspace,
        })
    }

    /// The map podman gets.
    pub fn ids(&self) -> RootfulIds {
        RootfulIds {
            dev_uid: self.dev_uid,
            dev_gid: self.dev_gid,
            range: self.range(),
        }
    }

    fn range(&self) -> IdRange {
        IdRange {
            start: self.range_start,
            count: self.range_count,
        }
    }

    /// Hands `paths` (the task's files the container reads and writes) to `dev`, and lends
    /// the workspace when it is root's.
    pub fn hand_over(&self, paths: &[PathBuf]) -> io::Result<()> {
        for path in paths {
            walk_nofollow(path, &mut |entry| {
                entry.chown(Some(self.dev_uid), Some(self.dev_gid))
            })?;
        }
        if let Some((dir, owner)) = &self.workspace
            && owner.lent
        {
            walk_nofollow(dir, &mut |entry| {
                let uid = (entry.uid() == owner.uid).then_some(self.dev_uid);
                let gid = (entry.gid() == owner.gid).then_some(self.dev_gid);
                entry.chown(uid, gid)
            })?;
        }
        Ok(())
    }

    /// Gives the workspace back after the container stopped: entries of `dev` (when lent) and
    /// of the subordinate range become the owner's again, with setuid and setgid cleared.
    /// Returns how many entries changed hands.
    pub fn give_back(&self) -> io::Result<usize> {
        let Some((dir, owner)) = &self.workspace else {
            return Ok(0);
        };
        let range = self.range();
        let foreign = |id: u32, dev: u32| range.contains(id) || (owner.lent && id == dev);
        let mut changed = 0;
        walk_nofollow(dir, &mut |entry| {
            let uid = foreign(entry.uid(), self.dev_uid).then_some(owner.uid);
            let gid = foreign(entry.gid(), self.dev_gid).then_some(owner.gid);
            if uid.is_none() && gid.is_none() {
                return Ok(());
            }
            changed += 1;
            entry.chown(uid, gid)?;
            entry.clear_set_id_bits()
        })?;
        Ok(changed)
    }
}

/// The deepest directory a walk descends into: one descriptor is open per level, and the
/// open-file limit is raised before a walk (a tree deeper than this is reported, not walked).
const MAX_DEPTH: usize = 8192;

/// One entry a walk visits: the directory it is in, its name there and its own metadata.
struct Entry<'a> {
    dir: BorrowedFd<'a>,
    name: &'a CStr,
    stat: &'a Stat,
}

impl Entry<'_> {
    fn uid(&self) -> u32 {
        self.stat.st_uid
    }

    fn gid(&self) -> u32 {
        self.stat.st_gid
    }

    /// Gives the entry (never what a link points to) to `uid` and `gid`, where they differ.
    fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let uid = uid.filter(|u| *u != self.uid());
        let gid = gid.filter(|g| *g != self.gid());
        if uid.is_none() && gid.is_none() {
            return Ok(());
        }
        chownat(
            self.dir,
            self.name,
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// A regular file keeps no setuid or setgid bit (chown clears them for most files
    /// already; this also covers the ones it does not). The file is opened without following
    /// a link and checked to be the entry the walk saw before its mode changes.
    fn clear_set_id_bits(&self) -> io::Result<()> {
        if FileType::from_raw_mode(self.stat.st_mode) != FileType::RegularFile {
            return Ok(());
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let file = openat(self.dir, self.name, flags | OFlags::CLOEXEC, Mode::empty())?;
        let now = fstat(&file)?;
        let same = now.st_ino == self.stat.st_ino && now.st_dev == self.stat.st_dev;
        let mode = now.st_mode & 0o7777;
        if same
            && FileType::from_raw_mode(now.st_mode) == FileType::RegularFile
            && mode & 0o6000 != 0
        {
            fchmod(&file, Mode::from_raw_mode(mode & !0o6000))?;
        }
        Ok(())
    }
}

/// What a walk could not visit or change; it goes on past each failure.
#[derive(Default)]
struct WalkFailures {
    count: usize,
    first: Option<io::Error>,
}

impl WalkFailures {
    fn record(&mut self, result: io::Result<()>) {
        if let Err(err) = result {
            self.count += 1;
            self.first.get_or_insert(err);
        }
    }

    /// `Ok` when nothing failed; else how many entries under `root` failed and the first error.
    fn into_result(self, root: &Path) -> io::Result<()> {
        match self.first {
            None => Ok(()),
            Some(first) => Err(io::Error::new(
                first.kind(),
                format!(
                    "{} entries under {} could not be changed (first: {first})",
                    self.count,
                    root.display()
                ),
            )),
        }
    }
}

/// A directory being walked: its descriptor and the names still to visit in it.
struct Frame {
    dir: OwnedFd,
    names: Vec<CString>,
}

impl Frame {
    /// Opens `name` in `parent` as a directory without following a link, and lists it; the
    /// directory must still be the one `seen` describes.
    fn open(parent: BorrowedFd<'_>, name: &CStr, seen: &Stat) -> io::Result<Self> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = openat(parent, name, flags, Mode::empty())?;
        let now = fstat(&dir)?;
        if now.st_ino != seen.st_ino || now.st_dev != seen.st_dev {
            return Err(io::Error::other(
                "the directory changed while it was walked",
            ));
        }
        let mut names = Vec::new();
        for entry in Dir::read_from(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        Ok(Self { dir, names })
    }
}

/// Visits `root` and everything below it by descriptor — never following a link, never
/// leaving `root`'s file system, whatever the length of the paths. `visit` sees each entry's
/// own metadata; a failure is counted and the walk goes on. Nothing happens when `root` is
/// missing.
fn walk_nofollow(
    root: &Path,
    visit: &mut dyn FnMut(&Entry<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let parent_path = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(root_name) = root.file_name() else {
        return Err(io::Error::other(format!(
            "{} names no entry",
            root.display()
        )));
    };
    let root_name = CString::new(root_name.as_bytes())?;
    let parent_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let parent = openat(CWD, parent_path, parent_flags, Mode::empty())?;
    let stat = match statat(&parent, &root_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let _ = terok_core::limits::raise_open_file_limit();
    let device = stat.st_dev;
    let mut failures = WalkFailures::default();
    let root_entry = Entry {
        dir: parent.as_fd(),
        name: &root_name,
        stat: &stat,
    };
    failures.record(visit(&root_entry));
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return failures.into_result(root);
    }
    let mut stack = Vec::new();
    match Frame::open(parent.as_fd(), &root_name, &stat) {
        Ok(frame) => stack.push(frame),
        Err(err) => failures.record(Err(err)),
    }
    loop {
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else {
            break;
        };
        let Some(name) = frame.names.pop() else {
            stack.pop();
            continue;
        };
        let stat = match statat(&frame.dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(err) => {
                failures.record(Err(err.into()));
                continue;
            }
        };
        if stat.st_dev != device {
            continue;
        }
        let entry = Entry {
            dir: frame.dir.as_fd(),
            name: &name,
            stat: &stat,
        };
        failures.record(visit(&entry));
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            continue;
        }
        let child = if depth >= MAX_DEPTH {
            Err(io::Error::other(format!(
                "deeper than {MAX_DEPTH} directories"
            )))
        } else {
            Frame::open(frame.dir.as_fd(), &name, &stat)
        };
        match child {
            Ok(child) => stack.push(child),
            Err(err) => failures.record(Err(err)),
        }
    }
    failures.into_result(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn range() -> IdRange {
        IdRange {
            start: 300_000,
            count: 65_536,
        }
    }

    /// Whoever owns the workspace, and with or without sudo: `dev` is the range's own id (one
    /// unbroken mapping) and the workspace is lent to it.
    #[test]
    fn dev_is_always_the_ranges_own_id_and_every_workspace_is_lent() {
        let dir = tempfile::tempdir().unwrap();
        let meta = fs_err::metadata(dir.path()).unwrap();
        let task = RootfulTask::decide(Some(dir.path()), range()).unwrap();
        assert_eq!((task.dev_uid, task.dev_gid), (301_000, 301_000));
        let (path, owner) = task.workspace.clone().unwrap();
        assert_eq!(path, dir.path());
        assert_eq!(
            (owner.uid, owner.gid, owner.lent),
            (meta.uid(), meta.gid(), true)
        );
        let own = RootfulTask::decide(None, range()).unwrap();
        assert_eq!(
            (own.dev_uid, own.dev_gid, own.workspace),
            (301_000, 301_000, None)
        );
        let ids = task.ids();
        assert_eq!((ids.dev_uid, ids.dev_gid), (301_000, 301_000));
    }

    /// As root: a workspace a user owns is lent to `dev` and comes back to that user.
    #[test]
    fn a_users_workspace_is_lent_and_comes_back_to_the_user() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        fs_err::create_dir(&work).unwrap();
        fs_err::write(work.join("calc.py"), "x = 1\n").unwrap();
        for path in [&work, &work.join("calc.py")] {
            std::os::unix::fs::lchown(path, Some(1234), Some(1240)).unwrap();
        }
        let task = RootfulTask::decide(Some(&work), range()).unwrap();
        task.hand_over(&[]).unwrap();
        let meta = fs_err::metadata(work.join("calc.py")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (301_000, 301_000));
        let made = work.join("by-the-agent");
        fs_err::write(&made, "").unwrap();
        std::os::unix::fs::lchown(&made, Some(301_000), Some(301_000)).unwrap();
        assert_eq!(task.give_back().unwrap(), 3);
        for path in [&work, &work.join("calc.py"), &made] {
            let meta = fs_err::metadata(path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (1234, 1240), "{}", path.display());
        }
    }

    /// As root: a lent workspace comes back root's, and the setuid shell the agent left is
    /// neither setuid nor someone else's.
    #[test]
    fn a_lent_workspace_comes_back_with_no_set_id_bits() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        fs_err::create_dir(&work).unwrap();
        fs_err::write(work.join("calc.py"), "x = 1\n").unwrap();
        let task = RootfulTask::decide(Some(&work), range()).unwrap();
        task.hand_over(&[]).unwrap();
        assert_eq!(
            fs_err::metadata(work.join("calc.py")).unwrap().uid(),
            301_000
        );
        // What the container's dev and its root leave behind.
        let shell = work.join(".x");
        fs_err::write(&shell, "#!/bin/sh\n").unwrap();
        std::os::unix::fs::lchown(&shell, Some(301_000), Some(301_000)).unwrap();
        fs_err::set_permissions(&shell, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let by_root = work.join(".y");
        fs_err::write(&by_root, "").unwrap();
        std::os::unix::fs::lchown(&by_root, Some(300_000), Some(300_000)).unwrap();
        fs_err::set_permissions(&by_root, std::fs::Permissions::from_mode(0o6755)).unwrap();
        assert_eq!(task.give_back().unwrap(), 4);
        for path in [&work, &work.join("calc.py"), &shell, &by_root] {
            let meta = fs_err::metadata(path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
            assert_eq!(meta.mode() & 0o6000, 0, "{}", path.display());
        }
    }

    /// Creates `levels` nested directories of long names under `top` (their paths longer
    /// than the system allows a path to be) and returns the deepest one's descriptor.
    fn long_chain(top: &Path, levels: usize) -> OwnedFd {
        let name = "d".repeat(100);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = openat(CWD, top, flags, Mode::empty()).unwrap();
        for _ in 0..levels {
            rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            dir = openat(&dir, name.as_str(), flags, Mode::empty()).unwrap();
        }
        dir
    }

    /// As root: a setuid file the agent buried deeper than a path can name is given back too.
    #[test]
    fn a_set_id_file_deeper_than_a_path_can_name_is_given_back() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        fs_err::create_dir(&work).unwrap();
        let task = RootfulTask::decide(Some(&work), range()).unwrap();
        task.hand_over(&[]).unwrap();
        let deepest = long_chain(&work, 50);
        let create = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let shell = openat(&deepest, ".x", create, Mode::from_raw_mode(0o755)).unwrap();
        rustix::fs::fchown(
            &shell,
            Some(Uid::from_raw(300_000)),
            Some(Gid::from_raw(300_000)),
        )
        .unwrap();
        fchmod(&shell, Mode::from_raw_mode(0o6755)).unwrap();
        task.give_back().unwrap();
        let after = fstat(&shell).unwrap();
        assert_eq!((after.st_uid, after.st_gid), (0, 0));
        assert_eq!(after.st_mode & 0o6000, 0);
    }
}
