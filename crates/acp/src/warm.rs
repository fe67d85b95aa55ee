//! The warm server: one agent's ACP server kept started, initialized and with a session open
//! ahead of the next client, so binding a session costs only its model choice. A proxy keeps
//! at most one, for the agent its clients chose last (at first, the first agent probed); a
//! session that takes it starts the next one in the background, and the proxy ends it when it
//! stops.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::probe::AgentSession;

/// How long ending the proxy waits for a warm server still starting before it gives up on it
/// (dropping it ends its process all the same).
const START_WAIT: Duration = Duration::from_secs(20);

/// The one server a proxy keeps warm, or the one it is starting.
#[derive(Default)]
pub struct WarmSlot {
    kept: Mutex<Option<Kept>>,
}

struct Kept {
    agent: String,
    ready: JoinHandle<Option<AgentSession>>,
}

impl WarmSlot {
    /// Keeps `session` when no server is kept yet; ends it otherwise.
    pub async fn offer(&self, agent: &str, session: AgentSession) {
        let mut kept = self.kept.lock().await;
        if kept.is_some() {
            drop(kept);
            session.link.close().await;
            return;
        }
        *kept = Some(Kept {
            agent: agent.to_owned(),
            ready: tokio::spawn(async move { Some(session) }),
        });
    }

    /// The server kept for `agent` (waiting for one still starting), if it is alive.
    pub async fn take(&self, agent: &str) -> Option<AgentSession> {
        let ready = {
            let mut kept = self.kept.lock().await;
            match kept.take() {
                Some(slot) if slot.agent == agent => slot.ready,
                other => {
                    *kept = other;
                    return None;
                }
            }
        };
        match ready.await {
            Ok(Some(session)) if !session.link.has_ended() => Some(session),
            Ok(Some(session)) => {
                session.link.close().await;
                None
            }
            _ => None,
        }
    }

    /// Starts a server for `agent` with `start` and keeps it, ending one kept for another
    /// agent.
    pub async fn refill(
        &self,
        agent: &str,
        start: impl Future<Output = Option<AgentSession>> + Send + 'static,
    ) {
        let replaced = self.kept.lock().await.replace(Kept {
            agent: agent.to_owned(),
            ready: tokio::spawn(start),
        });
        if let Some(replaced) = replaced {
            tokio::spawn(end(replaced));
        }
    }

    /// Ends the kept server (the proxy is stopping).
    pub async fn clear(&self) {
        let kept = self.kept.lock().await.take();
        if let Some(kept) = kept {
            end(kept).await;
        }
    }
}

async fn end(kept: Kept) {
    let abort = kept.ready.abort_handle();
    match tokio::time::timeout(START_WAIT, kept.ready).await {
        Ok(Ok(Some(session))) => session.link.close().await,
        Ok(_) => {}
        Err(_) => abort.abort(),
    }
}
