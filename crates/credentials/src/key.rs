//! Where the data key comes from (docs/decisions.md#2.3): a provider chain, first match wins.
//!
//! 1. `$CREDENTIALS_DIRECTORY/terok-vault-key` (systemd `LoadCredential=`), then `TEROK_VAULT_KEY`
//!    (64 hex digits or base64) — for services and CI;
//! 2. the key `vault unlock` cached in the kernel keyring ([`crate::key_cache`]);
//! 3. the OS keyring, when a Secret Service session exists (feature `os-keyring`);
//! 4. `vault.key.cred`, the key sealed by systemd-creds ([`crate::sealed_key`]);
//! 5. `vault.key` in the 0700 vault directory (0600), optionally wrapped with a key derived from
//!    a passphrase by Argon2id (`TEROK_VAULT_PASSPHRASE` or `credentials.passphrase_command`).
//!
//! A new key is generated only when none exists and no database exists yet; a database without
//! its key is an error, never silently replaced.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use terok_core::env::HostEnv;
use terok_core::secure_fs;

use crate::seal::{DataKey, KEY_LEN};

/// Environment variable holding the key itself (hex or base64).
pub const KEY_ENV: &str = terok_core::env::VAULT_KEY_VAR;
/// Environment variable holding the passphrase that unwraps `vault.key`.
pub const PASSPHRASE_ENV: &str = terok_core::env::VAULT_PASSPHRASE_VAR;
/// File name of the key under `$CREDENTIALS_DIRECTORY` and in the vault directory.
pub const KEY_FILE: &str = "vault.key";
const CREDENTIALS_DIRECTORY_NAME: &str = "terok-vault-key";
const FILE_MAGIC: &str = "terok-vault-key v1";
const WRAP_AAD: &[u8] = b"terok/vault-key";

/// Where the key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `$CREDENTIALS_DIRECTORY/terok-vault-key`.
    CredentialsDirectory(PathBuf),
    /// `TEROK_VAULT_KEY`.
    Environment,
    /// The kernel keyring, where `vault unlock` cached it.
    KernelKeyring,
    /// The OS keyring (Secret Service).
    Keyring,
    /// `vault.key.cred`, unsealed by systemd-creds.
    SealedKeyFile(PathBuf),
    /// `vault.key`, unwrapped.
    KeyFile(PathBuf),
    /// `vault.key`, wrapped with a passphrase.
    PassphraseKeyFile(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CredentialsDirectory(p) => write!(f, "systemd credential {}", p.display()),
            Self::Environment => write!(f, "${KEY_ENV}"),
            Self::KernelKeyring => write!(f, "kernel keyring (vault unlock)"),
            Self::Keyring => write!(f, "OS keyring (Secret Service)"),
            Self::SealedKeyFile(p) => write!(f, "key file {} sealed by systemd-creds", p.display()),
            Self::KeyFile(p) => write!(f, "key file {}", p.display()),
            Self::PassphraseKeyFile(p) => {
                write!(f, "passphrase-protected key file {}", p.display())
            }
        }
    }
}

/// Why no key could be had.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KeyError {
    /// A key source exists but does not hold a usable key.
    #[error("{source_desc} does not hold a valid vault key: {detail}")]
    Invalid {
        /// Which source.
        source_desc: String,
        /// What is wrong (never the key).
        detail: String,
    },
    /// The key file needs a passphrase and none is available.
    #[error("the vault key in {} is protected by a passphrase, and none was given", path.display())]
    #[diagnostic(help(
        "set TEROK_VAULT_PASSPHRASE, or credentials.passphrase_command in config.yml"
    ))]
    NeedsPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// The passphrase does not unwrap the key.
    #[error("wrong passphrase for the vault key in {}", path.display())]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// `credentials.passphrase_command` failed.
    #[error("credentials.passphrase_command failed: {0}")]
    PassphraseCommand(String),
    /// The database exists but none of the sources has its key.
    #[error("the credential database {} exists but its key is nowhere to be found (looked at the systemd credential, ${KEY_ENV}, the kernel keyring, the OS keyring, the sealed key file and {})", db.display(), key_file.display())]
    #[diagnostic(help(
        "restore the key (or set TEROK_VAULT_KEY), or move the database aside to start over; \
         stored credentials cannot be read without their key"
    ))]
    Missing {
        /// The database.
        db: PathBuf,
        /// The key file that was looked for.
        key_file: PathBuf,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Rng,
    /// The kernel keyring could not be used.
    #[error("{detail}")]
    #[diagnostic(help(
        "without the kernel keyring the passphrase is needed at every command \
         (TEROK_VAULT_PASSPHRASE or credentials.passphrase_command)"
    ))]
    Cache {
        /// What the kernel said.
        detail: String,
    },
    /// systemd-creds could not seal the key (nothing changed).
    #[error("could not seal the vault key with systemd-creds: {detail}")]
    #[diagnostic(help(
        "systemd-creds before systemd 256 seals with the host secret only root reads; as \
         another user choose the kernel-keyring tier"
    ))]
    SealFailed {
        /// What systemd-creds said.
        detail: String,
    },
    /// systemd-creds could not unseal the key.
    #[error("could not unseal the vault key in {}: {detail}", path.display())]
    #[diagnostic(help(
        "a sealed key opens only on the machine that sealed it (as root, on systemd before \
         256); elsewhere, give the key in TEROK_VAULT_KEY"
    ))]
    UnsealFailed {
        /// The sealed file.
        path: PathBuf,
        /// What systemd-creds said.
        detail: String,
    },
    /// No Secret Service answers (no desktop session, or built without the OS keyring).
    #[error("the OS keyring (Secret Service) cannot be reached from this session")]
    #[diagnostic(help(
        "it needs a desktop login (DBUS_SESSION_BUS_ADDRESS); on a headless host protect the key \
         with a passphrase (kernel-keyring) or seal it with systemd-creds"
    ))]
    NoOsKeyring,
    /// A passphrase can protect only the key file, and the key is kept elsewhere.
    #[error(
        "the vault key comes from {source_desc}, not from the key file; a passphrase protects only the key file"
    )]
    NotInKeyFile {
        /// Where the key comes from.
        source_desc: String,
    },
    /// The file system refused.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] secure_fs::SecureFsError),
}

