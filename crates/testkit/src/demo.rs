//! How each agent runs the demo's scenario (fix `demo/sample-project`'s failing test) against
//! the scripted model: which provider's key it uses, which vendor API the model speaks, the
//! conversation, the base it installs on, and the `run` arguments it needs. `cargo xtask demo
//! --agent NAME` and the end-to-end tests read the same table.

use crate::model::Protocol;

/// One agent's way through the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoAgent {
    /// The agent run.
    pub agent: &'static str,
    /// The provider whose key is stored and whose route goes to the scripted model.
    pub provider: &'static str,
    /// How upstream receives the key: header name and value prefix.
    pub key_header: (&'static str, &'static str),
    /// The vendor API of the scripted model.
    pub protocol: Protocol,
    /// The conversation, a file of `demo/`.
    pub script: &'static str,
    /// The path of the vendor's API below its host (`/api` for OpenRouter), appended to the
    /// scripted model's URL as the provider's upstream.
    pub upstream_path: &'static str,
    /// The Debian suite of the base image (one whose Node.js and Python the agent runs on).
    pub suite: &'static str,
    /// Extra `run` arguments (a model, another provider's credential).
    pub run_args: &'static [&'static str],
}

const BEARER: (&str, &str) = ("authorization", "Bearer ");

/// Every agent the demo can run.
pub const DEMO_AGENTS: [DemoAgent; 5] = [
    DemoAgent {
        agent: "claude",
        provider: "claude",
        key_header: ("x-api-key", ""),
        protocol: Protocol::Anthropic,
        script: "claude-fixes-a-test.yaml",
        upstream_path: "",
        suite: "bookworm",
        run_args: &[],
    },
    DemoAgent {
        agent: "codex",
        provider: "codex",
        key_header: BEARER,
        protocol: Protocol::Responses,
        script: "codex-fixes-a-test.yaml",
        upstream_path: "",
        suite: "bookworm",
        // A model with Codex's shell and apply_patch tools.
        run_args: &["--model", "gpt-5.5"],
    },
    DemoAgent {
        agent: "openrouter",
        provider: "openrouter",
        key_header: BEARER,
        protocol: Protocol::Chat,
        script: "opencode-fixes-a-test.yaml",
        // OpenRouter's API is under /api.
        upstream_path: "/api",
        suite: "bookworm",
        run_args: &[],
    },
    DemoAgent {
        agent: "vibe",
        provider: "vibe",
        key_header: BEARER,
        protocol: Protocol::Chat,
        script: "vibe-fixes-a-test.yaml",
        upstream_path: "",
        // Vibe needs Python 3.12 or newer.
        suite: "trixie",
        run_args: &[],
    },
    DemoAgent {
        agent: "pi",
        provider: "claude",
        key_header: ("x-api-key", ""),
        protocol: Protocol::Anthropic,
        script: "pi-fixes-a-test.yaml",
        upstream_path: "",
        // Pi's current releases need Node.js 22 or newer.
        suite: "sid",
        // Pi has no provider of its own: it uses the Claude key through the vault.
        run_args: &["--credential", "claude"],
    },
];

/// The demo entry of `agent`.
pub fn demo_agent(agent: &str) -> Option<&'static DemoAgent> {
    DEMO_AGENTS.iter().find(|d| d.agent == agent)
}

/// The names `--agent` accepts, comma-separated.
pub fn demo_agent_names() -> String {
    DEMO_AGENTS
        .iter()
        .map(|d| d.agent)
        .collect::<Vec<_>>()
        .join(", ")
}
