//! SSH keys the vault holds for tasks: generated (Ed25519) or imported (Ed25519 in OpenSSH's
//! format or PKCS#8; RSA in PEM, PKCS#1 or PKCS#8), kept sealed in the credential database,
//! and used only to sign inside the host process — the private half never leaves it.
//!
//! Signing uses `ring` (already what TLS uses here); the SSH wire encodings (public key blob,
//! signature blob, the OpenSSH private key container) are small and written here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PKCS1_SHA512, RsaKeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `SSH_AGENT_RSA_SHA2_256`: the client wants an `rsa-sha2-256` signature.
pub const RSA_SHA2_256: u32 = 2;
/// `SSH_AGENT_RSA_SHA2_512`: the client wants an `rsa-sha2-512` signature.
pub const RSA_SHA2_512: u32 = 4;
/// The longest comment a key may carry.
const MAX_COMMENT: usize = 200;

/// Why a key cannot be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum SshKeyError {
    /// The text is no private key this module reads.
    #[error("not a private key in a format terok reads ({0})")]
    Unreadable(String),
    /// An RSA key in OpenSSH's own container.
    #[error("an RSA key in OpenSSH's own format cannot be imported; PEM (PKCS#1 or PKCS#8) can")]
    OpenSshRsa,
    /// A passphrase protects it.
    #[error("the key is encrypted with a passphrase; import a decrypted copy")]
    Encrypted,
    /// The comment has control characters or is too long.
    #[error("a key comment is at most {MAX_COMMENT} characters, none of them control characters")]
    BadComment,
    /// The system's random source failed.
    #[error("no randomness for a new key")]
    Rng,
}

/// Which kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshKeyKind {
    /// Ed25519.
    Ed25519,
    /// RSA.
    Rsa,
}

impl SshKeyKind {
    /// `ed25519` or `rsa`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }
}

/// A private key as it is sealed: the Ed25519 seed, or the RSA key's DER (PKCS#1 or PKCS#8).
#[derive(Clone, Serialize, Deserialize)]
pub struct SshPrivateKey {
    kind: SshKeyKind,
    /// Hex of the seed or the DER.
    secret: String,
    /// `pkcs1` or `pkcs8` for RSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    der: Option<String>,
}

