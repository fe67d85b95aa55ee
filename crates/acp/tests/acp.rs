//! The proxy, the catalog and the probe against scripted agents in the test process (the
//! cases of the Python terok-executor's ACP tests, and the ones its port added).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod fake;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fake::{FakeLauncher, Script};
use serde_json::{Value, json};
use terok_acp::{AgentError, Catalog, CatalogSettings, ModelCache, agents_of_label, probe};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(5);

fn catalog(launcher: &Arc<FakeLauncher>, agents: &[&str]) -> Arc<Catalog> {
    catalog_with_cache(launcher, agents, Arc::new(ModelCache::new()))
}

fn catalog_with_cache(
    launcher: &Arc<FakeLauncher>,
    agents: &[&str],
    cache: Arc<ModelCache>,
) -> Arc<Catalog> {
    catalog_with(launcher, agents, cache, false)
}

/// A catalog that keeps a warm server (as the daemon does by default).
fn warm_catalog(launcher: &Arc<FakeLauncher>, agents: &[&str]) -> Arc<Catalog> {
    catalog_with(launcher, agents, Arc::new(ModelCache::new()), true)
}

fn catalog_with(
    launcher: &Arc<FakeLauncher>,
    agents: &[&str],
    cache: Arc<ModelCache>,
    keep_warm: bool,
) -> Arc<Catalog> {
    let mut auth_methods = std::collections::BTreeMap::new();
    for (name, script) in &launcher.scripts {
        if let Some(method) = &script.auth_method {
            auth_methods.insert(name.clone(), method.clone());
        }
    }
    Arc::new(Catalog::new(
        CatalogSettings {
            image: "sha256:img".to_owned(),
            agents: agents.iter().map(|a| (*a).to_owned()).collect(),
            auth_methods,
            probe_timeout: LIMIT,
            keep_warm,
        },
        cache,
        Arc::clone(launcher) as Arc<dyn terok_acp::Launcher>,
    ))
}

/// A client connected to a proxy connection.
struct Client {
    writer: DuplexStream,
    lines: Lines<BufReader<DuplexStream>>,
    notifications: Vec<Value>,
    next_id: i64,
    serving: tokio::task::JoinHandle<()>,
    _stop: watch::Sender<bool>,
}

impl Client {
    fn connect(catalog: Arc<Catalog>) -> Self {
        let (writer, proxy_in) = tokio::io::duplex(64 * 1024);
        let (proxy_out, reader) = tokio::io::duplex(64 * 1024);
        let (stop, stopping) = watch::channel(false);
        let serving = tokio::spawn(terok_acp::serve_connection(
            catalog, proxy_in, proxy_out, stopping,
        ));
        Self {
            writer,
            lines: BufReader::new(reader).lines(),
            notifications: Vec::new(),
            next_id: 1,
            serving,
            _stop: stop,
        }
    }

    async fn send(&mut self, frame: Value) {
        let mut line = frame.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await.unwrap();
    }

    async fn next_frame(&mut self) -> Value {
        let line = tokio::time::timeout(LIMIT, self.lines.next_line())
            .await
            .expect("the proxy answers in time")
            .unwrap()
            .expect("the proxy keeps the connection open");
        serde_json::from_str(&line).unwrap()
    }

    /// Sends a request and returns its answer; notifications on the way are kept.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        loop {
            let frame = self.next_frame().await;
            if frame["id"] == id && frame.get("method").is_none() {
                return frame;
            }
            self.notifications.push(frame);
        }
    }

    async fn result(&mut self, method: &str, params: Value) -> Value {
        let answer = self.request(method, params).await;
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    async fn error(&mut self, method: &str, params: Value) -> (i64, String) {
        let answer = self.request(method, params).await;
        let error = &answer["error"];
        assert!(error.is_object(), "{method} should fail: {answer}");
        (
            error["code"].as_i64().unwrap(),
            error["message"].as_str().unwrap().to_owned(),
        )
    }

    async fn open_session(&mut self) -> Value {
        self.result(
            "initialize",
            json!({ "protocolVersion": 1, "clientCapabilities": {} }),
        )
        .await;
        self.result(
            "session/new",
            json!({ "cwd": "/home/me/project", "mcpServers": [] }),
        )
        .await
    }

    async fn prompt(&mut self, text: &str) -> Value {
        self.result(
            "session/prompt",
            json!({ "sessionId": "proxy-1",
            "prompt": [{ "type": "text", "text": text }] }),
        )
        .await
    }

    /// Closes the client's side and waits for the connection to end.
    async fn disconnect(self) {
        drop(self.writer);
        drop(self.lines);
        tokio::time::timeout(Duration::from_secs(10), self.serving)
            .await
            .unwrap()
            .unwrap();
    }
}

