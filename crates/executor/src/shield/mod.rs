//! The egress firewall in a launch and on a running task: which mode a launch gets, the
//! task's shield directory and the podman arguments that have the OCI hook load it, and the
//! live `status`, `allow` and `deny` of a running task.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use terok_podman::ContainerRuntime;
use terok_shield::live::{LiveSets, parse_sets, sets_script};
use terok_shield::{
    ContainerArgs, Network, Profile, Settings, ShieldDir, ShieldState, TABLE, container_args,
    state_from_profiles,
};

use crate::error::ExecutorError;
use crate::launch::options::Egress;
use crate::session::Executor;
use crate::task::TaskRecord;

pub(crate) mod hook;

pub use hook::{ShieldHook, run_shield_hook};

/// Tools the hook runs on the host.
const HOST_TOOLS: [&str; 2] = ["nft", "nsenter"];

/// Whether only root can change `program` (when it exists): it and every directory above it
/// belong to root and are writable by no one else — except sticky directories such as `/tmp`,
/// where others cannot replace root's entries. A `terok-executor` run from a build directory
/// inside a workspace an agent writes fails this.
fn only_root_can_change(program: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(real) = fs_err::canonicalize(program) else {
        return Ok(());
    };
    for path in real.ancestors() {
        let meta = fs_err::metadata(path).map_err(|e| e.to_string())?;
        let sticky_root_dir = meta.is_dir() && meta.mode() & 0o1000 != 0 && meta.uid() == 0;
        if meta.uid() != 0 {
            return Err(format!("{} belongs to uid {}", path.display(), meta.uid()));
        }
        if meta.mode() & 0o022 != 0 && !sticky_root_dir {
            return Err(format!("{} is writable by others", path.display()));
        }
    }
    Ok(())
}

/// The host tools the shield needs that are missing.
pub fn missing_shield_tools() -> Vec<&'static str> {
    HOST_TOOLS
        .into_iter()
        .filter(|tool| terok_shield::tools::find(tool).is_none())
        .collect()
}

/// The addresses `domain` has now, as this host resolves it (none when it does not).
pub fn resolve_on_host(domain: &str) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = (domain, 0)
        .to_socket_addrs()
        .map(|found| found.map(|a| a.ip()).collect())
        .unwrap_or_default();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// What `shield status` reports of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShieldStatus {
    /// The container.
    pub name: String,
    /// `allowlist`, or how else the task runs.
    pub mode: String,
    /// The saved state (profiles, domains, policy).
    pub state: Option<ShieldState>,
    /// Whether the hook loaded the ruleset at the container's last start.
    pub applied: bool,
    /// What the loaded firewall holds (when the container runs).
    pub live: Option<LiveSets>,
}

/// What a live `allow` or `deny` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShieldChange {
    /// The container.
    pub name: String,
    /// The blocks allowed or denied now.
    pub networks: Vec<Network>,
    /// Whether the running firewall took the change (a stopped task gets it at its next start).
    pub live: bool,
}

impl<R: ContainerRuntime> Executor<R> {
    /// The egress a launch gets: the one asked for, else config.yml's (`allowlist`, or `open`
    /// with `shield.bypass_firewall_no_protection`).
    pub fn egress_for(&self, asked: Option<Egress>) -> Egress {
        asked.unwrap_or(if self.config.config.shield.bypass_firewall_no_protection {
            Egress::Open
        } else {
            Egress::Allowlist
        })
    }

    /// Where user profiles live: `<config dir>/shield/profiles`.
    pub fn shield_profiles_dir(&self) -> PathBuf {
        self.paths.user_config_dir.join("shield").join("profiles")
    }

    /// The directory of the shield's OCI hook definition.
    pub fn shield_hooks_dir(&self) -> PathBuf {
        self.paths.executor_state_dir.join("shield").join("hooks.d")
    }

    /// The configured profiles, loaded (the check a launch makes before it creates anything).
    pub(crate) fn shield_profiles(&self) -> Result<Vec<Profile>, ExecutorError> {
        Ok(Profile::load_all(
            &self.config.config.shield.profiles,
            &self.shield_profiles_dir(),
        )?)
    }

    /// What an `allowlist` launch needs from the host: the hook program, `nft` and `nsenter`.
    pub(crate) fn check_shield_ready(&self) -> Result<&ShieldHook, ExecutorError> {
        let missing = missing_shield_tools();
        if !missing.is_empty() {
            return Err(ExecutorError::ShieldToolsMissing(
                missing.iter().map(|t| (*t).to_owned()).collect(),
            ));
        }
        let hook = self
            .shield_hook
            .as_ref()
            .ok_or(ExecutorError::NoShieldHook)?;
        // Rootful podman runs the hook as root: only root may be able to change it.
        if self.env.is_root()
            && let Err(detail) = only_root_can_change(hook.program())
        {
            return Err(ExecutorError::UnsafeShieldHook {
                program: hook.program().to_path_buf(),
                detail,
            });
        }
        Ok(hook)
    }

