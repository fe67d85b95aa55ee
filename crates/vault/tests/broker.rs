//! The broker's request handling against a mock upstream (docs/compatibility.md#13):
//! token checks, header rules, paths and queries, bodies, redirects, streaming, WebSockets.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use terok_core::env::HostEnv;
use terok_credentials::routes::{RefreshRoute, Route, RouteTable, write_routes};
use terok_credentials::{Credential, KeyOptions, Secret};
use terok_testkit::upstream::MockUpstream;
use terok_vault::listener::ListenerLimits;
use terok_vault::{Shared, VaultConfig, VaultPaths, listener_app, open_shared};

const REAL_KEY: &str = "sk-ant-api03-REAL-upstream-key-0123456789";

struct Broker {
    /// Stops the listener when the broker is dropped.
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
    url: String,
    paths: VaultPaths,
    upstream: MockUpstream,
    client: reqwest::Client,
}

fn route(upstream: &str, header: &str, prefix: &str) -> Route {
    Route {
        upstream: upstream.to_owned(),
        auth_header: header.to_owned(),
        auth_prefix: prefix.to_owned(),
        path_upstreams: BTreeMap::new(),
        oauth_extra_headers: BTreeMap::new(),
        oauth_refresh: None,
        ..Route::default()
    }
}

fn oauth(access: &str, refresh: Option<&str>, expires_at: Option<f64>) -> Credential {
    Credential::Oauth {
        access_token: Secret::new(access),
        refresh_token: refresh.map(Secret::new),
        expires_at,
        scopes: None,
        subscription_type: None,
        rate_limit_tier: None,
        id_token: None,
        account_id: None,
    }
}