fn two_agents() -> Arc<FakeLauncher> {
    Arc::new(FakeLauncher::new(&[
        ("claude", Script::models(&["default", "sonnet"])),
        ("codex", Script::models(&["gpt-5.5"])),
    ]))
}

// ---- proxy ----

#[tokio::test]
async fn initialize_is_answered_by_the_proxy_itself() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude", "codex"]));
    let result = client
        .result(
            "initialize",
            json!({ "protocolVersion": 1, "clientCapabilities": {} }),
        )
        .await;
    assert_eq!(result["protocolVersion"], 1);
    assert_eq!(
        result["agentInfo"],
        json!({ "name": "terok-acp", "title": "Terok ACP host-proxy", "version": "1" })
    );
    assert_eq!(
        launcher.counters.spawned.load(Ordering::SeqCst),
        0,
        "no agent started for initialize"
    );
    client.disconnect().await;
}

#[tokio::test]
async fn a_new_session_is_the_proxys_with_every_agents_models_namespaced() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude", "codex"]));
    let session = client.open_session().await;
    assert_eq!(session["sessionId"], "proxy-1");
    let option = &session["configOptions"][0];
    assert_eq!(option["id"], "model");
    assert_eq!(option["category"], "model");
    assert_eq!(option["currentValue"], "claude:default");
    let values: Vec<&str> = option["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["claude:default", "claude:sonnet", "codex:gpt-5.5"]);
    assert_eq!(option["options"][2]["name"], "Codex: gpt-5.5");
    assert_eq!(session["models"]["currentModelId"], "claude:default");
    assert_eq!(
        session["models"]["availableModels"][1]["modelId"],
        "claude:sonnet"
    );
    // The probes' servers are all gone again.
    assert_eq!(launcher.counters.spawned.load(Ordering::SeqCst), 2);
    assert_eq!(launcher.counters.live.load(Ordering::SeqCst), 0);
    client.disconnect().await;
}

#[tokio::test]
async fn a_second_session_on_one_connection_is_refused() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude"]));
    client.open_session().await;
    let (code, message) = client
        .error("session/new", json!({ "cwd": "/x", "mcpServers": [] }))
        .await;
    assert_eq!(code, -32600);
    assert_eq!(message, "proxy supports one session per connection (v1)");
    client.disconnect().await;
}

#[tokio::test]
async fn choices_before_binding_are_checked() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude", "codex"]));
    client.open_session().await;
    let (code, message) = client
        .error(
            "session/set_model",
            json!({ "sessionId": "proxy-1", "modelId": "sonnet" }),
        )
        .await;
    assert_eq!(
        (code, message.as_str()),
        (-32602, "model id must be 'agent:model'")
    );
    let (code, message) = client
        .error(
            "session/set_config_option",
            json!({ "sessionId": "proxy-1", "configId": "mode", "value": "ask" }),
        )
        .await;
    assert_eq!(
        (code, message.as_str()),
        (-32600, "no agent bound — pick a model first")
    );
    let (code, message) = client
        .error(
            "session/set_model",
            json!({ "sessionId": "proxy-1", "model_id": "gemini:pro" }),
        )
        .await;
    assert_eq!(code, -32602);
    assert!(message.contains("no agent 'gemini'"), "{message}");
    // `category: model` names the model option too.
    let (code, _) = client
        .error(
            "session/set_config_option",
            json!({ "sessionId": "proxy-1", "category": "model", "value": "nocolon" }),
        )
        .await;
    assert_eq!(code, -32602);
    assert_eq!(
        launcher.counters.spawned.load(Ordering::SeqCst),
        2,
        "only the probes ran"
    );
    client.disconnect().await;
}

