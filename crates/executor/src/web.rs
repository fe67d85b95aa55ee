//! Web tasks: Toad behind Caddy's token gate in the container, published on this host's
//! loopback. The host picks the port, mints the access token (a new one at every start), and
//! knows the UI is up when it answers `200` to a request carrying the token.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use terok_core::secure_fs;
use terok_podman::ContainerRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::ExecutorError;
use crate::session::Executor;
use crate::task::{TaskRecord, WebRecord};

/// The port Caddy serves in the container (the host publishes it on 127.0.0.1).
pub const UI_CONTAINER_PORT: u16 = 8080;
/// The token file in the agent-config directory (`/home/dev/.terok/toad.token` inside).
const TOKEN_FILE: &str = "toad.token";
/// The most read of the token file (a token is 64 characters).
const TOKEN_FILE_LIMIT: u64 = 4096;
/// How often the host asks whether the UI answers.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// How long one request to the UI may take.
const PROBE_LIMIT: Duration = Duration::from_secs(3);

/// How to reach a web task's UI now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WebAccess {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The link to open: the public address with the access token, which a first visit
    /// trades for a cookie.
    pub url: String,
}

/// The link of `record`'s UI with `token`.
pub(crate) fn access(record: &WebRecord, token: &str) -> WebAccess {
    WebAccess {
        port: record.port,
        url: format!("{}/?token={token}", record.public_url),
    }
}

/// A free port on 127.0.0.1 (the OS picks it), or `port` when it is free.
pub(crate) fn reserve_port(port: Option<u16>) -> Result<u16, ExecutorError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
        .map_err(|source| ExecutorError::PortUnavailable { port, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ExecutorError::PortUnavailable { port, source })?;
    Ok(local.port())
}

/// A new access token: 32 random bytes as hex (the gate matches it in a regex and a cookie, so
/// nothing but `[0-9a-f]`).
pub(crate) fn new_token() -> Result<String, ExecutorError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| ExecutorError::Rng)?;
    Ok(hex::encode(bytes))
}

/// Writes `token` for the container's entry script: owner-only, replaced in one step (a link
/// the container left in its place is replaced, not followed).
pub(crate) fn write_token(agent_config: &Path, token: &str) -> Result<(), ExecutorError> {
    secure_fs::write_atomic(&agent_config.join(TOKEN_FILE), token.as_bytes(), 0o600).map_err(|e| {
        ExecutorError::Io {
            context: "cannot write the web task's access token".into(),
            source: std::io::Error::other(e.to_string()),
        }
    })
}

/// The token the task's UI takes now.
pub(crate) fn read_token(agent_config: &Path) -> Result<String, ExecutorError> {
    // The container can replace the file: a FIFO or a huge file is refused, not read.
    let bytes = secure_fs::read_nofollow_limited(&agent_config.join(TOKEN_FILE), TOKEN_FILE_LIMIT)
        .map_err(|e| ExecutorError::Io {
            context: "cannot read the web task's access token".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    // What terok wrote is 64 hex digits; anything else the container put there is refused,
    // not printed to the user's terminal as a link or sent in a header.
    let token = String::from_utf8_lossy(&bytes).trim().to_owned();
    if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(token)
    } else {
        Err(ExecutorError::Io {
            context: "the web task's access token file was changed".into(),
            source: std::io::Error::other("it does not hold a token terok wrote (64 hex digits)"),
        })
    }
}

/// The HTTP status of `GET /` on the UI at `port` with the task's cookie; `None` when nothing
/// answers (yet).
pub async fn probe_ui(port: u16, cookie: &str, token: &str) -> Option<u16> {
    let ask = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}={token}\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await.ok()?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let line = std::str::from_utf8(&head[..read]).ok()?;
        line.strip_prefix("HTTP/1.1 ")
            .or_else(|| line.strip_prefix("HTTP/1.0 "))?
            .get(..3)?
            .parse()
            .ok()
    };
    tokio::time::timeout(PROBE_LIMIT, ask).await.ok().flatten()
}

