//! `services.mode: tcp`: the task's vault listener on TCP where the engine's containers reach
//! it — the bridge's gateway rootful, this host's loopback through slirp4netns rootless —,
//! the container told that address and nothing mounted, its firewall opened to that one port,
//! and the launches that cannot be served refused with nothing left behind.

use std::collections::BTreeMap;

use terok_executor::{Egress, ExecutorError, TcpRefusal};
use terok_podman::FakeRuntime;

use crate::support::{Session, launch_err};

const CONFIG: &str = "services:\n  mode: tcp\n";

/// A session on a host whose config.yml says `services.mode: tcp`, opened as `euid`, with
/// the vault running.
async fn tcp_session(euid: u32, extra: &str) -> Session<FakeRuntime> {
    Session::fake_with(|env| {
        env.write_user_config(&format!("{CONFIG}{extra}")).unwrap();
    })
    .opened_as(euid)
    .with_vault()
    .await
}

/// Why `services.mode: tcp` refused a launch, if that is what `err` is.
fn tcp_refusal(err: &ExecutorError) -> Option<&TcpRefusal> {
    match err {
        ExecutorError::TcpServicesRefused { reason } => Some(reason),
        _ => None,
    }
}

/// `vault.env` of a launched task as a map.
fn vault_env(task_dir: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(task_dir.join("agent-config/vault.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// The value after `flag` in `argv`, for every occurrence.
fn values_of<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootful_the_listener_is_on_the_bridge_and_the_firewall_opens_its_one_port() {
    let session = tcp_session(
        0,
        "network:\n  port_range_start: 28400\n  port_range_end: 28499\n",
    )
    .await;
    let task = session
        .executor
        .launch(&session.headless("hi"), &mut |_| {})
        .await
        .unwrap();
    let record = task.record().tcp.clone().expect("a TCP record");
    let port = record.vault_port.unwrap();
    assert!((28400..=28499).contains(&port), "{port}");
    assert_eq!(record.bind.to_string(), "10.88.0.1", "the bridge's gateway");
    assert_eq!(record.seen_as, record.bind);

    let env = vault_env(&task.task_dir());
    let url = format!("http://host.containers.internal:{port}");
    assert_eq!(env["ANTHROPIC_BASE_URL"], url);
    assert_eq!(env["TEROK_TOKEN_BROKER_PORT"], port.to_string());
    assert_eq!(env["ANTHROPIC_UNIX_SOCKET"], "/tmp/terok-vault.sock");
    assert!(env["ANTHROPIC_API_KEY"].starts_with("terok-p-"), "{env:?}");
    assert!(!env.contains_key("TEROK_VAULT_LOOPBACK_PORT"), "{env:?}");

    let argv = session.first_run_argv();
    assert_eq!(
        values_of(&argv, "--add-host"),
        ["host.containers.internal:10.88.0.1"],
        "{argv:?}"
    );
    assert!(
        values_of(&argv, "-v")
            .iter()
            .all(|v| !v.contains("/run/terok/vault")),
        "no socket is mounted: {argv:?}"
    );
    // The firewall: exactly this address and port, ahead of the private ranges' refusal.
    let ruleset = std::fs::read_to_string(task.task_dir().join("shield/ruleset.nft")).unwrap();
    let rule = format!("ip daddr 10.88.0.1 tcp dport {port} accept");
    assert_eq!(
        ruleset.matches("10.88.0.1").count(),
        2,
        "the port, then the rest refused"
    );
    assert!(
        ruleset.find(&rule).unwrap() < ruleset.find("10.0.0.0/8").unwrap(),
        "{ruleset}"
    );
    // The daemon serves it: the listener is open under the task's name.
    assert_eq!(session.listeners().await, [task.name().to_owned()]);
    let name = task.name().to_owned();
    session.executor.remove_task(&name).await.unwrap();
    session.assert_nothing_left("rm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootless_the_listener_is_on_the_loopback_behind_the_firewall_only() {
    let session = tcp_session(1000, "").await;
    let task = session
        .executor
        .launch(&session.headless("hi"), &mut |_| {})
        .await
        .unwrap();
    let record = task.record().tcp.clone().unwrap();
    assert_eq!(record.bind.to_string(), "127.0.0.1");
    assert_eq!(record.seen_as.to_string(), "10.0.2.2");
    let port = record.vault_port.unwrap();
    let argv = session.first_run_argv();
    assert_eq!(
        values_of(&argv, "--network"),
        ["slirp4netns:allow_host_loopback=true"]
    );
    assert_eq!(
        values_of(&argv, "--add-host"),
        ["host.containers.internal:10.0.2.2"]
    );
    let ruleset = std::fs::read_to_string(task.task_dir().join("shield/ruleset.nft")).unwrap();
    assert!(
        ruleset.contains(&format!("ip daddr 10.0.2.2 tcp dport {port} accept")),
        "{ruleset}"
    );
    let name = task.name().to_owned();
    session.executor.remove_task(&name).await.unwrap();

    // Unfiltered, the whole loopback would be the agent's: refused, nothing left.
    let mut options = session.headless("hi");
    options.egress = Some(Egress::Open);
    let err = launch_err(&session, &options).await;
    assert_eq!(tcp_refusal(&err), Some(&TcpRefusal::RootlessOpen), "{err}");
    session.assert_nothing_left("rootless open").await;
    // A rootless podman network's gateway is not this host's.
    let mut options = session.headless("hi");
    options.network = Some("lab".into());
    let err = launch_err(&session, &options).await;
    assert_eq!(
        tcp_refusal(&err),
        Some(&TcpRefusal::RootlessNetwork),
        "{err}"
    );
    session.assert_nothing_left("rootless network").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_a_tcp_listener_cannot_serve_are_refused_and_leave_nothing() {
    let session = tcp_session(0, "").await;
    let mut offline = session.headless("hi");
    offline.egress = Some(Egress::Offline);
    let err = launch_err(&session, &offline).await;
    assert_eq!(tcp_refusal(&err), Some(&TcpRefusal::Offline), "{err}");
    session.assert_nothing_left("offline").await;
    session.fake_runtime().set_network_gateway("lab", None);
    let mut no_gateway = session.headless("hi");
    no_gateway.network = Some("lab".into());
    let err = launch_err(&session, &no_gateway).await;
    assert_eq!(
        err.to_string(),
        "config.yml `services.mode: tcp` cannot serve this task: the network `lab` has no \
         gateway on this host to listen on"
    );
    session.assert_nothing_left("no gateway").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_address_places_the_listener_for_a_remote_engine() {
    let session = tcp_session(1000, "  address: 127.0.0.3\nvault:\n  port: 28577\n").await;
    let mut options = session.headless("hi");
    // With an address of its own, an unfiltered task opens nothing of this host's loopback.
    options.egress = Some(Egress::Open);
    let task = session
        .executor
        .launch(&options, &mut |_| {})
        .await
        .unwrap();
    let record = task.record().tcp.clone().unwrap();
    assert_eq!(record.bind.to_string(), "127.0.0.3");
    assert_eq!(record.vault_port, Some(28577), "vault.port is the port");
    let argv = session.first_run_argv();
    assert!(values_of(&argv, "--network").is_empty(), "{argv:?}");
    assert_eq!(
        values_of(&argv, "--add-host"),
        ["host.containers.internal:127.0.0.3"]
    );
    // The listener answers there with the task's token (loopback, this test's own).
    let token = vault_env(&task.task_dir())["ANTHROPIC_API_KEY"].clone();
    assert!(token.starts_with("terok-p-"));
    let stream = tokio::net::TcpStream::connect(("127.0.0.3", 28577)).await;
    assert!(stream.is_ok(), "{stream:?}");
    // A second task cannot have the one fixed port.
    let err = launch_err(&session, &options).await;
    assert!(err.to_string().contains("no free port"), "{err}");
    let name = task.name().to_owned();
    session.executor.remove_task(&name).await.unwrap();
    session.assert_nothing_left("rm").await;
}
