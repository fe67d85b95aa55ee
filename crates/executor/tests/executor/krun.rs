//! The krun guest path with real podman, up to the microVM: Debian's archive has no libkrun,
//! so the L0 image runs under runc with everything a krun launch adds (the `%host` public key
//! mounted for sshd, `TEROK_CONTAINER_RUNTIME=krun`, root for the guest's first process), its
//! SSH port published on loopback; the host then runs a command in it over SSH as `dev` with
//! the vault's `%host` key, and another key is turned away. A second test runs under the real
//! `krun` runtime and skips, loudly, where it is absent.

use std::time::Duration;

use terok_executor::{BuildRequest, GuestShell, KrunSupport};
use terok_podman::{ContainerRuntime, LABEL_EXECUTOR, PodmanCli, RunSpec};
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
    let executor = &session.executor;
    // A real XDG_RUNTIME_DIR is the user's own and 0700; the key is refused anywhere else.
    let runtime_dir = session.env.host_env().path_var("XDG_RUNTIME_DIR").unwrap();
    std::fs::set_permissions(
        &runtime_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
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