/// What the chain needs to know.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    /// The vault directory (holds `vault.key` and the database).
    pub vault_dir: PathBuf,
    /// The process environment.
    pub env: HostEnv,
    /// `credentials.passphrase_command` from config.yml.
    pub passphrase_command: Option<String>,
    /// Whether to try the OS keyring.
    pub use_keyring: bool,
}

impl KeyOptions {
    /// Options for `vault_dir` with the process environment.
    pub fn new(vault_dir: impl Into<PathBuf>, env: HostEnv) -> Self {
        Self {
            vault_dir: vault_dir.into(),
            env,
            passphrase_command: None,
            use_keyring: true,
        }
    }

    fn key_file(&self) -> PathBuf {
        self.vault_dir.join(KEY_FILE)
    }
}

/// Parses 64 hex digits or standard/URL-safe base64 of 32 bytes.
fn parse_key_text(text: &str) -> Option<DataKey> {
    let text = text.trim();
    let bytes = if text.len() == 2 * KEY_LEN && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .ok()?
    };
    let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
    Some(DataKey::from_bytes(array))
}

/// Finds the key; creates one (in the keyring, or a key file) when none exists and `db` does
/// not exist either.
pub fn resolve_key(options: &KeyOptions, db: &Path) -> Result<(DataKey, KeySource), KeyError> {
    if let Some(found) = find_key(options)? {
        return Ok(found);
    }
    // Another process may be making the key right now: one of the two makes it.
    let _lock = key_lock(options)?;
    resolve_key_locked(options, db)
}

/// The lock every change of where the key lives holds (creating it, moving it between tiers).
fn key_lock(options: &KeyOptions) -> Result<std::fs::File, KeyError> {
    secure_fs::ensure_private_dir(&options.vault_dir)?;
    Ok(secure_fs::lock_exclusive(
        &options.vault_dir.join(".key.lock"),
    )?)
}

