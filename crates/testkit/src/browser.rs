//! A real browser for tests: Debian's Chromium, headless, in a profile of its own, driven over
//! the DevTools protocol — a page is opened, JavaScript answers questions about it, and a
//! screenshot is kept. Only loopback addresses are opened.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The browsers tried, in order (`chromium` from Debian, or its headless shell).
const CANDIDATES: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromium-headless-shell"];
/// Run in every page before its own scripts: keeps the addresses its WebSockets open
/// (`__terokSockets`) and what they receive, as text (`__terokReceived`).
const RECORD_WEBSOCKETS: &str = "(() => {
  const received = [];
  const sockets = [];
  window.__terokReceived = received;
  window.__terokSockets = sockets;
  const keep = (data) => {
    if (typeof data === 'string') received.push(data);
    else if (data instanceof ArrayBuffer) received.push(new TextDecoder().decode(data));
    else if (data instanceof Blob) data.arrayBuffer().then((b) => received.push(new TextDecoder().decode(b)));
  };
  const Original = window.WebSocket;
  window.WebSocket = class extends Original {
    constructor(...args) {
      super(...args);
      sockets.push(String(args[0]));
      this.addEventListener('message', (event) => keep(event.data));
    }
  };
})();";
/// How long Chromium may take to open its DevTools port.
const START_LIMIT: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What went wrong with the browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// No Chromium here.
    #[error("no Chromium ({}); `cargo xtask host-setup` installs it", CANDIDATES.join(", "))]
    Missing,
    /// Only loopback pages are opened.
    #[error("{0} is not a loopback address")]
    NotLoopback(String),
    /// Starting or talking to it failed.
    #[error("chromium: {0}")]
    Protocol(String),
}

fn protocol(err: impl std::fmt::Display) -> BrowserError {
    BrowserError::Protocol(err.to_string())
}

/// The Chromium of this host.
pub fn chromium() -> Option<PathBuf> {
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A headless Chromium with one page, closed (and its profile removed) when dropped.
pub struct Browser {
    child: Child,
    socket: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Opens `url` (on 127.0.0.1) in a new headless Chromium of `width`×`height`.
    pub async fn open(url: &str, width: u32, height: u32) -> Result<Self, BrowserError> {
        check_loopback(url)?;
        let program = chromium().ok_or(BrowserError::Missing)?;
        let profile = tempfile::Builder::new()
            .prefix("terok-chromium-")
            .tempdir()
            .map_err(protocol)?;
        let mut child = launch(&program, profile.path(), "about:blank", width, height)?;
        let port = devtools_port(&mut child, profile.path())?;
        let page = page_socket_url(port)?;
        let (socket, _) = tokio_tungstenite::connect_async(page.as_str())
            .await
            .map_err(protocol)?;
        let mut browser = Self {
            child,
            socket,
            next_id: 0,
            _profile: profile,
        };
        browser.call("Page.enable", json!({})).await?;
        browser
            .call(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": RECORD_WEBSOCKETS }),
            )
            .await?;
        browser.call("Page.navigate", json!({ "url": url })).await?;
        Ok(browser)
    }

    /// Goes to `url` (on 127.0.0.1) in the same page, cookies kept.
    pub async fn navigate(&mut self, url: &str) -> Result<(), BrowserError> {
        check_loopback(url)?;
        self.call("Page.navigate", json!({ "url": url })).await?;
        Ok(())
    }

    /// The addresses the page's WebSockets were opened to, in order.
    pub async fn websocket_urls(&mut self) -> Result<Vec<String>, BrowserError> {
        let value = self.eval("window.__terokSockets || []").await?;
        Ok(value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// Everything the page's WebSockets received so far, as text: what a terminal drawn on a
    /// canvas was sent to draw.
    pub async fn websocket_text(&mut self) -> Result<String, BrowserError> {
        let value = self.eval("(window.__terokReceived || []).join('')").await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Sends one DevTools command and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, BrowserError> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(Message::Text(message.into()))
            .await
            .map_err(protocol)?;
        while let Some(frame) = self.socket.next().await {
            let Message::Text(text) = frame.map_err(protocol)? else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).map_err(protocol)?;
            if reply["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return Err(BrowserError::Protocol(format!("{method}: {error}")));
            }
            return Ok(reply["result"].clone());
        }
        Err(BrowserError::Protocol(format!(
            "{method}: the page went away"
        )))
    }

    /// The value of the JavaScript `expression` in the page.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, BrowserError> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await?;
        Ok(result["result"]["value"].clone())
    }

    /// Evaluates `expression` until it is truthy (returning its value) or `limit` passes
    /// (returning the last value).
    pub async fn wait_for(
        &mut self,
        expression: &str,
        limit: Duration,
    ) -> Result<Value, BrowserError> {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.eval(expression).await?;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy || Instant::now() >= deadline {
                return Ok(value);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Types `text` into the focused element, as a keyboard would (`\r` is Enter).
    pub async fn type_text(&mut self, text: &str) -> Result<(), BrowserError> {
        for piece in text.split_inclusive('\r') {
            let (chars, enter) = match piece.strip_suffix('\r') {
                Some(chars) => (chars, true),
                None => (piece, false),
            };
            if !chars.is_empty() {
                self.call("Input.insertText", json!({ "text": chars }))
                    .await?;
            }
            if enter {
                for kind in ["keyDown", "keyUp"] {
                    self.call(
                        "Input.dispatchKeyEvent",
                        json!({"type": kind, "key": "Enter", "code": "Enter",
                               "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13,
                               "text": "\r", "unmodifiedText": "\r"}),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// A PNG of the page as it is now.
    pub async fn screenshot(&mut self) -> Result<Vec<u8>, BrowserError> {
        let result = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let data = result["data"].as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(protocol)
    }
}

/// Only pages on this machine's loopback are opened.
fn check_loopback(url: &str) -> Result<(), BrowserError> {
    if url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:") {
        Ok(())
    } else {
        Err(BrowserError::NotLoopback(url.to_owned()))
    }
}

/// Chromium, headless, on `url`, with its DevTools on a port it picks.
fn launch(
    program: &Path,
    profile: &Path,
    url: &str,
    width: u32,
    height: u32,
) -> Result<Child, BrowserError> {
    Command::new(program)
        .args([
            "--headless",
            // As root Chromium's own sandbox cannot start; the test machine is the boundary.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(protocol)
}

/// The DevTools port Chromium picked, from the `DevToolsActivePort` file it writes into its
/// profile.
fn devtools_port(child: &mut Child, profile: &Path) -> Result<u16, BrowserError> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Some(port) = std::fs::read_to_string(profile.join("DevToolsActivePort"))
            .ok()
            .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
        {
            return Ok(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BrowserError::Protocol(format!("exited: {status}")));
        }
        if Instant::now() >= deadline {
            return Err(BrowserError::Protocol("DevTools did not open".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The DevTools socket of the page Chromium opened.
fn page_socket_url(port: u16) -> Result<String, BrowserError> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let targets = http_get_json(port, "/json/list")?;
        if let Some(url) = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        {
            return Ok(url.to_owned());
        }
        if Instant::now() >= deadline {
            return Err(BrowserError::Protocol("no page target".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on the DevTools HTTP endpoint, as JSON.
fn http_get_json(port: u16, path: &str) -> Result<Value, BrowserError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(protocol)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(protocol)?;
    // DevTools keeps the connection open: read the head, then Content-Length bytes.
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(protocol)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().map_err(protocol)?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(protocol)?;
    let body = String::from_utf8_lossy(&body);
    serde_json::from_str(&body).map_err(protocol)
}
