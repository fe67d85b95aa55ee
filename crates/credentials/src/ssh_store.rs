//! SSH keys in the credential database: the private half sealed with the data key (bound to
//! the key's name), the public half and fingerprint in the clear, and which scopes — an agent's
//! name, or `%all` — may use each key.

use rusqlite::{OptionalExtension, params};

use crate::db::{CredentialDb, DbError, validate_name};
use crate::ssh::{SshPrivateKey, check_comment, fingerprint};

/// The scope every task may use a key in.
pub const ALL_SCOPES: &str = "%all";

/// A stored key, without its private half.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SshKeyRecord {
    /// Its name.
    pub name: String,
    /// `ed25519` or `rsa`.
    pub kind: String,
    /// The public key on the wire.
    pub public_blob: Vec<u8>,
    /// Its comment.
    pub comment: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// The scopes that may use it.
    pub scopes: Vec<String>,
}

fn aad(name: &str) -> Vec<u8> {
    format!("terok/ssh_keys/{name}/private").into_bytes()
}

impl CredentialDb {
    /// Stores `key` as `name`; refuses a name or a key that is stored already.
    pub fn add_ssh_key(
        &self,
        name: &str,
        key: &SshPrivateKey,
        comment: &str,
    ) -> Result<SshKeyRecord, DbError> {
        validate_name("SSH key name", name)?;
        check_comment(comment)?;
        let public_blob = key.public_blob()?;
        let fingerprint = fingerprint(&public_blob);
        let taken: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM ssh_keys WHERE name = ?1 OR fingerprint = ?2",
                params![name, fingerprint],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        if let Some(other) = taken {
            return Err(DbError::SshKeyExists {
                what: if other == name {
                    format!("named `{name}`")
                } else {
                    format!("with fingerprint {fingerprint} (as `{other}`)")
                },
            });
        }
        let json = serde_json::to_vec(key).map_err(|_| DbError::Rng)?;
        let sealed = self.key.seal(&json, &aad(name)).map_err(|_| DbError::Rng)?;
        let created_at = terok_core::time::unix_now();
        self.conn
            .execute(
                "INSERT INTO ssh_keys (name, kind, private, public_blob, comment, fingerprint, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    name,
                    key.kind().as_str(),
                    sealed,
                    public_blob,
                    comment,
                    fingerprint,
                    created_at
                ],
            )
            .map_err(self.sql())?;
        Ok(SshKeyRecord {
            name: name.to_owned(),
            kind: key.kind().as_str().to_owned(),
            public_blob,
            comment: comment.to_owned(),
            fingerprint,
            created_at,
            scopes: Vec::new(),
        })
    }

    /// Lets tasks of `scope` (an agent's name, or [`ALL_SCOPES`]) use key `name`.
    pub fn assign_ssh_key(&self, name: &str, scope: &str) -> Result<(), DbError> {
        validate_name("scope", scope)?;
        // terok's own keys (`%host`, which logs in to microVM guests) are never served to a
        // task's signer: only to the reserved scope of the same name.
        if name.starts_with('%') && name != scope {
            return Err(DbError::ReservedSshKey {
                name: name.to_owned(),
                scope: scope.to_owned(),
            });
        }
        self.ssh_key(name)?
            .ok_or_else(|| DbError::NoSshKey(name.to_owned()))?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO ssh_key_assignments (scope, key_name) VALUES (?1, ?2)",
                params![scope, name],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Every stored key, by name.
    pub fn list_ssh_keys(&self) -> Result<Vec<SshKeyRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, kind, public_blob, comment, fingerprint, created_at
                 FROM ssh_keys ORDER BY name",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SshKeyRecord {
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    public_blob: r.get(2)?,
                    comment: r.get(3)?,
                    fingerprint: r.get(4)?,
                    created_at: r.get(5)?,
                    scopes: Vec::new(),
                })
            })
            .map_err(self.sql())?;
        let mut keys = Vec::new();
        for row in rows {
            let mut key = row.map_err(self.sql())?;
            key.scopes = self.scopes_of(&key.name)?;
            keys.push(key);
        }
        Ok(keys)
    }

    fn scopes_of(&self, name: &str) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT scope FROM ssh_key_assignments WHERE key_name = ?1 ORDER BY scope")
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![name], |r| r.get(0))
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// The key `name`, without its private half.
    pub fn ssh_key(&self, name: &str) -> Result<Option<SshKeyRecord>, DbError> {
        Ok(self.list_ssh_keys()?.into_iter().find(|k| k.name == name))
    }

    /// The keys tasks of `scope` may use: those assigned to it and to [`ALL_SCOPES`].
    pub fn ssh_keys_for(&self, scope: &str) -> Result<Vec<SshKeyRecord>, DbError> {
        Ok(self
            .list_ssh_keys()?
            .into_iter()
            .filter(|k| k.scopes.iter().any(|s| s == scope || s == ALL_SCOPES))
            // terok's own keys serve their own scope only, whatever an older database says.
            .filter(|k| !k.name.starts_with('%') || k.name == scope)
            .collect())
    }

    /// The private half of the key with `fingerprint`, to sign with (inside this process).
    pub fn ssh_private_key(&self, fingerprint: &str) -> Result<Option<SshPrivateKey>, DbError> {
        let row: Option<(String, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT name, private FROM ssh_keys WHERE fingerprint = ?1",
                params![fingerprint],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.sql())?;
        let Some((name, sealed)) = row else {
            return Ok(None);
        };
        let plain = self
            .key
            .open(&sealed, &aad(&name))
            .map_err(|source| DbError::Corrupt {
                path: self.path.clone(),
                what: format!("SSH key {name}"),
                source,
            })?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| DbError::SshKey(crate::ssh::SshKeyError::Unreadable(e.to_string())))
    }

    /// Removes key `name` (and its assignments); whether it was there.
    pub fn remove_ssh_key(&self, name: &str) -> Result<bool, DbError> {
        let removed = self
            .conn
            .execute("DELETE FROM ssh_keys WHERE name = ?1", params![name])
            .map_err(self.sql())?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::DataKey;

    fn db() -> (tempfile::TempDir, CredentialDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = CredentialDb::open(
            &dir.path().join("c.db"),
            DataKey::generate().unwrap(),
            "test",
        )
        .unwrap();
        (dir, db)
    }

    #[test]
    fn keys_are_stored_sealed_assigned_and_removed() {
        let (dir, db) = db();
        let key = SshPrivateKey::generate_ed25519().unwrap();
        let stored = db.add_ssh_key("work", &key, "terok work").unwrap();
        assert!(stored.fingerprint.starts_with("SHA256:"));
        // The same name, or the same key under another name: refused.
        assert!(matches!(
            db.add_ssh_key("work", &SshPrivateKey::generate_ed25519().unwrap(), ""),
            Err(DbError::SshKeyExists { .. })
        ));
        assert!(matches!(
            db.add_ssh_key("again", &key, ""),
            Err(DbError::SshKeyExists { .. })
        ));
        assert!(matches!(
            db.add_ssh_key("x", &SshPrivateKey::generate_ed25519().unwrap(), "a\u{7}b"),
            Err(DbError::SshKey(_))
        ));
        assert!(db.ssh_keys_for("claude").unwrap().is_empty());
        db.assign_ssh_key("work", "claude").unwrap();
        assert_eq!(db.ssh_keys_for("claude").unwrap().len(), 1);
        assert!(db.ssh_keys_for("codex").unwrap().is_empty());
        db.assign_ssh_key("work", ALL_SCOPES).unwrap();
        assert_eq!(db.ssh_keys_for("codex").unwrap().len(), 1);
        assert!(matches!(
            db.assign_ssh_key("nope", "claude"),
            Err(DbError::NoSshKey(_))
        ));
        // terok's own keys serve their own scope, never a task's.
        db.add_ssh_key("%host", &SshPrivateKey::generate_ed25519().unwrap(), "")
            .unwrap();
        db.assign_ssh_key("%host", "%host").unwrap();
        for scope in [ALL_SCOPES, "claude"] {
            assert!(matches!(
                db.assign_ssh_key("%host", scope),
                Err(DbError::ReservedSshKey { .. })
            ));
        }
        assert_eq!(db.ssh_keys_for("claude").unwrap().len(), 1, "only `work`");
        // An older database that gave it to every scope still does not serve it to a task.
        db.conn
            .execute(
                "INSERT INTO ssh_key_assignments (scope, key_name) VALUES (?1, '%host')",
                params![ALL_SCOPES],
            )
            .unwrap();
        let names: Vec<String> = db
            .ssh_keys_for("claude")
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["work"]);
        assert_eq!(db.ssh_keys_for("%host").unwrap().len(), 2);
        // The private half comes back and signs like the original.
        let back = db.ssh_private_key(&stored.fingerprint).unwrap().unwrap();
        assert_eq!(back.public_blob().unwrap(), stored.public_blob);
        // Nothing of the private key is in the file in the clear.
        drop(db);
        let bytes = std::fs::read(dir.path().join("c.db")).unwrap();
        let json = serde_json::to_string(&key).unwrap();
        let secret = json.split('"').nth(7).unwrap();
        assert!(secret.len() == 64, "{json}");
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the seed is in the database file"
        );
        let db = CredentialDb::open(&dir.path().join("c.db"), DataKey::generate().unwrap(), "x");
        assert!(db.is_err(), "another key does not open it");
    }

    #[test]
    fn removing_a_key_removes_its_assignments() {
        let (_dir, db) = db();
        let key = SshPrivateKey::generate_ed25519().unwrap();
        db.add_ssh_key("k", &key, "").unwrap();
        db.assign_ssh_key("k", ALL_SCOPES).unwrap();
        assert!(db.remove_ssh_key("k").unwrap());
        assert!(!db.remove_ssh_key("k").unwrap());
        assert!(db.ssh_keys_for("claude").unwrap().is_empty());
        db.add_ssh_key("k", &key, "").unwrap();
        assert!(db.ssh_keys_for("claude").unwrap().is_empty());
    }
}
