//! `run --emit kube`: a headless task as Kubernetes objects instead of a local container. The
//! launch's plan, images and environment are the local ones; what differs is where things
//! live — the workspace is cloned into the Pod, the task's files travel in a ConfigMap, and
//! the vault is a sidecar serving the task's own tokens from a Secret (docs/scale.md §4).
//! Nothing of the task is kept on this host: no task directory, no listener, no token in the
//! vault daemon.

use std::collections::BTreeMap;
use std::path::Path;

use terok_container_env::{
    AGENT_CONFIG_MOUNT, ContainerEnv, TaskLayout, VaultTransport, VaultWiring, WORKSPACE,
    Workspace, assemble_container_env,
};
use terok_credentials::routes::RouteTable;
use terok_credentials::{Credential, DEFAULT_SET, new_token, token_hash};
use terok_kube::{
    AgentContainer, CloneSource, Destination, Egress as KubeEgress, Manifests, TaskFile, TaskPod,
    VaultSidecar,
};
use terok_podman::{ContainerRuntime, LABEL_AGENT, LABEL_EXECUTOR, LABEL_TASK};
use terok_vault::SidecarBundle;
use terok_vault::paths::{CONTAINER_SOCKET_DIR, LOOPBACK_PORT, SOCKET_NAME};

use crate::error::{ExecutorError, KubeRefusal};
use crate::launch::options::{Egress, Mode, RunEvent, RunOptions};
use crate::launch::plan::LaunchPlan;
use crate::launch::{HOST_TIMEOUT_GRACE_SECS, OnRunEvent};
use crate::repo::RepoSource;
use crate::session::Executor;
use crate::task::{container_name, new_task_id};

/// A task written as Kubernetes objects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KubeTask {
    /// The Pod's name.
    pub name: String,
    /// The objects.
    pub manifests: Manifests,
    /// The images the Pod runs (a cluster must be able to pull them).
    pub images: Vec<String>,
    /// Providers whose real credential is in the Secret.
    pub providers: Vec<String>,
}

/// The real credentials a task's sidecar gets, with the agent's tokens for them.
struct SidecarCredentials {
    credentials: BTreeMap<String, Credential>,
    kinds: BTreeMap<String, String>,
    tokens: BTreeMap<String, String>,
}

impl<R: ContainerRuntime> Executor<R> {
    /// Writes the headless run `options` as a Pod with its vault sidecar, the ConfigMap of
    /// its files, the Secret of its credentials and its egress NetworkPolicy. Builds the
    /// agent's image and the vault's (the agent's with this session's sidecar program) when
    /// missing or stale; keeps no task directory, listener or token on this host.
    pub async fn emit_kube(
        &self,
        options: &RunOptions,
        on_event: OnRunEvent<'_>,
    ) -> Result<KubeTask, ExecutorError> {
        let plan = self.plan_launch(options)?;
        let clone = kube_clone(&plan)?;
        let routes: RouteTable = (self.roster_routes()?.into_iter())
            .filter(|(provider, _)| plan.providers.contains(provider))
            .collect();
        refuse_local_upstreams(&routes)?;
        for warning in plan.settings.warnings.iter().cloned() {
            on_event(RunEvent::Warning(warning));
        }
        let (agent_image, vault_image) = self.kube_images(&plan, on_event).await?;
        let id = new_task_id()?;
        let name = options.name.clone().unwrap_or_else(|| container_name(&id));
        let sidecar = self.sidecar_credentials(&plan.providers)?;
        for provider in plan.providers.iter() {
            if !sidecar.tokens.contains_key(provider) {
                on_event(RunEvent::Warning(format!(
                    "no credential is stored for `{provider}`: the Pod's vault has none to give"
                )));
            }
        }
        let deadline = plan.settings.timeout_secs + HOST_TIMEOUT_GRACE_SECS;
        warn_of_expiry(&sidecar.credentials, deadline, on_event);
        let staging = tempfile::Builder::new()
            .prefix("terok-kube-")
            .tempdir()
            .map_err(ExecutorError::io("cannot create a staging directory"))?;
        let layout = TaskLayout::new(staging.path());
        let wiring = VaultWiring {
            transport: VaultTransport::Socket {
                host_socket_dir: staging.path().join("vault"),
                container_socket_dir: CONTAINER_SOCKET_DIR.to_owned(),
                socket_name: SOCKET_NAME.to_owned(),
                loopback_port: LOOPBACK_PORT,
            },
            tokens: sidecar.tokens.clone(),
            kinds: sidecar.kinds.clone(),
        };
        let spec = self.container_env_spec(&plan, &id, &layout, Some(&wiring));
        let env = assemble_container_env(self.roster()?, &spec)?;
        for warning in &env.warnings {
            on_event(RunEvent::Warning(warning.clone()));
        }
        self.write_agent_config(&plan, &id, &layout, &env, on_event)?;
        let routes = (routes.into_iter())
            .filter(|(provider, _)| sidecar.credentials.contains_key(provider))
            .collect();
        let bundle = SidecarBundle {
            version: terok_vault::BUNDLE_VERSION,
            container: name.clone(),
            routes,
            token_hashes: (sidecar.tokens.iter())
                .map(|(provider, token)| (provider.clone(), token_hash(token)))
                .collect(),
            credentials: sidecar.credentials,
        };
        let mut task = TaskPod::new(
            &name,
            AgentContainer::new(&agent_image, &plan.shell_command(), env.env.clone()),
            VaultSidecar::new(
                &vault_image,
                self.sidecar_command()?,
                serde_json::to_vec(&bundle).map_err(|e| ExecutorError::Io {
                    context: "cannot write the vault bundle".to_owned(),
                    source: std::io::Error::other(e.to_string()),
                })?,
            ),
        );
        task.labels = BTreeMap::from([
            (LABEL_EXECUTOR.to_owned(), "1".to_owned()),
            (LABEL_TASK.to_owned(), id.clone()),
            (LABEL_AGENT.to_owned(), plan.agent.name.clone()),
        ]);
        task.clone = clone;
        (task.scratch_dirs, task.files) = pod_files(&env, &layout)?;
        task.egress = kube_egress(&plan, &bundle.routes);
        task.deadline_secs = i64::try_from(deadline).ok();
        Ok(KubeTask {
            name,
            manifests: Manifests::of(&task),
            images: vec![agent_image, vault_image],
            providers: bundle.credentials.keys().cloned().collect(),
        })
    }