async fn broker(container: Option<&str>) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start().unwrap();
    let paths = VaultPaths {
        vault_dir: dir.path().join("vault"),
        runtime_dir: dir.path().join("run"),
        db_override: None,
    };
    let mut claude = route(&upstream.url(), "dynamic", "");
    claude
        .oauth_extra_headers
        .insert("anthropic-beta".into(), "oauth-2025-04-20".into());
    claude.oauth_refresh = Some(RefreshRoute {
        token_url: format!("{}/oauth/token", upstream.url()),
        client_id: "client-1".into(),
        scope: None,
    });
    let mut codex = route(&upstream.url(), "Authorization", "Bearer ");
    codex.path_upstreams.insert(
        "/backend-api/".into(),
        format!("{}/chatgpt", upstream.url()),
    );
    let table: RouteTable = [
        ("claude".to_owned(), claude),
        ("codex".to_owned(), codex),
        (
            "gh".to_owned(),
            route(&upstream.url(), "Authorization", "token "),
        ),
        (
            "glab".to_owned(),
            route(&upstream.url(), "PRIVATE-TOKEN", ""),
        ),
        (
            "empty".to_owned(),
            route(&upstream.url(), "Authorization", "Bearer "),
        ),
    ]
    .into();
    write_routes(&paths.routes(), &table).unwrap();
    let config = VaultConfig {
        paths: paths.clone(),
        key: KeyOptions {
            vault_dir: paths.vault_dir.clone(),
            env: HostEnv::from_vars::<&str, &str>([], 1000),
            passphrase_command: None,
            use_keyring: false,
        },
        live_containers: None,
        refresh_interval: Duration::from_secs(300),
        sweep_interval: Duration::from_secs(60),
        limits: terok_vault::listener::ListenerLimits::default(),
    };
    let shared = open_shared(&config).unwrap();
    shared.with_db(|db| {
        db.store_credential("default", "claude", &Credential::api_key(REAL_KEY))
            .unwrap();
        db.store_credential(
            "default",
            "codex",
            &oauth("codex-real-access", Some("codex-refresh"), None),
        )
        .unwrap();
        db.store_credential(
            "default",
            "gh",
            &Credential::OauthToken {
                token: Secret::new("gho_real"),
                host: None,
            },
        )
        .unwrap();
        db.store_credential(
            "default",
            "glab",
            &Credential::Pat {
                token: Secret::new("glpat-real"),
                host: None,
            },
        )
        .unwrap();
        db.store_credential("default", "empty", &Credential::api_key(""))
            .unwrap();
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // The daemon's own serving path: the listener's limits and the proxy handler.
    let app = listener_app(shared.clone(), container);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(terok_vault::listener::serve(
        listener,
        app,
        ListenerLimits::default(),
        stopped,
    ));
    Broker {
        _stop: stop,
        _dir: dir,
        shared,
        url,
        paths,
        upstream,
        client: reqwest::Client::new(),
    }
}

impl Broker {
    fn mint(&self, container: &str, provider: &str) -> String {
        self.shared
            .with_db(|db| db.mint_token("standalone", container, "default", provider))
            .unwrap()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.paths.audit_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn health_needs_no_token_and_missing_or_unknown_tokens_get_401() {
    let b = broker(Some("c1")).await;
    assert_eq!(b.get("/-/health", &[]).await.status(), 200);
    let r = b.get("/v1/messages", &[]).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Missing authentication"));
    let r = b
        .get(
            "/v1/messages",
            &[("x-api-key", "terok-p-00000000000000000000000000000000")],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Invalid token"));
    assert!(
        b.upstream.requests().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn a_token_of_another_container_is_rejected_on_this_listener() {
    let b = broker(Some("c1")).await;
    let other = b.mint("c2", "claude");
    assert_eq!(
        b.get("/v1/messages", &[("x-api-key", &other)])
            .await
            .status(),
        401
    );
    let mine = b.mint("c1", "claude");
    assert_eq!(
        b.get("/v1/messages", &[("x-api-key", &mine)])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn api_keys_replace_the_phantom_and_the_upstream_never_sees_it() {
    let b = broker(Some("c1")).await;
    let token = b.mint("c1", "claude");
    let r = b
        .client
        .post(format!("{}/v1/messages?beta=true", b.url))
        .header("x-api-key", &token)
        .header("anthropic-version", "2023-06-01")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .body("{\"model\":\"m\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = &b.upstream.requests()[0];
    assert_eq!(
        seen.path_and_query, "/v1/messages?beta=true",
        "raw path and query kept"
    );
    assert_eq!(
        seen.header("x-api-key"),
        Some(REAL_KEY),
        "dynamic header for an API key is x-api-key"
    );
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        seen.header("x-drop-me"),
        None,
        "Connection-listed headers are dropped"
    );
    assert!(!seen.mentions(&token), "the phantom reached the upstream");
    assert_eq!(seen.body, b"{\"model\":\"m\"}");
}

#[tokio::test]
async fn oauth_uses_bearer_with_deduplicated_extra_headers() {
    let b = broker(None).await;
    b.shared.with_db(|db| {
        db.store_credential(
            "default",
            "claude",
            &oauth("claude-access", Some("r"), None),
        )
        .unwrap()
    });
    let token = b.mint("c1", "claude");
    b.get(
        "/v1/messages",
        &[
            ("x-api-key", &token),
            ("anthropic-beta", "tools-2024, oauth-2025-04-20"),
        ],
    )
    .await;
    let seen = &b.upstream.requests()[0];
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer claude-access"),
        "an OAuth phantom sent as x-api-key goes up as Bearer"
    );
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("tools-2024,oauth-2025-04-20")
    );
    // Codex OAuth gets no anthropic-beta.
    b.upstream.clear();
    let codex = b.mint("c1", "codex");
    b.get(
        "/v1/responses",
        &[("authorization", &format!("Bearer {codex}"))],
    )
    .await;
    let seen = &b.upstream.requests()[0];
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer codex-real-access")
    );
    assert_eq!(seen.header("anthropic-beta"), None);
}

#[tokio::test]
async fn token_prefixes_pat_headers_and_path_upstreams() {
    let b = broker(None).await;
    let gh = b.mint("c1", "gh");
    b.get("/user", &[("authorization", &format!("token {gh}"))])
        .await;
    assert_eq!(
        b.upstream.requests()[0].header("authorization"),
        Some("token gho_real"),
        "gh tokens use the route's `token ` prefix"
    );
    b.upstream.clear();
    let glab = b.mint("c1", "glab");
    b.get(
        "/api/v4/projects/group%2Fproject?x=1",
        &[("private-token", &glab)],
    )
    .await;
    let seen = &b.upstream.requests()[0];
    assert_eq!(seen.header("private-token"), Some("glpat-real"));
    assert_eq!(
        seen.path_and_query, "/api/v4/projects/group%2Fproject?x=1",
        "percent-encoding kept"
    );
    b.upstream.clear();
    let codex = b.mint("c1", "codex");
    b.get(
        "/backend-api/codex/responses",
        &[("authorization", &format!("Bearer {codex}"))],
    )
    .await;
    b.get(
        "/backend-apix",
        &[("authorization", &format!("Bearer {codex}"))],
    )
    .await;
    let paths: Vec<String> = b
        .upstream
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    assert_eq!(
        paths,
        ["/chatgpt/backend-api/codex/responses", "/backend-apix"]
    );
}

#[tokio::test]
async fn missing_empty_credentials_and_unknown_routes() {
    let b = broker(None).await;
    let none = b
        .shared
        .with_db(|db| db.mint_token("standalone", "c1", "default", "vibe"))
        .unwrap();
    let r = b.get("/x", &[("x-api-key", &none)]).await;
    assert_eq!(r.status(), 404, "no route for vibe");
    b.shared
        .with_db(|db| db.delete_credential("default", "gh"))
        .unwrap();
    let gh = b.mint("c1", "gh");
    let r = b
        .get("/x", &[("authorization", &format!("token {gh}"))])
        .await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("terok-executor auth gh"));
    let empty = b.mint("c1", "empty");
    assert_eq!(b.get("/x", &[("x-api-key", &empty)]).await.status(), 502);
    assert!(b.upstream.requests().is_empty());
}

#[tokio::test]
async fn revoked_tokens_are_rejected() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    assert_eq!(b.get("/x", &[("x-api-key", &token)]).await.status(), 200);
    // Revoked through another connection, as `terok-executor rm` would.
    let other = terok_credentials::CredentialDb::open(
        &b.paths.db(),
        terok_credentials::resolve_key(
            &KeyOptions {
                vault_dir: b.paths.vault_dir.clone(),
                env: HostEnv::from_vars::<&str, &str>([], 1000),
                passphrase_command: None,
                use_keyring: false,
            },
            &b.paths.db(),
        )
        .unwrap()
        .0,
        "test",
    )
    .unwrap();
    other.revoke_subject("c1").unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(b.get("/x", &[("x-api-key", &token)]).await.status(), 401);
}

#[tokio::test]
async fn bodies_over_a_mebibyte_and_undecoded_responses_pass_through() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    let big = vec![b'a'; 3 * 1024 * 1024];
    let r = b
        .client
        .post(format!("{}/upload", b.url))
        .header("x-api-key", &token)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.upstream.requests()[0].body.len(), big.len());
    let r = b.get("/gzip", &[("x-api-key", &token)]).await;
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &[0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef]
    );
    assert!(
        b.upstream.requests()[1].header("accept-encoding").is_none(),
        "the vault adds no Accept-Encoding"
    );
}

