//! What the fuzz targets share: rendering a diagnostic the way the CLI shows it, a scratch
//! directory for parsers that read files, and a way to hand raw bytes to a server as one
//! connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{Mutex, mpsc};

/// Renders `diagnostic` with its source snippet, as the CLI prints errors: spans that point
/// outside their text are a bug this finds.
pub fn render(diagnostic: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, diagnostic)
        .expect("a diagnostic renders");
    out
}

/// The first byte (which picks among a target's parsers) and the rest.
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}

/// A directory for one target's files, kept for the whole run.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A fresh directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a scratch directory"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `data` to `relative` (directories made) and returns its path.
    pub fn write(&self, relative: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("scratch parent");
        }
        std::fs::write(&path, data).expect("scratch file");
        path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Connections handed to a server in-process: each input becomes one connection whose client
/// side writes the input, closes its writing half and reads the whole answer.
pub struct Connections {
    pending: Mutex<mpsc::UnboundedReceiver<DuplexStream>>,
}

/// The client side of [`Connections`].
#[derive(Clone)]
pub struct Dialer {
    accept: mpsc::UnboundedSender<DuplexStream>,
}

/// A pair: give the [`Connections`] to the server, dial with the [`Dialer`].
pub fn connections() -> (Connections, Dialer) {
    let (accept, pending) = mpsc::unbounded_channel();
    (
        Connections {
            pending: Mutex::new(pending),
        },
        Dialer { accept },
    )
}

impl terok_vault::listener::Accept for Connections {
    type Io = DuplexStream;
    async fn accept(&self) -> std::io::Result<DuplexStream> {
        self.pending
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| std::io::Error::other("no more connections"))
    }
}

/// What a server said to one input.
pub struct Answer {
    /// Every byte it sent.
    pub bytes: Vec<u8>,
    /// Whether it was still talking when `limit` ran out.
    pub timed_out: bool,
}

impl Dialer {
    /// Sends `request` as one connection and reads the answer for up to `limit`.
    pub async fn exchange(&self, request: &[u8], limit: Duration) -> Answer {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        self.accept.send(server).expect("the server is accepting");
        let mut bytes = Vec::new();
        let talk = async {
            // The server may answer (and close) before it read everything.
            let _ = client.write_all(request).await;
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut bytes).await;
        };
        let timed_out = tokio::time::timeout(limit, talk).await.is_err();
        Answer { bytes, timed_out }
    }
}

/// Whether an HTTP answer switched protocols (a relayed WebSocket may rightly stay open).
pub fn switched_protocols(answer: &[u8]) -> bool {
    answer.starts_with(b"HTTP/1.1 101")
}

/// Replaces each mark in `input` with its value (`@TOKEN@` → the live token): seeds name
/// secrets the harness makes at start this way.
pub fn substitute(input: &[u8], marks: &[(&str, &str)]) -> Vec<u8> {
    marks.iter().fold(input.to_vec(), |text, (mark, value)| {
        replace_all(&text, mark.as_bytes(), value.as_bytes())
    })
}

/// Replaces each `mark` in `input` with `value`.
pub fn replace_all(input: &[u8], mark: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.windows(mark.len()).position(|w| w == mark) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(value);
        rest = &rest[at + mark.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// An upstream on loopback whose answers are bounded whatever the request asks: JSON by
/// default, a three-event stream at `/stream`, a redirect to `/json` at `/redirect`, an error
/// at `/error`. (The tests' mock upstream sizes answers by the query, which a fuzzer would
/// turn into memory exhaustion of its own making.)
pub fn bounded_upstream() -> terok_testkit::server::BackgroundServer {
    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};

    async fn answer(request: axum::extract::Request) -> Response {
        let path = request.uri().path().to_owned();
        let _ = axum::body::to_bytes(request.into_body(), 1 << 20).await;
        match path.as_str() {
            "/stream" => {
                let events = (0..3).map(|n| {
                    Ok::<_, std::io::Error>(format!("event: tick\ndata: {{\"n\":{n}}}\n\n"))
                });
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .body(Body::from_stream(futures_util::stream::iter(events)))
                    .unwrap_or_default()
            }
            "/redirect" => (StatusCode::FOUND, [(header::LOCATION, "/json")]).into_response(),
            "/error" => (StatusCode::BAD_GATEWAY, "upstream says no").into_response(),
            _ => (
                [(header::CONTENT_TYPE, "application/json")],
                "{\"ok\":true}",
            )
                .into_response(),
        }
    }
    let app = axum::Router::new().fallback(answer);
    terok_testkit::server::BackgroundServer::start("127.0.0.1:0", 1, app)
        .expect("a loopback upstream")
}
