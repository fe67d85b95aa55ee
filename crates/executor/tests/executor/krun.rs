//! The krun guest path with real podman, up to the microVM: Debian's archive has no libkrun,
//! so the L0 image runs under runc with everything a krun launch adds (the `%host` public key
//! mounted for sshd, `TEROK_CONTAINER_RUNTIME=krun`, root for the guest's first process), its
//! SSH port published on loopback; the host then runs a command in it over SSH as `dev` with
//! the vault's `%host` key, and another key is turned away. A second test runs under the real
//! `krun` runtime and skips, loudly, where it is absent.

use std::time::Duration;

use terok_executor::{
    BuildRequest, Egress, ExecutorError, GuestShell, ImageSource, KrunOptions, KrunSupport,
    RunOptions, TaskRuntime, WebOptions,
};
use terok_podman::{ContainerRuntime, FakeCall, LABEL_EXECUTOR, PodmanCli, RunSpec};
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::podman::require_podman;

use crate::support::Session;

/// The L0 image of the local base (built when missing).
async fn l0_image(session: &Session<PodmanCli>) -> String {
    ensure_base_image(&mut |_| {}).unwrap();
    // L0 is what the guest needs; the agent layer of an empty selection is the cheapest L1.
    let request = BuildRequest::new(BASE_IMAGE, Vec::new());
    let _lock = terok_testkit::agents::machine_lock("launch-images").unwrap();
    let built = session
        .executor
        .ensure_images(&request, &mut |_| {})
        .await
        .unwrap();
    built.l0.tag
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the guest (its first process `terok-krun-guest`) with the krun arguments, under
/// `runtime` (`None`: podman's default); returns its name and the shell that reaches it.
async fn start_guest(
    session: &Session<PodmanCli>,
    image: &str,
    runtime: Option<&str>,
) -> (String, GuestShell) {
    start_guest_with(session, image, runtime, Vec::new()).await
}

/// [`start_guest`] with `volumes` mounted besides.
async fn start_guest_with(
    session: &Session<PodmanCli>,
    image: &str,
    runtime: Option<&str>,
    volumes: Vec<terok_podman::VolumeSpec>,
) -> (String, GuestShell) {
    let executor = &session.executor;
    let host = executor.krun_host().unwrap();
    let name = format!("terok-krun-test-{}-{}", std::process::id(), free_port());
    let port = free_port();
    let mut spec = RunSpec {
        name: name.clone(),
        image: image.to_owned(),
        command: vec![terok_krun_guest()],
        labels: vec![(LABEL_EXECUTOR.to_owned(), "1".to_owned())],
        user_mapping: executor.container_user(None).unwrap().mapping,
        publish: vec![format!("127.0.0.1:{port}:22")],
        volumes,
        ..RunSpec::default()
    };
    host.apply(&mut spec);
    spec.runtime = runtime.map(str::to_owned);
    let scratch = session.env.work_dir().join(&name);
    std::fs::create_dir_all(&scratch).unwrap();
    let runtime_handle = executor.runtime();
    runtime_handle.create(&spec, &scratch).await.unwrap();
    runtime_handle.start(&name).await.unwrap();
    let shell = GuestShell::new(
        port,
        &host.keypair.private_key,
        &session.env.work_dir().join(format!("{name}.known_hosts")),
    );
    (name, shell)
}

/// Removes the guest container however the test ends.
struct Guest(String);

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = std::process::Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

fn terok_krun_guest() -> String {
    "terok-krun-guest".to_owned()
}

/// Waits until the guest's sshd lets the `%host` key in; the last output otherwise.
fn wait_for_login(shell: &GuestShell) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..150 {
        let out = shell.command("true").output().unwrap();
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_is_reached_over_ssh_with_the_vaults_host_key_only() {
    if !require_podman("the_guest_is_reached_over_ssh_with_the_vaults_host_key_only") {
        return;
    }
    let session = Session::with_runtime(PodmanCli::new());
    let image = l0_image(&session).await;
    let (name, shell) = start_guest(&session, &image, None).await;
    let _guest = Guest(name);
    wait_for_login(&shell).unwrap_or_else(|err| panic!("no SSH login: {err}"));
    let out = shell
        .command("bash -lc 'id -un; cat /etc/ssh/authorized_keys.d/terok; git --version'")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("dev"), "{stdout}");
    let host = session.executor.krun_host().unwrap();
    assert_eq!(lines.next(), Some(host.keypair.public_line.as_str()));
    assert!(lines.next().unwrap_or_default().starts_with("git version"));
    // Another key gets nowhere.
    let other = session.env.work_dir().join("other-key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(made.success());
    let mut stranger = shell.clone();
    stranger.identity = other;
    let out = stranger.command("true").output().unwrap();
    assert!(
        !out.status.success(),
        "a key the guest does not know logged in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_under_the_real_krun_runtime_is_reached_the_same_way() {
    if !require_podman("a_guest_under_the_real_krun_runtime_is_reached_the_same_way") {
        return;
    }
    let session = Session::with_runtime(PodmanCli::new());
    if let KrunSupport::Missing(missing) = session.executor.krun_support() {
        eprintln!(
            "\n*** SKIPPED a_guest_under_the_real_krun_runtime_is_reached_the_same_way: {} ***\n",
            missing.join("; ")
        );
        return;
    }
    let image = l0_image(&session).await;
    let (name, shell) = start_guest(&session, &image, Some("krun")).await;
    let _guest = Guest(name);
    wait_for_login(&shell).unwrap_or_else(|err| panic!("no SSH login into the microVM: {err}"));
}

/// A krun launch that cannot work is refused before anything exists: web and tool tasks (they
/// need `podman exec` into the guest), an offline one (the guest is reached through a
/// published port), and on a host without libkrun or /dev/kvm the `krun` runtime itself, with
/// what provides each missing piece.
#[tokio::test]
async fn a_krun_launch_that_cannot_work_creates_nothing() {
    let session = Session::fake();
    let krun = || Some(TaskRuntime::Krun(KrunOptions::default()));
    let mut web = RunOptions::web(
        "claude",
        "project",
        WebOptions::default(),
        ImageSource::Tag(crate::support::IMAGE.into()),
    );
    web.runtime = krun();
    let err = session
        .executor
        .launch(&web, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExecutorError::KrunModeUnsupported { mode: "web" }),
        "{err}"
    );
    let mut offline = session.headless("hi");
    offline.runtime = krun();
    offline.egress = Some(Egress::Offline);
    let err = session
        .executor
        .launch(&offline, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ExecutorError::KrunNeedsNetwork), "{err}");
    if let KrunSupport::Missing(missing) = session.executor.krun_support() {
        let mut headless = session.headless("hi");
        headless.runtime = krun();
        headless.egress = Some(Egress::Open);
        let err = session
            .executor
            .launch(&headless, &mut |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecutorError::KrunUnavailable { missing: m } if *m == missing),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("this host cannot start krun microVMs: ")
        );
    }
    assert!(session.task_dirs().is_empty());
    assert!(
        session
            .fake_runtime()
            .calls()
            .iter()
            .all(|c| !matches!(c, FakeCall::Create { .. } | FakeCall::Run { .. }))
    );
}

