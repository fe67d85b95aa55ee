//! The wrapper file `/home/dev/.terok/terok-executor.sh` (docs/compatibility.md#10.2): one shell
//! function per agent of the roster, rendered from `resources/templates/agent-wrappers.sh.j2`.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use terok_roster::{Agent, InstructionsDelivery, Roster, instructions_delivery, shell_quote};

use crate::error::ContainerEnvError;

const TEMPLATE: &str = include_str!("../../../resources/templates/agent-wrappers.sh.j2");

/// Where the wrapper functions find the per-task files.
pub const AGENT_CONFIG_MOUNT: &str = "/home/dev/.terok";

/// One agent's function, as the template sees it (every value already shell-safe).
#[derive(Debug, Serialize)]
struct WrapperAgent {
    name: String,
    label: String,
    function: String,
    binary: String,
    refuse: String,
    auto_approve_flags: String,
    flags: String,
    exports: Vec<String>,
    prepare: Option<String>,
    add_dir: bool,
    agents_json: bool,
    instructions: &'static str,
    opencode_plugin_dir: Option<String>,
    session_file: String,
    resume_flag: Option<String>,
    git_name: String,
    git_email: String,
    claude_memory: bool,
    vibe_session_capture: bool,
    acp: Option<WrapperAcp>,
}

/// An agent's ACP server function (`terok-<name>-acp` runs it), as the template sees it.
#[derive(Debug, Serialize)]
struct WrapperAcp {
    function: String,
    command: String,
    exports: Vec<String>,
    prepare: Option<String>,
}

/// The name of `agent`'s ACP function; `terok-acp-run` derives it the same way.
fn acp_function(agent: &str) -> String {
    format!("_terok_acp_{}", agent.replace('-', "_"))
}

fn quote_all(words: &[String]) -> String {
    words
        .iter()
        .map(|s| shell_quote(s))
        .collect::<Vec<_>>()
        .join(" ")
}

fn exports(env: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    env.iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(v)))
        .collect()
}

/// Whether `word` can name a bash function and be written unquoted.
fn is_function_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

fn wrapper_agent(agent: &Agent) -> Option<WrapperAgent> {
    // The function shadows the binary, so the headless command (`<binary> --terok-timeout …`)
    // goes through it.
    if !is_function_name(&agent.binary) {
        return None;
    }
    let session = &agent.session;
    let session_file = session
        .session_file
        .as_ref()
        .map(|f| format!("{AGENT_CONFIG_MOUNT}/{f}"))
        .unwrap_or_default();
    let resume_flag = session
        .resume_flag
        .as_ref()
        .filter(|_| session.supports_resume && session.session_file.is_some())
        .map(|f| shell_quote(f));
    let opencode_plugin_dir = match (&agent.opencode, &session.session_file) {
        (_, None) => None,
        (Some(oc), Some(_)) => Some(format!("{}/opencode/plugins", oc.config_dir)),
        (None, Some(_)) if agent.binary == "opencode" => {
            Some(".config/opencode/plugins".to_owned())
        }
        (None, Some(_)) => None,
    };
    Some(WrapperAgent {
        name: agent.name.clone(),
        label: agent.label.replace('\n', " "),
        function: agent.binary.clone(),
        binary: agent.binary.clone(),
        refuse: agent
            .refuse_subcommands
            .iter()
            .map(|s| shell_quote(s))
            .collect::<Vec<_>>()
            .join("|"),
        auto_approve_flags: quote_all(&agent.auto_approve.flags),
        flags: quote_all(&agent.wrapper_flags),
        exports: exports(&agent.wrapper_env),
        prepare: agent.wrapper_prepare.clone(),
        add_dir: agent.capabilities.add_dir,
        agents_json: agent.capabilities.agents_json,
        instructions: match instructions_delivery(agent) {
            InstructionsDelivery::SystemPrompt => "system-prompt",
            InstructionsDelivery::ConfigFile => "config-file",
            InstructionsDelivery::OpencodeConfig => "opencode-config",
            InstructionsDelivery::PromptPrefix => "prompt-prefix",
        },
        opencode_plugin_dir,
        session_file,
        resume_flag,
        git_name: shell_quote(&agent.git_identity.name),
        git_email: shell_quote(&agent.git_identity.email),
        claude_memory: agent.binary == "claude",
        vibe_session_capture: agent.binary == "vibe" && session.session_file.is_some(),
        acp: agent.acp.as_ref().map(|acp| WrapperAcp {
            function: acp_function(&agent.name),
            command: quote_all(&acp.command),
            exports: exports(&acp.env),
            prepare: acp.prepare.clone(),
        }),
    })
}

/// Renders the wrapper file for every agent of `roster` (tools and runtime entries have their
/// own wrappers in the image).
pub fn render_wrappers(roster: &Roster, task_id: &str) -> Result<String, ContainerEnvError> {
    let agents: Vec<WrapperAgent> = roster.agents().filter_map(wrapper_agent).collect();
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| ContainerEnvError::Template(e.to_string()))?;
    env.set_syntax(syntax);
    env.render_str(
        TEMPLATE,
        minijinja::context! { task_id => task_id, agents => minijinja::value::Serde(&agents) },
    )
    .map_err(|e| ContainerEnvError::Template(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert!(is_function_name("claude"));
        assert!(is_function_name("terok-scripted-agent"));
        assert!(!is_function_name("/usr/bin/x"));
        assert!(!is_function_name("a b"));
        assert!(!is_function_name(""));
    }
}
