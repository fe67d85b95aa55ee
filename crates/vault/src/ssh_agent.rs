//! The SSH signer: an ssh-agent protocol server on a container's own socket. A connection
//! first sends the task's signer token (`u32` big-endian length, then the token; the
//! in-container bridge does this) and is closed unless it is the container's `ssh` token; then
//! it may list the keys the task may use (11 → 12) and have an SSH login signed with one
//! (13 → 14). The token is checked again before every request, so a connection ends as soon as
//! its task's tokens are revoked. Only SSH user-authentication requests for the key asked are
//! signed (what `ssh` and `git` over SSH need): a container cannot have the key sign a commit,
//! a certificate or any other statement in the user's name. Anything else, an unknown key or a
//! malformed request gets `SSH_AGENT_FAILURE` (5). The private keys are used here, in the vault
//! process; nothing but public keys and signatures goes out.

use std::time::Duration;

use terok_credentials::ssh::{put_string, take_string, take_u32};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `SSH_AGENT_FAILURE`.
const FAILURE: u8 = 5;
/// `SSH2_AGENTC_REQUEST_IDENTITIES`.
const REQUEST_IDENTITIES: u8 = 11;
/// `SSH2_AGENT_IDENTITIES_ANSWER`.
const IDENTITIES_ANSWER: u8 = 12;
/// `SSH2_AGENTC_SIGN_REQUEST`.
const SIGN_REQUEST: u8 = 13;
/// `SSH2_AGENT_SIGN_RESPONSE`.
const SIGN_RESPONSE: u8 = 14;
/// `SSH_MSG_USERAUTH_REQUEST`, the message a login signature covers (RFC 4252 §7).
const USERAUTH_REQUEST: u8 = 50;
/// The login methods whose signatures are made: plain public-key, and OpenSSH's variant bound
/// to the server's host key (which appends that key).
const PUBLICKEY: &[u8] = b"publickey";
const PUBLICKEY_HOSTBOUND: &[u8] = b"publickey-hostbound-v00@openssh.com";
/// The largest request (and handshake) taken.
pub const MAX_FRAME: u32 = 256 * 1024;
/// The longest token a handshake may carry.
const MAX_TOKEN: u32 = 1024;
/// How long the handshake may take.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);
/// How long a connection may wait between requests.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// What the signer asks of the vault for one container.
pub trait SignerKeys: Send + Sync {
    /// Whether `token` is this container's signer token (asked at the handshake and again
    /// before every request).
    fn authorize(&self, token: &str) -> bool;
    /// The keys the container may use: public blob and comment.
    fn identities(&self) -> Vec<(Vec<u8>, String)>;
    /// The signature blob of `data` by the key with public `blob` (`None`: not one of the
    /// container's keys, or signing failed).
    fn sign(&self, blob: &[u8], data: &[u8], flags: u32) -> Option<Vec<u8>>;
    /// Told what happened, for the audit log.
    fn record(&self, event: SignerEvent<'_>);
}

/// What the signer did, as the audit log tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerEvent<'a> {
    /// A connection was closed without serving it.
    Refused(Refused),
    /// A login as `user` was signed with the key `blob`.
    Signed {
        /// The user name the login is for.
        user: &'a str,
        /// The key's public blob.
        blob: &'a [u8],
    },
    /// A sign request was refused: not an SSH login with the key asked (a commit, a
    /// certificate, arbitrary data), or not one of the container's keys.
    SignRefused,
}

/// Why a connection was closed without serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The handshake did not arrive in time, or was cut short.
    Truncated,
    /// A length of zero, or over the limit.
    BadLength,
    /// Not the container's signer token.
    BadToken,
}

/// Serves one connection until the client closes it, breaks the protocol, or its token is
/// revoked.
pub async fn serve<S, K>(stream: S, keys: &K) -> Result<(), Refused>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: SignerKeys + ?Sized,
{
    serve_within(stream, keys, HANDSHAKE_LIMIT).await
}

