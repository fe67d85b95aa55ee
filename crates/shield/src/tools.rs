//! The host tools the shield runs (`nft`, `nsenter`, `dnsmasq`, `setpriv`, `kill`): where they
//! are looked for — the `sbin` directories too, which an unprivileged user's PATH often lacks
//! and podman's empty hook environment lacks altogether — and how they are started: never with
//! terok's secrets in their environment.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the tools are looked for, in order (also the hook's PATH).
pub const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Where `tool` is, if it is in one of [`TOOL_DIRS`].
pub fn find(tool: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.is_file())
}

/// `tool`'s path, or its bare name (for PATH to find, or the spawn to fail naming it).
pub fn path_of(tool: &str) -> PathBuf {
    find(tool).unwrap_or_else(|| tool.into())
}

/// The hook's `PATH=` entry.
pub(crate) fn hook_path() -> String {
    format!("PATH={}", TOOL_DIRS.join(":"))
}

/// `program` ready to run, with terok's secrets removed from its environment.
pub(crate) fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for var in terok_core::env::SECRET_VARS {
        command.env_remove(var);
    }
    command
}
