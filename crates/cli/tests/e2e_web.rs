//! Web mode as a person uses it: `run claude <dir> --web` on the Debian sid image (Toad needs
//! Python 3.14), behind the default allow-list firewall, then Debian's Chromium opens the
//! printed link. The Toad UI renders with the task's agent in its launcher (what its
//! WebSocket drew is read, and a screenshot kept); the link without the token is refused; the
//! port is on 127.0.0.1 only. Then, as a person would, the browser launches Claude from the
//! launcher and types "fix the failing test": Toad drives Claude's ACP server in the task,
//! through the vault, against the scripted model — the file on the host is fixed and the model
//! saw only the real key. A page of another origin on this host, though the browser sends it
//! the task's cookie, cannot open the task's WebSocket, frame the UI or navigate into it. A restart gives a new token and the old
//! link stops working; after `stop` nothing answers.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::acp_e2e::{PROMPT, PROMPT_LIMIT};
use common::e2e::{Run, Scenario};
use common::text;
use terok_executor::probe_ui;
use terok_testkit::browser::{Browser, chromium};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

const CONFIG: &str = "image:\n  base_image: localhost/debian:sid\n  agents: claude\n";
/// How long the UI may take to draw the launcher once the page is open.
const DRAW_LIMIT: Duration = Duration::from_secs(60);

/// The link `run --web` / `start` printed.
fn printed_link(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Toad available at: "))
        .unwrap_or_else(|| panic!("no link: {}", text(out)))
        .to_owned()
}

/// The port and token of `link` (`http://127.0.0.1:<port>/?token=<token>`).
fn port_and_token(link: &str) -> (u16, String) {
    let rest = link.strip_prefix("http://127.0.0.1:").unwrap();
    let (port, query) = rest.split_once('/').unwrap();
    let token = query.strip_prefix("?token=").unwrap();
    (port.parse().unwrap(), token.to_owned())
}

fn status(port: u16, token: &str) -> Option<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(probe_ui(port, &format!("terok_token_{port}"), token))
}

/// The response head (status line and header fields) to a request for the UI at `port`
/// carrying `cookie` and the extra header lines `headers` (as a browser would send them).
fn head_of(port: u16, cookie: &str, headers: &[&str]) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n{extra}\
         Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    Some(response.split("\r\n\r\n").next()?.to_owned())
}

/// The HTTP status in a response head.
fn status_in(head: &str) -> Option<u16> {
    head.get(9..12)?.parse().ok()
}

/// The HTTP status of a request to the UI at `port` carrying `cookie` and the extra header
/// lines `headers`.
fn status_with(port: u16, cookie: &str, headers: &[&str]) -> Option<u16> {
    status_in(&head_of(port, cookie, headers)?)
}

