//! SSH keys for tasks: made or imported into the vault's database, assigned to agents (or to
//! every task), listed by their public halves. A task whose agent has keys gets an SSH signer
//! socket: git and ssh in the container sign with the keys there, and the private halves never
//! leave the host's vault process.

use serde::Serialize;
use terok_credentials::ssh::{SshPrivateKey, public_line};
use terok_credentials::ssh_store::{ALL_SCOPES, SshKeyRecord};
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::gate::GateMode;
use crate::launch::options::RunOptions;
use crate::repo::{RepoSource, classify_repo};
use crate::session::Executor;

/// Who may use a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUsers {
    /// Nobody yet (assign it later).
    None,
    /// Tasks of these agents.
    Agents(Vec<String>),
    /// Every task.
    All,
}

/// A stored key as users see it: never its private half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SshKeyInfo {
    /// Its name.
    pub name: String,
    /// `ed25519` or `rsa`.
    pub kind: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// The `authorized_keys` line to paste into a forge.
    pub public_key: String,
    /// Agents that may use it (`%all`: every task).
    pub scopes: Vec<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
}

impl From<SshKeyRecord> for SshKeyInfo {
    fn from(key: SshKeyRecord) -> Self {
        Self {
            public_key: public_line(&key.public_blob, &key.comment),
            name: key.name,
            kind: key.kind,
            fingerprint: key.fingerprint,
            scopes: key.scopes,
            created_at: key.created_at,
        }
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// Makes a new Ed25519 key `name` with `comment`, for `users`.
    pub fn ssh_keygen(
        &self,
        name: &str,
        comment: &str,
        users: &KeyUsers,
    ) -> Result<SshKeyInfo, ExecutorError> {
        let key = SshPrivateKey::generate_ed25519().map_err(terok_credentials::DbError::from)?;
        self.store_ssh_key(name, &key, comment, users)
    }

    /// Imports the private key file text `text` as `name` (its own comment, else `comment`),
    /// for `users`.
    pub fn ssh_import(
        &self,
        name: &str,
        text: &str,
        comment: &str,
        users: &KeyUsers,
    ) -> Result<SshKeyInfo, ExecutorError> {
        let (key, own_comment) =
            SshPrivateKey::import(text).map_err(terok_credentials::DbError::from)?;
        let comment = own_comment.as_deref().unwrap_or(comment);
        self.store_ssh_key(name, &key, comment, users)
    }

    fn store_ssh_key(
        &self,
        name: &str,
        key: &SshPrivateKey,
        comment: &str,
        users: &KeyUsers,
    ) -> Result<SshKeyInfo, ExecutorError> {
        // An unknown agent fails before anything is stored.
        self.key_scopes(users)?;
        self.open_db()?.add_ssh_key(name, key, comment)?;
        self.ssh_assign(name, users)
    }

    /// Lets `users` use key `name` as well.
    pub fn ssh_assign(&self, name: &str, users: &KeyUsers) -> Result<SshKeyInfo, ExecutorError> {
        let scopes = self.key_scopes(users)?;
        let db = self.open_db()?;
        for scope in &scopes {
            db.assign_ssh_key(name, scope)?;
        }
        Ok(db
            .ssh_key(name)?
            .map(SshKeyInfo::from)
            .ok_or_else(|| terok_credentials::DbError::NoSshKey(name.to_owned()))?)
    }

    /// The stored keys (none when there is no database yet).
    pub fn ssh_keys(&self) -> Result<Vec<SshKeyInfo>, ExecutorError> {
        match self.open_existing_db()? {
            Some(db) => Ok(db
                .list_ssh_keys()?
                .into_iter()
                .map(SshKeyInfo::from)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// The keys a task of `agent` may use.
    pub fn ssh_keys_for(&self, agent: &str) -> Result<Vec<SshKeyInfo>, ExecutorError> {
        match self.open_existing_db()? {
            Some(db) => Ok(db
                .ssh_keys_for(agent)?
                .into_iter()
                .map(SshKeyInfo::from)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// Removes key `name`; whether it was stored.
    pub fn ssh_remove(&self, name: &str) -> Result<bool, ExecutorError> {
        match self.open_existing_db()? {
            Some(db) => Ok(db.remove_ssh_key(name)?),
            None => Ok(false),
        }
    }

    /// The SSH URL a launch of `options` clones in the container itself — no gate, or the
    /// gate's online mode, where `origin` is the remote — when no key is stored for its
    /// agent's tasks; `None` when it needs no key or has one.
    pub fn missing_ssh_key(&self, options: &RunOptions) -> Result<Option<String>, ExecutorError> {
        let RepoSource::GitUrl(url) = classify_repo(&options.repo, &self.env, self.cwd.as_deref())?
        else {
            return Ok(None);
        };
        let through_gate = options.gate != Some(false) && options.gate_mode != GateMode::Online;
        if through_gate || !is_ssh_url(&url) {
            return Ok(None);
        }
        Ok(self.ssh_keys_for(&options.agent)?.is_empty().then_some(url))
    }

    /// The scopes of `users`, each agent checked against the roster.
    fn key_scopes(&self, users: &KeyUsers) -> Result<Vec<String>, ExecutorError> {
        Ok(match users {
            KeyUsers::None => Vec::new(),
            KeyUsers::All => vec![ALL_SCOPES.to_owned()],
            KeyUsers::Agents(agents) => {
                let roster = self.roster()?;
                agents
                    .iter()
                    .map(|a| roster.agent(a).map(|agent| agent.name.clone()))
                    .collect::<Result<_, _>>()?
            }
        })
    }
}

/// Whether git reaches `url` over SSH: `ssh://…`, `git+ssh://…`, or scp-like `user@host:path`.
pub fn is_ssh_url(url: &str) -> bool {
    if let Some((scheme, _)) = url.split_once("://") {
        return matches!(scheme, "ssh" | "git+ssh" | "ssh+git");
    }
    url.split_once(':')
        .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_are_told_from_the_others() {
        for url in [
            "git@github.com:org/repo.git",
            "ssh://git@198.18.0.2/srv/repo.git",
            "git+ssh://host/repo",
        ] {
            assert!(is_ssh_url(url), "{url}");
        }
        for url in [
            "https://github.com/org/repo.git",
            "file:///srv/repo.git",
            "/srv/repo",
            "http://user@host:8080/repo",
        ] {
            assert!(!is_ssh_url(url), "{url}");
        }
    }
}