/// [`serve`] with a handshake limit of `limit`.
async fn serve_within<S, K>(mut stream: S, keys: &K, limit: Duration) -> Result<(), Refused>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: SignerKeys + ?Sized,
{
    let token = match handshake(&mut stream, keys, limit).await {
        Ok(token) => token,
        Err(refused) => {
            keys.record(SignerEvent::Refused(refused));
            return Err(refused);
        }
    };
    loop {
        let request =
            match tokio::time::timeout(IDLE_LIMIT, read_frame(&mut stream, MAX_FRAME)).await {
                Ok(Ok(request)) => request,
                // The client is done, or broke the framing: the connection ends.
                Ok(Err(_)) | Err(_) => return Ok(()),
            };
        // Revoked meanwhile (the task ended or was removed): nothing more is answered.
        if !keys.authorize(&token) {
            return Ok(());
        }
        let answer = answer(&request, keys);
        // A client that never reads its answers does not hold the connection for ever.
        match tokio::time::timeout(IDLE_LIMIT, write_frame(&mut stream, &answer)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
    }
}

/// The token of the handshake, when it is the container's.
async fn handshake<S, K>(stream: &mut S, keys: &K, limit: Duration) -> Result<String, Refused>
where
    S: AsyncRead + Unpin,
    K: SignerKeys + ?Sized,
{
    let token = tokio::time::timeout(limit, read_frame(stream, MAX_TOKEN))
        .await
        .map_err(|_| Refused::Truncated)??;
    let token = String::from_utf8(token).map_err(|_| Refused::BadToken)?;
    if keys.authorize(&token) {
        Ok(token)
    } else {
        Err(Refused::BadToken)
    }
}

/// The answer to one request.
fn answer<K: SignerKeys + ?Sized>(request: &[u8], keys: &K) -> Vec<u8> {
    match request.split_first() {
        Some((&REQUEST_IDENTITIES, [])) => {
            let identities = keys.identities();
            let mut out = vec![IDENTITIES_ANSWER];
            out.extend_from_slice(&u32::try_from(identities.len()).unwrap_or(0).to_be_bytes());
            for (blob, comment) in identities {
                put_string(&mut out, &blob);
                put_string(&mut out, comment.as_bytes());
            }
            out
        }
        Some((&SIGN_REQUEST, body)) => sign(body, keys).unwrap_or_else(|| {
            keys.record(SignerEvent::SignRefused);
            vec![FAILURE]
        }),
        _ => vec![FAILURE],
    }
}

fn sign<K: SignerKeys + ?Sized>(body: &[u8], keys: &K) -> Option<Vec<u8>> {
    let (blob, rest) = take_string(body)?;
    let (data, rest) = take_string(rest)?;
    let (flags, rest) = take_u32(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let user = login_user(data, blob)?;
    let signature = keys.sign(blob, data, flags)?;
    keys.record(SignerEvent::Signed { user, blob });
    let mut out = vec![SIGN_RESPONSE];
    put_string(&mut out, &signature);
    Some(out)
}

/// The user name of `data` when it is what an SSH client signs to log in with the key `blob`
/// (RFC 4252 §7: session id, `SSH_MSG_USERAUTH_REQUEST`, user, service, `publickey`, TRUE,
/// algorithm, the key — plus the server's host key for OpenSSH's host-bound variant).
fn login_user<'a>(data: &'a [u8], blob: &[u8]) -> Option<&'a str> {
    let (_session_id, rest) = take_string(data)?;
    let (&message, rest) = rest.split_first()?;
    if message != USERAUTH_REQUEST {
        return None;
    }
    let (user, rest) = take_string(rest)?;
    let (_service, rest) = take_string(rest)?;
    let (method, rest) = take_string(rest)?;
    let (&has_signature, rest) = rest.split_first()?;
    let (_algorithm, rest) = take_string(rest)?;
    let (key, rest) = take_string(rest)?;
    if has_signature != 1 || key != blob {
        return None;
    }
    let complete = match method {
        PUBLICKEY => rest.is_empty(),
        PUBLICKEY_HOSTBOUND => take_string(rest).is_some_and(|(_, after)| after.is_empty()),
        _ => false,
    };
    if !complete {
        return None;
    }
    std::str::from_utf8(user).ok()
}

/// One frame: `u32` big-endian length (1..=`limit`), then that many bytes.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, limit: u32) -> Result<Vec<u8>, Refused> {
    let mut head = [0u8; 4];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|_| Refused::Truncated)?;
    let len = u32::from_be_bytes(head);
    if len == 0 || len > limit {
        return Err(Refused::BadLength);
    }
    let mut body = vec![0u8; len as usize];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|_| Refused::Truncated)?;
    Ok(body)
}

