//! The OCI hook that loads a task's ruleset: podman runs it (`createRuntime` stage) after the
//! container's network namespace exists and before the container's first process runs. It
//! loads `ruleset.nft` with the container's DNS servers into that namespace, reads the rules
//! back and verifies them, and leaves a stamp naming the namespace. Any failure exits non-zero,
//! which makes podman refuse to start the container: the shield fails closed.
//!
//! The stamp closes the other door: the container's command first compares it with its own
//! network namespace ([`entry_check`]) and stops when they differ — so a container started
//! without the hook (plain `podman start`, a hooks directory gone) runs nothing.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use terok_core::secure_fs;

use crate::error::ShieldError;
use crate::ruleset::{TABLE, add_resolvers, verify_listing};
use crate::state::ShieldDir;

/// The annotation that selects the hook; its value is the task's shield directory.
pub const ANNOTATION: &str = "ai.terok.shield";
/// The hook definition's file name in the hooks directory.
pub const HOOK_FILE: &str = "terok-shield.json";
/// Where the container sees the stamp directory (read-only).
pub const STAMP_MOUNT: &str = "/run/terok-shield";
/// Exit code of a container whose firewall is not loaded.
pub const NOT_SHIELDED_EXIT_CODE: i32 = 97;
/// Seconds podman gives the hook before it kills it and fails the start.
const HOOK_TIMEOUT_SECS: u32 = 30;

/// The hook definition that runs `program args…` for every container carrying
/// [`ANNOTATION`].
pub fn hook_definition(program: &Path, args: &[String]) -> Result<String, ShieldError> {
    let program = program.to_str().ok_or_else(|| {
        ShieldError::HookInput(format!(
            "the hook program's path {} is not UTF-8",
            program.display()
        ))
    })?;
    let mut argv = vec![program.to_owned()];
    argv.extend(args.iter().cloned());
    let pattern = format!("^{}$", ANNOTATION.replace('.', "\\."));
    let definition = serde_json::json!({
        "version": "1.0.0",
        "hook": {
            "path": program,
            "args": argv,
            // podman gives a hook an empty environment.
            "env": [crate::tools::hook_path()],
            "timeout": HOOK_TIMEOUT_SECS,
        },
        "when": { "annotations": { pattern: ".+" } },
        // poststop: the task's DNS forwarder goes when the container does.
        "stages": ["createRuntime", "poststop"],
    });
    Ok(serde_json::to_string_pretty(&definition).unwrap_or_default() + "\n")
}

/// Writes the hook definition into `hooks_dir` unless it is there already.
pub fn install_hook(hooks_dir: &Path, program: &Path, args: &[String]) -> Result<(), ShieldError> {
    let file = hooks_dir.join(HOOK_FILE);
    let definition = hook_definition(program, args)?;
    if secure_fs::read_nofollow(&file).is_ok_and(|old| old == definition.as_bytes()) {
        return Ok(());
    }
    let write_err = |err: secure_fs::SecureFsError| ShieldError::Write {
        path: file.clone(),
        detail: err.to_string(),
    };
    // An existing directory keeps its mode (a system hooks directory is not ours to chmod).
    secure_fs::create_dir_if_missing(hooks_dir, 0o755).map_err(write_err)?;
    secure_fs::write_atomic(&file, definition.as_bytes(), 0o644).map_err(write_err)
}

