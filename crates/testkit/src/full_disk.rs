//! A directory on a small tmpfs with no space left, for tests of what a write does when the
//! disk fills up: the error it reports and the files it leaves behind.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use terok_core::env::HostEnv;

/// The file that takes up the tmpfs's free space; [`FullDisk::entries`] leaves it out.
pub const FILLER: &str = ".terok-test-filler";

/// A full tmpfs mounted over a directory, unmounted when dropped (the directory's own files
/// are visible again then).
#[derive(Debug)]
pub struct FullDisk {
    dir: PathBuf,
}

impl FullDisk {
    /// Mounts a small tmpfs over `dir` holding copies of the regular files `dir` had, and
    /// fills it to the last byte. `None` when this process may not mount (not root): the test
    /// should return early; under CI that is a failure, because CI runs these tests as root.
    pub fn over(dir: &Path, test_name: &str) -> std::io::Result<Option<Self>> {
        if !may_mount() {
            skip_or_fail(test_name);
            return Ok(None);
        }
        std::fs::create_dir_all(dir)?;
        let kept = regular_files(dir)?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs"])
            .arg(dir))?;
        let disk = Self {
            dir: dir.to_path_buf(),
        };
        for (name, contents) in &kept {
            std::fs::write(dir.join(name), contents)?;
        }
        disk.fill()?;
        Ok(Some(disk))
    }

    /// Writes the filler until the tmpfs refuses another byte.
    fn fill(&self) -> std::io::Result<()> {
        let mut filler = std::fs::File::create(self.dir.join(FILLER))?;
        let page = [0u8; 4096];
        loop {
            match filler.write(&page) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(28) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }

    /// The names in the directory besides the filler: what a failed write left behind.
    pub fn entries(&self) -> BTreeSet<String> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != FILLER)
            .collect()
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        // Lazy, so a file a test still holds open cannot keep the mount in place.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
fn may_mount() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn skip_or_fail(test_name: &str) {
    if HostEnv::from_process().is_ci() {
        panic!("{test_name}: mounting a tmpfs needs root, and CI runs these tests as root");
    }
    // A skipped test must be visible.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test_name}: a full disk is simulated with a tmpfs, which needs root. ***\n"
    );
}

/// The regular files directly in `dir`, with their contents.
fn regular_files(dir: &Path) -> std::io::Result<Vec<(std::ffi::OsString, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push((entry.file_name(), std::fs::read(entry.path())?));
        }
    }
    Ok(files)
}

fn run(command: &mut Command) -> std::io::Result<()> {
    let status = command.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{command:?} failed: {status}"
        )))
    }
}
