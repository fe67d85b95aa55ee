//! Where the vault key is kept: `setup --passphrase-tier` and the passphrase prompts `vault
//! unlock` shares.

use std::io::{BufRead, IsTerminal};

use miette::IntoDiagnostic;
use terok_executor::{Executor, PodmanCli, Unlocked};

use crate::args::PassphraseTier;

/// How long `setup --passphrase-tier kernel-keyring` caches the key (as `vault unlock`).
const SETUP_UNLOCK: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

/// Moves the vault key into `tier` and says what changed.
pub fn apply(executor: &Executor<PodmanCli>, tier: PassphraseTier) -> miette::Result<()> {
    match tier {
        PassphraseTier::SystemdCreds => {
            let sealed = executor.seal_vault_key()?;
            println!(
                "Vault key: sealed by systemd-creds in {}.",
                sealed.path.display()
            );
            if let Some(removed) = sealed.removed {
                println!("Removed the key file it replaces, {}.", removed.display());
                eprintln!(
                    "warning: the key now opens only on this machine (its systemd host secret): \
                     a reinstall loses the stored credentials; keep a copy of the key where you \
                     keep backups (give it back as TEROK_VAULT_KEY)"
                );
            }
        }
        PassphraseTier::Keyring => {
            let removed = executor.move_vault_key_to_os_keyring()?;
            println!("Vault key: in your desktop keyring (Secret Service).");
            if let Some(removed) = removed {
                println!("Removed the key file it replaces, {}.", removed.display());
            }
        }
        PassphraseTier::KernelKeyring => {
            let passphrase = match executor.configured_vault_passphrase()? {
                Some(passphrase) => passphrase,
                // Protected already: its passphrase, once, to unlock it.
                None if executor.vault_key_is_protected()? == Some(true) => read_passphrase(
                    false,
                    "Vault passphrase: ",
                )?
                .ok_or_else(|| {
                    miette::miette!(
                        help =
                            "set TEROK_VAULT_PASSPHRASE for this command, or run it on a terminal",
                        "no terminal to ask for the vault passphrase"
                    )
                })?,
                None => new_passphrase()?,
            };
            executor.protect_vault_key(&passphrase)?;
            if let Unlocked::Cached =
                executor.unlock_vault(Some(&passphrase), Some(SETUP_UNLOCK))?
            {
                println!(
                    "Vault key: protected by a passphrase and unlocked for 8 hours; after that, or after \
                     `terok-executor vault lock`, run `terok-executor vault unlock`."
                );
            }
        }
    }
    Ok(())
}

/// A new passphrase, typed twice on the terminal.
fn new_passphrase() -> miette::Result<String> {
    if !std::io::stdin().is_terminal() {
        miette::bail!(miette::miette!(
            help = "set TEROK_VAULT_PASSPHRASE (or credentials.passphrase_command in config.yml) for this command, or run it on a terminal",
            "no terminal to ask for the vault passphrase"
        ));
    }
    let first = crate::prompt::read_secret("New vault passphrase: ").into_diagnostic()?;
    let Some(first) = first.filter(|p| !p.is_empty()) else {
        miette::bail!("no passphrase given; the vault key is unchanged");
    };
    let again = crate::prompt::read_secret("The same again: ").into_diagnostic()?;
    if again.as_deref() != Some(first.as_str()) {
        miette::bail!("the two passphrases differ; the vault key is unchanged");
    }
    Ok(first)
}

/// The passphrase: a line of stdin, the terminal, or `None` for the configured one
/// (TEROK_VAULT_PASSPHRASE, credentials.passphrase_command) when there is no terminal.
pub fn read_passphrase(from_stdin: bool, prompt: &str) -> miette::Result<Option<String>> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .into_diagnostic()?;
        let line = line.trim_end_matches(['\n', '\r']).to_owned();
        if line.is_empty() {
            miette::bail!("no passphrase on standard input");
        }
        return Ok(Some(line));
    }
    let configured =
        std::env::var_os(terok_core::env::VAULT_PASSPHRASE_VAR).is_some_and(|v| !v.is_empty());
    if configured || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    match crate::prompt::read_secret(prompt).into_diagnostic()? {
        Some(p) if !p.is_empty() => Ok(Some(p)),
        _ => miette::bail!("no passphrase given; nothing was cached"),
    }
}
