//! The vault daemon killed with SIGKILL while three tasks run: the next CLI call (`list`)
//! starts it again, it reopens every task's listener with the tokens the containers already
//! hold, and the agents' next requests go through — no task is launched again.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{Host, REAL_KEY, text};
use terok_testkit::podman::require_podman;
use terok_testkit::upstream::MockUpstream;

/// The HTTP status `task`'s agent gets for a model list through the vault, with the phantom
/// token it was launched with ("000" when nothing answers).
fn agent_request(host: &Host, task: &str) -> String {
    let out = host
        .env
        .command("podman")
        .args(["exec", task, "bash", "-lc"])
        .arg(
            "curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
             -H \"x-api-key: $ANTHROPIC_API_KEY\" \"$ANTHROPIC_BASE_URL/v1/models\"",
        )
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The daemon's pid, from `vault status`.
fn vault_pid(host: &Host) -> Option<u32> {
    let out = host.run(&["vault", "status"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Status:        running (pid "))
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_vault_killed_under_three_tasks_comes_back_with_their_listeners_and_tokens() {
    if !require_podman(
        "a_vault_killed_under_three_tasks_comes_back_with_their_listeners_and_tokens",
    ) {
        return;
    }
    let host = Host::new();
    // Claude's requests go to a local mock instead of the vendor.
    let upstream = MockUpstream::start().unwrap();
    let overrides = host.env.user_config_dir().join("agent/agents");
    std::fs::write(
        overrides.join("claude.yaml"),
        format!("vault:\n  upstream: {}\n", upstream.url()),
    )
    .unwrap();
    let out = host.run(&["vault", "routes"]);
    assert!(out.status.success(), "{}", text(&out));

    let tasks: Vec<String> = (0..3).map(|_| host.run_interactive()).collect();
    for task in &tasks {
        assert_eq!(agent_request(&host, task), "200", "{task} before the kill");
    }
    let requests_before = upstream.requests().len();

    let pid = vault_pid(&host).expect("the vault runs");
    kill_and_wait(pid);
    for task in &tasks {
        assert_ne!(
            agent_request(&host, task),
            "200",
            "{task} with the vault dead"
        );
    }

    // The next CLI call, even one that only lists, starts it again.
    let out = host.run(&["list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("The vault had died while tasks were running; started it again"),
        "{}",
        text(&out)
    );
    let restarted = vault_pid(&host).expect("the vault runs again");
    assert_ne!(restarted, pid);
    for task in &tasks {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = agent_request(&host, task);
            if status == "200" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{task} after the restart: {status}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let seen = upstream.requests();
    assert_eq!(
        seen.len(),
        requests_before + 3,
        "one request per task got through"
    );
    assert!(seen.iter().all(|r| r.header("x-api-key") == Some(REAL_KEY)));
    let mut holders = host.token_holders();
    holders.sort();
    let mut expected = tasks.clone();
    expected.sort();
    assert_eq!(holders, expected, "the same tasks hold tokens, none new");

    // A vault stopped on purpose is left stopped.
    let out = host.run(&["vault", "stop"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = host.run(&["list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("started it again"), "{}", text(&out));
    assert_eq!(vault_pid(&host), None);

    // So is one that died and was then stopped: `vault stop` clears what it left behind.
    let out = host.run(&["vault", "start"]);
    assert!(out.status.success(), "{}", text(&out));
    kill_and_wait(vault_pid(&host).expect("the vault runs"));
    let out = host.run(&["vault", "stop"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = host.run(&["list"]);
    assert!(!text(&out).contains("started it again"), "{}", text(&out));
    assert_eq!(vault_pid(&host), None);
}

/// SIGKILL to `pid`, and its end.
fn kill_and_wait(pid: u32) {
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_exists(pid) {
        assert!(Instant::now() < deadline, "{pid} did not die");
        std::thread::sleep(Duration::from_millis(50));
    }
}