    /// Writes the shield's OCI hook definition (an unchanged one is left alone) and returns
    /// its directory; every `allowlist` launch and start does this too.
    pub fn install_shield_hook(&self) -> Result<PathBuf, ExecutorError> {
        let hook = self.check_shield_ready()?;
        let dir = self.shield_hooks_dir();
        terok_shield::hook::install_hook(&dir, hook.program(), hook.args())?;
        Ok(dir)
    }

    /// The system's OCI hooks directory, where `setup --root` puts the shield's hook for every
    /// podman of the host (`TEROK_SYSTEM_HOOKS_DIR` names another, for packagers and tests).
    pub fn system_hooks_dir(&self) -> PathBuf {
        self.env
            .path_var("TEROK_SYSTEM_HOOKS_DIR")
            .unwrap_or_else(|| PathBuf::from("/etc/containers/oci/hooks.d"))
    }

    /// `setup --root`: the shield's hook in the system's hooks directory too (root only).
    pub fn install_system_shield_hook(&self) -> Result<PathBuf, ExecutorError> {
        if !self.env.is_root() {
            return Err(ExecutorError::NeedsRoot {
                what: format!(
                    "installing the shield's hook in {}",
                    self.system_hooks_dir().display()
                ),
            });
        }
        let hook = self.check_shield_ready()?;
        let dir = self.system_hooks_dir();
        terok_shield::hook::install_hook(&dir, hook.program(), hook.args())?;
        Ok(dir.join(terok_shield::hook::HOOK_FILE))
    }

