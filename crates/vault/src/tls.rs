//! The upstream HTTP client: hyper's pooled client over rustls with the ring provider (aws-lc-rs
//! is a large C build) and the system's CA store through rustls-platform-verifier, so extra CAs
//! installed on the host — corporate proxies, these build machines — are trusted.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_platform_verifier::ConfigVerifierExt;

/// A request body on its way upstream: read whole (a request the vault may retry or redirect)
/// or streamed as it arrives, within a size limit.
pub type UpstreamBody =
    http_body_util::Either<Full<Bytes>, http_body_util::Limited<axum::body::Body>>;

/// The client requests go upstream with.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// Installs ring as the process's rustls provider; later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS settings for upstreams: the platform's trust store.
pub fn client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    install_crypto_provider();
    rustls::ClientConfig::with_platform_verifier()
}

/// The pooled upstream client: HTTP/1.1 and HTTP/2 (by ALPN), 10 s to connect, up to 32 idle
/// connections per host kept 90 s — as many as 32 requests at once to one HTTP/1.1 upstream
/// keep busy; each holds memory (docs/vault.md, "Cost per request"). It
/// never follows redirects or decompresses: the proxy relays bytes.
pub fn upstream_client() -> Result<UpstreamClient, rustls::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config()?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(32)
        .build(https))
}

/// The TLS connector for `wss://` upstreams (same trust as the HTTP client).
pub fn websocket_connector() -> Option<tokio_tungstenite::Connector> {
    let config = client_config().ok()?;
    Some(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}
