//! End to end as a Kubernetes Pod: `run … --emit kube` writes the task, `podman kube play`
//! runs it on an internal podman network of the test's own, and the real Claude Code fixes
//! the failing test of a repository the Pod's init container clones (from a git daemon in a
//! container on that network) — through the vault sidecar, which alone holds the real key.
//! The model sees only the real key; the agent's container never has it (not in its mounts,
//! its environment or anywhere in its file system), while the sidecar's mount does.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::e2e::{ANSWER, Run, Scenario, files_containing};
use common::text;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent, machine_lock};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

const REAL_KEY: &str = "sk-ant-api03-REAL-kube-sidecar-key-stays-in-the-secret-9c1d";

/// An internal podman network of the test's own (no route out), with its git daemon; the
/// Pod and the daemon are removed with it.
struct PodNetwork {
    name: String,
    pod: String,
    git_server: String,
}

impl PodNetwork {
    fn create(pod: &str) -> Self {
        let name = format!("terok-test-kube-{}", std::process::id());
        for attempt in 0..40 {
            let subnet = format!(
                "198.18.{}.0/24",
                150 + (std::process::id() as usize + attempt) % 50
            );
            let out = podman(&[
                "network",
                "create",
                "--internal",
                "--subnet",
                &subnet,
                &name,
            ]);
            if out.status.success() {
                return Self {
                    git_server: format!("{name}-git"),
                    name,
                    pod: pod.to_owned(),
                };
            }
            assert!(text(&out).contains("subnet"), "{}", text(&out));
        }
        panic!("no free test subnet");
    }

    /// Serves `repo` (a git repository) as `git://ADDRESS/project`; the address.
    fn serve_git(&self, image: &str, repo: &Path) -> String {
        let volume = format!("{}:/srv/project:ro,z", repo.display());
        let out = podman(&[
            "run",
            "-d",
            "--name",
            &self.git_server,
            "--network",
            &self.name,
            "--user",
            "0",
            "-v",
            &volume,
            image,
            "git",
            "-c",
            "safe.directory=*",
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--base-path=/srv",
            "--listen=0.0.0.0",
            "--port=9418",
            "/srv",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
        let address = podman(&["inspect", "--format", format, &self.git_server]);
        String::from_utf8_lossy(&address.stdout).trim().to_owned()
    }

    /// This host's address on the network (its bridge is up once a container runs on it).
    fn gateway(&self) -> String {
        let format = "{{range .Subnets}}{{.Gateway}}{{end}}";
        let out = podman(&["network", "inspect", "--format", format, &self.name]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        let _ = podman(&["pod", "rm", "-f", "-t", "0", &self.pod]);
        let _ = podman(&["rm", "-f", "-t", "0", &self.git_server]);
        let _ = podman(&["secret", "rm", &format!("{}-vault", self.pod)]);
        let _ = podman(&["network", "rm", "-f", &self.name]);
    }
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().unwrap()
}

fn must_git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
}

/// Waits until container `name` has exited; its exit code.
fn wait_for_exit(name: &str, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let out = podman(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            name,
        ]);
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if let Some(code) = state.strip_prefix("exited ") {
            return code.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{name} still {state:?}: {}",
            logs(name)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn logs(name: &str) -> String {
    text(&podman(&["logs", name]))
}

fn mounts(name: &str) -> String {
    text(&podman(&["inspect", "--format", "{{json .Mounts}}", name]))
}

#[test]
fn claude_fixes_the_failing_test_in_a_pod_through_its_vault_sidecar() {
    if !require_podman("claude_fixes_the_failing_test_in_a_pod_through_its_vault_sidecar") {
        return;
    }
    if !terok_core::HostEnv::from_process().is_root() {
        eprintln!("skipped: the Pod is played by rootful podman");
        return;
    }
    let scenario = Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: REAL_KEY,
        config: LAUNCH_TEST_CONFIG,
        suite: "bookworm",
        image_lock: "launch-images",
        turns: 3,
    };
    let pod = format!("terok-kube-e2e-{}", std::process::id());
    let network = PodNetwork::create(&pod);

    // The repository the Pod clones, served from a container on the network (whose start
    // brings up the bridge the model then listens on).
    let staging = tempfile::tempdir().unwrap();
    let repo = staging.path().join("project");
    std::fs::create_dir_all(&repo).unwrap();
    for entry in std::fs::read_dir(common::e2e::demo_dir().join("sample-project")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), repo.join(entry.file_name())).unwrap();
    }
    must_git(&repo, &["init", "-q", "-b", "main"]);
    must_git(&repo, &["add", "-A"]);
    must_git(
        &repo,
        &["commit", "-q", "-m", "a sample with a failing test"],
    );
    let image = {
        let images = podman(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "reference=*terok-l0*",
        ]);
        String::from_utf8_lossy(&images.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    };
    let git_image = image.unwrap_or_else(|| "localhost/debian:bookworm".to_owned());
    let git_address = network.serve_git(&git_image, &repo);
    let gateway = network.gateway();