/// The command of a shielded container: a shell in POSIX mode — which reads no startup file,
/// not even `$BASH_ENV`, all of which the agent can write — checks that the stamp names its
/// network namespace and the start time of its first process (a namespace's number can be
/// reused by a later one; the pair cannot), then runs `command` in a login shell. This is the
/// second guard: the first is the start permit (a start without the hook fails at its mounts).
pub fn guarded_command(command: &str) -> Vec<String> {
    let script = format!(
        "terok_command=$1; terok_stamp=; read -r terok_stamp < {STAMP_MOUNT}/applied; \
         read -r terok_stat < /proc/1/stat; terok_stat=${{terok_stat##*) }}; set -- $terok_stat; \
         if [ \"$terok_stamp\" != \"$(readlink /proc/self/ns/net) ${{20}}\" ]; then \
         echo 'terok: the egress firewall is not loaded in this container, so nothing runs in \
         it; start it with terok-executor' >&2; exit {NOT_SHIELDED_EXIT_CODE}; fi; \
         exec bash -lc \"$terok_command\""
    );
    [
        "/bin/bash",
        "--posix",
        "--noprofile",
        "--norc",
        "-c",
        &script,
        "terok-shield-check",
        command,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// What podman tells a hook about the container (the OCI state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The container's first process, on the host (0 once it stopped).
    pub pid: u32,
    /// Whether the container has stopped (the `poststop` stage).
    pub stopped: bool,
    /// The bundle directory (with `config.json`).
    pub bundle: PathBuf,
    /// The task's shield directory (the annotation's value).
    pub shield_dir: PathBuf,
}

impl ContainerState {
    /// Parses the OCI state podman writes to the hook's stdin.
    pub fn parse(json: &str) -> Result<Self, ShieldError> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ShieldError::HookInput(format!("the state is not JSON: {e}")))?;
        let stopped = value["status"] == "stopped";
        let pid = value["pid"]
            .as_u64()
            .and_then(|pid| u32::try_from(pid).ok())
            .unwrap_or(0);
        if pid == 0 && !stopped {
            return Err(ShieldError::HookInput("the state has no process id".into()));
        }
        let bundle = value["bundle"]
            .as_str()
            .ok_or_else(|| ShieldError::HookInput("the state has no bundle".into()))?;
        let shield_dir = value["annotations"][ANNOTATION]
            .as_str()
            .filter(|dir| dir.starts_with('/'))
            .ok_or_else(|| {
                ShieldError::HookInput(format!("the container has no {ANNOTATION} annotation"))
            })?;
        Ok(Self {
            pid,
            stopped,
            bundle: bundle.into(),
            shield_dir: shield_dir.into(),
        })
    }

    /// The container's network namespace, as a path the host can enter.
    fn netns(&self) -> String {
        format!("/proc/{}/ns/net", self.pid)
    }
}

/// A container on the host's network (`--network host`, say on a line a user edited) shares
/// the namespace the hook runs in: its ruleset would be the host's firewall. The start fails
/// instead.
fn refuse_the_hosts_namespace(container: &ContainerState) -> Result<(), ShieldError> {
    let namespace = |path: &str| std::fs::read_link(path).ok();
    let ours = namespace("/proc/self/ns/net");
    let theirs = namespace(&container.netns());
    if ours.is_none() || ours == theirs {
        return Err(ShieldError::Firewall {
            step: "checking the container's network namespace".into(),
            detail: "the container shares the host's network namespace (--network host); its \
                     ruleset would be the host's firewall, so it does not start"
                .into(),
        });
    }
    Ok(())
}

/// The hook's work at either stage: at `createRuntime`, [`load_into`]; at `poststop`, the
/// forwarder stopped. Returns what it did.
pub fn run(container: &ContainerState) -> Result<String, ShieldError> {
    if container.stopped {
        let shield = ShieldDir::new(&container.shield_dir);
        crate::forwarder::stop(&shield);
        shield.retire();
        return Ok("stopped".to_owned());
    }
    load_into(container)
}

/// The hook's work: load, verify, start the forwarder, stamp. Returns the stamp: the namespace the rules are in and
/// the start time of the container's first process.
pub fn load_into(container: &ContainerState) -> Result<String, ShieldError> {
    refuse_the_hosts_namespace(container)?;
    let shield = ShieldDir::new(&container.shield_dir);
    // First, whatever follows: a permit serves one start.
    shield.take_permit()?;
    let state = shield.load()?;
    let rules =
        secure_fs::read_nofollow(&shield.ruleset_file()).map_err(|e| ShieldError::Firewall {
            step: "reading the task's ruleset".into(),
            detail: e.to_string(),
        })?;
    let resolv_conf = resolv_conf_of(&container.bundle);
    // The configured upstream is in the ruleset already; else the container's own servers.
    let servers = if state.policy.resolvers.is_empty() {
        resolv_conf
            .as_deref()
            .and_then(|path| fs_err::read_to_string(path).ok())
            .map(|text| name_servers(&text))
            .unwrap_or_default()
    } else {
        state.policy.resolvers.clone()
    };
    let mut script = String::from_utf8_lossy(&rules).into_owned();
    script.push_str(&add_resolvers(&servers));
    nft_in(
        &container.netns(),
        &["-f", "-"],
        Some(&script),
        "loading the ruleset",
    )?;
    let listing = nft_in(
        &container.netns(),
        &["-j", "list", "table", "inet", TABLE],
        None,
        "reading the ruleset back",
    )?;
    verify_listing(&listing)?;
    if state.forwarder {
        let resolv_conf = resolv_conf.ok_or_else(|| ShieldError::Firewall {
            step: "starting the DNS forwarder".into(),
            detail: "the container has no /etc/resolv.conf mount to point at it".into(),
        })?;
        crate::forwarder::start(
            &shield,
            &container.netns(),
            &state.domains,
            &servers,
            &resolv_conf,
        )?;
    }
    let netns = fs_err::read_link(container.netns())
        .map_err(|e| ShieldError::Firewall {
            step: "naming the network namespace".into(),
            detail: e.to_string(),
        })?
        .to_string_lossy()
        .into_owned();
    let stamp = format!("{netns} {}", start_time(container.pid)?);
    shield.write_stamp(&stamp)?;
    Ok(stamp)
}

