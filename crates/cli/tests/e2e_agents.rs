//! End to end with the other agents' real CLIs (from npm and PyPI, in one L1 image on Debian
//! sid, whose Node.js 24 and Python 3.14 every one of them runs on): Codex over the OpenAI
//! Responses API, OpenRouter (OpenCode) and Mistral Vibe over Chat Completions, Pi over the
//! Anthropic Messages API with the Claude key. Each fixes the demo's failing test through the
//! vault, offline, with the same checks as the Claude test (see `common::e2e`).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use agent_client_protocol::v1::schema::ToolKind;
use common::acp_e2e::fix_through_acp;
use common::e2e::{Scenario, fix_the_failing_test};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

/// One image for the four agents (OpenRouter brings OpenCode along), built once.
const CONFIG: &str =
    "image:\n  base_image: localhost/debian:sid\n  agents: codex,openrouter,vibe,pi\n";

fn scenario(agent: &str, real_key: &'static str) -> Scenario {
    Scenario {
        demo: demo_agent(agent).unwrap(),
        real_key,
        config: CONFIG,
        suite: "sid",
        image_lock: "agents-e2e-images",
        turns: 3,
    }
}

fn fixes_the_failing_test(agent: &str, real_key: &'static str) {
    let test = format!("{agent}_fixes_the_failing_test_through_the_vault");
    if !require_podman(&test) {
        return;
    }
    fix_the_failing_test(&scenario(agent, real_key), |_| {});
}

/// The same through the ACP proxy, from an editor-like client; `kinds`: tool kinds the
/// agent's ACP server must report.
fn fixes_the_failing_test_through_acp(agent: &str, real_key: &'static str, kinds: &[ToolKind]) {
    let test = format!("{agent}_fixes_the_failing_test_through_acp");
    if !require_podman(&test) {
        return;
    }
    fix_through_acp(&scenario(agent, real_key), kinds);
}

#[test]
fn codex_fixes_the_failing_test_through_the_vault() {
    fixes_the_failing_test("codex", "sk-proj-REAL-codex-e2e-key-4f0a");
}

#[test]
fn openrouter_fixes_the_failing_test_through_the_vault() {
    fixes_the_failing_test("openrouter", "sk-or-v1-REAL-openrouter-e2e-key-77b3");
}

#[test]
fn vibe_fixes_the_failing_test_through_the_vault() {
    fixes_the_failing_test("vibe", "REAL-mistral-e2e-key-0c9d51");
}

#[test]
fn pi_fixes_the_failing_test_through_the_vault() {
    fixes_the_failing_test("pi", "sk-ant-api03-REAL-pi-e2e-key-3a8e");
}

#[test]
fn codex_fixes_the_failing_test_through_acp() {
    fixes_the_failing_test_through_acp("codex", "sk-proj-REAL-codex-acp-key-19d7", &[]);
}

#[test]
fn openrouter_fixes_the_failing_test_through_acp() {
    fixes_the_failing_test_through_acp("openrouter", "sk-or-v1-REAL-openrouter-acp-key-5e21", &[]);
}

#[test]
fn vibe_fixes_the_failing_test_through_acp() {
    fixes_the_failing_test_through_acp("vibe", "REAL-mistral-acp-key-8b40aa", &[]);
}