impl std::fmt::Debug for SshPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPrivateKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The signer a private key becomes when it is used.
enum Signer {
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl SshPrivateKey {
    /// A new Ed25519 key.
    pub fn generate_ed25519() -> Result<Self, SshKeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| SshKeyError::Rng)?;
        Ok(Self {
            kind: SshKeyKind::Ed25519,
            secret: hex::encode(seed),
            der: None,
        })
    }

    /// Reads a private key file's text, with the comment it carries (OpenSSH's format keeps
    /// one).
    pub fn import(text: &str) -> Result<(Self, Option<String>), SshKeyError> {
        let (label, der) = pem(text)?;
        match label.as_str() {
            "OPENSSH PRIVATE KEY" => openssh_private(&der),
            "RSA PRIVATE KEY" => {
                RsaKeyPair::from_der(&der).map_err(|e| SshKeyError::Unreadable(e.to_string()))?;
                Ok((Self::rsa(&der, "pkcs1"), None))
            }
            "PRIVATE KEY" => {
                if RsaKeyPair::from_pkcs8(&der).is_ok() {
                    return Ok((Self::rsa(&der, "pkcs8"), None));
                }
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                    .map_err(|e| SshKeyError::Unreadable(e.to_string()))?;
                // The seed is the PKCS#8 document's 32-byte private key octet string.
                let seed = pkcs8_ed25519_seed(&der)
                    .ok_or_else(|| SshKeyError::Unreadable("no Ed25519 seed".into()))?;
                let key = Self::ed25519(&seed);
                if key.public_blob()? != ed25519_blob(pair.public_key().as_ref()) {
                    return Err(SshKeyError::Unreadable("inconsistent Ed25519 key".into()));
                }
                Ok((key, None))
            }
            "ENCRYPTED PRIVATE KEY" => Err(SshKeyError::Encrypted),
            other => Err(SshKeyError::Unreadable(format!("a PEM `{other}` block"))),
        }
    }

    fn ed25519(seed: &[u8]) -> Self {
        Self {
            kind: SshKeyKind::Ed25519,
            secret: hex::encode(seed),
            der: None,
        }
    }

    fn rsa(der: &[u8], format: &str) -> Self {
        Self {
            kind: SshKeyKind::Rsa,
            secret: hex::encode(der),
            der: Some(format.to_owned()),
        }
    }

    /// Ed25519 or RSA.
    pub fn kind(&self) -> SshKeyKind {
        self.kind
    }

    /// The key as OpenSSH writes it (`-----BEGIN OPENSSH PRIVATE KEY-----`, unencrypted), for
    /// `ssh -i`. Ed25519 only: an RSA key has no use here that needs it.
    pub fn to_openssh_pem(&self, comment: &str) -> Result<String, SshKeyError> {
        if self.kind != SshKeyKind::Ed25519 {
            return Err(SshKeyError::Unreadable(
                "only Ed25519 keys are written in OpenSSH's format".into(),
            ));
        }
        let seed = hex::decode(&self.secret)
            .map_err(|_| SshKeyError::Unreadable("stored key is not hex".into()))?;
        let blob = self.public_blob()?;
        let (_, rest) = take_string(&blob).ok_or(SshKeyError::Rng)?;
        let (public, _) = take_string(rest).ok_or(SshKeyError::Rng)?;
        let mut check = [0u8; 4];
        getrandom::fill(&mut check).map_err(|_| SshKeyError::Rng)?;
        let mut private = Vec::new();
        private.extend_from_slice(&check);
        private.extend_from_slice(&check);
        put_string(&mut private, b"ssh-ed25519");
        put_string(&mut private, public);
        let mut pair = seed.clone();
        pair.extend_from_slice(public);
        put_string(&mut private, &pair);
        put_string(&mut private, comment.as_bytes());
        let mut pad = 1u8;
        while private.len() % 8 != 0 {
            private.push(pad);
            pad += 1;
        }
        let mut container = b"openssh-key-v1\0".to_vec();
        put_string(&mut container, b"none");
        put_string(&mut container, b"none");
        put_string(&mut container, b"");
        container.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut container, &blob);
        put_string(&mut container, &private);
        let body = STANDARD.encode(&container);
        let mut out = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(70) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END OPENSSH PRIVATE KEY-----\n");
        Ok(out)
    }

    fn signer(&self) -> Result<Signer, SshKeyError> {
        let bytes = hex::decode(&self.secret)
            .map_err(|_| SshKeyError::Unreadable("stored key is not hex".into()))?;
        let bad = |e: ring::error::KeyRejected| SshKeyError::Unreadable(e.to_string());
        Ok(match (self.kind, self.der.as_deref()) {
            (SshKeyKind::Ed25519, _) => Signer::Ed25519(
                Ed25519KeyPair::from_seed_unchecked(&bytes)
                    .map_err(|_| SshKeyError::Unreadable("bad Ed25519 seed".into()))?,
            ),
            (SshKeyKind::Rsa, Some("pkcs8")) => {
                Signer::Rsa(RsaKeyPair::from_pkcs8(&bytes).map_err(bad)?)
            }
            (SshKeyKind::Rsa, _) => Signer::Rsa(RsaKeyPair::from_der(&bytes).map_err(bad)?),
        })
    }

    /// The public key as SSH puts it on the wire (`string type, …`).
    pub fn public_blob(&self) -> Result<Vec<u8>, SshKeyError> {
        Ok(match self.signer()? {
            Signer::Ed25519(pair) => ed25519_blob(pair.public_key().as_ref()),
            Signer::Rsa(pair) => {
                let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
                let mut blob = Vec::new();
                put_string(&mut blob, b"ssh-rsa");
                put_mpint(&mut blob, strip_zeros(&public.e));
                put_mpint(&mut blob, strip_zeros(&public.n));
                blob
            }
        })
    }

    /// The SSH signature blob of `data` (`string algorithm, string signature`); `flags` pick
    /// RSA's hash (SHA-256 or SHA-512; SHA-1 is never used: without a flag, SHA-512).
    pub fn sign(&self, data: &[u8], flags: u32) -> Result<Vec<u8>, SshKeyError> {
        let mut blob = Vec::new();
        match self.signer()? {
            Signer::Ed25519(pair) => {
                put_string(&mut blob, b"ssh-ed25519");
                put_string(&mut blob, pair.sign(data).as_ref());
            }
            Signer::Rsa(pair) => {
                let (name, padding) = if flags & RSA_SHA2_256 != 0 {
                    ("rsa-sha2-256", &RSA_PKCS1_SHA256)
                } else {
                    ("rsa-sha2-512", &RSA_PKCS1_SHA512)
                };
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(padding, &SystemRandom::new(), data, &mut signature)
                    .map_err(|_| SshKeyError::Rng)?;
                put_string(&mut blob, name.as_bytes());
                put_string(&mut blob, &signature);
            }
        }
        Ok(blob)
    }
}

