//! The SSH signer with real podman and a real sshd: a key made by `ssh-keygen` is imported into
//! the vault; a second container on the test's own network runs sshd with a bare repository
//! and the key's public half authorized; a task clones it over SSH, commits and pushes — its
//! git signs through the task's signer socket. No piece of the private key is anywhere in the
//! task container, its environment, its mounts or its create command.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::e2e::files_containing;
use common::network::TestNetwork;
use common::{Host, announced_name, text};
use terok_testkit::agents::machine_lock;
use terok_testkit::podman::require_podman;

const SSHD_IMAGE: &str = "localhost/terok-test-sshd:bookworm";

/// The sshd image: Debian's openssh-server and git on the local bookworm base (built once).
fn ensure_sshd_image() {
    let _lock = machine_lock("sshd-image").unwrap();
    let exists = Command::new("podman")
        .args(["image", "exists", SSHD_IMAGE])
        .status()
        .unwrap()
        .success();
    if exists {
        return;
    }
    let dir = std::env::temp_dir().join(format!("terok-sshd-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Containerfile"),
        "FROM localhost/debian:bookworm\n\
         RUN apt-get update && apt-get install -y --no-install-recommends openssh-server git \
         && rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd\n",
    )
    .unwrap();
    let out = Command::new("podman")
        .args(["build", "-t", SSHD_IMAGE])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out));
}

/// sshd as `git@` with `authorized` and a bare repository `/srv/repo.git` with one commit.
const SSHD_SCRIPT: &str = r#"set -e
useradd -m -s /bin/bash git
install -d -o git -g git -m 700 /home/git/.ssh
printf '%s\n' "$AUTHORIZED" > /home/git/.ssh/authorized_keys
chown git:git /home/git/.ssh/authorized_keys && chmod 600 /home/git/.ssh/authorized_keys
git init -q --bare -b main /srv/repo.git
seed=$(mktemp -d)
git -C "$seed" init -q -b main
echo "served over ssh" > "$seed/README"
git -C "$seed" add README
git -C "$seed" -c user.name=t -c user.email=t@t commit -qm init
git -C "$seed" push -q /srv/repo.git main
chown -R git:git /srv/repo.git
ssh-keygen -A
exec /usr/sbin/sshd -D -e -o PasswordAuthentication=no -o PermitRootLogin=no
"#;

/// What the agent does: read the clone, commit, push over SSH, list the signer's keys, and look
/// for the private key anywhere it can read.
fn agent_script(needles: &[String]) -> String {
    // Each needle in two halves joined by the shell: the prompt file itself holds neither whole.
    let greps: Vec<String> = needles
        .iter()
        .map(|n| {
            let (a, b) = n.split_at(n.len() / 2);
            format!(
                "n='{a}''{b}'; grep -rIlF -- \"$n\" / --exclude-dir=proc --exclude-dir=sys \
                 2>/dev/null | sed 's/^/LEAK: /'; env | grep -F -- \"$n\" | sed 's/^/LEAK-ENV: /'"
            )
        })
        .collect();
    format!(
        "set -e; cd /workspace; cat README; echo change > agent.txt; git add agent.txt; \
         git -c user.name=agent -c user.email=agent@terok commit -qm 'from the agent'; \
         git push -q origin HEAD:refs/heads/from-agent && echo PUSHED; \
         echo \"AGENT-KEYS: $(ssh-add -l)\"; set +e; {}; exit 0",
        greps.join("; ")
    )
}

#[test]
fn a_task_clones_and_pushes_over_ssh_through_the_signer_and_never_holds_the_key() {
    if !require_podman("a_task_clones_and_pushes_over_ssh_through_the_signer") {
        return;
    }
    ensure_sshd_image();
    let host = Host::new();
    // A key of the user's, imported into the vault.
    let keys = host.env.work_dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key_path = keys.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ssh-e2e@terok", "-f"])
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let private = std::fs::read_to_string(&key_path).unwrap();
    let needles: Vec<String> = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .filter(|l| l.len() >= 40)
        .map(str::to_owned)
        .collect();
    assert!(!needles.is_empty());
    let out = host.run(&["ssh", "import", key_path.to_str().unwrap(), "--name", "e2e"]);
    assert!(out.status.success(), "{}", text(&out));
    let public = std::fs::read_to_string(key_path.with_extension("pub")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public.trim());
    let listed = host.run(&["ssh", "list"]);
    let fingerprint = String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("{}", text(&listed)))
        .to_owned();

    // The forge: sshd on the test's own network, the key's public half authorized.
    let mut network = TestNetwork::new(&host, "ssh");
    let authorized = format!("AUTHORIZED={}", public.trim());
    let forge = network.container(
        "sshd",
        &["--user", "root", "-e", &authorized],
        SSHD_IMAGE,
        &["bash", "-c", SSHD_SCRIPT],
    );
    let profiles = host.env.user_config_dir().join("shield/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(profiles.join("forge.txt"), format!("{forge}\n")).unwrap();
    let config = std::fs::read_to_string(host.env.user_config_dir().join("config.yml")).unwrap();
    host.env
        .write_user_config(&format!("{config}\nshield:\n  profiles: [forge]\n"))
        .unwrap();
    wait_for_sshd(&network);

    let url = format!("ssh://git@{forge}/srv/repo.git");
    let out = host.run(&[
        "run",
        "scripted",
        &url,
        "--no-gate",
        "--network",
        &network.name,
        "-p",
        &agent_script(&needles),
    ]);
    let all = text(&out);
    let task = announced_name(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("served over ssh"), "the clone: {all}");
    assert!(all.contains("PUSHED"), "the push: {all}");
    assert!(
        all.contains(&format!("AGENT-KEYS: 256 {fingerprint}")),
        "ssh-add lists the signer's key: {all}"
    );
    assert!(!all.contains("LEAK"), "{all}");
    let pushed = Command::new("podman")
        .args([
            "exec",
            network.server_name(0),
            "git",
            "--git-dir",
            "/srv/repo.git",
            "log",
            "-1",
            "--format=%s",
            "from-agent",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pushed.stdout).trim(),
        "from the agent"
    );

    // Its environment, its create command and what is mounted into it hold none of it.
    let inspect = Command::new("podman")
        .args(["container", "inspect", &task])
        .output()
        .unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    for needle in &needles {
        assert!(!inspect.contains(needle.as_str()), "in podman inspect");
    }
    let sources: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&inspect).unwrap()[0]["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Source"].as_str().map(str::to_owned))
            .collect();
    for source in &sources {
        for needle in &needles {
            let hits = files_containing(std::path::Path::new(source), needle.as_bytes());
            assert!(hits.is_empty(), "{hits:?}");
        }
    }
    let _ = host.run(&["rm", &task]);
}

/// Waits until sshd on the test network accepts connections (from the host, through the
/// container's own network namespace: nothing leaves the test's network).
fn wait_for_sshd(network: &TestNetwork<'_>) {
    for _ in 0..100 {
        let out = Command::new("podman")
            .args(["exec", network.server_name(0), "bash", "-c"])
            .arg("(exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null")
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("sshd did not start");
}
