//! A second, real Podman engine on this machine for the remote-engine tests: `podman system
//! service` on a socket of its own, with its own storage, run root and network configuration,
//! so nothing it has is this host's engine's. Its two networks are the test's own: one its
//! builds use (the registries are reachable from it), and an internal one the tasks run on,
//! which reaches this host's address on it and nothing else (no route out, no name server).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::text;

/// The engine; stopped and its storage removed when dropped.
pub struct RemoteEngine {
    dir: tempfile::TempDir,
    service: Child,
    /// The network tasks run on (internal).
    pub run_network: String,
    /// This host's address on it, where the task's listeners go (`services.address`).
    pub host_address: String,
}

impl RemoteEngine {
    /// Starts the engine and copies this host's `image` into it (no registry is reachable).
    pub fn start(image: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("terok-remote-engine-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let net = dir.path().join("net");
        std::fs::create_dir_all(&net).unwrap();
        let tag = std::process::id() % 10_000;
        let [build_subnet, run_subnet] = free_subnets();
        let build = format!("terokrb{tag}");
        let run = format!("terokrr{tag}");
        write_network(&net, &build, &build_subnet, false);
        write_network(&net, &run, &run_subnet, true);
        write_containers_conf(dir.path(), &build);
        let service = engine_podman(dir.path())
            .args(["system", "service", "--time=0"])
            .arg(format!(
                "unix://{}",
                dir.path().join("podman.sock").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let engine = Self {
            dir,
            service,
            run_network: run,
            host_address: run_subnet.replace(".0/24", ".1"),
        };
        engine.wait_for_socket();
        engine.copy_image(image);
        engine
    }

    /// `CONTAINER_HOST` of the engine.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    /// A `podman` talking to the engine.
    pub fn podman(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINER_HOST", self.url());
        cmd
    }

    fn wait_for_socket(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .podman()
                .args(["version"])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the second podman engine did not answer on {}", self.url());
    }

    fn copy_image(&self, image: &str) {
        let archive = self.dir.path().join("image.tar");
        let out = Command::new("podman")
            .args(["save", "--quiet", "-o"])
            .arg(&archive)
            .arg(image)
            .env_remove("CONTAINER_HOST")
            .output()
            .unwrap();
        assert!(out.status.success(), "save {image}: {}", text(&out));
        let out = self
            .podman()
            .args(["load", "--quiet", "-i"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(out.status.success(), "load {image}: {}", text(&out));
        let _ = std::fs::remove_file(&archive);
        // A different engine: this host's does not have what it builds, and vice versa.
        let ours = Command::new("podman")
            .args(["info", "--format", "{{.Store.GraphRoot}}"])
            .env_remove("CONTAINER_HOST")
            .output()
            .unwrap();
        let theirs = self
            .podman()
            .args(["info", "--format", "{{.Store.GraphRoot}}"])
            .output()
            .unwrap();
        assert_ne!(text(&ours).trim(), text(&theirs).trim());
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        let _ = self.podman().args(["rm", "-af", "-t", "0"]).output();
        let _ = self.service.kill();
        let _ = self.service.wait();
        let _ = engine_podman(self.dir.path())
            .args(["system", "reset", "--force"])
            .output();
    }
}

/// A local `podman` on the engine's own state under `dir`: storage, run root, the libpod tmp
/// dir (its liveness file, events and locks) and network definitions. Any of them left at this
/// host's default would be shared with this host's engine, and `system reset` would wipe it:
/// a reset with the default tmp dir removed `/run/libpod` under the other tests' feet.
fn engine_podman(dir: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .arg("--tmpdir")
        .arg(dir.join("tmp"))
        .arg("--network-config-dir")
        .arg(dir.join("net"))
        .env("CONTAINERS_CONF", dir.join("containers.conf"))
        .env_remove("CONTAINER_HOST");
    cmd
}

/// This host's containers.conf (the runtime and limits this machine needs), with the build
/// network as the engine's default (never this host's `podman0`) and file locks in its own tmp
/// dir: the default shared-memory locks are one set per host, and an engine starting on a
/// fresh tmp dir frees them all.
fn write_containers_conf(dir: &Path, default_network: &str) {
    let system = std::fs::read_to_string("/etc/containers/containers.conf").unwrap_or_default();
    let engine = "[engine]\nlock_type = \"file\"\n";
    let mut conf = if system.contains("[engine]\n") {
        system.replacen("[engine]\n", engine, 1)
    } else {
        format!("{system}\n{engine}")
    };
    conf.push_str(&format!(
        "\n[network]\ndefault_network = \"{default_network}\"\n"
    ));
    std::fs::write(dir.join("containers.conf"), conf).unwrap();
}

/// Two `/24`s of 198.18.0.0/15 (reserved for tests) that no interface of this host is on.
fn free_subnets() -> [String; 2] {
    let addresses = Command::new("ip").args(["-br", "addr"]).output().unwrap();
    let mut addresses = String::from_utf8_lossy(&addresses.stdout).into_owned();
    // And this host's engine's networks, whether or not their bridges are up yet.
    let networks = std::fs::read_dir("/etc/containers/networks");
    for file in networks.into_iter().flatten().flatten() {
        addresses.push_str(&std::fs::read_to_string(file.path()).unwrap_or_default());
    }
    let mut free = (200..250)
        .map(|n| format!("198.18.{n}.0/24"))
        .filter(|subnet| !addresses.contains(&subnet.replace(".0/24", ".")));
    [free.next().unwrap(), free.next().unwrap()]
}

/// A network definition of the engine's own: a bridge named `name` on `subnet`.
fn write_network(dir: &Path, name: &str, subnet: &str, internal: bool) {
    let gateway = subnet.replace(".0/24", ".1");
    let id: String = format!("{name:0<64}")
        .bytes()
        .map(|b| char::from(b"0123456789abcdef"[usize::from(b % 16)]))
        .collect();
    let json = serde_json::json!({
        "name": name,
        "id": id,
        "driver": "bridge",
        "network_interface": name,
        "created": "2026-01-01T00:00:00Z",
        "subnets": [{ "subnet": subnet, "gateway": gateway }],
        "ipv6_enabled": false,
        "internal": internal,
        "dns_enabled": false,
        "ipam_options": { "driver": "host-local" }
    });
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
}