/// The key type of a public blob (`ssh-ed25519`, `ssh-rsa`).
pub fn blob_type(blob: &[u8]) -> Option<&str> {
    let (name, _) = take_string(blob)?;
    std::str::from_utf8(name).ok()
}

/// `SHA256:<base64 without padding>` of a public blob, as `ssh-keygen -l` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The `authorized_keys` line of a public blob.
pub fn public_line(blob: &[u8], comment: &str) -> String {
    let kind = blob_type(blob).unwrap_or("ssh-unknown");
    format!("{kind} {} {comment}", STANDARD.encode(blob))
        .trim_end()
        .to_owned()
}

/// Whether `comment` may be stored.
pub fn check_comment(comment: &str) -> Result<(), SshKeyError> {
    if comment.chars().count() > MAX_COMMENT || comment.chars().any(char::is_control) {
        return Err(SshKeyError::BadComment);
    }
    Ok(())
}

fn ed25519_blob(public: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-ed25519");
    put_string(&mut blob, public);
    blob
}

/// Appends an SSH `string` (u32 length, bytes).
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Appends an SSH `mpint` of a positive big-endian number.
fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    if magnitude.first().is_some_and(|b| b & 0x80 != 0) {
        let mut padded = Vec::with_capacity(magnitude.len() + 1);
        padded.push(0);
        padded.extend_from_slice(magnitude);
        put_string(out, &padded);
    } else {
        put_string(out, magnitude);
    }
}

/// Reads an SSH `string` off the front of `bytes`: the string and the rest.
pub fn take_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = take_u32(bytes)?;
    let len = usize::try_from(len).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Reads a big-endian u32 off the front of `bytes`.
pub fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

/// The label and bytes of the one PEM block in `text`.
fn pem(text: &str) -> Result<(String, Vec<u8>), SshKeyError> {
    let begin = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| SshKeyError::Unreadable("no `-----BEGIN …-----` line".into()))?
        .to_owned();
    let end = format!("-----END {begin}-----");
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| *l != end)
        .filter(|l| !l.contains(':'))
        .collect();
    if text.lines().any(|l| l.trim().starts_with("Proc-Type:")) {
        return Err(SshKeyError::Encrypted);
    }
    let der = STANDARD
        .decode(body)
        .map_err(|e| SshKeyError::Unreadable(format!("base64: {e}")))?;
    Ok((begin, der))
}

