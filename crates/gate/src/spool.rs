//! A push's body, spooled to a file before the push takes the mirror's lock: however slowly a
//! client sends it, the lock is held only while git applies a body that is already whole. Its
//! command list is read first, to bound how many refs one push, and one task, may make.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// The largest request body the gate takes (a push of that size is refused with 413).
pub const MAX_BODY_BYTES: u64 = 1 << 30;
/// The most refs one push may change.
pub const MAX_REFS_PER_PUSH: usize = 1000;

/// Why a push body was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// It exceeded [`MAX_BODY_BYTES`].
    TooLarge,
    /// It broke off, paused too long, or the spool could not be written.
    Broken,
    /// Its command list is not git's, or is encoded (git never compresses a push).
    Malformed,
    /// It changes more than [`MAX_REFS_PER_PUSH`] refs.
    TooManyRefs,
}

/// A spooled body: removed when dropped.
#[derive(Debug)]
pub(crate) struct Spool {
    path: PathBuf,
    file: std::fs::File,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs_err::remove_file(&self.path);
    }
}

impl Spool {
    /// The body, from its start, for git's stdin.
    pub fn stdin(&self) -> Result<std::process::Stdio, BodyError> {
        use std::io::Seek;
        let mut file = self.file.try_clone().map_err(|_| BodyError::Broken)?;
        file.rewind().map_err(|_| BodyError::Broken)?;
        Ok(file.into())
    }
}

/// Writes `body` to a new file in `dir`; an error when it exceeds [`MAX_BODY_BYTES`], breaks
/// off or pauses longer than `idle`.
pub(crate) async fn spool(body: Body, dir: &Path, idle: Duration) -> Result<Spool, BodyError> {
    terok_core::secure_fs::ensure_private_dir(dir).map_err(|_| BodyError::Broken)?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|_| BodyError::Broken)?;
    let path = dir.join(hex::encode(nonce));
    let file = terok_core::secure_fs::create_new_private(&path).map_err(|_| BodyError::Broken)?;
    let spool = Spool {
        path,
        file: file.try_clone().map_err(|_| BodyError::Broken)?,
    };
    let mut out = tokio::fs::File::from_std(file);
    copy_body(body, &mut out, idle).await?;
    out.flush().await.map_err(|_| BodyError::Broken)?;
    Ok(spool)
}

/// Copies a request body to `out`; an error when it exceeds [`MAX_BODY_BYTES`], breaks off,
/// pauses longer than `idle`, or `out` takes no more.
pub(crate) async fn copy_body<W: tokio::io::AsyncWrite + Unpin>(
    body: Body,
    out: &mut W,
    idle: Duration,
) -> Result<(), BodyError> {
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = tokio::time::timeout(idle, stream.next())
        .await
        .map_err(|_| BodyError::Broken)?
    {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        total += chunk.len() as u64;
        if total > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        out.write_all(&chunk).await.map_err(|_| BodyError::Broken)?;
    }
    Ok(())
}

/// What a push's command list asks.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Commands {
    /// Refs it changes.
    pub refs: usize,
    /// Refs it creates (the old id all zeros).
    pub created: usize,
}

/// Reads the command list at the start of the spooled body: pkt-lines of
/// `<old> <new> <ref>[\0capabilities]` (after any `shallow` lines) up to a flush packet.
pub(crate) fn commands(spool: &Spool) -> Result<Commands, BodyError> {
    let mut at = 0u64;
    let mut found = Commands::default();
    loop {
        let mut head = [0u8; 4];
        spool
            .file
            .read_exact_at(&mut head, at)
            .map_err(|_| BodyError::Malformed)?;
        let length = std::str::from_utf8(&head)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or(BodyError::Malformed)?;
        if length == 0 {
            return Ok(found);
        }
        if !(5..=65520).contains(&length) {
            return Err(BodyError::Malformed);
        }
        let mut line = vec![0u8; length - 4];
        spool
            .file
            .read_exact_at(&mut line, at + 4)
            .map_err(|_| BodyError::Malformed)?;
        at += length as u64;
        if line.starts_with(b"shallow ") {
            continue;
        }
        let old = line.split(|&b| b == b' ').next().unwrap_or_default();
        let is_id = matches!(old.len(), 40 | 64) && old.iter().all(u8::is_ascii_hexdigit);
        if !is_id {
            return Err(BodyError::Malformed);
        }
        found.refs += 1;
        if old.iter().all(|&b| b == b'0') {
            found.created += 1;
        }
        if found.refs > MAX_REFS_PER_PUSH {
            return Err(BodyError::TooManyRefs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(body: &[u8]) -> Spool {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("body");
        std::fs::write(&path, body).unwrap();
        Spool {
            file: std::fs::File::open(&path).unwrap(),
            path,
        }
    }

    fn pkt(line: &str) -> String {
        format!("{:04x}{line}", line.len() + 4)
    }

    #[test]
    fn the_command_list_is_counted_and_bounded() {
        let zero = "0".repeat(40);
        let one = "1".repeat(40);
        let body = format!(
            "{}{}{}0000PACK",
            pkt(&format!("shallow {one}\n")),
            pkt(&format!("{zero} {one} refs/heads/a\0report-status\n")),
            pkt(&format!("{one} {zero} refs/heads/b\n")),
        );
        assert_eq!(
            commands(&spooled(body.as_bytes())),
            Ok(Commands {
                refs: 2,
                created: 1
            })
        );
        let many: String = (0..=MAX_REFS_PER_PUSH)
            .map(|n| pkt(&format!("{zero} {one} refs/heads/x{n}\n")))
            .collect();
        assert_eq!(
            commands(&spooled(format!("{many}0000").as_bytes())),
            Err(BodyError::TooManyRefs)
        );
        for bad in ["", "00", "zzzz", "0004", "0009hello"] {
            assert_eq!(
                commands(&spooled(bad.as_bytes())),
                Err(BodyError::Malformed),
                "{bad}"
            );
        }
    }
}