    let run = Run::with_model_at(&scenario, &format!("{gateway}:0"), |env| {
        install_scripted_agent(env).unwrap();
    });
    terok_testkit::cli::store_key(&run.env, common::BIN, "claude", REAL_KEY);
    {
        let _lock = machine_lock(scenario.image_lock).unwrap();
        run.must(&["build"]);
    }
    let secret_file = run.env.root().join("task-secret.yaml");
    let url = format!("git://{git_address}/project");
    let emitted = run.must(&[
        "run",
        "claude",
        &url,
        "-p",
        "fix the failing test",
        "--timeout",
        "600",
        "--shield",
        "offline",
        "--no-gate",
        "--name",
        &pod,
        "--emit",
        "kube",
        "--kube-secret",
        secret_file.to_str().unwrap(),
    ]);
    let task_yaml = String::from_utf8(emitted.stdout.clone()).unwrap();
    assert!(
        !task_yaml.contains(REAL_KEY),
        "the real key is in the printed objects"
    );
    assert!(!text(&emitted).contains(REAL_KEY));
    let secret_yaml = std::fs::read_to_string(&secret_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(secret_yaml.contains("kind: Secret"), "{secret_yaml}");
    assert!(
        !secret_yaml.contains(REAL_KEY),
        "the Secret's data is base64, as the API has it"
    );

    // Played as a user of a cluster would apply it: the Secret, then the task.
    let play = run.env.root().join("play.yaml");
    std::fs::write(&play, format!("{secret_yaml}---\n{task_yaml}")).unwrap();
    let played = podman(&[
        "kube",
        "play",
        "--network",
        &network.name,
        play.to_str().unwrap(),
    ]);
    assert!(played.status.success(), "{}", text(&played));
    let agent = format!("{pod}-agent");
    let sidecar = format!("{pod}-vault");
    let code = wait_for_exit(&agent, Duration::from_secs(900));
    let agent_logs = logs(&agent);
    assert_eq!(
        code,
        0,
        "{agent_logs}\n--- sidecar:\n{}\nmismatches: {:?}\nlast request: {}",
        logs(&sidecar),
        run.model.mismatches(),
        run.last_request_tail()
    );
    assert!(agent_logs.contains(ANSWER), "{agent_logs}");
    assert_eq!(
        run.model.turns_served(),
        scenario.turns,
        "read, edit, answer"
    );
    assert!(
        run.model.mismatches().is_empty(),
        "{:?}",
        run.model.mismatches()
    );
    run.assert_upstream_saw_only_the_real_key();
    // The sidecar ends after the agent, so the Pod completes.
    assert_eq!(
        wait_for_exit(&sidecar, Duration::from_secs(30)),
        0,
        "{}",
        logs(&sidecar)
    );

    // The fix is in the Pod's workspace (its emptyDir, a volume of podman's): the sample's
    // test passes there.
    let out_dir = std::path::PathBuf::from(mount_source(&agent, "/workspace"));
    let calc = std::fs::read_to_string(out_dir.join("calc.py")).unwrap();
    assert!(calc.contains("return a + b"), "{calc}");
    let passing = Command::new("python3")
        .args(["-m", "unittest", "-q"])
        .current_dir(&out_dir)
        .output()
        .unwrap();
    assert!(passing.status.success(), "{}", text(&passing));

    // The Secret is the sidecar's alone: mounted there, nowhere in the agent's container.
    assert!(
        mounts(&sidecar).contains("/etc/terok-vault"),
        "{}",
        mounts(&sidecar)
    );
    let agent_mounts = mounts(&agent);
    assert!(!agent_mounts.contains("/etc/terok-vault"), "{agent_mounts}");
    let inspect = text(&podman(&["inspect", &agent]));
    assert!(
        !inspect.contains(REAL_KEY),
        "the real key is in the agent's config"
    );
    assert!(
        inspect.contains("terok-p-"),
        "the agent got its phantom token"
    );
    let export = staging.path().join("agent.tar");
    let exported = podman(&["export", "-o", export.to_str().unwrap(), &agent]);
    assert!(exported.status.success(), "{}", text(&exported));
    let mut leaks = files_containing(staging.path(), REAL_KEY.as_bytes());
    // And every volume the agent mounts (its workspace, its configuration directories, the
    // vault's socket directory, the end file's).
    let sources = podman(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Source}}\n{{end}}",
        &agent,
    ]);
    let sources = String::from_utf8_lossy(&sources.stdout).into_owned();
    assert!(sources.lines().count() >= 4, "{sources}");
    for source in sources.lines().filter(|l| !l.is_empty()) {
        leaks.extend(files_containing(Path::new(source), REAL_KEY.as_bytes()));
    }
    assert!(
        leaks.is_empty(),
        "the real key is in the agent's file system: {leaks:?}"
    );
    // The same search finds the key where it is: the sidecar's bundle.
    let bundle_dir = mount_source(&sidecar, "/etc/terok-vault");
    let bytes = std::fs::read(Path::new(&bundle_dir).join("bundle.json")).unwrap();
    let decoded = base64_or_raw(&bytes);
    assert!(
        decoded
            .windows(REAL_KEY.len())
            .any(|w| w == REAL_KEY.as_bytes()),
        "the sidecar's bundle holds the key"
    );
}

/// Where the mount of container `name` at `destination` comes from on this host.
fn mount_source(name: &str, destination: &str) -> String {
    let format = format!(
        "{{{{range .Mounts}}}}{{{{if eq .Destination \"{destination}\"}}}}{{{{.Source}}}}{{{{end}}}}{{{{end}}}}"
    );
    let out = podman(&["inspect", "--format", &format, name]);
    let source = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !source.is_empty(),
        "{name} mounts nothing at {destination}: {}",
        text(&out)
    );
    source
}

/// `bytes`, or what they decode to when they are base64 (podman 4.3's secret files).
fn base64_or_raw(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(bytes.trim_ascii())
        .unwrap_or_else(|_| bytes.to_vec())
}
