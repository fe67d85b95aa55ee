//! End to end with the real Claude Code CLI (from npm, in the L1 image) against the scripted
//! model server: `run claude <sample project> -p "fix the failing test"` makes Claude read the
//! buggy file, edit it, and answer. The model server sees only the real key (the vault swapped
//! it in), the container and podman's command lines never see it, and the container's tokens
//! are revoked when it exits (see `common::e2e`).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::e2e::{Scenario, fix_the_failing_test};
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, install_scripted_agent};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

#[test]
fn claude_fixes_the_failing_test_through_the_vault() {
    if !require_podman("claude_fixes_the_failing_test_through_the_vault") {
        return;
    }
    let scenario = Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: "sk-ant-api03-REAL-e2e-key-that-stays-on-the-host-91c2",
        // The launch tests' image: Claude and the stand-in agent on bookworm.
        config: LAUNCH_TEST_CONFIG,
        suite: "bookworm",
        image_lock: "launch-images",
        turns: 3,
    };
    fix_the_failing_test(&scenario, |env| {
        install_scripted_agent(env).unwrap();
    });
}