#[tokio::test]
async fn choosing_a_model_binds_the_agent_and_the_prompt_reaches_it_in_its_session() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude", "codex"]));
    client.open_session().await;
    let ack = client
        .result(
            "session/set_config_option",
            json!({ "sessionId": "proxy-1", "configId": "model", "value": "claude:sonnet" }),
        )
        .await;
    assert_eq!(ack["configOptions"][0]["currentValue"], "claude:sonnet");
    assert_eq!(
        ack["configOptions"][0]["options"].as_array().unwrap().len(),
        3
    );
    let answer = client.prompt("hello").await;
    assert_eq!(answer["stopReason"], "end_turn");
    let chunk = client
        .notifications
        .iter()
        .find(|n| n["params"]["update"]["sessionUpdate"] == "agent_message_chunk")
        .unwrap();
    assert_eq!(chunk["params"]["sessionId"], "proxy-1");
    assert_eq!(
        chunk["params"]["update"]["content"]["text"],
        "claude on sonnet in claude-session-9"
    );
    // The bound agent's other options reach the client, beside the picker over every agent.
    let announced = client
        .notifications
        .iter()
        .find(|n| n["params"]["update"]["sessionUpdate"] == "config_option_update")
        .unwrap();
    let options = announced["params"]["update"]["configOptions"]
        .as_array()
        .unwrap();
    assert_eq!(options[0]["currentValue"], "claude:sonnet");
    assert_eq!(options[1]["id"], "mode");
    // The agent got the handshake, the model by its own option id and bare, the cwd of the task.
    let received = launcher.received("claude");
    let new = received
        .iter()
        .rfind(|f| f["method"] == "session/new")
        .unwrap();
    assert_eq!(new["params"]["cwd"], "/workspace");
    let set = received
        .iter()
        .find(|f| f["method"] == "session/set_config_option")
        .unwrap();
    assert_eq!(
        set["params"],
        json!({ "sessionId": "claude-session-9", "configId": "model-pick", "value": "sonnet" })
    );
    assert!(set["id"].as_i64().unwrap() >= terok_acp::FIRST_OWN_ID);
    let prompt = received
        .iter()
        .find(|f| f["method"] == "session/prompt")
        .unwrap();
    assert_eq!(prompt["params"]["sessionId"], "claude-session-9");
    client.disconnect().await;
}

#[tokio::test]
async fn a_model_of_another_agent_is_refused_once_bound_and_one_of_the_same_is_switched() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude", "codex"]));
    client.open_session().await;
    assert_eq!(
        client
            .result(
                "session/set_model",
                json!({ "sessionId": "proxy-1", "modelId": "codex:gpt-5.5" })
            )
            .await,
        json!({})
    );
    let (code, message) = client
        .error(
            "session/set_model",
            json!({ "sessionId": "proxy-1", "modelId": "claude:sonnet" }),
        )
        .await;
    assert_eq!(code, -32602);
    assert!(message.contains("runs codex"), "{message}");
    let ack = client
        .result(
            "session/set_config_option",
            json!({ "sessionId": "proxy-1", "config_id": "model", "value": "codex:gpt-5.5" }),
        )
        .await;
    assert_eq!(ack["configOptions"][0]["currentValue"], "codex:gpt-5.5");
    // Once bound, other options go to the agent.
    let mode = client
        .result(
            "session/set_config_option",
            json!({ "sessionId": "proxy-1", "configId": "mode", "value": "ask" }),
        )
        .await;
    assert_eq!(
        mode["configOptions"][0]["currentValue"], "codex:gpt-5.5",
        "the agent's answer, namespaced"
    );
    assert_eq!(
        launcher
            .methods("claude")
            .iter()
            .filter(|m| *m == "session/set_config_option")
            .count(),
        0
    );
    client.disconnect().await;
}

