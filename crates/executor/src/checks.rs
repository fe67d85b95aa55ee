//! What this host has and lacks for a launch, as data: podman, the images, the vault, the
//! agent's credential. The caller decides what to ask, fix or print (the CLI's preflight and
//! `setup --check`).

use terok_image_build::BuildRequest;
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::session::Executor;

/// One line of a host check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostCheck {
    /// What was checked (`podman`, `vault`, `image L1`, …).
    pub name: String,
    /// `Ok(detail)` when it is fine, `Err(detail)` when it is not.
    pub outcome: Result<String, String>,
    /// What works but costs the user (a slow storage driver), when something does.
    pub warning: Option<String>,
}

/// Why `vfs` storage is worth changing.
pub const VFS_STORAGE: &str = "podman stores images with vfs, which copies every layer in \
                                full: a first build takes several times longer and images take \
                                several times the disk";

impl HostCheck {
    fn new(name: impl Into<String>, outcome: Result<String, String>) -> Self {
        Self {
            name: name.into(),
            outcome,
            warning: None,
        }
    }

    /// Whether it is fine.
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// What [`Executor::setup_checks`] looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetupScope {
    /// The vault daemon.
    pub vault: bool,
    /// The images of this request.
    pub images: Option<BuildRequest>,
}

/// Whether the agent of a launch has a credential to use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialState {
    /// The agent routes no provider through the vault.
    NotNeeded,
    /// A credential of its provider is stored.
    Stored {
        /// The provider.
        provider: String,
    },
    /// None is stored: the agent will ask to log in.
    Missing {
        /// The provider.
        provider: String,
    },
}

impl<R: ContainerRuntime> Executor<R> {
    /// Podman, then (as asked) the vault and the images: one row each, in that order. Images
    /// are only looked at when podman answers.
    pub async fn setup_checks(&self, scope: &SetupScope) -> Vec<HostCheck> {
        let podman = self.podman_status().await.map_err(|e| e.to_string());
        let podman_ok = podman.is_ok();
        let mut rows = vec![HostCheck::new(
            "podman",
            podman.map(|()| "answers".to_owned()),
        )];
        if podman_ok {
            rows.push(self.storage_check().await);
        }
        if scope.vault {
            rows.push(HostCheck::new(
                "vault",
                match self.vault.status().await {
                    Some(_) => Ok("running".to_owned()),
                    None => Err("not running".to_owned()),
                },
            ));
            if let Some(row) = self.routes_row().await {
                rows.push(row);
            }
        }
        rows.push(self.shield_check());
        rows.push(gate_check());
        if let Some(found) = self.id_reservation() {
            let span = format!(
                "{}–{}",
                found.range.start,
                u64::from(found.range.start) + u64::from(found.range.count) - 1
            );
            rows.push(HostCheck::new(
                "container ids",
                if found.reserved {
                    Ok(format!("{span}, reserved"))
                } else {
                    Err(format!("{span} free, not reserved in subuid/subgid"))
                },
            ));
        }
        if let (true, Some(request)) = (podman_ok, &scope.images) {
            rows.extend(self.image_rows(request).await);
        }
        rows
    }

    /// Whether `allowlist` launches can work here: `nft` and `nsenter` on the host, a hook
    /// program; with the bypass set, a warning instead.
    pub fn shield_check(&self) -> HostCheck {
        if self.config.config.shield.bypass_firewall_no_protection {
            let mut row = HostCheck::new("shield", Ok("bypassed: tasks run unfiltered".to_owned()));
            row.warning = Some(
                "config.yml sets shield.bypass_firewall_no_protection: every task can reach \
                 this host's services, your LAN and the internet"
                    .to_owned(),
            );
            return row;
        }
        let outcome = match self.check_shield_ready() {
            Ok(_) if terok_shield::forwarder::available() => Ok(
                "allowlist: nft, nsenter and the hook are here; dnsmasq keeps domains current"
                    .to_owned(),
            ),
            Ok(_) => Ok(
                "allowlist: nft, nsenter and the hook are here; no dnsmasq with nftset, \
                 so domains are resolved at launch (Debian: apt-get install dnsmasq-base)"
                    .to_owned(),
            ),
            Err(ExecutorError::ShieldToolsMissing(tools)) => Err(format!(
                "missing {} (Debian: apt-get install nftables util-linux)",
                tools.join(" and ")
            )),
            Err(err) => Err(err.to_string()),
        };
        HostCheck::new("shield", outcome)
    }

    /// Podman's storage driver, with a warning when it is `vfs` (rootless podman falls back to
    /// it where overlay is not set up).
    pub async fn storage_check(&self) -> HostCheck {
        let driver = self
            .runtime
            .storage_driver()
            .await
            .map_err(|e| e.to_string());
        let slow = driver.as_deref() == Ok("vfs");
        let mut row = HostCheck::new("storage", driver);
        row.warning = slow.then(|| VFS_STORAGE.to_owned());
        row
    }

    /// Whether the running daemon serves the roster's routes (no row when it does not run).
    async fn routes_row(&self) -> Option<HostCheck> {
        let outcome = match self.route_changes().await {
            Ok(None) => return None,
            Ok(Some(changes)) if changes.is_empty() => Ok("the roster's".to_owned()),
            Ok(Some(changes)) => Err(format!(
                "an older roster's: {}",
                changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(err) => Err(err.to_string()),
        };
        Some(HostCheck::new("vault routes", outcome))
    }

    async fn image_rows(&self, request: &BuildRequest) -> Vec<HostCheck> {
        match self.image_states(request).await {
            Ok(states) => states
                .into_iter()
                .map(|s| {
                    let outcome = if s.present {
                        Ok(s.tag.clone())
                    } else {
                        Err(format!("{} not built", s.tag))
                    };
                    HostCheck::new(format!("image {}", s.layer), outcome)
                })
                .collect(),
            Err(err) => vec![HostCheck::new("images", Err(err.to_string()))],
        }
    }

    /// Whether `agent`'s provider has a stored credential. An unreadable database counts as
    /// none stored (the vault then reports the real problem when it starts).
    pub fn credential_state(&self, agent: &str) -> Result<CredentialState, ExecutorError> {
        let roster = self.roster()?;
        let Some(provider) = roster.provider_for(roster.agent(agent)?) else {
            return Ok(CredentialState::NotNeeded);
        };
        let provider = provider.name.clone();
        let stored = matches!(
            self.stored_credentials(),
            Ok(Some(list)) if list.iter().any(|c| c.provider == provider)
        );
        Ok(if stored {
            CredentialState::Stored { provider }
        } else {
            CredentialState::Missing { provider }
        })
    }
}

/// Whether git URLs (and `--gate` directories) can go through the git gate: git and its
/// `http-backend` on the host.
pub fn gate_check() -> HostCheck {
    let missing = crate::gate::gate_tools_missing();
    HostCheck::new(
        "gate",
        if missing.is_empty() {
            Ok("git, git-http-backend and prlimit are here".to_owned())
        } else {
            Err(format!(
                "missing {} (Debian: apt-get install git); until then run with --no-gate",
                missing.join(" and ")
            ))
        },
    )
}
