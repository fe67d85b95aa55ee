//! Bytes a container sends to its SSH signer socket, through the real signer protocol server.
//! The first byte picks the shape: odd, the rest is the raw stream (handshake, lengths and
//! all); even, the rest is frames separated by `\n--\n`, each given its length, with `@BLOB@`
//! standing for the task key's public blob as an SSH string, after the task's handshake (or,
//! when bit 1 is set, with the first frame as the handshake).
//!
//! Properties: the connection ends once the client has, and every answer is a well-formed
//! frame of failure (5), identities (12) or signature (14).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use terok_credentials::ssh::{SshPrivateKey, put_string, take_string};
use terok_fuzz::{replace_all, split_selector};
use terok_vault::ssh_agent::{SignerEvent, SignerKeys, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "terok-p-ssh-fuzz-token";

struct Keys {
    key: SshPrivateKey,
    blob: Vec<u8>,
}

impl SignerKeys for Keys {
    fn authorize(&self, token: &str) -> bool {
        token == TOKEN
    }
    fn identities(&self) -> Vec<(Vec<u8>, String)> {
        vec![(self.blob.clone(), "fuzz".to_owned())]
    }
    fn sign(&self, blob: &[u8], data: &[u8], flags: u32) -> Option<Vec<u8>> {
        (blob == self.blob).then(|| self.key.sign(data, flags).ok())?
    }
    fn record(&self, _event: SignerEvent<'_>) {}
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    keys: Keys,
}

fn harness() -> Harness {
    let key = SshPrivateKey::generate_ed25519().expect("a key");
    let blob = key.public_blob().expect("its public blob");
    Harness {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        keys: Keys { key, blob },
    }
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fn frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(body);
}

/// The stream the input describes.
fn stream(selector: u8, rest: &[u8], blob: &[u8]) -> Vec<u8> {
    if selector % 2 == 1 {
        return rest.to_vec();
    }
    let mut blob_string = Vec::new();
    put_string(&mut blob_string, blob);
    let mut out = Vec::new();
    if selector & 2 == 0 {
        frame(&mut out, TOKEN.as_bytes());
    }
    let text = replace_all(rest, b"@TOKEN@", TOKEN.as_bytes());
    let text = replace_all(&text, b"@BLOB@", &blob_string);
    let mut segments = Vec::new();
    let mut remaining = text.as_slice();
    while let Some(at) = remaining.windows(4).position(|w| w == b"\n--\n") {
        segments.push(&remaining[..at]);
        remaining = &remaining[at + 4..];
    }
    segments.push(remaining);
    for segment in segments {
        frame(&mut out, segment);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = split_selector(data) else {
        return;
    };
    let h = HARNESS.get_or_init(harness);
    let input = stream(selector, rest, &h.keys.blob);
    let answers = h.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serving = serve(server, &h.keys);
        let talking = async {
            let _ = client.write_all(&input).await;
            let _ = client.shutdown().await;
            let mut answers = Vec::new();
            let _ = client.read_to_end(&mut answers).await;
            answers
        };
        let together = async { tokio::join!(serving, talking).1 };
        tokio::time::timeout(Duration::from_secs(10), together).await
    });
    let answers = answers.expect("the signer ends its connection once the client has");
    let mut rest = answers.as_slice();
    while !rest.is_empty() {
        let (body, after) = take_string(rest).expect("answers are whole frames");
        assert!(
            matches!(body.first(), Some(5 | 12 | 14)),
            "unexpected answer {:?}",
            body.first()
        );
        rest = after;
    }
});
