//! Serving one container's listener with limits, so one container cannot take the vault down
//! for the others: at most so many connections at once (more are closed as soon as they are
//! accepted), a deadline for every request head — which also closes a connection left idle
//! between requests —, and a back-off when accepting fails (no busy loop when file
//! descriptors run out).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

use crate::control::PortRange;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Time a client has to send a request head (and a body the vault holds whole), and how
    /// long a connection may sit idle between requests.
    pub header_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Something connections are accepted from (a Unix or TCP listener).
pub trait Accept: Send + 'static {
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Waits for the next connection.
    fn accept(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self)
            .await
            .map(|(io, _)| io)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        let (io, _) = tokio::net::TcpListener::accept(self).await?;
        let _ = io.set_nodelay(true);
        Ok(io)
    }
}

/// Waits before the next accept after `failures` failed ones in a row: 10 ms doubling to 1 s.
pub fn accept_backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1u64 << failures.min(7))).min(Duration::from_secs(1))
}

/// What a listener answers requests with: an axum [`Router`], or a handler called directly
/// (the vault's proxy, where a router's matching and boxing would be work on every request
/// for one route).
pub trait App: Clone + Send + Sync + 'static {
    /// The response to `request`.
    fn call(&self, request: Request) -> impl Future<Output = Response> + Send + use<Self>;
}

impl App for Router {
    fn call(&self, request: Request) -> impl Future<Output = Response> + Send + use<> {
        let service = TowerToHyperService::new(self.clone());
        let answered = hyper::service::Service::call(&service, request);
        async move {
            match answered.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stop` fires.
pub async fn serve<L: Accept, A: App>(
    listener: L,
    app: A,
    limits: ListenerLimits,
    stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(stop);
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => return,
        };
        let io = match accepted {
            Ok(io) => {
                failures = 0;
                io
            }
            Err(err) => {
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(accept_backoff(failures)).await;
                failures = failures.saturating_add(1);
                continue;
            }
        };
        // Over the limit: closed at once rather than left waiting in the backlog.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(io);
            continue;
        };
        let counted = crate::memory::CONNECTIONS.opened();
        let service = holding_slot(app.clone(), ConnectionSlot(Arc::new((slot, counted))));
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades()
                .await;
        });
    }
}

/// A connection's place under [`ListenerLimits::max_connections`], in each of its requests'
/// extensions: whatever outlives the request on the connection (a WebSocket relayed after
/// the upgrade) keeps it, so upgraded connections count against the limit too.
#[derive(Clone)]
pub struct ConnectionSlot(
    #[allow(dead_code)]
    Arc<(
        tokio::sync::OwnedSemaphorePermit,
        crate::memory::OpenConnection,
    )>,
);

/// `app` as hyper serves it, each request carrying `slot`.
fn holding_slot<A: App>(
    app: A,
    slot: ConnectionSlot,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(slot.clone());
        let answered = app.call(request.map(Body::new));
        async move { Ok(answered.await) }
    })
}

/// A TCP listener on `bind`: the first free port of `ports`, or any free one. Never on every
/// address at once (`0.0.0.0`, `::`): the listener goes where the engine's containers reach it
/// and nowhere else.
pub fn bind_tcp(bind: IpAddr, ports: Option<PortRange>) -> Result<TcpListener, String> {
    // `::ffff:0.0.0.0` is every IPv4 address too.
    let one = bind.to_canonical();
    let broadcast = matches!(one, IpAddr::V4(v4) if v4.is_broadcast());
    if one.is_unspecified() || one.is_multicast() || broadcast {
        return Err(format!(
            "{bind} is not one address: a container's listener binds to the one its engine \
             reaches"
        ));
    }
    let Some(range) = ports else {
        return listen_tcp(SocketAddr::new(bind, 0))
            .map_err(|e| format!("cannot listen on {bind}: {e}"));
    };
    if range.start == 0 || range.start > range.end {
        return Err(format!(
            "the port range {}–{} is empty",
            range.start, range.end
        ));
    }
    for port in range.start..=range.end {
        match listen_tcp(SocketAddr::new(bind, port)) {
            Ok(listener) => return Ok(listener),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(err) => return Err(format!("cannot listen on {}:{port}: {err}", bind)),
        }
    }
    Err(format!(
        "no free port on {} in {}–{}",
        bind, range.start, range.end
    ))
}

/// A listening TCP socket on `addr`, which need not exist yet: a rootful engine's bridge
/// address appears when its first container starts (IP_FREEBIND), and the listener is opened
/// before the container.
fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let socket = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
        None,
    )?;
    if addr.is_ipv4() {
        sockopt::set_ip_freebind(&socket, true)?;
    } else {
        sockopt::set_ipv6_freebind(&socket, true)?;
    }
    sockopt::set_socket_reuseaddr(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, 1024)?;
    TcpListener::from_std(std::net::TcpListener::from(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_grows_to_a_second() {
        assert_eq!(accept_backoff(0), Duration::from_millis(10));
        assert_eq!(accept_backoff(3), Duration::from_millis(80));
        assert_eq!(accept_backoff(30), Duration::from_secs(1));
    }
}
