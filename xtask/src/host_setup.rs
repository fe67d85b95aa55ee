//! `cargo xtask host-setup`: idempotent provisioning of a Debian/Ubuntu build-and-test host.
//!
//! Installs podman and its helpers, configures podman for these machines (runc, because crun
//! fails with "cgroups in hybrid mode not supported"; default ulimits within the host's hard
//! limits, because podman's defaults fail with "setrlimit RLIMIT_NOFILE: Operation not
//! permitted"), and installs the cargo tools CI uses. A second run changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{is_ci, is_root, on_path, output_of, run_echo};

/// Debian packages the build, the tests and the demo need.
pub const APT_PACKAGES: &[&str] = &[
    "podman",
    "runc",
    // `--init` in every task container.
    "catatonit",
    "debootstrap",
    "uidmap",
    "slirp4netns",
    "fuse-overlayfs",
    "nftables",
    // The shield's per-task DNS forwarder (nftset support).
    "dnsmasq-base",
    "socat",
    "git",
    "shellcheck",
    "tar",
    "curl",
    // The demo's sample project and the end-to-end test run its unit test on the host.
    "python3",
    // Load generator for `cargo xtask bench` (vault throughput).
    "wrk",
    // The real browser of the web-mode test (Toad's UI, driven headless over DevTools).
    "chromium",
    // `systemd-analyze verify` of the vault's user unit (`vault install`).
    "systemd",
];

/// Cargo tools CI runs, installed with `cargo install --locked` when missing.
pub const CARGO_TOOLS: &[(&str, &str)] = &[
    ("cargo-deny", "cargo-deny"),
    ("cargo-nextest", "cargo-nextest"),
    // `cargo xtask fuzz` (on the nightly toolchain, which the machines carry).
    ("cargo-fuzz", "cargo-fuzz"),
];

const NPROC_LIMIT: u64 = 4096;

pub fn run() -> anyhow::Result<()> {
    setup(true)
}

