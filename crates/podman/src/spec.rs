//! [`RunSpec`]: a container as terok launches it, and its `podman create` command line with the
//! hardening the Python terok-executor applies (docs/compatibility.md#8.4) and our own
//! (docs/decisions.md#3).

use crate::userns::RootfulIds;
use std::path::{Path, PathBuf};

use crate::error::PodmanError;

/// Label marking every container terok-executor creates.
pub const LABEL_EXECUTOR: &str = "ai.terok.executor";
/// Label carrying the task id.
pub const LABEL_TASK: &str = "ai.terok.task";
/// Label carrying the agent name.
pub const LABEL_AGENT: &str = "ai.terok.agent";

/// SELinux relabelling of a bind mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// `:Z` — private to this container (only for directories terok owns).
    Private,
    /// `:z` — shared between containers.
    Shared,
    /// No relabelling (a user's own directory, docs/decisions.md#3.9).
    None,
}

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Host path.
    pub host: PathBuf,
    /// Path in the container.
    pub container: String,
    /// SELinux relabelling.
    pub sharing: Sharing,
    /// Mounted read-only.
    pub read_only: bool,
}

impl VolumeSpec {
    /// The `-v` value: `host:container[:Z|z][,ro]`.
    pub fn to_arg(&self) -> String {
        let mut opts = Vec::new();
        match self.sharing {
            Sharing::Private => opts.push("Z"),
            Sharing::Shared => opts.push("z"),
            Sharing::None => {}
        }
        if self.read_only {
            opts.push("ro");
        }
        let base = format!("{}:{}", self.host.display(), self.container);
        if opts.is_empty() {
            base
        } else {
            format!("{base}:{}", opts.join(","))
        }
    }
}

/// GPUs made available through CDI (as the Python terok-executor 0.5.0's
/// `--gpus all|nvidia|amd|intel|amd:1,…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    /// `(vendor, selector)` pairs, such as `("nvidia", "all")` or `("amd", "1")`.
    pub devices: Vec<(String, String)>,
}

impl GpuRequest {
    /// Parses `all`, `nvidia`, `amd:1,intel`, …; `all` means every vendor in `available`
    /// (the CDI vendors configured on the host).
    pub fn parse(text: &str, available: &[String]) -> Result<Self, PodmanError> {
        let mut devices = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (vendor, selector) = part.split_once(':').unwrap_or((part, "all"));
            let vendor = vendor.to_ascii_lowercase();
            if vendor == "all" {
                if available.is_empty() {
                    return Err(PodmanError::InvalidSpec(
                        "--gpus all: no CDI GPU specification found on this host (for NVIDIA: \
                         `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`)"
                            .to_owned(),
                    ));
                }
                devices.extend(available.iter().map(|v| (v.clone(), "all".to_owned())));
                continue;
            }
            if !matches!(vendor.as_str(), "nvidia" | "amd" | "intel") {
                return Err(PodmanError::InvalidSpec(format!(
                    "--gpus: unknown vendor `{vendor}` (expected all, nvidia, amd or intel, optionally `:index`)"
                )));
            }
            if selector != "all" && !selector.chars().all(|c| c.is_ascii_digit()) {
                return Err(PodmanError::InvalidSpec(format!(
                    "--gpus: `{part}`: the device selector must be `all` or a number"
                )));
            }
            devices.push((vendor, selector.to_owned()));
        }
        if devices.is_empty() {
            return Err(PodmanError::InvalidSpec(
                "--gpus needs a value such as `all` or `nvidia`".to_owned(),
            ));
        }
        Ok(Self { devices })
    }

    /// The CDI device names (`nvidia.com/gpu=all`).
    pub fn cdi_devices(&self) -> Vec<String> {
        self.devices
            .iter()
            .map(|(vendor, sel)| format!("{vendor}.com/gpu={sel}"))
            .collect()
    }

    /// Environment the vendor runtimes expect (NVIDIA only).
    pub fn env(&self) -> Vec<(String, String)> {
        if self.devices.iter().any(|(v, _)| v == "nvidia") {
            vec![
                ("NVIDIA_VISIBLE_DEVICES".to_owned(), "all".to_owned()),
                ("NVIDIA_DRIVER_CAPABILITIES".to_owned(), "all".to_owned()),
            ]
        } else {
            Vec::new()
        }
    }
}

/// How the container's users map to the host's, so that files the container's `dev` (uid
/// 1000) writes into bind mounts belong to the person who ran terok — and never to host root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserMapping {
    /// Podman's default (no user namespace of ours).
    #[default]
    Default,
    /// Rootless podman: `--userns=keep-id:uid=1000,gid=1000` (`dev` is the invoking user).
    KeepId,
    /// Rootful podman: `dev` is an unprivileged host user, every other container id is in a
    /// subordinate range no account uses (container root included).
    Rootful(RootfulIds),
}

impl UserMapping {
    fn args(self) -> Vec<String> {
        match self {
            Self::Default => Vec::new(),
            Self::KeepId => vec!["--userns=keep-id:uid=1000,gid=1000".to_owned()],
            Self::Rootful(ids) => ids.args(),
        }
    }
}

