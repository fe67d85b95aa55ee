//! The Pod: the init container that puts the task's files and repository in place, the
//! agent's container, and the vault sidecar — the only container that mounts the Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, Pod,
    PodSecurityContext, PodSpec, SeccompProfile, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{DEV_ID, TaskPod};

/// The agent's container.
pub const AGENT_CONTAINER: &str = "agent";
/// The vault sidecar.
pub const VAULT_CONTAINER: &str = "vault";
/// The init container.
pub const CLONE_CONTAINER: &str = "prepare";
/// Where the vault's socket is, in the agent's container and the sidecar (the local
/// launches' path, so the container's scripts find it).
pub const VAULT_SOCKET_DIR: &str = "/run/terok/vault";
/// Where the sidecar reads its bundle (the Secret).
pub const BUNDLE_DIR: &str = "/etc/terok-vault";
/// The bundle's file (the Secret's key).
pub const BUNDLE_FILE: &str = "bundle.json";
/// The sidecar's database and audit log (memory-backed).
pub const VAULT_STATE_DIR: &str = "/var/lib/terok-vault";
/// Shared by the agent (writable) and the sidecar (read-only): the agent's end file.
pub const POD_DIR: &str = "/run/terok/pod";
/// The file the agent's container writes when its command ends.
pub const END_FILE: &str = "/run/terok/pod/agent-exited";
/// Where the init container sees the ConfigMap of the task's files.
pub const FILES_DIR: &str = "/run/terok/files";

const WORKSPACE: &str = "/workspace";
const VAULT_VOLUME: &str = "vault";
const POD_VOLUME: &str = "pod";
const WORKSPACE_VOLUME: &str = "workspace";
const FILES_VOLUME: &str = "task-files";
const BUNDLE_VOLUME: &str = "vault-bundle";
const STATE_VOLUME: &str = "vault-state";

/// The ConfigMap key of the task's `index`th file.
pub(crate) fn file_key(index: usize) -> String {
    format!("file-{index}")
}

/// The names of the Pod's other objects.
pub(crate) fn files_name(task: &TaskPod) -> String {
    format!("{}-files", task.name)
}

/// The Secret's name.
pub(crate) fn secret_name(task: &TaskPod) -> String {
    format!("{}-vault", task.name)
}

pub(crate) fn metadata(task: &TaskPod, name: String) -> ObjectMeta {
    let mut labels = task.labels.clone();
    labels.insert(crate::POD_LABEL.to_owned(), task.name.clone());
    ObjectMeta {
        name: Some(name),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The Pod of `task`.
pub(crate) fn pod(task: &TaskPod) -> Pod {
    Pod {
        metadata: metadata(task, task.name.clone()),
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            // No credential of the cluster's: an agent has no business with its API.
            automount_service_account_token: Some(false),
            // Nor a variable per service of the namespace.
            enable_service_links: Some(false),
            active_deadline_seconds: task.deadline_secs,
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(DEV_ID),
                run_as_group: Some(DEV_ID),
                fs_group: Some(DEV_ID),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..PodSecurityContext::default()
            }),
            init_containers: Some(vec![prepare_container(task)]),
            containers: vec![agent_container(task), vault_container(task)],
            volumes: Some(volumes(task)),
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

/// No privilege escalation, no capability, the runtime's seccomp profile.
fn hardened(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        run_as_non_root: Some(true),
        run_as_user: Some(DEV_ID),
        run_as_group: Some(DEV_ID),
        read_only_root_filesystem: Some(read_only_root),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only).filter(|r| *r),
        ..VolumeMount::default()
    }
}

fn scratch_volume(index: usize) -> String {
    format!("scratch-{index}")
}

/// The workspace and the scratch directories, as the agent and the init container mount them.
fn work_mounts(task: &TaskPod) -> Vec<VolumeMount> {
    let mut mounts = vec![mount(WORKSPACE_VOLUME, WORKSPACE, false)];
    for (index, dir) in task.scratch_dirs.iter().enumerate() {
        mounts.push(mount(&scratch_volume(index), dir, false));
    }
    mounts
}

fn env(pairs: &[(String, String)]) -> Option<Vec<EnvVar>> {
    let vars: Vec<EnvVar> = pairs
        .iter()
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            value_from: None,
        })
        .collect();
    Some(vars).filter(|v| !v.is_empty())
}

