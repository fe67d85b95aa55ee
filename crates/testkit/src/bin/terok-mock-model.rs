//! `terok-mock-model --script FILE [--protocol P] [--listen ADDR]`: the scripted model server of
//! terok-testkit as a program, for the demo and for trying an agent by hand. Prints the URL,
//! then one line per request (and what it was refused), until interrupted.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use terok_testkit::model::{ModelScript, Protocol, ScriptedModel};

const HELP: &str = "terok-mock-model --script FILE [--protocol PROTOCOL] [--listen ADDR]

Serves a model API from a script of turns (see terok_testkit::model), for agents that
cannot reach a real model. Prints its URL, then each request it receives.

  --script FILE        the conversation (YAML: turns of text, tool_uses, expect)
  --protocol PROTOCOL  anthropic   Anthropic Messages, POST /v1/messages (Claude Code, Pi)
                       responses   OpenAI Responses, POST /v1/responses (Codex)
                       chat        Chat Completions, POST …/v1/chat/completions (OpenCode
                                   and its providers, Mistral Vibe)
                       default: anthropic
  --listen ADDR        address to listen on (default 127.0.0.1:0, any free port)";

fn usage(problem: &str) -> ExitCode {
    eprintln!("terok-mock-model: {problem}\n\n{HELP}");
    ExitCode::from(2)
}

struct Args {
    script: PathBuf,
    protocol: Protocol,
    listen: String,
}

/// The arguments, or the exit of `--help` and of a usage error.
fn parse_args() -> Result<Args, ExitCode> {
    let mut script = None;
    let mut protocol = Protocol::Anthropic;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--script" => script = args.next().map(PathBuf::from),
            "--listen" => {
                listen = args
                    .next()
                    .ok_or_else(|| usage("--listen needs an address"))?
            }
            "--protocol" => {
                let name = args.next().unwrap_or_default();
                protocol = Protocol::from_name(&name).ok_or_else(|| {
                    usage(&format!(
                        "unknown protocol `{name}`; expected anthropic, responses or chat"
                    ))
                })?;
            }
            "-h" | "--help" => {
                println!("{HELP}");
                return Err(ExitCode::SUCCESS);
            }
            other => return Err(usage(&format!("unexpected argument `{other}`"))),
        }
    }
    let script = script.ok_or_else(|| usage("--script FILE is required"))?;
    Ok(Args {
        script,
        protocol,
        listen,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(&args.script) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("cannot read {}: {err}", args.script.display());
            return ExitCode::FAILURE;
        }
    };
    let script = match ModelScript::parse(&text, &args.script) {
        Ok(script) => script,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let model = match ScriptedModel::serve(args.protocol, script, &args.listen) {
        Ok(model) => model,
        Err(err) => {
            eprintln!("cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("{}", model.url());
    let (mut seen, mut refused, mut mismatched) = (0, 0, 0);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let requests = model.requests();
        for r in &requests[seen..] {
            eprintln!("{} {}", r.method, r.path_and_query);
        }
        seen = requests.len();
        let unanswered = model.unanswered();
        for line in &unanswered[refused..] {
            eprintln!("  refused: {line}");
        }
        refused = unanswered.len();
        let mismatches = model.mismatches();
        for line in &mismatches[mismatched..] {
            eprintln!("  {line}");
        }
        mismatched = mismatches.len();
    }
}
