//! The vault as a systemd user service (`vault install` / `vault uninstall`): the unit that
//! runs `vault serve` in the user's login session, so the vault outlives the shell that
//! started it and starts with the session.

use std::ffi::OsStr;
use std::path::PathBuf;

use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::session::Executor;

/// The unit's file name.
pub const VAULT_UNIT: &str = "terok-vault.service";

/// A rendered unit and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultUnit {
    /// `$XDG_CONFIG_HOME/systemd/user/terok-vault.service`.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// The variables the daemon resolves its paths and engine from: passed on to the unit (the
/// user manager's environment has none of the shell's). Secrets never are.
fn passed_on(name: &str) -> bool {
    let secret = terok_core::env::SECRET_VARS.contains(&name);
    !secret
        && (name.starts_with("TEROK_")
            || matches!(
                name,
                "XDG_CONFIG_HOME" | "XDG_DATA_HOME" | "XDG_STATE_HOME" | "CONTAINER_HOST"
            ))
}

/// Where a quoted word goes: `ExecStart=` expands `$VAR`, `Environment=` does not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UnitLine {
    ExecStart,
    Environment,
}

/// One word of a unit line, quoted for systemd: `"` and `\` escaped, `%` doubled (no
/// specifier is expanded) and, on `ExecStart=`, `$` doubled (no variable is). `None` for a
/// word with a control character, which no unit line can hold.
fn unit_word(word: &OsStr, line: UnitLine) -> Option<String> {
    let text = word.to_str()?;
    if text.chars().any(char::is_control) {
        return None;
    }
    let mut escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    if line == UnitLine::ExecStart {
        escaped = escaped.replace('$', "$$");
    }
    Some(format!("\"{escaped}\""))
}

impl<R: ContainerRuntime> Executor<R> {
    /// The unit that serves the vault as this session would (same program, config and engine,
    /// the same `TEROK_*`, XDG and `CONTAINER_HOST` variables).
    pub fn vault_unit(&self) -> Result<VaultUnit, ExecutorError> {
        let launcher = self
            .launcher
            .as_ref()
            .ok_or(ExecutorError::NoVaultLauncher)?;
        let unsupported = |what: &str| ExecutorError::VaultUnitUnwritable {
            detail: format!("{what} has a character a unit file cannot hold"),
        };
        let mut command = vec![
            unit_word(launcher.program().as_os_str(), UnitLine::ExecStart)
                .ok_or_else(|| unsupported("this program's path"))?,
        ];
        for arg in launcher.args() {
            command.push(
                unit_word(arg, UnitLine::ExecStart).ok_or_else(|| unsupported("an argument"))?,
            );
        }
        let mut environment = Vec::new();
        for (name, value) in self.env().vars() {
            let Some(name) = name.to_str().filter(|n| passed_on(n)) else {
                continue;
            };
            let mut pair = std::ffi::OsString::from(format!("{name}="));
            pair.push(value);
            let word = unit_word(&pair, UnitLine::Environment).ok_or_else(|| unsupported(name))?;
            environment.push(format!("Environment={word}\n"));
        }
        environment.sort();
        let text = format!(
            "# Written by `terok-executor vault install`; `terok-executor vault uninstall` removes it.\n\
             [Unit]\n\
             Description=terok vault: real credentials stay on the host, containers get phantom tokens\n\
             \n\
             [Service]\n\
             Type=simple\n\
             ExecStart={}\n\
             {}\
             UMask=0077\n\
             NoNewPrivileges=yes\n\
             Restart=on-failure\n\
             RestartSec=2\n\
             \n\
             [Install]\n\
             WantedBy=default.target\n",
            command.join(" "),
            environment.concat()
        );
        Ok(VaultUnit {
            path: self.vault_unit_path()?,
            text,
        })
    }

    /// Where the unit goes: the user's systemd directory.
    fn vault_unit_path(&self) -> Result<PathBuf, ExecutorError> {
        let config = match self.env().var("XDG_CONFIG_HOME") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(self.env().var("HOME").ok_or(ExecutorError::NoUserSession {
                detail: "HOME is not set".into(),
            })?)
            .join(".config"),
        };
        Ok(config.join("systemd/user").join(VAULT_UNIT))
    }

    /// Writes the unit and has the user's systemd start it (and at every login); a vault this
    /// program started is stopped first. Nothing is written without a user session.
    pub async fn install_vault_unit(&self) -> Result<VaultUnit, ExecutorError> {
        self.systemctl(&["show-environment"])?;
        let unit = self.vault_unit()?;
        if let Some(dir) = unit.path.parent() {
            fs_err::create_dir_all(dir)
                .map_err(ExecutorError::io(format!("cannot make {}", dir.display())))?;
        }
        terok_core::secure_fs::write_atomic(&unit.path, unit.text.as_bytes(), 0o644)?;
        self.systemctl(&["daemon-reload"])?;
        self.systemctl(&["enable", VAULT_UNIT])?;
        // Only now the vault this program started gives way to the service; if the service
        // does not start, the vault is started again as before (tasks keep their tokens).
        self.stop_vault().await?;
        if let Err(err) = self.systemctl(&["start", VAULT_UNIT]) {
            self.ensure_vault().await?;
            return Err(err);
        }
        Ok(unit)
    }

    /// Stops and removes the unit; `None` when none was installed.
    pub fn uninstall_vault_unit(&self) -> Result<Option<PathBuf>, ExecutorError> {
        let path = self.vault_unit_path()?;
        if !path.exists() {
            return Ok(None);
        }
        self.systemctl(&["show-environment"])?;
        self.systemctl(&["disable", "--now", VAULT_UNIT])?;
        terok_core::secure_fs::remove_file(&path)?;
        self.systemctl(&["daemon-reload"])?;
        Ok(Some(path))
    }

    /// `systemctl --user ARGS`, failing with what it said.
    fn systemctl(&self, args: &[&str]) -> Result<(), ExecutorError> {
        let out = std::process::Command::new("systemctl")
            .arg("--user")
            .args(args)
            .output()
            .map_err(|e| ExecutorError::NoUserSession {
                detail: format!("cannot run systemctl: {e}"),
            })?;
        if out.status.success() {
            return Ok(());
        }
        let said =
            terok_core::text::printable(String::from_utf8_lossy(&out.stderr).trim()).into_owned();
        Err(ExecutorError::NoUserSession {
            detail: format!("systemctl --user {}: {said}", args.join(" ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_systemd_and_control_characters_refused() {
        let exec = |w: &str| unit_word(OsStr::new(w), UnitLine::ExecStart);
        assert_eq!(
            exec("/opt/my dir/terok").as_deref(),
            Some("\"/opt/my dir/terok\"")
        );
        assert_eq!(
            exec("a\"b\\c%d$e").as_deref(),
            Some("\"a\\\"b\\\\c%%d$$e\"")
        );
        // Environment= expands no variable: a `$` stays one.
        assert_eq!(
            unit_word(OsStr::new("TEROK_ROOT=/srv/$x%"), UnitLine::Environment).as_deref(),
            Some("\"TEROK_ROOT=/srv/$x%%\"")
        );
        assert_eq!(exec("line\nExecStartPre=/bin/evil"), None);
    }

    #[test]
    fn only_path_and_engine_variables_are_passed_on() {
        assert!(passed_on("TEROK_ROOT"));
        assert!(passed_on("XDG_DATA_HOME"));
        assert!(passed_on("CONTAINER_HOST"));
        assert!(!passed_on("PATH"));
        for secret in terok_core::env::SECRET_VARS {
            assert!(!passed_on(secret), "{secret}");
        }
    }
}
