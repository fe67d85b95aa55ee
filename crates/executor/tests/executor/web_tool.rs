//! Web tasks and tool runs on the recording fake: what reaches podman (published ports,
//! environment, mounts, command) and what is refused before anything is created.

use std::os::unix::fs::PermissionsExt;

use terok_executor::{
    BuildRequest, Egress, ExecutorError, ImageSource, RunEvent, RunOptions, WebOptions,
};
use terok_podman::{FakeCall, RunSpec};

use crate::support::{IMAGE, REAL_KEY, Session};

/// A user roster entry for a sidecar tool whose stored key goes into `FAKETOOL_KEY`.
const FAKE_TOOL: &str = "roster_version: 1\nkind: tool\nlabel: Fake tool\nbinary: faketool\n\
    auth:\n  host_dir: _faketool-config\n  container_mount: /home/dev/.faketool\n  modes: [api_key]\n\
    vault:\n  route_prefix: faketool\n  upstream: https://faketool.invalid\n  auth_header: \
    Authorization\n  auth_prefix: \"Bearer \"\n  credential_type: api_key\n  phantom_env:\n    \
    FAKETOOL_KEY: true\nsidecar:\n  env_map:\n    FAKETOOL_KEY: key\n";

/// The spec and argv of the container the session created or ran.
fn container(session: &Session) -> (RunSpec, Vec<String>) {
    session
        .fake_runtime()
        .calls()
        .into_iter()
        .find_map(|c| match c {
            FakeCall::Create { spec, argv } | FakeCall::Run { spec, argv } => Some((*spec, argv)),
            _ => None,
        })
        .expect("a container")
}

fn web_options(port: Option<u16>) -> RunOptions {
    let mut web = WebOptions::default();
    web.port = port;
    let mut options = RunOptions::web("claude", "project", web, ImageSource::Tag(IMAGE.into()));
    options.egress = Some(Egress::Open);
    options
}

#[tokio::test]
async fn a_web_task_publishes_its_ui_on_loopback_only_with_a_private_token() {
    let session = Session::fake();
    let task = session
        .executor
        .launch(&web_options(None), &mut |_| {})
        .await
        .unwrap();
    let (spec, argv) = container(&session);
    let web = task.record().web.clone().expect("a web record");
    assert_eq!(spec.publish, [format!("127.0.0.1:{}:8080", web.port)]);
    let published: Vec<&String> = argv
        .windows(2)
        .filter(|w| w[0] == "--publish" || w[0] == "-p")
        .map(|w| &w[1])
        .collect();
    assert_eq!(
        published,
        [&format!("127.0.0.1:{}:8080", web.port)],
        "{argv:?}"
    );
    let command = spec.command.last().unwrap();
    assert!(
        command.ends_with(&format!(
            "exec terok-toad-entry --public-url http://127.0.0.1:{}",
            web.port
        )),
        "{command}"
    );
    assert!(
        spec.env
            .contains(&("TEROK_WEB_PORT".into(), web.port.to_string()))
    );
    // The gate refuses requests from pages of any other origin.
    assert!(spec.env.contains(&(
        "TEROK_WEB_ORIGIN".into(),
        format!("http://127.0.0.1:{}", web.port)
    )));
    let token_file = task.task_dir().join("agent-config/toad.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.len(), 64);
    // The token is a file the container reads, never on podman's argv or in its env.
    assert!(!argv.iter().any(|a| a.contains(&token)), "{argv:?}");
    assert!(!spec.env.iter().any(|(_, v)| v.contains(&token)));
    let access = session.executor.web_access(task.name()).unwrap().unwrap();
    assert_eq!(
        access.url,
        format!("http://127.0.0.1:{}/?token={token}", web.port)
    );
}

#[tokio::test]
async fn a_web_task_gets_a_new_token_at_every_start() {
    let session = Session::fake();
    let task = session
        .executor
        .launch(&web_options(None), &mut |_| {})
        .await
        .unwrap();
    let name = task.name().to_owned();
    let before = session.executor.web_access(&name).unwrap().unwrap();
    drop(task);
    session.executor.stop_task(&name).await.unwrap();
    session.executor.start_task(&name).await.unwrap();
    let after = session.executor.web_access(&name).unwrap().unwrap();
    assert_eq!(before.port, after.port);
    assert_ne!(before.url, after.url, "the old link must stop working");
}

#[tokio::test]
async fn a_web_task_that_cannot_be_served_creates_nothing() {
    let session = Session::fake();
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = session
        .executor
        .launch(&web_options(Some(port)), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExecutorError::PortUnavailable { port: Some(p), .. } if p == port),
        "{err}"
    );
    let mut offline = web_options(None);
    offline.egress = Some(Egress::Offline);
    let err = session
        .executor
        .launch(&offline, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ExecutorError::WebNeedsNetwork), "{err}");
    let request = BuildRequest::new("localhost/debian:sid", vec!["claude".into()]);
    let mut without_toad = web_options(None);
    without_toad.image = ImageSource::Ensure(request);
    let err = session
        .executor
        .launch(&without_toad, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("web mode serves Toad, which is not in the image"),
        "{err}"
    );
    let mut odd_address = web_options(None);
    let mut web = WebOptions::default();
    web.public_url = Some("box.example:8080".into());
    odd_address.mode = terok_executor::Mode::Web(web);
    let err = session
        .executor
        .launch(&odd_address, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the public URL \"box.example:8080\" cannot be used: expected an http:// or https:// address"
    );
    assert!(session.task_dirs().is_empty());
    assert!(
        session
            .fake_runtime()
            .calls()
            .iter()
            .all(|c| !matches!(c, FakeCall::Create { .. } | FakeCall::Run { .. }))
    );
}

