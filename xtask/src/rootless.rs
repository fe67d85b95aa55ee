//! Rootless podman on this host: what host-setup prepares (devices, overlay storage, the CI
//! account) and the podman-backed tests CI runs again as that unprivileged account.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{output_of, run_echo};

/// The unprivileged account CI runs the rootless tests as.
pub const CI_ACCOUNT: &str = "terok-ci";

/// The first kernel whose overlay filesystem unprivileged users may mount (older ones need
/// fuse-overlayfs).
const NATIVE_OVERLAY_KERNEL: (u32, u32) = (5, 13);

/// The podman-backed tests CI runs rootless: the Claude end-to-end scenario, the vault
/// socket and token binding of launched tasks, the git guards, the egress firewall, and the
/// credential commands.
const ROOTLESS_TESTS: &[(&str, &[&str])] = &[
    ("credentials", &[]),
    (
        "run",
        &[
            "claude_gets_only_phantom_tokens_and_the_local_dir_as_workspace",
            "four_runs_at_once_get_their_own_names_dirs_sockets_and_tokens",
            "interactive_task_stops_and_starts_with_fresh_tokens",
            "the_agent_cannot_write_what_git_on_the_host_executes",
            "an_allowlisted_task_reaches_only_what_is_allowed",
            "a_shield_that_cannot_load_leaves_nothing_running",
            "a_profile_domain_is_allowed_where_the_container_resolves_it",
        ],
    ),
    ("gate", &[]),
    ("e2e_claude", &[]),
];

/// As root: lets unprivileged users open `/dev/net/tun` (slirp4netns, rootless networking)
/// and `/dev/fuse` (fuse-overlayfs) where this host restricts them to root — the modes
/// Debian gives them. Returns what changed.
pub fn open_devices() -> anyhow::Result<Vec<String>> {
    let mut changed = Vec::new();
    for device in ["/dev/net/tun", "/dev/fuse"] {
        let Ok(meta) = std::fs::metadata(device) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o006 != 0o006 {
            std::fs::set_permissions(device, std::fs::Permissions::from_mode(0o666))
                .with_context(|| format!("cannot open {device} to unprivileged users"))?;
            changed.push(format!("made {device} usable by unprivileged users (0666)"));
        }
    }
    Ok(changed)
}

/// The storage config that makes rootless podman use overlay: native where the kernel allows
/// it, else through fuse-overlayfs. Without one, podman 4.3 falls back to `vfs`, which copies
/// every layer in full (a first build takes several times longer).
pub fn overlay_storage_conf(kernel: &str) -> String {
    let mut text = String::from("[storage]\ndriver = \"overlay\"\n");
    if kernel_version(kernel).is_some_and(|v| v < NATIVE_OVERLAY_KERNEL) {
        text.push_str("\n[storage.options.overlay]\nmount_program = \"/usr/bin/fuse-overlayfs\"\n");
    }
    text
}

/// `major.minor` of a kernel release such as `6.1.0-18-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Writes `home`'s `~/.config/containers/storage.conf` for overlay when it has none (owned by
/// `owner` when given). An existing one is left alone: a store already made with another
/// driver needs `podman system reset`, which only its user may decide. Returns what changed.
pub fn configure_storage(home: &Path, owner: Option<&str>) -> anyhow::Result<Option<String>> {
    let dir = home.join(".config/containers");
    let conf = dir.join("storage.conf");
    if conf.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&conf, overlay_storage_conf(&kernel_release()))
        .with_context(|| format!("cannot write {}", conf.display()))?;
    if let Some(owner) = owner {
        run_echo(
            Command::new("chown")
                .args(["-R", &format!("{owner}:{owner}")])
                .arg(home.join(".config")),
        )?;
    }
    Ok(Some(format!(
        "configured overlay storage in {}",
        conf.display()
    )))
}

/// As root in CI: the unprivileged account the rootless tests run as, with subordinate ids
/// and overlay storage. Returns what changed.
pub fn ensure_ci_account() -> anyhow::Result<Vec<String>> {
    let mut changed = Vec::new();
    if output_of(Command::new("id").args(["-u", CI_ACCOUNT])).is_none() {
        run_echo(Command::new("useradd").args([
            "--create-home",
            "--shell",
            "/bin/bash",
            CI_ACCOUNT,
        ]))?;
        changed.push(format!("created the account {CI_ACCOUNT}"));
    }
    for (file, flag) in [
        ("/etc/subuid", "--add-subuids"),
        ("/etc/subgid", "--add-subgids"),
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("{CI_ACCOUNT}:")))
        {
            let range = free_subordinate_range(&text);
            run_echo(Command::new("usermod").args([flag, &range, CI_ACCOUNT]))?;
            changed.push(format!(
                "gave {CI_ACCOUNT} subordinate ids {range} in {file}"
            ));
        }
    }
    let home = account_home(CI_ACCOUNT)?;
    changed.extend(configure_storage(&home, Some(CI_ACCOUNT))?);
    Ok(changed)
}

