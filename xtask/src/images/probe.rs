//! What a built image holds: its entry's smoke check, run as `dev` with no network, and its
//! sizes as podman reports them.

use std::process::{Command, Stdio};

use anyhow::bail;

/// How long a smoke check may take inside the container.
const SMOKE_SECONDS: &str = "120";

/// The smoke check of an entry: the roster's own, or `<binary> --version`.
pub fn smoke_command(binary: &str, smoke: Option<&str>) -> String {
    smoke.map_or_else(|| format!("{binary} --version"), str::to_owned)
}

/// Runs `command` in `image` as `dev`, without a network: the first line it printed (the
/// version), or why it failed.
pub fn smoke(image: &str, command: &str) -> Result<String, String> {
    let output = Command::new("podman")
        // `--init`: sid's coreutils `timeout` fails (status 125, silently) as PID 1.
        .args([
            "run",
            "--rm",
            "--init",
            "--network",
            "none",
            "--user",
            "dev",
        ])
        .args([
            "--entrypoint",
            "timeout",
            image,
            SMOKE_SECONDS,
            "sh",
            "-c",
            command,
        ])
        .stdin(Stdio::null())
        .output();
    match output {
        Err(err) => Err(format!("podman run: {err}")),
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                let first = stdout
                    .lines()
                    .chain(stderr.lines())
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("(no output)");
                Ok(first.to_owned())
            } else {
                let lines: Vec<String> = stdout
                    .lines()
                    .chain(stderr.lines())
                    .map(str::to_owned)
                    .collect();
                if lines.iter().all(|l| l.trim().is_empty()) {
                    return Err(format!("`{command}` printed nothing ({})", out.status));
                }
                Err(format!("`{command}`: {}", last_words(&lines)))
            }
        }
    }
}

/// The last non-empty line of `lines`, for a reason.
pub fn last_words(lines: &[String]) -> String {
    lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !l.starts_with("Error: building at STEP"))
        .unwrap_or("(no output)")
        .to_owned()
}

/// What the entries of one base share: L0 and the L1 with no entry.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The base.
    pub base: String,
    /// Size of L0.
    pub l0_bytes: u64,
    /// Size of the L1 with no entry, L0 included.
    pub l1_bytes: u64,
    /// How long building both took (0 when they were current).
    pub seconds: f64,
}

impl Shared {
    /// Measures the shared images of `base`.
    pub fn measure(base: &str, l0: &str, l1: &str, seconds: f64) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.to_owned(),
            l0_bytes: image_bytes(l0)?,
            l1_bytes: image_bytes(l1)?,
            seconds,
        })
    }
}

/// The sizes of an entry's image.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// The whole image, L0 included.
    pub image_bytes: u64,
    /// What the entry adds to the image it is built on.
    pub own_bytes: u64,
}

impl Sizes {
    /// Measures `image`, built on the shared L1 (or, for a sidecar, on L0).
    pub fn of(image: &str, shared: &Shared, sidecar: bool) -> anyhow::Result<Self> {
        let image_bytes = image_bytes(image)?;
        let below = if sidecar {
            shared.l0_bytes
        } else {
            shared.l1_bytes
        };
        Ok(Self {
            image_bytes,
            own_bytes: image_bytes.saturating_sub(below),
        })
    }
}

fn image_bytes(image: &str) -> anyhow::Result<u64> {
    let out = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("`podman image inspect {image}` failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}