/// Whether the UI on `record`'s port answers `200` to `token` before `deadline`; `gone` says
/// whether the container ended meanwhile (then there is no point waiting).
pub(crate) async fn wait_for_ui(
    record: &WebRecord,
    token: &str,
    deadline: Instant,
    mut gone: impl AsyncFnMut() -> bool,
) -> Result<(), WebWait> {
    let cookie = record.cookie_name();
    loop {
        if probe_ui(record.port, &cookie, token).await == Some(200) {
            return Ok(());
        }
        if gone().await {
            return Err(WebWait::Exited);
        }
        if Instant::now() >= deadline {
            return Err(WebWait::TimedOut);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Why a web task's UI did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebWait {
    /// The container ended.
    Exited,
    /// Not within the limit.
    TimedOut,
}

impl<R: ContainerRuntime> Executor<R> {
    /// A web task's link as it is now; `None` for a task that is not a web task.
    pub fn web_access(&self, name: &str) -> Result<Option<WebAccess>, ExecutorError> {
        let Some(record) = self.task_store().find(name) else {
            return Err(ExecutorError::TaskNotFound(name.to_owned()));
        };
        let Some(web) = &record.web else {
            return Ok(None);
        };
        let token = read_token(&self.task_store().layout(&record.id).agent_config())?;
        Ok(Some(access(web, &token)))
    }

    /// Waits until the UI of the web task `name` answers (after `start`), up to `limit`.
    pub async fn wait_web_ui(
        &self,
        name: &str,
        limit: Duration,
    ) -> Result<WebAccess, ExecutorError> {
        let record = self
            .task_store()
            .find(name)
            .ok_or_else(|| ExecutorError::TaskNotFound(name.to_owned()))?;
        let web = record
            .web
            .clone()
            .ok_or_else(|| ExecutorError::NotAWebTask {
                name: name.to_owned(),
            })?;
        let token = read_token(&self.task_store().layout(&record.id).agent_config())?;
        let deadline = Instant::now() + limit;
        let runtime = &self.runtime;
        let gone = async || !matches!(runtime.inspect(&record.name).await, Ok(Some(info)) if info.state.running);
        wait_for_ui(&web, &token, deadline, gone)
            .await
            .map_err(|why| web_wait_error(&record, why, limit))?;
        Ok(access(&web, &token))
    }

    /// Before a web task starts again: a new access token (the old link stops working).
    pub(crate) fn rotate_web_token(&self, record: &TaskRecord) -> Result<(), ExecutorError> {
        if record.web.is_none() {
            return Ok(());
        }
        write_token(
            &self.task_store().layout(&record.id).agent_config(),
            &new_token()?,
        )
    }
}

/// The error of a UI that did not come up.
pub(crate) fn web_wait_error(record: &TaskRecord, why: WebWait, limit: Duration) -> ExecutorError {
    match why {
        WebWait::Exited => ExecutorError::WebUiExited {
            name: record.name.clone(),
        },
        WebWait::TimedOut => ExecutorError::WebUiTimedOut {
            name: record.name.clone(),
            secs: limit.as_secs(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_carries_the_token_on_the_public_address() {
        let local = WebRecord::new(8123, None);
        assert_eq!(
            access(&local, "ab12").url,
            "http://127.0.0.1:8123/?token=ab12"
        );
        assert_eq!(local.cookie_name(), "terok_token_8123");
        let proxied = WebRecord::new(8123, Some("https://box.example/"));
        assert_eq!(
            access(&proxied, "ab12").url,
            "https://box.example/?token=ab12"
        );
    }

    #[test]
    fn a_token_file_the_container_rewrote_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = new_token().unwrap();
        write_token(dir.path(), &token).unwrap();
        assert_eq!(read_token(dir.path()).unwrap(), token);
        for planted in [
            "\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}".to_owned(),
            format!("{token}\u{1b}[2J"),
            "ab".repeat(31),
            "zz".repeat(32),
        ] {
            write_token(dir.path(), &planted).unwrap();
            assert!(read_token(dir.path()).is_err(), "{planted:?} was taken");
        }
    }

    #[test]
    fn tokens_are_new_each_time_and_only_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_port_in_use_is_refused_and_a_free_one_is_found() {
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(matches!(
            reserve_port(Some(port)),
            Err(ExecutorError::PortUnavailable { .. })
        ));
        assert_ne!(reserve_port(None).unwrap(), 0);
    }

    #[tokio::test]
    async fn the_probe_reads_the_status_of_a_real_http_answer() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            socket
                .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            request
        });
        assert_eq!(probe_ui(port, "terok_token_1", "t0k").await, Some(403));
        let request = server.await.unwrap();
        assert!(
            request.contains("Cookie: terok_token_1=t0k\r\n"),
            "{request}"
        );
        drop(std::net::TcpListener::bind(("127.0.0.1", 0)));
    }
}