/// When process `pid` started (field 22 of `/proc/PID/stat`, in clock ticks since boot).
fn start_time(pid: u32) -> Result<String, ShieldError> {
    let stat =
        fs_err::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| ShieldError::Firewall {
            step: "reading the container's first process".into(),
            detail: e.to_string(),
        })?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .map(str::to_owned)
        .ok_or_else(|| ShieldError::Firewall {
            step: "reading the container's first process".into(),
            detail: format!("unexpected /proc/{pid}/stat"),
        })
}

/// Runs `nft args…` in the network namespace `netns` (a `/proc/PID/ns/net` path), with
/// `stdin` piped in; its stdout, or its stderr as the error of `step`.
pub(crate) fn nft_in(
    netns: &str,
    args: &[&str],
    stdin: Option<&str>,
    step: &str,
) -> Result<String, ShieldError> {
    let mut command = crate::tools::command(crate::tools::path_of("nsenter"));
    command
        .arg(format!("--net={netns}"))
        .arg("--")
        .arg(crate::tools::path_of("nft"));
    command.args(args);
    let failed = |detail: String| ShieldError::Firewall {
        step: step.to_owned(),
        detail,
    };
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run nsenter and nft: {e}")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| failed(format!("cannot write to nft: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("waiting for nft: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(failed(
            terok_core::text::printable(stderr.trim()).into_owned(),
        ))
    }
}

/// The file podman mounts as the container's `/etc/resolv.conf` (found through the bundle's
/// mounts); none when there is no such mount.
fn resolv_conf_of(bundle: &Path) -> Option<PathBuf> {
    let config = secure_fs::read_nofollow(&bundle.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&config).ok()?;
    config["mounts"]
        .as_array()?
        .iter()
        .find(|m| m["destination"] == "/etc/resolv.conf")
        .and_then(|m| m["source"].as_str())
        .map(PathBuf::from)
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn name_servers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_on_the_hosts_network_is_refused_before_anything_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        // This process is in the host's namespace: so is a container with its pid.
        let container = ContainerState {
            pid: std::process::id(),
            stopped: false,
            bundle: dir.path().to_path_buf(),
            shield_dir: dir.path().to_path_buf(),
        };
        let err = load_into(&container).unwrap_err().to_string();
        assert!(err.contains("shares the host's network namespace"), "{err}");
    }

    #[test]
    fn the_hook_definition_selects_by_annotation_and_runs_the_program() {
        let text = hook_definition(
            Path::new("/usr/bin/terok-executor"),
            &["shield".into(), "hook".into()],
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["hook"]["path"], "/usr/bin/terok-executor");
        assert_eq!(value["hook"]["args"][0], "/usr/bin/terok-executor");
        assert_eq!(value["hook"]["args"][2], "hook");
        assert_eq!(value["when"]["annotations"]["^ai\\.terok\\.shield$"], ".+");
        assert_eq!(value["stages"][0], "createRuntime");
    }

    #[test]
    fn the_state_gives_the_process_bundle_and_shield_directory() {
        let state = r#"{"ociVersion":"1.0.2","id":"x","status":"creating","pid":4242,
            "bundle":"/var/lib/b","annotations":{"ai.terok.shield":"/t/shield"}}"#;
        let parsed = ContainerState::parse(state).unwrap();
        assert_eq!(parsed.pid, 4242);
        assert_eq!(parsed.shield_dir, PathBuf::from("/t/shield"));
        assert!(ContainerState::parse(r#"{"pid":0,"bundle":"/b"}"#).is_err());
        let relative = state.replace("/t/shield", "t/shield");
        assert!(ContainerState::parse(&relative).is_err());
    }

    #[test]
    fn name_servers_are_read_from_resolv_conf() {
        let text =
            "search lan\nnameserver 10.0.2.3\nnameserver fe80::1%eth0\n# nameserver 1.1.1.1\n";
        assert_eq!(
            name_servers(text),
            [
                "10.0.2.3".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }
}
