//! Storing a credential for an agent: an API key, or an OAuth login in an auth container whose
//! result is captured into the credential database. Real credentials go into the database
//! only; the shared mount gets at most the vendor's non-secret state and, for agents whose own
//! config names the vault, that config.

use std::path::{Path, PathBuf};

use terok_credentials::auth::{apply_post_capture_state, capture, store_api_key};
use terok_credentials::patch::{self, VaultAddress};
use terok_image_build::BuildEvent;
use terok_podman::{ContainerRuntime, RunSpec, Sharing, UserMapping, VolumeSpec};
use terok_roster::model::AuthMode;
use terok_roster::{AuthProvider, Provider, Roster};
use terok_vault::paths::{CONTAINER_SOCKET, LOOPBACK_PORT};

use crate::error::ExecutorError;
use crate::images::ImageChoice;
use crate::session::Executor;

/// How a provider can be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthOptions {
    /// The provider the credential is stored for.
    pub provider: String,
    /// Its label.
    pub label: String,
    /// An OAuth / interactive login in an auth container is possible.
    pub login: bool,
    /// An API key is accepted.
    pub api_key: bool,
    /// Where to get an API key.
    pub api_key_hint: Option<String>,
    /// What to know before the login starts.
    pub banner_hint: Option<String>,
}

/// A credential was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stored {
    /// The provider.
    pub provider: String,
    /// The stored credential's type (`api_key`, `oauth`, …).
    pub kind: String,
    /// The agent's own config file, pointed at the vault (for agents that need it).
    pub vault_config: Option<PathBuf>,
}

/// Progress of a login.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AuthEvent {
    /// Image preparation (the login runs in the agent's image).
    Image(BuildEvent),
    /// The login container starts; the terminal belongs to it until it ends.
    LoginStarting {
        /// The provider's label.
        label: String,
        /// What to know before the login starts.
        banner_hint: Option<String>,
        /// The command run in the container.
        command: Vec<String>,
    },
}

/// How a login ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// The credential the login left behind was stored.
    Stored(Stored),
    /// The user stopped the login (Ctrl-C); nothing was stored.
    Cancelled,
}

/// The auth container for an OAuth login: the login command of `auth` in `image`, with
/// `login_dir` (an empty private directory) as its only mount.
pub fn auth_container(
    auth: &AuthProvider,
    image: &str,
    login_dir: &Path,
    user_mapping: UserMapping,
) -> Option<RunSpec> {
    let command = auth.spec.command.clone()?;
    let mut publish = Vec::new();
    let mut args = auth.spec.extra_run_args.iter();
    while let Some(arg) = args.next() {
        if matches!(arg.as_str(), "-p" | "--publish")
            && let Some(value) = args.next()
        {
            publish.push(value.clone());
        }
    }
    Some(RunSpec {
        name: format!("host-auth-{}", auth.name),
        image: image.to_owned(),
        command,
        volumes: vec![VolumeSpec {
            host: login_dir.to_path_buf(),
            container: auth.spec.container_mount.clone(),
            sharing: Sharing::Private,
            read_only: false,
        }],
        user_mapping,
        remove_on_exit: true,
        tty: true,
        publish,
        ..RunSpec::default()
    })
}

