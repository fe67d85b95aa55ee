//! End to end on a remote engine: a second, real Podman service on this machine with its own
//! storage (common::remote), reached through `CONTAINER_HOST`. The images are built on that
//! engine, the sample project is copied into the container (the engine sees none of this
//! host's paths), the vault listens on TCP at this host's address on the engine's network, and
//! the real Claude Code fixes the failing test through it; the fix is merged back into the
//! project, the model sees only the real key, the container and podman never do.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::e2e::{Scenario, fix_the_failing_test_on};
use common::remote::RemoteEngine;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent};
use terok_testkit::base_image::{BASE_IMAGE, ensure_base_image};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

#[test]
fn claude_fixes_the_failing_test_on_a_remote_engine() {
    if !require_podman("claude_fixes_the_failing_test_on_a_remote_engine") {
        return;
    }
    if !terok_core::HostEnv::from_process().is_root() {
        eprintln!("skipped: the second engine is a rootful podman service");
        return;
    }
    ensure_base_image(&mut |_| {}).unwrap();
    let engine = RemoteEngine::start(BASE_IMAGE);
    let config = format!(
        "{LAUNCH_TEST_CONFIG}services:\n  mode: tcp\n  address: {}\n",
        engine.host_address
    );
    let scenario = Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: "sk-ant-api03-REAL-remote-engine-key-stays-here-4b7e",
        config: Box::leak(config.into_boxed_str()),
        suite: "bookworm",
        // Its own engine, its own images: no lock shared with this host's builds.
        image_lock: "remote-engine-images",
        turns: 3,
    };
    fix_the_failing_test_on(
        &scenario,
        |env| {
            install_scripted_agent(env).unwrap();
        },
        |run| {
            run.extra_env = vec![("CONTAINER_HOST".to_owned(), engine.url())];
            // The firewall's hook cannot run on another engine: the engine's own internal
            // network is what keeps the agent from anything but this host's listeners.
            run.network_args = ["--shield", "open", "--network", &engine.run_network]
                .map(str::to_owned)
                .to_vec();
            run.network_mode = "bridge".to_owned();
        },
    );
}
