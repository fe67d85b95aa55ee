//! Reaching a krun guest: its first process is `terok-krun-guest` (sshd, as root), and the
//! host runs commands in it over SSH as `dev` with the `%host` key — where a runc container is
//! reached with `podman exec`. The guest's SSH port is forwarded to this host's loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use terok_podman::{LogStream, OUTPUT_LIMIT, bounded_output, stream_child};
use tokio::time::Instant;

use crate::keypair::KrunError;

/// The guest's first process (in L0).
pub const GUEST_ENTRY: &str = "terok-krun-guest";
/// The guest's SSH port.
pub const GUEST_SSH_PORT: u16 = 22;
/// Where the guest's first process leaves the task's environment for `dev`'s SSH sessions
/// (podman hands it to that process only).
pub const GUEST_ENV_FILE: &str = "/run/terok-guest.env";
/// How long one login attempt may take while the guest starts.
const LOGIN_ATTEMPT_LIMIT: Duration = Duration::from_secs(5);
/// The pause between login attempts.
const LOGIN_RETRY: Duration = Duration::from_millis(200);

/// How to reach one guest over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestShell {
    /// The loopback port the guest's sshd is forwarded to.
    pub port: u16,
    /// The `%host` private key.
    pub identity: PathBuf,
    /// Where the guest's host key is remembered (one file per guest: first use trusts it,
    /// a changed key afterwards is refused).
    pub known_hosts: PathBuf,
}

impl GuestShell {
    /// A guest on `port`, reached with `identity`, its host key kept in `known_hosts`.
    pub fn new(port: u16, identity: &Path, known_hosts: &Path) -> Self {
        Self {
            port,
            identity: identity.to_path_buf(),
            known_hosts: known_hosts.to_path_buf(),
        }
    }

    /// `ssh` running `remote` (one shell command line) in the guest as `dev`: only the `%host`
    /// key is offered, no agent or forwarding, never a password prompt. The caller runs it
    /// (and reads or streams its output).
    pub fn command(&self, remote: &str) -> Command {
        let mut ssh = Command::new("ssh");
        // ssh inherits nothing of the vault's secrets.
        for var in terok_core::env::SECRET_VARS {
            ssh.env_remove(var);
        }
        // No ssh_config (the user's or the system's): a `Host` block there must not add a
        // ProxyCommand, another identity or agent forwarding to the guest's connection.
        ssh.args(["-F", "/dev/null"])
            .arg("-i")
            .arg(&self.identity)
            .args(["-p", &self.port.to_string()])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "ForwardAgent=no",
                "-o",
                "ForwardX11=no",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "IdentityAgent=none"])
            .arg("-o")
            .arg(format!("ConnectTimeout={}", LOGIN_ATTEMPT_LIMIT.as_secs()))
            .args(["dev@127.0.0.1", "--", remote]);
        ssh
    }

    /// `command` in the guest's task environment (the one podman gave the guest's first
    /// process), in the workspace, through a login shell — as a container's command runs.
    pub fn task_command(&self, command: &str) -> Command {
        self.command(&task_shell_line(command))
    }

    /// [`Self::task_command`], its output streamed line by line; [`LogStream::finish`] gives
    /// the command's exit code (255: ssh itself failed).
    pub fn stream(&self, command: &str) -> Result<LogStream, KrunError> {
        let mut ssh = tokio::process::Command::from(self.task_command(command));
        let child = ssh
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| KrunError::Ssh(format!("cannot run ssh: {e}")))?;
        Ok(stream_child(child))
    }

    /// Waits until the guest's sshd lets the `%host` key in as `dev`, until `deadline`, while
    /// `alive` says the guest still runs. The error says why the last attempt failed.
    pub async fn wait_for_login(
        &self,
        deadline: Instant,
        mut alive: impl AsyncFnMut() -> bool,
    ) -> Result<(), KrunError> {
        loop {
            let probe = tokio::process::Command::from(self.command("true"));
            let attempt = bounded_output(probe, OUTPUT_LIMIT);
            let last = match tokio::time::timeout(LOGIN_ATTEMPT_LIMIT, attempt).await {
                Ok(Ok(out)) if out.status == 0 => return Ok(()),
                // What the guest's side said may reach a terminal: shown, not obeyed.
                Ok(Ok(out)) => terok_core::text::printable(out.stderr.trim()).into_owned(),
                Ok(Err(e)) => return Err(KrunError::Ssh(format!("cannot run ssh: {e}"))),
                Err(_) => "the attempt timed out".to_owned(),
            };
            if !alive().await {
                return Err(KrunError::GuestEnded);
            }
            if Instant::now() >= deadline {
                return Err(KrunError::GuestUnreachable { last });
            }
            tokio::time::sleep(LOGIN_RETRY).await;
        }
    }

    /// The command a person runs to log in to the guest, for printing.
    pub fn login_line(&self) -> String {
        let words = vec![
            "ssh".to_owned(),
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-i".to_owned(),
            self.identity.display().to_string(),
            "-p".to_owned(),
            self.port.to_string(),
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "dev@127.0.0.1".to_owned(),
        ];
        words
            .iter()
            .map(|w| sh_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The remote command line that runs `command` as a container's command runs: the task's
/// environment loaded from [`GUEST_ENV_FILE`], in the workspace, in a login shell.
fn task_shell_line(command: &str) -> String {
    let inner = format!(
        "set -a; . {GUEST_ENV_FILE}; set +a; cd \"${{REPO_ROOT:-/workspace}}\" && exec bash -lc {}",
        sh_quote(command)
    );
    format!("bash -c {}", sh_quote(&inner))
}

/// `text` in single quotes for a POSIX shell.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `text` as one shell word: as it is when nothing in it is special, quoted otherwise.
fn sh_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        text.to_owned()
    } else {
        sh_quote(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_offers_only_the_host_key_and_never_asks() {
        let shell = GuestShell::new(2222, Path::new("/r/k"), Path::new("/r/kh"));
        let cmd = shell.command("echo hi");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        for needle in [
            "-F /dev/null",
            "ConnectTimeout=5",
            "-i /r/k",
            "-p 2222",
            "IdentitiesOnly=yes",
            "BatchMode=yes",
            "UserKnownHostsFile=/r/kh",
            "IdentityAgent=none",
            "dev@127.0.0.1 -- echo hi",
        ] {
            assert!(joined.contains(needle), "{needle} in {joined}");
        }
        let envs: Vec<_> = cmd
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.is_none()))
            .collect();
        for var in terok_core::env::SECRET_VARS {
            assert!(envs.contains(&(var.into(), true)), "{var} is removed");
        }
    }
}
