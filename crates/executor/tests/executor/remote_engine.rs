//! A remote engine (`--connection`, `CONTAINER_HOST`): it sees none of this host's paths,
//! sockets or hooks, so a launch copies in what it would mount, its listeners are TCP at
//! `services.address`, the agent's exit code comes from the container, and the workspace's
//! copy is merged back when a headless run ends; what it cannot run is refused with nothing
//! left behind.

use terok_executor::{Egress, ExecutorError, RemoteRefusal};
use terok_podman::{FakeCall, FakeRuntime};

use crate::support::{Session, launch_err};

const ENGINE: &str = "unix:///run/other-engine/podman.sock";

/// A session whose engine is remote, with `config` and the vault running.
async fn remote_session(config: &str) -> Session<FakeRuntime> {
    let session = Session::fake_with(|env| {
        env.write_user_config(config).unwrap();
    })
    .with_vault()
    .await;
    session.fake_runtime().set_remote(Some(ENGINE));
    session
}

const TCP: &str = "services:\n  mode: tcp\n  address: 127.0.0.1\n";

fn refusal(err: &ExecutorError) -> Option<&RemoteRefusal> {
    match err {
        ExecutorError::RemoteEngineRefused { reason, .. } => Some(reason),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_remote_engine_cannot_run_is_refused_and_leaves_nothing() {
    let sockets = remote_session("").await;
    let err = launch_err(&sockets, &sockets.headless("hi")).await;
    assert_eq!(refusal(&err), Some(&RemoteRefusal::Sockets), "{err}");
    assert!(err.to_string().contains(ENGINE), "{err}");
    sockets.assert_nothing_left("sockets").await;

    let no_address = remote_session("services:\n  mode: tcp\n").await;
    let mut open = no_address.headless("hi");
    open.egress = Some(Egress::Open);
    let err = launch_err(&no_address, &open).await;
    assert_eq!(refusal(&err), Some(&RemoteRefusal::NoAddress), "{err}");

    let session = remote_session(TCP).await;
    // The firewall's hook would have to run on the engine's host.
    let err = launch_err(&session, &session.headless("hi")).await;
    assert_eq!(refusal(&err), Some(&RemoteRefusal::Firewall), "{err}");
    session.assert_nothing_left("allowlist").await;
    assert!(
        !session
            .fake_runtime()
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Create { .. } | FakeCall::Run { .. })),
        "no container was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_run_copies_in_what_it_would_mount_and_merges_the_workspace_back() {
    let session = remote_session(TCP).await;
    let project = session.env.work_dir().join("project");
    std::fs::create_dir_all(project.join(".git")).unwrap();
    std::fs::write(project.join(".git/config"), "[core]\n").unwrap();
    let fake = session.fake_runtime();
    let name = "terok-executor-remote1";
    fake.script_container(name, &["fixed it"], 3);
    fake.set_workspace_files(
        name,
        &[
            ("calc.py", b"return a + b\n"),
            (".git/", b""),
            (".git/config", b"[core]\n\thooksPath = /tmp/evil\n"),
        ],
    );
    let mut options = session.headless("fix it");
    options.egress = Some(Egress::Open);
    options.name = Some(name.to_owned());
    let task = session
        .executor
        .launch(&options, &mut |_| {})
        .await
        .unwrap();
    let record = task.record().clone();
    let outcome = task.wait().await.unwrap();

    assert_eq!(
        outcome.exit_code, 3,
        "the container's own code, from podman wait"
    );
    let calls = fake.calls();
    let created = calls
        .iter()
        .find_map(|c| match c {
            FakeCall::Create { spec, .. } => Some(spec.clone()),
            _ => None,
        })
        .expect("created, not run");
    assert!(
        created.volumes.is_empty(),
        "nothing mounted: {:?}",
        created.volumes
    );
    let copied: Vec<String> = calls
        .iter()
        .filter_map(|c| match c {
            FakeCall::CopyInto(_, _, path) => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert!(copied.contains(&"/workspace".to_owned()), "{copied:?}");
    assert!(
        copied.contains(&"/home/dev/.terok".to_owned()),
        "{copied:?}"
    );
    // The listener is where the engine's containers reach this host, not a socket.
    let tcp = record.tcp.clone().unwrap();
    assert_eq!(tcp.bind.to_string(), "127.0.0.1");
    let remote = record.remote.clone().unwrap();
    assert_eq!(remote.engine, ENGINE);
    assert!(
        remote
            .task_files
            .iter()
            .any(|(_, path)| path == "/home/dev/.terok"),
        "{remote:?}"
    );
    // Never the workspace: copied in again at a restart, it would undo the agent's work.
    assert_workspace_never_copied_in(&remote);
    // The agent's file came back; `.git` never does.
    let copied_back = outcome.copied_back.unwrap();
    assert_eq!(copied_back.written, [std::path::PathBuf::from("calc.py")]);
    assert_eq!(
        std::fs::read_to_string(project.join("calc.py")).unwrap(),
        "return a + b\n"
    );
    assert_eq!(
        std::fs::read_to_string(project.join(".git/config")).unwrap(),
        "[core]\n"
    );
    // The user's directory was never lent to the container (no ownership change).
    assert!(
        record
            .rootful
            .as_ref()
            .is_none_or(|r| r.workspace.is_none())
    );

    // A git URL's workspace lives in the task directory: still never among the task files.
    let mut cloned = session.headless("hi");
    cloned.egress = Some(Egress::Open);
    cloned.repo = "https://example.org/acme/widget.git".to_owned();
    cloned.gate = Some(false);
    let task = session.executor.launch(&cloned, &mut |_| {}).await.unwrap();
    let remote = task.record().remote.clone().unwrap();
    assert_eq!(remote.workspace, None);
    assert!(!remote.task_files.is_empty());
    assert_workspace_never_copied_in(&remote);
}

/// The workspace is never among a remote task's files: copied in again at a restart, it
/// would undo the agent's work.
fn assert_workspace_never_copied_in(remote: &terok_executor::RemoteRecord) {
    assert!(
        remote
            .task_files
            .iter()
            .all(|(_, path)| path != "/workspace"),
        "{remote:?}"
    );
}
