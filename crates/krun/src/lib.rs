//! terok-krun: what the host provides so a task can run in a KVM microVM with podman's `krun`
//! runtime. The guest is reached over SSH instead of `podman exec`, with the `%host` keypair
//! the vault holds: its private half written owner-only to the runtime directory for `ssh -i`,
//! its public half bind-mounted into the guest as `/etc/ssh/authorized_keys.d/terok`.
//!
//! [`KrunHost`] is one launch's context: the keypair (read from the vault once), the extra
//! `podman run` arguments, and [`detect`] says what this host lacks (the runtime, `/dev/kvm`).

mod detect;
mod guest;
mod keypair;

pub use detect::{KrunSupport, detect, installed_runtimes};
pub use guest::{GUEST_ENTRY, GUEST_SSH_PORT, GuestShell};
pub use keypair::{HOST_KEY_NAME, HOST_SCOPE, KrunError, KrunHostKeypair, ensure_host_keypair};
pub use terok_podman::{OUTPUT_LIMIT, bounded_output};

use terok_podman::{RunSpec, Sharing, VolumeSpec};

/// The runtime's name in podman's configuration.
pub const KRUN_RUNTIME: &str = "krun";
/// Where the guest's sshd reads terok's key.
pub const GUEST_AUTHORIZED_KEYS: &str = "/etc/ssh/authorized_keys.d/terok";

/// One launch's krun context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrunHost {
    /// The `%host` keypair on disk.
    pub keypair: KrunHostKeypair,
}

impl KrunHost {
    /// The context of a launch with `keypair`.
    pub fn new(keypair: KrunHostKeypair) -> Self {
        Self { keypair }
    }

    /// What a krun launch adds to `spec`: the runtime, the public key mounted read-only where
    /// the guest's sshd looks, `TEROK_CONTAINER_RUNTIME=krun`, and the guest's init as root (it
    /// starts sshd and drops to `dev` for the agent).
    pub fn apply(&self, spec: &mut RunSpec) {
        spec.runtime = Some(KRUN_RUNTIME.to_owned());
        spec.user = Some("root".to_owned());
        spec.volumes.push(VolumeSpec {
            host: self.keypair.public_key.clone(),
            container: GUEST_AUTHORIZED_KEYS.to_owned(),
            sharing: Sharing::Shared,
            read_only: true,
        });
        spec.env.push((
            "TEROK_CONTAINER_RUNTIME".to_owned(),
            KRUN_RUNTIME.to_owned(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn a_krun_launch_gets_the_runtime_the_key_the_marker_and_root() {
        let host = KrunHost::new(KrunHostKeypair {
            private_key: PathBuf::from("/run/user/1000/terok/krun_host.key"),
            public_key: PathBuf::from("/run/user/1000/terok/krun_host.key.pub"),
            public_line: "ssh-ed25519 AAAA terok krun host".into(),
        });
        let mut spec = RunSpec {
            name: "t".into(),
            image: "img".into(),
            ..RunSpec::default()
        };
        host.apply(&mut spec);
        let argv = spec.create_args(Path::new("<env>"));
        let joined = argv.join(" ");
        assert!(joined.contains("--runtime krun"), "{joined}");
        assert!(joined.contains("--user root"), "{joined}");
        assert!(
            joined.contains(
                "--volume /run/user/1000/terok/krun_host.key.pub:/etc/ssh/authorized_keys.d/terok:z,ro"
            ),
            "{joined}"
        );
        assert!(
            spec.env
                .contains(&("TEROK_CONTAINER_RUNTIME".into(), "krun".into()))
        );
        assert!(
            !joined.contains("krun_host.key:"),
            "the private key is never mounted: {joined}"
        );
    }
}
