//! TLS to upstreams: rustls with the ring provider (aws-lc-rs is a large C build) and the
//! system's CA store through rustls-platform-verifier, so extra CAs installed on the host —
//! corporate proxies, these build machines — are trusted.

use std::sync::Arc;
use std::time::Duration;

/// Installs ring as the process's rustls provider; later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The pooled HTTP client for upstreams: no automatic redirects (the proxy decides), no
/// decompression (bytes are relayed as they come), 10 s to connect, 20 minutes of idle reading
/// (long agent turns stream slowly).
pub fn upstream_client() -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(1200))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
}

/// The TLS connector for `wss://` upstreams (same trust as the HTTP client).
pub fn websocket_connector() -> Option<tokio_tungstenite::Connector> {
    install_crypto_provider();
    use rustls_platform_verifier::ConfigVerifierExt;
    let config = rustls::ClientConfig::with_platform_verifier().ok()?;
    Some(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}
