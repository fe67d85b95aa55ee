//! The objects of a task and their YAML: the task's file (ConfigMap, NetworkPolicy, Pod) and,
//! apart, the Secret — which holds real credentials and so is never mixed into output that
//! is printed, piped or logged.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;

use crate::TaskPod;
use crate::pod::{BUNDLE_FILE, file_entries, files_name, metadata, pod, secret_name};
use crate::policy::network_policy;

/// Why the objects could not be written as YAML.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum KubeError {
    /// The serializer refused an object.
    #[error("cannot write the {kind} as YAML: {reason}")]
    Yaml {
        /// Which object.
        kind: &'static str,
        /// Why.
        reason: String,
    },
}

/// Every object of one task.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Manifests {
    /// The task's files (agent configuration, phantom credential files).
    pub files: ConfigMap,
    /// Where its traffic may go.
    pub egress: NetworkPolicy,
    /// The Pod.
    pub pod: Pod,
    /// The vault sidecar's bundle: real credentials.
    pub secret: Secret,
}

impl std::fmt::Debug for Manifests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifests")
            .field("files", &self.files)
            .field("egress", &self.egress)
            .field("pod", &self.pod)
            .field("secret", &self.secret.metadata.name)
            .finish_non_exhaustive()
    }
}

impl Manifests {
    /// The objects of `task`.
    pub fn of(task: &TaskPod) -> Self {
        Self {
            files: config_map(task),
            egress: network_policy(task),
            pod: pod(task),
            secret: secret(task),
        }
    }

    /// The ConfigMap, the NetworkPolicy and the Pod, as one multi-document YAML (in the
    /// order they are applied: what the Pod refers to first).
    pub fn task_yaml(&self) -> Result<String, KubeError> {
        let documents = [
            yaml("ConfigMap", &self.files)?,
            yaml("NetworkPolicy", &self.egress)?,
            yaml("Pod", &self.pod)?,
        ];
        Ok(documents.join("---\n"))
    }

    /// The Secret, as YAML of its own.
    pub fn secret_yaml(&self) -> Result<String, KubeError> {
        yaml("Secret", &self.secret)
    }
}

fn yaml(kind: &'static str, object: &impl Serialize) -> Result<String, KubeError> {
    // Only the kind and the serializer's reason: a Secret's content is never in an error.
    serde_saphyr::to_string(object).map_err(|e| KubeError::Yaml {
        kind,
        reason: e.to_string().lines().next().unwrap_or("").to_owned(),
    })
}

fn config_map(task: &TaskPod) -> ConfigMap {
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (key, content) in file_entries(task) {
        match String::from_utf8(content) {
            Ok(text) => {
                data.insert(key, text);
            }
            Err(err) => {
                binary.insert(key, ByteString(err.into_bytes()));
            }
        }
    }
    ConfigMap {
        metadata: metadata(task, files_name(task)),
        data: Some(data),
        binary_data: Some(binary).filter(|b| !b.is_empty()),
        immutable: Some(true),
    }
}

fn secret(task: &TaskPod) -> Secret {
    Secret {
        metadata: metadata(task, secret_name(task)),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            BUNDLE_FILE.to_owned(),
            ByteString(task.vault.bundle.clone()),
        )])),
        immutable: Some(true),
        string_data: None,
    }
}
