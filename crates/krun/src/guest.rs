//! Reaching a krun guest: its first process is `terok-krun-guest` (sshd, as root), and the
//! host runs commands in it over SSH as `dev` with the `%host` key — where a runc container is
//! reached with `podman exec`. The guest's SSH port is forwarded to this host's loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's first process (in L0).
pub const GUEST_ENTRY: &str = "terok-krun-guest";
/// The guest's SSH port.
pub const GUEST_SSH_PORT: u16 = 22;

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
            .args(["dev@127.0.0.1", "--", remote]);
        ssh
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