/// A container to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunSpec {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command and arguments.
    pub command: Vec<String>,
    /// Environment, in order. Passed through an env file, never on argv.
    pub env: Vec<(String, String)>,
    /// Bind mounts, in order.
    pub volumes: Vec<VolumeSpec>,
    /// Labels (terok adds [`LABEL_EXECUTOR`], [`LABEL_TASK`], [`LABEL_AGENT`]).
    pub labels: Vec<(String, String)>,
    /// Restricted mode: `--security-opt no-new-privileges` (no sudo inside).
    pub restricted: bool,
    /// How container users map to host users.
    pub user_mapping: UserMapping,
    /// `--memory`, e.g. `4g`.
    pub memory: Option<String>,
    /// `--cpus`, e.g. `2.0`.
    pub cpus: Option<String>,
    /// GPUs through CDI.
    pub gpus: Option<GpuRequest>,
    /// `--init` (a tiny init reaps zombies and forwards signals).
    pub init: bool,
    /// `--rm`.
    pub remove_on_exit: bool,
    /// Working directory (default `/workspace`).
    pub workdir: Option<String>,
    /// Keep the image's own working directory (no `--workdir`; for images that are not
    /// terok's).
    pub keep_image_workdir: bool,
    /// Host name.
    pub hostname: Option<String>,
    /// Port publications such as `127.0.0.1:8080:8080`.
    pub publish: Vec<String>,
    /// Extra hosts (`host.containers.internal:127.0.0.1`).
    pub add_hosts: Vec<String>,
    /// `--network` value.
    pub network: Option<String>,
    /// Allocate a TTY and keep stdin open (interactive containers).
    pub tty: bool,
    /// `--annotation` pairs (an OCI hook selects containers by them).
    pub annotations: Vec<(String, String)>,
    /// `--dns` servers.
    pub dns: Vec<String>,
    /// The OCI runtime (`--runtime`, e.g. `krun`); podman's default when `None`.
    pub runtime: Option<String>,
    /// The user the container's command runs as (`--user`); the image's when `None`.
    pub user: Option<String>,
    /// Directories of OCI hook definitions podman reads when it starts the container (a global
    /// option: podman reads hooks at every start, so [`crate::ContainerRuntime::start_hooked`]
    /// takes them again).
    pub hooks_dirs: Vec<PathBuf>,
}

impl RunSpec {
    /// Checks what podman would only half-reject: names, env names and values, volumes.
    pub fn validate(&self) -> Result<(), PodmanError> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !name_ok {
            return Err(PodmanError::InvalidSpec(format!(
                "container name `{}` must start with a letter or digit and contain only [A-Za-z0-9_.-]",
                self.name
            )));
        }
        if self.image.is_empty() {
            return Err(PodmanError::InvalidSpec("no image given".to_owned()));
        }
        for (key, value) in &self.env {
            let key_ok = !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !key_ok {
                return Err(PodmanError::InvalidSpec(format!(
                    "`{key}` is not a valid environment variable name"
                )));
            }
            if value.contains('\n') || value.contains('\0') {
                // The env-file format is one variable per line; say which variable, never the value.
                return Err(PodmanError::InvalidSpec(format!(
                    "the value of {key} contains a line break or NUL, which an env file cannot carry"
                )));
            }
        }
        for volume in &self.volumes {
            if !volume.container.starts_with('/') || volume.container.contains(':') {
                return Err(PodmanError::InvalidSpec(format!(
                    "mount point `{}` must be an absolute path without `:`",
                    volume.container
                )));
            }
            if volume.host.to_string_lossy().contains(':') {
                return Err(PodmanError::InvalidSpec(format!(
                    "host path `{}` contains `:`, which podman's -v cannot express",
                    volume.host.display()
                )));
            }
        }
        Ok(())
    }

    /// `podman`'s global options this container needs (before `run` or `create`).
    pub fn global_args(&self) -> Vec<String> {
        hooks_dir_args(&self.hooks_dirs)
    }

    /// The arguments after `podman create`, given the env file that holds [`Self::env`].
    pub fn create_args(&self, env_file: &Path) -> Vec<String> {
        let mut args = self.option_args(env_file);
        if !self.keep_image_workdir {
            args.push("--workdir".to_owned());
            args.push(self.workdir.as_deref().unwrap_or("/workspace").to_owned());
        }
        // Everything after `--` is the image and its command, never an option of podman's,
        // whatever a name or a roster entry says.
        args.push("--".to_owned());
        args.push(self.image.clone());
        args.extend(self.command.iter().cloned());
        args
    }

    /// The options of `podman create` / `podman run` before the working directory, the image
    /// and its command.
    pub fn option_args(&self, env_file: &Path) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
        push(&["--name", &self.name]);
        for (key, value) in &self.labels {
            push(&["--label", &format!("{key}={value}")]);
        }
        for (key, value) in &self.annotations {
            push(&["--annotation", &format!("{key}={value}")]);
        }
        push(&["--env-file", &env_file.to_string_lossy()]);
        if self.restricted {
            push(&["--security-opt", "no-new-privileges"]);
        }
        args.extend(self.user_mapping.args());
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
        if let Some(runtime) = &self.runtime {
            push(&["--runtime", runtime]);
        }
        if let Some(user) = &self.user {
            push(&["--user", user]);
        }
        push(&["--cap-drop", "NET_ADMIN", "--cap-drop", "NET_RAW"]);
        if self.init {
            push(&["--init"]);
        }
        if self.remove_on_exit {
            push(&["--rm"]);
        }
        if self.tty {
            push(&["--interactive", "--tty"]);
        }
        if let Some(memory) = &self.memory {
            push(&["--memory", memory]);
        }
        if let Some(cpus) = &self.cpus {
            push(&["--cpus", cpus]);
        }
        if let Some(gpus) = &self.gpus {
            for device in gpus.cdi_devices() {
                push(&["--device", &device]);
            }
        }
        if let Some(network) = &self.network {
            push(&["--network", network]);
        }
        for server in &self.dns {
            push(&["--dns", server]);
        }
        for host in &self.add_hosts {
            push(&["--add-host", host]);
        }
        for port in &self.publish {
            push(&["--publish", port]);
        }
        for volume in &self.volumes {
            push(&["--volume", &volume.to_arg()]);
        }
        if let Some(hostname) = &self.hostname {
            push(&["--hostname", hostname]);
        }
        args
    }

    /// Every environment variable the container gets (the spec's, then the GPU runtime's).
    pub fn full_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        if let Some(gpus) = &self.gpus {
            env.extend(gpus.env());
        }
        env
    }
}

