//! A stand-in agent for launch tests: a roster entry whose binary runs its prompt as a bash
//! script (`-p 'exit 3'`, `-p 'sleep 60'`), installed into the L1 image by its own install
//! snippet like any user-defined agent. The real agents need a model server; this one lets the
//! runner's exit codes, timeouts and cleanup be tested against real containers.

use std::path::PathBuf;

use crate::IsolatedEnv;

/// Roster name of the stand-in agent.
pub const SCRIPTED_AGENT: &str = "scripted";

/// Its roster file.
pub const SCRIPTED_AGENT_YAML: &str = r#"# A stand-in agent for tests: runs its prompt as a bash script.
roster_version: 1
kind: native
label: Scripted test agent
binary: terok-scripted-agent
git_identity:
  name: Scripted
  email: scripted@localhost
headless:
  prompt_flag: "-c"
install:
  run_as_root: |
    RUN printf '#!/bin/bash\nexec bash "$@"\n' > /usr/local/bin/terok-scripted-agent \
     && chmod 0755 /usr/local/bin/terok-scripted-agent
"#;

/// The config.yml the launch tests use: the local debian base, Claude and the stand-in agent
/// (one L1 image shared by every launch test).
pub const LAUNCH_TEST_CONFIG: &str =
    "image:\n  base_image: localhost/debian:bookworm\n  agents: claude,scripted\n";

/// Installs the stand-in agent as a user roster override of `env` and returns its path.
pub fn install_scripted_agent(env: &IsolatedEnv) -> std::io::Result<PathBuf> {
    let dir = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{SCRIPTED_AGENT}.yaml"));
    std::fs::write(&path, SCRIPTED_AGENT_YAML)?;
    Ok(path)
}

/// Holds an exclusive lock shared by every test process of this user on this machine (e.g.
/// around a build of an image several tests need), released when dropped. Per user: each
/// has its own podman storage, and another user's lock file is not ours to open.
pub fn machine_lock(name: &str) -> std::io::Result<std::fs::File> {
    let uid = terok_core::env::HostEnv::from_process().euid();
    let path = PathBuf::from(format!("/var/tmp/terok-test-{name}-{uid}.lock"));
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    file.lock()?;
    Ok(file)
}
