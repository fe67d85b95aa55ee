//! The credential database: SQLite (WAL), secret columns sealed with the data key, phantom-token
//! hashes with their binding (scope, subject = container, credential set, provider).
//!
//! A database opened with the wrong key fails closed: a sealed check value written at creation
//! must open, or nothing is read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::credential::Credential;
use crate::seal::{DataKey, SealError};
use crate::token::{new_token, token_hash};

/// Current schema version (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;
const KEY_CHECK_PLAINTEXT: &[u8] = b"terok credential database key check v1";
const KEY_CHECK_AAD: &[u8] = b"terok/meta/key_check";

/// How long a write waits for another process's lock on the database before it gives up:
/// other terok processes hold it for milliseconds, so this only runs out when something else
/// keeps a transaction open. Well below the 10 s a control call to the vault daemon waits, so
/// a daemon that gives up answers before its caller has.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// SQLite's error on `path` as a [`DbError`]: a lock that outlasted [`LOCK_WAIT`] is
/// [`DbError::Locked`], anything else [`DbError::Sqlite`].
fn sqlite_error(path: &Path, source: rusqlite::Error) -> DbError {
    // SQLITE_BUSY is another connection's lock outlasting the busy timeout; SQLITE_LOCKED
    // is a conflict within one connection, which no wait resolves.
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) => DbError::Locked {
            path: path.to_path_buf(),
        },
        _ => DbError::Sqlite {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Why the credential database could not be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DbError {
    /// SQLite failed.
    #[error("credential database {}: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Another process held a write lock on the database for longer than [`LOCK_WAIT`].
    #[error(
        "the credential database {} is locked by another process; gave up after waiting {} s",
        path.display(),
        LOCK_WAIT.as_secs()
    )]
    #[diagnostic(help(
        "another terok-executor (or a program such as sqlite3) is writing to it; nothing was changed"
    ))]
    Locked {
        /// The database.
        path: PathBuf,
    },
    /// The data key does not open this database.
    #[error("the credential database {} was sealed with a different key ({source_desc}); refusing to read it", path.display())]
    #[diagnostic(help(
        "restore the key it was created with (TEROK_VAULT_KEY, the OS keyring, or vault.key in the vault \
         directory), or move the database aside to start over (stored credentials are then lost)"
    ))]
    WrongKey {
        /// The database.
        path: PathBuf,
        /// Where the key came from.
        source_desc: String,
    },
    /// The database was written by a newer terok-executor.
    #[error("credential database {} has schema version {found}; this terok-executor understands up to {SCHEMA_VERSION}", path.display())]
    #[diagnostic(help("upgrade terok-executor"))]
    TooNew {
        /// The database.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// A stored value is damaged or was tampered with.
    #[error("credential database {}: the stored {what} cannot be decrypted ({source})", path.display())]
    Corrupt {
        /// The database.
        path: PathBuf,
        /// What could not be opened.
        what: String,
        /// Why.
        source: SealError,
    },
    /// A name is not acceptable (scope, credential set, provider).
    #[error(
        "invalid {what} `{value}`: use letters, digits, `.`, `_`, `-` (or `%name` for reserved scopes)"
    )]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The file system refused.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] terok_core::secure_fs::SecureFsError),
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Rng,
    /// An SSH key with that name or that key is stored already.
    #[error("an SSH key {what} is stored already")]
    SshKeyExists {
        /// `named …` or `with fingerprint …`.
        what: String,
    },
    /// No SSH key by that name.
    #[error("no SSH key named `{0}`")]
    NoSshKey(String),
    /// A key terok keeps for itself (its name starts with `%`) may serve its own scope only.
    #[error("the SSH key `{name}` is terok's own and cannot be given to `{scope}`")]
    ReservedSshKey {
        /// The key.
        name: String,
        /// The scope it was to be given to.
        scope: String,
    },
    /// An SSH key cannot be made, read or used.
    #[error(transparent)]
    #[diagnostic(transparent)]
    SshKey(#[from] crate::ssh::SshKeyError),
}