/// A page on another loopback port that opens a WebSocket to the address it is given and says
/// in its title whether that opened.
struct ForeignPage {
    port: u16,
    target: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ForeignPage {
    fn serve() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let shared = target.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 2048];
                let _ = stream.read(&mut request);
                let page = format!(
                    "<!doctype html><title>waiting</title><script>\
                     const ws = new WebSocket({:?});\
                     ws.onopen = () => {{ document.title = 'opened'; }};\
                     ws.onerror = () => {{ document.title = 'refused'; }};\
                     </script>",
                    shared.lock().unwrap()
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        Self { port, target }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_target(&self, socket: &str) {
        *self.target.lock().unwrap() = socket.to_owned();
    }
}

/// The listening sockets on `port` (`ss`), as `address:port`.
fn listeners(port: u16) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

#[test]
fn toad_in_a_browser_behind_the_tasks_token() {
    if !require_podman("toad_in_a_browser_behind_the_tasks_token") {
        return;
    }
    assert!(
        chromium().is_some(),
        "Debian's chromium is needed (cargo xtask host-setup installs it)"
    );
    let scenario = Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: "sk-ant-api03-REAL-web-e2e-key-that-stays-home-5d1e",
        config: CONFIG,
        suite: "sid",
        image_lock: "acp-e2e-images",
        turns: 3,
    };
    let mut run = Run::new(&scenario, |_| {});
    run.prepare_host();
    let out = run.must(&["run", "claude", "project", "--web", "--yes"]);
    let name = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Container: "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no container: {}", text(&out)));
    run.container = Some(name.clone());
    assert!(
        !text(&out).contains("egress is open"),
        "the default firewall stays on: {}",
        text(&out)
    );
    let link = printed_link(&out);
    let (port, token) = port_and_token(&link);

    // Published on loopback only.
    assert_eq!(listeners(port), [format!("127.0.0.1:{port}")]);
    let published = run.must(&["list", "--json"]);
    assert!(text(&published).contains(&name), "{}", text(&published));

    // The token gate: nothing without the task's token.
    assert_eq!(status(port, &token), Some(200));
    assert_eq!(status(port, "not-the-token"), Some(403));

    // A real browser on the printed link.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let artefacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = rt.block_on(Browser::open(&link, 1280, 800)).unwrap();
    let (drawn, screenshot) = rt.block_on(async {
        let deadline = std::time::Instant::now() + DRAW_LIMIT;
        let mut drawn = String::new();
        while std::time::Instant::now() < deadline {
            drawn = browser.websocket_text().await.unwrap();
            if drawn.contains("with this task's workspace") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Let the last frame reach the canvas before the picture.
        tokio::time::sleep(Duration::from_secs(1)).await;
        (drawn, browser.screenshot().await.unwrap())
    });
    let artefact = artefacts.join("web-ui.png");
    std::fs::write(&artefact, &screenshot).unwrap();
    eprintln!("screenshot: {}", artefact.display());
    assert!(
        screenshot.starts_with(b"\x89PNG"),
        "a PNG ({} bytes)",
        screenshot.len()
    );
    assert!(drawn.contains("Toad"), "Toad's UI: {drawn:.400}");
    // The launcher lists the task's agent as terok set it up (its ACP server), not Toad's
    // own vendor entry.
    assert!(
        drawn.contains("Claude") && drawn.contains("with this task's workspace"),
        "the launcher: {drawn:.2000}"
    );

    // Claude from the launcher (quick-launch key 1), and the task typed into Toad's prompt.
    assert!(
        !run.sample_test_passes().status.success(),
        "the sample must start broken"
    );
    rt.block_on(async {
        browser
            .eval("document.querySelector('.xterm-helper-textarea').focus()")
            .await
            .unwrap();
        browser.type_text("1").await.unwrap();
        // The session screen: Claude's ACP server answered `session/new`.
        let deadline = std::time::Instant::now() + DRAW_LIMIT;
        while !browser
            .websocket_text()
            .await
            .unwrap()
            .contains("Bypass permissions")
        {
            assert!(std::time::Instant::now() < deadline, "no session screen");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        browser.type_text(PROMPT).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        browser.type_text("\r").await.unwrap();
    });
    let deadline = std::time::Instant::now() + PROMPT_LIMIT;
    let first_call = std::time::Instant::now() + DRAW_LIMIT;
    let fixed = loop {
        if run.sample_test_passes().status.success() && run.model.unanswered().is_empty() {
            break true;
        }
        let now = std::time::Instant::now();
        if now >= deadline || (now >= first_call && run.model.requests().is_empty()) {
            break false;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let screen = rt.block_on(browser.screenshot()).unwrap();
    std::fs::write(artefacts.join("web-ui-after-prompt.png"), &screen).unwrap();
    assert!(
        fixed,
        "the test still fails (see {}); unanswered: {:?}; last request: {}",
        artefacts.join("web-ui-after-prompt.png").display(),
        run.model.unanswered(),
        run.last_request_tail()
    );
    run.assert_upstream_saw_only_the_real_key();

    // Another page on this host — another web task's UI, say, whose agent decides what it runs
    // — makes the browser send this task's cookie too (cookies do not tell ports apart), but
    // what it opens to this task's UI is refused: the gate checks the Origin.
    let cookie = format!("terok_token_{port}={token}");
    let own = format!("Origin: http://127.0.0.1:{port}");
    let own_head = head_of(port, &cookie, &[&own, "Sec-Fetch-Site: same-origin"]).unwrap();
    assert_eq!(status_in(&own_head), Some(200), "{own_head}");
    // No page may frame the UI (a foreign page could otherwise trick clicks into it).
    let lower = own_head.to_ascii_lowercase();
    assert!(lower.contains("x-frame-options: deny"), "{own_head}");
    assert!(lower.contains("frame-ancestors 'none'"), "{own_head}");
    assert_eq!(
        status_with(port, &cookie, &["Sec-Fetch-Site: none"]),
        Some(200),
        "the address bar"
    );
    let foreign = ForeignPage::serve();
    let foreign_origin = format!("Origin: {}", foreign.origin());
    assert_eq!(status_with(port, &cookie, &[&foreign_origin]), Some(403));
    // A link, a form or a frame on another port's page carries no Origin, but the browser
    // says where it started.
    for started in ["same-site", "cross-site"] {
        let fetch_site = format!("Sec-Fetch-Site: {started}");
        assert_eq!(
            status_with(port, &cookie, &[&fetch_site]),
            Some(403),
            "started on a {started} page"
        );
    }
    let sockets = rt.block_on(browser.websocket_urls()).unwrap();
    let socket = sockets
        .iter()
        .find(|u| u.starts_with(&format!("ws://127.0.0.1:{port}/")))
        .unwrap_or_else(|| panic!("Toad's WebSocket: {sockets:?}"))
        .clone();
    foreign.set_target(&socket);
    let outcome = rt.block_on(async {
        browser.navigate(&foreign.origin()).await.unwrap();
        browser
            .wait_for(
                "['opened', 'refused'].includes(document.title) && document.title",
                Duration::from_secs(20),
            )
            .await
            .unwrap()
    });
    assert_eq!(outcome, "refused", "a foreign page reached {socket}");
    drop(browser);

    // A restart mints a new token: the old link stops working.
    run.must(&["stop", &name]);
    assert_eq!(status(port, &token), None, "nothing answers after stop");
    let out = run.must(&["start", &name]);
    let relink = printed_link(&out);
    let (same_port, new_token) = port_and_token(&relink);
    assert_eq!(same_port, port);
    assert_ne!(new_token, token);
    assert_eq!(status(port, &token), Some(403));
    assert_eq!(status(port, &new_token), Some(200));

    run.must(&["stop", &name]);
    assert_eq!(status(port, &new_token), None);
    assert!(listeners(port).is_empty(), "{:?}", listeners(port));
}