#[tokio::test]
async fn a_head_request_learns_the_size_the_upstream_gave() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    let r = b
        .client
        .head(format!("{}/gzip", b.url))
        .header("x-api-key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "8", "{:?}", r.headers());
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert!(r.bytes().await.unwrap().is_empty());
}

/// A body too large to hold is streamed even on a request the vault would otherwise read
/// whole (one with an idempotency key).
#[tokio::test]
async fn a_large_body_of_an_idempotent_request_streams_through() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    let big = vec![b'b'; 3 * 1024 * 1024];
    let r = b
        .client
        .post(format!("{}/upload", b.url))
        .header("x-api-key", &token)
        .header("idempotency-key", "k1")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.upstream.requests()[0].body, big);
}

#[tokio::test]
async fn idempotent_redirects_are_followed_without_the_credential_and_posts_are_relayed() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    let r = b.get("/redirect?to=/json", &[("x-api-key", &token)]).await;
    assert_eq!(r.status(), 200);
    let seen = b.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("x-api-key"), Some(REAL_KEY));
    assert_eq!(seen[1].path_and_query, "/json");
    assert_eq!(
        seen[1].header("x-api-key"),
        None,
        "the credential does not follow a redirect"
    );
    b.upstream.clear();
    let r = b
        .client
        .post(format!("{}/redirect?to=/json&status=307", b.url))
        .header("x-api-key", &token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307, "non-idempotent redirects are relayed");
    assert_eq!(b.upstream.requests().len(), 1);
}