/// An unencrypted `openssh-key-v1` container with one Ed25519 key.
fn openssh_private(bytes: &[u8]) -> Result<(SshPrivateKey, Option<String>), SshKeyError> {
    let bad = |what: &str| SshKeyError::Unreadable(format!("OpenSSH key: {what}"));
    let rest = bytes
        .strip_prefix(b"openssh-key-v1\0")
        .ok_or_else(|| bad("no openssh-key-v1 header"))?;
    let (cipher, rest) = take_string(rest).ok_or_else(|| bad("cipher"))?;
    if cipher != b"none" {
        return Err(SshKeyError::Encrypted);
    }
    let (_kdf, rest) = take_string(rest).ok_or_else(|| bad("kdf"))?;
    let (_kdf_options, rest) = take_string(rest).ok_or_else(|| bad("kdf options"))?;
    let (count, rest) = take_u32(rest).ok_or_else(|| bad("key count"))?;
    if count != 1 {
        return Err(bad("not exactly one key"));
    }
    let (_public, rest) = take_string(rest).ok_or_else(|| bad("public key"))?;
    let (private, _) = take_string(rest).ok_or_else(|| bad("private section"))?;
    let (check1, private) = take_u32(private).ok_or_else(|| bad("check"))?;
    let (check2, private) = take_u32(private).ok_or_else(|| bad("check"))?;
    if check1 != check2 {
        return Err(SshKeyError::Encrypted);
    }
    let (kind, private) = take_string(private).ok_or_else(|| bad("key type"))?;
    match kind {
        b"ssh-ed25519" => {
            let (public, private) = take_string(private).ok_or_else(|| bad("public half"))?;
            let (secret, private) = take_string(private).ok_or_else(|| bad("private half"))?;
            let (comment, _) = take_string(private).ok_or_else(|| bad("comment"))?;
            if secret.len() != 64 || public.len() != 32 || &secret[32..] != public {
                return Err(bad("inconsistent Ed25519 key"));
            }
            let key = SshPrivateKey::ed25519(&secret[..32]);
            if key.public_blob()? != ed25519_blob(public) {
                return Err(bad("inconsistent Ed25519 key"));
            }
            let comment = String::from_utf8_lossy(comment).into_owned();
            Ok((key, (!comment.is_empty()).then_some(comment)))
        }
        b"ssh-rsa" => Err(SshKeyError::OpenSshRsa),
        other => Err(bad(&format!(
            "key type {} is not supported",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The 32-byte seed of an Ed25519 PKCS#8 document (`OCTET STRING { OCTET STRING seed }`).
fn pkcs8_ed25519_seed(der: &[u8]) -> Option<Vec<u8>> {
    // The private key field wraps the seed as 04 20 <32 bytes>, itself in 04 22.
    der.windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .and_then(|at| der.get(at + 4..at + 36))
        .map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::UnparsedPublicKey;
    use ring::signature::{ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA512};

    fn signature_of(blob: &[u8]) -> (String, Vec<u8>) {
        let (name, rest) = take_string(blob).unwrap();
        let (sig, _) = take_string(rest).unwrap();
        (String::from_utf8(name.to_vec()).unwrap(), sig.to_vec())
    }

    #[test]
    fn an_ed25519_signature_verifies_against_the_public_blob() {
        let key = SshPrivateKey::generate_ed25519().unwrap();
        let blob = key.public_blob().unwrap();
        assert_eq!(blob_type(&blob), Some("ssh-ed25519"));
        let (_, rest) = take_string(&blob).unwrap();
        let (public, _) = take_string(rest).unwrap();
        let (name, sig) = signature_of(&key.sign(b"session data", 0).unwrap());
        assert_eq!(name, "ssh-ed25519");
        UnparsedPublicKey::new(&ED25519, public)
            .verify(b"session data", &sig)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&ED25519, public)
                .verify(b"other data", &sig)
                .is_err()
        );
        assert!(fingerprint(&blob).starts_with("SHA256:"));
        assert!(public_line(&blob, "me@host").starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"));
    }

    #[test]
    fn a_key_written_in_openssh_format_reads_back_the_same() {
        let key = SshPrivateKey::generate_ed25519().unwrap();
        let pem = key.to_openssh_pem("krun host").unwrap();
        let (back, comment) = SshPrivateKey::import(&pem).unwrap();
        assert_eq!(comment.as_deref(), Some("krun host"));
        assert_eq!(back.public_blob().unwrap(), key.public_blob().unwrap());
        // ssh-keygen derives the same public key from it (when it is installed).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs_err::write(&path, &pem).unwrap();
        fs_err::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        if let Ok(out) = std::process::Command::new("ssh-keygen")
            .args(["-y", "-f"])
            .arg(&path)
            .output()
        {
            assert!(out.status.success(), "{out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                public_line(&key.public_blob().unwrap(), "krun host")
            );
        }
    }

    #[test]
    fn comments_with_control_characters_or_too_long_are_refused() {
        assert!(check_comment("alice@laptop").is_ok());
        assert_eq!(check_comment("a\nb"), Err(SshKeyError::BadComment));
        assert_eq!(
            check_comment(&"x".repeat(201)),
            Err(SshKeyError::BadComment)
        );
    }

    /// Keys `ssh-keygen` makes (when it is installed): an Ed25519 key in OpenSSH's format and
    /// an RSA key in PEM import; RSA's flags pick SHA-256 or SHA-512; an encrypted key and an
    /// RSA key in OpenSSH's format are refused with the reason; the fingerprint is the one
    /// `ssh-keygen -l` prints.
    #[test]
    fn keys_ssh_keygen_made_import_and_sign() {
        if std::process::Command::new("ssh-keygen")
            .arg("-?")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: no ssh-keygen");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let keygen = |name: &str, args: &[&str]| {
            let path = dir.path().join(name);
            let out = std::process::Command::new("ssh-keygen")
                .args(args)
                .args(["-q", "-C", "test@terok", "-f"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            path
        };
        let ed = keygen("ed", &["-t", "ed25519", "-N", ""]);
        let (key, comment) = SshPrivateKey::import(&fs_err::read_to_string(&ed).unwrap()).unwrap();
        assert_eq!(comment.as_deref(), Some("test@terok"));
        let blob = key.public_blob().unwrap();
        let listed = std::process::Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(ed.with_extension("pub"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains(&fingerprint(&blob)),
            "{listed:?}"
        );
        let public_file = fs_err::read_to_string(ed.with_extension("pub")).unwrap();
        assert_eq!(public_line(&blob, "test@terok"), public_file.trim());

        let rsa = keygen("rsa", &["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", ""]);
        let (key, _) = SshPrivateKey::import(&fs_err::read_to_string(&rsa).unwrap()).unwrap();
        let blob = key.public_blob().unwrap();
        let public_file = fs_err::read_to_string(rsa.with_extension("pub")).unwrap();
        assert_eq!(public_line(&blob, "test@terok"), public_file.trim());
        // The verifier's public key is the PKCS#1 DER ssh-keygen exports.
        let exported = std::process::Command::new("ssh-keygen")
            .args(["-e", "-m", "PKCS8", "-f"])
            .arg(rsa.with_extension("pub"))
            .output()
            .unwrap();
        let (_, spki) = pem(&String::from_utf8_lossy(&exported.stdout)).unwrap();
        // SubjectPublicKeyInfo ends with the BIT STRING holding RSAPublicKey.
        let at = spki.windows(2).rposition(|w| w == [0x03, 0x82]).unwrap();
        let rsa_public = &spki[at + 5..];
        for (flags, name, alg) in [
            (RSA_SHA2_256, "rsa-sha2-256", &RSA_PKCS1_2048_8192_SHA256),
            (RSA_SHA2_512, "rsa-sha2-512", &RSA_PKCS1_2048_8192_SHA512),
        ] {
            let (got, sig) = signature_of(&key.sign(b"data", flags).unwrap());
            assert_eq!(got, name);
            UnparsedPublicKey::new(alg, rsa_public)
                .verify(b"data", &sig)
                .unwrap();
        }

        let locked = keygen("locked", &["-t", "ed25519", "-N", "secret"]);
        assert_eq!(
            SshPrivateKey::import(&fs_err::read_to_string(&locked).unwrap()).unwrap_err(),
            SshKeyError::Encrypted
        );
        let openssh_rsa = keygen("ossh-rsa", &["-t", "rsa", "-b", "2048", "-N", ""]);
        assert_eq!(
            SshPrivateKey::import(&fs_err::read_to_string(&openssh_rsa).unwrap()).unwrap_err(),
            SshKeyError::OpenSshRsa
        );
    }
}
