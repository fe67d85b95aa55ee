//! config.yml keys that are accepted for compatibility but do nothing yet, said as such rather
//! than ignored silently, and the plain statement of what an unfiltered (`open`) task can reach.

use terok_core::config::TerokConfig;
use terok_podman::ContainerRuntime;

use crate::session::Executor;

/// What every `open` launch says.
pub const EGRESS_OPEN: &str = "egress is open (no firewall): the agent can reach any address the \
                               container's network reaches — this host's services, your LAN, \
                               the internet";

/// The keys of `config` that are set but have no effect yet, each with what that means.
pub fn inert_settings(config: &TerokConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut inert = |key: &str, set: bool, meaning: &str| {
        if set {
            out.push(format!("config.yml `{key}` has no effect yet: {meaning}"));
        }
    };
    inert(
        "vault.ssh_signer_port",
        config.vault.ssh_signer_port.is_some(),
        "the SSH signer serves each task on a Unix socket (none over TCP)",
    );
    inert(
        "gate_server.repos_dir",
        config.gate_server.repos_dir.is_some(),
        "the git gate keeps its mirrors under the state directory",
    );
    inert(
        "ssh.use_personal",
        config.ssh.use_personal,
        "the SSH signer is not implemented",
    );
    out
}

impl<R: ContainerRuntime> Executor<R> {
    /// The keys of the session's config.yml that do nothing yet.
    pub fn inert_settings(&self) -> Vec<String> {
        inert_settings(&self.config.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terok_core::config::ServicesMode;

    #[test]
    fn set_keys_without_effect_are_named() {
        assert!(inert_settings(&TerokConfig::default()).is_empty());
        let mut config = TerokConfig::default();
        // The shield's and the services' keys are honoured: they are not named.
        config.shield.profiles = vec!["dev-python".into()];
        config.services.mode = ServicesMode::Tcp;
        config.vault.port = Some(19000);
        config.network.port_range_start = 20000;
        config.gate_server.repos_dir = Some("/srv/mirrors".into());
        let said = inert_settings(&config);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("config.yml `gate_server.repos_dir` has no effect yet"));
    }
}