/// The provider `name` stores its key under when no entry can log in to it: the provider of
/// the entry `name`, or the provider (or alias) `name`.
fn key_only_provider<'r>(roster: &'r Roster, name: &str) -> Option<&'r Provider> {
    match roster.get(name) {
        Some(entry) => roster.provider_for(entry),
        None => roster.provider(name),
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// How `agent` (an agent or tool of the roster) can be authenticated.
    ///
    /// `agent` may also name a provider (or its roster v3 alias), or an entry of a provider that
    /// none of its entries can log in to: an API key is then the way.
    pub fn auth_options(&self, agent: &str) -> Result<AuthOptions, ExecutorError> {
        let roster = self.roster()?;
        let auth = match roster.auth_provider(agent) {
            Ok(auth) => auth,
            Err(err) => {
                let provider = key_only_provider(roster, agent).ok_or(err)?;
                return Ok(AuthOptions {
                    login: false,
                    api_key: true,
                    provider: provider.name.clone(),
                    label: provider
                        .label
                        .clone()
                        .unwrap_or_else(|| provider.name.clone()),
                    api_key_hint: None,
                    banner_hint: None,
                });
            }
        };
        Ok(AuthOptions {
            login: auth.spec.modes.contains(&AuthMode::Oauth) && auth.spec.command.is_some(),
            api_key: auth.spec.modes.contains(&AuthMode::ApiKey),
            provider: auth.credential.clone(),
            label: auth.label.clone(),
            api_key_hint: auth.spec.api_key_hint.clone(),
            banner_hint: auth.spec.banner_hint.clone(),
        })
    }

    /// Stores `key` (trimmed; an empty one is refused and nothing is stored) for `agent`'s
    /// provider, records the vendor's post-login state, and points the agent's own config at
    /// the vault where it needs that.
    ///
    /// `agent` may also name a provider (or its roster v3 alias): the key is stored once for
    /// every agent using it.
    pub fn store_api_key(&self, agent: &str, key: &str) -> Result<Stored, ExecutorError> {
        let roster = self.roster()?;
        let auth = match roster.auth_provider(agent) {
            Ok(auth) => auth,
            // A provider that none of its agents can log in to still takes a key.
            Err(err) => match key_only_provider(roster, agent) {
                Some(provider) => {
                    store_api_key(&self.open_db()?, &provider.name, key)?;
                    return Ok(Stored {
                        vault_config: None,
                        provider: provider.name.clone(),
                        kind: "api_key".to_owned(),
                    });
                }
                None => return Err(err.into()),
            },
        };
        store_api_key(&self.open_db()?, &auth.credential, key)?;
        apply_post_capture_state(&auth, &self.paths.mounts_dir)?;
        Ok(Stored {
            vault_config: self.point_config_at_vault(&auth)?,
            provider: auth.credential,
            kind: "api_key".to_owned(),
        })
    }

    /// Runs `agent`'s login command in an auth container attached to this terminal (building
    /// its image first, on `base_image` or config.yml's), then stores what it left behind.
    pub async fn oauth_login(
        &self,
        agent: &str,
        base_image: Option<String>,
        on_event: &mut (dyn FnMut(AuthEvent) + Send),
    ) -> Result<LoginOutcome, ExecutorError> {
        let auth = self.roster()?.auth_provider(agent)?;
        if auth.spec.command.is_none() {
            return Err(ExecutorError::NoLoginCommand {
                label: auth.label.clone(),
            });
        }
        let request = self.build_request(&ImageChoice {
            base: base_image,
            agents: Some(auth.name.clone()),
            ..ImageChoice::default()
        })?;
        let built = self
            .ensure_images(&request, &mut |e| on_event(AuthEvent::Image(e)))
            .await?;
        let work = self.paths.executor_state_dir.join("auth");
        terok_core::secure_fs::ensure_private_dir(&work)?;
        let login_dir = fresh_dir(&work, &auth.name)?;
        let result = self
            .login_in(&auth, &built.l1.tag, &login_dir, on_event)
            .await;
        // The login directory held the real credential: it goes whatever happened.
        let _ = std::fs::remove_dir_all(&login_dir);
        result
    }

    async fn login_in(
        &self,
        auth: &AuthProvider,
        image: &str,
        login_dir: &Path,
        on_event: &mut (dyn FnMut(AuthEvent) + Send),
    ) -> Result<LoginOutcome, ExecutorError> {
        let user = self.container_user(None)?;
        if let Some(rootful) = &user.rootful {
            rootful
                .hand_over(&[login_dir.to_path_buf()])
                .map_err(ExecutorError::io(
                    "cannot hand the login directory to the container's user",
                ))?;
        }
        let spec = auth_container(auth, image, login_dir, user.mapping).ok_or_else(|| {
            ExecutorError::NoLoginCommand {
                label: auth.label.clone(),
            }
        })?;
        on_event(AuthEvent::LoginStarting {
            label: auth.label.clone(),
            banner_hint: auth.spec.banner_hint.clone(),
            command: spec.command.clone(),
        });
        self.runtime.remove(&spec.name).await?;
        let env_dir = login_dir.parent().unwrap_or(login_dir);
        match self.runtime.run_attached(&spec, env_dir).await? {
            0 => {}
            130 => return Ok(LoginOutcome::Cancelled),
            code => return Err(ExecutorError::LoginFailed { code }),
        }
        let captured = capture(&self.open_db()?, auth, login_dir, &self.paths.mounts_dir)?;
        Ok(LoginOutcome::Stored(Stored {
            provider: auth.credential.clone(),
            kind: captured.kind.to_owned(),
            vault_config: self.point_config_at_vault(auth)?,
        }))
    }

    /// Points the agent's own config file at the vault, if its provider has a config patch.
    fn point_config_at_vault(&self, auth: &AuthProvider) -> Result<Option<PathBuf>, ExecutorError> {
        let Some(provider) = self.roster()?.provider(&auth.credential) else {
            return Ok(None);
        };
        let Some(config_patch) = &provider.shared_config_patch else {
            return Ok(None);
        };
        let shared = self.paths.mounts_dir.join(&auth.spec.host_dir);
        let address = VaultAddress {
            url: format!("http://localhost:{LOOPBACK_PORT}"),
            socket: CONTAINER_SOCKET.to_owned(),
        };
        patch::apply(&shared, &auth.credential, config_patch, &address, false)?;
        Ok(Some(shared.join(&config_patch.file)))
    }
}

/// A new, empty, private directory under `parent` for one login.
fn fresh_dir(parent: &Path, name: &str) -> Result<PathBuf, ExecutorError> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|_| ExecutorError::Rng)?;
    let dir = parent.join(format!("login-{name}-{}", hex::encode(bytes)));
    terok_core::secure_fs::ensure_private_dir(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_container_mounts_only_the_login_dir() {
        let roster = terok_roster::RosterLoader::bundled().load().unwrap();
        let codex = roster.auth_provider("codex").unwrap();
        let spec = auth_container(
            &codex,
            "terok-l1-cli:x",
            Path::new("/tmp/login"),
            UserMapping::KeepId,
        )
        .unwrap();
        assert_eq!(spec.volumes.len(), 1);
        assert_eq!(spec.volumes[0].container, "/home/dev/.codex");
        assert_eq!(spec.publish, ["127.0.0.1:1455:1455"]);
        assert_eq!(spec.command, ["setup-codex-auth.sh"]);
        assert!(spec.tty && spec.remove_on_exit);
        assert!(
            auth_container(
                &roster.auth_provider("vibe").unwrap(),
                "x",
                Path::new("/t"),
                UserMapping::KeepId
            )
            .is_none()
        );
    }
}