#[tokio::test]
async fn a_prompt_without_a_choice_binds_the_first_model() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["codex", "claude"]));
    client.open_session().await;
    let answer = client.prompt("go").await;
    assert_eq!(answer["stopReason"], "end_turn");
    assert!(
        client
            .notifications
            .iter()
            .any(|n| n["params"]["update"]["content"]["text"]
                == "codex on gpt-5.5 in codex-session-9")
    );
    client.disconnect().await;
}

#[tokio::test]
async fn a_prompt_with_no_agents_is_refused() {
    let launcher = Arc::new(FakeLauncher::new(&[(
        "claude",
        Script {
            init_error: true,
            ..Script::default()
        },
    )]));
    let mut client = Client::connect(catalog(&launcher, &["claude"]));
    let session = client.open_session().await;
    assert_eq!(
        session,
        json!({ "sessionId": "proxy-1" }),
        "no models: only the session id"
    );
    let (code, message) = client
        .error(
            "session/prompt",
            json!({ "sessionId": "proxy-1", "prompt": [] }),
        )
        .await;
    assert_eq!(code, -32600);
    assert!(message.starts_with("no agent available"), "{message}");
    client.disconnect().await;
}

#[tokio::test]
async fn an_old_adapter_gets_set_model_and_its_models_block_namespaced() {
    let launcher = Arc::new(FakeLauncher::new(&[(
        "claude",
        Script {
            models_block: true,
            ..Script::models(&["default", "opus"])
        },
    )]));
    let mut client = Client::connect(catalog(&launcher, &["claude"]));
    let session = client.open_session().await;
    assert_eq!(
        session["models"]["availableModels"][1]["modelId"],
        "claude:opus"
    );
    client
        .result(
            "session/set_model",
            json!({ "sessionId": "proxy-1", "modelId": "claude:opus" }),
        )
        .await;
    let set = launcher
        .received("claude")
        .into_iter()
        .find(|f| f["method"] == "session/set_model")
        .unwrap();
    assert_eq!(
        set["params"],
        json!({ "sessionId": "claude-session-9", "modelId": "opus" })
    );
    client.disconnect().await;
}

#[tokio::test]
async fn an_update_before_the_agents_session_answer_is_placed_in_the_proxys_session() {
    let launcher = Arc::new(FakeLauncher::new(&[(
        "vibe",
        Script {
            update_before_session: true,
            ..Script::models(&["medium"])
        },
    )]));
    let mut client = Client::connect(catalog(&launcher, &["vibe"]));
    client.open_session().await;
    client
        .result(
            "session/set_model",
            json!({ "sessionId": "proxy-1", "modelId": "vibe:medium" }),
        )
        .await;
    let early = client
        .notifications
        .iter()
        .find(|n| n["params"]["update"]["sessionUpdate"] == "usage_update")
        .unwrap();
    assert_eq!(early["params"]["sessionId"], "proxy-1");
    client.disconnect().await;
}

#[tokio::test]
async fn an_agent_that_needs_authentication_gets_its_method_before_the_session() {
    let launcher = Arc::new(FakeLauncher::new(&[(
        "codex",
        Script {
            auth_method: Some("openai-api-key".into()),
            ..Script::models(&["gpt-5.5"])
        },
    )]));
    let mut client = Client::connect(catalog(&launcher, &["codex"]));
    let session = client.open_session().await;
    assert_eq!(session["configOptions"][0]["currentValue"], "codex:gpt-5.5");
    client.prompt("go").await;
    let methods = launcher.methods("codex");
    assert_eq!(
        &methods[..3],
        ["initialize", "authenticate", "session/new"],
        "{methods:?}"
    );
    let auth = launcher
        .received("codex")
        .into_iter()
        .find(|f| f["method"] == "authenticate")
        .unwrap();
    assert_eq!(auth["params"], json!({ "methodId": "openai-api-key" }));
    client.disconnect().await;
}

#[tokio::test]
async fn a_client_that_leaves_ends_the_agents_server_and_the_connection() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude"]));
    client.open_session().await;
    client.prompt("go").await;
    assert_eq!(
        launcher.counters.live.load(Ordering::SeqCst),
        1,
        "the bound server runs"
    );
    client.disconnect().await;
    assert_eq!(
        launcher.counters.live.load(Ordering::SeqCst),
        0,
        "and is gone with the client"
    );
}

