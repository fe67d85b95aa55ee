//! A roster v3 user roster on a real vault: agents of one provider get tokens for it, and the
//! one stored credential reaches the upstream for each of them.

use terok_executor::{Executor, ImageSource, LaunchedTask, RunOptions};
use terok_podman::FakeRuntime;
use terok_testkit::IsolatedEnv;
use terok_testkit::unix_http;
use terok_testkit::upstream::MockUpstream;

use crate::support::{IMAGE, Session};

/// The user's roster: a provider file with two agents using it, and Pi moved onto Claude's
/// route by its v3 name (whose upstream a provider file points at `anthropic`).
fn write_roster(env: &IsolatedEnv, myllm: &str, anthropic: &str) {
    let agent = env.user_config_dir().join("agent");
    for dir in ["agents", "providers"] {
        std::fs::create_dir_all(agent.join(dir)).unwrap();
    }
    let file = |path: &str, text: String| std::fs::write(agent.join(path), text).unwrap();
    file(
        "providers/myllm.yaml",
        format!(
            "roster_version: 3\nupstream: {myllm}\nauth:\n  api_key:\n    header: x-api-key\n    prefix: \"\"\nserves:\n  myllm-chat: /v2\n"
        ),
    );
    file(
        "providers/anthropic.yaml",
        format!("roster_version: 3\nupstream: {anthropic}\n"),
    );
    for name in ["writer", "reviewer"] {
        file(
            &format!("agents/{name}.yaml"),
            "roster_version: 3\nkind: native\nprotocol: myllm-chat\nprovider:\n  default: myllm\n  token_env:\n    _default: MYLLM_API_KEY\n  base_url_env: MYLLM_BASE_URL\n".to_owned(),
        );
    }
    file(
        "agents/pi.yaml",
        "roster_version: 3\nprovider:\n  default: anthropic\n  token_env:\n    _default: ANTHROPIC_API_KEY\n  base_url_env: ANTHROPIC_BASE_URL\n".to_owned(),
    );
}

async fn launch(executor: &Executor<FakeRuntime>, agent: &str) -> LaunchedTask<FakeRuntime> {
    let options = RunOptions::interactive(agent, "project", ImageSource::Tag(IMAGE.to_owned()));
    executor.launch(&options, &mut |_| {}).await.unwrap()
}

/// The value of `var` in the task's vault.env.
fn vault_env(task: &LaunchedTask<FakeRuntime>, var: &str) -> String {
    let text = std::fs::read_to_string(task.task_dir().join("agent-config/vault.env")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")))
        .unwrap_or_else(|| panic!("{var} not in {text}"))
        .trim_matches('\'')
        .to_owned()
}

/// A request on the task's socket with its phantom token, as the agent would send it.
async fn request(task: &LaunchedTask<FakeRuntime>, executor: &Executor<FakeRuntime>, var: &str) {
    let token = vault_env(task, var);
    let socket = executor.vault_paths().container_socket(task.name());
    let answer = unix_http::request(&socket, "POST", "/v2/chat", &[("x-api-key", &token)], "{}")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_of_one_provider_share_its_credential_through_the_vault() {
    let myllm = MockUpstream::start().unwrap();
    let anthropic = MockUpstream::start().unwrap();
    let session = Session::fake_with(|env| write_roster(env, &myllm.url(), &anthropic.url()))
        .with_vault()
        .await;
    let executor = &session.executor;
    // One key, stored under the provider's name (a v3 name reaches the v1 route's).
    let stored = executor
        .store_api_key("myllm", "sk-myllm-real-key")
        .unwrap();
    assert_eq!(stored.provider, "myllm");
    let stored = executor
        .store_api_key("anthropic", "sk-ant-real-shared")
        .unwrap();
    assert_eq!(stored.provider, "claude");

    for agent in ["writer", "reviewer"] {
        let task = launch(executor, agent).await;
        assert_eq!(
            task.vault_providers().into_iter().collect::<Vec<_>>(),
            ["myllm"]
        );
        assert!(vault_env(&task, "MYLLM_BASE_URL").ends_with("/v2"));
        request(&task, executor, "MYLLM_API_KEY").await;
    }
    let seen: Vec<_> = myllm
        .requests()
        .iter()
        .map(|r| r.header("x-api-key").map(str::to_owned))
        .collect();
    assert_eq!(
        seen,
        [
            Some("sk-myllm-real-key".to_owned()),
            Some("sk-myllm-real-key".to_owned())
        ]
    );

    for agent in ["claude", "pi"] {
        let task = launch(executor, agent).await;
        assert_eq!(
            task.vault_providers().into_iter().collect::<Vec<_>>(),
            ["claude"]
        );
        request(&task, executor, "ANTHROPIC_API_KEY").await;
    }
    let seen: Vec<_> = anthropic
        .requests()
        .iter()
        .map(|r| r.header("x-api-key").map(str::to_owned))
        .collect();
    assert_eq!(
        seen,
        [
            Some("sk-ant-real-shared".to_owned()),
            Some("sk-ant-real-shared".to_owned())
        ]
    );
    assert!(
        myllm.requests().iter().all(|r| !r.mentions("sk-ant")),
        "no cross-provider leak"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opencode_agent_of_a_differently_named_provider_goes_through_the_vault() {
    let session = Session::fake_with(|env| {
        let agent = env.user_config_dir().join("agent");
        for dir in ["agents", "providers"] {
            std::fs::create_dir_all(agent.join(dir)).unwrap();
        }
        std::fs::write(
            agent.join("providers/acme.yaml"),
            "roster_version: 3\nupstream: https://api.acme.example\n",
        )
        .unwrap();
        std::fs::write(
            agent.join("agents/acme-coder.yaml"),
            "roster_version: 3\nkind: harness\nopencode:\n  display_name: ACME\n  base_url: https://api.acme.example/v1\n  preferred_model: big\n  fallback_model: small\n  env_var_prefix: ACME\n  config_dir: .acme\n  auth_key_url: https://acme.example/keys\nprovider:\n  default: acme\n  token_env:\n    _default: ACME_API_KEY\n",
        )
        .unwrap();
    })
    .with_vault()
    .await;
    let executor = &session.executor;
    // The agent has no login of its own (its derived one is API keys): the key goes to its
    // provider.
    let stored = executor
        .store_api_key("acme-coder", "sk-acme-real")
        .unwrap();
    assert_eq!(stored.provider, "acme");
    let task = launch(executor, "acme-coder").await;
    assert_eq!(
        task.vault_providers().into_iter().collect::<Vec<_>>(),
        ["acme"]
    );
    let base = vault_env(&task, "TEROK_OC_ACME_CODER_BASE_URL");
    assert!(
        base.starts_with("http://localhost:") && base.ends_with("/v1"),
        "{base}"
    );
}