#[tokio::test]
async fn server_sent_events_stream_unbuffered() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    let started = Instant::now();
    let r = b
        .get("/sse?events=5&delay_ms=200", &[("x-api-key", &token)])
        .await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("\"n\":0"));
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let total = started.elapsed();
    assert!(String::from_utf8_lossy(&rest).contains("\"n\":4"));
    assert!(
        first_at < Duration::from_millis(400),
        "the first event waited for the stream: {first_at:?}"
    );
    assert!(total >= Duration::from_millis(800), "{total:?}");
}

#[tokio::test]
async fn an_upstream_refusing_the_credential_is_recorded_and_the_vaults_own_401_is_not() {
    let b = broker(Some("c1")).await;
    // The vault's own refusals (no token, a wrong one) never reached the upstream.
    assert_eq!(b.get("/v1/messages", &[]).await.status(), 401);
    let wrong = [("x-api-key", "terok-p-00000000000000000000000000000000")];
    assert_eq!(b.get("/v1/messages", &wrong).await.status(), 401);
    assert!(b.shared.rejections.current(None).is_empty());

    let token = b.mint("c1", "claude");
    let auth = [("x-api-key", token.as_str())];
    for _ in 0..2 {
        let r = b.get("/status/401", &auth).await;
        assert_eq!(r.status(), 401);
        assert!(
            r.text().await.unwrap().contains("scripted 401"),
            "the body reaches the client"
        );
    }
    let current = b.shared.rejections.current(Some("c1"));
    assert_eq!(current.len(), 1, "{current:?}");
    assert_eq!(
        (
            current[0].provider.as_str(),
            current[0].status,
            current[0].count
        ),
        ("claude", 401, 2)
    );
    // A request that gets through ends the run; the last refusal stays for the status.
    assert_eq!(b.get("/v1/messages", &auth).await.status(), 200);
    assert!(b.shared.rejections.current(None).is_empty());
    assert_eq!(b.shared.rejections.last_by_provider()[0].count, 2);
    assert!(
        !serde_json::to_string(&b.shared.rejections.last_by_provider())
            .unwrap()
            .contains(REAL_KEY)
    );
}

