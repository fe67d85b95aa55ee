//! Running git for the gate: never a hook, never the user's or the system's config (a mirror
//! is the gate's own), and no secret of terok's in its environment.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::error::GateError;

/// Refs no client of the gate sees or changes: the backups of what pushes and fetches
/// dropped (an agent that could delete them could lose work for good).
pub(crate) const HIDDEN_REFS: &str = "refs/terok";

/// The configuration of every git the gate runs: no hook; no replace ref (a pushed one
/// could make the review show other commits than promotion sends); no automatic gc or
/// maintenance (which could prune what a backup is about to keep); and fetches see only
/// branches and tags (not a local source's stash or remote-tracking refs, not the backups).
const GATE_CONFIG: [&str; 9] = [
    "core.hooksPath=/dev/null",
    "core.useReplaceRefs=false",
    "receive.fsckObjects=true",
    "receive.autogc=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "uploadpack.hideRefs=refs",
    "uploadpack.hideRefs=!refs/heads",
    "uploadpack.hideRefs=!refs/tags",
];

/// The environment every git of the gate's runs in: no global or system config, no
/// terminal prompts, no replace objects, none of terok's secrets.
fn isolate(command: &mut Command) {
    command
        .args(GATE_CONFIG.iter().flat_map(|c| ["-c", c]))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in terok_core::env::SECRET_VARS {
        command.env_remove(var);
    }
}

/// `git` with the gate's safety settings ([`GATE_CONFIG`], [`isolate`]).
pub(crate) fn command() -> Command {
    let mut command = Command::new("git");
    isolate(&mut command);
    command
}

/// Where `prlimit` may be (util-linux; a fixed list, not `PATH`).
const PRLIMIT: [&str; 2] = ["/usr/bin/prlimit", "/bin/prlimit"];

/// The limits of git run for a container's request: heap, size of a file written, CPU time.
/// A push of a few hundred bytes can declare a delta that inflates to any size, and a body
/// cut short once left git spinning; these bound what one request can take from the host.
const REQUEST_LIMITS: [&str; 3] = ["--data=4294967296", "--fsize=2147483648", "--cpu=1800"];

/// [`command`] under [`REQUEST_LIMITS`] (through `prlimit`); `None` when there is no
/// `prlimit` on this host, for the gate serves no request without its limits.
pub(crate) fn limited_command() -> Option<Command> {
    let prlimit = PRLIMIT.iter().find(|p| Path::new(p).is_file())?;
    let mut command = Command::new(prlimit);
    command.args(REQUEST_LIMITS).args(["--", "git"]);
    isolate(&mut command);
    Some(command)
}

/// Whether this host has what [`limited_command`] needs.
pub fn request_limits_available() -> bool {
    PRLIMIT.iter().any(|p| Path::new(p).is_file())
}

/// `git` as the user runs it (their configuration, credential helpers, SSH keys), for what
/// the gate does with the real remote on the user's behalf: cloning and fetching it into a
/// mirror, and promoting a branch to it. Hooks stay off.
pub(crate) fn user_command() -> Command {
    let mut command = Command::new("git");
    command
        .args(["-c", "core.hooksPath=/dev/null"])
        // No gc between a fetch and the backup of what it dropped.
        .args(["-c", "gc.auto=0", "-c", "maintenance.auto=false"])
        // What is promoted is what the review showed.
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in terok_core::env::SECRET_VARS {
        command.env_remove(var);
    }
    command
}

/// The environment of the user's git: `None` is this process's own.
pub(crate) type UserEnv = Option<Vec<(std::ffi::OsString, std::ffi::OsString)>>;

/// Runs `git args…` in `dir` (when given); its stdout.
pub(crate) async fn run(dir: Option<&Path>, args: &[&str]) -> Result<String, GateError> {
    output_of(command(), dir, args).await
}

/// Runs `git args…` as the user does (see [`user_command`]), in `dir` when given; its stdout.
pub(crate) async fn run_as_user(
    dir: Option<&Path>,
    args: &[&str],
    user_env: &UserEnv,
) -> Result<String, GateError> {
    let mut cmd = user_command();
    if let Some(env) = user_env {
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("GIT_NO_REPLACE_OBJECTS", "1");
        for var in terok_core::env::SECRET_VARS {
            cmd.env_remove(var);
        }
    }
    output_of(cmd, dir, args).await
}

async fn output_of(
    mut cmd: Command,
    dir: Option<&Path>,
    args: &[&str],
) -> Result<String, GateError> {
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    let output = cmd.args(args).output().await.map_err(GateError::NoGit)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(GateError::Git {
            command: args.join(" "),
            stderr: terok_core::text::printable(String::from_utf8_lossy(&output.stderr).trim())
                .into_owned(),
        })
    }
}

/// Runs `git args…` in `dir` with `input` on its stdin.
pub(crate) async fn run_with_input(
    dir: &Path,
    args: &[&str],
    input: &[u8],
) -> Result<(), GateError> {
    use tokio::io::AsyncWriteExt;
    let mut child = command()
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GateError::NoGit)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).await.map_err(GateError::NoGit)?;
    }
    let output = child.wait_with_output().await.map_err(GateError::NoGit)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(GateError::Git {
            command: args.join(" "),
            stderr: terok_core::text::printable(String::from_utf8_lossy(&output.stderr).trim())
                .into_owned(),
        })
    }
}

/// Every ref of the repository at `dir` with its object id, sorted by name.
pub(crate) async fn refs(dir: &Path) -> Result<Vec<(String, String)>, GateError> {
    let out = run(
        Some(dir),
        &["for-each-ref", "--format=%(refname) %(objectname)"],
    )
    .await?;
    let mut refs: Vec<(String, String)> = out
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, id)| (name.to_owned(), id.to_owned()))
        .collect();
    refs.sort();
    Ok(refs)
}

/// The names of every ref of the repository at `dir` as git has them: bytes, which need not
/// be UTF-8 (a name read lossily would not match the ref it came from).
pub(crate) async fn raw_ref_names(dir: &Path) -> Result<Vec<Vec<u8>>, GateError> {
    let output = command()
        .arg("-C")
        .arg(dir)
        .args(["for-each-ref", "--format=%(refname)"])
        .output()
        .await
        .map_err(GateError::NoGit)?;
    if !output.status.success() {
        return Err(GateError::Git {
            command: "for-each-ref".to_owned(),
            stderr: terok_core::text::printable(String::from_utf8_lossy(&output.stderr).trim())
                .into_owned(),
        });
    }
    Ok(output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|name| !name.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// Whether commit `old` is an ancestor of `new` in `dir` (a fast-forward).
pub(crate) async fn is_ancestor(dir: &Path, old: &str, new: &str) -> bool {
    command()
        .arg("-C")
        .arg(dir)
        .args(["merge-base", "--is-ancestor", old, new])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}