/// One minted token's binding (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Scope (`standalone`, a project id).
    pub scope: String,
    /// The container the token belongs to.
    pub subject: String,
    /// Credential set (`default`).
    pub credential_set: String,
    /// Provider whose credential the token stands for.
    pub provider: String,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// A stored credential's name and type (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSummary {
    /// Provider.
    pub provider: String,
    /// `api_key`, `oauth`, …
    pub kind: String,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

/// The open database.
pub struct CredentialDb {
    pub(crate) conn: Connection,
    pub(crate) key: DataKey,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for CredentialDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Checks a scope, credential set or provider name.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), DbError> {
    let body = value.strip_prefix('%').unwrap_or(value);
    let ok = !body.is_empty()
        && body.len() <= 128
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(DbError::InvalidName {
            what,
            value: value.chars().take(64).collect(),
        })
    }
}

impl CredentialDb {
    /// Opens (creating if needed) the database at `path`, sealed with `key`. `key_source`
    /// describes where the key came from, for the wrong-key message.
    pub fn open(path: &Path, key: DataKey, key_source: &str) -> Result<Self, DbError> {
        // The directory may be one the user chose (`credentials.db_path`): created private
        // when missing, its mode left alone when not; the database file itself is 0600.
        if let Some(dir) = path.parent() {
            terok_core::secure_fs::create_dir_if_missing(
                dir,
                terok_core::secure_fs::PRIVATE_DIR_MODE,
            )?;
        }
        let sql = |source| sqlite_error(path, source);
        let existed = path.exists();
        let conn = Connection::open(path).map_err(sql)?;
        // Owner-only before anything is written (SQLite creates the file with the umask).
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| {
                DbError::Fs(terok_core::secure_fs::SecureFsError::Io {
                    op: "protect",
                    path: path.to_path_buf(),
                    source: e,
                })
            })?;
        conn.busy_timeout(LOCK_WAIT).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        let db = Self {
            conn,
            key,
            path: path.to_path_buf(),
        };
        db.migrate(existed)?;
        db.check_key(key_source)?;
        Ok(db)
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn sql(&self) -> impl Fn(rusqlite::Error) -> DbError + '_ {
        |source| sqlite_error(&self.path, source)
    }

    fn migrate(&self, existed: bool) -> Result<(), DbError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.sql())?;
        if version > SCHEMA_VERSION {
            return Err(DbError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        if version < 1 {
            let _ = existed;
            self.conn
                .execute_batch(
                    "BEGIN;
                     CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                     CREATE TABLE IF NOT EXISTS credentials (
                         credential_set TEXT NOT NULL,
                         provider TEXT NOT NULL,
                         kind TEXT NOT NULL,
                         data BLOB NOT NULL,
                         updated_at INTEGER NOT NULL,
                         PRIMARY KEY (credential_set, provider));
                     CREATE TABLE IF NOT EXISTS proxy_tokens (
                         token_hash TEXT PRIMARY KEY,
                         scope TEXT NOT NULL,
                         subject TEXT NOT NULL,
                         credential_set TEXT NOT NULL,
                         provider TEXT NOT NULL,
                         created_at INTEGER NOT NULL);
                     CREATE INDEX IF NOT EXISTS proxy_tokens_subject ON proxy_tokens(subject);
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(self.sql())?;
        }
        if version < 2 {
            // SSH keys for the signer: the private half sealed like a credential.
            self.conn
                .execute_batch(
                    "BEGIN;
                     CREATE TABLE IF NOT EXISTS ssh_keys (
                         name TEXT PRIMARY KEY,
                         kind TEXT NOT NULL,
                         private BLOB NOT NULL,
                         public_blob BLOB NOT NULL,
                         comment TEXT NOT NULL,
                         fingerprint TEXT NOT NULL UNIQUE,
                         created_at INTEGER NOT NULL);
                     CREATE TABLE IF NOT EXISTS ssh_key_assignments (
                         scope TEXT NOT NULL,
                         key_name TEXT NOT NULL REFERENCES ssh_keys(name) ON DELETE CASCADE,
                         PRIMARY KEY (scope, key_name));
                     PRAGMA user_version = 2;
                     COMMIT;",
                )
                .map_err(self.sql())?;
        }
        Ok(())
    }

    fn check_key(&self, key_source: &str) -> Result<(), DbError> {
        let stored: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sql())?;
        match stored {
            Some(sealed) => match self.key.open(&sealed, KEY_CHECK_AAD) {
                Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
                _ => Err(DbError::WrongKey {
                    path: self.path.clone(),
                    source_desc: key_source.to_owned(),
                }),
            },
            None => {
                let sealed = self
                    .key
                    .seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
                    .map_err(|_| DbError::Rng)?;
                self.conn
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('key_check', ?1)",
                        params![sealed],
                    )
                    .map_err(self.sql())?;
                Ok(())
            }
        }
    }

    fn credential_aad(set: &str, provider: &str) -> Vec<u8> {
        format!("terok/credentials/{set}/{provider}/data").into_bytes()
    }

    /// Stores (replaces) the credential of `provider` in `set`.
    pub fn store_credential(
        &self,
        set: &str,
        provider: &str,
        credential: &Credential,
    ) -> Result<(), DbError> {
        validate_name("credential set", set)?;
        validate_name("provider", provider)?;
        let json = serde_json::to_vec(credential).map_err(|_| DbError::Rng)?;
        let sealed = self
            .key
            .seal(&json, &Self::credential_aad(set, provider))
            .map_err(|_| DbError::Rng)?;
        self.conn
            .execute(
                "INSERT INTO credentials (credential_set, provider, kind, data, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (credential_set, provider)
                 DO UPDATE SET kind = excluded.kind, data = excluded.data, updated_at = excluded.updated_at",
                params![set, provider, credential.kind(), sealed, terok_core::time::unix_now()],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// The credential of `provider` in `set`.
    pub fn load_credential(
        &self,
        set: &str,
        provider: &str,
    ) -> Result<Option<Credential>, DbError> {
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT data FROM credentials WHERE credential_set = ?1 AND provider = ?2",
                params![set, provider],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let what = format!("credential for {provider} (set {set})");
        let plain = self
            .key
            .open(&sealed, &Self::credential_aad(set, provider))
            .map_err(|source| DbError::Corrupt {
                path: self.path.clone(),
                what: what.clone(),
                source,
            })?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|_| DbError::Corrupt {
                path: self.path.clone(),
                what,
                source: SealError::Malformed,
            })
    }

    /// Names and types of the credentials in `set`, by provider.
    pub fn list_credentials(&self, set: &str) -> Result<Vec<CredentialSummary>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT provider, kind, updated_at FROM credentials WHERE credential_set = ?1 ORDER BY provider")
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![set], |r| {
                Ok(CredentialSummary {
                    provider: r.get(0)?,
                    kind: r.get(1)?,
                    updated_at: r.get(2)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Deletes a credential; returns whether one existed.
    pub fn delete_credential(&self, set: &str, provider: &str) -> Result<bool, DbError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM credentials WHERE credential_set = ?1 AND provider = ?2",
                params![set, provider],
            )
            .map_err(self.sql())?;
        Ok(n > 0)
    }

    /// Mints a phantom token for `subject` (a container) standing for `provider`'s credential in
    /// `set`. Returns the token; only its hash is stored.
    pub fn mint_token(
        &self,
        scope: &str,
        subject: &str,
        set: &str,
        provider: &str,
    ) -> Result<String, DbError> {
        validate_name("scope", scope)?;
        validate_name("container name", subject)?;
        validate_name("credential set", set)?;
        validate_name("provider", provider)?;
        let token = new_token().map_err(|_| DbError::Rng)?;
        self.conn
            .execute(
                "INSERT INTO proxy_tokens (token_hash, scope, subject, credential_set, provider, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![token_hash(&token), scope, subject, set, provider, terok_core::time::unix_now()],
            )
            .map_err(self.sql())?;
        Ok(token)
    }

    /// Binds a token minted elsewhere, known here by its hash only: a vault sidecar adopts
    /// the tokens the executor put into its task's Pod, so it never learns the tokens themselves.
    pub fn adopt_token_hash(
        &self,
        hash: &str,
        subject: &str,
        set: &str,
        provider: &str,
    ) -> Result<(), DbError> {
        validate_name("container name", subject)?;
        validate_name("credential set", set)?;
        validate_name("provider", provider)?;
        let well_formed = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(DbError::InvalidName {
                what: "token hash",
                value: hash.escape_debug().to_string(),
            });
        }
        self.conn
            .execute(
                "INSERT INTO proxy_tokens (token_hash, scope, subject, credential_set, provider, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![hash.to_ascii_lowercase(), subject, subject, set, provider, terok_core::time::unix_now()],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// The binding of `token`, if it is a live token.
    pub fn lookup_token(&self, token: &str) -> Result<Option<TokenRecord>, DbError> {
        self.lookup_hash(&token_hash(token))
    }

    /// The binding of a token by its hash.
    pub fn lookup_hash(&self, hash: &str) -> Result<Option<TokenRecord>, DbError> {
        self.conn
            .query_row(
                "SELECT token_hash, scope, subject, credential_set, provider, created_at
                 FROM proxy_tokens WHERE token_hash = ?1",
                params![hash],
                row_to_token,
            )
            .optional()
            .map_err(self.sql())
    }

    /// Every live token binding.
    pub fn list_tokens(&self) -> Result<Vec<TokenRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT token_hash, scope, subject, credential_set, provider, created_at
                 FROM proxy_tokens ORDER BY subject, provider",
            )
            .map_err(self.sql())?;
        let rows = stmt.query_map([], row_to_token).map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Revokes every token of `subject`; returns how many there were. Revoking twice is fine.
    pub fn revoke_subject(&self, subject: &str) -> Result<usize, DbError> {
        self.conn
            .execute(
                "DELETE FROM proxy_tokens WHERE subject = ?1",
                params![subject],
            )
            .map_err(self.sql())
    }

    /// Revokes the tokens of every subject not in `live` whose newest token is at least
    /// `grace_secs` old; returns the subjects revoked. The grace covers the moment between
    /// minting a container's tokens and podman creating (or restarting) it.
    pub fn sweep(&self, live: &BTreeSet<String>, grace_secs: i64) -> Result<Vec<String>, DbError> {
        let mut newest: BTreeMap<String, i64> = BTreeMap::new();
        for token in self.list_tokens()? {
            let entry = newest.entry(token.subject).or_insert(token.created_at);
            *entry = (*entry).max(token.created_at);
        }
        let cutoff = terok_core::time::unix_now().saturating_sub(grace_secs);
        let mut revoked = Vec::new();
        for (subject, created) in newest {
            if live.contains(&subject) || created > cutoff {
                continue;
            }
            self.revoke_subject(&subject)?;
            revoked.push(subject);
        }
        Ok(revoked)
    }

    /// A number that changes whenever another connection commits (SQLite `data_version`), so
    /// caches know when to reload.
    pub fn data_version(&self) -> Result<i64, DbError> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(self.sql())
    }

    /// [`Self::data_version`] without waiting: `None` while another process holds a lock on
    /// the database (its change, if any, is seen at the next look after it commits).
    pub fn data_version_now(&self) -> Option<i64> {
        self.conn.busy_timeout(std::time::Duration::ZERO).ok()?;
        let version = self.data_version().ok();
        // Every other call waits as before; failing to restore that would make them fail fast.
        let _ = self.conn.busy_timeout(LOCK_WAIT);
        version
    }
}

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        token_hash: r.get(0)?,
        scope: r.get(1)?,
        subject: r.get(2)?,
        credential_set: r.get(3)?,
        provider: r.get(4)?,
        created_at: r.get(5)?,
    })
}
