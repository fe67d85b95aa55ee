//! `emit_kube`: a headless run of a git URL written as a Pod with its vault sidecar. The
//! agent's container gets a phantom token and no credential; the Secret's bundle holds the
//! real key and only the hash of that token; nothing of the task stays on this host; what no
//! Pod can run is refused.

use base64::Engine;
use serde_json::Value;
use terok_executor::{Executor, ExecutorError, ImageSource, KubeRefusal, RunOptions, ServeCommand};
use terok_podman::{FakeCall, FakeRuntime};

use crate::support::{IMAGE, REAL_KEY, Session, test_shield_hook};

const URL: &str = "https://example.com/org/repo.git";

/// A command of `session`'s host on a fake that has [`IMAGE`], serving the vault with a
/// stand-in program (its bytes go into the vault image).
fn kube_command(session: &Session) -> Executor<FakeRuntime> {
    let fake = FakeRuntime::new();
    fake.add_image(IMAGE, &[("ai.terok.family", "deb")]);
    let program = session.env.root().join("terok-executor-stand-in");
    std::fs::write(&program, b"#!/bin/sh\n").unwrap();
    Executor::builder(session.env.host_env())
        .cwd(session.env.work_dir())
        .vault_sidecar_launcher(ServeCommand::new(&program, ["vault", "serve", "--sidecar"]))
        .shield_hook(test_shield_hook())
        .build_with_runtime(fake)
        .unwrap()
}

fn containers(pod: &Value) -> Vec<Value> {
    let spec = &pod["spec"];
    let mut all: Vec<Value> = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    all.extend(spec["containers"].as_array().cloned().unwrap_or_default());
    all
}

fn env_of(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["value"].as_str())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_a_phantom_token_and_its_sidecar_the_real_key_by_the_tokens_hash() {
    let session = Session::fake().with_vault().await;
    let executor = kube_command(&session);
    let mut options = RunOptions::headless("claude", URL, "fix it", ImageSource::Tag(IMAGE.into()));
    options.branch = Some("fix".into());
    let task = executor.emit_kube(&options, &mut |_| {}).await.unwrap();

    assert_eq!(task.images, [IMAGE, "terok-vault:test"]);
    assert_eq!(task.providers, ["claude"]);
    let pod = serde_json::to_value(&task.manifests.pod).unwrap();
    assert_eq!(pod["metadata"]["name"], task.name.as_str());
    let all = containers(&pod);
    let (prepare, agent, vault) = (&all[0], &all[1], &all[2]);
    assert_eq!(env_of(prepare, "CODE_REPO").as_deref(), Some(URL));
    assert_eq!(env_of(prepare, "GIT_BRANCH").as_deref(), Some("fix"));
    let token = env_of(agent, "ANTHROPIC_API_KEY").unwrap();
    assert!(token.starts_with("terok-p-"), "{token}");
    assert!(
        env_of(prepare, "ANTHROPIC_API_KEY").is_none(),
        "the init container gets no token"
    );
    assert_eq!(vault["image"], "terok-vault:test");
    let command = vault["command"].to_string();
    assert!(command.contains("--sidecar"), "{command}");
    assert!(
        !command.contains("--config"),
        "nothing of this host: {command}"
    );

    // The printed objects never hold the real key; the Secret's bundle does, with the
    // token's hash (never the token) bound to this task's container.
    let printed = task.manifests.task_yaml().unwrap();
    assert!(!printed.contains(REAL_KEY));
    let secret = serde_json::to_value(&task.manifests.secret).unwrap();
    let encoded = secret["data"]["bundle.json"].as_str().unwrap();
    let bundle: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(bundle["container"], task.name.as_str());
    assert_eq!(bundle["credentials"]["claude"]["key"], REAL_KEY);
    assert_eq!(
        bundle["token_hashes"]["claude"],
        terok_credentials_hash(&token).as_str()
    );
    assert!(
        !bundle.to_string().contains(&token),
        "the bundle holds the token's hash only"
    );
    assert!(bundle["routes"]["claude"]["upstream"].is_string());

    // The phantom file and the agent's configuration travel in the ConfigMap.
    let files = serde_json::to_value(&task.manifests.files).unwrap();
    assert!(!files["data"].as_object().unwrap().is_empty(), "{files}");
    assert!(!files.to_string().contains(REAL_KEY));
    let script = prepare["command"][2].as_str().unwrap();
    assert!(script.contains("/home/dev/.terok/"), "{script}");

    // Nothing of the task stays here: no task directory, no token, no listener, no container.
    session.assert_nothing_left("emit").await;
    let calls = executor.runtime().calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, FakeCall::Create { .. } | FakeCall::Run { .. })),
        "{calls:?}"
    );
    let builds = calls
        .iter()
        .filter(|c| matches!(c, FakeCall::Build(_)))
        .count();
    assert_eq!(builds, 1, "the vault image is built once");
    // A second task reuses it.
    executor.emit_kube(&options, &mut |_| {}).await.unwrap();
    let builds = (executor.runtime().calls().iter())
        .filter(|c| matches!(c, FakeCall::Build(_)))
        .count();
    assert_eq!(
        builds, 1,
        "and reused while the binary and its base are the same"
    );
}