/// config.yml's `container.runtime: krun` makes krun the default; `--runtime` wins; and
/// `TEROK_KRUN_OCI_RUNTIME` names the OCI runtime a guest starts with.
#[test]
fn the_runtime_comes_from_the_run_then_config() {
    let session = Session::fake_with(|env| {
        env.write_user_config("container:\n  runtime: krun\n")
            .unwrap();
    });
    let executor = &session.executor;
    assert_eq!(
        executor.task_runtime(None),
        TaskRuntime::Krun(KrunOptions::default())
    );
    assert_eq!(
        executor.task_runtime(Some(&TaskRuntime::Podman)),
        TaskRuntime::Podman
    );
    assert_eq!(
        Session::fake().executor.task_runtime(None),
        TaskRuntime::Podman
    );
    let overridden = Session::fake_with(|env| {
        env.write_user_config("container:\n  runtime: krun\n")
            .unwrap();
    });
    let mut env = overridden.env.host_env();
    env.set_var("TEROK_KRUN_OCI_RUNTIME", "runc");
    let executor = terok_executor::Executor::builder(env)
        .config(terok_core::config::ConfigSource::Layered)
        .build_with_runtime(terok_podman::FakeRuntime::new())
        .unwrap();
    let TaskRuntime::Krun(options) = executor.task_runtime(None) else {
        panic!("krun from config");
    };
    assert_eq!(options.oci_runtime, "runc");
}

/// An "ACP server" that ignores its stdin, answers nothing, and starts a child of its own.
const STUBBORN: &str = "#!/bin/sh\nsleep 1000 &\nwhile :; do sleep 1; done\n";

/// The processes in the guest that carry an ACP session mark.
fn marked_in_guest(shell: &GuestShell) -> String {
    let out = shell
        .command("grep -l TEROK_ACP_SESSION= /proc/[0-9]*/environ 2>/dev/null || true")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The ACP proxy's way into a krun guest: agents' servers are started over SSH (the guest has
/// no `podman exec`), in the task's environment; which agents have one is asked the same way;
/// and closing a link ends the server and everything it started in the guest, and the ssh
/// on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acp_servers_start_in_the_guest_over_ssh_and_end_with_their_link() {
    if !require_podman("acp_servers_start_in_the_guest_over_ssh_and_end_with_their_link") {
        return;
    }
    let session = Session::with_runtime(PodmanCli::new());
    let image = l0_image(&session).await;
    let script = session.env.work_dir().join("terok-stubborn-acp");
    std::fs::write(&script, STUBBORN).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let volume = terok_podman::VolumeSpec {
        host: script,
        container: "/usr/local/bin/terok-stubborn-acp".to_owned(),
        sharing: terok_podman::Sharing::None,
        read_only: true,
    };
    let (name, shell) = start_guest_with(&session, &image, None, vec![volume]).await;
    let _guest = Guest(name);
    wait_for_login(&shell).unwrap_or_else(|err| panic!("no SSH login: {err}"));

    let launcher = terok_acp::ContainerLauncher::with_transport(std::sync::Arc::new(
        terok_executor::GuestExec(shell.clone()),
    ));
    let servable =
        terok_acp::Launcher::servable(&launcher, &["stubborn".to_owned(), "absent".to_owned()])
            .await;
    assert_eq!(servable, Some(vec!["stubborn".to_owned()]));
    let link = terok_acp::AgentLink::start(&launcher, "stubborn").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while marked_in_guest(&shell).lines().count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    link.close().await;
    assert_eq!(marked_in_guest(&shell), "", "left in the guest");
    let local = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!("ssh .*-p {} .*TEROK_ACP_SESSION=", shell.port),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&local.stdout).trim().is_empty(),
        "an ssh is left on the host"
    );
}