/// A 65536-id range after every range `text` (`/etc/subuid`) already holds, as `first-last`.
fn free_subordinate_range(text: &str) -> String {
    let end = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':').skip(1);
            let start: u64 = fields.next()?.parse().ok()?;
            let count: u64 = fields.next()?.parse().ok()?;
            Some(start + count)
        })
        .max()
        .unwrap_or(100_000)
        .max(100_000);
    format!("{end}-{}", end + 65_535)
}

fn account_home(account: &str) -> anyhow::Result<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&account)).then(|| fields.get(5).map(PathBuf::from))?
        })
        .with_context(|| format!("no home for {account} in /etc/passwd"))
}

/// CI, as root: runs the rootless tests as [`CI_ACCOUNT`] — its own podman storage (the base
/// image copied in), the test binaries cargo built, each filtered to the tests above.
pub fn run_ci_tests(root: &Path, cargo: &dyn Fn() -> Command) -> anyhow::Result<()> {
    copy_base_image()?;
    open_path_to(root)?;
    let home = account_home(CI_ACCOUNT)?;
    for (target, executable) in test_executables(cargo)? {
        let filters = ROOTLESS_TESTS
            .iter()
            .find(|(name, _)| *name == target)
            .map(|(_, filters)| *filters)
            .unwrap_or_default();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", CI_ACCOUNT, "--", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg("CI=true")
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .arg(&executable)
            .args(["--test-threads", "2"])
            .args(filters.iter())
            .current_dir("/tmp");
        run_echo(&mut cmd).with_context(|| format!("rootless tests of {target}"))?;
    }
    Ok(())
}

/// The base image the tests build on, copied from root's storage into the account's (no
/// registry; rootless podman cannot debootstrap).
fn copy_base_image() -> anyhow::Result<()> {
    let image = terok_testkit::base_image::BASE_IMAGE;
    let present = Command::new("runuser")
        .args(["-u", CI_ACCOUNT, "--", "podman", "image", "exists", image])
        .current_dir("/tmp")
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    let path = PathBuf::from(format!("/var/tmp/terok-base-{}.tar", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let copied = run_echo(
        Command::new("podman")
            .args(["save", "--quiet", "-o"])
            .arg(&path)
            .arg(image),
    )
    .and_then(|()| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        run_echo(
            Command::new("runuser")
                .args(["-u", CI_ACCOUNT, "--", "podman", "load", "--quiet", "-i"])
                .arg(&path)
                .current_dir("/tmp"),
        )
    });
    let _ = std::fs::remove_file(&path);
    copied
}

/// Lets the account reach the test binaries and the sources they read (search permission on
/// each directory above `root`, as a checkout under a private directory would block it).
fn open_path_to(root: &Path) -> anyhow::Result<()> {
    for dir in root.ancestors() {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o001 == 0 {
            println!("rootless: adding search permission to {}", dir.display());
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001))?;
        }
    }
    Ok(())
}

/// The test binaries of the rootless tests' targets, built if needed: (target, executable).
fn test_executables(cargo: &dyn Fn() -> Command) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "terok-executor-cli",
        "--locked",
        "--no-run",
        "--message-format=json",
    ]);
    for (target, _) in ROOTLESS_TESTS {
        cmd.args(["--test", target]);
    }
    let out = cmd.output().context("cannot run cargo test --no-run")?;
    if !out.status.success() {
        bail!(
            "cargo test --no-run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) && ROOTLESS_TESTS.iter().any(|(target, _)| *target == name)
        {
            found.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    if found.len() != ROOTLESS_TESTS.len() {
        bail!(
            "cargo built {} of the {} rootless test binaries",
            found.len(),
            ROOTLESS_TESTS.len()
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_is_native_from_5_13_and_through_fuse_before() {
        assert!(!overlay_storage_conf("6.1.0-18-amd64").contains("mount_program"));
        assert!(!overlay_storage_conf("5.13.0").contains("mount_program"));
        assert!(overlay_storage_conf("5.10.0-28-amd64").contains("fuse-overlayfs"));
        assert!(overlay_storage_conf("4.19.0").contains("fuse-overlayfs"));
    }

    #[test]
    fn a_free_subordinate_range_follows_the_used_ones() {
        assert_eq!(free_subordinate_range(""), "100000-165535");
        assert_eq!(
            free_subordinate_range("terok:100000:65536\nalice:165536:65536\n"),
            "231072-296607"
        );
    }
}