/// Provisions the host; without `cargo_tools`, only what running terok needs (the demo skips
/// cargo-deny and nextest, which take minutes to compile and only CI uses).
pub fn setup(cargo_tools: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut changed = Vec::new();
    let root = is_root();
    let os = OsRelease::read();

    if os.is_debian_like() {
        let missing = missing_debian_packages(APT_PACKAGES);
        if !missing.is_empty() {
            if !root {
                bail!(
                    "missing packages: {}\nInstall them as root:\n  apt-get update && apt-get install -y {}",
                    missing.join(" "),
                    missing.join(" ")
                );
            }
            apt_install(&missing)?;
            changed.push(format!("installed {}", missing.join(" ")));
        }
    } else {
        let missing: Vec<&str> = [
            "podman",
            "runc",
            "debootstrap",
            "socat",
            "git",
            "shellcheck",
            "nft",
        ]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
        if !missing.is_empty() {
            bail!(
                "this host is not Debian-like ({}), so host-setup cannot install packages itself.\n\
                 Install these with your package manager, then run host-setup again: {}\n\
                 (on Fedora: dnf install -y podman runc debootstrap socat git ShellCheck nftables dnsmasq)",
                os.pretty_name(),
                missing.join(" ")
            );
        }
    }

    if root {
        // Rootful containers map their users into a range no account uses: reserve it, so
        // `useradd` never hands it out.
        let etc = Path::new("/etc");
        let found = terok_core::subids::id_reservation(etc);
        if !found.reserved {
            terok_core::subids::reserve_ids(etc, found.range)?;
            changed.push(format!(
                "reserved ids {}+{} for terok in /etc/subuid and /etc/subgid",
                found.range.start, found.range.count
            ));
        }
    }

    // Rootless podman: usable devices and overlay storage (as root, for the CI account).
    if root {
        changed.extend(crate::rootless::open_devices()?);
        if is_ci() {
            changed.extend(crate::rootless::ensure_ci_account()?);
        }
    } else if let Some(home) = std::env::var_os("HOME") {
        changed.extend(crate::rootless::configure_storage(Path::new(&home), None)?);
    }

    let conf = containers_conf_path(root)?;
    if configure_podman(&conf)? {
        changed.push(format!("configured {}", conf.display()));
    }

    for (binary, krate) in CARGO_TOOLS.iter().filter(|_| cargo_tools) {
        if !on_path(binary) {
            run_echo(Command::new("cargo").args(["install", "--locked", krate]))?;
            changed.push(format!("installed {krate}"));
        }
    }

    if cargo_tools {
        crate::fuzz::require_nightly()?;
    }

    let runtime =
        output_of(Command::new("podman").args(["info", "--format", "{{.Host.OCIRuntime.Name}}"]))
            .context("podman is installed but `podman info` fails")?;
    let version =
        output_of(Command::new("podman").args(["version", "--format", "{{.Client.Version}}"]))
            .unwrap_or_default();
    println!("host-setup: podman {version} (runtime {runtime})");
    if changed.is_empty() {
        println!(
            "host-setup: nothing to change ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
    } else {
        for change in &changed {
            println!("host-setup: {change}");
        }
        println!("host-setup: done ({:.1}s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}

struct OsRelease {
    id: String,
    id_like: String,
    pretty: String,
}

impl OsRelease {
    fn read() -> Self {
        let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        Self {
            id: field("ID"),
            id_like: field("ID_LIKE"),
            pretty: field("PRETTY_NAME"),
        }
    }

    fn is_debian_like(&self) -> bool {
        let families = ["debian", "ubuntu"];
        families.contains(&self.id.as_str())
            || self
                .id_like
                .split_whitespace()
                .any(|f| families.contains(&f))
    }

    fn pretty_name(&self) -> &str {
        if self.pretty.is_empty() {
            "unknown OS"
        } else {
            &self.pretty
        }
    }
}

fn missing_debian_packages(packages: &[&str]) -> Vec<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Status}\n"])
        .args(packages)
        .output();
    let installed: Vec<String> = out
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.strip_suffix(" installed").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    packages
        .iter()
        .filter(|p| !installed.iter().any(|i| i == *p))
        .map(|p| (*p).to_owned())
        .collect()
}

fn apt_install(packages: &[String]) -> anyhow::Result<()> {
    run_echo(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run_echo(
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn containers_conf_path(root: bool) -> anyhow::Result<PathBuf> {
    if root {
        return Ok(PathBuf::from("/etc/containers/containers.conf"));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("containers/containers.conf"))
}

/// Sets the runtime and default ulimits in `conf`, keeping everything else. Returns whether the
/// file changed.
fn configure_podman(conf: &Path) -> anyhow::Result<bool> {
    let before = match std::fs::read_to_string(conf) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", conf.display())),
    };
    let after = podman_conf_text(&before, hard_nofile_limit())?;
    if after == before {
        return Ok(false);
    }
    if let Some(parent) = conf.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(conf, after).with_context(|| format!("cannot write {}", conf.display()))?;
    Ok(true)
}

/// `containers.conf` text with our settings applied to `existing`.
pub fn podman_conf_text(existing: &str, nofile: u64) -> anyhow::Result<String> {
    use toml_edit::{Array, DocumentMut, Item, Table, value};
    let mut doc: DocumentMut = existing
        .parse()
        .context("the existing containers.conf is not valid TOML")?;
    let ensure_table = |doc: &mut DocumentMut, name: &str| {
        if !doc.contains_table(name) {
            doc.insert(name, Item::Table(Table::new()));
        }
    };
    ensure_table(&mut doc, "engine");
    ensure_table(&mut doc, "containers");
    if doc["engine"].get("runtime").and_then(|v| v.as_str()) != Some("runc") {
        doc["engine"]["runtime"] = value("runc");
    }
    let wanted = [
        format!("nofile={nofile}:{nofile}"),
        format!("nproc={NPROC_LIMIT}:{NPROC_LIMIT}"),
    ];
    let current: Vec<String> = doc["containers"]
        .get("default_ulimits")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if current != wanted {
        let mut array = Array::new();
        for item in &wanted {
            array.push(item.as_str());
        }
        doc["containers"]["default_ulimits"] = value(array);
    }
    Ok(doc.to_string())
}

/// The hard RLIMIT_NOFILE of this process (containers cannot exceed it).
fn hard_nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|hard| hard.parse().ok())
        .unwrap_or(1_048_576)
        .min(1_048_576)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_conf_is_created_from_nothing() {
        let text = podman_conf_text("", 20000).unwrap();
        assert!(text.contains("[engine]\nruntime = \"runc\""), "{text}");
        assert!(
            text.contains("default_ulimits = [\"nofile=20000:20000\", \"nproc=4096:4096\"]"),
            "{text}"
        );
    }

    #[test]
    fn podman_conf_keeps_other_settings_and_is_stable() {
        let existing = "# mine\n[engine]\nevents_logger = \"file\"\n";
        let once = podman_conf_text(existing, 1024).unwrap();
        assert!(
            once.contains("# mine") && once.contains("events_logger = \"file\""),
            "{once}"
        );
        assert_eq!(podman_conf_text(&once, 1024).unwrap(), once);
    }
}
