//! Gate tokens: `terok-g-` and 128 random bits as 32 hex digits, each bound to one repository
//! and one task. Only a SHA-256 of each token is stored (`tokens.json`, 0600, replaced whole
//! under a lock), so the file gives no way in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use terok_core::secure_fs;

use crate::error::GateError;

/// Prefix of every gate token.
pub const TOKEN_PREFIX: &str = "terok-g-";

/// What a token allows: one repository, for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The mirror's name.
    pub repo: String,
    /// The task (its container name).
    pub task: String,
    /// When it was minted or reinstated (seconds since the epoch): a sweep spares a token
    /// whose container is not running yet.
    #[serde(default)]
    pub minted_unix: i64,
}

/// The tokens of the gate, in `<root>/tokens.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStore {
    file: PathBuf,
}

/// Whether `text` has the shape of a gate token.
pub fn is_gate_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl TokenStore {
    /// The store in `file`.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self { file: file.into() }
    }

    fn state_err(&self, detail: impl ToString) -> GateError {
        GateError::State {
            path: self.file.clone(),
            detail: detail.to_string(),
        }
    }

    fn read(&self) -> Result<BTreeMap<String, TokenGrant>, GateError> {
        match secure_fs::read_nofollow(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.state_err(e)),
            Err(secure_fs::SecureFsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(BTreeMap::new())
            }
            Err(err) => Err(self.state_err(err)),
        }
    }

    /// Changes the stored grants under the store's lock.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, TokenGrant>) -> T,
    ) -> Result<T, GateError> {
        let dir = self.file.parent().unwrap_or(std::path::Path::new("."));
        secure_fs::ensure_private_dir(dir).map_err(|e| self.state_err(e))?;
        let _lock = secure_fs::lock_exclusive(&self.file.with_extension("lock"))
            .map_err(|e| self.state_err(e))?;
        let mut grants = self.read()?;
        let out = change(&mut grants);
        let json = serde_json::to_vec_pretty(&grants).map_err(|e| self.state_err(e))?;
        secure_fs::write_sensitive(&self.file, &json).map_err(|e| self.state_err(e))?;
        Ok(out)
    }

    /// A new token for `task` on repository `repo`.
    pub fn mint(&self, repo: &str, task: &str) -> Result<String, GateError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| GateError::Rng)?;
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
        let grant = TokenGrant {
            repo: repo.to_owned(),
            task: task.to_owned(),
            minted_unix: terok_core::time::unix_now(),
        };
        self.update(|grants| grants.insert(hash(&token), grant))?;
        Ok(token)
    }

    /// Admits `token` (one [`Self::mint`] made earlier and the caller kept) for `task` on `repo`
    /// again: a stopped task's token is revoked, and its container, whose git remote carries
    /// the token, gets it back when it starts again.
    pub fn reinstate(&self, token: &str, repo: &str, task: &str) -> Result<(), GateError> {
        if !is_gate_token(token) {
            return Err(self.state_err("not a gate token"));
        }
        let grant = TokenGrant {
            repo: repo.to_owned(),
            task: task.to_owned(),
            minted_unix: terok_core::time::unix_now(),
        };
        self.update(|grants| grants.insert(hash(token), grant))?;
        Ok(())
    }

    /// Whether `task` holds a live token.
    pub fn task_is_admitted(&self, task: &str) -> Result<bool, GateError> {
        Ok(self.read()?.values().any(|grant| grant.task == task))
    }

    /// What `token` allows, if it is a live token.
    pub fn lookup(&self, token: &str) -> Result<Option<TokenGrant>, GateError> {
        if !is_gate_token(token) {
            return Ok(None);
        }
        Ok(self.read()?.remove(&hash(token)))
    }

    /// Revokes every token of `task`; how many there were.
    pub fn revoke_task(&self, task: &str) -> Result<usize, GateError> {
        self.update(|grants| {
            let before = grants.len();
            grants.retain(|_, grant| grant.task != task);
            before - grants.len()
        })
    }

    /// Revokes the tokens of every task `alive` says is gone, sparing those minted in the
    /// last `grace_secs` (their container may not exist yet); how many.
    pub fn revoke_unless(
        &self,
        alive: &dyn Fn(&str) -> bool,
        grace_secs: i64,
    ) -> Result<usize, GateError> {
        let now = terok_core::time::unix_now();
        self.update(|grants| {
            let before = grants.len();
            grants.retain(|_, grant| alive(&grant.task) || now - grant.minted_unix < grace_secs);
            before - grants.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_repo_and_task_and_revoked_with_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("gate/tokens.json"));
        let a = store.mint("widget-1234abcd", "terok-executor-a").unwrap();
        let b = store.mint("other-5678abcd", "terok-executor-b").unwrap();
        assert!(is_gate_token(&a) && a != b);
        assert_eq!(store.lookup(&a).unwrap().unwrap().repo, "widget-1234abcd");
        // The file holds hashes, not tokens.
        let text = std::fs::read_to_string(dir.path().join("gate/tokens.json")).unwrap();
        assert!(!text.contains(&a[TOKEN_PREFIX.len()..]), "{text}");
        assert_eq!(store.revoke_task("terok-executor-a").unwrap(), 1);
        assert!(store.lookup(&a).unwrap().is_none());
        assert!(store.lookup(&b).unwrap().is_some());
        assert!(store.lookup("terok-g-nothex").unwrap().is_none());
        assert!(!store.task_is_admitted("terok-executor-a").unwrap());
        store
            .reinstate(&a, "widget-1234abcd", "terok-executor-a")
            .unwrap();
        assert!(store.task_is_admitted("terok-executor-a").unwrap());
        assert_eq!(store.lookup(&a).unwrap().unwrap().task, "terok-executor-a");
        assert!(store.reinstate("secret", "r", "t").is_err());
        assert_eq!(store.revoke_unless(&|_| false, 60).unwrap(), 0, "fresh");
        assert_eq!(store.revoke_unless(&|_| false, 0).unwrap(), 2);
    }
}