fn terok_credentials_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_pod_can_run_is_refused_before_anything_is_built() {
    let session = Session::fake().with_vault().await;
    let executor = kube_command(&session);
    let refusal = |err: ExecutorError| match err {
        ExecutorError::KubeRefused { reason } => reason,
        other => panic!("{other}"),
    };
    let local = RunOptions::headless("claude", "project", "hi", ImageSource::Tag(IMAGE.into()));
    let err = executor.emit_kube(&local, &mut |_| {}).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(refusal(err), KubeRefusal::LocalWorkspace(_)),
        "{text}"
    );
    assert!(text.contains("project"), "{text}");
    let interactive = RunOptions::interactive("claude", URL, ImageSource::Tag(IMAGE.into()));
    let err = executor
        .emit_kube(&interactive, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(refusal(err), KubeRefusal::Mode("an interactive task"));
    let calls = executor.runtime().calls();
    assert!(
        !calls.iter().any(|c| matches!(c, FakeCall::Build(_))),
        "{calls:?}"
    );
    session.assert_nothing_left("refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_on_the_pods_own_loopback_is_refused() {
    // Such a route sends the real key to whatever listens on the Pod's loopback, which the
    // agent's container shares.
    let session = Session::fake_with(|env| {
        let overrides = env.user_config_dir().join("agent/agents");
        std::fs::create_dir_all(&overrides).unwrap();
        std::fs::write(
            overrides.join("claude.yaml"),
            "vault:\n  upstream: http://127.0.0.1:8080\n",
        )
        .unwrap();
    })
    .with_vault()
    .await;
    let executor = kube_command(&session);
    let options = RunOptions::headless("claude", URL, "hi", ImageSource::Tag(IMAGE.into()));
    let err = executor.emit_kube(&options, &mut |_| {}).await.unwrap_err();
    let text = err.to_string();
    match err {
        ExecutorError::KubeRefused {
            reason: KubeRefusal::LocalUpstream { provider, url },
        } => {
            assert_eq!(provider, "claude");
            assert_eq!(url, "http://127.0.0.1:8080");
        }
        other => panic!("{other}"),
    }
    assert!(text.contains("listen"), "{text}");
    assert!(
        !executor
            .runtime()
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Build(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_vault_gets_no_refresh_token_and_a_url_with_a_password_is_refused() {
    let session = Session::fake().with_vault().await;
    let credential: terok_credentials::Credential = serde_json::from_value(serde_json::json!({
        "type": "oauth",
        "access_token": "oauth-access-REAL",
        "refresh_token": "oauth-refresh-REAL-stays-here",
        "expires_at": 1.0
    }))
    .unwrap();
    let config = session.executor.vault_config();
    let (key, _) = terok_credentials::resolve_key(&config.key, &config.paths.db()).unwrap();
    terok_credentials::CredentialDb::open(&config.paths.db(), key, "test")
        .unwrap()
        .store_credential("default", "claude", &credential)
        .unwrap();
    let executor = kube_command(&session);
    let options = RunOptions::headless("claude", URL, "hi", ImageSource::Tag(IMAGE.into()));
    let mut warnings = Vec::new();
    let task = executor
        .emit_kube(&options, &mut |event| {
            if let terok_executor::RunEvent::Warning(text) = event {
                warnings.push(text);
            }
        })
        .await
        .unwrap();
    let secret = serde_json::to_value(&task.manifests.secret).unwrap();
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["bundle.json"].as_str().unwrap())
        .unwrap();
    let bundle = String::from_utf8(bundle).unwrap();
    assert!(
        bundle.contains("oauth-access-REAL"),
        "the access token goes"
    );
    assert!(
        !bundle.contains("oauth-refresh-REAL"),
        "the refresh token stays"
    );
    assert!(
        warnings.iter().any(|w| w.contains("expires before")),
        "{warnings:?}"
    );

    let with_password = RunOptions::headless(
        "claude",
        "https://user:s3cret@example.com/org/repo.git",
        "hi",
        ImageSource::Tag(IMAGE.into()),
    );
    let err = executor
        .emit_kube(&with_password, &mut |_| {})
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(matches!(
        err,
        ExecutorError::KubeRefused {
            reason: KubeRefusal::PasswordInUrl
        }
    ));
}
