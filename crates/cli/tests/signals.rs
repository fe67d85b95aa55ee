//! SIGINT and SIGTERM to the CLI while it builds, launches or follows a headless run: a build
//! stops podman's and tags nothing; a followed run stops its container and revokes its tokens;
//! a launch cut short leaves only what `list` shows and `rm` / `vault clean` remove; another
//! task is never touched.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::{Host, text};
use terok_testkit::podman::require_podman;

fn signal(child: &Child, name: &str) {
    let sent = std::process::Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -s {name}");
}

/// Waits for `child` to exit, at most `limit`.
fn wait_for(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the CLI did not exit within {limit:?}: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A headless run of the stand-in agent that would take five minutes.
fn long_run(host: &Host) -> Child {
    host.spawn(&[
        "run",
        "scripted",
        "project",
        "-p",
        "sleep 300",
        "--credential",
        "claude",
    ])
}

/// An interactive task that must survive whatever the test does to the others.
fn bystander(host: &Host) -> String {
    host.run_interactive()
}

fn assert_untouched(host: &Host, task: &str) {
    assert!(
        host.list().iter().any(|(n, s)| n == task && s == "running"),
        "{task} still runs"
    );
    assert!(
        host.token_holders().contains(&task.to_owned()),
        "{task} keeps its tokens"
    );
}

#[test]
fn a_signal_to_a_followed_run_stops_its_container_and_revokes_its_tokens() {
    if !require_podman("a_signal_to_a_followed_run_stops_its_container_and_revokes_its_tokens") {
        return;
    }
    let host = Host::new();
    let other = bystander(&host);
    for name in ["INT", "TERM"] {
        let cli = long_run(&host);
        // Following: the container runs and the agent's first line has been relayed.
        let deadline = Instant::now() + Duration::from_secs(120);
        let task = loop {
            let running: Vec<String> = host
                .list()
                .into_iter()
                .filter(|(n, s)| s == "running" && n != &other)
                .map(|(n, _)| n)
                .collect();
            if let Some(task) = running.first() {
                break task.clone();
            }
            assert!(Instant::now() < deadline, "the run never started");
            std::thread::sleep(Duration::from_millis(200));
        };
        std::thread::sleep(Duration::from_secs(2));
        signal(&cli, name);
        let out = wait_for(cli, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(130), "SIG{name}: {}", text(&out));
        assert!(
            text(&out).contains("Interrupted: the container was stopped."),
            "SIG{name}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains(&format!(
                "Stopping {task} (interrupted): the agent gets 5 s to end"
            )),
            "SIG{name} is answered at once: {}",
            text(&out)
        );
        assert!(
            host.list().iter().any(|(n, s)| n == &task && s == "exited"),
            "SIG{name}: {:?}",
            host.list()
        );
        assert!(!host.token_holders().contains(&task), "SIG{name} revokes");
        let out = host.run(&["rm", &task]);
        assert!(out.status.success(), "{}", text(&out));
        assert_untouched(&host, &other);
    }
}

