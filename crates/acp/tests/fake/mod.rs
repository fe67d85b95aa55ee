//! A scripted ACP agent server in the test process, and a launcher that starts it over
//! in-memory pipes and counts what it started and ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use terok_acp::{AgentError, BoxFuture, Launcher, ServerProcess, Spawned};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::Barrier;

/// How one fake agent behaves.
#[derive(Clone, Default)]
pub struct Script {
    pub models: Vec<String>,
    pub init_error: bool,
    pub hang: bool,
    pub auth_method: Option<String>,
    pub update_before_session: bool,
    /// Every started server waits here before answering `initialize`.
    pub barrier: Option<Arc<Barrier>>,
    /// Offer `models` as an old `models` block and take `session/set_model`.
    pub models_block: bool,
}

impl Script {
    pub fn models(models: &[&str]) -> Self {
        Self {
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            ..Self::default()
        }
    }
}

#[derive(Default)]
pub struct Counters {
    pub spawned: AtomicUsize,
    pub ended: AtomicUsize,
    pub live: AtomicUsize,
}

pub struct FakeLauncher {
    pub scripts: HashMap<String, Script>,
    /// What `servable` answers (`None`: it cannot be asked).
    pub servable: Option<Vec<String>>,
    pub counters: Arc<Counters>,
    /// Every frame each agent received, by agent.
    pub received: Arc<Mutex<Vec<(String, Value)>>>,
}

impl FakeLauncher {
    pub fn new(scripts: &[(&str, Script)]) -> Self {
        Self {
            scripts: scripts
                .iter()
                .map(|(name, script)| ((*name).to_owned(), script.clone()))
                .collect(),
            servable: Some(scripts.iter().map(|(n, _)| (*n).to_owned()).collect()),
            counters: Arc::default(),
            received: Arc::default(),
        }
    }

    pub fn received(&self, agent: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| a == agent)
            .map(|(_, f)| f.clone())
            .collect()
    }

    pub fn methods(&self, agent: &str) -> Vec<String> {
        self.received(agent)
            .iter()
            .filter_map(|f| f["method"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Launcher for FakeLauncher {
    fn spawn(&self, agent: &str) -> Result<Spawned, AgentError> {
        let script = self.scripts.get(agent).cloned().ok_or(AgentError::Spawn {
            agent: agent.to_owned(),
            reason: "no such command".to_owned(),
        })?;
        let (stdin, agent_in) = tokio::io::duplex(64 * 1024);
        let (agent_out, stdout) = tokio::io::duplex(64 * 1024);
        self.counters.spawned.fetch_add(1, Ordering::SeqCst);
        self.counters.live.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn(serve(
            agent.to_owned(),
            script,
            agent_in,
            agent_out,
            Arc::clone(&self.received),
        ));
        Ok(Spawned {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            process: Box::new(FakeProcess {
                task,
                counters: Arc::clone(&self.counters),
            }),
        })
    }

    fn servable<'a>(&'a self, _agents: &'a [String]) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move { self.servable.clone() })
    }
}

struct FakeProcess {
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
}

impl ServerProcess for FakeProcess {
    fn end(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // A well-behaved server leaves when its stdin closes; a hung one is killed.
            if tokio::time::timeout(std::time::Duration::from_secs(2), async {
                while !self.task.is_finished() {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .is_err()
            {
                self.task.abort();
            }
            self.counters.live.fetch_sub(1, Ordering::SeqCst);
            self.counters.ended.fetch_add(1, Ordering::SeqCst);
        })
    }
}

async fn send(out: &mut DuplexStream, frame: Value) {
    let mut line = frame.to_string();
    line.push('\n');
    let _ = out.write_all(line.as_bytes()).await;
}

fn model_options(models: &[String], current: &str) -> Value {
    let choices: Vec<Value> = models
        .iter()
        .map(|m| json!({ "value": m, "name": m }))
        .collect();
    json!([
        { "id": "model-pick", "name": "Model", "category": "model", "type": "select",
          "currentValue": current, "options": choices },
        { "id": "mode", "name": "Mode", "category": "mode", "type": "select",
          "currentValue": "ask", "options": [{ "value": "ask", "name": "Ask" }] }
    ])
}

async fn serve(
    agent: String,
    script: Script,
    input: DuplexStream,
    mut out: DuplexStream,
    received: Arc<Mutex<Vec<(String, Value)>>>,
) {
    let mut lines = BufReader::new(input).lines();
    let mut authed = false;
    let mut current = script.models.first().cloned().unwrap_or_default();
    let session = format!("{agent}-session-9");
    // A line that is not JSON: servers print such things, and it must be skipped.
    send(&mut out, json!("starting up")).await;
    while let Ok(Some(line)) = lines.next_line().await {
        let frame: Value = serde_json::from_str(&line).unwrap();
        received
            .lock()
            .unwrap()
            .push((agent.clone(), frame.clone()));
        let id = frame["id"].clone();
        let params = &frame["params"];
        let reply = match frame["method"].as_str() {
            Some("initialize") => {
                if script.hang {
                    continue;
                }
                if let Some(barrier) = &script.barrier {
                    barrier.wait().await;
                }
                if script.init_error {
                    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32603, "message": "broken" } })
                } else {
                    json!({ "jsonrpc": "2.0", "id": id, "result": { "protocolVersion": 1,
                        "agentCapabilities": {}, "authMethods": [] } })
                }
            }
            Some("authenticate") => {
                authed = true;
                json!({ "jsonrpc": "2.0", "id": id, "result": {} })
            }
            Some("session/new") => {
                if script.auth_method.is_some() && !authed {
                    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32000, "message": "Authentication required" } })
                } else {
                    if script.update_before_session {
                        send(&mut out, json!({ "jsonrpc": "2.0", "method": "session/update", "params": {
                            "sessionId": session, "update": { "sessionUpdate": "usage_update", "used": 0, "size": 1 } } })).await;
                    }
                    let mut result = json!({ "sessionId": session });
                    if script.models_block {
                        let available: Vec<Value> = script
                            .models
                            .iter()
                            .map(|m| json!({ "modelId": m, "name": m }))
                            .collect();
                        result["models"] =
                            json!({ "availableModels": available, "currentModelId": current });
                    } else if !script.models.is_empty() {
                        result["configOptions"] = model_options(&script.models, &current);
                    }
                    json!({ "jsonrpc": "2.0", "id": id, "result": result })
                }
            }
            Some("session/set_config_option") => {
                if params["configId"] == "model-pick" {
                    current = params["value"].as_str().unwrap_or_default().to_owned();
                }
                json!({ "jsonrpc": "2.0", "id": id, "result": { "configOptions": model_options(&script.models, &current) } })
            }
            Some("session/set_model") if script.models_block => {
                current = params["modelId"].as_str().unwrap_or_default().to_owned();
                json!({ "jsonrpc": "2.0", "id": id, "result": {} })
            }
            Some("session/prompt") => {
                let text = format!(
                    "{agent} on {current} in {}",
                    params["sessionId"].as_str().unwrap_or("?")
                );
                send(&mut out, json!({ "jsonrpc": "2.0", "method": "session/update", "params": {
                    "sessionId": params["sessionId"], "update": { "sessionUpdate": "agent_message_chunk",
                    "content": { "type": "text", "text": text } } } })).await;
                json!({ "jsonrpc": "2.0", "id": id, "result": { "stopReason": "end_turn" } })
            }
            Some(_) if id.is_null() => continue,
            Some(_) => {
                json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "Method not found" } })
            }
            None => continue,
        };
        send(&mut out, reply).await;
    }
}
