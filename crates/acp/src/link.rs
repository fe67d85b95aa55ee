//! A connection to one agent's ACP server: a writer task feeding its stdin, a pump reading its
//! stdout, the proxy's own requests answered through waiters, and everything else handed on
//! (rewritten for the client). Closing it ends the server through its [`ServerProcess`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::AgentError;
use crate::frame::{self, Frame};

/// A boxed, sendable future (the launcher traits are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The first id of the requests the proxy sends on its own (the handshake, probes); far from
/// the small numbers editors use, so answers are told apart by id alone.
pub const FIRST_OWN_ID: i64 = 1_000_000_001;

/// A started ACP server: its stdio, and the handle that ends it.
pub struct Spawned {
    /// Its standard input.
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    /// Its standard output.
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// What ends it.
    pub process: Box<dyn ServerProcess>,
}

/// The process behind a [`Spawned`] server.
pub trait ServerProcess: Send + Sync {
    /// Ends the server once its stdin is closed: waits a little for it to leave on its own,
    /// then makes sure neither it nor anything it started is left.
    fn end(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Starts agents' ACP servers (in a container: [`crate::ContainerLauncher`]).
pub trait Launcher: Send + Sync + 'static {
    /// Starts `agent`'s ACP server.
    fn spawn(&self, agent: &str) -> Result<Spawned, AgentError>;

    /// Which of `agents` have an ACP server; `None` when that cannot be found out (then all of
    /// them are tried).
    fn servable<'a>(&'a self, agents: &'a [String]) -> BoxFuture<'a, Option<Vec<String>>>;
}

/// What the pump does with a frame that is not an answer to the link's own requests.
pub type Forward = Box<dyn FnMut(Frame) -> Option<Value> + Send>;

/// How many frames a link with no client holds for the one that comes (an idle session's
/// notifications: its commands, its usage); later ones are dropped.
const HELD_LIMIT: usize = 64;

type Waiters = Arc<Mutex<HashMap<i64, oneshot::Sender<Frame>>>>;

/// Where the pump sends the frames that are not answers to the link's own requests: through
/// `forward` to `client` once attached, held until then.
#[derive(Default)]
struct Route {
    forward: Option<Forward>,
    client: Option<mpsc::Sender<Value>>,
    held: Vec<Frame>,
}

type SharedRoute = Arc<tokio::sync::Mutex<Route>>;

/// A live connection to one agent's ACP server.
pub struct AgentLink {
    agent: String,
    outgoing: Option<mpsc::Sender<Value>>,
    waiters: Waiters,
    next_id: AtomicI64,
    ended: watch::Receiver<bool>,
    writer: Option<JoinHandle<()>>,
    pump: Option<JoinHandle<()>>,
    process: Option<Box<dyn ServerProcess>>,
    route: SharedRoute,
}

impl AgentLink {
    /// Starts `agent`'s server through `launcher`. Until [`AgentLink::attach`], frames it
    /// sends that do not answer the link's own requests are held (the first
    /// [`HELD_LIMIT`]).
    pub fn start(launcher: &dyn Launcher, agent: &str) -> Result<Self, AgentError> {
        let spawned = launcher.spawn(agent)?;
        let (outgoing, to_server) = mpsc::channel(64);
        let waiters: Waiters = Arc::default();
        let route = SharedRoute::default();
        let (ended_tx, ended) = watch::channel(false);
        let writer = tokio::spawn(write_frames(spawned.stdin, to_server));
        let pump = tokio::spawn(pump(
            spawned.stdout,
            Arc::clone(&waiters),
            Arc::clone(&route),
            ended_tx,
        ));
        Ok(Self {
            agent: agent.to_owned(),
            outgoing: Some(outgoing),
            waiters,
            next_id: AtomicI64::new(FIRST_OWN_ID),
            ended,
            writer: Some(writer),
            pump: Some(pump),
            process: Some(spawned.process),
            route,
        })
    }

    /// From now on, frames that are not answers to the link's own requests go through
    /// `forward` to `client`, the held ones first, in order.
    pub async fn attach(&self, mut forward: Forward, client: mpsc::Sender<Value>) {
        let mut route = self.route.lock().await;
        for frame in std::mem::take(&mut route.held) {
            if let Some(out) = forward(frame) {
                let _ = client.send(out).await;
            }
        }
        route.forward = Some(forward);
        route.client = Some(client);
    }

