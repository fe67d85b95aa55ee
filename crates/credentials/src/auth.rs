//! `auth <agent>` (docs/compatibility.md#12.2): storing an API key, and capturing what an OAuth
//! login in an auth container left behind. Real credentials go into the credential DB only; the
//! shared mount gets at most the vendor's non-secret state (`post_capture_state`).

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};
use terok_core::secure_fs;
use terok_roster::AuthProvider;

use crate::credential::Credential;
use crate::db::{CredentialDb, DbError};
use crate::vendor::{VendorError, extract};

/// Why authentication failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AuthError {
    /// An empty key was given.
    #[error("API key cannot be empty.")]
    EmptyKey,
    /// The login produced no usable credential.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Vendor(#[from] VendorError),
    /// The database refused.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Db(#[from] DbError),
    /// A `post_capture_state` file name is unsafe.
    #[error("post_capture_state file `{0}` must be a relative path without `..`")]
    BadStateFile(String),
    /// Writing the shared state failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] secure_fs::SecureFsError),
}

/// Stores an API key for `provider` in the default set. The key is trimmed; an empty key is
/// refused and nothing is stored.
pub fn store_api_key(db: &CredentialDb, provider: &str, key: &str) -> Result<(), AuthError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(AuthError::EmptyKey);
    }
    db.store_credential(crate::DEFAULT_SET, provider, &Credential::api_key(key))?;
    Ok(())
}

/// What a capture did.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// The stored credential's type.
    pub kind: &'static str,
    /// Files of the shared mount updated with `post_capture_state`.
    pub state_files: Vec<PathBuf>,
}

/// Reads the credential the login left in `login_dir`, stores it, and applies the provider's
/// `post_capture_state` to its shared directory under `mounts_dir`.
pub fn capture(
    db: &CredentialDb,
    auth: &AuthProvider,
    login_dir: &Path,
    mounts_dir: &Path,
) -> Result<Captured, AuthError> {
    let credential = extract(&auth.name, login_dir)?;
    db.store_credential(crate::DEFAULT_SET, &auth.credential, &credential)?;
    let state_files = apply_post_capture_state(auth, mounts_dir)?;
    Ok(Captured {
        kind: credential.kind(),
        state_files,
    })
}

/// Merges `post_capture_state` into JSON files of the provider's shared directory (creating or
/// replacing non-object content); unchanged files are not rewritten.
pub fn apply_post_capture_state(
    auth: &AuthProvider,
    mounts_dir: &Path,
) -> Result<Vec<PathBuf>, AuthError> {
    let shared = mounts_dir.join(&auth.spec.host_dir);
    let mut written = Vec::new();
    for (file, state) in &auth.spec.post_capture_state {
        let rel = Path::new(file);
        if file.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(AuthError::BadStateFile(file.clone()));
        }
        let path = shared.join(rel);
        let mut current = match secure_fs::read_nofollow(&path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            },
            Err(secure_fs::SecureFsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Map::new()
            }
            Err(err) => return Err(err.into()),
        };
        let before = current.clone();
        for (k, v) in state {
            current.insert(k.clone(), v.clone());
        }
        if current == before && path.exists() {
            continue;
        }
        secure_fs::ensure_dir_with_mode(&shared, 0o700)?;
        let mut text = serde_json::to_string_pretty(&Value::Object(current)).unwrap_or_default();
        text.push('\n');
        secure_fs::write_atomic(&path, text.as_bytes(), 0o600)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::DataKey;

    fn db(dir: &Path) -> CredentialDb {
        CredentialDb::open(
            &dir.join("db/credentials.db"),
            DataKey::from_bytes([1; 32]),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn api_keys_are_trimmed_and_empty_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        assert!(matches!(
            store_api_key(&db, "claude", "  \n"),
            Err(AuthError::EmptyKey)
        ));
        assert!(
            db.list_credentials("default").unwrap().is_empty(),
            "nothing stored"
        );
        store_api_key(&db, "claude", " sk-ant-x\n").unwrap();
        assert_eq!(
            db.load_credential("default", "claude")
                .unwrap()
                .unwrap()
                .upstream_value()
                .expose(),
            "sk-ant-x"
        );
    }

    #[test]
    fn an_oauth_capture_stores_the_token_and_only_non_secret_state_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let roster = terok_roster::RosterLoader::bundled().load().unwrap();
        let auth = roster.auth_provider("claude").unwrap();
        let login = dir.path().join("login");
        std::fs::create_dir_all(&login).unwrap();
        std::fs::write(
            login.join(".credentials.json"),
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-real","refreshToken":"sk-ant-ort01-real","expiresAt":1893456000000,"subscriptionType":"max"}}"#,
        )
        .unwrap();
        let mounts = dir.path().join("mounts");
        let captured = capture(&db, &auth, &login, &mounts).unwrap();
        assert_eq!(captured.kind, "oauth");
        match db.load_credential("default", "claude").unwrap().unwrap() {
            Credential::Oauth {
                access_token,
                refresh_token,
                expires_at,
                ..
            } => {
                assert_eq!(access_token.expose(), "sk-ant-oat01-real");
                assert_eq!(refresh_token.unwrap().expose(), "sk-ant-ort01-real");
                assert_eq!(
                    expires_at,
                    Some(1_893_456_000.0),
                    "milliseconds become seconds"
                );
            }
            other => panic!("{other:?}"),
        }
        let state = std::fs::read_to_string(mounts.join("_claude-config/.claude.json")).unwrap();
        assert!(state.contains("\"hasCompletedOnboarding\": true"));
        assert!(
            !mounts.join("_claude-config/.credentials.json").exists(),
            "the real file is not copied"
        );
    }
}
