//! How a launch's progress events are shown on stderr (shared by `run`, `run-tool` and
//! `run --emit kube`).

use terok_executor::{GateMode, RunEvent};

use crate::progress::BuildProgress;

/// Shows one event of a launch.
pub(crate) fn show_event(progress: &mut BuildProgress, event: RunEvent) {
    match event {
        RunEvent::Image(event) => progress.event(event),
        RunEvent::Warning(text) => crate::output::warn(text),
        RunEvent::EgressOpen => eprintln!(
            "warning: {} (`--shield allowlist` allows only the shield profiles' destinations; \
             `--shield offline` leaves the container loopback only)",
            terok_executor::EGRESS_OPEN
        ),
        RunEvent::VaultWired { providers } if providers.is_empty() => {
            eprintln!(
                "Vault: no credential for this run; the agent runs without one (`terok-executor \
                 auth AGENT` stores one; an agent without a provider of its own uses another's: \
                 `run pi --credential claude`)"
            );
        }
        RunEvent::VaultWired { providers } => {
            eprintln!("Vault: phantom tokens for {}", providers.join(", "));
        }
        RunEvent::RoutesUpdated { changes } => {
            let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
            eprintln!(
                "Vault: now serving the roster's routes ({})",
                list.join(", ")
            );
        }
        RunEvent::GateOpened {
            repo,
            mode,
            blocked,
        } => {
            eprintln!(
                "Gate: mirror {repo}, {} (review pushes with `terok-executor gate list`)",
                match mode {
                    GateMode::Online => "online: origin is the real remote",
                    _ => "gatekeeping: pushes land in the mirror",
                }
            );
            super::gate::warn_blocked(&blocked);
        }
        RunEvent::ToolCredentialMissing {
            tool,
            provider,
            field,
        } => {
            eprintln!(
                "warning: no credential stored for {provider}: {tool} runs without its `{field}`. \
                 Run: terok-executor auth {provider} --api-key <key>"
            );
        }
        RunEvent::Launching { name, .. } => eprintln!("Container: {name}"),
        _ => {}
    }
}