    /// Drops the frames held for a client (they belong to a session no client will have).
    pub async fn discard_held(&self) {
        self.route.lock().await.held.clear();
    }

    /// Whether the server has closed its output.
    pub fn has_ended(&self) -> bool {
        *self.ended.borrow()
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Sends `method` with `params` and waits up to `limit` for its result.
    pub async fn request(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, AgentError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        let ended = || AgentError::Ended {
            agent: self.agent.clone(),
            method: method.to_owned(),
        };
        if *self.ended.borrow() || !self.send(frame::request(id, method, params)).await {
            lock(&self.waiters).remove(&id);
            return Err(ended());
        }
        let answer = match tokio::time::timeout(limit, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(ended()),
            Err(_) => {
                lock(&self.waiters).remove(&id);
                return Err(AgentError::Timeout {
                    agent: self.agent.clone(),
                    method: method.to_owned(),
                    secs: limit.as_secs(),
                });
            }
        };
        if let Some(error) = answer.get("error") {
            return Err(AgentError::Refused {
                agent: self.agent.clone(),
                method: method.to_owned(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned(),
            });
        }
        answer.get("result").cloned().ok_or(AgentError::Malformed {
            agent: self.agent.clone(),
            method: method.to_owned(),
            missing: "a result".to_owned(),
        })
    }

    /// Sends `frame` to the server; `false` when it is gone.
    pub async fn send(&self, frame: Value) -> bool {
        match &self.outgoing {
            Some(outgoing) => outgoing.send(frame).await.is_ok(),
            None => false,
        }
    }

    /// Resolves when the server has closed its output.
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.ended.clone()
    }

    /// Closes the server's stdin, stops reading it, and ends its process.
    pub async fn close(mut self) {
        self.outgoing = None;
        if let Some(writer) = self.writer.take() {
            // Closing stdin is the polite way to end an ACP server; a writer blocked on a full
            // pipe must not hold the teardown up.
            let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        }
        if let Some(process) = self.process.take() {
            process.end().await;
        }
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
    }
}

impl Drop for AgentLink {
    fn drop(&mut self) {
        // A link dropped without `close` (a task cancelled) still ends its server.
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
        if let Some(process) = self.process.take() {
            tokio::spawn(process.end());
        }
    }
}

fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, HashMap<i64, oneshot::Sender<Frame>>> {
    waiters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes each frame as one line; returns (closing stdin) when the link lets go.
async fn write_frames(
    mut stdin: Box<dyn AsyncWrite + Send + Unpin>,
    mut frames: mpsc::Receiver<Value>,
) {
    while let Some(frame) = frames.recv().await {
        let mut line = frame.to_string();
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Reads the server's frames until it closes its output.
async fn pump(
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    waiters: Waiters,
    route: SharedRoute,
    ended: watch::Sender<bool>,
) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(frame) = frame::parse(&line) else {
            tracing::debug!(line = %line, "acp: skipped a line that is not a JSON-RPC frame");
            continue;
        };
        tracing::trace!(frame = %line, "acp: agent → proxy");
        if let Some(frame) = answer_own_request(&waiters, frame) {
            route_frame(&route, frame).await;
        }
    }
    lock(&waiters).clear();
    let _ = ended.send(true);
}

/// Sends `frame` on through the route, or holds it while there is no client.
async fn route_frame(route: &SharedRoute, frame: Frame) {
    let mut route = route.lock().await;
    let Route {
        forward,
        client,
        held,
    } = &mut *route;
    match (forward, client) {
        (Some(forward), Some(client)) => {
            if let Some(out) = forward(frame) {
                // A client that left drops its frames; the pump keeps reading so the server
                // never blocks on a full pipe before its teardown.
                let _ = client.send(out).await;
            }
        }
        _ if held.len() < HELD_LIMIT => held.push(frame),
        _ => tracing::debug!("acp: dropped a frame no client is attached for"),
    }
}

/// Hands an answer to one of the link's own requests to its waiter; any other frame is
/// returned.
fn answer_own_request(waiters: &Waiters, frame: Frame) -> Option<Frame> {
    if frame::method(&frame).is_some() {
        return Some(frame);
    }
    let Some(id) = frame::id(&frame).and_then(Value::as_i64) else {
        return Some(frame);
    };
    match lock(waiters).remove(&id) {
        Some(waiter) => {
            let _ = waiter.send(frame);
            None
        }
        None => Some(frame),
    }
}
