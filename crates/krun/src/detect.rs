//! Whether this host can start krun microVMs: podman knows a `krun` runtime, and `/dev/kvm`
//! exists.

use std::path::Path;

/// What this host has for krun.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KrunSupport {
    /// Both are there.
    Ready,
    /// What is missing, each with what provides it.
    Missing(Vec<String>),
}

/// Where podman looks for the `krun` runtime (and its siblings) when containers.conf names no
/// path of its own.
const RUNTIME_DIRS: [&str; 3] = ["/usr/bin", "/usr/local/bin", "/usr/sbin"];

/// The OCI runtimes installed where podman looks for them (`krun`, `crun`, `runc`).
pub fn installed_runtimes() -> Vec<String> {
    ["krun", "crun", "runc"]
        .into_iter()
        .filter(|name| {
            RUNTIME_DIRS
                .iter()
                .any(|dir| Path::new(dir).join(name).exists())
        })
        .map(str::to_owned)
        .collect()
}

/// Checks the runtimes podman lists (`podman info --format '{{json .Host.OCIRuntime}}'` and its
/// configured runtimes; the caller passes their names) and `kvm` (normally `/dev/kvm`).
pub fn detect(runtimes: &[String], kvm: &Path) -> KrunSupport {
    let mut missing = Vec::new();
    if !runtimes.iter().any(|r| r == crate::KRUN_RUNTIME) {
        missing.push(
            "podman has no `krun` runtime (install crun built with libkrun, e.g. the crun-krun \
             package, and list it under [engine.runtimes] in containers.conf)"
                .to_owned(),
        );
    }
    if !kvm.exists() {
        missing.push(format!(
            "{} is missing (KVM: the kvm module, and on a VM nested virtualisation)",
            kvm.display()
        ));
    }
    if missing.is_empty() {
        KrunSupport::Ready
    } else {
        KrunSupport::Missing(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_piece_is_named_with_what_provides_it() {
        let dir = tempfile::tempdir().unwrap();
        let kvm = dir.path().join("kvm");
        let KrunSupport::Missing(both) = detect(&["runc".into(), "crun".into()], &kvm) else {
            panic!("nothing is there");
        };
        assert_eq!(both.len(), 2);
        assert!(
            both[0].contains("krun") && both[1].contains("kvm"),
            "{both:?}"
        );
        std::fs::create_dir(&kvm).unwrap();
        assert_eq!(detect(&["krun".into()], &kvm), KrunSupport::Ready);
    }
}