/// `--hooks-dir DIR` for each of `dirs`.
pub fn hooks_dir_args(dirs: &[PathBuf]) -> Vec<String> {
    dirs.iter()
        .flat_map(|dir| ["--hooks-dir".to_owned(), dir.display().to_string()])
        .collect()
}

/// The env-file text for `env`: one `KEY=VALUE` per line (podman takes the value verbatim).
pub fn env_file_contents(env: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, value) in env {
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunSpec {
        RunSpec {
            name: "terok-executor-abc123".into(),
            image: "terok-l1-cli:debian".into(),
            command: vec!["bash".into(), "-lc".into(), "claude -p hi".into()],
            env: vec![("ANTHROPIC_API_KEY".into(), "terok-p-secretvalue".into())],
            labels: vec![(LABEL_EXECUTOR.into(), "1".into())],
            ..RunSpec::default()
        }
    }

    #[test]
    fn volumes_render_their_options() {
        let v = |sharing, read_only| VolumeSpec {
            host: "/h".into(),
            container: "/c".into(),
            sharing,
            read_only,
        };
        assert_eq!(v(Sharing::Private, false).to_arg(), "/h:/c:Z");
        assert_eq!(v(Sharing::Shared, true).to_arg(), "/h:/c:z,ro");
        assert_eq!(v(Sharing::None, false).to_arg(), "/h:/c");
        assert_eq!(v(Sharing::None, true).to_arg(), "/h:/c:ro");
    }

    #[test]
    fn gpu_requests() {
        let avail = vec!["nvidia".to_owned()];
        assert_eq!(
            GpuRequest::parse("all", &avail).unwrap().cdi_devices(),
            ["nvidia.com/gpu=all"]
        );
        assert_eq!(
            GpuRequest::parse("amd:1,intel", &avail)
                .unwrap()
                .cdi_devices(),
            ["amd.com/gpu=1", "intel.com/gpu=all"]
        );
        assert!(GpuRequest::parse("all", &[]).is_err());
        assert!(GpuRequest::parse("matrox", &avail).is_err());
        assert!(GpuRequest::parse("amd:x", &avail).is_err());
        assert_eq!(GpuRequest::parse("nvidia", &[]).unwrap().env().len(), 2);
    }

    #[test]
    fn validation_rejects_what_the_env_file_cannot_carry() {
        let mut spec = base();
        spec.env.push(("MULTI".into(), "a\nb".into()));
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("MULTI") && !err.contains("a\nb"), "{err}");
        let mut spec = base();
        spec.env.push(("1BAD".into(), "x".into()));
        assert!(spec.validate().is_err());
        let mut spec = base();
        spec.name = "-x".into();
        assert!(spec.validate().is_err());
        let mut spec = base();
        spec.volumes.push(VolumeSpec {
            host: "/a".into(),
            container: "rel".into(),
            sharing: Sharing::None,
            read_only: false,
        });
        assert!(spec.validate().is_err());
        assert!(base().validate().is_ok());
    }

    #[test]
    fn env_file_is_one_line_per_variable() {
        assert_eq!(
            env_file_contents(&[("A".into(), "1".into()), ("B".into(), "x=y z".into())]),
            "A=1\nB=x=y z\n"
        );
    }
}