/// Finds an existing key without creating one.
pub fn find_key(options: &KeyOptions) -> Result<Option<(DataKey, KeySource)>, KeyError> {
    if let Some(dir) = options.env.path_var("CREDENTIALS_DIRECTORY") {
        let path = dir.join(CREDENTIALS_DIRECTORY_NAME);
        if let Ok(bytes) = std::fs::read(&path) {
            let key = match <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
                Ok(raw) => Some(DataKey::from_bytes(raw)),
                Err(_) => std::str::from_utf8(&bytes).ok().and_then(parse_key_text),
            };
            return match key {
                Some(key) => Ok(Some((key, KeySource::CredentialsDirectory(path)))),
                None => Err(KeyError::Invalid {
                    source_desc: format!("systemd credential {}", path.display()),
                    detail: "expected 32 raw bytes, 64 hex digits or base64".to_owned(),
                }),
            };
        }
    }
    if let Some(text) = options.env.var_str(KEY_ENV) {
        return match parse_key_text(text) {
            Some(key) => Ok(Some((key, KeySource::Environment))),
            None => Err(KeyError::Invalid {
                source_desc: format!("${KEY_ENV}"),
                detail: "expected 64 hex digits or base64 of 32 bytes".to_owned(),
            }),
        };
    }
    if let Some(key) = cached_key(options) {
        return Ok(Some((key, KeySource::KernelKeyring)));
    }
    if options.use_keyring
        && let Some(key) = crate::keyring_store::load(&options.env, &options.vault_dir)
    {
        return Ok(Some((key, KeySource::Keyring)));
    }
    let sealed = crate::sealed_key::sealed_path(&options.vault_dir);
    if sealed.symlink_metadata().is_ok() {
        let key = unseal_key(options, &sealed)?;
        return Ok(Some((key, KeySource::SealedKeyFile(sealed))));
    }
    let path = options.key_file();
    match secure_fs::read_nofollow(&path) {
        Ok(bytes) => read_key_file(options, &path, &String::from_utf8_lossy(&bytes)).map(Some),
        Err(secure_fs::SecureFsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// The key `vault unlock` cached, while the key file it came from is still there.
fn cached_key(options: &KeyOptions) -> Option<DataKey> {
    let text = secure_fs::read_nofollow_limited(&options.key_file(), 4096).ok()?;
    crate::key_cache::load(&options.vault_dir, &crate::key_cache::file_digest(&text))
}

/// One source of the key's provider chain, as `vault passphrase` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLink {
    /// The source (`$TEROK_VAULT_KEY`, `key file …`).
    pub source: String,
    /// What it holds now (`not set`, `present, protected by a passphrase …`).
    pub state: String,
    /// Whether this source gives the key (the first that has one).
    pub in_use: bool,
    /// Whether it may give the key but was not looked at (the OS keyring: reading it would
    /// read the secret); no later source is then said to be in use.
    pub may_hold: bool,
}

/// The chain, source by source, without opening anything: no keyring secret is read and no
/// passphrase helper runs, so this is safe to show at any time.
pub fn key_chain(options: &KeyOptions) -> Vec<KeyLink> {
    let mut links = Vec::new();
    let credential = options
        .env
        .path_var("CREDENTIALS_DIRECTORY")
        .map(|dir| dir.join(CREDENTIALS_DIRECTORY_NAME));
    links.push((
        format!("systemd credential $CREDENTIALS_DIRECTORY/{CREDENTIALS_DIRECTORY_NAME}"),
        match &credential {
            None => ("not set".to_owned(), false),
            Some(path) if path.is_file() => ("present".to_owned(), true),
            Some(path) => (format!("{} does not exist", path.display()), false),
        },
    ));
    links.push((
        format!("${KEY_ENV}"),
        if options.env.var_str(KEY_ENV).is_some() {
            ("set".to_owned(), true)
        } else {
            ("not set".to_owned(), false)
        },
    ));
    links.push((
        "kernel keyring (vault unlock)".to_owned(),
        if cached_key(options).is_some() {
            ("cached".to_owned(), true)
        } else if crate::key_cache::is_cached(&options.vault_dir) {
            (
                "holds a key of another key file (stale; `vault lock` clears it)".to_owned(),
                false,
            )
        } else {
            ("not cached".to_owned(), false)
        },
    ));
    links.push((
        "OS keyring (Secret Service)".to_owned(),
        if !options.use_keyring {
            ("not used".to_owned(), false)
        } else if options.env.var("DBUS_SESSION_BUS_ADDRESS").is_none() {
            ("no desktop session to ask".to_owned(), false)
        } else {
            (
                "asked first when the vault opens (not read here)".to_owned(),
                false,
            )
        },
    ));
    let keyring_may_hold =
        options.use_keyring && options.env.var("DBUS_SESSION_BUS_ADDRESS").is_some();
    let sealed = crate::sealed_key::sealed_path(&options.vault_dir);
    links.push((
        format!("key file {} sealed by systemd-creds", sealed.display()),
        if sealed.symlink_metadata().is_ok() {
            ("present (unsealed when the vault opens)".to_owned(), true)
        } else {
            ("none".to_owned(), false)
        },
    ));
    let path = options.key_file();
    links.push((
        format!("key file {}", path.display()),
        key_file_state(options, &path),
    ));
    let mut decided = false;
    links
        .into_iter()
        .enumerate()
        .map(|(n, (source, (state, gives)))| {
            // The OS keyring is the fourth source.
            let may_hold = n == 3 && keyring_may_hold;
            let in_use = gives && !decided;
            decided |= gives || may_hold;
            KeyLink {
                source,
                state,
                in_use,
                may_hold,
            }
        })
        .collect()
}

/// What the key file holds, and whether it gives the key.
fn key_file_state(options: &KeyOptions, path: &Path) -> (String, bool) {
    let text = match secure_fs::read_nofollow_limited(path, 4096) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(secure_fs::SecureFsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return ("none yet (made on first use)".to_owned(), false);
        }
        Err(err) => return (format!("cannot be read: {err}"), false),
    };
    let kind = text
        .trim()
        .strip_prefix(FILE_MAGIC)
        .and_then(|rest| rest.split_whitespace().next());
    match kind {
        Some("raw") => ("present, not protected by a passphrase".to_owned(), true),
        Some("argon2id") => {
            if options.env.var_str(PASSPHRASE_ENV).is_some() {
                (
                    format!("present, protected by a passphrase: from ${PASSPHRASE_ENV}"),
                    true,
                )
            } else if options
                .passphrase_command
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
            {
                (
                    "present, protected by a passphrase: from credentials.passphrase_command"
                        .to_owned(),
                    true,
                )
            } else {
                (
                    format!(
                        "present, protected by a passphrase, and none is given (set \
                         ${PASSPHRASE_ENV} or credentials.passphrase_command)"
                    ),
                    false,
                )
            }
        }
        _ => ("present, in a format terok does not know".to_owned(), false),
    }
}