    /// The agent's image (built when missing or stale, unless given as a tag) and the
    /// vault's on it.
    async fn kube_images(
        &self,
        plan: &LaunchPlan<'_>,
        on_event: OnRunEvent<'_>,
    ) -> Result<(String, String), ExecutorError> {
        let agent = self.launch_image(plan, on_event).await?;
        let program = self.sidecar_launcher()?.program();
        let binary = fs_err::read(program).map_err(ExecutorError::io(
            "cannot read the vault program for its image",
        ))?;
        let vault = self
            .image_builder(Some(crate::images::IMAGE_CHECK_TRUST))?
            .ensure_vault(&agent, binary, &mut |event| {
                on_event(RunEvent::Image(event))
            })
            .await?;
        Ok((agent, vault.tag))
    }

    /// How the sidecar is served: this session's sidecar launcher.
    fn sidecar_launcher(&self) -> Result<&crate::vault::ServeCommand, ExecutorError> {
        self.sidecar_launcher
            .as_ref()
            .ok_or(ExecutorError::KubeRefused {
                reason: KubeRefusal::NoVaultProgram,
            })
    }

    /// The sidecar's command before its paths: the vault image's program with the
    /// launcher's arguments.
    fn sidecar_command(&self) -> Result<Vec<String>, ExecutorError> {
        let launcher = self.sidecar_launcher()?;
        let mut command = vec![terok_image_build::VAULT_PROGRAM.to_owned()];
        command.extend(
            launcher
                .args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned()),
        );
        Ok(command)
    }

    /// The stored credential of each of `providers` that has one, and a new token for it.
    fn sidecar_credentials(
        &self,
        providers: &[String],
    ) -> Result<SidecarCredentials, ExecutorError> {
        let mut found = SidecarCredentials {
            credentials: BTreeMap::new(),
            kinds: BTreeMap::new(),
            tokens: BTreeMap::new(),
        };
        let Some(db) = self.open_existing_db()? else {
            return Ok(found);
        };
        let kinds: BTreeMap<String, String> = db
            .list_credentials(DEFAULT_SET)?
            .into_iter()
            .map(|summary| (summary.provider, summary.kind))
            .collect();
        for provider in providers {
            let Some(credential) = db.load_credential(DEFAULT_SET, provider)? else {
                continue;
            };
            let token = new_token().map_err(|e| ExecutorError::Io {
                context: "cannot make a phantom token".to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
            found.tokens.insert(provider.clone(), token);
            found
                .credentials
                .insert(provider.clone(), credential.without_refresh_token());
            if let Some(kind) = kinds.get(provider) {
                found.kinds.insert(provider.clone(), kind.clone());
            }
        }
        Ok(found)
    }
}

/// Warns of OAuth access tokens that expire before the Pod's deadline: the sidecar cannot
/// renew them (the refresh token stays on this host).
fn warn_of_expiry(
    credentials: &BTreeMap<String, Credential>,
    deadline_secs: u64,
    on_event: OnRunEvent<'_>,
) {
    let ends = terok_core::time::unix_now() as f64 + deadline_secs as f64;
    for (provider, credential) in credentials {
        if let Some(expires) = credential.expires_at()
            && expires < ends
        {
            on_event(RunEvent::Warning(format!(
                "the OAuth access token of `{provider}` expires before the Pod's deadline, and \
                 the Pod's vault cannot renew it (its refresh token stays on this host)"
            )));
        }
    }
}

/// What the init container clones, refusing what no Pod can run.
fn kube_clone(plan: &LaunchPlan<'_>) -> Result<Option<CloneSource>, ExecutorError> {
    let refuse = |reason| Err(ExecutorError::KubeRefused { reason });
    match &plan.options.mode {
        Mode::Headless { .. } => {}
        Mode::Interactive { .. } => return refuse(KubeRefusal::Mode("an interactive task")),
        Mode::Web(_) => return refuse(KubeRefusal::Mode("a web task")),
        Mode::Tool { .. } => return refuse(KubeRefusal::Mode("a tool run")),
    }
    if plan.krun.is_some() {
        return refuse(KubeRefusal::Krun);
    }
    match (&plan.repo, &plan.workspace) {
        (RepoSource::Local(dir), _) | (_, Workspace::Host(dir)) => {
            refuse(KubeRefusal::LocalWorkspace(dir.clone()))
        }
        (RepoSource::GitUrl(url), Workspace::Task) => {
            refuse_url_password(url)?;
            Ok(Some(CloneSource::new(url, plan.options.branch.as_deref())))
        }
    }
}

/// The agent's directories (empty at start) and the files it expects: its configuration
/// directory and the phantom credential files, which this launch wrote into `layout`.
/// Nothing else of a directory is copied: a shared config directory may hold real
/// credentials, which the phantom files stand in for.
fn pod_files(
    env: &ContainerEnv,
    layout: &TaskLayout,
) -> Result<(Vec<String>, Vec<TaskFile>), ExecutorError> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for volume in &env.volumes {
        let container = volume.container.as_str();
        if container == WORKSPACE || container == CONTAINER_SOCKET_DIR {
            continue;
        }
        if volume.host.is_dir() {
            dirs.push(container.to_owned());
            if container == AGENT_CONFIG_MOUNT {
                files.extend(files_under(&layout.agent_config(), container)?);
            }
        } else if volume.host.starts_with(layout.credentials()) {
            files.push(task_file(&volume.host, container)?);
        }
    }
    Ok((dirs, files))
}