async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, body: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(body.len() + 4);
    put_string(&mut frame, body);
    stream.write_all(&frame).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use terok_credentials::ssh::{RSA_SHA2_256, SshPrivateKey};

    struct TestKeys {
        token: String,
        keys: Vec<SshPrivateKey>,
        revoked: std::sync::atomic::AtomicBool,
        events: std::sync::Mutex<Vec<String>>,
    }

    impl SignerKeys for TestKeys {
        fn authorize(&self, token: &str) -> bool {
            token == self.token && !self.revoked.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn record(&self, event: SignerEvent<'_>) {
            let line = match event {
                SignerEvent::Refused(why) => format!("refused {why:?}"),
                SignerEvent::Signed { user, .. } => format!("signed {user}"),
                SignerEvent::SignRefused => "sign refused".to_owned(),
            };
            self.events.lock().unwrap().push(line);
        }
        fn identities(&self) -> Vec<(Vec<u8>, String)> {
            self.keys
                .iter()
                .map(|k| (k.public_blob().unwrap(), "test".to_owned()))
                .collect()
        }
        fn sign(&self, blob: &[u8], data: &[u8], flags: u32) -> Option<Vec<u8>> {
            let key = self
                .keys
                .iter()
                .find(|k| k.public_blob().ok().as_deref() == Some(blob))?;
            key.sign(data, flags).ok()
        }
    }

    fn keys() -> TestKeys {
        TestKeys {
            token: "terok-p-ssh-token".into(),
            keys: vec![SshPrivateKey::generate_ed25519().unwrap()],
            revoked: std::sync::atomic::AtomicBool::new(false),
            events: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// What an SSH client signs to log in as `user` with `blob` by `method` (the host-bound
    /// method appends the server's host key).
    fn login(user: &str, method: &[u8], blob: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        put_string(&mut data, b"session id");
        data.push(USERAUTH_REQUEST);
        put_string(&mut data, user.as_bytes());
        put_string(&mut data, b"ssh-connection");
        put_string(&mut data, method);
        data.push(1);
        put_string(&mut data, b"ssh-ed25519");
        put_string(&mut data, blob);
        if method == PUBLICKEY_HOSTBOUND {
            put_string(&mut data, b"the server's host key");
        }
        data
    }

    /// A sign request for `data` with `blob`.
    fn sign_request(blob: &[u8], data: &[u8]) -> Vec<u8> {
        let mut request = vec![SIGN_REQUEST];
        put_string(&mut request, blob);
        put_string(&mut request, data);
        request.extend_from_slice(&0u32.to_be_bytes());
        request
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, body);
        out
    }

    /// Runs `input` through a connection; returns what the signer wrote and how it ended.
    async fn exchange(input: Vec<u8>, keys: &TestKeys) -> (Vec<u8>, Result<(), Refused>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&input).await.unwrap();
        client.shutdown().await.unwrap();
        let result = serve(server, keys).await;
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        (out, result)
    }

    fn handshake(token: &str) -> Vec<u8> {
        frame(token.as_bytes())
    }

    /// The answers in `out`, each without its length.
    fn answers(mut out: &[u8]) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        while let Some((body, rest)) = take_string(out) {
            all.push(body.to_vec());
            out = rest;
        }
        all
    }

    #[tokio::test]
    async fn zero_oversized_and_truncated_handshakes_are_refused() {
        let keys = keys();
        let (out, result) = exchange(0u32.to_be_bytes().to_vec(), &keys).await;
        assert_eq!((out.is_empty(), result), (true, Err(Refused::BadLength)));
        let (out, result) = exchange((MAX_TOKEN + 1).to_be_bytes().to_vec(), &keys).await;
        assert_eq!((out.is_empty(), result), (true, Err(Refused::BadLength)));
        let mut cut = 20u32.to_be_bytes().to_vec();
        cut.extend_from_slice(b"terok-p");
        let (out, result) = exchange(cut, &keys).await;
        assert_eq!((out.is_empty(), result), (true, Err(Refused::Truncated)));
    }

    #[tokio::test]
    async fn another_token_is_refused_and_nothing_is_answered() {
        let keys = keys();
        let mut input = handshake("terok-p-claude-token");
        input.extend(frame(&[REQUEST_IDENTITIES]));
        let (out, result) = exchange(input, &keys).await;
        assert_eq!(result, Err(Refused::BadToken));
        assert!(out.is_empty(), "no identity went out");
        assert_eq!(*keys.events.lock().unwrap(), ["refused BadToken"]);
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_after_the_handshake_limit() {
        let keys = keys();
        let (_client, server) = tokio::io::duplex(64);
        let result = serve_within(server, &keys, Duration::from_millis(100)).await;
        assert_eq!(result, Err(Refused::Truncated));
    }

    #[tokio::test]
    async fn identities_are_listed_and_an_ed25519_signature_verifies() {
        let keys = keys();
        let blob = keys.keys[0].public_blob().unwrap();
        let signed = login("git", PUBLICKEY, &blob);
        let mut input = handshake(&keys.token);
        input.extend(frame(&[REQUEST_IDENTITIES]));
        input.extend(frame(&sign_request(&blob, &signed)));
        let (out, result) = exchange(input, &keys).await;
        assert_eq!(result, Ok(()));
        let replies = answers(&out);
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0][0], IDENTITIES_ANSWER);
        let (count, rest) = take_u32(&replies[0][1..]).unwrap();
        assert_eq!(count, 1);
        let (listed, _) = take_string(rest).unwrap();
        assert_eq!(listed, blob.as_slice());
        assert_eq!(replies[1][0], SIGN_RESPONSE);
        let (signature, _) = take_string(&replies[1][1..]).unwrap();
        let (alg, rest) = take_string(signature).unwrap();
        let (sig, _) = take_string(rest).unwrap();
        assert_eq!(alg, b"ssh-ed25519");
        let (_, key_rest) = take_string(&blob).unwrap();
        let (public, _) = take_string(key_rest).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(&signed, sig)
            .unwrap();
        assert_eq!(*keys.events.lock().unwrap(), ["signed git"]);
    }

    #[tokio::test]
    async fn only_a_login_with_the_key_asked_is_signed() {
        let keys = keys();
        let blob = keys.keys[0].public_blob().unwrap();
        let other = SshPrivateKey::generate_ed25519()
            .unwrap()
            .public_blob()
            .unwrap();
        // What `ssh-keygen -Y sign` (git's SSH commit signatures) has signed.
        let mut sshsig = b"SSHSIG".to_vec();
        put_string(&mut sshsig, b"git");
        put_string(&mut sshsig, b"");
        put_string(&mut sshsig, b"sha512");
        put_string(&mut sshsig, &[7u8; 64]);
        let mut not_signing = login("git", PUBLICKEY, &blob);
        let at = not_signing.len() - blob.len() - 4 - 4 - b"ssh-ed25519".len() - 1;
        not_signing[at] = 0;
        let mut trailing = login("git", PUBLICKEY, &blob);
        trailing.push(0);
        let refused = [
            sshsig,
            b"anything at all".to_vec(),
            login("git", PUBLICKEY, &other),
            login("git", b"password", &blob),
            not_signing,
            trailing,
            login("git", PUBLICKEY, &blob)[..40].to_vec(),
        ];
        let mut input = handshake(&keys.token);
        for data in &refused {
            input.extend(frame(&sign_request(&blob, data)));
        }
        input.extend(frame(&sign_request(
            &blob,
            &login("dev", PUBLICKEY_HOSTBOUND, &blob),
        )));
        let (out, result) = exchange(input, &keys).await;
        assert_eq!(result, Ok(()));
        let replies = answers(&out);
        assert_eq!(replies.len(), refused.len() + 1);
        assert!(
            replies[..refused.len()].iter().all(|r| *r == [FAILURE]),
            "{replies:?}"
        );
        assert_eq!(
            replies[refused.len()][0],
            SIGN_RESPONSE,
            "the host-bound login"
        );
        let events = keys.events.lock().unwrap();
        assert_eq!(
            events.iter().filter(|e| *e == "sign refused").count(),
            refused.len()
        );
        assert_eq!(events.last().unwrap(), "signed dev");
    }

    #[tokio::test]
    async fn a_connection_ends_once_its_token_is_revoked() {
        let keys = keys();
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let serving = async {
            let result = serve(server, &keys).await;
            assert_eq!(result, Ok(()));
        };
        let using = async {
            client.write_all(&handshake(&keys.token)).await.unwrap();
            client
                .write_all(&frame(&[REQUEST_IDENTITIES]))
                .await
                .unwrap();
            let mut head = [0u8; 4];
            client.read_exact(&mut head).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
            client.read_exact(&mut body).await.unwrap();
            assert_eq!(body[0], IDENTITIES_ANSWER);
            keys.revoked
                .store(true, std::sync::atomic::Ordering::SeqCst);
            client
                .write_all(&frame(&[REQUEST_IDENTITIES]))
                .await
                .unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "answered after revocation: {rest:?}");
        };
        tokio::join!(serving, using);
    }

    #[tokio::test]
    async fn an_unknown_key_or_a_malformed_request_gets_a_failure() {
        let keys = keys();
        let other = SshPrivateKey::generate_ed25519()
            .unwrap()
            .public_blob()
            .unwrap();
        let mut unknown = vec![SIGN_REQUEST];
        put_string(&mut unknown, &other);
        put_string(&mut unknown, b"data");
        unknown.extend_from_slice(&RSA_SHA2_256.to_be_bytes());
        let mut input = handshake(&keys.token);
        input.extend(frame(&unknown));
        input.extend(frame(&[SIGN_REQUEST, 0, 0, 0, 9, 1]));
        input.extend(frame(&[99]));
        let (out, result) = exchange(input, &keys).await;
        assert_eq!(result, Ok(()));
        assert_eq!(answers(&out), vec![vec![FAILURE]; 3]);
    }

    #[tokio::test]
    async fn an_oversized_request_ends_the_connection() {
        let keys = keys();
        let mut input = handshake(&keys.token);
        input.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        let (out, result) = exchange(input, &keys).await;
        assert_eq!(result, Ok(()));
        assert!(out.is_empty());
    }
}