    /// `uninstall --root`: the system-wide hook removed, when it is terok's (a file of that
    /// name that is not is left alone); its path when it was removed.
    pub fn remove_system_shield_hook(&self) -> Result<Option<PathBuf>, ExecutorError> {
        let file = self.system_hooks_dir().join(terok_shield::hook::HOOK_FILE);
        let Ok(text) = terok_core::secure_fs::read_nofollow_limited(&file, 64 * 1024) else {
            return Ok(None);
        };
        // Ours selects containers by the shield's annotation.
        let ours = format!("^{}$", terok_shield::hook::ANNOTATION.replace('.', "\\."));
        let selects_ours = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|hook| hook.pointer("/when/annotations").cloned())
            .and_then(|a| a.as_object().map(|m| m.contains_key(&ours)))
            .unwrap_or(false);
        if !selects_ours {
            return Ok(None);
        }
        if !self.env.is_root() {
            return Err(ExecutorError::NeedsRoot {
                what: format!("removing {}", file.display()),
            });
        }
        terok_core::secure_fs::remove_file(&file)?;
        Ok(Some(file))
    }

    /// A new task's shield: state from the profiles, saved in `task_dir/shield`, the hook
    /// installed; the podman arguments that have it load the state.
    pub(crate) fn prepare_shield(
        &self,
        task_dir: &Path,
        profiles: &[Profile],
        ingress_ports: &[u16],
        host_services: &[std::net::SocketAddr],
    ) -> Result<ContainerArgs, ExecutorError> {
        let shield = self.config.config.shield.clone();
        let upstream = match shield.upstream_dns.as_deref() {
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| ExecutorError::BadSetting {
                        key: "shield.upstream_dns".into(),
                        detail: format!("`{text}` is not an IP address"),
                    })?,
            ),
            None => None,
        };
        let settings = Settings {
            audit: shield.audit.unwrap_or(true),
            upstream_dns: upstream,
            forwarder: terok_shield::forwarder::available(),
        };
        // With the forwarder, a domain's addresses are learned as the container resolves it
        // (through the same name servers); without, they are what this host resolves now.
        let mut resolve = |domain: &str| {
            if settings.forwarder {
                Vec::new()
            } else {
                resolve_on_host(domain)
            }
        };
        let mut state = state_from_profiles(profiles, &settings, &mut resolve);
        state.policy.ingress_ports = ingress_ports.to_vec();
        state.policy.host_services = host_services.to_vec();
        let dir = ShieldDir::new(task_dir.join("shield"));
        dir.save(&state)?;
        let hooks_dir = self.install_shield_hook()?;
        dir.prepare_start()?;
        Ok(container_args(&dir, &state, &hooks_dir))
    }

    /// The shield directory of a task.
    fn task_shield_dir(&self, record: &TaskRecord) -> ShieldDir {
        ShieldDir::new(self.task_store().layout(&record.id).dir.join("shield"))
    }

    /// Before a shielded task starts again: a fresh stamp is needed, and the hook.
    pub(crate) fn reshield(&self, record: &TaskRecord) -> Result<Vec<PathBuf>, ExecutorError> {
        if !record.shielded {
            return Ok(Vec::new());
        }
        let hooks_dir = self.install_shield_hook()?;
        self.task_shield_dir(record).prepare_start()?;
        Ok(vec![hooks_dir])
    }

    /// After a failed start: the permit (if the hook did not take it) and the stamp removed.
    pub(crate) fn withdraw_shield_permit(&self, record: &TaskRecord) {
        if record.shielded {
            self.task_shield_dir(record).retire();
        }
    }

    /// The mode, state and live sets of task `name`'s firewall.
    pub async fn shield_status(&self, name: &str) -> Result<ShieldStatus, ExecutorError> {
        let (container, record) = self.shielded_task(name).await?;
        let Some(record) = record.filter(|r| r.shielded) else {
            return Ok(ShieldStatus {
                name: container,
                mode: "not shielded (offline or open)".into(),
                state: None,
                applied: false,
                live: None,
            });
        };
        let dir = self.task_shield_dir(&record);
        let state = dir.load()?;
        let applied = dir.stamp_file().is_file();
        // (The stamp is the hook's, of the container's last start.)
        let live = self
            .nft_in_task(&container, &["-j", "list", "table", "inet", TABLE], None)
            .await?
            .and_then(|listing| parse_sets(&listing));
        Ok(ShieldStatus {
            name: container,
            mode: "allowlist".into(),
            state: Some(state),
            applied,
            live,
        })
    }

    /// Allows `target` (a domain, an address or a block) for task `name`, at once when it runs.
    pub async fn shield_allow(
        &self,
        name: &str,
        target: &str,
    ) -> Result<ShieldChange, ExecutorError> {
        self.change_shield(name, target, ShieldState::allow).await
    }

    /// Refuses `target` for task `name`, even where a profile allows it.
    pub async fn shield_deny(
        &self,
        name: &str,
        target: &str,
    ) -> Result<ShieldChange, ExecutorError> {
        self.change_shield(name, target, ShieldState::deny).await
    }

    async fn change_shield(
        &self,
        name: &str,
        target: &str,
        change: fn(&mut ShieldState, Network),
    ) -> Result<ShieldChange, ExecutorError> {
        let networks = networks_of(target)?;
        let (container, record) = self.shielded_task(name).await?;
        let record = record
            .filter(|r| r.shielded)
            .ok_or_else(|| ExecutorError::NotShielded(container.clone()))?;
        let dir = self.task_shield_dir(&record);
        let mut state = dir.load()?;
        for network in &networks {
            change(&mut state, *network);
        }
        // Saved first: a restart loads the change even if the live update fails.
        dir.save(&state)?;
        let script = sets_script(&state.policy);
        let live = self
            .nft_in_task(&container, &["-f", "-"], Some(&script))
            .await?
            .is_some();
        Ok(ShieldChange {
            name: container,
            networks,
            live,
        })
    }

    /// Runs `nft args…` in the network namespace of `container`: its output, or `None` when
    /// the container does not run.
    async fn nft_in_task(
        &self,
        container: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Option<String>, ExecutorError> {
        let mut argv = vec![terok_shield::tools::path_of("nft").display().to_string()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        match self.runtime.in_netns(container, &argv, stdin).await {
            Ok(out) if out.status == 0 => Ok(Some(out.stdout)),
            Ok(out) => Err(ExecutorError::ShieldLive {
                name: container.to_owned(),
                detail: terok_core::text::printable(out.stderr.trim()).into_owned(),
            }),
            Err(terok_podman::PodmanError::NotRunning(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The container of task `name` and its record.
    async fn shielded_task(
        &self,
        name: &str,
    ) -> Result<(String, Option<TaskRecord>), ExecutorError> {
        let container = self.our_container(name).await?;
        let record = self.task_store().find(&container);
        Ok((container, record))
    }
}

/// The blocks `target` names: itself when it is an address or a block, else the addresses
/// the domain has now.
fn networks_of(target: &str) -> Result<Vec<Network>, ExecutorError> {
    if let Some(network) = Network::parse(target) {
        return Ok(vec![network]);
    }
    let profile = Profile::parse("target", "the command line", target)
        .map_err(|_| ExecutorError::BadShieldTarget(target.to_owned()))?;
    if profile.destinations.is_empty() {
        return Err(ExecutorError::BadShieldTarget(target.to_owned()));
    }
    let addresses = resolve_on_host(target);
    if addresses.is_empty() {
        return Err(ExecutorError::Unresolved(target.to_owned()));
    }
    // A name never leads into a private, link-local or metadata range: such an address is
    // allowed by giving it literally.
    let public: Vec<Network> = addresses
        .iter()
        .filter(|addr| !terok_shield::is_blocked(**addr))
        .copied()
        .map(Network::host)
        .collect();
    if public.is_empty() {
        return Err(ExecutorError::PrivateName {
            name: target.to_owned(),
            addresses: addresses.iter().map(ToString::to_string).collect(),
        });
    }
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_hook_program_others_can_change_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("terok-executor");
        std::fs::write(&program, "").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = only_root_can_change(&program).unwrap_err();
        assert!(
            err.contains("writable by others") || err.contains("belongs to uid"),
            "{err}"
        );
        assert!(only_root_can_change(Path::new("/nonexistent/terok")).is_ok());
    }
}