/// Sends one raw HTTP/1.1 request over TCP to the broker and returns the status line's code.
async fn raw_status(url: &str, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn trace_and_connect_are_refused_without_calling_the_upstream() {
    let b = broker(Some("c1")).await;
    let token = b.mint("c1", "claude");
    let trace = b
        .client
        .request(reqwest::Method::TRACE, format!("{}/v1/messages", b.url))
        .header("x-api-key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(trace.status(), 405);
    let connect = format!(
        "CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\nx-api-key: {token}\r\n\r\n"
    );
    assert_eq!(raw_status(&b.url, &connect).await, 405);
    assert!(
        b.upstream.requests().is_empty(),
        "nothing reached the upstream"
    );
    assert!(
        b.audit()
            .iter()
            .filter(|e| e["outcome"] == "method_not_allowed")
            .count()
            >= 2
    );
}

#[tokio::test]
async fn credential_minting_endpoints_are_refused_without_calling_the_upstream() {
    let b = broker(Some("c1")).await;
    let mut table = b.shared.routes();
    table.get_mut("glab").unwrap().deny = vec![
        "* /api/v4/personal_access_tokens/**".into(),
        "POST /api/v4/user/keys".into(),
    ];
    b.shared.set_routes(table);
    let token = b.mint("c1", "glab");
    for (method, path) in [
        ("POST", "/api/v4/personal_access_tokens/self/rotate"),
        ("POST", "/api/v4/personal%5Faccess%5Ftokens/self/rotate"),
        ("DELETE", "/api/v4/personal_access_tokens/self"),
        ("POST", "/api/v4/user/keys"),
    ] {
        let r = b
            .client
            .request(method.parse().unwrap(), format!("{}{path}", b.url))
            .header("private-token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
    }
    // A POST that claims to be another method is judged as the POST it is, and the claim is
    // not passed on.
    let r = b
        .client
        .post(format!("{}/api/v4/projects", b.url))
        .header("private-token", &token)
        .header("x-http-method-override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = b.upstream.requests();
    assert_eq!(seen.len(), 1, "only the allowed request got through");
    assert_eq!(seen[0].path_and_query, "/api/v4/projects");
    assert_eq!(seen[0].header("x-http-method-override"), None);
    assert_eq!(seen[0].header("private-token"), Some("glpat-real"));
}

#[tokio::test]
async fn a_redirect_off_the_route_is_relayed_and_the_other_host_sees_nothing() {
    let b = broker(Some("c1")).await;
    let other = MockUpstream::start().unwrap();
    let mut table = b.shared.routes();
    // The route's own header under an unusual name must not travel either.
    let claude = table.get_mut("claude").unwrap();
    claude.auth_header = "X-Goog-Api-Key".into();
    claude.auth_prefix = String::new();
    b.shared.set_routes(table);
    let token = b.mint("c1", "claude");
    let target = format!("{}/json", other.url());
    let r = b
        .get(&format!("/redirect?to={target}"), &[("x-api-key", &token)])
        .await;
    assert_eq!(r.status(), 302, "relayed, not followed");
    assert!(other.requests().is_empty(), "the other host got nothing");
    assert_eq!(b.upstream.requests().len(), 1);
    assert_eq!(
        b.upstream.requests()[0].header("x-goog-api-key"),
        Some(REAL_KEY)
    );
    // Within the upstream's own origin it is followed, without the route's header.
    b.upstream.clear();
    let r = b.get("/redirect?to=/json", &[("x-api-key", &token)]).await;
    assert_eq!(r.status(), 200);
    let seen = b.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("x-goog-api-key"), None);
}

#[tokio::test]
async fn upstream_errors_are_relayed_and_unreachable_upstreams_are_502() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    assert_eq!(
        b.get("/status/429", &[("x-api-key", &token)])
            .await
            .status(),
        429
    );
    let mut table = b.shared.routes();
    table.get_mut("claude").unwrap().upstream = "http://127.0.0.1:1".into();
    b.shared.set_routes(table);
    assert_eq!(b.get("/x", &[("x-api-key", &token)]).await.status(), 502);
}

/// An upstream whose port does not speak TLS (as one with an untrusted certificate): the
/// client gets a JSON 502 that says so, the audit log tells it apart from an unreachable
/// upstream, and the other routes keep working.
#[tokio::test]
async fn a_failed_tls_handshake_is_a_502_audited_apart_from_an_unreachable_upstream() {
    let b = broker(None).await;
    let claude = b.mint("c1", "claude");
    let gh = b.mint("c1", "gh");
    let mut table = b.shared.routes();
    table.get_mut("claude").unwrap().upstream = format!("https://127.0.0.1:{}", b.upstream.port());
    table.get_mut("gh").unwrap().upstream = "http://127.0.0.1:1".into();
    b.shared.set_routes(table);

    let r = b.get("/v1/messages", &[("x-api-key", &claude)]).await;
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["message"], "Upstream TLS handshake failed");
    assert_eq!(
        b.get("/user", &[("authorization", &format!("token {gh}"))])
            .await
            .status(),
        502
    );
    let glab = b.mint("c1", "glab");
    assert_eq!(b.get("/x", &[("private-token", &glab)]).await.status(), 200);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let outcomes: Vec<_> = b.audit().iter().map(|l| l["outcome"].clone()).collect();
    assert_eq!(
        outcomes,
        ["upstream_tls_failed", "upstream_error", "ok"],
        "{outcomes:?}"
    );
    assert!(b.upstream.requests().iter().all(|r| !r.mentions(REAL_KEY)));
}

/// The upstream dies after two events of a stream: the client's response ends there (the
/// chunked body is cut short, which is how HTTP says "incomplete"), the audit log blames the
/// upstream, not the client, and the vault goes on serving.
#[tokio::test]
async fn an_upstream_that_dies_mid_stream_cuts_the_clients_stream_and_is_audited_as_such() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    let r = b
        .get(
            "/sse?events=10&delay_ms=20&die_after=2",
            &[("x-api-key", &token)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut received = String::new();
    let mut cut = false;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => received.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => {
                    cut = true;
                    break;
                }
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end within 5 s");
    assert!(cut, "a cut stream must not look complete: {received}");
    assert!(received.contains("\"n\":1"), "{received}");
    assert!(!received.contains("\"n\":2"), "{received}");

    assert_eq!(b.get("/x", &[("x-api-key", &token)]).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outcomes: Vec<_> = b.audit().iter().map(|l| l["outcome"].clone()).collect();
    assert_eq!(outcomes, ["upstream_disconnected", "ok"], "{outcomes:?}");
}

#[tokio::test]
async fn websockets_get_the_real_credential_and_no_extensions() {
    let b = broker(None).await;
    let token = b.mint("c1", "codex");
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/ws", b.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.headers_mut().insert(
        "sec-websocket-extensions",
        "permessage-deflate".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    let seen: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(seen["authorization"], "Bearer codex-real-access");
    assert!(seen.get("sec-websocket-extensions").is_none(), "{seen}");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "ping me".into(),
    ))
    .await
    .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.to_text().unwrap(), "ping me");
    // An upstream that declines the upgrade (426: use HTTP) is answered with its status, not
    // with an upgrade that closes at once: Codex falls back to HTTP on that 426.
    let connect = |path: &str| {
        let mut request = format!("{}{path}", b.url.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match connect("/status/426").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 426)
        }
        other => panic!("expected the upstream's 426, got {other:?}"),
    }
    // An unreachable upstream is a 502 before any upgrade.
    let mut table = b.shared.routes();
    table.get_mut("codex").unwrap().upstream = "http://127.0.0.1:1".into();
    b.shared.set_routes(table);
    match connect("/ws").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 502)
        }
        other => panic!("expected a 502, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unauthenticated_request_logs_a_truncated_path() {
    let b = broker(Some("c1")).await;
    let long = format!("/{}", "x".repeat(4000));
    b.get(&long, &[]).await.text().await.unwrap();
    b.get(&long, &[("x-api-key", "not-a-token")])
        .await
        .text()
        .await
        .unwrap();
    let method = "X".repeat(4000);
    raw_status(
        &b.url,
        &format!("{method} / HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let lines = b.audit();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines[..2] {
        let path = line["path"].as_str().unwrap();
        assert_eq!(path.chars().count(), 65, "{path}");
        assert!(path.ends_with('…'));
    }
    let logged = lines[2]["method"].as_str().unwrap();
    assert_eq!(logged.chars().count(), 17, "{logged}");
}

#[tokio::test]
async fn every_request_is_audited_once_without_tokens_keys_or_queries() {
    let b = broker(Some("c1")).await;
    let token = b.mint("c1", "claude");
    b.get("/v1/messages?key=query-secret", &[("x-api-key", &token)])
        .await
        .text()
        .await
        .unwrap();
    b.get("/v1/messages", &[]).await.text().await.unwrap();
    b.get("/sse?events=2&delay_ms=10", &[("x-api-key", &token)])
        .await
        .text()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let lines = b.audit();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["subject"], "c1");
    assert_eq!(lines[0]["provider"], "claude");
    assert_eq!(lines[0]["path"], "/v1/messages");
    assert_eq!(lines[1]["outcome"], "missing_token");
    assert_eq!(lines[1]["status"], 401);
    let text = std::fs::read_to_string(b.paths.audit_log()).unwrap();
    assert!(!text.contains(&token) && !text.contains(REAL_KEY) && !text.contains("query-secret"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(b.paths.audit_log())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The DB and audit log never hold the real key in the clear.
    for entry in std::fs::read_dir(&b.paths.vault_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(REAL_KEY.len())
                    .any(|w| w == REAL_KEY.as_bytes()),
                "{}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_audited_as_such() {
    let b = broker(None).await;
    let token = b.mint("c1", "claude");
    let r = b
        .get("/sse?events=50&delay_ms=100", &[("x-api-key", &token)])
        .await;
    let mut stream = r.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lines = b.audit();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "client_disconnected");
}

#[tokio::test]
async fn oauth_refresh_renews_due_tokens_keeps_the_old_refresh_token_and_hides_failures() {
    let b = broker(None).await;
    let claude_refresh = RefreshRoute {
        token_url: format!("{}/oauth/token", b.upstream.url()),
        client_id: "client-1".into(),
        scope: None,
    };
    // Valid for another hour: not due.
    b.shared.with_db(|db| {
        db.store_credential(
            "default",
            "claude",
            &oauth(
                "a0",
                Some("r0"),
                Some(terok_vault::audit::now_ts() + 3600.0),
            ),
        )
        .unwrap()
    });
    b.shared.invalidate();
    assert_eq!(
        terok_vault::refresh::refresh_one(&b.shared, "claude", &claude_refresh, false).await,
        terok_vault::refresh::RefreshResult::NotDue
    );
    // Expired: refreshed; the endpoint does not rotate the refresh token, so the old one stays.
    b.shared.with_db(|db| {
        db.store_credential("default", "claude", &oauth("a0", Some("r0"), Some(1.0)))
            .unwrap()
    });
    b.shared.invalidate();
    assert_eq!(
        terok_vault::refresh::refresh_one(&b.shared, "claude", &claude_refresh, false).await,
        terok_vault::refresh::RefreshResult::Refreshed
    );
    match b
        .shared
        .with_db(|db| db.load_credential("default", "claude"))
        .unwrap()
        .unwrap()
    {
        Credential::Oauth {
            access_token,
            refresh_token,
            expires_at,
            ..
        } => {
            assert_eq!(access_token.expose(), "refreshed-access");
            assert_eq!(refresh_token.unwrap().expose(), "r0");
            assert!(expires_at.unwrap() > terok_vault::audit::now_ts() + 3000.0);
        }
        other => panic!("{other:?}"),
    }
    let sent = b
        .upstream
        .requests()
        .into_iter()
        .find(|r| r.path_and_query == "/oauth/token")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["grant_type"], "refresh_token");
    assert_eq!(body["refresh_token"], "r0");
    // A refusal reports the status only, never the body.
    b.shared.with_db(|db| {
        db.store_credential("default", "claude", &oauth("a0", Some("r0"), Some(1.0)))
            .unwrap()
    });
    b.shared.invalidate();
    b.upstream.set_token_answer(
        400,
        serde_json::json!({"error": "invalid_grant", "echo": "r0-secret"}),
    );
    let result =
        terok_vault::refresh::refresh_one(&b.shared, "claude", &claude_refresh, false).await;
    assert_eq!(
        result,
        terok_vault::refresh::RefreshResult::Failed("HTTP 400".into())
    );
    // While another process holds the lock, the refresh is skipped.
    let lock = std::fs::File::create(terok_vault::refresh::lock_path(
        &b.paths.locks_dir(),
        "default",
        "claude",
    ))
    .unwrap();
    lock.lock().unwrap();
    let result =
        terok_vault::refresh::refresh_one(&b.shared, "claude", &claude_refresh, true).await;
    assert_eq!(result, terok_vault::refresh::RefreshResult::Busy);
}
