//! One HTTP/1.1 request over a Unix socket, as a client in a task container sends it to its
//! vault socket (the socket is a file on the host, so a test can stand in for the container).

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status code and body of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body (chunked framing left as it came).
    pub body: String,
}

/// Sends `method path` with `headers` (name, value) and `body` over the socket at `socket`
/// (`Connection: close`) and reads the whole answer.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Answer> {
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(text.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Answer { status, body })
}
