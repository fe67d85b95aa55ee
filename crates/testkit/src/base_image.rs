//! The local Debian base images (`localhost/debian:<suite>`; tests and the demo build on
//! bookworm), made with `debootstrap --variant=minbase` and `podman import` because no registry
//! is reachable here. Creation is serialized with a lock file so parallel tests build it once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The image reference tests and the demo use as `--base`.
pub const BASE_IMAGE: &str = "localhost/debian:bookworm";

const SUITE: &str = "bookworm";
/// The suites [`ensure_suite_image`] makes: Debian 12, 13 and unstable.
pub const SUITES: [&str; 3] = ["bookworm", "trixie", "sid"];
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Why the base image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BaseImageError {
    /// A required tool is missing.
    #[error("{tool} is not installed; run `cargo xtask host-setup` first")]
    MissingTool {
        /// The missing program.
        tool: &'static str,
    },
    /// A suite that is not one of [`SUITES`].
    #[error("unknown Debian suite `{suite}`; expected one of: bookworm, trixie, sid")]
    UnknownSuite {
        /// What was asked for.
        suite: String,
    },
    /// A step failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// What was being done.
        step: String,
        /// Its stderr or error.
        detail: String,
    },
}

/// What [`ensure_base_image`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseImageOutcome {
    /// The image already existed.
    Present,
    /// The image was created now.
    Created,
}

/// Makes sure [`BASE_IMAGE`] exists, creating it if needed. `progress` receives one line per step.
pub fn ensure_base_image(
    progress: &mut dyn FnMut(&str),
) -> Result<BaseImageOutcome, BaseImageError> {
    ensure_suite_image(SUITE, progress)
}

/// The image reference of the local base image of a Debian `suite`.
pub fn suite_image(suite: &str) -> String {
    format!("localhost/debian:{suite}")
}

/// Makes sure the base image of `suite` (one of [`SUITES`]) exists, creating it if needed.
pub fn ensure_suite_image(
    suite: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<BaseImageOutcome, BaseImageError> {
    if !SUITES.contains(&suite) {
        return Err(BaseImageError::UnknownSuite {
            suite: suite.to_owned(),
        });
    }
    let image = suite_image(suite);
    if image_exists(&image)? {
        return Ok(BaseImageOutcome::Present);
    }
    let _lock = lock()?;
    // Another process may have built it while we waited for the lock.
    if image_exists(&image)? {
        return Ok(BaseImageOutcome::Present);
    }
    let mirror = std::env::var("TEROK_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into());
    let work = tempfile::Builder::new()
        .prefix("terok-debootstrap-")
        .tempdir_in("/var/tmp")
        .map_err(|e| step_err("create a debootstrap directory", e))?;
    let rootfs = work.path().join("rootfs");
    progress(&format!(
        "debootstrap --variant=minbase {suite} ({mirror}) …"
    ));
    run(
        Command::new("debootstrap")
            .args(["--variant=minbase", suite])
            .arg(&rootfs)
            .arg(&mirror),
        "debootstrap",
    )?;
    if suite == "sid" {
        accept_expired_release_files(&rootfs)?;
    }
    progress(&format!("podman import → {image} …"));
    import(&rootfs, &image)?;
    progress(&format!("{image} is ready"));
    Ok(BaseImageOutcome::Created)
}

/// Unstable's Release file is valid for a week only, and the Debian mirror these machines
/// reach is not always that fresh: apt in the sid base image accepts an expired one (its
/// signatures are still checked). Only this local test base is affected, never an image
/// terok builds on a user's base.
fn accept_expired_release_files(rootfs: &Path) -> Result<(), BaseImageError> {
    std::fs::write(
        rootfs.join("etc/apt/apt.conf.d/99terok-mirror-age"),
        "Acquire::Check-Valid-Until \"false\";\n",
    )
    .map_err(|e| step_err("write the sid base image's apt setting", e))
}

fn image_exists(image: &str) -> Result<bool, BaseImageError> {
    let status = Command::new("podman")
        .args(["image", "exists", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|_| BaseImageError::MissingTool { tool: "podman" })?;
    Ok(status.success())
}

fn lock() -> Result<File, BaseImageError> {
    // Per user, as each has its own podman storage.
    let uid = terok_core::env::HostEnv::from_process().euid();
    let path = PathBuf::from(format!("/var/tmp/terok-base-image-{uid}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| step_err("open the base image lock", e))?;
    file.lock()
        .map_err(|e| step_err("lock the base image lock", e))?;
    Ok(file)
}

fn import(rootfs: &Path, image: &str) -> Result<(), BaseImageError> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|_| BaseImageError::MissingTool { tool: "tar" })?;
    let tar_out = tar
        .stdout
        .take()
        .ok_or_else(|| step_err("pipe tar into podman import", "no stdout"))?;
    let import = Command::new("podman")
        .args(["import", "--change", "CMD [\"/bin/bash\"]", "-", image])
        .stdin(tar_out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|_| BaseImageError::MissingTool { tool: "podman" })?;
    let tar_status = tar.wait().map_err(|e| step_err("tar", e))?;
    if !tar_status.success() {
        return Err(step_err("tar of the debootstrap tree", tar_status));
    }
    if !import.status.success() {
        return Err(step_err(
            "podman import",
            String::from_utf8_lossy(&import.stderr).trim(),
        ));
    }
    Ok(())
}

fn run(cmd: &mut Command, name: &'static str) -> Result<(), BaseImageError> {
    let output = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|_| BaseImageError::MissingTool { tool: name })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        Err(step_err(
            name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        ))
    }
}

fn step_err(step: &str, detail: impl std::fmt::Display) -> BaseImageError {
    BaseImageError::Step {
        step: step.to_owned(),
        detail: detail.to_string(),
    }
}