fn read_key_file(
    options: &KeyOptions,
    path: &Path,
    text: &str,
) -> Result<(DataKey, KeySource), KeyError> {
    read_key_file_with(path, text, || passphrase(options))
}

/// The key in a key file's `text`; `passphrase` is asked only for a wrapped one.
fn read_key_file_with(
    path: &Path,
    text: &str,
    passphrase: impl FnOnce() -> Result<Option<String>, KeyError>,
) -> Result<(DataKey, KeySource), KeyError> {
    let invalid = |detail: &str| KeyError::Invalid {
        source_desc: format!("key file {}", path.display()),
        detail: detail.to_owned(),
    };
    let rest = text
        .trim()
        .strip_prefix(FILE_MAGIC)
        .ok_or_else(|| invalid("unknown format"))?;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    match parts.as_slice() {
        ["raw", hex_key] => parse_key_text(hex_key)
            .map(|k| (k, KeySource::KeyFile(path.to_path_buf())))
            .ok_or_else(|| invalid("damaged key")),
        ["argon2id", params, salt, sealed] => {
            let passphrase = passphrase()?.ok_or_else(|| KeyError::NeedsPassphrase {
                path: path.to_path_buf(),
            })?;
            let salt = hex::decode(salt).map_err(|_| invalid("damaged salt"))?;
            let sealed = hex::decode(sealed).map_err(|_| invalid("damaged key"))?;
            let kek = derive_kek(&passphrase, &salt, params)
                .ok_or_else(|| invalid("bad Argon2 parameters"))?;
            let raw = kek
                .open(&sealed, WRAP_AAD)
                .map_err(|_| KeyError::WrongPassphrase {
                    path: path.to_path_buf(),
                })?;
            let raw: [u8; KEY_LEN] = raw.try_into().map_err(|_| invalid("damaged key"))?;
            Ok((
                DataKey::from_bytes(raw),
                KeySource::PassphraseKeyFile(path.to_path_buf()),
            ))
        }
        _ => Err(invalid("unknown format")),
    }
}

/// The passphrase from `TEROK_VAULT_PASSPHRASE` or `passphrase_command`, if either is set.
pub fn configured_passphrase(options: &KeyOptions) -> Result<Option<String>, KeyError> {
    passphrase(options)
}

fn passphrase(options: &KeyOptions) -> Result<Option<String>, KeyError> {
    if let Some(p) = options.env.var_str(PASSPHRASE_ENV) {
        return Ok(Some(p.to_owned()));
    }
    let Some(command) = options
        .passphrase_command
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    else {
        return Ok(None);
    };
    let mut helper = Command::new("sh");
    for var in terok_core::env::SECRET_VARS {
        helper.env_remove(var);
    }
    let out = helper
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| KeyError::PassphraseCommand(e.to_string()))?;
    if !out.status.success() {
        // Fail closed: a broken helper must not lead to a new, unprotected key.
        return Err(KeyError::PassphraseCommand(format!(
            "exited with {}",
            out.status
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout)
        .trim_end_matches(['\n', '\r'])
        .to_owned();
    if text.is_empty() {
        return Err(KeyError::PassphraseCommand("printed nothing".to_owned()));
    }
    Ok(Some(text))
}

const ARGON2_PARAMS: &str = "m=65536,t=3,p=1";

fn derive_kek(passphrase: &str, salt: &[u8], params: &str) -> Option<DataKey> {
    let mut m = 0;
    let mut t = 0;
    let mut p = 0;
    for part in params.split(',') {
        let (k, v) = part.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => m = v,
            "t" => t = v,
            "p" => p = v,
            _ => return None,
        }
    }
    let params = argon2::Params::new(m, t, p, Some(KEY_LEN)).ok()?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; KEY_LEN];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .ok()?;
    Some(DataKey::from_bytes(out))
}

fn create_key(options: &KeyOptions) -> Result<(DataKey, KeySource), KeyError> {
    let key = DataKey::generate().map_err(|_| KeyError::Rng)?;
    if options.use_keyring && crate::keyring_store::store(&options.env, &options.vault_dir, &key) {
        return Ok((key, KeySource::Keyring));
    }
    let path = options.key_file();
    let (text, source) = match passphrase(options)? {
        Some(passphrase) => (
            wrapped_key_text(&key, &passphrase)?,
            KeySource::PassphraseKeyFile(path.clone()),
        ),
        None => (
            format!("{FILE_MAGIC} raw {}\n", hex::encode(key.expose())),
            KeySource::KeyFile(path.clone()),
        ),
    };
    secure_fs::write_sensitive(&path, text.as_bytes())?;
    Ok((key, source))
}