fn task_file(host: &Path, container: &str) -> Result<TaskFile, ExecutorError> {
    use std::os::unix::fs::PermissionsExt;
    let context = || format!("cannot read {}", host.display());
    let content = fs_err::read(host).map_err(|source| ExecutorError::Io {
        context: context(),
        source,
    })?;
    let mode = fs_err::metadata(host)
        .map_err(|source| ExecutorError::Io {
            context: context(),
            source,
        })?
        .permissions()
        .mode();
    Ok(TaskFile::new(container, content, mode))
}

/// Every regular file under `dir`, at its place under `container`.
fn files_under(dir: &Path, container: &str) -> Result<Vec<TaskFile>, ExecutorError> {
    let mut files = Vec::new();
    let entries = fs_err::read_dir(dir).map_err(|source| ExecutorError::Io {
        context: format!("cannot list {}", dir.display()),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(ExecutorError::io("cannot list the agent's configuration"))?;
        let path = entry.path();
        let target = format!("{container}/{}", entry.file_name().to_string_lossy());
        let kind = entry
            .file_type()
            .map_err(ExecutorError::io("cannot list the agent's configuration"))?;
        if kind.is_dir() {
            files.extend(files_under(&path, &target)?);
        } else if kind.is_file() {
            files.push(task_file(&path, &target)?);
        }
    }
    Ok(files)
}

/// Where the Pod's traffic may go: the providers' upstreams and the repository's host (the
/// cluster's DNS always); with `allowlist`, the profiles' destinations too.
fn kube_egress(plan: &LaunchPlan<'_>, routes: &RouteTable) -> KubeEgress {
    if plan.egress == Egress::Open {
        return KubeEgress::Open;
    }
    let mut destinations = Vec::new();
    for route in routes.values() {
        let urls = std::iter::once(&route.upstream)
            .chain(route.path_upstreams.values())
            .chain(route.oauth_refresh.iter().map(|r| &r.token_url));
        destinations.extend(urls.filter_map(|url| destination(url)));
    }
    if let RepoSource::GitUrl(url) = &plan.repo {
        destinations.extend(destination(url));
    }
    if plan.egress == Egress::Allowlist {
        for allowed in plan.shield_profiles.iter().flat_map(|p| &p.destinations) {
            destinations.push(match allowed {
                terok_shield::Destination::Domain(host) => Destination::Named {
                    host: host.clone(),
                    port: 443,
                },
                terok_shield::Destination::Network(network) => Destination::Block {
                    cidr: network.to_string(),
                    port: None,
                },
            });
        }
    }
    destinations.sort();
    destinations.dedup();
    KubeEgress::Listed(destinations)
}

/// The host and port of `url` (the scheme's port when none is given); `None` for a local
/// path or a scheme with no network port.
fn url_host(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        // `user@host:path`, git's short form of SSH.
        None if url.contains(':') => ("ssh", url),
        None => return None,
    };
    let default_port = match scheme {
        "https" | "wss" => 443,
        "http" | "ws" => 80,
        "ssh" | "git+ssh" => 22,
        "git" => 9418,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match host_port.split_once(':') {
            // The short SSH form's `:` starts the path, not a port.
            Some((host, port)) if url.contains("://") => (host, Some(port)),
            Some((host, _)) => (host, None),
            None => (host_port, None),
        },
    };
    let port = port.map_or(Some(default_port), |p| p.parse().ok())?;
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// The destination of `url`: an address literal as itself, a name as a name.
fn destination(url: &str) -> Option<Destination> {
    let (host, port) = url_host(url)?;
    Some(match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Destination::Block {
            cidr: format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }),
            port: Some(port),
        },
        Err(_) => Destination::Named { host, port },
    })
}

