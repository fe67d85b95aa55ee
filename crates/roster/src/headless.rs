//! The headless (`run -p`) command line of an agent (docs/compatibility.md#11.1), built from its
//! `headless:` section. The prompt is read from a file inside the container, so it never
//! appears on any command line.

use crate::model::Agent;

/// Where the runner writes the prompt inside the container.
pub const PROMPT_FILE: &str = "/home/dev/.terok/prompt.txt";

/// What a headless run asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadlessOptions {
    /// Seconds before the in-container wrapper stops the agent.
    pub timeout_secs: u64,
    /// Model to use, when the agent has a model flag.
    pub model: Option<String>,
    /// Turn limit, when the agent has a max-turns flag.
    pub max_turns: Option<u32>,
}

impl Default for HeadlessOptions {
    fn default() -> Self {
        Self {
            timeout_secs: crate::provider_config::DEFAULT_TIMEOUT_SECS,
            model: None,
            max_turns: None,
        }
    }
}

/// One word of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// A literal argument.
    Arg(String),
    /// The prompt, read from [`PROMPT_FILE`] at run time.
    Prompt,
}

/// A headless invocation of an agent's wrapper function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadlessCommand {
    /// The words, program first.
    pub words: Vec<Word>,
}

impl HeadlessCommand {
    /// The command as one bash command line, with every literal quoted as needed and the prompt
    /// expanded from its file.
    pub fn to_shell(&self) -> String {
        self.words
            .iter()
            .map(|w| match w {
                Word::Arg(arg) => shell_quote(arg),
                Word::Prompt => format!("\"$(cat {PROMPT_FILE})\""),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Builds the headless command: `<binary> --terok-timeout T [subcommand] [model flag] [turns
/// flag] [output format flags] [verbose flag] [prompt flag] "<prompt>"`. A model or turn limit
/// is left out when the agent has no flag for it (see [`crate::apply_provider_config`] for the
/// warning and the prompt-instruction fallback).
pub fn headless_command(agent: &Agent, options: &HeadlessOptions) -> HeadlessCommand {
    let h = &agent.headless;
    let mut words = vec![
        Word::Arg(agent.binary.clone()),
        Word::Arg("--terok-timeout".to_owned()),
        Word::Arg(options.timeout_secs.to_string()),
    ];
    if let Some(sub) = &h.subcommand {
        words.push(Word::Arg(sub.clone()));
    }
    if let (Some(flag), Some(model)) = (&h.model_flag, &options.model) {
        words.push(Word::Arg(flag.clone()));
        words.push(Word::Arg(model.clone()));
    }
    if let (Some(flag), Some(turns)) = (&h.max_turns_flag, options.max_turns) {
        words.push(Word::Arg(flag.clone()));
        words.push(Word::Arg(turns.to_string()));
    }
    words.extend(h.output_format_flags.iter().cloned().map(Word::Arg));
    if let Some(flag) = &h.verbose_flag {
        words.push(Word::Arg(flag.clone()));
    }
    if let Some(flag) = &h.prompt_flag {
        words.push(Word::Arg(flag.clone()));
    }
    words.push(Word::Prompt);
    HeadlessCommand { words }
}

/// Quotes `arg` for bash: unchanged when it is made of safe characters, single-quoted otherwise.
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | '@' | '+' | ',')
        });
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("opus-4"), "opus-4");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