/// A key file's text holding `key` wrapped with a key derived from `passphrase`.
fn wrapped_key_text(key: &DataKey, passphrase: &str) -> Result<String, KeyError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| KeyError::Rng)?;
    let kek = derive_kek(passphrase, &salt, ARGON2_PARAMS).ok_or(KeyError::Rng)?;
    let sealed = kek
        .seal(key.expose(), WRAP_AAD)
        .map_err(|_| KeyError::Rng)?;
    Ok(format!(
        "{FILE_MAGIC} argon2id {ARGON2_PARAMS} {} {}\n",
        hex::encode(salt),
        hex::encode(sealed)
    ))
}

/// What `vault unlock` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlocked {
    /// The key file's key is cached in the kernel keyring.
    Cached,
    /// The key needs no passphrase: it comes from this source (`None`: there is no key yet),
    /// and nothing was cached.
    NotProtected(Option<KeySource>),
}

/// Whether the key file wants a passphrase (`None`: there is no key file).
pub fn key_file_is_protected(options: &KeyOptions) -> Result<Option<bool>, KeyError> {
    let path = options.key_file();
    match secure_fs::read_nofollow_limited(&path, 4096) {
        Ok(bytes) => Ok(Some(
            String::from_utf8_lossy(&bytes)
                .trim()
                .strip_prefix(FILE_MAGIC)
                .and_then(|rest| rest.split_whitespace().next())
                == Some("argon2id"),
        )),
        Err(secure_fs::SecureFsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// Unwraps the passphrase-protected key file with `passphrase` (or the chain's own passphrase
/// when `None`) and caches the key in the kernel keyring for `lifetime` (`None`: until `vault
/// lock` or reboot). A key that needs no passphrase is left alone.
pub fn unlock(
    options: &KeyOptions,
    passphrase_given: Option<&str>,
    lifetime: Option<std::time::Duration>,
) -> Result<Unlocked, KeyError> {
    let path = options.key_file();
    if key_file_is_protected(options)? != Some(true) {
        let source = find_key(options)?.map(|(_, source)| source);
        return Ok(Unlocked::NotProtected(source));
    }
    let text = secure_fs::read_nofollow_limited(&path, 4096)?;
    let (key, _) =
        read_key_file_with(
            &path,
            &String::from_utf8_lossy(&text),
            || match passphrase_given {
                Some(p) => Ok(Some(p.to_owned())),
                None => passphrase(options),
            },
        )?;
    let digest = crate::key_cache::file_digest(&text);
    crate::key_cache::store(&options.vault_dir, &key, &digest, lifetime).map_err(|e| {
        KeyError::Cache {
            detail: e.to_string(),
        }
    })?;
    Ok(Unlocked::Cached)
}

/// What `setup --passphrase-tier systemd-creds` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The sealed key file.
    pub path: PathBuf,
    /// The plain (or passphrase-protected) key file removed once the sealed one opened.
    pub removed: Option<PathBuf>,
}

/// The key sealed in `path`.
fn unseal_key(options: &KeyOptions, path: &Path) -> Result<DataKey, KeyError> {
    let plain = crate::sealed_key::unseal(&options.env, path).map_err(|err| match err {
        crate::sealed_key::SealedKeyError::Fs(err) => KeyError::Fs(err),
        crate::sealed_key::SealedKeyError::SystemdCreds { detail, .. } => KeyError::UnsealFailed {
            path: path.to_path_buf(),
            detail,
        },
    })?;
    parse_key_text(&String::from_utf8_lossy(&plain)).ok_or_else(|| KeyError::Invalid {
        source_desc: format!("sealed key file {}", path.display()),
        detail: "it does not unseal to a key".to_owned(),
    })
}

/// Seals the vault key with systemd-creds (making the key when there is none and no database
/// either). The sealed file is written beside the old one and proven to open before it takes
/// its place; then the key file it replaces goes. A key sealed already is left alone.
pub fn seal_with_systemd_creds(options: &KeyOptions, db: &Path) -> Result<Sealed, KeyError> {
    let _lock = key_lock(options)?;
    let (key, source) = resolve_key_locked(options, db)?;
    let path = crate::sealed_key::sealed_path(&options.vault_dir);
    if source == KeySource::SealedKeyFile(path.clone()) {
        return Ok(Sealed {
            path,
            removed: None,
        });
    }
    let plain = hex::encode(key.expose());
    let fresh = crate::sealed_key::seal(&options.env, &options.vault_dir, plain.as_bytes())
        .map_err(|err| match err {
            crate::sealed_key::SealedKeyError::Fs(err) => KeyError::Fs(err),
            crate::sealed_key::SealedKeyError::SystemdCreds { detail, .. } => {
                KeyError::SealFailed { detail }
            }
        })?;
    match unseal_key(options, &fresh) {
        Ok(back) if back.expose() == key.expose() => {}
        other => {
            let _ = secure_fs::remove_file(&fresh);
            return Err(match other {
                Err(err) => err,
                Ok(_) => KeyError::SealFailed {
                    detail: "the sealed file does not give the key back".to_owned(),
                },
            });
        }
    }
    secure_fs::rename(&fresh, &path)?;
    let removed = remove_replaced_key_file(options, &source)?;
    Ok(Sealed { path, removed })
}

/// [`resolve_key`] for a caller holding the key lock.
fn resolve_key_locked(options: &KeyOptions, db: &Path) -> Result<(DataKey, KeySource), KeyError> {
    if let Some(found) = find_key(options)? {
        return Ok(found);
    }
    if db.exists() {
        return Err(KeyError::Missing {
            db: db.to_path_buf(),
            key_file: options.key_file(),
        });
    }
    create_key(options)
}

/// After the key moved elsewhere: the key file it came from (also through the kernel
/// keyring's copy of it) goes, and so does that copy.
fn remove_replaced_key_file(
    options: &KeyOptions,
    source: &KeySource,
) -> Result<Option<PathBuf>, KeyError> {
    let file = match source {
        KeySource::KeyFile(file) | KeySource::PassphraseKeyFile(file) => file.clone(),
        KeySource::KernelKeyring => options.key_file(),
        _ => return Ok(None),
    };
    secure_fs::remove_file(&file)?;
    let _ = crate::key_cache::forget(&options.vault_dir);
    Ok(Some(file))
}

/// Moves the vault key into the OS keyring (Secret Service) and removes the key file it came
/// from once the keyring gives it back.
pub fn move_to_os_keyring(options: &KeyOptions, db: &Path) -> Result<Option<PathBuf>, KeyError> {
    if !options.use_keyring || options.env.var("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return Err(KeyError::NoOsKeyring);
    }
    let _lock = key_lock(options)?;
    let (key, source) = resolve_key_locked(options, db)?;
    let stored = crate::keyring_store::store(&options.env, &options.vault_dir, &key)
        && crate::keyring_store::load(&options.env, &options.vault_dir)
            .is_some_and(|back| back.expose() == key.expose());
    if !stored {
        return Err(KeyError::NoOsKeyring);
    }
    remove_replaced_key_file(options, &source)
}

/// Forgets the cached key; `true` when there was one.
pub fn lock(options: &KeyOptions) -> Result<bool, KeyError> {
    crate::key_cache::forget(&options.vault_dir).map_err(|e| KeyError::Cache {
        detail: e.to_string(),
    })
}

/// Protects the key file with `new_passphrase`: a plain key file is wrapped (atomically: the
/// file holds the old or the new text, never half of one); a wrapped one must already open
/// with it. A key kept elsewhere (environment, systemd credential, OS keyring) is refused: a
/// passphrase protects only the key file.
pub fn protect_with_passphrase(
    options: &KeyOptions,
    db: &Path,
    new_passphrase: &str,
) -> Result<(), KeyError> {
    let _lock = key_lock(options)?;
    let path = options.key_file();
    let text = match secure_fs::read_nofollow_limited(&path, 4096) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(secure_fs::SecureFsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return match find_key(options)? {
                Some((_, source)) => Err(KeyError::NotInKeyFile {
                    source_desc: source.to_string(),
                }),
                // A database without its key: a new key would not open it.
                None if db.exists() => Err(KeyError::Missing {
                    db: db.to_path_buf(),
                    key_file: path,
                }),
                None => {
                    // No key yet: make it, wrapped.
                    let key = DataKey::generate().map_err(|_| KeyError::Rng)?;
                    secure_fs::write_sensitive(
                        &path,
                        wrapped_key_text(&key, new_passphrase)?.as_bytes(),
                    )?;
                    Ok(())
                }
            };
        }
        Err(err) => return Err(err.into()),
    };
    let (key, source) = read_key_file_with(&path, &text, || Ok(Some(new_passphrase.to_owned())))?;
    if matches!(source, KeySource::PassphraseKeyFile(_)) {
        return Ok(());
    }
    secure_fs::write_sensitive(&path, wrapped_key_text(&key, new_passphrase)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, vars: &[(&str, &str)]) -> KeyOptions {
        KeyOptions {
            vault_dir: dir.to_path_buf(),
            env: HostEnv::from_vars(vars.iter().copied(), 1000),
            passphrase_command: None,
            use_keyring: false,
        }
    }

    #[test]
    fn the_chain_says_where_the_key_comes_from_without_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        let chain = key_chain(&options(dir.path(), &[]));
        assert_eq!(chain.len(), 6);
        assert!(chain.iter().all(|l| !l.in_use), "{chain:?}");
        assert!(chain[5].state.starts_with("none yet"), "{chain:?}");
        let opts = options(dir.path(), &[(PASSPHRASE_ENV, "correct horse")]);
        resolve_key(&opts, &dir.path().join("db")).unwrap();
        let chain = key_chain(&opts);
        assert!(chain[5].in_use, "{chain:?}");
        assert!(
            chain[5].state.contains("protected by a passphrase"),
            "{chain:?}"
        );
        // Without the passphrase the file cannot give the key: said, with the remedy.
        let chain = key_chain(&options(dir.path(), &[]));
        assert!(
            !chain[5].in_use && chain[5].state.contains("none is given"),
            "{chain:?}"
        );
        // The environment comes first.
        let key = "ab".repeat(32);
        let chain = key_chain(&options(dir.path(), &[(KEY_ENV, key.as_str())]));
        assert!(chain[1].in_use && !chain[5].in_use, "{chain:?}");
        assert_eq!(chain[2].state, "not cached");
        assert!(chain.iter().all(|l| !l.state.contains(&key)), "{chain:?}");
        // With a desktop session the keyring comes first and is not read: no later source
        // is said to be in use.
        let mut with_keyring = options(dir.path(), &[("DBUS_SESSION_BUS_ADDRESS", "unix:x")]);
        with_keyring.use_keyring = true;
        with_keyring.passphrase_command = Some("echo correct horse".into());
        let chain = key_chain(&with_keyring);
        assert!(chain[3].may_hold && !chain[5].in_use, "{chain:?}");
    }

    #[test]
    fn unlock_caches_the_wrapped_key_and_lock_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let with = options(dir.path(), &[(PASSPHRASE_ENV, "correct horse")]);
        let (key, _) = resolve_key(&with, &db).unwrap();
        let without = options(dir.path(), &[]);
        assert!(matches!(
            find_key(&without),
            Err(KeyError::NeedsPassphrase { .. })
        ));
        // A wrong passphrase caches nothing.
        assert!(matches!(
            unlock(&without, Some("wrong"), None),
            Err(KeyError::WrongPassphrase { .. })
        ));
        assert!(!crate::key_cache::is_cached(dir.path()));
        let unlocked = unlock(
            &without,
            Some("correct horse"),
            Some(std::time::Duration::from_secs(60)),
        );
        assert_eq!(unlocked.unwrap(), Unlocked::Cached);
        // Now the chain has it without a passphrase.
        let (found, source) = find_key(&without).unwrap().unwrap();
        assert_eq!(
            (found.expose(), source),
            (key.expose(), KeySource::KernelKeyring)
        );
        let chain = key_chain(&without);
        assert!(chain[2].in_use && chain[2].state == "cached", "{chain:?}");
        assert!(!chain[5].in_use, "{chain:?}");
        // The cached key lives only as long as its key file: gone (a vault directory moved
        // away), it is no key — never the key of a new database.
        let key_file = dir.path().join(KEY_FILE);
        std::fs::rename(&key_file, dir.path().join("aside")).unwrap();
        assert!(find_key(&without).unwrap().is_none());
        // Nor for another key file put in its place.
        std::fs::write(&key_file, "terok-vault-key v1 raw 0000\n").unwrap();
        assert!(!matches!(
            find_key(&without),
            Ok(Some((_, KeySource::KernelKeyring)))
        ));
        std::fs::rename(dir.path().join("aside"), &key_file).unwrap();
        assert!(matches!(
            find_key(&without),
            Ok(Some((_, KeySource::KernelKeyring)))
        ));
        assert!(lock(&without).unwrap());
        assert!(!lock(&without).unwrap());
        assert!(matches!(
            find_key(&without),
            Err(KeyError::NeedsPassphrase { .. })
        ));
    }

    #[test]
    fn systemd_creds_seals_the_key_and_the_plain_file_goes() {
        use std::os::unix::fs::PermissionsExt;
        let vault = tempfile::tempdir().unwrap();
        let machine = tempfile::tempdir().unwrap();
        let secret = machine.path().join("host.secret");
        let secret = secret.to_str().unwrap();
        let opts = options(vault.path(), &[("SYSTEMD_CREDENTIAL_SECRET", secret)]);
        let db = vault.path().join("db");
        let (key, _) = resolve_key(&opts, &db).unwrap();
        let sealed = seal_with_systemd_creds(&opts, &db).unwrap();
        assert_eq!(sealed.removed, Some(vault.path().join(KEY_FILE)));
        assert!(!vault.path().join(KEY_FILE).exists());
        let bytes = std::fs::read(&sealed.path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&hex::encode(key.expose())),
            "the key is not in clear"
        );
        let mode = std::fs::metadata(&sealed.path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (found, source) = find_key(&opts).unwrap().unwrap();
        assert_eq!(found.expose(), key.expose());
        assert_eq!(source, KeySource::SealedKeyFile(sealed.path.clone()));
        let chain = key_chain(&opts);
        assert!(chain[4].in_use && !chain[5].in_use, "{chain:?}");
        // Another machine's secret does not open it, and says so.
        let elsewhere = machine.path().join("other.secret");
        let other = options(
            vault.path(),
            &[("SYSTEMD_CREDENTIAL_SECRET", elsewhere.to_str().unwrap())],
        );
        assert!(matches!(
            find_key(&other),
            Err(KeyError::UnsealFailed { .. })
        ));
        // Sealing again changes nothing.
        let again = seal_with_systemd_creds(&opts, &db).unwrap();
        assert_eq!((again.path, again.removed), (sealed.path.clone(), None));
        assert_eq!(find_key(&opts).unwrap().unwrap().0.expose(), key.expose());
    }

    #[test]
    fn the_os_keyring_tier_needs_a_desktop_session_and_keeps_the_key_file_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path(), &[]);
        opts.use_keyring = true;
        let db = dir.path().join("db");
        let (key, _) = resolve_key(&opts, &db).unwrap();
        assert!(matches!(
            move_to_os_keyring(&opts, &db),
            Err(KeyError::NoOsKeyring)
        ));
        assert_eq!(find_key(&opts).unwrap().unwrap().0.expose(), key.expose());
    }

    #[test]
    fn a_plain_key_file_is_protected_in_place_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let plain = options(dir.path(), &[]);
        let (key, source) = resolve_key(&plain, &dir.path().join("db")).unwrap();
        assert!(matches!(source, KeySource::KeyFile(_)));
        assert_eq!(
            unlock(&plain, None, None).unwrap(),
            Unlocked::NotProtected(Some(source))
        );
        let db = dir.path().join("db");
        protect_with_passphrase(&plain, &db, "battery staple").unwrap();
        assert_eq!(key_file_is_protected(&plain).unwrap(), Some(true));
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert!(
            !text.contains(&hex::encode(key.expose())),
            "the key is not in clear"
        );
        let with = options(dir.path(), &[(PASSPHRASE_ENV, "battery staple")]);
        assert_eq!(find_key(&with).unwrap().unwrap().0.expose(), key.expose());
        // Again with the same passphrase: nothing to do; with another: refused, file intact.
        protect_with_passphrase(&plain, &db, "battery staple").unwrap();
        assert!(matches!(
            protect_with_passphrase(&plain, &db, "other"),
            Err(KeyError::WrongPassphrase { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(),
            text
        );
        // A key from the environment has no file to protect.
        let key_text = "cd".repeat(32);
        let env_dir = tempfile::tempdir().unwrap();
        let from_env = options(env_dir.path(), &[(KEY_ENV, key_text.as_str())]);
        assert!(matches!(
            protect_with_passphrase(&from_env, &env_dir.path().join("db"), "x"),
            Err(KeyError::NotInKeyFile { .. })
        ));
        // A database whose key is nowhere: no new key is made for it.
        let orphan = tempfile::tempdir().unwrap();
        std::fs::write(orphan.path().join("db"), "").unwrap();
        let opts = options(orphan.path(), &[]);
        assert!(matches!(
            protect_with_passphrase(&opts, &orphan.path().join("db"), "x"),
            Err(KeyError::Missing { .. })
        ));
        assert!(!orphan.path().join(KEY_FILE).exists());
    }

    #[test]
    fn a_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), &[]);
        let db = dir.path().join("credentials.db");
        let (first, source) = resolve_key(&opts, &db).unwrap();
        assert_eq!(source, KeySource::KeyFile(dir.path().join(KEY_FILE)));
        let (second, _) = resolve_key(&opts, &db).unwrap();
        assert_eq!(first.expose(), second.expose());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_environment_wins_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let hex_key = "00".repeat(32);
        let (key, source) = resolve_key(
            &options(dir.path(), &[(KEY_ENV, &hex_key)]),
            &dir.path().join("db"),
        )
        .unwrap();
        assert_eq!(source, KeySource::Environment);
        assert_eq!(key.expose(), &[0u8; 32]);
        let err = resolve_key(
            &options(dir.path(), &[(KEY_ENV, "not-a-key")]),
            &dir.path().join("db"),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("does not hold a valid vault key"));
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "no key file when the environment provides one"
        );
    }

    #[test]
    fn a_passphrase_wraps_the_key_file_and_is_needed_to_open_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("credentials.db");
        let (key, source) = resolve_key(
            &options(dir.path(), &[(PASSPHRASE_ENV, "correct horse")]),
            &db,
        )
        .unwrap();
        assert!(matches!(source, KeySource::PassphraseKeyFile(_)));
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert!(
            !text.contains(&hex::encode(key.expose())),
            "the raw key must not be in the wrapped file"
        );
        let (again, _) = resolve_key(
            &options(dir.path(), &[(PASSPHRASE_ENV, "correct horse")]),
            &db,
        )
        .unwrap();
        assert_eq!(again.expose(), key.expose());
        let wrong = resolve_key(&options(dir.path(), &[(PASSPHRASE_ENV, "wrong")]), &db)
            .err()
            .unwrap();
        assert!(matches!(wrong, KeyError::WrongPassphrase { .. }));
        let none = resolve_key(&options(dir.path(), &[]), &db).err().unwrap();
        assert!(matches!(none, KeyError::NeedsPassphrase { .. }));
    }

    #[test]
    fn a_failing_passphrase_command_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path(), &[]);
        opts.passphrase_command = Some("exit 3".into());
        let err = resolve_key(&opts, &dir.path().join("db")).err().unwrap();
        assert!(matches!(err, KeyError::PassphraseCommand(_)), "{err}");
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn a_database_without_its_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("credentials.db");
        std::fs::write(&db, "").unwrap();
        let err = resolve_key(&options(dir.path(), &[]), &db).err().unwrap();
        assert!(matches!(err, KeyError::Missing { .. }), "{err}");
    }
}