/// A session whose user roster has the fake tool, with [`REAL_KEY`] stored for it when
/// `stored`.
fn tool_session(stored: bool) -> Session {
    let session = Session::fake_with(|env| {
        let dir = env.user_config_dir().join("agent/agents");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("faketool.yaml"), FAKE_TOOL).unwrap();
    });
    if stored {
        session
            .executor
            .store_api_key("faketool", REAL_KEY)
            .unwrap();
    }
    session
}

fn tool_options(args: &[&str]) -> RunOptions {
    let mut options = RunOptions::tool(
        "faketool",
        "project",
        args.iter().map(|a| (*a).to_owned()).collect(),
        ImageSource::Tag(IMAGE.into()),
    );
    options.egress = Some(Egress::Offline);
    options
}

#[tokio::test]
async fn a_tool_gets_its_real_credential_in_the_env_file_and_nothing_of_an_agent() {
    let session = tool_session(true);
    let mut events = Vec::new();
    let task = session
        .executor
        .launch(&tool_options(&["review", "--plain", "it's"]), &mut |e| {
            events.push(e);
        })
        .await
        .unwrap();
    let (spec, argv) = container(&session);
    let names: Vec<&str> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "TASK_ID",
            "REPO_ROOT",
            "GIT_RESET_MODE",
            "TZ",
            "FAKETOOL_KEY"
        ]
        .into_iter()
        .filter(|n| *n != "TZ" || spec.env.iter().any(|(k, _)| k == "TZ"))
        .collect::<Vec<_>>()
    );
    assert!(spec.env.contains(&("FAKETOOL_KEY".into(), REAL_KEY.into())));
    assert!(!argv.iter().any(|a| a.contains(REAL_KEY)), "{argv:?}");
    // The workspace and what guards its git config; no agent-config, no shared configs, no
    // vault socket.
    let mounts: Vec<&str> = spec.volumes.iter().map(|v| v.container.as_str()).collect();
    assert_eq!(mounts[0], "/workspace");
    assert!(
        mounts.iter().all(|m| m.starts_with("/workspace")),
        "{mounts:?}"
    );
    let command = spec.command.last().unwrap();
    assert!(
        command.ends_with("&& timeout 600 faketool review --plain 'it'\\''s'"),
        "{command}"
    );
    assert!(task.record().providers.is_empty() && !task.record().vault);
    assert!(
        !task.task_dir().join("agent-config/vault.env").exists(),
        "a tool gets no phantom tokens"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, RunEvent::ToolCredentialMissing { .. })),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_tool_without_a_stored_credential_runs_and_is_said_to_lack_it() {
    let session = tool_session(false);
    let mut events = Vec::new();
    let mut options = tool_options(&[]);
    options.timeout_secs = Some(5);
    session
        .executor
        .launch(&options, &mut |e| events.push(e))
        .await
        .unwrap();
    assert!(
        events.contains(&RunEvent::ToolCredentialMissing {
            tool: "faketool".into(),
            provider: "faketool".into(),
            field: "key".into(),
        }),
        "{events:?}"
    );
    let (spec, _) = container(&session);
    assert!(!spec.env.iter().any(|(k, _)| k == "FAKETOOL_KEY"));
    assert!(spec.command.last().unwrap().contains("timeout 5 faketool"));
}

#[tokio::test]
async fn only_a_sidecar_entry_is_a_tool() {
    let session = tool_session(true);
    let mut options = tool_options(&[]);
    options.agent = "claude".into();
    let err = session
        .executor
        .launch(&options, &mut |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sidecar tool"), "{err}");
    assert!(session.task_dirs().is_empty());
}

/// Two web tasks behind one proxy under different paths share an origin, and a page of one
/// could read the other: the second is refused before anything is created.
#[tokio::test]
async fn a_second_web_task_at_the_same_origin_is_refused() {
    let session = Session::fake();
    let at = |url: &str| {
        let mut web = WebOptions::default();
        web.public_url = Some(url.to_owned());
        let mut options = web_options(None);
        options.mode = terok_executor::Mode::Web(web);
        options
    };
    let first = session
        .executor
        .launch(&at("https://box.example/a/"), &mut |_| {})
        .await
        .unwrap();
    let err = session
        .executor
        .launch(&at("https://box.example:443/b/"), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExecutorError::PublicOriginTaken { task, .. } if task == first.name()),
        "{err}"
    );
    assert_eq!(session.task_dirs().len(), 1);
    session
        .executor
        .launch(&at("https://b.box.example/"), &mut |_| {})
        .await
        .unwrap();
}