/// Whether `url` leads to the machine it is used on: in a Pod, that is the Pod itself,
/// where the agent's container could listen and be handed the real credential.
fn is_local(url: &str) -> bool {
    let Some((host, _)) = url_host(url) else {
        return false;
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_unspecified()))
        }
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

/// Refuses routes whose upstream is the Pod itself (a roster override pointing at a local
/// proxy on this host, say): the sidecar would hand the real credential to whatever listens
/// on the Pod's loopback — and the agent's container can.
fn refuse_local_upstreams(routes: &RouteTable) -> Result<(), ExecutorError> {
    for (provider, route) in routes {
        let urls = std::iter::once(&route.upstream)
            .chain(route.path_upstreams.values())
            .chain(route.oauth_refresh.iter().map(|r| &r.token_url));
        for url in urls {
            if is_local(url) {
                return Err(ExecutorError::KubeRefused {
                    reason: KubeRefusal::LocalUpstream {
                        provider: provider.clone(),
                        url: url.clone(),
                    },
                });
            }
        }
    }
    Ok(())
}

/// Refuses a repository URL with a password in it: it would be in the Pod's YAML.
fn refuse_url_password(url: &str) -> Result<(), ExecutorError> {
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo);
    match userinfo {
        Some(info) if info.contains(':') => Err(ExecutorError::KubeRefused {
            reason: KubeRefusal::PasswordInUrl,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_reached_at_its_host_and_port() {
        let named = |host: &str, port| {
            Some(Destination::Named {
                host: host.to_owned(),
                port,
            })
        };
        let block = |cidr: &str, port| {
            Some(Destination::Block {
                cidr: cidr.to_owned(),
                port: Some(port),
            })
        };
        assert_eq!(
            destination("https://api.anthropic.com"),
            named("api.anthropic.com", 443)
        );
        assert_eq!(
            destination("http://198.18.7.1:8080/v1"),
            block("198.18.7.1/32", 8080)
        );
        assert_eq!(
            destination("git://198.18.7.1:9999/project"),
            block("198.18.7.1/32", 9999)
        );
        assert_eq!(
            destination("ssh://git@example.com:2222/a.git"),
            named("example.com", 2222)
        );
        assert_eq!(
            destination("git@example.com:org/repo.git"),
            named("example.com", 22)
        );
        assert_eq!(
            destination("https://[2001:db8::1]:8443/x"),
            block("2001:db8::1/128", 8443)
        );
        assert_eq!(destination("file:///srv/repo.git"), None);
        assert_eq!(destination("/srv/repo.git"), None);
        assert_eq!(destination("https://host:notaport/"), None);
    }

    #[test]
    fn the_pods_own_addresses_are_local() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9/v1",
            "http://localhost:3000",
            "https://LOCALHOST",
            "http://api.localhost",
            "http://[::1]:8080",
            "http://0.0.0.0:80",
            "http://[::ffff:127.0.0.1]:80",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "https://api.anthropic.com",
            "http://198.18.7.1:8080",
            "https://localhost.example.com",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }
}