/// The init container: the task's files copied into place, then the repository cloned by
/// the image's own init script (which knows branches and submodules).
fn prepare_container(task: &TaskPod) -> Container {
    let mut script = vec!["set -eu".to_owned()];
    for (index, file) in task.files.iter().enumerate() {
        script.push(format!(
            "install -D -m {:o} {FILES_DIR}/{} {}",
            file.mode & 0o7777 & !0o6000,
            file_key(index),
            quote(&file.path)
        ));
    }
    script.push("init-ssh-and-repo.sh".to_owned());
    let mut vars = Vec::new();
    if let Some(clone) = &task.clone {
        vars.push(("CODE_REPO".to_owned(), clone.url.clone()));
        if let Some(branch) = &clone.branch {
            vars.push(("GIT_BRANCH".to_owned(), branch.clone()));
        }
    }
    let mut mounts = work_mounts(task);
    mounts.push(mount(FILES_VOLUME, FILES_DIR, true));
    Container {
        name: CLONE_CONTAINER.to_owned(),
        image: Some(task.agent.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec!["bash".to_owned(), "-lc".to_owned(), script.join("\n")]),
        env: env(&vars),
        volume_mounts: Some(mounts),
        security_context: Some(hardened(false)),
        ..Container::default()
    }
}

/// The agent's container: waits for the vault's socket, runs the task's command, and leaves
/// the end file whatever the command's outcome (its exit code is the container's).
fn agent_container(task: &TaskPod) -> Container {
    let socket = format!("{VAULT_SOCKET_DIR}/vault.sock");
    let script = format!(
        "for _ in $(seq 1 600); do [ -S {socket} ] && break; sleep 0.1; done\n\
         ( {} )\n\
         status=$?\n\
         : > {END_FILE}\n\
         exit $status",
        task.agent.shell_command
    );
    let mut mounts = work_mounts(task);
    mounts.push(mount(VAULT_VOLUME, VAULT_SOCKET_DIR, true));
    mounts.push(mount(POD_VOLUME, POD_DIR, false));
    Container {
        name: AGENT_CONTAINER.to_owned(),
        image: Some(task.agent.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec!["bash".to_owned(), "-lc".to_owned(), script]),
        env: env(&task.agent.env),
        volume_mounts: Some(mounts),
        security_context: Some(hardened(false)),
        working_dir: Some(WORKSPACE.to_owned()),
        ..Container::default()
    }
}

/// The vault sidecar: the only container with the Secret.
fn vault_container(task: &TaskPod) -> Container {
    let mut command = task.vault.command.clone();
    command.extend([
        "--bundle".to_owned(),
        format!("{BUNDLE_DIR}/{BUNDLE_FILE}"),
        "--socket".to_owned(),
        format!("{VAULT_SOCKET_DIR}/vault.sock"),
        "--state".to_owned(),
        VAULT_STATE_DIR.to_owned(),
        "--until".to_owned(),
        END_FILE.to_owned(),
    ]);
    Container {
        name: VAULT_CONTAINER.to_owned(),
        image: Some(task.vault.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(command),
        volume_mounts: Some(vec![
            mount(BUNDLE_VOLUME, BUNDLE_DIR, true),
            mount(VAULT_VOLUME, VAULT_SOCKET_DIR, false),
            mount(STATE_VOLUME, VAULT_STATE_DIR, false),
            mount(POD_VOLUME, POD_DIR, true),
        ]),
        security_context: Some(hardened(true)),
        ..Container::default()
    }
}

/// An emptyDir; a memory-backed one (counted against the node's memory) with `limit`.
fn empty_dir(name: &str, in_memory: Option<&str>) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: in_memory.map(|_| "Memory".to_owned()),
            size_limit: in_memory.map(|limit| Quantity(limit.to_owned())),
        }),
        ..Volume::default()
    }
}

fn volumes(task: &TaskPod) -> Vec<Volume> {
    let mut volumes = vec![
        empty_dir(WORKSPACE_VOLUME, None),
        // A socket; an empty file; the sidecar's database and audit log.
        empty_dir(VAULT_VOLUME, Some("1Mi")),
        empty_dir(POD_VOLUME, Some("1Mi")),
        empty_dir(STATE_VOLUME, Some("64Mi")),
        Volume {
            name: FILES_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: files_name(task),
                optional: Some(false),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: BUNDLE_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(task)),
                default_mode: Some(0o400),
                // Podman before 4.4 crashes on a secret volume that does not say.
                optional: Some(false),
                items: None,
            }),
            ..Volume::default()
        },
    ];
    for index in 0..task.scratch_dirs.len() {
        volumes.push(empty_dir(&scratch_volume(index), None));
    }
    volumes
}

/// `text` as one shell word.
pub(crate) fn quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@=".contains(&b))
    {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The ConfigMap's entries: file key → content (UTF-8 text in `data`, the rest binary).
pub(crate) fn file_entries(task: &TaskPod) -> BTreeMap<String, Vec<u8>> {
    task.files
        .iter()
        .enumerate()
        .map(|(index, file)| (file_key(index), file.content.clone()))
        .collect()
}