#[test]
fn a_launch_cut_short_leaves_only_what_rm_and_vault_clean_tidy() {
    if !require_podman("a_launch_cut_short_leaves_only_what_rm_and_vault_clean_tidy") {
        return;
    }
    let host = Host::new();
    let other = bystander(&host);
    // From reading the configuration, through the launch, to the container's first seconds.
    for (name, after_ms) in [
        ("TERM", 20),
        ("TERM", 150),
        ("INT", 400),
        ("TERM", 900),
        ("INT", 1_600),
    ] {
        let cli = long_run(&host);
        std::thread::sleep(Duration::from_millis(after_ms));
        signal(&cli, name);
        let out = wait_for(cli, Duration::from_secs(60));
        if out.status.code() == Some(130) {
            // Caught: an orderly stop, whether the container was up yet or not.
            let running: Vec<_> = host
                .list()
                .into_iter()
                .filter(|(n, s)| n != &other && s == "running")
                .collect();
            assert!(
                running.is_empty(),
                "SIG{name} after {after_ms} ms: {running:?}"
            );
            let holders: Vec<_> = host
                .token_holders()
                .into_iter()
                .filter(|n| n != &other)
                .collect();
            assert!(
                holders.is_empty(),
                "SIG{name} after {after_ms} ms: {holders:?}"
            );
        } else {
            // During the launch the signals keep their default action and end the CLI at
            // once; a podman it had started may still be finishing.
            assert_eq!(out.status.code(), None, "{}", text(&out));
            std::thread::sleep(Duration::from_secs(3));
        }

        for (task, _) in host.list() {
            if task != other {
                let out = host.run(&["rm", &task]);
                assert!(out.status.success(), "rm {task}: {}", text(&out));
            }
        }
        let out = host.run(&["vault", "clean", "--grace", "0"]);
        assert!(out.status.success(), "{}", text(&out));
        let left: Vec<_> = host
            .list()
            .into_iter()
            .filter(|(n, _)| n != &other)
            .collect();
        assert!(left.is_empty(), "SIG{name} after {after_ms} ms: {left:?}");
        let holders: Vec<_> = host
            .token_holders()
            .into_iter()
            .filter(|n| n != &other)
            .collect();
        assert!(
            holders.is_empty(),
            "SIG{name} after {after_ms} ms: {holders:?}"
        );
        assert_eq!(
            host.task_dirs().len(),
            1,
            "only the bystander's task directory"
        );
        assert_untouched(&host, &other);
    }
}

/// The `podman build` processes among the children of process `pid`.
fn podman_builds_of(pid: u32) -> Vec<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .filter(|child| {
            let argv = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = argv.split(|b| *b == 0).collect();
            argv.first().is_some_and(|p| p.ends_with(b"podman")) && argv.contains(&&b"build"[..])
        })
        .collect()
}

/// The image id `tag` names.
fn image_id(host: &Host, tag: &str) -> String {
    let out = host
        .env
        .command("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_build_cut_short_stops_podman_and_tags_nothing() {
    if !require_podman("a_build_cut_short_stops_podman_and_tags_nothing") {
        return;
    }
    let host = Host::new();
    let other = bystander(&host);
    // No other test builds these images meanwhile.
    let _lock = terok_testkit::agents::machine_lock("launch-images").unwrap();
    let out = host.run(&["build"]);
    assert!(out.status.success(), "{}", text(&out));
    let l1 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("L1: ").map(str::to_owned))
        .expect("an L1 tag");
    let before = image_id(&host, &l1);

    for name in ["TERM", "INT"] {
        // The agent layer again, without podman's cache: minutes of npm installs.
        let cli = host.spawn(&["build", "--rebuild"]);
        let deadline = Instant::now() + Duration::from_secs(120);
        let builds = loop {
            let builds = podman_builds_of(cli.id());
            if !builds.is_empty() {
                break builds;
            }
            assert!(Instant::now() < deadline, "podman build never started");
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_secs(3));
        signal(&cli, name);
        let out = wait_for(cli, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(130), "SIG{name}: {}", text(&out));
        assert!(
            text(&out).contains("Interrupted: podman was told to stop the build"),
            "SIG{name}: {}",
            text(&out)
        );
        // podman stops: it does not build on, orphaned, to tag an image later.
        let deadline = Instant::now() + Duration::from_secs(30);
        while builds
            .iter()
            .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        {
            assert!(
                Instant::now() < deadline,
                "SIG{name}: podman build {builds:?} still runs"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(image_id(&host, &l1), before, "SIG{name}: the tag moved");
        assert_untouched(&host, &other);
    }
    // The images are as they were: a build finds them current.
    let out = host.run(&["build"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(image_id(&host, &l1), before);
    let left: Vec<_> = host
        .list()
        .into_iter()
        .filter(|(n, _)| n != &other)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