#[tokio::test]
async fn a_line_that_is_not_json_is_ignored() {
    let launcher = two_agents();
    let mut client = Client::connect(catalog(&launcher, &["claude"]));
    client.writer.write_all(b"hello?\n").await.unwrap();
    let result = client
        .result("initialize", json!({ "protocolVersion": 1 }))
        .await;
    assert_eq!(result["agentInfo"]["name"], "terok-acp");
    client.disconnect().await;
}

// ---- probe ----

#[tokio::test]
async fn a_probe_reads_the_offered_models_and_ends_the_server() {
    let launcher = two_agents();
    let models = probe(launcher.as_ref(), "claude", None, LIMIT)
        .await
        .unwrap();
    assert_eq!(models, ["default", "sonnet"]);
    assert_eq!(launcher.methods("claude"), ["initialize", "session/new"]);
    let new = launcher
        .received("claude")
        .into_iter()
        .find(|f| f["method"] == "session/new")
        .unwrap();
    assert_eq!(
        new["params"],
        json!({ "cwd": "/workspace", "mcpServers": [] })
    );
    assert_eq!(launcher.counters.live.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_probe_fails_on_an_initialize_error() {
    let launcher = Arc::new(FakeLauncher::new(&[(
        "claude",
        Script {
            init_error: true,
            ..Script::default()
        },
    )]));
    let err = probe(launcher.as_ref(), "claude", None, LIMIT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::Refused { method, code: -32603, .. } if method == "initialize"),
        "{err:?}"
    );
    assert_eq!(launcher.counters.live.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_probe_that_gets_no_answer_times_out_at_the_configured_limit() {
    let launcher = Arc::new(FakeLauncher::new(&[(
        "vibe",
        Script {
            hang: true,
            ..Script::default()
        },
    )]));
    let err = probe(launcher.as_ref(), "vibe", None, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Timeout { .. }), "{err:?}");
    assert_eq!(
        launcher.counters.live.load(Ordering::SeqCst),
        0,
        "a hung server is ended too"
    );
}

#[tokio::test]
async fn a_probe_of_an_agent_without_a_server_fails() {
    let launcher = two_agents();
    let err = probe(launcher.as_ref(), "pi", None, LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Spawn { .. }), "{err:?}");
}

// ---- catalog ----

#[test]
fn the_label_names_the_agents() {
    assert_eq!(
        agents_of_label(Some(" claude, codex,,vibe ")),
        ["claude", "codex", "vibe"]
    );
    assert!(agents_of_label(Some("")).is_empty());
    assert!(agents_of_label(None).is_empty());
}

#[tokio::test]
async fn only_agents_with_an_acp_server_are_offered_unless_that_cannot_be_asked() {
    let mut launcher = FakeLauncher::new(&[
        ("claude", Script::models(&["default"])),
        ("codex", Script::models(&["gpt-5.5"])),
    ]);
    launcher.servable = Some(vec!["codex".to_owned()]);
    let launcher = Arc::new(launcher);
    assert_eq!(
        catalog(&launcher, &["claude", "codex"])
            .available_models()
            .await,
        ["codex:gpt-5.5"]
    );

    let mut launcher = FakeLauncher::new(&[
        ("claude", Script::models(&["default"])),
        ("codex", Script::models(&["gpt-5.5"])),
    ]);
    launcher.servable = None;
    let launcher = Arc::new(launcher);
    assert_eq!(
        catalog(&launcher, &["claude", "codex"])
            .available_models()
            .await,
        ["claude:default", "codex:gpt-5.5"]
    );
}

#[tokio::test]
async fn an_agent_without_models_is_skipped_and_label_order_is_kept() {
    let launcher = Arc::new(FakeLauncher::new(&[
        ("codex", Script::models(&["gpt-5.5"])),
        ("pi", Script::models(&[])),
        ("claude", Script::models(&["default"])),
    ]));
    let models = catalog(&launcher, &["codex", "pi", "claude"])
        .available_models()
        .await;
    assert_eq!(models, ["codex:gpt-5.5", "claude:default"]);
}

#[tokio::test]
async fn cold_agents_are_probed_in_parallel() {
    // Each server answers only when all three run at once: probing one after the other
    // would time out.
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let script = |model: &str| Script {
        barrier: Some(Arc::clone(&barrier)),
        ..Script::models(&[model])
    };
    let launcher = Arc::new(FakeLauncher::new(&[
        ("a", script("x")),
        ("b", script("y")),
        ("c", script("z")),
    ]));
    let models = catalog(&launcher, &["a", "b", "c"])
        .available_models()
        .await;
    assert_eq!(models, ["a:x", "b:y", "c:z"]);
}

#[tokio::test]
async fn successes_are_cached_and_failures_probed_again() {
    let launcher = Arc::new(FakeLauncher::new(&[
        ("claude", Script::models(&["default"])),
        (
            "vibe",
            Script {
                init_error: true,
                ..Script::default()
            },
        ),
    ]));
    let cache = Arc::new(ModelCache::new());
    let catalog = catalog_with_cache(&launcher, &["claude", "vibe"], Arc::clone(&cache));
    assert_eq!(catalog.available_models().await, ["claude:default"]);
    assert_eq!(catalog.available_models().await, ["claude:default"]);
    assert_eq!(
        launcher
            .methods("claude")
            .iter()
            .filter(|m| *m == "initialize")
            .count(),
        1,
        "cached"
    );
    assert_eq!(
        launcher
            .methods("vibe")
            .iter()
            .filter(|m| *m == "initialize")
            .count(),
        2,
        "not cached, and a refusal is not retried at once"
    );
    assert_eq!(cache.len(), 1);
}

fn count(methods: &[String], method: &str) -> usize {
    methods.iter().filter(|m| *m == method).count()
}

/// Waits until `live` servers run (a warm server starts in the background).
async fn live_becomes(launcher: &FakeLauncher, live: usize) {
    tokio::time::timeout(LIMIT, async {
        while launcher.counters.live.load(Ordering::SeqCst) != live {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{live} servers should run, {} do",
            launcher.counters.live.load(Ordering::SeqCst)
        )
    });
}

/// Ends `client` and the warm server: nothing may run afterwards.
async fn end_all(client: Client, catalog: &Catalog, launcher: &FakeLauncher) {
    client.disconnect().await;
    catalog.end_warm().await;
    live_becomes(launcher, 0).await;
}

#[tokio::test]
async fn the_first_agents_probed_server_stays_warm_and_serves_the_first_session() {
    let launcher = two_agents();
    let catalog = warm_catalog(&launcher, &["claude", "codex"]);
    let mut client = Client::connect(Arc::clone(&catalog));
    client.open_session().await;
    // Both probed; the first agent's server stays, with its session open.
    assert_eq!(launcher.counters.spawned.load(Ordering::SeqCst), 2);
    live_becomes(&launcher, 1).await;
    client
        .result(
            "session/set_config_option",
            json!({ "sessionId": "proxy-1", "configId": "model", "value": "claude:sonnet" }),
        )
        .await;
    let answer = client.prompt("hello").await;
    assert_eq!(answer["stopReason"], "end_turn");
    let methods = launcher.methods("claude");
    // The probe's server took the prompt: one more server (the next warm one) started, and
    // no second session/new was needed for this client.
    assert_eq!(count(&methods, "session/new"), 2, "{methods:?}");
    assert_eq!(count(&methods, "initialize"), 2, "{methods:?}");
    assert_eq!(launcher.counters.spawned.load(Ordering::SeqCst), 3);
    client.disconnect().await;
    // The bound server is gone with its client; the next warm one waits.
    live_becomes(&launcher, 1).await;
    catalog.end_warm().await;
    live_becomes(&launcher, 0).await;
}

#[tokio::test]
async fn the_next_session_takes_the_warm_server_and_another_is_started() {
    let launcher = two_agents();
    let catalog = warm_catalog(&launcher, &["claude", "codex"]);
    let mut first = Client::connect(Arc::clone(&catalog));
    first.open_session().await;
    first.prompt("one").await;
    first.disconnect().await;
    live_becomes(&launcher, 1).await;
    let spawned = launcher.counters.spawned.load(Ordering::SeqCst);
    let initialized = count(&launcher.methods("claude"), "initialize");

    let mut second = Client::connect(Arc::clone(&catalog));
    second.open_session().await;
    let answer = second.prompt("two").await;
    assert_eq!(answer["stopReason"], "end_turn");
    let chunk = second
        .notifications
        .iter()
        .find(|n| n["params"]["update"]["sessionUpdate"] == "agent_message_chunk")
        .unwrap();
    assert_eq!(chunk["params"]["sessionId"], "proxy-1");
    // One server started: the warm one for the session after this.
    assert_eq!(
        launcher.counters.spawned.load(Ordering::SeqCst),
        spawned + 1
    );
    live_becomes(&launcher, 2).await;
    assert_eq!(
        count(&launcher.methods("claude"), "initialize"),
        initialized + 1
    );
    end_all(second, &catalog, &launcher).await;
}

#[tokio::test]
async fn a_session_with_other_params_opens_its_own_session_on_the_warm_server() {
    let launcher = two_agents();
    let catalog = warm_catalog(&launcher, &["claude"]);
    let mut client = Client::connect(Arc::clone(&catalog));
    client
        .result("initialize", json!({ "protocolVersion": 1 }))
        .await;
    let mcp = json!([{ "name": "docs", "command": "/bin/docs", "args": [], "env": [] }]);
    client
        .result(
            "session/new",
            json!({ "cwd": "/home/me", "mcpServers": mcp }),
        )
        .await;
    client.prompt("go").await;
    let received = launcher.received("claude");
    let sessions: Vec<&Value> = received
        .iter()
        .filter(|f| f["method"] == "session/new")
        .collect();
    // The probe's session, the client's own (with its servers, in the workspace) on the same
    // server, and the next warm server's.
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    assert!(
        sessions
            .iter()
            .any(|f| f["params"]["mcpServers"] == mcp && f["params"]["cwd"] == "/workspace"),
        "{sessions:?}"
    );
    assert_eq!(count(&launcher.methods("claude"), "initialize"), 2);
    end_all(client, &catalog, &launcher).await;
}

#[tokio::test]
async fn a_warm_servers_early_updates_reach_the_client_that_takes_it() {
    let launcher = Arc::new(FakeLauncher::new(&[(
        "vibe",
        Script {
            update_before_session: true,
            ..Script::models(&["medium"])
        },
    )]));
    let catalog = warm_catalog(&launcher, &["vibe"]);
    let mut client = Client::connect(Arc::clone(&catalog));
    client.open_session().await;
    live_becomes(&launcher, 1).await;
    client
        .result(
            "session/set_model",
            json!({ "sessionId": "proxy-1", "modelId": "vibe:medium" }),
        )
        .await;
    let early = client
        .notifications
        .iter()
        .find(|n| n["params"]["update"]["sessionUpdate"] == "usage_update")
        .expect("the update the warm server sent before any client reaches the client");
    assert_eq!(early["params"]["sessionId"], "proxy-1");
    end_all(client, &catalog, &launcher).await;
}

#[tokio::test]
async fn choosing_another_agent_ends_the_warm_server_and_keeps_that_agents() {
    let launcher = two_agents();
    let catalog = warm_catalog(&launcher, &["claude", "codex"]);
    let mut client = Client::connect(Arc::clone(&catalog));
    client.open_session().await;
    client
        .result(
            "session/set_config_option",
            json!({ "sessionId": "proxy-1", "configId": "model", "value": "codex:gpt-5.5" }),
        )
        .await;
    // Bound codex, a warm codex; the warm claude ended.
    live_becomes(&launcher, 2).await;
    assert_eq!(launcher.counters.spawned.load(Ordering::SeqCst), 4);
    assert_eq!(count(&launcher.methods("codex"), "initialize"), 3);
    end_all(client, &catalog, &launcher).await;
}
