//! Storing credentials through the session: API keys, and an OAuth login in an auth
//! container (the fake runtime plays the login and leaves what the vendor's CLI would).

use terok_executor::errors::AuthError;
use terok_executor::{AuthEvent, ExecutorError, LoginOutcome};
use terok_podman::FakeCall;

use crate::support::{REAL_KEY, Session};

#[test]
fn an_empty_key_is_refused_and_nothing_is_stored() {
    let session = Session::fake();
    let err = session.executor.store_api_key("claude", " \n").unwrap_err();
    assert!(
        matches!(err, ExecutorError::Auth(AuthError::EmptyKey)),
        "{err}"
    );
    assert!(session.has_no_credentials());
    let stored = session.executor.store_api_key("claude", REAL_KEY).unwrap();
    assert_eq!(
        (stored.provider.as_str(), stored.kind.as_str()),
        ("claude", "api_key")
    );
    let listed = session.executor.stored_credentials().unwrap().unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn an_oauth_login_stores_what_the_login_left_and_removes_its_directory() {
    let session = Session::fake();
    session.fake_runtime().on_run_attached(|spec| {
        let login_dir = &spec.volumes[0].host;
        std::fs::write(
            login_dir.join(".credentials.json"),
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-real","refreshToken":"sk-ant-ort01-real","expiresAt":1893456000000}}"#,
        )
        .unwrap();
    });
    let mut events = Vec::new();
    let outcome = session
        .executor
        .oauth_login("claude", None, &mut |e| events.push(e))
        .await
        .unwrap();
    let LoginOutcome::Stored(stored) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(stored.kind, "oauth");
    assert!(events.iter().any(|e| matches!(
        e,
        AuthEvent::LoginStarting { command, .. } if command == &["claude"]
    )));
    let attached: Vec<FakeCall> = session
        .fake_runtime()
        .calls()
        .into_iter()
        .filter(|c| matches!(c, FakeCall::RunAttached { .. }))
        .collect();
    assert_eq!(attached.len(), 1);
    let FakeCall::RunAttached { spec, argv } = &attached[0] else {
        unreachable!()
    };
    assert!(spec.tty && spec.remove_on_exit);
    assert!(argv.iter().all(|a| !a.contains("sk-ant")), "{argv:?}");
    assert!(
        !spec.volumes[0].host.exists(),
        "the login directory held the real credential and is gone"
    );
    let listed = session.executor.stored_credentials().unwrap().unwrap();
    assert_eq!(listed[0].kind, "oauth");
}

#[tokio::test]
async fn a_cancelled_login_stores_nothing() {
    let session = Session::fake();
    session
        .fake_runtime()
        .script_container("host-auth-claude", &[], 130);
    let outcome = session
        .executor
        .oauth_login("claude", None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(outcome, LoginOutcome::Cancelled);
    assert!(session.has_no_credentials());
    let err = session
        .executor
        .oauth_login("vibe", None, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ExecutorError::NoLoginCommand { .. }), "{err}");
}
