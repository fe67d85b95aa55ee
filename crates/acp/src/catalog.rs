//! The agents of one task container as ACP sees them: the image's agents (its
//! `ai.terok.agents` label) that have an ACP server, and the models each offers — probed in
//! parallel the first time, then taken from the cache. A failed probe is logged and tried
//! again at the next session; its agent is left out meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::cache::{CacheKey, ModelCache};
use crate::error::AgentError;
use crate::link::{AgentLink, Launcher};
use crate::probe::{AgentSession, handshake, new_session_params, probe_keeping};
use crate::warm::WarmSlot;

/// How long each request of a warm server's handshake may take.
const WARM_REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// The credential identity models are cached under (one credential set today).
pub const GLOBAL_IDENTITY: &str = "global";

/// The agents of a task image `ai.terok.agents` label names: comma-separated, trimmed, empty
/// names dropped.
pub fn agents_of_label(label: Option<&str>) -> Vec<String> {
    label
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a [`Catalog`] is built from.
#[derive(Clone)]
pub struct CatalogSettings {
    /// The image's id (part of the cache key).
    pub image: String,
    /// The image's agents, in label order.
    pub agents: Vec<String>,
    /// The ACP `authenticate` method per agent, for agents that need one.
    pub auth_methods: BTreeMap<String, String>,
    /// The limit of one probe.
    pub probe_timeout: Duration,
    /// Whether to keep one agent's server started ahead of the next session (it costs that
    /// server's memory in the container; without it, each session waits for its agent to
    /// start).
    pub keep_warm: bool,
}

/// The agents and models of one task container.
pub struct Catalog {
    settings: CatalogSettings,
    cache: Arc<ModelCache>,
    launcher: Arc<dyn Launcher>,
    servable: OnceCell<Vec<String>>,
    warm: WarmSlot,
}

impl Catalog {
    /// A catalog that starts agents with `launcher` and remembers models in `cache`.
    pub fn new(
        settings: CatalogSettings,
        cache: Arc<ModelCache>,
        launcher: Arc<dyn Launcher>,
    ) -> Self {
        Self {
            settings,
            cache,
            launcher,
            servable: OnceCell::new(),
            warm: WarmSlot::default(),
        }
    }

    /// What starts the agents.
    pub fn launcher(&self) -> &dyn Launcher {
        self.launcher.as_ref()
    }

    /// The `authenticate` method `agent` needs, if any.
    pub fn auth_method(&self, agent: &str) -> Option<&str> {
        self.settings.auth_methods.get(agent).map(String::as_str)
    }

    /// The image's agents that have an ACP server (asked once; when that cannot be asked, all
    /// of them).
    pub async fn agents(&self) -> &[String] {
        self.servable
            .get_or_init(|| async {
                let configured = &self.settings.agents;
                match self.launcher.servable(configured).await {
                    Some(found) => configured
                        .iter()
                        .filter(|agent| found.contains(agent))
                        .cloned()
                        .collect(),
                    None => configured.clone(),
                }
            })
            .await
    }

    /// Every model of every agent as `agent:model`, agents in label order. Agents not probed
    /// yet are probed in parallel; successes are cached, failures are not.
    pub async fn available_models(&self) -> Vec<String> {
        let agents = self.agents().await;
        let cold: Vec<&String> = agents
            .iter()
            .filter(|agent| self.cache.get(&self.key(agent)).is_none())
            .collect();
        let probes = cold
            .iter()
            .map(|agent| async move { (*agent, self.probe(agent).await) });
        let mut crashed = Vec::new();
        for (agent, outcome) in futures_util::future::join_all(probes).await {
            if matches!(outcome, Err(AgentError::Ended { .. })) {
                crashed.push(agent);
            }
            self.record_probe(agent, outcome).await;
        }
        // Agents that share a program (the OpenCode family) can trip over each other's
        // start-up state when probed at once: a server that ended before answering gets one
        // more try, alone. A refusal (no credential) or a timeout would only fail again.
        for agent in crashed {
            let outcome = self.probe(agent).await;
            self.record_probe(agent, outcome).await;
        }
        agents
            .iter()
            .filter_map(|agent| self.cache.get(&self.key(agent)).map(|m| (agent, m)))
            .flat_map(|(agent, models)| models.into_iter().map(move |m| format!("{agent}:{m}")))
            .collect()
    }

    /// Starts `agent`'s ACP server and asks it for its models.
    async fn probe(&self, agent: &str) -> Result<(Vec<String>, AgentSession), AgentError> {
        probe_keeping(
            self.launcher(),
            agent,
            self.auth_method(agent),
            self.settings.probe_timeout,
        )
        .await
    }

    /// Caches a probe's models (keeping its server when it is the first agent's), or logs
    /// why it failed.
    async fn record_probe(
        &self,
        agent: &str,
        outcome: Result<(Vec<String>, AgentSession), AgentError>,
    ) {
        match outcome {
            Ok((models, session)) => {
                self.cache.put(self.key(agent), models);
                self.keep_probed(agent, session).await;
            }
            Err(err) => tracing::warn!(agent = %agent, "acp: probe failed: {err}"),
        }
    }

    /// Keeps the first agent's probed server warm (the default model is that agent's); ends
    /// the others.
    async fn keep_probed(&self, agent: &str, session: AgentSession) {
        let first = self.agents().await.first().map(String::as_str);
        if self.settings.keep_warm && first == Some(agent) {
            self.warm.offer(agent, session).await;
        } else {
            session.link.close().await;
        }
    }

    /// `agent`'s warm server, if one is kept for it; either way the next one for `agent`
    /// starts in the background.
    pub async fn take_warm(&self, agent: &str) -> Option<AgentSession> {
        if !self.settings.keep_warm {
            return None;
        }
        let session = self.warm.take(agent).await;
        self.warm.refill(agent, self.start_warm(agent)).await;
        session
    }

    /// Ends the warm server (the proxy is stopping).
    pub async fn end_warm(&self) {
        self.warm.clear().await;
    }

    /// Starts `agent`'s server and opens its session, for the warm slot.
    fn start_warm(
        &self,
        agent: &str,
    ) -> impl std::future::Future<Output = Option<AgentSession>> + Send + 'static {
        let launcher = Arc::clone(&self.launcher);
        let auth_method = self.auth_method(agent).map(str::to_owned);
        let agent = agent.to_owned();
        async move {
            let link = match AgentLink::start(launcher.as_ref(), &agent) {
                Ok(link) => link,
                Err(err) => {
                    tracing::warn!(agent = %agent, "acp: cannot start a warm server: {err}");
                    return None;
                }
            };
            let params = new_session_params();
            let opened = handshake(
                &link,
                auth_method.as_deref(),
                params.clone(),
                WARM_REQUEST_LIMIT,
            )
            .await;
            match opened {
                Ok(session) => Some(AgentSession {
                    link,
                    params,
                    session,
                }),
                Err(err) => {
                    tracing::warn!(agent = %agent, "acp: a warm server failed: {err}");
                    link.close().await;
                    None
                }
            }
        }
    }

    fn key(&self, agent: &str) -> CacheKey {
        CacheKey::new(&self.settings.image, GLOBAL_IDENTITY, agent)
    }
}
